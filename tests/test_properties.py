"""Property-based tests (Hypothesis): generated shapes, activations, losses,
dtypes and data check the C core against tests/reference.py, and fuzzing
checks that no input crashes pynn.

* Every kernel of pynn.ops against the NumPy reference, for random shapes,
  dtypes, edge values (0, -0, +-1, large magnitudes) and memory layouts
  (C, Fortran, strided, negative strides, read-only).
* Whole networks: loss and gradients of the estimators (random depth, width,
  activation, kind, dtype, alpha) and of the core's Net class (any output
  activation and loss), predictions, and short training runs against
  reference.train.
* Fuzzing: arbitrary arrays (0-3 dimensions, empty, NaN, infinity, huge,
  integer, bool, complex, string, object) and arbitrary hyperparameters given
  to pynn.ops, the Net class and the estimators: every call returns finite
  results or raises one of the expected exceptions.

Tolerances follow tests/test_kernels.py: float32 results are compared with
the float64 reference evaluated on the very same float32 numbers, and sums are
allowed their rounding-error bound, k * eps * (sum of |terms|), so any
summation order passes while a wrong index or formula does not.

Every test runs derandomized with no example database, so a run is
reproducible; the example counts keep the module within seconds.  Set
PYNN_HYPOTHESIS_SCALE=20 for a randomized search with 20 times the examples.
"""
import contextlib
import math
import os
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, event, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import pynn  # noqa: E402
import reference  # noqa: E402
from pynn import _core, ops  # noqa: E402

ACTIVATIONS = reference.ACTIVATIONS  # identity logistic tanh relu softmax step
ELEMENTWISE = reference.ELEMENTWISE_ACTIVATIONS
LOSSES = reference.LOSSES
CE_LOSSES = ("binary_cross_entropy", "categorical_cross_entropy")
HIDDEN = ("identity", "logistic", "tanh", "relu")
DTYPES = (np.float32, np.float64)

# What a call may raise; anything else (RuntimeError, IndexError, KeyError, a
# plain AttributeError, SystemError, ...) or a crash of the process is a bug.
EXPECTED = (ValueError, TypeError, OverflowError, MemoryError, pynn.NotFittedError,
            pynn.DivergenceError)

# Per-dtype tolerances of one kernel call (as in test_kernels.py).
TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-13)}


# PYNN_HYPOTHESIS_SCALE=20 runs 20 times the examples, randomized (a deeper
# search, e.g. after changing the core); the default is the reproducible run.
_SCALE = float(os.environ.get("PYNN_HYPOTHESIS_SCALE", "1"))


def props(max_examples):
    """Reproducible settings: derandomized, no example database, no deadline."""
    # (no explain phase: it re-runs failing examples under a tracer, slowly)
    return settings(max_examples=max(1, int(max_examples * _SCALE)), deadline=None,
                    derandomize=_SCALE == 1,
                    database=None, print_blob=False,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.large_base_example])


def eps(dtype):
    return float(np.finfo(dtype).eps)


def rtol_atol(dtype):
    return TOL[np.dtype(dtype).type]


def f64(a):
    return np.asarray(a, dtype=np.float64)


def sum_bound(k, abs_sum, dtype):
    """Rounding-error bound of sums of k terms whose |values| sum to abs_sum."""
    return (k + 2) * eps(dtype) * np.asarray(abs_sum, dtype=np.float64)


@contextlib.contextmanager
def quiet():
    """Silence NumPy's floating-point warnings and pynn's warnings."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

dtypes = st.sampled_from(DTYPES)


def representable(value, dtype):
    """value rounded towards zero to the nearest float of dtype."""
    v = np.dtype(dtype).type(value)
    if abs(float(v)) > abs(value):
        v = np.nextafter(v, np.dtype(dtype).type(0))
    return float(v)


def elements(dtype, bound, edges=()):
    """Finite floats of dtype in [-bound, bound], with edge values mixed in."""
    width = 32 if np.dtype(dtype) == np.float32 else 64
    bound = representable(bound, dtype)
    special = sorted({representable(v, dtype) for v in
                      (0.0, -0.0, 1.0, -1.0, 0.5, bound, -bound, *edges)}, key=repr)
    return st.one_of(st.floats(-bound, bound, width=width, allow_nan=False,
                               allow_infinity=False),
                     st.sampled_from(special))


@st.composite
def matrices(draw, dtype, shape, bound=100.0, edges=(), low=None):
    """A float array of `shape`: either drawn element by element by Hypothesis
    (edge-value rich, often repetitive) or from a seeded NumPy generator with
    a drawn scale and some edge values sprinkled in."""
    if draw(st.booleans()):
        a = draw(hnp.arrays(dtype, shape, elements=elements(dtype, bound, edges)))
        return a if low is None else np.clip(a, low, bound).astype(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, bound]))
    a = rng.uniform(-1.0, 1.0, size=shape) * min(scale, bound)
    n_edges = draw(st.integers(0, 3))
    flat = a.reshape(-1)
    for _ in range(n_edges if flat.size else 0):
        flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from(
            [0.0, -0.0, 1.0, -1.0, bound, -bound, *edges]))
    return (a if low is None else np.clip(a, low, bound)).astype(dtype)


def relayout(a, how):
    """The same values as `a` in another memory layout."""
    if how == "C":
        return a
    if how == "F":
        return np.asfortranarray(a)
    if how == "strided":  # every other element of a wider buffer
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if how == "reversed":  # negative strides
        return np.ascontiguousarray(a[::-1])[::-1]
    if how == "readonly":
        b = a.copy()
        b.setflags(write=False)
        return b
    raise ValueError(how)


layouts = st.sampled_from(["C", "F", "strided", "reversed", "readonly"])
threads = st.sampled_from([None, 1, 2, 3])


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------

@props(80)
@given(dtype=dtypes, name=st.sampled_from(ACTIVATIONS), data=st.data(),
       n=st.integers(1, 40), m=st.integers(1, 20), layout=layouts)
def test_activation_matches_reference(dtype, name, data, n, m, layout):
    big = float(np.finfo(dtype).max) / 2
    z = data.draw(matrices(dtype, (n, m), bound=1e4, edges=(50.0, -50.0, 1e-30, big, -big)))
    z_in = relayout(z, layout)
    before = z.copy()

    out = ops.activation(z_in, name)

    assert out.dtype == np.dtype(dtype) and out.shape == (n, m)
    np.testing.assert_array_equal(z_in, before)  # the input is left alone
    assert np.all(np.isfinite(out)), "overflow or NaN from finite input"
    with np.errstate(all="ignore"):
        expected = reference.activation(f64(z), name)
    rtol, atol = rtol_atol(dtype)
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)
    if name in ("logistic", "softmax", "step"):
        assert np.all((out >= 0) & (out <= 1))
    if name == "softmax":
        np.testing.assert_allclose(f64(out).sum(axis=1), 1.0, rtol=(m + 8) * eps(dtype))


@props(80)
@given(dtype=dtypes, name=st.sampled_from(ACTIVATIONS), data=st.data(),
       n=st.integers(1, 40), m=st.integers(1, 20), layout=layouts)
def test_activation_backward_matches_reference(dtype, name, data, n, m, layout):
    z = data.draw(matrices(dtype, (n, m), bound=30.0))
    with np.errstate(all="ignore"):
        a = reference.activation(f64(z), name).astype(dtype)  # a cached output
    delta = data.draw(matrices(dtype, (n, m), bound=1e3))
    d_in, a_in = relayout(delta, layout), relayout(a, layout)

    out = ops.activation_backward(d_in, a_in, name)

    assert out.dtype == np.dtype(dtype) and out.shape == (n, m)
    np.testing.assert_array_equal(d_in, delta)
    np.testing.assert_array_equal(a_in, a)
    expected = reference.activation_backward(f64(delta), f64(a), name)
    scale = max(1.0, float(np.max(np.abs(f64(delta)))))
    rtol, atol = rtol_atol(dtype)
    atol *= scale
    if name == "softmax":  # the row sum sum_i delta_i a_i cancels
        row = np.sum(np.abs(f64(delta)) * np.abs(f64(a)), axis=1)
        atol += float(np.max(sum_bound(m, row, dtype)))
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# losses and output deltas
# ---------------------------------------------------------------------------

@st.composite
def loss_data(draw, dtype, name, shape):
    """(y_hat, y) valid for the loss: any values for the squared errors,
    probabilities (exact 0 and 1 included) for the cross-entropies."""
    if name in ("half_squared_error", "squared_error"):
        return (draw(matrices(dtype, shape, bound=1e4)), draw(matrices(dtype, shape, bound=1e4)))
    e = eps(dtype)
    y_hat = draw(matrices(dtype, shape, bound=1.0, low=0.0, edges=(e, 1 - e, 1e-30)))
    y = draw(matrices(dtype, shape, bound=1.0, low=0.0))
    return y_hat, y


@props(80)
@given(dtype=dtypes, name=st.sampled_from(LOSSES), data=st.data(),
       n=st.integers(1, 40), m=st.integers(1, 20), layout=layouts)
def test_loss_matches_reference(dtype, name, data, n, m, layout):
    y_hat, y = data.draw(loss_data(dtype, name, (n, m)))

    value = ops.loss(relayout(y_hat, layout), relayout(y, layout), name)

    assert isinstance(value, float) and math.isfinite(value) and value >= 0.0
    # The float64 reference on the same numbers, with the probabilities clipped
    # at the eps of the input's dtype first (the float64 clip then does nothing).
    p = y_hat
    if name in CE_LOSSES:
        p = np.clip(y_hat, eps(dtype), 1 - eps(dtype)).astype(dtype)
    expected = reference.loss(f64(p), f64(y), name)
    np.testing.assert_allclose(value, expected, rtol=rtol_atol(dtype)[0], atol=1e-300)


@props(100)
@given(dtype=dtypes, activation=st.sampled_from(ACTIVATIONS), loss=st.sampled_from(LOSSES),
       data=st.data(), n=st.integers(1, 40), m=st.integers(1, 20), layout=layouts)
def test_output_delta_matches_reference(dtype, activation, loss, data, n, m, layout):
    z = data.draw(matrices(dtype, (n, m), bound=20.0))
    y_hat = reference.activation(f64(z), activation).astype(dtype)
    if loss in CE_LOSSES:
        # probabilities away from the clip, where the derivative is huge and
        # decided by the last bit of y_hat
        y_hat = np.clip(y_hat, 1e-3, 1 - 1e-3).astype(dtype)
        y = data.draw(matrices(dtype, (n, m), bound=1.0, low=0.0))
    else:
        y = data.draw(matrices(dtype, (n, m), bound=100.0))

    out = ops.output_delta(relayout(y_hat, layout), relayout(y, layout), activation, loss)

    assert out.dtype == np.dtype(dtype) and out.shape == (n, m)
    assert np.all(np.isfinite(out))
    expected = reference.output_delta(f64(y_hat), f64(y), activation, loss)
    g = reference.loss_derivative(f64(y_hat), f64(y), loss)
    scale = max(1.0, float(np.max(np.abs(g))))
    rtol, atol = rtol_atol(dtype)
    atol *= scale
    if activation == "softmax":
        atol += (m + 2) * eps(dtype) * scale
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)


@props(60)
@given(dtype=dtypes, activation=st.sampled_from(ACTIVATIONS), loss=st.sampled_from(CE_LOSSES),
       data=st.data(), n=st.integers(1, 10), m=st.integers(1, 6))
def test_output_delta_finite_at_probabilities_zero_and_one(dtype, activation, loss, data, n, m):
    """Predictions of exactly 0 or 1 (saturated units) give a finite delta: the
    cross-entropies clip p to [eps, 1 - eps] of the dtype."""
    y_hat = data.draw(hnp.arrays(dtype, (n, m), elements=st.sampled_from([0.0, 1.0, 0.5])))
    y = data.draw(hnp.arrays(dtype, (n, m), elements=st.sampled_from([0.0, 1.0, 0.25])))

    out = ops.output_delta(y_hat, y, activation, loss)
    value = ops.loss(y_hat, y, loss)

    assert np.all(np.isfinite(out)) and math.isfinite(value)
    with np.errstate(all="ignore"):  # the reference in the input's dtype: its eps
        expected = reference.output_delta(y_hat, y, activation, loss)
        g = reference.loss_derivative(y_hat, y, loss)
    scale = max(1.0, float(np.max(np.abs(f64(g)))))
    np.testing.assert_allclose(out, expected, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=(1e-6 + (m + 2) * eps(dtype)) * scale)


# ---------------------------------------------------------------------------
# dense layer
# ---------------------------------------------------------------------------

@props(80)
@given(dtype=dtypes, activation=st.sampled_from(ACTIVATIONS), data=st.data(),
       n=st.integers(1, 40), n_in=st.integers(1, 20), n_out=st.integers(1, 20),
       layout=layouts, nt=threads)
def test_dense_forward_matches_reference(dtype, activation, data, n, n_in, n_out, layout, nt):
    x = data.draw(matrices(dtype, (n, n_in)))
    W = data.draw(matrices(dtype, (n_in, n_out), bound=10.0))
    b = data.draw(matrices(dtype, (n_out,), bound=10.0))
    before = [a.copy() for a in (x, W, b)]
    args = [relayout(a, layout) for a in (x, W, b)]

    out = ops.dense_forward(*args, activation, n_threads=nt)

    assert out.dtype == np.dtype(dtype) and out.shape == (n, n_out)
    for a, a0 in zip(args, before):
        np.testing.assert_array_equal(a, a0)
    # the same bits for any thread count and layout
    np.testing.assert_array_equal(out, ops.dense_forward(x, W, b, activation, n_threads=1))
    z_ref = f64(x) @ f64(W) + f64(b)
    with np.errstate(all="ignore"):
        expected = reference.activation(z_ref, activation)
    # error of z; every activation is 1-Lipschitz, softmax 2-Lipschitz
    z_err = sum_bound(n_in + 1, np.abs(f64(x)) @ np.abs(f64(W)) + np.abs(f64(b)), dtype)
    if activation == "step":
        assert np.all((out == 0) | (out == 1))
        sure = np.abs(z_ref) > 2 * z_err  # entries whose sign rounding cannot flip
        np.testing.assert_array_equal(out[sure], expected[sure])
    else:
        if activation == "softmax":  # each output depends on its whole row
            z_err = np.max(z_err, axis=1, keepdims=True)
        rtol, atol = rtol_atol(dtype)
        tol = atol + 2 * z_err + rtol * np.abs(expected)
        assert np.all(np.abs(f64(out) - expected) <= tol), np.max(np.abs(f64(out) - expected) - tol)


@props(80)
@given(dtype=dtypes, data=st.data(), n=st.integers(1, 40), n_in=st.integers(1, 20),
       n_out=st.integers(1, 20), alpha=st.one_of(st.just(0.0), st.floats(0.0, 10.0)),
       need_dx=st.booleans(), layout=layouts, nt=threads)
def test_dense_backward_matches_reference(dtype, data, n, n_in, n_out, alpha, need_dx, layout,
                                          nt):
    delta = data.draw(matrices(dtype, (n, n_out)))
    x = data.draw(matrices(dtype, (n, n_in)))
    W = data.draw(matrices(dtype, (n_in, n_out), bound=10.0))
    before = [a.copy() for a in (delta, x, W)]
    args = [relayout(a, layout) for a in (delta, x, W)]

    dx, dW, db = ops.dense_backward(*args, alpha=alpha, need_dx=need_dx, n_threads=nt)

    for a, a0 in zip(args, before):
        np.testing.assert_array_equal(a, a0)
    assert (dx is None) == (not need_dx)
    for got, shape in ((dW, (n_in, n_out)), (db, (n_out,))) + (((dx, (n, n_in)),)
                                                                if need_dx else ()):
        assert got.dtype == np.dtype(dtype) and got.shape == shape
    # the same bits for any thread count and layout, with or without dx
    dx1, dW1, db1 = ops.dense_backward(delta, x, W, alpha=alpha, need_dx=True, n_threads=1)
    np.testing.assert_array_equal(dW, dW1)
    np.testing.assert_array_equal(db, db1)
    if need_dx:
        np.testing.assert_array_equal(dx, dx1)
    dx_ref, dW_ref, db_ref = reference.dense_backward(f64(delta), f64(x), f64(W), alpha)
    ad, ax, aW = np.abs(f64(delta)), np.abs(f64(x)), np.abs(f64(W))
    rtol, atol = rtol_atol(dtype)
    np.testing.assert_allclose(
        dW, dW_ref, rtol=rtol, atol=atol + np.max(sum_bound(n + 1, (ax.T @ ad + alpha * aW) / n,
                                                            dtype)))
    np.testing.assert_allclose(db, db_ref, rtol=rtol,
                               atol=atol + np.max(sum_bound(n, ad.sum(axis=0) / n, dtype)))
    np.testing.assert_allclose(dx1, dx_ref, rtol=rtol,
                               atol=atol + np.max(sum_bound(n_out, ad @ aW.T, dtype)))


# ---------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------

@props(80)
@given(dtype=dtypes, data=st.data(), size=st.integers(1, 300),
       lr=st.floats(1e-6, 10.0), momentum=st.one_of(st.sampled_from([0.0, 0.9, 1.0]),
                                                   st.floats(0.0, 1.0)),
       nesterov=st.booleans(), steps=st.integers(1, 3), layout=layouts)
def test_sgd_update_matches_reference(dtype, data, size, lr, momentum, nesterov, steps, layout):
    params = data.draw(matrices(dtype, (size,)))
    velocity = data.draw(matrices(dtype, (size,), bound=10.0))
    p_ref, v_ref = f64(params).copy(), f64(velocity).copy()
    e = eps(dtype)
    for _ in range(steps):
        grads = data.draw(matrices(dtype, (size,)))
        g_in = relayout(grads, layout)  # grads are read only: any layout

        assert ops.sgd_update(params, velocity, g_in, lr, momentum, nesterov) is None

        np.testing.assert_array_equal(g_in, grads)
        lr_t, mom_t = float(np.dtype(dtype).type(lr)), float(np.dtype(dtype).type(momentum))
        mag_v = mom_t * np.abs(v_ref) + lr_t * np.abs(f64(grads))
        mag_p = np.abs(p_ref) + mag_v + (mom_t * mag_v if nesterov else 0)
        p_ref, v_ref = reference.sgd_update(p_ref, v_ref, f64(grads), lr_t, mom_t, nesterov)
        tiny = float(np.finfo(dtype).tiny)
        assert np.all(np.abs(f64(velocity) - v_ref) <= 4 * e * mag_v + tiny)
        assert np.all(np.abs(f64(params) - p_ref) <= 8 * e * mag_p + tiny)
        p_ref, v_ref = f64(params).copy(), f64(velocity).copy()  # no drift between steps


@props(80)
@given(dtype=dtypes, data=st.data(), size=st.integers(1, 300),
       lr=st.floats(1e-6, 1.0), beta1=st.one_of(st.just(0.9), st.floats(0.0, 0.999)),
       beta2=st.one_of(st.just(0.999), st.floats(0.0, 0.9999)),
       epsilon=st.one_of(st.just(1e-8), st.floats(1e-10, 1.0)),
       t=st.one_of(st.integers(1, 5), st.integers(1, 10**6)), layout=layouts)
def test_adam_update_matches_reference(dtype, data, size, lr, beta1, beta2, epsilon, t, layout):
    params = data.draw(matrices(dtype, (size,)))
    m = data.draw(matrices(dtype, (size,), bound=10.0))
    v = np.abs(data.draw(matrices(dtype, (size,), bound=100.0)))
    grads = data.draw(matrices(dtype, (size,), bound=10.0))
    p0, m0, v0 = f64(params).copy(), f64(m).copy(), f64(v).copy()  # updated in place
    g_in = relayout(grads, layout)

    assert ops.adam_update(params, m, v, g_in, lr, beta1, beta2, epsilon, t) is None

    np.testing.assert_array_equal(g_in, grads)
    p_ref, m_ref, v_ref = reference.adam_update(p0, m0, v0, f64(grads), lr, beta1, beta2,
                                                epsilon, t)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    tiny = float(np.finfo(dtype).tiny)  # below it values may flush to 0 in the dtype
    # each result is a few roundings away from its reference; |terms| bound the error
    m_mag = beta1 * np.abs(m0) + (1 - beta1) * np.abs(f64(grads))
    v_mag = beta2 * v0 + (1 - beta2) * f64(grads) ** 2
    assert np.all(np.abs(f64(m) - m_ref) <= rtol * m_mag + tiny), "m"
    assert np.all(np.abs(f64(v) - v_ref) <= rtol * v_mag + tiny), "v"
    lr_t = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    step_mag = lr_t * (m_mag + tiny) / (np.sqrt(v_ref) + epsilon)
    assert np.all(np.abs(f64(params) - p_ref) <= rtol * (np.abs(p0) + 4 * step_mag) + tiny), \
        "params"


@props(40)
@given(dtype=dtypes, size=st.integers(2, 20), which=st.sampled_from(["sgd", "adam"]),
       bad=st.sampled_from(["strided", "reversed", "readonly", "F2d"]),
       arg=st.integers(0, 2))
def test_in_place_updates_refuse_non_contiguous_or_read_only_state(dtype, size, which, bad, arg):
    """The optimizer state is updated in place: a copy would silently lose the
    update, so a layout that would need one is refused clearly."""
    arrays = [np.zeros(size, dtype) for _ in range(4)]
    n_state = 2 if which == "sgd" else 3
    i = arg % n_state
    if bad == "F2d":
        arrays[i] = np.zeros((2, size), dtype, order="F")[0]  # a row: strided
    else:
        arrays[i] = relayout(arrays[i], bad)
    with pytest.raises(ValueError, match="contiguous|writeable"):
        if which == "sgd":
            ops.sgd_update(arrays[0], arrays[1], arrays[3], 0.1)
        else:
            ops.adam_update(arrays[0], arrays[1], arrays[2], arrays[3], 0.1)


# ---------------------------------------------------------------------------
# whole networks
# ---------------------------------------------------------------------------

from test_network import KINDS  # noqa: E402  kind -> (estimator, output activation, loss)
FUSED = {("softmax", "categorical_cross_entropy"), ("logistic", "binary_cross_entropy"),
         ("identity", "half_squared_error")}


def make_targets(rng, kind, n, n_out):
    """(y for the estimator, Y the encoded float targets)."""
    if kind == "regressor":
        y = rng.standard_normal(n)
        return y, y.reshape(-1, 1)
    if kind == "regressor2":
        y = rng.standard_normal((n, n_out))
        return y, y
    if kind == "binary":
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        labels = np.array([-3, 7])[y]
        return labels, y.reshape(-1, 1).astype(float)
    if kind == "multiclass":
        y = rng.integers(0, n_out, n)
        y[:n_out] = np.arange(n_out)
        return np.array(["ant", "bee", "cat", "dog", "eel"])[y], np.eye(n_out)[y]
    y = (rng.random((n, n_out)) < 0.5).astype(int)
    return y, y.astype(float)


def abs_forward_error(coefs, intercepts, acts):
    """Per-entry first-order rounding-error scale of the network output, in units
    of eps: each layer adds (|a| |W| + |b|) and passes on the error before it."""
    err = np.zeros_like(acts[0])
    for W, b, a_in, a_out in zip(coefs, intercepts, acts[:-1], acts[1:]):
        err = err @ np.abs(W) + np.abs(a_in) @ np.abs(W) + np.abs(b) + np.abs(a_out)
    return err


def derivative_terms(a, name):
    """|terms| of f'(a) as computed from the cached output a."""
    if name == "logistic":
        return np.abs(a) * (1 + np.abs(a))
    if name == "tanh":
        return 1 + a * a
    if name == "relu":
        return (a > 0).astype(float)
    return np.ones_like(a)  # identity


def gradient_scales(coefs, intercepts, X, Y, hidden, output, loss, alpha):
    """For each gradient entry, the sum of |terms| that backpropagation adds up
    (|delta| propagated through |W| and |f'| terms): rounding errors are a
    small multiple of eps times this, whatever the summation order."""
    acts = reference.forward(coefs, intercepts, X, hidden, output)
    y_hat, n = acts[-1], X.shape[0]
    if (output, loss) in FUSED or output == "step":
        D = np.abs(y_hat) + np.abs(Y)
    elif (output, loss) == ("identity", "squared_error"):
        D = 2 * (np.abs(y_hat) + np.abs(Y))
    else:
        if loss in CE_LOSSES:
            p = np.clip(y_hat, eps(np.float64), 1 - eps(np.float64))
            g_terms = ((np.abs(p) + np.abs(Y)) / (p * (1 - p)) if loss == "binary_cross_entropy"
                       else np.abs(Y) / p)
        else:
            g_terms = 2 * (np.abs(y_hat) + np.abs(Y))
        if output == "softmax":
            D = np.abs(y_hat) * (g_terms + np.sum(g_terms * np.abs(y_hat), axis=1,
                                                  keepdims=True))
        else:
            D = g_terms * derivative_terms(y_hat, output)
    w_scales, b_scales = [None] * len(coefs), [None] * len(coefs)
    for l in range(len(coefs) - 1, -1, -1):
        w_scales[l] = (np.abs(acts[l]).T @ D + alpha * np.abs(coefs[l])) / n
        b_scales[l] = D.sum(axis=0) / n
        if l:
            D = (D @ np.abs(coefs[l]).T) * derivative_terms(acts[l], hidden)
    return w_scales, b_scales


def assert_gradients_close(got, want, scales, dtype, depth, n, width, what):
    factor = 8 * (depth + 1) * (n + width + 4) * eps(dtype)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    for i, (g, w, s) in enumerate(zip(got, want, scales)):
        assert g.shape == w.shape and g.dtype == np.dtype(dtype)
        assert np.all(np.isfinite(g))
        bound = rtol * np.abs(w) + factor * s + 1e-300
        excess = np.abs(f64(g) - w) - bound
        assert np.all(excess <= 0), (f"{what}[{i}] differs from the reference by "
                                     f"{np.max(np.abs(f64(g) - w)):.3g} (bound "
                                     f"{np.max(bound):.3g})")


@st.composite
def architectures(draw, kind):
    hidden = tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=3)))
    n_out = {"regressor": 1, "binary": 1}.get(kind, draw(st.integers(2, 5)))
    if kind == "multiclass":
        n_out = max(n_out, 3)  # two classes make a binary (logistic) model
    return hidden, n_out


@props(150)
@given(kind=st.sampled_from(sorted(KINDS)), activation=st.sampled_from(HIDDEN), dtype=dtypes,
       data=st.data(), n=st.integers(5, 40), n_features=st.integers(1, 20),
       alpha=st.sampled_from([0.0, 1e-4, 0.5]), seed=st.integers(0, 2**32 - 1),
       x_scale=st.sampled_from([0.1, 1.0, 3.0]), w_scale=st.sampled_from([0.3, 1.0, 2.0]))
def test_estimator_loss_and_gradients_match_reference(kind, activation, dtype, data, n,
                                                      n_features, alpha, seed, x_scale,
                                                      w_scale):
    """Random architectures (1-3 hidden layers), activations, targets, dtypes and
    weights: the model's forward pass, loss and gradients equal the reference's."""
    hidden, n_out = data.draw(architectures(kind))
    cls, output, loss_name = KINDS[kind]
    rng = np.random.default_rng(seed)
    X = x_scale * rng.standard_normal((n, n_features))
    X[:, rng.integers(0, n_features)] = 0.0  # a constant feature
    y, Y = make_targets(rng, kind, n, n_out)
    with quiet():
        m = cls(hidden, activation=activation, alpha=alpha, dtype=np.dtype(dtype).name,
                max_iter=1, tol=None, random_state=0).fit(X, y)
    assert m.out_activation_ == output
    for W, b in zip(m.coefs_, m.intercepts_):
        W[...] = w_scale * rng.standard_normal(W.shape) / math.sqrt(W.shape[0])
        b[...] = 0.5 * rng.standard_normal(b.shape)
    copies = lambda arrays: [np.array(a, dtype=np.float64) for a in arrays]  # noqa: E731
    coefs, intercepts = copies(m.coefs_), copies(m.intercepts_)
    Xd = f64(X.astype(dtype))
    # keep the output logits moderate: large logits saturate the probability
    # (float32 rounds it to 1 from about 17 on) and the clipped cross-entropy
    # then depends on the last bit rather than on the formula
    if loss_name in CE_LOSSES:
        z = reference.forward(coefs, intercepts, Xd, activation, "identity")[-1]
        top = float(np.max(np.abs(z)))
        limit = 6.0 if dtype == np.float32 else 15.0
        if top > limit:
            m.coefs_[-1] *= limit / top
            m.intercepts_[-1] *= limit / top
            coefs[-1], intercepts[-1] = copies(m.coefs_[-1:])[0], copies(m.intercepts_[-1:])[0]
    before = [a.copy() for a in m.coefs_ + m.intercepts_]

    loss, cg, ig = m.loss_and_gradients(X, y)
    acts = m.forward_layers(X)

    ref_acts = reference.forward(coefs, intercepts, Xd, activation, output)
    ref_loss, ref_cg, ref_ig = reference.loss_and_gradients(coefs, intercepts, Xd, Y,
                                                            activation, output, loss_name,
                                                            alpha)
    depth, width = len(hidden) + 1, max(hidden + (n_features, n_out))
    # the forward pass, layer by layer, and the prediction
    assert len(acts) == len(ref_acts) == depth + 1
    err = abs_forward_error(coefs, intercepts, ref_acts)
    for got, want in zip(acts[1:], ref_acts[1:]):
        assert got.dtype == np.dtype(dtype)
    out_tol = 8 * depth * (width + 4) * eps(dtype) * err + 1e-300
    assert np.all(np.abs(f64(acts[-1]) - ref_acts[-1]) <= out_tol)
    if kind.startswith("regressor"):
        np.testing.assert_array_equal(np.asarray(m.predict(X)).reshape(acts[-1].shape),
                                      acts[-1])
    else:
        proba = m.predict_proba(X)
        np.testing.assert_array_equal(proba[:, 1:] if kind == "binary" else proba, acts[-1])
    # the loss: a sum of non-negative terms
    assert isinstance(loss, float) and math.isfinite(loss)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-4 if dtype == np.float32 else 1e-10)
    # the gradients
    w_scales, b_scales = gradient_scales(coefs, intercepts, Xd, Y, activation, output,
                                         loss_name, alpha)
    assert_gradients_close(cg, ref_cg, w_scales, dtype, depth, n, width, "coef_grads")
    assert_gradients_close(ig, ref_ig, b_scales, dtype, depth, n, width, "intercept_grads")
    # and computing them changed nothing
    for a, a0 in zip(m.coefs_ + m.intercepts_, before):
        np.testing.assert_array_equal(a, a0)


def split_arena(params, units):
    """The core's parameter arena as (coefs, intercepts): W_l then b_l, layer by layer."""
    coefs, intercepts, off = [], [], 0
    for a, b in zip(units[:-1], units[1:]):
        coefs.append(params[off:off + a * b].reshape(a, b))
        off += a * b
        intercepts.append(params[off:off + b])
        off += b
    assert off == params.size
    return coefs, intercepts


@props(150)
@given(units=st.lists(st.integers(1, 8), min_size=2, max_size=5),
       hidden=st.sampled_from(HIDDEN), output=st.sampled_from(ACTIVATIONS),
       loss=st.sampled_from(LOSSES), alpha=st.sampled_from([0.0, 1e-3, 1.0]),
       n=st.integers(1, 30), seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 40),
       nt=st.sampled_from([1, 2, 3]))
def test_net_loss_grad_and_predict_match_reference(units, hidden, output, loss, alpha, n, seed,
                                                   batch, nt):
    """The core's Net (float64) for every output activation and loss, also the
    pairs no estimator uses, and networks without a hidden layer."""
    net = _core.Net(units, _core.ACTIVATIONS[hidden], _core.ACTIVATIONS[output],
                    _core.LOSSES[loss])
    sizes = sum(a * b + b for a, b in zip(units[:-1], units[1:]))
    assert net.n_params == sizes and net.n_outputs == units[-1]
    rng = np.random.default_rng(seed)
    params = rng.standard_normal(net.n_params) / 2
    coefs, intercepts = split_arena(params, units)
    X = rng.standard_normal((n, units[0]))
    if loss in CE_LOSSES:
        Y = rng.uniform(0, 1, (n, units[-1]))
        Y[rng.random(Y.shape) < 0.5] = 0.0
        # output pre-activations away from where the clip at eps decides
        z = reference.forward(coefs, intercepts, X, hidden, "identity")[-1]
        top = float(np.max(np.abs(z)))
        if top > 10:
            coefs[-1] *= 10 / top
            intercepts[-1] *= 10 / top
        if output in ("identity", "relu", "tanh"):  # outputs that may leave (0, 1)
            p = reference.forward(coefs, intercepts, X, hidden, output)[-1]
            gap = np.minimum(np.abs(p), np.abs(p - 1))
            if np.any((gap > 0) & (gap < 1e-6)):
                return  # within a hair of the clip at eps: the last bit decides
    else:
        Y = rng.standard_normal((n, units[-1]))
    grads = np.full_like(params, np.nan)
    ws = np.empty(net.workspace_size(n))

    value = net.loss_grad(grads, params, X, Y, alpha, ws, nt)

    ref_loss, ref_cg, ref_ig = reference.loss_and_gradients(coefs, intercepts, X, Y, hidden,
                                                            output, loss, alpha)
    assert math.isfinite(value)
    np.testing.assert_allclose(value, ref_loss, rtol=1e-10, atol=1e-300)
    cg, ig = split_arena(grads, units)
    w_scales, b_scales = gradient_scales(coefs, intercepts, X, Y, hidden, output, loss, alpha)
    depth, width = len(units) - 1, max(units)
    assert_gradients_close(cg, ref_cg, w_scales, np.float64, depth, n, width, "W grads")
    assert_gradients_close(ig, ref_ig, b_scales, np.float64, depth, n, width, "b grads")
    # the same bits for any thread count
    grads1 = np.empty_like(params)
    assert net.loss_grad(grads1, params, X, Y, alpha, ws, 1) == value
    np.testing.assert_array_equal(grads1, grads)

    # predictions, in blocks of `batch` rows, on `nt` threads
    out = np.empty((n, units[-1]))
    ws = np.empty(net.workspace_size(batch) * nt)
    net.predict(out, params, X, ws, batch, nt)
    ref_acts = reference.forward(coefs, intercepts, X, hidden, output)
    err = abs_forward_error(coefs, intercepts, ref_acts)
    if output == "step":  # rounding may flip a step at z = 0: only 0s and 1s
        assert np.all((out == 0) | (out == 1))
    else:
        tol = 8 * depth * (width + 4) * eps(np.float64) * err + 1e-300
        assert np.all(np.abs(out - ref_acts[-1]) <= tol)
    out1 = np.empty_like(out)
    net.predict(out1, params, X, np.empty(net.workspace_size(n)), n, 1)
    np.testing.assert_array_equal(out, out1)  # whatever the blocks and threads


SOLVERS = {
    "gd": dict(solver="sgd", momentum=0.0, nesterovs_momentum=False),
    "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "adam": dict(solver="adam", beta_1=0.8, beta_2=0.99, epsilon=1e-7),
}


@props(80)
@given(kind=st.sampled_from(["regressor", "binary", "multiclass", "multilabel"]),
       activation=st.sampled_from(HIDDEN), solver=st.sampled_from(sorted(SOLVERS)),
       data=st.data(), n=st.integers(5, 30), n_features=st.integers(1, 6),
       batch_size=st.one_of(st.none(), st.integers(1, 40)), n_epochs=st.integers(1, 3),
       lr=st.sampled_from([1e-3, 0.01, 0.05]), alpha=st.sampled_from([0.0, 1e-3]),
       seed=st.integers(0, 2**32 - 1))
def test_training_matches_reference_train(kind, activation, solver, data, n, n_features,
                                          batch_size, n_epochs, lr, alpha, seed):
    """A few epochs (float64, no shuffling) from the same weights follow
    reference.train: every update rule, minibatch split and loss bookkeeping."""
    hidden, n_out = data.draw(architectures(kind))
    cls, output, loss_name = KINDS[kind]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    y, Y = make_targets(rng, kind, n, n_out)
    opts = SOLVERS[solver]
    with quiet():
        m = cls(hidden, activation=activation, alpha=alpha, dtype="float64", max_iter=1,
                tol=None, random_state=0, batch_size=batch_size, shuffle=False,
                learning_rate_init=lr, **opts).fit(X, y)
        for W, b in zip(m.coefs_, m.intercepts_):
            W[...] = 0.5 * rng.standard_normal(W.shape)
            b[...] = 0.5 * rng.standard_normal(b.shape)
        W0, b0 = [f64(W).copy() for W in m.coefs_], [f64(b).copy() for b in m.intercepts_]
        m.set_params(warm_start=True, max_iter=n_epochs)
        m.fit(X, y)
    coefs, intercepts, losses = reference.train(
        W0, b0, X, Y, activation, output, loss_name, opts["solver"],
        n if batch_size is None else min(batch_size, n), n_epochs, lr, alpha=alpha,
        momentum=opts.get("momentum", 0.9), nesterov=opts.get("nesterovs_momentum", True),
        beta1=opts.get("beta_1", 0.9), beta2=opts.get("beta_2", 0.999),
        epsilon=opts.get("epsilon", 1e-8))
    for got, want in zip(m.coefs_ + m.intercepts_, coefs + intercepts):
        scale = max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11 * scale)
    np.testing.assert_allclose(m.loss_curve_[-n_epochs:], losses, rtol=1e-9)


# ---------------------------------------------------------------------------
# fuzzing: nothing crashes
# ---------------------------------------------------------------------------

FUZZ_FLOAT_DTYPES = [np.float64, np.float32, np.float16, np.dtype(">f8")]
FUZZ_OTHER_DTYPES = [np.int8, np.int64, np.uint64, np.bool_, np.complex128, np.dtype("<U3")]


@st.composite
def any_array(draw, max_side=5, huge=True, nonfinite=True):
    """An array of any kind: 0-3 dimensions (some empty), any dtype, NaN and
    infinity, huge or moderate values, any memory layout."""
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=ndim, max_size=ndim)))
    kind = draw(st.sampled_from(["float"] * 4 + ["other", "object"]))
    if kind == "float":
        dtype = np.dtype(draw(st.sampled_from(FUZZ_FLOAT_DTYPES)))
        width = {2: 16, 4: 32, 8: 64}[dtype.itemsize]
        bound = None if huge else 1e3
        if bound is None:
            elems = st.floats(allow_nan=nonfinite, allow_infinity=nonfinite, width=width)
        else:
            elems = st.floats(-bound, bound, width=width)
            if nonfinite:
                elems = st.one_of(elems, st.sampled_from([np.nan, np.inf, -np.inf]))
        a = draw(hnp.arrays(dtype, shape, elements=elems))
    elif kind == "other":
        dtype = np.dtype(draw(st.sampled_from(FUZZ_OTHER_DTYPES)))
        if dtype.kind in "iu" and not huge:
            info = np.iinfo(dtype)
            elems = st.integers(max(info.min, -1000), min(info.max, 1000))
        elif dtype.kind == "c" and not huge:
            elems = st.complex_numbers(max_magnitude=1e3)
        else:
            elems = hnp.from_dtype(dtype)
        a = draw(hnp.arrays(dtype, shape, elements=elems))
    else:
        a = draw(hnp.arrays(object, shape, elements=st.one_of(
            st.none(), st.integers(-10**30 if huge else -1000, 10**30 if huge else 1000),
            st.floats(allow_nan=nonfinite, allow_infinity=nonfinite),
            st.text(max_size=2))))
    if a.ndim:
        how = draw(st.sampled_from(["C", "F", "strided", "reversed", "readonly"]))
        a = relayout(a, how)
    return a


def any_input(huge=True):
    """An array of any kind, or something that is not an array at all."""
    return st.one_of(
        any_array(huge=huge), any_array(huge=huge),
        st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=3),
        st.lists(st.lists(st.floats(-10, 10), max_size=3), max_size=3),  # maybe ragged
        st.just({}), st.just(object()))


def check_outcome(fn, *args, **kwargs):
    """Run fn: returns (True, result), or (False, exception) for an expected
    exception; anything else propagates and fails the test."""
    try:
        return True, fn(*args, **kwargs)
    except EXPECTED as exc:
        return False, exc


@st.composite
def mostly(draw, valid, junk):
    """A value from `valid` three times in four, else one of the `junk` values."""
    if draw(st.integers(0, 3)) == 3:  # (Hypothesis favours small integers)
        return draw(st.sampled_from(list(junk)))
    return draw(valid)


JUNK_NAMES = (None, "", "RELU", "sigmoid", "half_squared_error", 3, b"relu", ["tanh"])
JUNK_NUMBERS = (0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e300, 5e-324, 2**70,
                -2**70, None, "0.1", True, [0.1], 1j)
act_names = mostly(st.sampled_from(ACTIVATIONS), JUNK_NAMES)
loss_names = mostly(st.sampled_from(LOSSES), JUNK_NAMES + ("relu",))
n_threads = mostly(st.sampled_from([None, 1, 2, 3]), (0, -1, 2**31, 2**70, 1.5, "2", 4096))


@props(150)
@given(data=st.data(), fn=st.sampled_from(["activation", "activation_backward", "loss",
                                           "output_delta", "dense_forward", "dense_backward",
                                           "sgd_update", "adam_update"]),
       well_formed=st.sampled_from([True, True, False]))
def test_ops_fuzz_never_crash(data, fn, well_formed):
    """Arbitrary arguments to every kernel: a result of the documented dtype and
    shape, or ValueError / TypeError / OverflowError / MemoryError."""
    draw = data.draw
    if well_formed:
        # float arrays of one dtype (NaN, infinity and huge values included), so
        # the calls get past the argument checks into the core; sometimes empty,
        # sometimes with a mismatched shape
        dtype = draw(st.sampled_from(DTYPES))
        dim = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 0])
        n, k, m = draw(dim), draw(dim), draw(dim)
        n2 = draw(dim) if draw(st.integers(0, 4)) == 4 else n
        elems = st.floats(width=32 if dtype == np.float32 else 64)
        fl = lambda *shape: draw(hnp.arrays(dtype, shape, elements=elems))  # noqa: E731
        arrays = {"2d": [fl(n, m), fl(n2, m), fl(n, m)], "x": fl(n2, k), "W": fl(k, m),
                  "b": fl(m), "1d": [fl(m), fl(m), fl(m), fl(m if n2 == n else n2)]}
    else:
        arr = lambda: draw(any_input())  # noqa: E731
        arrays = {"2d": [arr(), arr(), arr()], "x": arr(), "W": arr(), "b": arr(),
                  "1d": [arr(), arr(), arr(), arr()]}
    snapshot = [np.array(a, copy=True) for a in arrays["2d"] + [arrays["x"], arrays["W"]]
                if isinstance(a, np.ndarray)]
    positive = st.floats(1e-6, 10.0)
    unit = st.floats(0.0, 0.999)
    with quiet():
        if fn == "activation":
            ok, res = check_outcome(ops.activation, arrays["2d"][0], draw(act_names))
        elif fn == "activation_backward":
            ok, res = check_outcome(ops.activation_backward, *arrays["2d"][:2],
                                    draw(act_names))
        elif fn == "loss":
            ok, res = check_outcome(ops.loss, *arrays["2d"][:2], draw(loss_names))
        elif fn == "output_delta":
            ok, res = check_outcome(ops.output_delta, *arrays["2d"][:2], draw(act_names),
                                    draw(loss_names))
        elif fn == "dense_forward":
            ok, res = check_outcome(ops.dense_forward, arrays["x"], arrays["W"], arrays["b"],
                                    draw(act_names), n_threads=draw(n_threads))
        elif fn == "dense_backward":
            ok, res = check_outcome(ops.dense_backward, arrays["2d"][0], arrays["x"],
                                    arrays["W"], alpha=draw(mostly(positive, JUNK_NUMBERS)),
                                    need_dx=draw(st.booleans()), n_threads=draw(n_threads))
        elif fn == "sgd_update":
            ok, res = check_outcome(ops.sgd_update, *arrays["1d"][:2], arrays["1d"][3],
                                    draw(mostly(positive, JUNK_NUMBERS)),
                                    draw(mostly(unit, JUNK_NUMBERS)), draw(st.booleans()))
        else:
            ok, res = check_outcome(ops.adam_update, *arrays["1d"],
                                    draw(mostly(positive, JUNK_NUMBERS)),
                                    draw(mostly(unit, JUNK_NUMBERS)),
                                    draw(mostly(unit, JUNK_NUMBERS)),
                                    draw(mostly(positive, JUNK_NUMBERS)),
                                    draw(mostly(st.integers(1, 10**6),
                                                (0, -1, 2**64, 2**70, 1.5, float("nan"), "1"))))
    event(f"{fn}: {'ok' if ok else type(res).__name__}")
    if not ok:
        assert str(res), "an exception without a message"
        return
    # inputs that are not updated in place are left alone
    if fn not in ("sgd_update", "adam_update"):
        after = [a for a in arrays["2d"] + [arrays["x"], arrays["W"]]
                 if isinstance(a, np.ndarray)]
        for a, a0 in zip(after, snapshot):
            np.testing.assert_array_equal(a, a0)
    if fn == "loss":
        assert isinstance(res, float)
    elif fn in ("sgd_update", "adam_update"):
        assert res is None
    elif fn == "dense_backward":
        dx, dW, db = res
        W = arrays["W"]
        assert dW.shape == W.shape and db.shape == (W.shape[1],) and dW.dtype == W.dtype
        assert dx is None or dx.shape == arrays["x"].shape
    else:
        src = arrays["x"] if fn == "dense_forward" else arrays["2d"][0]
        assert isinstance(res, np.ndarray) and res.dtype == src.dtype and res.ndim == 2
        if fn == "dense_forward":
            assert res.shape == (src.shape[0], arrays["W"].shape[1])
        else:
            assert res.shape == src.shape


@pytest.mark.parametrize("fn,which", [
    ("sgd_update", "lr"), ("sgd_update", "momentum"), ("adam_update", "lr"),
    ("adam_update", "beta1"), ("adam_update", "beta2"), ("adam_update", "epsilon"),
    ("dense_backward", "alpha")])
@props(10)
@given(dtype=dtypes, value=st.sampled_from([np.inf, -np.inf, np.nan]), size=st.integers(1, 10))
def test_ops_reject_non_finite_hyperparameters(fn, which, dtype, value, size):
    """A NaN or infinite learning rate, momentum, beta, epsilon or alpha is
    refused, instead of turning finite weights into NaN or infinity or
    silently skipping the step."""
    p = np.linspace(-1, 1, size).astype(dtype)
    g = np.linspace(1, -1, size).astype(dtype)
    state = [np.zeros(size, dtype), np.zeros(size, dtype)]
    hp = dict(lr=0.01, momentum=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8, alpha=0.1)
    hp[which] = value
    with pytest.raises(ValueError):
        if fn == "sgd_update":
            ops.sgd_update(p, state[0], g, hp["lr"], hp["momentum"])
        elif fn == "adam_update":
            ops.adam_update(p, state[0], state[1], g, hp["lr"], hp["beta1"], hp["beta2"],
                            hp["epsilon"], 1)
        else:
            ops.dense_backward(g.reshape(-1, 1), p.reshape(-1, 1), np.ones((1, 1), dtype),
                               alpha=hp["alpha"])


@props(40)
@given(dtype=dtypes, fn=st.sampled_from(["sgd", "adam", "dense_backward"]),
       lr=st.sampled_from([1e-30, 1e-3, 1.0, 1e39, 1e300]),
       epsilon=st.sampled_from([1e-300, 1e-50, 1e-8, 1.0, 1e30]),
       alpha=st.sampled_from([0.0, 1.0, 1e3]), seed=st.integers(0, 2**32 - 1),
       size=st.integers(1, 10))
# the cases found so far, checked whatever the generated examples
@example(dtype=np.float32, fn="sgd", lr=1e39, epsilon=1e-8, alpha=0.0, seed=0, size=3)
@example(dtype=np.float32, fn="adam", lr=1e-3, epsilon=1e-50, alpha=0.0, seed=0, size=3)
def test_ops_finite_when_the_exact_result_is_representable(dtype, fn, lr, epsilon, alpha, seed,
                                                           size):
    """Finite inputs and in-range hyperparameters whose exact result is a finite
    number of the dtype give that finite result (or a clear ValueError), also
    when a hyperparameter itself does not fit the array's dtype.

    Regression (fixed): in float32, adam_update with epsilon below ~1e-45 (it
    becomes 0 in float32: 0/0 = NaN where g = 0), and sgd_update with lr above
    ~3.4e38 (it becomes inf: inf * 0 = NaN where g = 0)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(-10, 10, size).astype(dtype)
    g = rng.uniform(-10, 10, size).astype(dtype)
    g[0] = 0.0  # a weight whose gradient is zero: its exact update is zero
    if lr > 1:
        g[:] = 0.0  # keep the exact result p - lr * (...) representable
    if fn == "sgd":
        v = np.zeros(size, dtype)
        ok, _ = check_outcome(ops.sgd_update, p, v, g, lr, 0.0)
        if ok:
            assert np.all(np.isfinite(p)) and np.all(np.isfinite(v)), (p, v)
    elif fn == "adam":
        m, v = np.zeros(size, dtype), np.zeros(size, dtype)
        ok, _ = check_outcome(ops.adam_update, p, m, v, g, lr, 0.9, 0.999, epsilon, 1)
        if ok:
            assert np.all(np.isfinite(p)), p
    else:
        # dW = x^T delta / n + alpha W / n with exact values far below the dtype's max
        x = rng.uniform(-10, 10, (3, size)).astype(dtype)
        W = rng.uniform(-10, 10, (size, 2)).astype(dtype)
        d = rng.uniform(-10, 10, (3, 2)).astype(dtype)
        dx, dW, db = ops.dense_backward(d, x, W, alpha=alpha)
        assert all(np.all(np.isfinite(a)) for a in (dx, dW, db))


@props(150)
@given(units=st.lists(st.one_of(st.integers(-3, 6), st.sampled_from(
           [0, 2**31, 2**62, 2**63 - 1, 2**63, 2**64, -2**63])), min_size=0, max_size=5),
       codes=st.lists(st.one_of(st.integers(-2, 7), st.sampled_from([2**31, 2**70, 1.5])),
                      min_size=3, max_size=3),
       batch=st.one_of(st.integers(-1, 50), st.sampled_from([2**40, 2**63, 2**64])))
def test_net_constructor_fuzz(units, codes, batch):
    """Arbitrary unit counts (zero, negative, overflowing), activation and loss
    codes and batch sizes: the Net is built and sized, or a clear exception."""
    ok, net = check_outcome(_core.Net, units, *codes)
    if not ok:
        return
    assert len(units) >= 2 and all(u >= 1 for u in units)
    assert 0 <= codes[1] <= 5 and 0 <= codes[2] <= 3  # output activation, loss
    if len(units) > 2:  # hidden layers: identity, logistic, tanh or relu
        assert 0 <= codes[0] <= 3
    expected = sum(a * b + b for a, b in zip(units[:-1], units[1:]))
    assert net.n_params == expected
    ok, size = check_outcome(net.workspace_size, batch)
    if ok:
        assert batch >= 1 and size >= 1


# ---- estimators -------------------------------------------------------------

# Valid values of each hyperparameter (kept small: a few epochs of a few
# units), and values that must be refused (or, for some huge but valid ones,
# must fail fast or run).
COMMON_VALID = {
    "max_iter": st.integers(1, 3),
    "tol": st.one_of(st.none(), st.floats(0, 1e3)),
    "n_iter_no_change": st.one_of(st.integers(1, 5), st.just(2**70)),
    "batch_size": st.one_of(st.none(), st.just("auto"), st.integers(1, 50), st.just(2**70)),
    "shuffle": st.sampled_from([True, False, np.bool_(True)]),
    "random_state": st.one_of(st.integers(0, 2**32 - 1),
                              st.builds(np.random.RandomState, st.integers(0, 9))),
    "warm_start": st.booleans(),
    "dtype": st.sampled_from(["float32", "float64", np.float32, "f8"]),
    "n_threads": st.sampled_from([None, 1, 2, 3, 4096]),
    "learning_rate_init": st.one_of(st.floats(1e-4, 0.5), st.sampled_from([1e300, 5e-324])),
}
COMMON_JUNK = {
    "max_iter": (0, -1, 2.0, "3", None, True),
    "tol": (-1e-4, float("nan"), float("inf"), "0.1"),
    "n_iter_no_change": (0, -1, 2.5, None),
    "batch_size": (0, -1, "big", 1.5, True),
    "shuffle": (0, 1, "yes", None),
    "random_state": (-1, 2**32, 1.5, "0"),
    "warm_start": (0, "no", None),
    "dtype": ("float16", "int32", None, 3, np.float16, "complex128"),
    "n_threads": (0, -1, 4097, 2**70, 1.5, "2"),
    "learning_rate_init": (0.0, -0.1, float("nan"), float("inf"), "0.1", None),
}
MLP_VALID = {
    **COMMON_VALID,
    "hidden_layer_sizes": st.one_of(st.integers(1, 6),
                                    st.lists(st.integers(1, 6), min_size=1, max_size=3),
                                    st.builds(np.array, st.lists(st.integers(1, 4),
                                                                 min_size=1, max_size=2))),
    "activation": st.sampled_from(HIDDEN),
    "solver": st.sampled_from(["sgd", "adam"]),
    "alpha": st.floats(0, 1),  # (huge alphas: test_huge_alpha_...)
    "learning_rate": st.sampled_from(["constant", "invscaling", "adaptive"]),
    "power_t": st.one_of(st.floats(0, 2), st.just(400.0)),
    "momentum": st.floats(0, 1),
    "nesterovs_momentum": st.booleans(),
    "beta_1": st.floats(0, 0.99),
    "beta_2": st.floats(0, 0.9999),
    "epsilon": st.one_of(st.floats(1e-10, 1.0), st.sampled_from([5e-324, 1e300])),
}
MLP_JUNK = {
    **COMMON_JUNK,
    # absurd sizes must be refused before anything is allocated
    "hidden_layer_sizes": ((), 0, -1, (0,), (3, -2), (1.5,), "abc", None, (10**10,),
                           (2**40,), (2**62, 2**62), (2**70,), (10**5,) * 3, [3, None],
                           (True,), 2.0),
    "activation": ("softmax", "step", "RELU", None, 1),
    "solver": ("lbfgs", "newton", None),
    "alpha": (-1e-4, float("nan"), float("inf"), "a"),
    "learning_rate": ("fast", None),
    "power_t": (-0.5, float("nan")),
    "momentum": (1.5, -0.1, float("nan")),
    "nesterovs_momentum": (1, None),
    "beta_1": (1.0, -0.1, float("nan")),
    "beta_2": (1.0, 2.0, float("nan")),
    "epsilon": (0.0, -1e-8, float("nan")),
}
PERCEPTRON_VALID = {**COMMON_VALID, "activation": st.sampled_from(["logistic", "step"])}
PERCEPTRON_JUNK = {**COMMON_JUNK, "activation": ("relu", "identity", None)}
ESTIMATOR_PARAMS = {pynn.MLPClassifier: (MLP_VALID, MLP_JUNK),
                    pynn.MLPRegressor: (MLP_VALID, MLP_JUNK),
                    pynn.Perceptron: (PERCEPTRON_VALID, PERCEPTRON_JUNK)}


@st.composite
def hyperparameters(draw, cls):
    """Some hyperparameters set to valid values and, in a third of the
    examples, one or two set to values that must be refused."""
    valid, junk = ESTIMATOR_PARAMS[cls]
    chosen = draw(st.sets(st.sampled_from(sorted(valid))))
    params = {name: draw(valid[name]) for name in sorted(chosen)}
    if draw(st.integers(0, 2)) == 2:
        for name in sorted(draw(st.sets(st.sampled_from(sorted(junk)), min_size=1,
                                        max_size=2))):
            params[name] = draw(st.sampled_from(junk[name]))
    params.setdefault("max_iter", 2)  # the defaults (200 or 1000 epochs) take too long
    params.setdefault("random_state", 0)
    return params


@st.composite
def valid_data(draw, cls, n_features=None, huge=False):
    """A finite X of float or integer dtype and targets suited to the estimator."""
    n = draw(st.sampled_from([2, 3, 5, 8, 12, 1]))
    f = n_features if n_features is not None else draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_]))
    if dtype == np.bool_:
        X = draw(hnp.arrays(dtype, (n, f)))
    elif dtype == np.int64:
        X = draw(hnp.arrays(dtype, (n, f), elements=st.integers(-100, 100)))
    else:
        bound = representable(1e30 if huge else 100.0, dtype)
        X = draw(hnp.arrays(dtype, (n, f), elements=st.floats(
            -bound, bound, width=32 if dtype == np.float32 else 64)))
    if cls is pynn.MLPRegressor:
        shape = draw(st.sampled_from([(n,), (n, 1), (n, 2)]))
        y = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e3, 1e3)))
    elif cls is pynn.MLPClassifier and draw(st.booleans()):
        y = draw(hnp.arrays(np.int64, (n, draw(st.integers(2, 3))), elements=st.integers(0, 1)))
    else:
        labels = draw(st.sampled_from([[0, 1], [0, 1, 2], ["a", "b"], [-1.5, 2.5],
                                       [True, False]]))
        y = draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n))
        if n >= 2 and draw(st.integers(0, 3)) < 3:
            y[:2] = labels[:2]  # usually at least two classes
        y = np.array(y)
    return X, y


def check_finite_model(m):
    """Whatever happened, the weights of a model that has any are finite."""
    arrays = list(getattr(m, "coefs_", [])) + list(getattr(m, "intercepts_", []))
    arrays += [getattr(m, name) for name in ("coef_", "intercept_") if hasattr(m, name)]
    for a in arrays:
        assert np.all(np.isfinite(a)), "the weights hold NaN or infinity"


def check_result(m, method, res):
    """The result of a successful call is finite and well formed."""
    if method in ("fit", "partial_fit"):
        assert res is m
        assert math.isfinite(m.loss_)
        return
    if method == "score":
        assert isinstance(res, float) and math.isfinite(res)
        return
    if method == "loss_and_gradients":
        loss, *grads = res
        assert isinstance(loss, float) and math.isfinite(loss) and loss >= 0
        for g in grads:
            for a in (g if isinstance(g, list) else [g]):
                assert np.all(np.isfinite(a))
        return
    if method == "forward_layers":
        for a in res:
            assert np.all(np.isfinite(a))
        return
    res = np.asarray(res)
    if method == "predict" and not isinstance(m, pynn.MLPRegressor):
        if getattr(m, "_multilabel", False):
            assert set(np.unique(res)) <= {0, 1}
        else:
            assert np.all(np.isin(res, m.classes_))
        return
    assert res.dtype.kind == "f" and np.all(np.isfinite(res)), f"{method} gave {res}"
    if method == "predict_proba":
        assert np.all((res >= 0) & (res <= 1))
        if not getattr(m, "_multilabel", False):
            np.testing.assert_allclose(res.sum(axis=1), 1.0, rtol=1e-5)


METHODS = ["predict", "predict_proba", "decision_function", "score", "loss_and_gradients",
           "forward_layers", "partial_fit", "fit", "pickle"]


@props(150)
@given(cls=st.sampled_from([pynn.MLPClassifier, pynn.MLPRegressor, pynn.Perceptron]),
       data=st.data())
def test_estimators_fuzz_never_crash(cls, data):
    """Arbitrary hyperparameters and data to fit, then arbitrary calls: each one
    returns finite, well-formed results or raises an expected exception, and
    the weights stay finite whatever fails."""
    draw = data.draw
    params = draw(hyperparameters(cls))
    m = cls(**params)
    if draw(st.integers(0, 3)) < 3:
        X, y = draw(valid_data(cls, huge=draw(st.integers(0, 3)) == 3))
    else:
        X, y = draw(any_input()), draw(any_input())
    with quiet():
        ok, res = check_outcome(m.fit, X, y)
        event(f"fit: {'ok' if ok else type(res).__name__}")
        if ok:
            check_result(m, "fit", res)
        check_finite_model(m)
        for method in draw(st.lists(st.sampled_from(METHODS), max_size=4)):
            n_features = getattr(m, "n_features_in_", None)
            if draw(st.integers(0, 2)) < 2:
                X2, y2 = draw(valid_data(cls, n_features=n_features))
            else:
                X2, y2 = draw(any_input(huge=False)), draw(any_input(huge=False))
            if method == "pickle":
                ok, m2 = check_outcome(lambda: pickle.loads(pickle.dumps(m)))
                assert ok, m2
                ok1, r1 = check_outcome(m.predict, X2)
                ok2, r2 = check_outcome(m2.predict, X2)
                assert ok1 == ok2
                if ok1:
                    np.testing.assert_array_equal(r1, r2)
                continue
            fn = getattr(m, method, None)
            if fn is None:  # e.g. predict_proba of a step Perceptron
                continue
            args = (X2,) if method in ("predict", "predict_proba", "decision_function",
                                       "forward_layers") else (X2, y2)
            ok, res = check_outcome(fn, *args)
            event(f"{method}: {'ok' if ok else type(res).__name__}")
            if ok:
                check_result(m, method, res)
            check_finite_model(m)


BIG = {"max": 1.0, "-max": -1.0, "max/2": 0.5}  # fractions of the dtype's largest float


@props(60)
@given(cls=st.sampled_from([pynn.MLPClassifier, pynn.MLPRegressor, pynn.Perceptron]),
       dtype=st.sampled_from(["float32", "float64"]), activation=st.sampled_from(HIDDEN),
       hidden=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       n_classes=st.integers(2, 3),
       values=st.lists(st.sampled_from(["max", "-max", "max/2", 1e30, -1e30, 0.0, 1.0]),
                       min_size=3, max_size=3),
       method=st.sampled_from(["predict", "predict_proba", "decision_function",
                               "loss_and_gradients"]))
# the cases found so far, checked whatever the generated examples
@example(cls=pynn.MLPClassifier, dtype="float64", activation="identity", hidden=[5, 3],
         n_classes=3, values=["max", "max", "max"], method="predict_proba")
@example(cls=pynn.MLPClassifier, dtype="float64", activation="identity", hidden=[5, 3],
         n_classes=3, values=["max", "max", "max"], method="loss_and_gradients")
@example(cls=pynn.MLPRegressor, dtype="float32", activation="relu", hidden=[5],
         n_classes=2, values=["max", "max", "max"], method="predict")
def test_huge_finite_inputs_give_finite_results_or_raise(cls, dtype, activation, hidden,
                                                         n_classes, values, method):
    """Finite inputs near the top of the dtype's range: the result is finite, or
    a clear ValueError (e.g. 'the prediction overflows'); never NaN
    probabilities, infinite predictions or a NaN loss returned as a result.

    Regression (fixed): e.g. MLPClassifier(activation='identity', dtype='float64')
    .predict_proba([[1.7e308, 1.7e308, 1.7e308]]) returns NaN probabilities
    (and predict() then silently answers classes_[0]); MLPRegressor.predict
    returns inf; loss_and_gradients returns a NaN loss and NaN gradients."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    y = np.arange(12) % (2 if cls is pynn.Perceptron else n_classes)
    if cls is pynn.MLPRegressor:
        y = X[:, 0]
    kw = dict(max_iter=2, random_state=0, dtype=dtype)
    if cls is not pynn.Perceptron:
        kw.update(hidden_layer_sizes=tuple(hidden), activation=activation)
    with quiet():
        m = cls(**kw).fit(X, y)
    top = float(np.finfo(dtype).max)
    row = [BIG[v] * top if isinstance(v, str) else v for v in values]
    X_big = np.array([row, [top] * 3, [-top] * 3], dtype=dtype)
    fn = getattr(m, method, None)
    if fn is None:
        return
    args = (X_big, y[:3]) if method == "loss_and_gradients" else (X_big,)
    with quiet():
        ok, res = check_outcome(fn, *args)
    if ok:
        check_result(m, method, res)


@props(40)
@given(cls=st.sampled_from([pynn.MLPClassifier, pynn.MLPRegressor, pynn.Perceptron]),
       dtype=st.sampled_from(["float32", "float64"]), activation=st.sampled_from(HIDDEN),
       solver=st.sampled_from(["sgd", "adam"]), scale=st.sampled_from([1.0, 1e6, 1e12, 1e30]),
       seed=st.integers(0, 2**32 - 1))
@example(cls=pynn.MLPRegressor, dtype="float64", activation="identity", solver="sgd",
         scale=1e30, seed=0)
@example(cls=pynn.MLPRegressor, dtype="float32", activation="identity", solver="sgd",
         scale=1e6, seed=0)
def test_a_successful_fit_gives_a_finite_model(cls, dtype, activation, solver, scale, seed):
    """Unscaled (large but finite) training data: fit either raises
    (DivergenceError) or returns a model whose predictions and loss on its own
    training data are finite.

    Regression (fixed): training that blew up without the loss or the weights
    reaching NaN/infinity during the epochs is not caught: the last update is
    never checked.  E.g. with X = 1e6 * default_rng(0).standard_normal((6, 2)),
    MLPRegressor((3,), activation='identity', solver='sgd', dtype='float32',
    max_iter=2, random_state=0).fit(X, y) returns normally with loss_curve_
    [1.9e10, 1.5e44] and weights of 5e33, and predict(X) is [-inf, nan, ...];
    in float64 (X ~ 1e30) loss_curve_ reaches 2e281, weights 1e223, and
    predict() gives inf, loss_and_gradients() an infinite loss."""
    rng = np.random.default_rng(seed)
    X = scale * rng.standard_normal((6, 2))
    y = np.array([0, 1, 0, 1, 1, 0]) if cls is not pynn.MLPRegressor else rng.standard_normal(6)
    kw = dict(max_iter=2, random_state=0, dtype=dtype)
    if cls is not pynn.Perceptron:
        kw.update(hidden_layer_sizes=(3,), activation=activation, solver=solver)
    m = cls(**kw)
    with quiet():
        ok, _ = check_outcome(m.fit, X, y)
        if not ok:
            return
        check_finite_model(m)
        assert all(math.isfinite(v) for v in m.loss_curve_)
        check_result(m, "predict", m.predict(X))
        if hasattr(m, "predict_proba"):
            check_result(m, "predict_proba", m.predict_proba(X))
        check_result(m, "loss_and_gradients", m.loss_and_gradients(X, y))


@props(20)
@given(cls=st.sampled_from([pynn.MLPClassifier, pynn.MLPRegressor]),
       dtype=st.sampled_from(["float32", "float64"]),
       alpha=st.sampled_from([1e30, 1e38, 1e100, 1e300]))
@example(cls=pynn.MLPRegressor, dtype="float32", alpha=1e300)
def test_huge_alpha_gives_finite_gradients_or_raises(cls, dtype, alpha):
    """A huge (finite, valid) L2 penalty: loss_and_gradients returns a finite
    loss and finite gradients, or raises; never infinite gradients.

    Regression (fixed): in float32, once alpha * W / n exceeds float32's range:
    MLPRegressor(dtype='float32') fitted, then set_params(alpha=1e300):
    loss_and_gradients returns a finite loss (~1e300, a float64) but
    coef_grads of +-inf."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((12, 3))
    y = X[:, 0] if cls is pynn.MLPRegressor else np.arange(12) % 2
    with quiet():
        m = cls((4,), max_iter=2, random_state=0, dtype=dtype).fit(X, y)
    m.set_params(alpha=alpha)
    ok, res = check_outcome(m.loss_and_gradients, X, y)
    if ok:
        check_result(m, "loss_and_gradients", res)


def test_too_many_hidden_layers_is_a_clear_error():
    """More hidden layers than the core supports (256 layers in all) is refused
    with a message that says so.

    Regression (fixed): fit raised ValueError('training: unsupported combination
    of options'), which did not say what to change."""
    X = np.random.default_rng(0).standard_normal((6, 2))
    m = pynn.MLPRegressor(hidden_layer_sizes=(2,) * 300, max_iter=1)
    with quiet(), pytest.raises(ValueError, match="layer"):
        m.fit(X, X[:, 0])
