#!/usr/bin/env python
"""OpenMP synchronizations per training step (and per prediction call) of pynn.

    python bench/syncs.py                                   # 2 threads, the default cases
    python bench/syncs.py --python venv-old/bin/python      # another installation's pynn
    python bench/syncs.py --threads 1 2 --cases mnist-like --steps 50 --json syncs.json

Builds bench/gomp_count.c (an LD_PRELOAD shim counting calls of libgomp's entry
points) with the C compiler, then per thread count starts a fresh interpreter
with the shim preloaded, pinned to that many cores like bench/run.py.  For each
case it trains a warm-started pynn MLPClassifier (as bench/run.py times it) for
one epoch of exactly --steps minibatches and counts the calls made from pynn's
core on the main thread:

  regions   parallel regions started (GOMP_parallel and the other region starts)
  barriers  team barriers: libgomp's (GOMP_barrier, GOMP_loop_end, ...; the main
            thread takes part in every barrier of its team, so its calls count
            each once) and the core's own (pynn_team_barriers(), which the shim
            cannot see: a spin-then-futex barrier, csrc/dispatch.c)
  syncs     2 x regions (a fork and a join each) + barriers

All divided by the steps (prediction: by the predict_proba calls).  The counts
include what a fit call does besides its steps (the checks at its end, say).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_SOURCE = os.path.join(HERE, "gomp_count.c")
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from cases import CASES, PREDICT_ROWS  # noqa: E402

TRAIN_CASES = [c.name for c in CASES if not c.predict]
DEFAULT_CASES = ["mnist-like", "wide", "small"]
PREDICT_CASE = next(c for c in CASES if c.predict)
MARK = "GOMP-COUNT-RESULT "   # the child's result line on stdout
KINDS = {0: "other", 1: "region", 2: "barrier", 3: "serial"}  # gomp_count_kind()
KINDS_KEY = {"other": "other", "region": "regions", "barrier": "barriers",
             "serial": "serial_regions"}
MAIN, IN_CORE = 1, 2           # the shim's counter bits (gomp_count.c)


# ---------------------------------------------------------------------------
# the parent: build the shim, run one child per thread count, print tables
# ---------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=sys.executable,
                    help="the interpreter whose installed pynn is measured (default: this one)")
    ap.add_argument("--cases", nargs="+", choices=TRAIN_CASES, default=DEFAULT_CASES,
                    metavar="CASE", help=f"training cases, of {', '.join(TRAIN_CASES)} "
                    f"(default {' '.join(DEFAULT_CASES)})")
    ap.add_argument("--threads", type=int, nargs="+", default=[2],
                    help="thread counts (default 2); the child is pinned to that many cores")
    ap.add_argument("--steps", type=int, default=20,
                    help="minibatch steps in the counted fit call (default 20)")
    ap.add_argument("--predict-calls", type=int, default=3,
                    help=f"counted predict_proba calls on {PREDICT_ROWS:,} rows "
                    "(default 3; 0: no prediction table)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--json", metavar="FILE", default=None,
                    help="also write the results as JSON to FILE")
    args = ap.parse_args(argv)
    if min(args.threads) < 1:
        ap.error("--threads must be >= 1")
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    if args.predict_calls < 0:
        ap.error("--predict-calls must be >= 0")
    found = args.python if os.sep in args.python else shutil.which(args.python)
    if not found or not os.access(found, os.X_OK):
        ap.error(f"--python: not an executable interpreter: {args.python}")
    args.python = os.path.abspath(found)  # not resolved: a venv's python is a link
    return args


def build_shim(tmp):
    """Compile gomp_count.c into tmp; the path of the shared library."""
    cc = os.environ.get("CC") or "cc"
    if not shutil.which(cc.split()[0]):
        sys.exit(f"bench/syncs.py needs a C compiler to build {SHIM_SOURCE}: "
                 f"'{cc}' was not found (install gcc, or set CC)")
    out = os.path.join(tmp, "gomp_count.so")
    base = cc.split() + ["-O2", "-shared", "-fPIC", "-o", out, SHIM_SOURCE]
    for extra in (["-ldl"], []):   # -ldl: glibc before 2.34 keeps dlsym there
        proc = subprocess.run(base + extra, capture_output=True, text=True)
        if proc.returncode == 0:
            return out
    sys.exit(f"could not build the shim: {' '.join(base)}\n{proc.stdout}{proc.stderr}")


def run_child(python, shim, threads, args, cwd):
    spec = {"shim": shim, "threads": threads, "cases": args.cases, "steps": args.steps,
            "predict_calls": args.predict_calls, "dtype": args.dtype}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # after what is preloaded already: a sanitizer's runtime must stay first
    env["LD_PRELOAD"] = " ".join(filter(None, [os.environ.get("LD_PRELOAD"), shim]))
    proc = subprocess.run([python, os.path.abspath(__file__), "--child", json.dumps(spec)],
                          cwd=cwd, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{python} bench/syncs.py --child (threads {threads}) failed "
                 f"(exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1][len(MARK):])


def imported_gomp_symbols(path):
    """The GOMP_ functions a shared library imports (None without nm)."""
    nm = shutil.which("nm")
    if not nm or not path:
        return None
    proc = subprocess.run([nm, "-D", "--undefined-only", path], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return sorted({m.group(1) for m in re.finditer(r"\bU (GOMP_\w+)", proc.stdout)})


def fmt(x):
    """A count per step: whole numbers as they are, fractions to 3 decimals."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    return f"{float(x):.3f}".rstrip("0").rstrip(".")


def per(m, key, n):
    return Fraction(m[key], n)


def train_table(rows):
    out = ["| case | threads | steps | regions/step | barriers/step | syncs/step "
           "| C calls | 1-thread regions/step |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r["steps"]
        out.append(f"| {r['case']} | {r['threads']} | {s} | {fmt(per(r, 'regions', s))} "
                   f"| {fmt(per(r, 'barriers', s))} | {fmt(per(r, 'syncs', s))} "
                   f"| {r['chunks'] if r['chunks'] is not None else '?'} "
                   f"| {fmt(per(r, 'serial_regions', s))} |")
    return "\n".join(out)


def predict_table(rows):
    out = ["| case | threads | calls | regions/call | barriers/call | syncs/call |",
           "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        c = r["calls"]
        out.append(f"| {r['case']} | {r['threads']} | {c} | {fmt(per(r, 'regions', c))} "
                   f"| {fmt(per(r, 'barriers', c))} | {fmt(per(r, 'syncs', c))} |")
    return "\n".join(out)


def main(argv=None):
    args = parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="pynn-syncs-") as tmp:
        shim = build_shim(tmp)
        cwd = os.path.join(tmp, "cwd")  # empty: a source tree's pynn/ is not imported
        os.mkdir(cwd)
        for t in args.threads:
            results.append(run_child(args.python, shim, t, args, cwd))
    first = results[0]
    imported = imported_gomp_symbols(first["core"])
    counted = set(first["entry_points"])
    print(f"python: {args.python}")
    print(first["pynn"])
    if imported is not None:
        missed = [s for s in imported if s not in counted]
        print(f"GOMP entry points pynn's core imports: {', '.join(imported) or 'none'}"
              + (f"; NOT COUNTED (not in gomp_count.c): {', '.join(missed)}" if missed else ""))
    for r in results:
        p = r["probe"]
        print(f"probe, threads {r['threads']}: one pynn.ops.dense_forward "
              f"({p['shape']}, n_threads={r['threads']}): {p['regions']} region(s), "
              f"{p['barriers']} barrier(s)")
        if r["outside_core"]:
            print(f"note, threads {r['threads']}: GOMP calls from outside pynn's core "
                  f"(not in the tables): {r['outside_core']}")
    train = [row for r in results for row in r["train"]]
    predict = [row for r in results for row in r["predict"]]
    print("\nTraining: per minibatch step of one fit call (max_iter=1, warm start; "
          "C calls: chunks of steps the core ran)\n")
    print(train_table(train))
    if predict:
        print(f"\nPrediction: per predict_proba call on {PREDICT_ROWS:,} rows "
              f"({'-'.join(map(str, PREDICT_CASE.units))})\n")
        print(predict_table(predict))
    if args.json:
        data = {"python": args.python, "pynn": first["pynn"], "openmp": first["openmp"],
                "dtype": args.dtype, "imported_gomp": imported,
                "runs": results}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
        print(f"\nwrote {args.json}")


# ---------------------------------------------------------------------------
# the child: pynn under the shim
# ---------------------------------------------------------------------------

class Counter:
    """The shim's counters through ctypes."""

    def __init__(self, path):
        import ctypes
        self.lib = lib = ctypes.CDLL(path)  # preloaded already: the same copy
        here = ctypes.cast(lib.GOMP_parallel, ctypes.c_void_p).value
        try:  # what a library's GOMP_parallel binds to: the shim's when it is preloaded
            bound = ctypes.cast(ctypes.CDLL(None).GOMP_parallel, ctypes.c_void_p).value
        except AttributeError:
            bound = None
        if here != bound:
            raise SystemExit(f"{path} is not preloaded "
                             f"(LD_PRELOAD={os.environ.get('LD_PRELOAD')!r})")
        lib.gomp_count_name.restype = ctypes.c_char_p
        lib.gomp_count_set_range.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
        n = lib.gomp_count_entries()
        self.names = [lib.gomp_count_name(i).decode() for i in range(n)]
        self.kinds = [KINDS[lib.gomp_count_kind(i)] for i in range(n)]
        self.buf = (ctypes.c_long * (4 * n))()
        self.core_barriers = None  # the core's own barrier count (set_range)

    def set_range(self, path):
        """Count as pynn's only the calls returning into the mapped file `path`."""
        import ctypes
        core = ctypes.CDLL(path)  # already loaded: the same copy
        self.core_barriers = getattr(core, "pynn_team_barriers", None)
        if self.core_barriers is not None:
            self.core_barriers.restype = ctypes.c_uint64
        lo, hi, real = None, None, os.path.realpath(path)
        with open("/proc/self/maps", encoding="utf-8") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) >= 6 and os.path.realpath(fields[5]) == real:
                    a, b = (int(x, 16) for x in fields[0].split("-"))
                    lo, hi = min(lo or a, a), max(hi or b, b)
        if lo is None:
            raise SystemExit(f"{path} is not mapped in this process")
        self.lib.gomp_count_set_range(lo, hi)

    def measure(self, fn):
        """Run fn() between a reset and a snapshot; the summary of what pynn's core
        called on the main thread, and {entry point: calls} from elsewhere."""
        own = self.core_barriers
        self.lib.gomp_count_reset()
        before = own() if own else 0
        fn()
        after = own() if own else 0
        self.lib.gomp_count_snapshot(self.buf, len(self.buf))
        c = list(self.buf)
        out = {"regions": 0, "barriers": 0, "other": 0, "serial_regions": 0,
               "entry_points": {}}
        outside = {}
        for i, (name, kind) in enumerate(zip(self.names, self.kinds)):
            core_main, everywhere = c[4 * i + (MAIN | IN_CORE)], sum(c[4 * i:4 * i + 4])
            core_all = c[4 * i + IN_CORE] + core_main
            out[KINDS_KEY[kind]] += core_main
            if kind != "serial" and core_all:
                out["entry_points"][name] = {"main": core_main, "all_threads": core_all}
            if kind != "serial" and everywhere - core_all:
                outside[name] = everywhere - core_all
        out["core_barriers"] = after - before
        out["barriers"] += after - before
        out["syncs"] = 2 * out["regions"] + out["barriers"]
        return out, outside


def child(spec):
    from timing import pin_and_limit
    threads = spec["threads"]
    pin_and_limit(threads)                 # before numpy loads, as bench/run.py does
    counter = Counter(spec["shim"])
    import warnings

    import numpy as np
    from peers.pynn_peer import describe, model_from
    from reference import initial_weights, make_data
    from pynn import _core, ops
    counter.set_range(_core.__file__)
    warnings.simplefilter("ignore")        # ConvergenceWarning of max_iter=1 and the like
    dtype, steps = spec["dtype"], spec["steps"]
    outside = {}

    def note(elsewhere):
        for k, v in elsewhere.items():
            outside[k] = outside.get(k, 0) + v

    # the probe: one product big enough for every thread (gemm: one region)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 784)).astype(dtype)
    W = rng.standard_normal((784, 1024)).astype(dtype)
    b = np.zeros(1024, dtype=dtype)
    ops.dense_forward(x, W, b, n_threads=threads)
    probe, elsewhere = counter.measure(lambda: ops.dense_forward(x, W, b, n_threads=threads))
    probe["shape"] = "512x784 @ 784x1024"
    note(elsewhere)

    chunks = []
    try:  # how many C calls (chunks of steps) a fit made, where pynn plans them
        from pynn._training import ChunkPlanner
        record = ChunkPlanner.record

        def counting_record(self, nt, n, elapsed):
            chunks.append(n)
            return record(self, nt, n, elapsed)
        ChunkPlanner.record = counting_record
    except (ImportError, AttributeError):
        chunks = None

    train = []
    for case in (c for c in CASES if c.name in spec["cases"]):
        n = steps * case.batch
        data = make_data(n, case.units[0], dtype, n_classes=case.n_classes, nnz=case.nnz)
        m = model_from(case, initial_weights(case.units, dtype), dtype, threads)
        warm = min(n, 2 * case.batch)
        m.fit(data.X[:warm], data.y[:warm])
        if chunks is not None:
            chunks.clear()
        got, elsewhere = counter.measure(lambda: m.fit(data.X, data.y))
        note(elsewhere)
        if chunks is not None and sum(chunks) != steps:
            raise SystemExit(f"{case.name}: the fit ran {sum(chunks)} steps, not {steps}")
        got.update(case=case.name, threads=threads, steps=steps, batch=case.batch,
                   units=list(case.units), solver=case.solver,
                   chunks=len(chunks) if chunks is not None else None)
        train.append(got)

    predict = []
    if spec["predict_calls"]:
        case, calls = PREDICT_CASE, spec["predict_calls"]
        data = make_data(case.n, case.units[0], dtype)
        m = model_from(case, initial_weights(case.units, dtype), dtype, threads)
        m.predict_proba(data.X)
        got, elsewhere = counter.measure(
            lambda: [m.predict_proba(data.X) for _ in range(calls)])
        note(elsewhere)
        got.update(case=case.name, threads=threads, calls=calls, rows=case.n)
        predict.append(got)

    result = {"threads": threads, "pynn": describe(), "core": _core.__file__,
              "openmp": bool(_core.has_openmp()), "entry_points": counter.names[:-1],
              "probe": probe, "train": train, "predict": predict, "outside_core": outside}
    print(MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
