"""Pinning and thread limits, the timing of a task, and numpy's GEMM rate.

Standard library only at import: pin_and_limit() must run before numpy, torch
or JAX load (gemm_peak imports numpy when it is called).
"""
import gc
import os
import sys
import time

TIME_BUDGET_S = 3.0  # stop repeating a measurement once its runs took this long
# ... and go on past its R runs while they took less than this, up to MAX_RUNS:
# a short task (a predict of 10,000 rows takes 15-60 ms) is then the best of many
# runs, not of three, on a shared host where one run in a few is slowed down.
# The same rule for every tool.
MIN_TOTAL_S = 1.0
MAX_RUNS = 20
# Each tool's runs of a case are spread over this many rounds, the tools taking
# turns within a round (in reverse order every other round): a slow phase of a
# shared host then slows a run of every tool of the case, not whichever tool
# was being timed (the tools used to be timed one after another, pynn a minute
# before JAX).  The budgets above hold for a tool's runs over all rounds.
ROUNDS = 3


def core_of(cpu):
    """(package, core) of a logical CPU from sysfs, or None where it cannot be read."""
    base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
    try:
        with open(base + "physical_package_id") as fh:
            pkg = int(fh.read())
        with open(base + "core_id") as fh:
            return pkg, int(fh.read())
    except (OSError, ValueError):
        return None


def physical_first(cpus, core_of=core_of):
    """The logical CPUs `cpus` ordered so that every physical core's first hardware
    thread comes before any core's second (then third...), each group in CPU order.
    A CPU whose core is unknown counts as a core of its own."""
    seen, ranked = {}, []
    for cpu in sorted(cpus):
        key = core_of(cpu)
        key = ("cpu", cpu) if key is None else key
        rank = seen.get(key, 0)
        seen[key] = rank + 1
        ranked.append((rank, cpu))
    return [cpu for _, cpu in sorted(ranked)]


def pin_and_limit(threads):
    """Pin this process to `threads` cores and tell every library to use that
    many threads.  Returns the sorted list of cores."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if allowed:
        if threads > len(allowed):
            sys.exit(f"--threads {threads}: this process may only run on {len(allowed)} "
                     f"core(s) {allowed}")
        # one thread: the last allowed core, usually the quietest (core 0 takes
        # most interrupts); several: the first ones, one per physical core before
        # any core's second hardware thread (on a machine whose logical CPUs 0 and 1
        # are one core's two threads, "the first four" would be two cores)
        cores = allowed[-1:] if threads == 1 else sorted(
            physical_first(allowed, core_of)[:threads])
        os.sched_setaffinity(0, cores)
    else:
        cores = []
    n = str(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n
    eigen = "false" if threads == 1 else "true"
    os.environ["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={eigen} "
                               f"intra_op_parallelism_threads={threads}")
    # every tool on the CPU: a JAX with a GPU plugin would otherwise use the GPU
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    return cores


def _clock():
    """The timer of every measurement (a function of its own, which the tests
    replace)."""
    return time.perf_counter()


def best_time(fn, repeats, budget=TIME_BUDGET_S, min_total=MIN_TOTAL_S, max_runs=MAX_RUNS):
    """Best wall time of `repeats` calls of fn(), or more while the calls took
    less than `min_total` seconds in all (at most `max_runs`, and never fewer
    than `repeats` for that); stops early once the calls took `budget` seconds.
    Returns (seconds, calls made)."""
    best, calls, _ = _best_time(fn, repeats, budget, min_total, max_runs)
    return best, calls


def _best_time(fn, repeats, budget, min_total, max_runs):
    """best_time, and the calls' total time as a third value."""
    times = []
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while True:
            t0 = _clock()
            fn()
            times.append(_clock() - t0)
            total = sum(times)
            if total >= budget:
                break
            if len(times) >= repeats and (total >= min_total
                                          or len(times) >= max(repeats, max_runs)):
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return min(times), len(times), sum(times)


def warmed_task(case, task, n):
    """Warm up (JIT compilation, caches, first-call costs); returns the call to
    time.

    Training warms up on the first tenth of the epoch (at least two batches),
    with the same batch shape as the timed epochs."""
    if case.predict:
        task()
        return task
    warm = min(n, max(2 * case.batch, (n // 10) // case.batch * case.batch))
    task(warm)
    return lambda: task(n)


def time_in_rounds(fns, repeats, rounds=ROUNDS, budget=TIME_BUDGET_S, min_total=MIN_TOTAL_S,
                   max_runs=MAX_RUNS, fatal=()):
    """Times the warmed calls fns ({name: fn}) in turns (see ROUNDS): in each
    round every tool makes ceil(repeats / rounds) runs, or more while they took
    under min_total / rounds seconds (at most ceil(max_runs / rounds)), until
    its runs took `budget` seconds in all.  Returns {name: (best seconds, runs,
    None)}, or (None, runs, exception) for a tool whose call raised (it takes
    no further turns); the exception of a tool named in `fatal` is raised at
    once."""
    names = list(fns)
    share = max(1, -(-repeats // rounds))
    best = {k: float("inf") for k in names}
    runs = dict.fromkeys(names, 0)
    spent = dict.fromkeys(names, 0.0)
    failed = {}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            if name in failed or spent[name] >= budget:
                continue
            try:
                secs, calls, total = _best_time(fns[name], share, budget - spent[name],
                                                min_total / rounds,
                                                max(1, -(-max_runs // rounds)))
            except Exception as exc:  # noqa: BLE001 -- the caller decides
                if name in fatal:
                    raise
                failed[name] = exc
                continue
            spent[name] += total
            best[name] = min(best[name], secs)
            runs[name] += calls
    return {k: (None, runs[k], failed[k]) if k in failed else (best[k], runs[k], None)
            for k in names}


def gemm_peak(m, k, n, dtype, seconds=0.2):
    """GFLOP/s of numpy's (m x k) @ (k x n) with the current thread settings."""
    import numpy as np
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    C = np.empty((m, n), dtype=dtype)
    np.matmul(A, B, out=C)
    reps, t = 1, 0.0
    while True:                      # calls per timing: about `seconds` / 3
        t0 = time.perf_counter()
        for _ in range(reps):
            np.matmul(A, B, out=C)
        t = time.perf_counter() - t0
        if t >= seconds / 3:
            break
        reps *= 2 if t == 0 else max(2, int(seconds / 3 / t) + 1)
    best, _ = best_time(lambda: [np.matmul(A, B, out=C) for _ in range(reps)], 3)
    return 2.0 * m * k * n * reps / best / 1e9
