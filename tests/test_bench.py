"""The benchmark script runs: a quick pynn-vs-numpy run checks pynn against the
numpy reference and prints a table with pynn's speed and its speedup."""
import os
import re
import subprocess
import sys

import pytest

RUN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "bench", "run.py")

# "pynn   2,376,373   24.0   59%   1.00x": tool, samples/s, GFLOP/s, % of peak, speedup
ROW = re.compile(r"^(\S+)\s+([\d,]+)\s+([\d.]+)\s+(\d+)%\s+([\d.]+)x\s*$")


def _rows(output):
    rows = {}
    for line in output.splitlines():
        m = ROW.match(line)
        if m:
            rows.setdefault(m.group(1), []).append(
                (float(m.group(2).replace(",", "")), float(m.group(5))))
    return rows


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux affinity")
def test_quick_benchmark_runs(tmp_path):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the script must find the installed pynn by itself
    proc = subprocess.run(
        [sys.executable, RUN, "--quick", "--peers", "pynn", "numpy",
         "--cases", "small", "predict"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    assert out.count("check: pynn matches numpy reference (max rel err") == 2, out
    rows = _rows(out)
    assert len(rows.get("pynn", [])) == 2, out       # one per case
    assert len(rows.get("numpy", [])) == 2, out
    for samples_per_s, speedup in rows["pynn"]:
        assert samples_per_s > 0 and speedup == 1.0
    for samples_per_s, speedup in rows["numpy"]:
        assert samples_per_s > 0 and speedup > 0


SCALING = os.path.join(os.path.dirname(RUN), "scaling.py")


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux affinity")
def test_scaling_run_is_one_command(tmp_path):
    """bench/scaling.py runs run.py at each thread count and prints, per case, each
    tool's samples/s at every count and pynn's ratio to the peer."""
    counts = [1, 2] if len(os.sched_getaffinity(0)) >= 2 else [1]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, SCALING, "--threads", *map(str, counts), "--quick",
         "--peers", "pynn", "numpy", "--cases", "small"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    assert out.count("######## ") == len(counts), out
    table = out[out.index("==== scaling"):].splitlines()
    header = next(line for line in table if line.startswith("tool"))
    assert header.split()[1::2] == [str(c) for c in counts], header
    pynn = next(line for line in table if line.startswith("pynn "))
    ratio = next(line for line in table if line.startswith("pynn/numpy"))
    cells = re.split(r"\s{2,}", pynn.strip())[1:]  # "1,959,568", "1,673,172 (0.85x)"
    speeds = [float(c.split()[0].replace(",", "")) for c in cells]
    assert len(speeds) == len(counts) and all(v > 0 for v in speeds), pynn
    assert len(re.findall(r"[\d.]+x", ratio)) == len(counts), ratio
