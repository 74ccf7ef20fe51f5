#!/usr/bin/env python
"""Training and prediction throughput of pynn against other CPU MLP trainers.

    python bench/run.py                      # every case, every installed peer, 1 thread
    python bench/run.py --quick              # a smoke run of well under 20 s
    python bench/run.py --threads 2 --cases wide predict --peers pynn torch
    python bench/run.py --dtype bfloat16     # pynn's bfloat16 mode against PyTorch's

Every tool does the same work on the same data: one epoch of plain minibatch SGD
(lr 0.01, no momentum, no L2 penalty) of a ReLU MLP with a softmax +
cross-entropy output, batches in order, or a forward pass over 10k rows.
See bench/README.md for what is measured and how FLOPs are counted.

The pieces: cases.py (what is timed), peers/ (one module per tool), reference.py
(the numpy reference and the check before timing), timing.py, report.py.
"""
# Nothing but the standard library (and the standard-library-only modules cases,
# peers and timing) may be imported before pin_and_limit(): the thread settings
# must be in place before numpy, torch or jax load.
import argparse
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
# The source tree's ./pynn has no compiled core: always use the installed pynn.
sys.path[:] = [p for p in sys.path
               if os.path.normcase(os.path.abspath(p or os.curdir))
               != os.path.normcase(_REPO_ROOT)]
if _HERE not in sys.path:  # imported rather than run as a script
    sys.path.insert(0, _HERE)

import peers  # noqa: E402
from cases import CASE_NAMES, CASES  # noqa: E402
from timing import (MIN_TOTAL_S, ROUNDS, TIME_BUDGET_S, gemm_peak, pin_and_limit,  # noqa: E402
                    time_in_rounds, warmed_task)

PEER_NAMES = list(peers.PEERS)
DTYPES = ["float32", "float64", "bfloat16"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"small epochs, one timed run, peers {', '.join(peers.QUICK_PEERS)}")
    ap.add_argument("--cases", nargs="+", choices=CASE_NAMES, default=None, metavar="CASE",
                    help=f"subset of {', '.join(CASE_NAMES)}")
    ap.add_argument("--peers", nargs="+", choices=PEER_NAMES, default=None, metavar="PEER",
                    help=f"subset of {', '.join(peers.FLOAT_PEERS)}; with --dtype bfloat16 "
                    f"of {', '.join(peers.BF16_PEERS)}")
    ap.add_argument("--dtype", choices=DTYPES, default="float32",
                    help="bfloat16: float32 weights, bfloat16 operands of the products")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for every tool; the process is pinned to this many cores")
    ap.add_argument("--simd", default=None, help="force pynn's SIMD path "
                    "(generic, avx2, avx512, avx512_bf16, amx)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed runs per measurement, best kept (default 3, 1 with --quick); "
                         "more while they took under 1 s in all (up to 20; not with --quick)")
    ap.add_argument("--markdown", metavar="FILE", default=None,
                    help="also write the results as Markdown to FILE")
    ap.add_argument("--json", metavar="FILE", default=None,
                    help="also write the results as JSON to FILE (bench/scaling.py reads it)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    args.cases = [c for c in CASES if c.name in (args.cases or CASE_NAMES)]
    valid = peers.peers_for(args.dtype)
    if args.peers is None:
        args.peers = peers.QUICK_PEERS if args.quick and args.dtype != "bfloat16" else valid
    else:
        wrong = [p for p in args.peers if p not in valid]
        if wrong:
            ap.error(f"--dtype {args.dtype} runs the peers {', '.join(valid)}, not "
                     f"{', '.join(wrong)}" + (" (no bfloat16 training on a CPU to time)"
                                              if args.dtype == "bfloat16" else ""))
        args.peers = [p for p in PEER_NAMES if p in args.peers]
    return args


ARGS = parse_args() if __name__ == "__main__" else None
CORES = pin_and_limit(ARGS.threads) if ARGS is not None else []

# numpy loads here, after the thread settings, on purpose
from reference import (RTOL, CheckFailed, array_dtype, check, initial_weights,  # noqa: E402
                       make_data)
from report import CaseResult, Row, case_title, machine_lines, table, write_markdown  # noqa: E402,E501


def load_peers(names, dtype, threads):
    """Import what each peer needs.  Returns ({name: Peer}, {name: version
    string}, {name: reason it is unavailable})."""
    loaded, versions, missing = {}, {}, {}
    for name in names:
        try:
            peer = peers.get(name)
            versions[name] = peer.load(dtype, threads)
            loaded[name] = peer
        except Exception as exc:  # a peer that cannot load is skipped, not fatal
            missing[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return loaded, versions, missing


def prepare_peer(peer, s, n, note=""):
    """The table row of `peer` on the setup `s` (n samples) and its warmed call
    to time (None where preparing it failed: noted in the row, except for
    pynn, whose failure is raised)."""
    row = Row(peer.name, note=note)
    make = peer.predict if s.case.predict else peer.train
    try:
        return row, warmed_task(s.case, make(s), n)
    except Exception as exc:
        if peer.name == "pynn":
            raise
        fail_row(row, exc)
        return row, None


def fail_row(row, exc):
    row.note = "; ".join(filter(None, [
        row.note, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"]))
    print(f"  {row.tool}: {row.note}", flush=True)


def finish_row(row, s, n, secs, runs, repeats):
    row.runs = runs
    row.samples_per_s = n / secs
    row.gflops = row.samples_per_s * s.case.flops_per_sample() / 1e9
    if runs < repeats:
        row.note = "; ".join(filter(None, [
            row.note, f"best of {runs} (epoch over {TIME_BUDGET_S:g} s budget)"]))


def check_peer(peer, case, dtype, threads):
    """Check the peer against the numpy reference (reference.check), print the
    outcome; returns a note for its row ("" if none).  A failed check raises
    CheckFailed, except for a peer whose check is not enforced."""
    computes_in = peer.computes_in(dtype)
    try:
        errs = check(peer, case, computes_in, threads)
    except NotImplementedError:
        return ""   # the case is not one this peer runs: its timing says so
    except CheckFailed as exc:
        if peer.check_enforced:
            raise
        print(f"check: {exc} (reported, not enforced)", flush=True)
        return f"check: {str(exc).split(': ', 1)[1]}"
    if computes_in == "bfloat16":
        rtol = (peer.check_rtol or {}).get("bfloat16", RTOL["bfloat16"])
        err = f"{errs['bfloat16']:.3g} of what bfloat16 rounding moves"
        if peer.check_enforced:
            print(f"check: {peer.name} matches the bfloat16 numpy reference (error {err}, "
                  f"at most {rtol:g})", flush=True)
        else:
            print(f"check: {peer.name} against the bfloat16 numpy reference: error {err} "
                  f"(reported; its bound {rtol:g})", flush=True)
    else:
        print(f"check: {peer.name} matches numpy reference (max rel err "
              + ", ".join(f"{e:.1e} in {d}" for d, e in errs.items()) + ")", flush=True)
    return ""


def run_case(case, args, loaded, missing):
    n = case.n_quick if args.quick else case.n
    adt = array_dtype(args.dtype)       # float32 data and weights in a bfloat16 run
    data = make_data(n, case.units[0], adt, n_classes=case.n_classes, nnz=case.nnz)
    s = peers.Setup(case, data, initial_weights(case.units, adt), args.dtype, args.threads)
    gemm = case.gemm_shape(n)
    result = CaseResult(case, n, gemm_peak(*gemm, adt), gemm)  # numpy has no bfloat16
    name, description = case_title(result, args.dtype)
    print(f"\n== {name}: {description}", flush=True)
    fns = {}
    for name in args.peers:
        if name in missing:
            result.rows.append(Row(name, note=f"unavailable ({missing[name]})"))
            continue
        peer = loaded[name]
        note = check_peer(peer, case, args.dtype, args.threads) if peer.check_result else ""
        row, fn = prepare_peer(peer, s, n, note)
        result.rows.append(row)
        if fn is not None:
            fns[name] = fn
    # every tool checked and warmed up first, then timed in turns (timing.ROUNDS)
    timed = time_in_rounds(fns, args.repeats, rounds=1 if args.quick else ROUNDS,
                           min_total=0.0 if args.quick else MIN_TOTAL_S, fatal=("pynn",))
    for row in result.rows:
        if row.tool not in timed:
            continue
        secs, runs, exc = timed[row.tool]
        if exc is not None:
            fail_row(row, exc)
        else:
            finish_row(row, s, n, secs, runs, args.repeats)
    # other work on these cores shows as a GEMM rate that moved during the case
    after = gemm_peak(*gemm, adt)
    if not 0.8 < after / result.peak < 1.25:
        result.warning = (f"WARNING: the GEMM rate moved from {result.peak:.1f} to "
                          f"{after:.1f} GFLOP/s during this case: the machine was busy, "
                          f"timings are unreliable")
        print(result.warning, flush=True)
    return result


def write_json(path, machine, results, args):
    """The results as plain data: the machine lines, the settings, and per case
    each tool's samples/s (None where it failed or was unavailable)."""
    import json
    data = {"machine": machine, "threads": args.threads, "dtype": args.dtype,
            "gemm_peak_dtype": array_dtype(args.dtype),
            "cases": [{"name": r.case.name, "n": r.n, "gemm_peak": r.peak,
                       "rows": [{"tool": row.tool, "samples_per_s": row.samples_per_s,
                                 "note": row.note} for row in r.rows]} for r in results]}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)


def main(args):
    t_start = time.perf_counter()
    loaded, versions, missing = load_peers(args.peers, args.dtype, args.threads)
    if "pynn" in args.peers and "pynn" in missing:
        sys.exit(f"pynn could not be loaded: {missing['pynn']}\n"
                 f"install it first: pip install --no-build-isolation .")
    if args.simd and "pynn" in versions:
        from peers.pynn_peer import force_simd
        try:
            versions["pynn"] = force_simd(args.simd)
        except ValueError as exc:
            sys.exit(f"--simd {args.simd}: {exc}")
    machine = machine_lines(args, CORES, versions, missing)
    print("\n".join(machine), flush=True)

    results = []
    for case in args.cases:
        results.append(run_case(case, args, loaded, missing))
        print(table(results[-1]), flush=True)
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s")
    if args.markdown:
        write_markdown(args.markdown, machine, results, args.dtype)
        print(f"wrote {args.markdown}")
    if args.json:
        write_json(args.json, machine, results, args)


if __name__ == "__main__":
    try:
        main(ARGS)
    except CheckFailed as exc:
        sys.exit(f"ABORT: correctness check failed, nothing more is timed: {exc}")
