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


def round_bf16(a):
    """`a` rounded to bfloat16 (round to nearest, ties to even), in a's float dtype.

    On the float32 bit pattern u: add 0x7FFF plus u's lowest kept bit (bit 16),
    then clear the 16 low bits; a carry into the exponent is right (it rounds
    up to the next binade, or to infinity).  NaN is kept as it is (the addition
    could carry a NaN's payload into the sign or to infinity)."""
    f = np.asarray(a, np.float32)
    u = f.view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000))
    return np.where(np.isnan(f), f, r.view(np.float32)).astype(np.asarray(a).dtype)


# ----------------------------------------------------------------------------
# the numpy reference trainer (also the "numpy" peer)
# ----------------------------------------------------------------------------

def _same(a):
    return a


def _first(x, operands):
    """What `operands` is for the first layer's products: those of a sparse
    (CSR) input are not matrix products, and pynn's bfloat16 mode keeps them
    float32."""
    return _same if hasattr(x, "tocsr") else operands


def numpy_forward(params, X, operands=_same):
    """Softmax probabilities of the ReLU MLP.  `operands` is applied to both
    operands of each product (round_bf16 for the bfloat16 mode)."""
    a, op = X, _first(X, operands)
    for W, b in params[:-1]:
        a = op(a) @ op(W)
        op = operands
        a += b
        np.maximum(a, 0, out=a)
    W, b = params[-1]
    z = op(a) @ op(W)
    z += b
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def numpy_sgd_step(params, x, Y, lr, kinks=None, operands=_same):
    """One SGD step in place on the batch (x, one-hot Y): mean cross-entropy loss.
    `kinks`, a list, gets the smallest |pre-activation| of each hidden layer.
    `operands` is applied to both operands of each of the three products of a
    layer, x @ W, x^T @ delta and delta @ W^T (round_bf16: the bfloat16 mode;
    not to a sparse input's products); the products, biases, activations and
    the update stay in the arrays' dtype."""
    ops = [_first(x, operands)] + [operands] * (len(params) - 1)   # per layer
    acts = [x]
    for W, b in params[:-1]:
        op = ops[len(acts) - 1]
        a = op(acts[-1]) @ op(W)
        a += b
        if kinks is not None:
            kinks.append(float(np.abs(a).min()))
        np.maximum(a, 0, out=a)
        acts.append(a)
    W, b = params[-1]
    p = ops[-1](acts[-1]) @ ops[-1](W)
    p += b
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    delta, step = p - Y, lr
    if operands is _same:
        delta /= x.shape[0]                          # d loss / d logits
    else:
        # pynn's bfloat16 mode rounds p - Y (the summed loss's gradient) and
        # takes 1/batch into the step: rounding commutes with 1/batch only
        # when batch is a power of 2
        step = lr / x.shape[0]
    for layer in range(len(params) - 1, -1, -1):
        W, b, op = *params[layer], ops[layer]
        gW = op(acts[layer]).T @ op(delta)
        gb = delta.sum(axis=0)
        if layer > 0:                                # the input needs no gradient
            delta = op(delta) @ op(W).T
            delta *= acts[layer] > 0
        W -= step * gW
        b -= step * gb


def numpy_epoch(params, X, Y, batch, lr, n=None, kinks=None, operands=_same):
    n = X.shape[0] if n is None else n
    for i in range(0, n, batch):
        numpy_sgd_step(params, X[i:i + batch], Y[i:i + batch], lr, kinks, operands)


# ----------------------------------------------------------------------------
# the check before timing
# ----------------------------------------------------------------------------

class CheckFailed(Exception):
    """A peer's result differs from the numpy reference."""


def _max_rel_err(got, want):
    """max over arrays of max|got - want| / max|want|."""
    return max(float(np.max(np.abs(np.asarray(g, np.float64) - w)) / float(np.max(np.abs(w))))
               for g, w in zip(got, want))


def _rounding_err(got, want, unrounded):
    """max over arrays of ||got - want|| / ||want - unrounded||: the distance to the
    bfloat16 reference as a fraction of that reference's distance to the
    unrounded one."""
    return max(float(np.linalg.norm(np.asarray(g, np.float64) - w)
                     / max(np.linalg.norm(w - u), 1e-300))
               for g, w, u in zip(got, want, unrounded))


# Tolerances of the check, by the precision the peer computes in.  float64 and
# float32: max |got - want| / max |want| per array.  bfloat16: the reference
# rounds the same operands to bfloat16 as the peer but accumulates in float64,
# and an operand within float32 rounding of a bfloat16 midpoint may round the
# other way in the peer (a 2^-8 relative change of one term), a pre-activation
# may cross ReLU's kink: a few large differences, so the measure is an overall
# one, ||got - want|| / ||want - unrounded|| per array (Frobenius norms;
# unrounded: the float64 reference without bfloat16 rounding), the error as a
# fraction of what the rounding itself moves.  No rounding at all gives 1,
# truncation instead of rounding to nearest 3 and more, rounding the mean
# loss's gradient instead of p - Y about 0.8 on the sparse case (the only one
# whose batch is not a power of 2); numpy in float32 with the same rounding
# gives 0.2 at most (sparse, where only the second layer rounds), 0.07 on the
# dense cases.
RTOL = {"float64": 1e-9, "float32": 1e-4, "bfloat16": 0.5}
# the precisions a peer is checked in for each benchmark dtype (a float32 run
# also checks the float64 path, which shares the code)
CHECKED = {"float64": ["float64"], "float32": ["float64", "float32"],
           "bfloat16": ["bfloat16"]}


def array_dtype(dt):
    """The numpy dtype of the data, weights and biases given to a peer computing
    in `dt`: in the bfloat16 mode they are float32 (only the products' operands
    are bfloat16)."""
    return "float32" if dt == "bfloat16" else dt


def _check_data_and_reference(case, start, bf16=False, margin=1e-6, tries=20):
    """Training data for the check and the float64 reference weights after one
    epoch on it from `start` (bf16: with the products' operands rounded to
    bfloat16).

    A hidden pre-activation within float32 rounding (~1e-7 here) of ReLU's kink
    can land on the other side in float32, which switches that unit's gradient
    for that sample and moves the weights by far more than rounding: the data
    is drawn again until every hidden pre-activation of the reference run is at
    least `margin` away from 0 (the best of `tries` draws is kept otherwise)."""
    batch = case.batch
    n = 2 * batch + batch // 2 if batch > 1 else 50    # with a ragged last batch
    operands = round_bf16 if bf16 else _same
    best = None
    for seed in range(123, 123 + tries):
        data = make_data(n, case.units[0], np.float64, seed=seed, n_classes=case.n_classes,
                         nnz=case.nnz)
        ref, kinks = copy_params(start), []
        numpy_epoch(ref, data.X, data.Y, batch, LEARNING_RATE, kinks=kinks, operands=operands)
        if best is None or min(kinks) > best[0]:
            best = (min(kinks), data, ref)
        if best[0] >= margin:
            break
    return best[1], best[2]


def check(peer, case, dtype, threads):
    """The peer's result against the numpy reference from the same start: the
    weights after one epoch (training) or predict_proba (prediction), from
    peer.check_result.  The reference trains with plain SGD, so the check does
    too, also for a case timed with Adam (sparse input stays sparse).

    The reference computes in float64; for the bfloat16 mode it rounds each
    product's operands to bfloat16 first (round_bf16), as the mode does, and
    the error is measured against what that rounding moves (see RTOL).  The
    peer is checked in each precision of CHECKED[dtype], within RTOL (or the
    peer's own check_rtol, looser for a tool whose bfloat16 mode rounds more
    than the products' operands).  Returns {precision: error}; raises
    CheckFailed on disagreement."""
    bf16 = dtype == "bfloat16"
    operands = round_bf16 if bf16 else _same
    start = initial_weights(case.units, np.float64, seed=7)
    if case.predict:
        data = make_data(300, case.units[0], np.float64, seed=123)
        want = [numpy_forward(start, data.X, operands)]
        unrounded = [numpy_forward(start, data.X)]
    else:
        data, ref = _check_data_and_reference(case, start, bf16)
        want = [a for pair in ref for a in pair]
        if bf16:
            ref = copy_params(start)
            numpy_epoch(ref, data.X, data.Y, case.batch, LEARNING_RATE)
            unrounded = [a for pair in ref for a in pair]
    errors = {}
    for dt in CHECKED[dtype]:
        rtol = (peer.check_rtol or {}).get(dt, RTOL[dt])
        adt = array_dtype(dt)
        got = peer.check_result(case, copy_params(start, adt), data.X.astype(adt), data.y,
                                dt, threads)
        err = _rounding_err(got, want, unrounded) if bf16 else _max_rel_err(got, want)
        errors[dt] = err
        if not err <= rtol:
            what = "predict_proba" if case.predict else "weights after one epoch"
            measure = ("error / what bfloat16 rounding moves" if bf16 else "max rel err")
            raise CheckFailed(
                f"{peer.name} disagrees with the numpy reference on case {case.name!r} in "
                f"{dt}: {measure} {err:.3g} > {rtol:g} ({what})")
    return errors
