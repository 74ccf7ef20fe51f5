#!/usr/bin/env python
"""The matrix products of one training step, each timed alone: pynn's kernel
against numpy's matmul (OpenBLAS) of the same shapes and transposes, one thread.

    python bench/products.py                         # mnist-like and wide, float32 and float64
    python bench/products.py --dtype float64 --cases wide --json products.json
    python bench/products.py --cases mnist-like --batch 20000
        # the products of a full-batch gradient of 20,000 rows (what each L-BFGS
        # evaluation runs), instead of a minibatch step's
    PYNN_SIMD=amx python bench/products.py --dtype bfloat16   # the mixed-precision mode
    PYNN_SIMD=avx2 OPENBLAS_CORETYPE=Haswell python bench/products.py
        # on an AVX-512 CPU: pynn's AVX2 kernels against OpenBLAS's AVX2 ones (the
        # like-for-like comparison of that path; the numpy line names the kernels)

Per layer l (n_in -> n_out, batch B) a step runs
  forward   x @ W          (B x n_in) @ (n_in x n_out), + bias (and relu below the output)
  wgrad     x^T @ delta    (n_in x B) @ (B x n_out),    / B (+ the L2 term)
  igrad     delta @ W^T    (B x n_out) @ (n_out x n_in), * relu'(x)   (layers > 0 only)
pynn's product runs exactly as in training (dense.c's strides and epilogues, the
packing rooms of the training workspace: A's, and B's whole for products of
more than 256 rows) through a private timing hook that calls
the C kernel `number` times in a row; numpy runs np.matmul(a, b, out=c) with
transposed views, which OpenBLAS takes without copying.  Both are best-of-R,
measured in turns so that slow phases of the machine hit both, on the thread's
CPU clock by default (a shared machine's other processes then cost less noise).

numpy's time includes its Python call (about a microsecond, measured on a 1 x 1
product and reported); "ratio" compares pynn against numpy less that cost, which
is the stricter comparison of the two kernels ("raw": numpy as called).
ratio = numpy time / pynn time: above 1, pynn is faster.
"""
# standard library only before pin_and_limit(): thread settings must precede numpy
import argparse
import dataclasses
import json
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
# The source tree's ./pynn has no compiled core: always use the installed pynn.
sys.path[:] = [p for p in sys.path
               if os.path.normcase(os.path.abspath(p or os.curdir))
               != os.path.normcase(_REPO_ROOT)]
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from cases import CASES  # noqa: E402
from timing import pin_and_limit  # noqa: E402

DEFAULT_CASES = ["mnist-like", "wide"]
TRAINING = {c.name: c for c in CASES if not c.predict and not c.sparse}
# pynn's activation codes (pynn.h)
ACT_IDENTITY, ACT_RELU = 0, 3


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES, choices=sorted(TRAINING))
    ap.add_argument("--dtype", nargs="+", default=["float32", "float64"],
                    choices=["float32", "float64", "bfloat16"],
                    help="bfloat16: the mixed-precision mode's products (float32 data and "
                         "sums, bfloat16 operands) against numpy's float32 matmul")
    ap.add_argument("--batch", type=int, default=None,
                    help="rows per step instead of the case's batch (a full-batch "
                         "gradient: the data set's rows)")
    ap.add_argument("--repeats", type=int, default=15, help="timings per product, best kept")
    ap.add_argument("--target-ms", type=float, default=4.0,
                    help="length of one timing (calls per timing chosen to fill it)")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="cpu (default): the thread's CPU time, which leaves out the "
                         "time another process held the core; wall: elapsed time")
    ap.add_argument("--quick", action="store_true", help="3 repeats of ~1 ms (smoke run)")
    ap.add_argument("--json", metavar="FILE", default=None, help="also write the results")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.target_ms = 3, 1.0
    if args.repeats < 1 or args.target_ms <= 0:
        ap.error("--repeats must be >= 1 and --target-ms > 0")
    if args.batch is not None and args.batch < 1:
        ap.error("--batch must be >= 1")
    return args


def apack_len(case):
    """Scalars of packing room to give the products.  The training workspace
    (csrc/layout.c) always has room for every product the kernel decides to
    pack, and the decision needs nothing more than enough room: a room larger
    than any product's packed A gives the same decisions as training."""
    rows = max(case.units) + 64
    return rows * max(case.units)


def bwhole_len(m, k, n):
    """Scalars of room to pack a product's B (k x n) whole, as the training
    workspace gives it (csrc/layout.c) to products of more than 256 rows (m):
    weight gradients of layers of more than 256 inputs (B = delta), forward
    products and input gradients of batches of more than 256 rows (B = W, W^T):
    n rounded up to 32 columns times k, and 16 to align; 0: none."""
    return (n + 31) // 32 * 32 * k + 16 if m > 256 else 0


def products(case):
    """[(layer, kind, name, m, k, n)] of one training step, in the order a step runs them."""
    out = []
    layers = case.layers
    B = case.batch
    for l, (i, o) in enumerate(layers):
        out.append((l, "forward", f"L{l + 1} x@W", B, i, o))
    for l in reversed(range(len(layers))):
        i, o = layers[l]
        out.append((l, "wgrad", f"L{l + 1} x^T@d", i, B, o))
        if l > 0:
            out.append((l, "igrad", f"L{l + 1} d@W^T", B, o, i))
    return out


def _calls_for(fn, target_s):
    """Calls per timing so that one timing lasts about target_s."""
    n = 1
    while True:
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        if dt >= target_s / 4 or n >= 1 << 20:
            return max(1, int(n * target_s / max(dt, 1e-9)))
        n *= 4


def numpy_overhead(np, dtype, repeats, clock):
    """Seconds numpy's matmul(a, b, out=c) costs beyond the arithmetic (1 x 1 product)."""
    a = np.ones((1, 1), dtype)
    c = np.empty((1, 1), dtype)
    mm = np.matmul
    best = float("inf")
    for _ in range(max(repeats, 5)):
        t0 = clock()
        for _ in range(10_000):
            mm(a, a, out=c)
        best = min(best, (clock() - t0) / 10_000)
    return best


def bf16_round(np, a):
    """a (float32) rounded to the nearest bfloat16, ties to even (finite values)."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32).reshape(np.shape(a))


def time_product(np, core, kind, m, k, n, dtype, relu, room, repeats, target_s, rng,
                 cpu_time=True, bf16=False):
    """(pynn seconds, numpy seconds) per call, best of `repeats`, round-robin;
    bf16: pynn runs the mixed-precision product, checked against numpy's on
    rounded operands, and timed against numpy's float32 one."""
    mm = np.matmul
    extra = {}
    if kind == "forward":
        x = rng.standard_normal((m, k)).astype(dtype)
        W = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
        b = rng.standard_normal(n).astype(dtype)
        c = np.empty((m, n), dtype)
        args = (0, c, x, W, b, room, ACT_RELU if relu else ACT_IDENTITY, 0.0)
        npa, npb = x, W
    elif kind == "wgrad":  # m = n_in, k = batch, n = n_out
        x = rng.standard_normal((k, m)).astype(dtype)
        d = rng.standard_normal((k, n)).astype(dtype)
        W = rng.standard_normal((m, n)).astype(dtype)
        c = np.empty((m, n), dtype)
        args = (1, c, x, d, W.ravel(), room, 0, 0.0)
        npa, npb = x.T, d
    else:  # igrad: m = batch, k = n_out, n = n_in
        d = rng.standard_normal((m, k)).astype(dtype)
        W = rng.standard_normal((n, k)).astype(dtype)
        xin = np.maximum(rng.standard_normal((m, n)), 0).astype(dtype)
        c = np.empty((m, n), dtype)
        args = (2, c, d, W, xin.ravel(), room, ACT_RELU, 0.0)
        npa, npb = d, W.T
    cn = np.empty((m, n), dtype)
    if bwhole_len(m, k, n) and not bf16:
        extra = {"bwhole": np.empty(bwhole_len(m, k, n), dtype)}

    clock = time.thread_time if cpu_time else time.perf_counter

    def run_pynn(calls):
        return core._product_time(*args, calls, 1, 1, cpu_time, bf16, **extra)

    def run_numpy(calls):
        t0 = clock()
        for _ in range(calls):
            mm(npa, npb, out=cn)
        return (clock() - t0) / calls

    run_pynn(1)
    run_numpy(1)
    # the product itself is right (tolerance: the epilogue aside, same math)
    ref = mm(bf16_round(np, npa), bf16_round(np, npb)) if bf16 else mm(npa, npb)
    got = c.copy()
    if kind == "forward":
        ref = ref + b
        if relu:
            ref = np.maximum(ref, 0)
    elif kind == "wgrad":
        got = got * k  # the epilogue's scale 1/batch (no L2 term here)
    else:
        ref = np.where(xin > 0, ref, 0)
    tol = 1e-3 if dtype == np.float32 else 1e-10
    err = float(np.max(np.abs(got - ref)) / (np.max(np.abs(ref)) + 1e-30))
    if not err < tol:
        sys.exit(f"{kind} {m}x{k}x{n} {np.dtype(dtype).name}: pynn differs from numpy "
                 f"(max rel err {err:.2e})")
    cp = _calls_for(lambda c_: run_pynn(c_), target_s)
    cnp = _calls_for(lambda c_: run_numpy(c_), target_s)
    tp = tn = float("inf")
    for _ in range(repeats):
        tp = min(tp, run_pynn(cp))
        tn = min(tn, run_numpy(cnp))
    return tp, tn


def measure(case, dtype_name, repeats, target_s, cpu_time=True):
    import numpy as np
    import pynn
    from pynn import _core
    bf16 = dtype_name == "bfloat16"
    dtype = np.float32 if bf16 else np.dtype(dtype_name).type
    rng = np.random.default_rng(0)
    room = np.empty(apack_len(case), dtype)
    overhead = numpy_overhead(np, dtype, repeats,
                              time.thread_time if cpu_time else time.perf_counter)
    nlayers = len(case.layers)
    rows = []
    for l, kind, name, m, k, n in products(case):
        relu = kind == "forward" and l + 1 < nlayers
        tp, tn = time_product(np, _core, kind, m, k, n, dtype, relu, room, repeats,
                              target_s, rng, cpu_time, bf16)
        flop = 2.0 * m * k * n
        tn_k = max(tn - overhead, 1e-12)
        rows.append(dict(layer=l + 1, kind=kind, name=name, m=m, k=k, n=n, flop=flop,
                         pynn_s=tp, numpy_s=tn, numpy_kernel_s=tn_k,
                         pynn_gflops=flop / tp / 1e9, numpy_gflops=flop / tn_k / 1e9,
                         ratio=tn_k / tp, ratio_raw=tn / tp))
    tot_p = sum(r["pynn_s"] for r in rows)
    tot_n = sum(r["numpy_kernel_s"] for r in rows)
    tot_raw = sum(r["numpy_s"] for r in rows)
    flop = sum(r["flop"] for r in rows)
    total = dict(pynn_s=tot_p, numpy_s=tot_raw, numpy_kernel_s=tot_n, flop=flop,
                 pynn_gflops=flop / tot_p / 1e9, numpy_gflops=flop / tot_n / 1e9,
                 ratio=tot_n / tot_p, ratio_raw=tot_raw / tot_p)
    return dict(case=case.name, units=list(case.units), batch=case.batch, dtype=dtype_name,
                simd=pynn.simd_path(),
                numpy_call_overhead_s=overhead, products=rows, total=total)


def markdown(res):
    net = "-".join(map(str, res["units"]))
    lines = [f"#### {res['case']}: {net}, batch {res['batch']}, {res['dtype']}", "",
             "| product | m x k x n | pynn µs | numpy µs | pynn GFLOP/s | numpy GFLOP/s "
             "| ratio | raw |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["products"]:
        lines.append(f"| {r['name']} | {r['m']}x{r['k']}x{r['n']} | {r['pynn_s'] * 1e6:.1f} "
                     f"| {r['numpy_s'] * 1e6:.1f} | {r['pynn_gflops']:.1f} "
                     f"| {r['numpy_gflops']:.1f} | {r['ratio']:.3f} | {r['ratio_raw']:.3f} |")
    t = res["total"]
    lines.append(f"| **step total** | | {t['pynn_s'] * 1e6:.1f} | {t['numpy_s'] * 1e6:.1f} "
                 f"| {t['pynn_gflops']:.1f} | {t['numpy_gflops']:.1f} "
                 f"| **{t['ratio']:.3f}** | {t['ratio_raw']:.3f} |")
    lines += ["", f"- numpy's call overhead {res['numpy_call_overhead_s'] * 1e6:.2f} µs "
              "(removed in 'ratio' and numpy GFLOP/s; 'raw' keeps it)", ""]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    cores = pin_and_limit(1)
    import numpy as np
    import pynn
    info = ""
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{d.get('internal_api')} {d.get('version')} ({d.get('architecture')}, "
                f"{d.get('num_threads')} thread(s))"
                for d in threadpool_info() if d.get("user_api") == "blas"]
        info = ", ".join(blas)
    except ImportError:
        pass
    print(f"### Products of one training step, 1 thread, pinned to core(s) {cores}\n")
    print(f"- pynn {pynn.__version__} ({os.path.dirname(pynn.__file__)}), SIMD path {pynn.simd_path()}")
    print(f"- numpy {np.__version__}" + (f", {info}" if info else ""))
    print(f"- best of {args.repeats} timings of ~{args.target_ms:g} ms each ({args.clock} "
          "clock), pynn and numpy in turns; ratio = numpy time / pynn time\n")
    results = []
    for dt in args.dtype:
        for name in args.cases:
            case = TRAINING[name]
            if args.batch is not None:
                case = dataclasses.replace(case, batch=args.batch)
            res = measure(case, dt, args.repeats, args.target_ms / 1e3, args.clock == "cpu")
            results.append(res)
            print(markdown(res), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(dict(cores=cores, clock=args.clock, results=results), fh, indent=1)
    return results


if __name__ == "__main__":
    main()
