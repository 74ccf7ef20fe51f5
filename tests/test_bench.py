"""The benchmark script runs: a quick pynn-vs-numpy run checks pynn against the
numpy reference and prints a table with pynn's speed and its speedup; bench/syncs.py
counts pynn's OpenMP synchronizations."""
import json
import os
import re
import shutil
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


SYNCS = os.path.join(os.path.dirname(RUN), "syncs.py")
# "| mnist-like | 2 | 4 | 6.25 | 12.5 | 25 | 4 | 0 |": case, threads, steps, regions,
# barriers and syncs per step, C calls, 1-thread regions per step
SYNC_ROW = re.compile(r"^\| (\S+) \| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) "
                      r"\| (\d+|\?) \| ([\d.]+) \|$")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD, /proc/self/maps")
@pytest.mark.skipif(not shutil.which(os.environ.get("CC") or "cc"), reason="no C compiler")
def test_syncs_counts_openmp_synchronizations(tmp_path):
    """bench/syncs.py counts pynn's parallel regions and barriers per training step
    under its LD_PRELOAD shim: whole counts per fit call, the per-step figures
    those over the steps, syncs = 2 x regions + barriers (no particular numbers:
    they are what a refactor of the parallel structure changes)."""
    threads = 2 if len(os.sched_getaffinity(0)) >= 2 else 1
    steps = 4
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    out_json = tmp_path / "syncs.json"
    proc = subprocess.run(
        [sys.executable, SYNCS, "--cases", "mnist-like", "--steps", str(steps),
         "--threads", str(threads), "--predict-calls", "1", "--json", str(out_json)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    rows = [SYNC_ROW.match(line) for line in out.splitlines()]
    rows = [m.groups() for m in rows if m]
    assert len(rows) == 1, out
    case, t, s, regions, barriers, syncs, _, _ = rows[0]
    assert (case, int(t), int(s)) == ("mnist-like", threads, steps), out
    assert abs(float(syncs) - (2 * float(regions) + float(barriers))) < 2e-3, out

    with open(out_json, encoding="utf-8") as fh:
        data = json.load(fh)
    run, = data["runs"]
    row, = run["train"]
    pred, = run["predict"]
    for got, n in ((row, steps), (pred, 1)):
        for key in ("regions", "barriers", "syncs", "serial_regions", "other"):
            assert isinstance(got[key], int) and got[key] >= 0, got
        assert got["syncs"] == 2 * got["regions"] + got["barriers"], got
        assert got["serial_regions"] <= got["regions"], got
    assert row["steps"] == steps and row["chunks"] in (None, *range(1, steps + 1)), row
    # the table shows the whole counts over the steps
    for cell, key in ((regions, "regions"), (barriers, "barriers"), (syncs, "syncs")):
        assert abs(float(cell) - row[key] / steps) < 1e-3, (cell, row)
    if not data["openmp"]:
        assert row["syncs"] == pred["syncs"] == run["probe"]["syncs"] == 0, data
    elif threads > 1:
        # the shim sees pynn's calls: a 512x784 @ 784x1024 product uses the team
        assert run["probe"]["regions"] >= 1, run["probe"]
        # a chunk of training steps is one parallel region, and a step of a 3-layer
        # network syncs at most 9 times: gathered batch, 3 layers forward, output
        # delta, 3 layers backward, update (+1 where an epoch starts: the shuffle),
        # never per K block or per product; the fit's final check of the weights is
        # one loss and gradient (one region, 7 syncs)
        if row["chunks"] is not None:
            assert row["regions"] <= row["chunks"] + 1, row
        assert row["barriers"] <= 9 * steps + 1 + 7, row
        assert pred["barriers"] == 0, pred  # blocks of rows go to threads whole
