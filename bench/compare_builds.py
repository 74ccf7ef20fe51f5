#!/usr/bin/env python
"""Compare pynn's speed in two installations, interleaved so drift hits both.

    python bench/compare_builds.py --before venvA/bin/python --after venvB/bin/python
    python bench/compare_builds.py --before A --after B --cases small wide --rounds 7

Each interpreter imports its own installed pynn.  For every round and case, a
fresh subprocess of each runs `bench/run.py --peers pynn --cases CASE` (with
pynn's check against the numpy reference before timing), the order alternating
between rounds (before, after / after, before ...).  The subprocesses run in an
empty temporary directory without PYTHONPATH, so a source checkout's pynn/ is
not picked up.  Printed per case: the median samples/s of each, after/before of
the medians, each side's spread across rounds (half the max-min range over the
median), and the range of the per-round after/before ratios; "within noise"
when that range includes 1.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "run.py")
sys.path.insert(0, HERE)
from cases import CASE_NAMES  # noqa: E402

# the pynn row of run.py's table: tool, samples/s, GFLOP/s, % of peak, speedup
ROW = re.compile(r"^pynn\s+([\d,]+)\s+[\d.]+\s+\d+%\s+[\d.]+x\s*$", re.M)
VERSION = re.compile(r"^pynn \d\S* \(.*$", re.M)


def interpreter(path):
    """An absolute path to the interpreter (not resolved: a venv's python is a link)."""
    found = path if os.sep in path else shutil.which(path)
    if not found or not os.access(found, os.X_OK):
        sys.exit(f"not an executable interpreter: {path}")
    return os.path.abspath(found)


def measure(python, case, args, cwd, env):
    """One fresh run of run.py for pynn on `case`: (samples/s, pynn's version
    line, whether run.py warned that the machine was busy)."""
    cmd = [python, RUN, "--peers", "pynn", "--cases", case, "--dtype", args.dtype,
           "--threads", str(args.threads), "--repeats", str(args.repeats)]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--simd", args.simd] if args.simd else []
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    row, version = ROW.search(proc.stdout), VERSION.search(proc.stdout)
    if proc.returncode != 0 or not row:
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n"
                 f"{proc.stdout}\n{proc.stderr}")
    return (float(row.group(1).replace(",", "")), version.group(0) if version else "?",
            "WARNING: the GEMM rate moved" in proc.stdout)


def interleave(sides, args):
    """args.rounds runs of each case on each side, alternating the order.
    Returns ({case: {side: [samples/s per round]}}, {side: pynn version lines},
    {side: runs where run.py saw a busy machine})."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    results = {case: {"before": [], "after": []} for case in args.cases}
    versions, busy = {"before": set(), "after": set()}, {"before": 0, "after": 0}
    with tempfile.TemporaryDirectory(prefix="pynn-compare-") as cwd:
        for r in range(args.rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for case in args.cases:
                for side in order:
                    speed, version, warned = measure(sides[side], case, args, cwd, env)
                    results[case][side].append(speed)
                    versions[side].add(version)
                    busy[side] += warned
                print(f"round {r + 1}/{args.rounds} {case}: " + ", ".join(
                    f"{side} {results[case][side][-1]:,.0f}" for side in order),
                    file=sys.stderr, flush=True)
    return results, versions, busy


def spread(values):
    return (max(values) - min(values)) / 2 / statistics.median(values)


def report(results, cases):
    header = ["case", "before samples/s", "spread", "after samples/s", "spread",
              "after/before", "per-round ratios", ""]
    body = []
    for case in cases:
        before, after = results[case]["before"], results[case]["after"]
        ratios = [a / b for a, b in zip(after, before)]
        verdict = ("within noise" if min(ratios) <= 1 <= max(ratios)
                   else "after faster" if min(ratios) > 1 else "after slower")
        body.append([case, f"{statistics.median(before):,.0f}", f"±{100 * spread(before):.1f}%",
                     f"{statistics.median(after):,.0f}", f"±{100 * spread(after):.1f}%",
                     f"{statistics.median(after) / statistics.median(before):.3f}",
                     f"{min(ratios):.3f} .. {max(ratios):.3f}", verdict])
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    for row in [header] + body:
        print("  ".join(c.ljust(w) if i in (0, 7) else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="python of the first installation")
    ap.add_argument("--after", required=True, help="python of the second installation")
    ap.add_argument("--cases", nargs="+", choices=CASE_NAMES, default=CASE_NAMES,
                    metavar="CASE", help=f"subset of {', '.join(CASE_NAMES)} (default all)")
    ap.add_argument("--rounds", type=int, default=5, help="runs of each case per side")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="run.py's --repeats")
    ap.add_argument("--quick", action="store_true", help="run.py's --quick epochs")
    ap.add_argument("--simd", default=None, help="run.py's --simd")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    sides = {"before": interpreter(args.before), "after": interpreter(args.after)}
    results, versions, busy = interleave(sides, args)
    for side in ("before", "after"):
        print(f"{side}: {sides[side]}")
        for v in sorted(versions[side]):
            print(f"  {v}")
    print(f"{args.rounds} rounds per case, order alternating; {args.dtype}, "
          f"{args.threads} thread(s), run.py --repeats {args.repeats}"
          f"{', --quick' if args.quick else ''}{f', --simd {args.simd}' if args.simd else ''}")
    if busy["before"] or busy["after"]:
        print(f"WARNING: run.py saw the GEMM rate move (a busy machine) in "
              f"{busy['before']} before and {busy['after']} after runs")
    print()
    report(results, args.cases)
    print(f"(all {args.rounds} per-round ratios on one side of 1 happens by chance with "
          f"probability {2 * 0.5 ** args.rounds:.2g} when the builds are equally fast)")


if __name__ == "__main__":
    main()
