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
