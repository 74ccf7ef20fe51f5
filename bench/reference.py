"""The benchmark data, the initial weights, the numpy reference trainer, and the
check of a peer's result against that reference before it is timed."""
from dataclasses import dataclass

import numpy as np

from cases import LEARNING_RATE, N_CLASSES


@dataclass
class Data:
    X: np.ndarray          # (n, n_in), the benchmark dtype (a scipy CSR matrix if sparse)
    y: np.ndarray          # (n,) int64 labels in [0, N_CLASSES)
    Y: np.ndarray          # (n, N_CLASSES) one-hot, the benchmark dtype


def make_data(n, n_in, dtype, seed=0, n_classes=N_CLASSES, nnz=0):
    """Standard-normal inputs and uniformly random labels, every class present.
    nnz > 0: X is a CSR matrix with nnz standard-normal values per row, at
    distinct random columns (sorted, as scipy keeps them)."""
    rng = np.random.default_rng(seed)
    if nnz:
        import scipy.sparse
        # nnz sorted draws from [0, n_in - nnz] plus 0..nnz-1: distinct, increasing
        cols = np.sort(rng.integers(0, n_in - nnz + 1, (n, nnz)), axis=1) + np.arange(nnz)
        X = scipy.sparse.csr_matrix(
            (rng.standard_normal(n * nnz).astype(dtype), cols.ravel().astype(np.int32),
             np.arange(0, n * nnz + 1, nnz)), shape=(n, n_in))
    else:
        X = rng.standard_normal((n, n_in), dtype=np.float64).astype(dtype)
    y = rng.integers(0, n_classes, n)
    y[:min(n, n_classes)] = np.arange(min(n, n_classes))
    Y = np.zeros((n, n_classes), dtype=dtype)
    Y[np.arange(n), y] = 1
    return Data(X, y, Y)


def initial_weights(units, dtype, seed=1):
    """Glorot-uniform weights and biases, [(W (n_in, n_out), b (n_out,)), ...]."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(6.0 / (n_in + n_out))
        params.append((rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype),
                       rng.uniform(-bound, bound, n_out).astype(dtype)))
    return params


def copy_params(params, dtype=None):
    return [(W.astype(dtype or W.dtype, copy=True), b.astype(dtype or b.dtype, copy=True))
            for W, b in params]


# ----------------------------------------------------------------------------
# the numpy reference trainer (also the "numpy" peer)
# ----------------------------------------------------------------------------

def numpy_forward(params, X):
    """Softmax probabilities of the ReLU MLP."""
    a = X
    for W, b in params[:-1]:
        a = a @ W
        a += b
        np.maximum(a, 0, out=a)
    W, b = params[-1]
    z = a @ W
    z += b
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def numpy_sgd_step(params, x, Y, lr, kinks=None):
    """One SGD step in place on the batch (x, one-hot Y): mean cross-entropy loss.
    `kinks`, a list, gets the smallest |pre-activation| of each hidden layer."""
    acts = [x]
    for W, b in params[:-1]:
        a = acts[-1] @ W
        a += b
        if kinks is not None:
            kinks.append(float(np.abs(a).min()))
        np.maximum(a, 0, out=a)
        acts.append(a)
    W, b = params[-1]
    p = acts[-1] @ W
    p += b
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    delta = (p - Y) / x.shape[0]                    # d loss / d logits
    for layer in range(len(params) - 1, -1, -1):
        W, b = params[layer]
        gW = acts[layer].T @ delta
        gb = delta.sum(axis=0)
        if layer > 0:                                # the input needs no gradient
            delta = delta @ W.T
            delta *= acts[layer] > 0
        W -= lr * gW
        b -= lr * gb


def numpy_epoch(params, X, Y, batch, lr, n=None, kinks=None):
    n = X.shape[0] if n is None else n
    for i in range(0, n, batch):
        numpy_sgd_step(params, X[i:i + batch], Y[i:i + batch], lr, kinks)


# ----------------------------------------------------------------------------
# the check before timing
# ----------------------------------------------------------------------------

class CheckFailed(Exception):
    """A peer's result differs from the numpy reference."""


def _max_rel_err(got, want):
    """max over arrays of max|got - want| / max|want|."""
    return max(float(np.max(np.abs(np.asarray(g, np.float64) - w)) / float(np.max(np.abs(w))))
               for g, w in zip(got, want))


def _check_data_and_reference(case, start, margin=1e-6, tries=20):
    """Training data for the check and the float64 reference weights after one
    epoch on it from `start`.

    A hidden pre-activation within float32 rounding (~1e-7 here) of ReLU's kink
    can land on the other side in float32, which switches that unit's gradient
    for that sample and moves the weights by far more than rounding: the data
    is drawn again until every hidden pre-activation of the reference run is at
    least `margin` away from 0 (the best of `tries` draws is kept otherwise)."""
    batch = case.batch
    n = 2 * batch + batch // 2 if batch > 1 else 50    # with a ragged last batch
    best = None
    for seed in range(123, 123 + tries):
        data = make_data(n, case.units[0], np.float64, seed=seed, n_classes=case.n_classes,
                         nnz=case.nnz)
        ref, kinks = copy_params(start), []
        numpy_epoch(ref, data.X, data.Y, batch, LEARNING_RATE, kinks=kinks)
        if best is None or min(kinks) > best[0]:
            best = (min(kinks), data, ref)
        if best[0] >= margin:
            break
    return best[1], best[2]


def check(peer, case, dtype, threads):
    """The peer's result against the float64 numpy reference from the same start:
    the weights after one epoch (training) or predict_proba (prediction), from
    peer.check_result.  The reference trains with plain SGD, so the check does
    too, also for a case timed with Adam (sparse input stays sparse).    Checked in float64 (rtol 1e-9) and, for a float32 run,
    in float32 (1e-4).  Returns {dtype name: max rel err}; raises CheckFailed
    on disagreement."""
    start = initial_weights(case.units, np.float64, seed=7)
    if case.predict:
        data = make_data(300, case.units[0], np.float64, seed=123)
        want = [numpy_forward(start, data.X)]
    else:
        data, ref = _check_data_and_reference(case, start)
        want = [a for pair in ref for a in pair]
    errors = {}
    for dt, rtol in (("float64", 1e-9), ("float32", 1e-4)):
        if dt == "float32" and dtype != "float32":
            continue
        got = peer.check_result(case, copy_params(start, dt), data.X.astype(dt), data.y,
                                dt, threads)
        err = _max_rel_err(got, want)
        errors[dt] = err
        if not err <= rtol:
            raise CheckFailed(
                f"{peer.name} disagrees with the numpy reference on case {case.name!r} in "
                f"{dt}: max rel err {err:.3g} > {rtol:g} "
                f"({'predict_proba' if case.predict else 'weights after one epoch'})")
    return errors
