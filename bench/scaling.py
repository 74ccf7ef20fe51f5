"""Thread scaling in one command: bench/run.py once per thread count (each in its own
process, pinned to that many cores, every tool told to use that many threads), then
one table per case: each tool's samples/s at every thread count, its speedup over its
own one-thread figure, and pynn's ratio to each peer at each count.

    python bench/scaling.py --threads 1 4 8 16 --cases mnist-like wide --peers pynn torch jax

Other options (--cases, --peers, --dtype, --quick, --repeats, --simd) go to run.py as
they are. Thread counts above the cores this process may run on are refused by run.py.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def default_threads():
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts, t = [], 1
    while t < n:
        counts.append(t)
        t *= 2
    return counts + [n]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="thread counts (default: 1, 2, 4, ... and all the cores allowed)")
    args, rest = ap.parse_known_args(argv)
    args.threads = sorted(set(args.threads or default_threads()))
    if args.threads[0] < 1:
        ap.error("--threads must be >= 1")
    return args, rest


def run_all(threads, rest):
    """{threads: run.py's JSON} for every count; the machine lines print once."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in threads:
            path = os.path.join(tmp, f"t{t}.json")
            print(f"\n######## {t} thread(s)", flush=True)
            proc = subprocess.run([sys.executable, os.path.join(HERE, "run.py"),
                                   "--threads", str(t), "--json", path, *rest])
            if proc.returncode != 0:
                sys.exit(f"bench/run.py --threads {t} failed (exit {proc.returncode})")
            with open(path, encoding="utf-8") as fh:
                out[t] = json.load(fh)
    return out


def fmt(x):
    return "-" if x is None else f"{x:,.0f}"


def scaling_tables(results):
    """The text of one table per case from {threads: run.py JSON}."""
    threads = sorted(results)
    first = results[threads[0]]
    lines = [f"\n==== scaling, {first['dtype']}; samples/s (speedup over the tool's own "
             f"{threads[0]}-thread figure)"]
    for ci, case in enumerate(first["cases"]):
        lines.append(f"\n== {case['name']}")
        header = ["tool"] + [f"{t} thr" for t in threads]
        table = [header]
        speeds = {}
        for ri, row in enumerate(case["rows"]):
            tool = row["tool"]
            cells = [tool]
            for t in threads:
                v = results[t]["cases"][ci]["rows"][ri]["samples_per_s"]
                speeds[tool, t] = v
                base = speeds.get((tool, threads[0]))
                cells.append(fmt(v) if v is None or base is None or t == threads[0]
                             else f"{fmt(v)} ({v / base:.2f}x)")
            table.append(cells)
        for tool in [r["tool"] for r in case["rows"] if r["tool"] != "pynn"]:
            cells = [f"pynn/{tool}"]
            for t in threads:
                a, b = speeds.get(("pynn", t)), speeds.get((tool, t))
                cells.append("-" if not a or not b else f"{a / b:.2f}x")
            table.append(cells)
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for r in table:
            lines.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                                   for i, c in enumerate(r)))
    return "\n".join(lines)


def main(argv=None):
    args, rest = parse_args(argv)
    results = run_all(args.threads, rest)
    print(scaling_tables(results))


if __name__ == "__main__":
    main()
