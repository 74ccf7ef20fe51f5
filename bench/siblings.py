#!/usr/bin/env python
"""Which logical CPUs share a physical core, measured rather than read from sysfs.

    python bench/siblings.py                 # every CPU this process may use
    python bench/siblings.py --cpus 0-15 --seconds 0.5

A virtual machine may show its vCPUs as cores of one thread each while the host
runs two of them on the two hardware threads of one core.  Two threads on one
core share its FMA units: a kernel that alone keeps them busy runs at about half
speed beside a busy sibling, so a scaling run past the real core count measures
the sharing, not the code (the 16-vCPU device machine's prediction on 16 threads
stayed at 0.8x of JAX for no reason found in pynn).  This finds out.

One worker process per CPU, pinned to it, multiplies two 256 x 256 float32
matrices with numpy (one BLAS thread) for a fixed time and counts the products.
Three phases, every worker started at the same instant in each run:

1. alone: each CPU by itself (its rate is the reference);
2. pairs: the first CPU together with each other CPU in turn;
3. all: every CPU at once.

A CPU whose rate beside the first one drops under --shared (default 0.75) of its
rate alone, while the first one's drops too, shares the first CPU's core.  In
the "all" phase a median near 0.5 says the CPUs are half as many cores; near 1.0,
that each is a core of its own (or that the host's other tenants are idle).
Standard library and numpy only.
"""
import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time

SIZE = 256
START_DELAY_S = 0.3  # a run's workers start this long after the command is sent


def parse_cpus(text):
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]"""
    cpus = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return sorted(set(cpus))


def worker(cpu, conn):
    """Pinned to `cpu`: for each (start_time, seconds) received, wait for the
    start, multiply for `seconds`, send back products per second."""
    os.sched_setaffinity(0, [cpu])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import numpy as np
    rng = np.random.default_rng(cpu)
    a = rng.standard_normal((SIZE, SIZE)).astype(np.float32)
    c = np.empty_like(a)
    for _ in range(20):  # warm-up: caches, the clock's ramp
        np.matmul(a, a, out=c)
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        start, seconds = msg
        while time.perf_counter() < start:
            pass
        n, t0 = 0, time.perf_counter()
        end = t0 + seconds
        while True:
            np.matmul(a, a, out=c)
            n += 1
            t = time.perf_counter()
            if t >= end:
                break
        conn.send(n / (t - t0))


class Pool:
    """One pinned worker per CPU; run(cpus, seconds) times those CPUs together."""

    def __init__(self, cpus):
        ctx = mp.get_context("spawn")
        self.conns, self.procs = {}, []
        for cpu in cpus:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker, args=(cpu, child), daemon=True)
            p.start()
            self.conns[cpu] = parent
            self.procs.append(p)
        for conn in self.conns.values():
            if conn.recv() != "ready":
                raise RuntimeError("a worker did not start")

    def run(self, cpus, seconds):
        """Products per second of each CPU of `cpus`, all started at one instant
        (perf_counter is system-wide on Linux: CLOCK_MONOTONIC)."""
        start = time.perf_counter() + START_DELAY_S
        for cpu in cpus:
            self.conns[cpu].send((start, seconds))
        return {cpu: self.conns[cpu].recv() for cpu in cpus}

    def close(self):
        for conn in self.conns.values():
            conn.send(None)
        for p in self.procs:
            p.join(timeout=5)


def pair_verdicts(first, alone, pairs, shared=0.75):
    """For each other CPU j: (j, first's rate beside j over alone, j's rate
    beside first over alone, whether they share a core).  `pairs[j]` is the
    {cpu: rate} of the run of `first` and j together."""
    out = []
    for j, rates in pairs.items():
        r0 = rates[first] / alone[first]
        rj = rates[j] / alone[j]
        out.append((j, r0, rj, r0 < shared and rj < shared))
    return out


def summary(first, verdicts, all_ratios):
    """The lines that say what was found."""
    lines = []
    mates = [j for j, _, _, s in verdicts if s]
    if mates:
        lines.append(f"CPU {first} shares its core with CPU(s) {', '.join(map(str, mates))}: "
                     "each runs at "
                     + ", ".join(f"{min(r0, rj):.0%}" for j, r0, rj, s in verdicts if s)
                     + " of its speed alone when both are busy")
    elif verdicts:
        lines.append(f"no CPU slowed CPU {first} down: each of these CPUs has a core to "
                     "itself (as far as a pair of them can tell)")
    if all_ratios:
        med = statistics.median(all_ratios)
        n = len(all_ratios)
        guess = ("about half as many physical cores as CPUs" if med < 0.65 else
                 "one physical core per CPU" if med > 0.85 else
                 "partly shared cores, or a busy host")
        lines.append(f"all {n} CPUs at once: median {med:.0%} of their speed alone "
                     f"(min {min(all_ratios):.0%}, max {max(all_ratios):.0%}): {guess}")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpus", help="CPUs to test, e.g. 0-15 or 0,2,4 (default: all this "
                    "process may use)")
    ap.add_argument("--seconds", type=float, default=0.5, help="length of each timed run")
    ap.add_argument("--shared", type=float, default=0.75,
                    help="a pair both under this fraction of their speed alone shares a core")
    args = ap.parse_args(argv)
    allowed = sorted(os.sched_getaffinity(0))
    cpus = parse_cpus(args.cpus) if args.cpus else allowed
    bad = [c for c in cpus if c not in allowed]
    if bad or not cpus:
        sys.exit(f"--cpus: {bad or 'none'} not among the CPUs this process may use {allowed}")
    print(f"# CPUs {cpus}; {args.seconds} s per run; float32 {SIZE}x{SIZE} products, "
          "products/s (numpy, one BLAS thread per worker)")
    pool = Pool(cpus)
    try:
        alone = {}
        for cpu in cpus:
            alone.update(pool.run([cpu], args.seconds))
        first = cpus[0]
        pairs = {j: pool.run([first, j], args.seconds) for j in cpus[1:]}
        together = pool.run(cpus, args.seconds) if len(cpus) > 1 else {}
    finally:
        pool.close()
    verdicts = pair_verdicts(first, alone, pairs, args.shared)
    print()
    print(f"| CPU | alone | beside CPU {first}: CPU {first} | beside CPU {first}: this CPU "
          "| all at once | shares CPU " + str(first) + "'s core |")
    print("|---:|---:|---:|---:|---:|---|")
    by_cpu = {j: (r0, rj, s) for j, r0, rj, s in verdicts}
    all_ratios = [together[c] / alone[c] for c in together]
    for cpu in cpus:
        r0, rj, s = by_cpu.get(cpu, (None, None, None))
        cells = [f"{alone[cpu]:,.0f}",
                 "-" if r0 is None else f"{r0:.0%}",
                 "-" if rj is None else f"{rj:.0%}",
                 f"{together[cpu] / alone[cpu]:.0%}" if cpu in together else "-",
                 "-" if s is None else ("yes" if s else "no")]
        print(f"| {cpu} | " + " | ".join(cells) + " |")
    print()
    for line in summary(first, verdicts, all_ratios):
        print("- " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
