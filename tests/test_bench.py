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


def _has_torch():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux affinity")
def test_quick_bfloat16_benchmark_runs(tmp_path):
    """--dtype bfloat16: pynn's mixed-precision mode checked against the bfloat16
    numpy reference, pynn in float32 as the row of the mode's speedup, PyTorch's
    autocast and bfloat16-weights peers (where torch is installed); the JSON
    says bfloat16."""
    bf16_peers = ["pynn", "pynn.f32"] + (["torch.autocast", "torch.bf16"]
                                         if _has_torch() else [])
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    out_json = tmp_path / "bf16.json"
    proc = subprocess.run(
        [sys.executable, RUN, "--quick", "--dtype", "bfloat16", "--cases", "small",
         "--peers", *bf16_peers, "--json", str(out_json)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    assert out.count("check: pynn matches the bfloat16 numpy reference (error") == 1, out
    assert out.count("check: pynn.f32 matches numpy reference (max rel err") == 1, out
    assert re.search(r"^bfloat16: CPU flags avx512_bf16 (yes|no), amx_bf16 (yes|no)", out,
                     re.M), out
    assert "GEMM peak" in out and "(numpy float32 (32x64) @ (64x32)" in out, out
    rows = _rows(out)
    for tool in bf16_peers:
        assert len(rows.get(tool, [])) == 1, out
        samples_per_s, speedup = rows[tool][0]
        assert samples_per_s > 0 and speedup > 0, out
    assert rows["pynn"][0][1] == 1.0, out

    with open(out_json, encoding="utf-8") as fh:
        data = json.load(fh)
    assert data["dtype"] == "bfloat16" and data["gemm_peak_dtype"] == "float32", data
    case, = data["cases"]
    assert [r["tool"] for r in case["rows"]] == bf16_peers, case
    assert all(r["samples_per_s"] > 0 for r in case["rows"]), case


def test_bfloat16_peers_only_in_a_bfloat16_run(tmp_path):
    """numpy has no bfloat16 training: asking for it in a bfloat16 run (or for
    a bfloat16 peer in a float32 run) is a usage error, before anything runs."""
    for args in (["--dtype", "bfloat16", "--peers", "pynn", "numpy"],
                 ["--peers", "pynn", "torch.autocast"]):
        proc = subprocess.run([sys.executable, RUN, "--quick", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "--dtype" in proc.stderr, proc.stderr


def _bench_module(monkeypatch, name):
    """bench/<name>.py with bench/ on the path, as run.py has it, under a module
    name of its own (tests/reference.py is the tests' `reference`)."""
    import importlib.util
    monkeypatch.syspath_prepend(os.path.dirname(RUN))
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", os.path.join(os.path.dirname(RUN), f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench_reference(monkeypatch):
    return _bench_module(monkeypatch, "reference")


def _fake_machine(tmp_path, vendor, family, model, caches):
    tmp_path.mkdir(parents=True, exist_ok=True)
    cpuinfo = tmp_path / "cpuinfo"
    block = (f"processor\t: {{n}}\nvendor_id\t: {vendor}\ncpu family\t: {family}\n"
             f"model\t\t: {model}\nmodel name\t: Some CPU\n\n")
    # a second processor that disagrees: only the first block is read
    cpuinfo.write_text(block.format(n=0) + block.format(n=1).replace(
        f"model\t\t: {model}", "model\t\t: 999"))
    cache = tmp_path / "cache"
    for i, (level, kind, size) in enumerate(caches):
        d = cache / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    return str(cpuinfo), str(cache)


def test_machine_line_tells_the_cpu_generation(monkeypatch, tmp_path):
    """The bench's CPU line carries the vendor, family and model (AMD's core
    generation named), and the data caches: the sessions' machines all call
    themselves "AMD EPYC"."""
    report = _bench_module(monkeypatch, "report")
    caches = [(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"),
              (3, "Unified", "32768K")]
    for family, model, core in ((25, 17, "Zen 4"), (25, 1, "Zen 3"), (26, 2, "Zen 5"),
                                (25, 0x61, "Zen 4"), (23, 49, "Zen/Zen 2")):
        sub = tmp_path / f"{family}-{model}"
        info, cache = _fake_machine(sub, "AuthenticAMD", family, model, caches)
        assert report.cpu_identity(info, cache) == (
            f" (AuthenticAMD family {family} model {model}, {core}; "
            "L1d 32K, L2 1024K, L3 32768K)")
    info, cache = _fake_machine(tmp_path / "intel", "GenuineIntel", 6, 143, caches[:1])
    assert report.cpu_identity(info, cache) == " (GenuineIntel family 6 model 143; L1d 32K)"
    assert report.cpu_identity(str(tmp_path / "none"), str(tmp_path / "none")) == ""
    # and the line the run prints uses it
    monkeypatch.setattr(report, "cpu_identity", lambda: " (X family 1 model 2)")

    class Args:
        threads, peers, dtype, quick, repeats = 1, ["pynn"], "float32", True, 1
    assert " (X family 1 model 2), " in report.machine_lines(Args, [0], {}, {})[0]


def test_several_threads_are_pinned_one_per_physical_core_first(monkeypatch):
    """timing.physical_first: on a machine whose logical CPUs 2k and 2k+1 are one
    core's two hardware threads, four threads take CPUs 0, 2, 4, 6 (four cores), and
    only past the cores the second threads; unknown topology keeps CPU order."""
    timing = _bench_module(monkeypatch, "timing")
    smt_pairs = lambda cpu: (0, cpu // 2)                            # noqa: E731
    order = timing.physical_first(range(8), smt_pairs)
    assert order[:4] == [0, 2, 4, 6] and order[4:] == [1, 3, 5, 7]
    # Linux's usual numbering, second threads after all cores: CPU order already
    assert timing.physical_first(range(8), lambda c: (0, c % 4)) == list(range(8))
    two_packages = lambda cpu: (cpu // 4, cpu % 2)                   # noqa: E731
    assert timing.physical_first([5, 0, 1, 4], two_packages) == [0, 1, 4, 5]
    assert timing.physical_first([3, 1, 2], lambda c: None) == [1, 2, 3]
    assert timing.physical_first([0, 1, 2, 3], lambda c: (0, 0)) == [0, 1, 2, 3]


def test_tools_are_timed_in_turns(monkeypatch):
    """timing.time_in_rounds: every tool runs in every round, in the given order
    and reversed every other round; a tool past its budget takes no more turns;
    one that raises is reported and drops out; the best time is kept."""
    timing = _bench_module(monkeypatch, "timing")
    calls = []
    clock = [0.0]
    monkeypatch.setattr(timing, "_clock", lambda: clock[0])

    def tool(name, secs):
        def fn():
            calls.append(name)
            clock[0] += secs.pop(0) if isinstance(secs, list) else secs
        return fn

    def broken():
        calls.append("broken")
        raise RuntimeError("no")

    # (times in binary fractions: the fake clock's sums stay exact)
    fns = {"a": tool("a", [0.375, 0.25, 0.3125]), "b": tool("b", 0.125),
           "slow": tool("slow", 5.0),
           "broken": broken}
    got = timing.time_in_rounds(fns, repeats=3, rounds=3, budget=3.0, min_total=0.0,
                                max_runs=20)
    assert calls == ["a", "b", "slow", "broken",   # round 1 in order
                     "b", "a",                     # round 2 reversed (slow: budget spent)
                     "a", "b"]
    assert got["a"] == (0.25, 3, None) and got["b"] == (0.125, 3, None)
    assert got["slow"] == (5.0, 1, None)
    best, runs, exc = got["broken"]
    assert best is None and runs == 0 and isinstance(exc, RuntimeError)
    # a short task makes more runs a round while under min_total / rounds
    calls.clear()
    got = timing.time_in_rounds({"b": tool("b", 0.125)}, repeats=1, rounds=2, budget=3.0,
                                min_total=1.0, max_runs=20)
    assert calls == ["b"] * 8 and got["b"] == (0.125, 8, None)
    # at most ceil(max_runs / rounds) a round
    calls.clear()
    timing.time_in_rounds({"b": tool("b", 0.125)}, repeats=1, rounds=3, budget=30.0,
                          min_total=30.0, max_runs=5)
    assert calls == ["b"] * 6
    # a fatal tool's failure is raised at once, before the others' turns
    calls.clear()
    with pytest.raises(RuntimeError):
        timing.time_in_rounds({"broken": broken, "b": tool("b", 0.125)}, repeats=3,
                              rounds=3, fatal=("broken",))
    assert calls == ["broken"]


def test_round_bf16_is_round_to_nearest_even(bench_reference):
    import numpy as np
    r = bench_reference.round_bf16
    f = np.float32
    # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to the even one, 1; 1 + 3·2^-8
    # halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up
    x = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 2**-9), 0.0, -0.0,
                  np.inf, -np.inf, np.finfo(f).max, 3.0], f)
    want = np.array([1.0, 1 + 2**-6, 1 + 2**-7, -1.0, 0.0, -0.0, np.inf, -np.inf, np.inf,
                     3.0], f)
    got = r(x)
    assert got.dtype == f and np.array_equal(got, want), got
    assert np.array_equal(np.signbit(got), np.signbit(want))
    assert np.isnan(r(np.array([np.nan], f))).all()
    assert not (r(np.random.default_rng(0).standard_normal(1000).astype(f))
                .view(np.uint32) & 0xFFFF).any()


def test_bfloat16_check_tells_rounding_from_none(bench_reference):
    """The check of a bfloat16 run accepts a trainer that rounds the products'
    operands to bfloat16 and accumulates in float32, and refuses one that does not
    round (float32 throughout) or truncates."""
    import numpy as np
    from cases import CASES, LEARNING_RATE   # bench/cases.py
    ref = bench_reference
    case = next(c for c in CASES if c.name == "mnist-like")

    def truncate(a):
        return (np.asarray(a, np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(
            np.float32)

    class Emulation:
        name, check_rtol = "emulation", None

        def __init__(self, operands):
            self.operands = operands

        def check_result(self, case, params, X, y, dtype, threads):
            Y = np.eye(case.n_classes, dtype=np.float32)[y]
            ref.numpy_epoch(params, X, Y, case.batch, LEARNING_RATE, operands=self.operands)
            return [a for pair in params for a in pair]

    err = ref.check(Emulation(ref.round_bf16), case, "bfloat16", 1)["bfloat16"]
    assert err < ref.RTOL["bfloat16"] / 2, err
    for operands in (lambda a: a, truncate):
        with pytest.raises(ref.CheckFailed):
            ref.check(Emulation(operands), case, "bfloat16", 1)


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
        # on Linux the core's own barrier (not libgomp's) syncs the steps; the
        # shim cannot see it, pynn_team_barriers() counts it
        if sys.platform.startswith("linux"):
            assert 0 < row["core_barriers"] <= row["barriers"], row
        # rows go to threads in shares, each in blocks of its own: in a region
        # per core call, one barrier (the team packs the weights, then predicts);
        # the calls' sizes follow their timing (pynn._base grows them toward
        # _PREDICT_CALL_SECONDS), and a last call of one block shares its
        # products instead, a barrier per layer more (a loaded machine split
        # 10,000 rows into 3 calls, 6 barriers): never per K block or product
        layers = 3
        assert pred["regions"] >= 1, pred
        assert pred["barriers"] <= pred["regions"] + layers, pred


def test_siblings_tells_a_shared_core_from_a_core_of_its_own(monkeypatch):
    """bench/siblings.py's verdicts: CPU 1 halves CPU 0's speed and its own when
    both are busy (the two hardware threads of one core), CPU 2 leaves both
    alone; one of the pair slowed (a busy host, not a sibling) is no verdict of
    sharing.  All CPUs at once near half speed: half as many cores."""
    sib = _bench_module(monkeypatch, "siblings")
    assert sib.parse_cpus("0-3,8, 10-11") == [0, 1, 2, 3, 8, 10, 11]
    alone = {0: 100.0, 1: 98.0, 2: 102.0, 3: 100.0}
    pairs = {1: {0: 52.0, 1: 50.0}, 2: {0: 99.0, 2: 101.0}, 3: {0: 97.0, 3: 60.0}}
    verdicts = sib.pair_verdicts(0, alone, pairs, shared=0.75)
    assert [(j, s) for j, _, _, s in verdicts] == [(1, True), (2, False), (3, False)]
    j, r0, rj, _ = verdicts[0]
    assert abs(r0 - 0.52) < 1e-12 and abs(rj - 50 / 98) < 1e-12
    lines = sib.summary(0, verdicts, [0.5, 0.52, 0.49, 0.55])
    assert "shares its core with CPU(s) 1:" in lines[0] and "51%" in lines[0]
    assert "median 51%" in lines[1] and "half as many physical cores" in lines[1]
    lines = sib.summary(0, [v for v in verdicts if v[0] != 1], [1.0, 0.98, 1.01])
    assert lines[0].startswith("no CPU slowed CPU 0 down")
    assert "one physical core per CPU" in lines[1]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux affinity")
def test_siblings_run_is_one_command(tmp_path):
    """bench/siblings.py runs its three phases on the CPUs it may use and prints a
    row per CPU (speed alone > 0) and what it found."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    script = os.path.join(os.path.dirname(RUN), "siblings.py")
    proc = subprocess.run(
        [sys.executable, script, "--seconds", "0.05", "--cpus", ",".join(map(str, cpus))],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    rows = re.findall(r"^\| (\d+) \| ([\d,]+) \|", out, re.M)
    assert [int(c) for c, _ in rows] == cpus, out
    assert all(float(v.replace(",", "")) > 0 for _, v in rows), out
    if len(cpus) > 1:
        assert re.search(r"^- (CPU \d+ shares|no CPU slowed)", out, re.M), out
        assert re.search(r"^- all 2 CPUs at once: median \d+%", out, re.M), out
    bad = subprocess.run([sys.executable, script, "--cpus", "100000"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "not among the CPUs" in bad.stderr
