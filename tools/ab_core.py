"""Compare two builds of pynn's compiled core in one process (a developer tool).

On a machine whose speed drifts by 10-20% within minutes (the KVM guests the
project is tuned on), timings of two builds taken minutes apart compare the
machine, not the builds.  This script loads both builds into one process and
times them in alternation, round by round, swapping which goes first every
round; run it twice with the builds swapped (the slot that runs second was seen
to gain ~1.5% whatever it held) and credit a change with the mean of the two.

    python tools/ab_core.py products A.so B.so [--dtype float64] [--net mnist-like]
    python tools/ab_core.py fit A.so B.so [--dtype float64] [--threads 1]
                                          [--layers 1024,1024] [--batch 256] [--steps 12]
    python tools/ab_core.py predict A.so B.so [--dtype float64] [--threads 1]

A.so, B.so: copies of an installed ``pynn/_core*.so`` (build one, copy it
aside, build the other).  ``products`` times the wide net's five large
products through ``_core._product_time`` (one thread, the CPU clock);
``fit`` copies the package twice (each with its core) and times a fit's step;
``predict`` times predict_proba of 10,000 rows and checks that both builds give
the same bits.  B/A above 1: B is faster.
"""
import argparse
import importlib
import importlib.machinery
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

# (the name the package imports its core by, on this interpreter)
CORE_NAME = "_core" + importlib.machinery.EXTENSION_SUFFIXES[0]
PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pynn")


def _core_copies(paths, tmp):
    """Each build's _core as a module of its own (a copy of the file per build)."""
    mods = []
    for i, path in enumerate(paths):
        d = os.path.join(tmp, f"core{i}")
        os.makedirs(d)
        dst = os.path.join(d, CORE_NAME)
        shutil.copy(path, dst)
        spec = importlib.util.spec_from_file_location("_core", dst)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods


def _package_copies(paths, tmp):
    """The package twice, as pynn_0 and pynn_1, each with one build's core."""
    mods = []
    for i, path in enumerate(paths):
        root = os.path.join(tmp, f"pkg{i}")
        d = os.path.join(root, f"pynn_{i}")
        shutil.copytree(PKG, d, ignore=shutil.ignore_patterns("_core*.so", "_core*.pyd",
                                                              "__pycache__"))
        shutil.copy(path, os.path.join(d, CORE_NAME))
        sys.path.insert(0, root)
        mods.append(importlib.import_module(f"pynn_{i}"))
    return mods


def _order(r):
    return (0, 1) if r % 2 == 0 else (1, 0)


def products(args, tmp):
    mods = _core_copies([args.a, args.b], tmp)
    dt = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    room = np.empty(1100 * 1100, dt)
    # (kind, m, k, n): the wide net's forward products, weight gradients and
    # input gradient, as bench/products.py names them
    shapes = [(0, 256, 784, 1024), (0, 256, 1024, 1024), (1, 1024, 256, 1024),
              (2, 256, 1024, 1024), (1, 784, 256, 1024)]
    if args.net == "mnist-like":  # 784-256-128-10, batch 128: the same five kinds
        shapes = [(0, 128, 784, 256), (0, 128, 256, 128), (1, 256, 128, 128),
                  (2, 128, 128, 256), (1, 784, 128, 256)]
    total = [0.0, 0.0]
    for kind, m, k, n in shapes:
        a = rng.standard_normal((k, m) if kind == 1 else (m, k)).astype(dt)
        b = rng.standard_normal((n, k) if kind == 2 else (k, n)).astype(dt)
        aux = rng.standard_normal(n if kind == 0 else m * n).astype(dt)
        act = 0 if kind == 1 else 3  # ReLU (the core's code), as training runs them
        c = np.empty((m, n), dt)
        extra = {"bwhole": np.empty((n + 31) // 32 * 32 * k + 16, dt)} if kind == 1 else {}
        best = [np.inf, np.inf]
        for r in range(args.rounds):
            for i in _order(r):
                t = mods[i]._product_time(kind, c, a, b, aux, room, act, 0.0, 3, 1, 1, True,
                                          False, **extra)
                best[i] = min(best[i], t)
        flop = 2.0 * m * k * n
        print(f"kind {kind} {m}x{k}x{n}: A {flop / best[0] / 1e9:6.1f} GFLOP/s  "
              f"B {flop / best[1] / 1e9:6.1f}  B/A {best[0] / best[1]:.3f}")
        total[0] += best[0]
        total[1] += best[1]
    print(f"all five: A {total[0] * 1e3:.2f} ms  B {total[1] * 1e3:.2f} ms  "
          f"B/A {total[0] / total[1]:.3f}")


def fit(args, tmp):
    mods = _package_copies([args.a, args.b], tmp)
    layers = tuple(int(u) for u in args.layers.split(","))
    steps = args.steps
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.batch * steps, 784)).astype(args.dtype)
    y = rng.integers(0, 10, len(X))
    warnings.simplefilter("ignore")
    models = [m.MLPClassifier(layers, solver="sgd", learning_rate_init=0.01, momentum=0.0,
                              batch_size=args.batch, max_iter=1, tol=None, shuffle=False,
                              random_state=0, alpha=0.0, warm_start=True, dtype=args.dtype,
                              n_threads=args.threads) for m in mods]
    for model in models:
        model.fit(X, y)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    ms = [[], []]
    for r in range(args.rounds):
        for i in _order(r):
            best = np.inf
            for _ in range(2):
                t = clock()
                models[i].fit(X, y)
                best = min(best, clock() - t)
            ms[i].append(best * 1e3 / steps)
    a, b = statistics.median(ms[0]), statistics.median(ms[1])
    faster = sum(1 for x, z in zip(*ms) if z < x)
    print(f"fit {args.dtype} {layers} batch {args.batch}, {args.threads} thread(s): "
          f"A {a:.2f} ms a step  B {b:.2f}  B/A speed {a / b:.3f}  "
          f"(B faster in {faster} of {args.rounds} rounds)")


def predict(args, tmp):
    mods = _package_copies([args.a, args.b], tmp)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10000, 784)).astype(args.dtype)
    y = rng.integers(0, 10, len(X))
    warnings.simplefilter("ignore")
    models = [m.MLPClassifier((256, 128), max_iter=1, batch_size=128, random_state=0,
                              dtype=args.dtype, n_threads=args.threads).fit(X[:2000], y[:2000])
              for m in mods]
    if not np.array_equal(models[0].predict_proba(X), models[1].predict_proba(X)):
        raise SystemExit("the two builds predict different bits")
    rate = [[], []]
    for r in range(args.rounds):
        for i in _order(r):
            best = np.inf
            for _ in range(3):
                t = time.perf_counter()
                models[i].predict_proba(X)
                best = min(best, time.perf_counter() - t)
            rate[i].append(len(X) / best)
    a, b = statistics.median(rate[0]), statistics.median(rate[1])
    faster = sum(1 for x, z in zip(*rate) if z > x)
    print(f"predict {args.dtype}, {args.threads} thread(s): A {a:,.0f} rows/s  B {b:,.0f}  "
          f"B/A {b / a:.3f}  (B faster in {faster} of {args.rounds} rounds)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["products", "fit", "predict"])
    p.add_argument("a", help="build A: a copy of pynn/_core*.so")
    p.add_argument("b", help="build B")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1, help="fit, predict")
    p.add_argument("--layers", default="1024,1024", help="fit: hidden layers")
    p.add_argument("--batch", type=int, default=256, help="fit: batch size")
    p.add_argument("--steps", type=int, default=12,
                   help="fit: steps a fit (bench/run.py's mnist-like takes 280)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--net", default="wide", choices=["wide", "mnist-like"],
                   help="products: whose products (the wide net's by default)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        {"products": products, "fit": fit, "predict": predict}[args.what](args, tmp)


if __name__ == "__main__":
    main()
