"""python -m pynn: train an MLP on a built-in data set and report the test
accuracy and the training speed."""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

#: What to install for --plot (the distribution is pynn-mlp; it imports as pynn).
PLOT_INSTALL = 'pip install "pynn-mlp[plot]" or pip install matplotlib'


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m pynn",
        description="Train an MLP classifier on built-in Gaussian clusters and report the "
                    "test accuracy and the training speed.")
    add = parser.add_argument
    add("--samples", type=int, default=30000,
        help="rows generated; a fifth of them are held out for testing (default: %(default)s)")
    add("--features", type=int, default=64, help="features per row (default: %(default)s)")
    add("--classes", type=int, default=10, help="classes to predict (default: %(default)s)")
    add("--hidden", type=int, nargs="+", default=[128, 64], metavar="UNITS",
        help="hidden layer sizes (default: 128 64)")
    add("--epochs", type=int, default=20,
        help="training epochs, all run (default: %(default)s)")
    add("--batch-size", type=int, default=64,
        help="rows per minibatch step (default: %(default)s)")
    add("--dtype", choices=["float32", "float64", "bfloat16"], default="float32",
        help="precision of the weights and the arithmetic; bfloat16: float32 weights, "
             "bfloat16 operands in the matrix products (default: %(default)s)")
    add("--threads", type=int, default=None,
        help="threads of the C core (default: OpenMP's count)")
    add("--seed", type=int, default=0,
        help="random seed of the data and of the model (default: %(default)s)")
    add("--verbose", type=int, default=0, choices=[0, 1, 2],
        help="0: quiet, 1: live progress bar, 2: a line per epoch (default: %(default)s)")
    add("--plot", metavar="FILE", default=None,
        help="save the loss curve to FILE, e.g. loss.png; needs matplotlib: "
             'pip install "pynn-mlp[plot]" (default: no plot)')
    add("--save", metavar="FILE", default=None,
        help="save the trained model to FILE, read back by pynn.load (default: not saved)")
    add("--compare", action="store_true",
        help="also train scikit-learn's MLPClassifier on the same work, if installed "
             "(default: off)")
    return parser


def _parse(argv):
    return _parser().parse_args(argv)


def _plot_backend():
    """None if matplotlib can draw the --plot file, else why not (checked before
    training, so a missing extra costs no training time)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    except ImportError as exc:
        return f"--plot needs matplotlib, which could not be imported ({exc}): {PLOT_INSTALL}"
    return None


def _check_output_files(args):
    """One line saying why an output file cannot be written, or None."""
    for flag, path in (("--plot", args.plot), ("--save", args.save)):
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                return f"{flag} {path}: the folder {folder} does not exist"
    if args.plot:
        return _plot_backend()
    return None


def main(argv=None):
    args = _parse(argv)
    problem = _check_output_files(args)
    if problem is not None:
        print(f"python -m pynn: error: {problem}", file=sys.stderr)
        return 2

    import pynn
    from pynn._platform import cpu_model
    from pynn.datasets import make_cluster_classification

    X, y = make_cluster_classification(args.samples, args.features, args.classes,
                                       random_state=args.seed,
                                       dtype="float32" if args.dtype == "bfloat16" else args.dtype)
    n_test = max(1, len(X) // 5)
    Xtr, ytr, Xte, yte = X[n_test:], y[n_test:], X[:n_test], y[:n_test]
    print(f"pynn {pynn.__version__} on {cpu_model()} ({os.cpu_count()} CPUs, "
          f"{pynn.max_threads()} core threads, OpenMP {'on' if pynn.has_openmp() else 'off'}, "
          f"SIMD {pynn.simd_path()})")
    print(f"data: {len(Xtr)} training and {len(Xte)} test rows, {args.features} features, "
          f"{args.classes} classes (built-in Gaussian clusters)")
    print(f"model: {args.features}-{'-'.join(map(str, args.hidden))}-{args.classes} relu MLP, "
          f"adam, batch {args.batch_size}, {args.epochs} epochs, {args.dtype}")

    kw = dict(hidden_layer_sizes=tuple(args.hidden), batch_size=args.batch_size,
              max_iter=args.epochs, tol=None if args.epochs else 1e-4,
              random_state=args.seed, learning_rate_init=1e-3)
    rate = _train_pynn(args, kw, Xtr, ytr, Xte, yte)
    if args.compare:
        _compare_sklearn(kw, rate, Xtr, ytr, Xte, yte)
    return 0


def _train_pynn(args, kw, Xtr, ytr, Xte, yte):
    """Train and report pynn's model (and plot or save it); its samples/s."""
    import pynn

    model = pynn.MLPClassifier(dtype=args.dtype, n_threads=args.threads, verbose=args.verbose,
                               **kw)
    t0 = time.perf_counter()
    model.fit(Xtr, ytr)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc = model.score(Xte, yte)
    pred_s = time.perf_counter() - t0
    rate = model.n_iter_ * len(Xtr) / fit_s
    print(f"pynn:         test accuracy {acc:.4f}   fit {fit_s:.2f} s "
          f"({rate:,.0f} samples/s)   predict {len(Xte) / pred_s:,.0f} rows/s   "
          f"final loss {model.loss_:.4f}")

    if args.plot:  # matplotlib (Agg) was checked by _plot_backend before training
        ax = pynn.plot_loss_curve(model)
        ax.figure.savefig(args.plot, dpi=100, bbox_inches="tight")
        print(f"loss curve saved to {args.plot}")
    if args.save:
        model.save(args.save)
        print(f"model saved to {args.save} (pynn.load reads it back)")
    return rate


def _compare_sklearn(kw, rate, Xtr, ytr, Xte, yte):
    """Train scikit-learn's MLPClassifier on the same work, if installed."""
    try:
        from sklearn.neural_network import MLPClassifier as SkMLP
    except ImportError:
        print("scikit-learn is not installed: pip install scikit-learn")
        return
    sk = SkMLP(**{k: v for k, v in kw.items() if k != "tol"}, tol=1e-4,
               n_iter_no_change=10**9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        sk.fit(Xtr, ytr)
        sk_s = time.perf_counter() - t0
    sk_acc = sk.score(Xte, yte)
    sk_rate = sk.n_iter_ * len(Xtr) / sk_s
    print(f"scikit-learn: test accuracy {sk_acc:.4f}   fit {sk_s:.2f} s "
          f"({sk_rate:,.0f} samples/s)")
    print(f"pynn trains {rate / sk_rate:.1f}x as many samples per second")


if __name__ == "__main__":
    sys.exit(main())
