"""The kernels of pynn.ops, one by one, against the NumPy reference.

float32 results are compared with the float64 reference evaluated on the very
same (float32) inputs, so only the kernel's own rounding is measured.  Sums
(matrix products) are checked against a rigorous bound of their rounding
error, k * eps * max(sum |terms|), so any summation order or blocking passes
while a wrong index does not.

The tests named test_reference_* check the reference itself against finite
differences and need nothing from pynn.
"""

import math
import zlib

import numpy as np
import pytest

import reference
from pynn import ops

ACTIVATIONS = reference.ACTIVATIONS  # identity logistic tanh relu softmax step
ELEMENTWISE = reference.ELEMENTWISE_ACTIVATIONS
LOSSES = reference.LOSSES
CE_LOSSES = ("binary_cross_entropy", "categorical_cross_entropy")
DTYPES = (np.float32, np.float64)

# Per-dtype tolerances of one kernel call (a few roundings deep).
TOL = {
    np.float32: dict(rtol=1e-5, atol=1e-6),
    np.float64: dict(rtol=1e-12, atol=1e-13),
}


def tol(dtype):
    return TOL[np.dtype(dtype).type]


def eps(dtype):
    return float(np.finfo(dtype).eps)


def dtype_id(dtype):
    return np.dtype(dtype).name


def make_rng(*key):
    """A generator seeded deterministically from the test's parameters."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def f64(a):
    return np.asarray(a, dtype=np.float64)


def sum_bound(k, abs_sum, dtype):
    """Bound on the rounding error of sums of k terms whose absolute values
    sum to abs_sum (gamma_k = k u, u = eps / 2), doubled for safety and for
    the final rounding of the result.  Valid for any summation order."""
    return (k + 2) * eps(dtype) * float(np.max(abs_sum, initial=0.0))


dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------

ACT_SHAPES = [(1, 1), (1, 7), (5, 1), (13, 17), (64, 33)]


@dtypes
@pytest.mark.parametrize("shape", ACT_SHAPES, ids=str)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_numpy(name, shape, dtype):
    rng = make_rng("activation", name, shape, dtype_id(dtype))
    z = (3.0 * rng.standard_normal(shape)).astype(dtype)
    if name in ("relu", "step"):
        z.flat[::3] = 0.0  # the kink / jump itself: relu(0) = 0, step(0) = 1
    z_before = z.copy()

    out = ops.activation(z, name)

    assert isinstance(out, np.ndarray)
    assert out.dtype == np.dtype(dtype)
    assert out.shape == shape
    np.testing.assert_array_equal(z, z_before)  # the input is left alone
    np.testing.assert_allclose(out, reference.activation(f64(z), name), **tol(dtype))


@dtypes
def test_step_is_one_at_zero(dtype):
    z = np.array([[-1.0, -0.0, 0.0, 1e-30, -1e-30]], dtype=dtype)
    out = ops.activation(z, "step")
    np.testing.assert_array_equal(out, [[0.0, 1.0, 1.0, 1.0, 0.0]])


@dtypes
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_large_magnitudes(name, dtype):
    rng = make_rng("activation-large", name, dtype_id(dtype))
    z = rng.uniform(-1000.0, 1000.0, size=(16, 9))
    z[0, :] = 1000.0  # all equal and huge: softmax must give 1/9 each
    z[1, :] = -1000.0
    z[2, :] = np.where(np.arange(9) % 2 == 0, 1000.0, -1000.0)
    z[3, :] = np.array([1000.0] + [-1000.0] * 8)
    z[4, :] = np.array([-1000.0] * 8 + [999.0])
    z[5, :] = 0.0
    z[6, :] = np.linspace(-1000.0, 1000.0, 9)
    z = z.astype(dtype)

    with np.errstate(all="ignore"):  # the reference may underflow, harmlessly
        expected = reference.activation(f64(z), name)
    out = ops.activation(z, name)

    assert out.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(out)), "overflow or NaN"
    np.testing.assert_allclose(out, expected, **tol(dtype))
    if name == "logistic":
        assert np.all((out >= 0.0) & (out <= 1.0))
    if name == "tanh":
        assert np.all((out >= -1.0) & (out <= 1.0))
    if name == "softmax":
        assert np.all((out >= 0.0) & (out <= 1.0))
        np.testing.assert_allclose(
            np.sum(f64(out), axis=1), np.ones(z.shape[0]), rtol=10 * eps(dtype) * z.shape[1]
        )
        np.testing.assert_allclose(out[0], np.full(9, 1.0 / 9.0), **tol(dtype))


# ---------------------------------------------------------------------------
# activation_backward
# ---------------------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("shape", ACT_SHAPES, ids=str)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_matches_numpy(name, shape, dtype):
    rng = make_rng("activation_backward", name, shape, dtype_id(dtype))
    z = 2.0 * rng.standard_normal(shape)
    a = reference.activation(z, name).astype(dtype)  # a cached output
    delta = rng.standard_normal(shape).astype(dtype)
    a_before, delta_before = a.copy(), delta.copy()

    out = ops.activation_backward(delta, a, name)

    assert out.dtype == np.dtype(dtype)
    assert out.shape == shape
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(delta, delta_before)
    expected = reference.activation_backward(f64(delta), f64(a), name)
    scale = max(1.0, float(np.max(np.abs(delta))))  # softmax's sum can cancel
    t = tol(dtype)
    np.testing.assert_allclose(out, expected, rtol=t["rtol"], atol=t["atol"] * scale)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_backward_finite_differences(name):
    """delta * f'(z), taken from the cached output a = f(z), equals
    delta * (f(z + h) - f(z - h)) / 2h."""
    rng = make_rng("activation_backward_fd", name)
    z = rng.uniform(-3.0, 3.0, size=(6, 5))
    if name in ("relu", "step"):
        z = np.where(np.abs(z) < 0.05, 0.5, z)  # stay away from the kink at 0
    delta = rng.standard_normal(z.shape)
    h = 1e-5

    a = ops.activation(z, name)
    out = ops.activation_backward(delta, a, name)

    fd = (ops.activation(z + h, name) - ops.activation(z - h, name)) / (2 * h)
    np.testing.assert_allclose(out, delta * fd, rtol=1e-7, atol=1e-9)


def test_softmax_backward_finite_differences():
    """Softmax backward is the vector-Jacobian product: it equals the gradient
    with respect to z of  sum_j delta_j softmax(z)_j , row by row."""
    rng = make_rng("softmax_backward_fd")
    z = 2.0 * rng.standard_normal((5, 4))
    delta = rng.standard_normal(z.shape)
    h = 1e-5

    a = ops.activation(z, "softmax")
    out = ops.activation_backward(delta, a, "softmax")

    fd = np.empty_like(z)
    for k, j in np.ndindex(z.shape):
        zp, zm = z[k : k + 1].copy(), z[k : k + 1].copy()
        zp[0, j] += h
        zm[0, j] -= h
        gp = np.sum(delta[k] * ops.activation(zp, "softmax")[0])
        gm = np.sum(delta[k] * ops.activation(zm, "softmax")[0])
        fd[k, j] = (gp - gm) / (2 * h)
    np.testing.assert_allclose(out, fd, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------

LOSS_SHAPES = [(1, 1), (5, 1), (8, 3), (64, 10)]


def make_loss_data(rng, name, shape):
    """Predictions and targets that are valid for the loss (float64)."""
    n, m = shape
    if name in ("half_squared_error", "squared_error"):
        return rng.standard_normal(shape), rng.standard_normal(shape)
    if name == "binary_cross_entropy":
        y_hat = rng.uniform(0.02, 0.98, size=shape)
        y = rng.uniform(0.0, 1.0, size=shape)
        y.flat[::4] = 0.0
        y.flat[1::4] = 1.0
        return y_hat, y
    # categorical: probability rows and one-hot targets
    y_hat = reference.activation(rng.standard_normal(shape), "softmax")
    if m == 1:
        y_hat = rng.uniform(0.05, 1.0, size=shape)
    y = np.zeros(shape)
    y[np.arange(n), rng.integers(0, m, size=n)] = 1.0
    return y_hat, y


@dtypes
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=str)
@pytest.mark.parametrize("name", LOSSES)
def test_loss_matches_numpy(name, shape, dtype):
    rng = make_rng("loss", name, shape, dtype_id(dtype))
    y_hat, y = (a.astype(dtype) for a in make_loss_data(rng, name, shape))

    value = ops.loss(y_hat, y, name)

    assert isinstance(value, float)
    # The reference in the input's dtype: the clip eps is that dtype's.
    expected = reference.loss(y_hat, y, name)
    np.testing.assert_allclose(value, expected, rtol=tol(dtype)["rtol"], atol=0.0)


@dtypes
@pytest.mark.parametrize("shape", [(13, 7), (9, 64), (3, 130)], ids=str)
def test_categorical_cross_entropy_of_soft_targets_matches_numpy(shape, dtype):
    """Targets that are not one-hot (every value, some or none of a row
    nonzero): the core finds the nonzero ones 64 at a time, across rows."""
    rng = make_rng("soft-ce", shape, dtype_id(dtype))
    y_hat = reference.activation(rng.standard_normal(shape), "softmax").astype(dtype)
    y = rng.uniform(0.0, 1.0, size=shape)
    y.flat[::5] = 0.0
    y[1] = 0.0  # a row without any target
    y.flat[62:66] = [0.0, 0.25, 0.5, 0.0]  # across the first block of 64
    y = y.astype(dtype)
    value = ops.loss(y_hat, y, "categorical_cross_entropy")
    expected = reference.loss(y_hat, y, "categorical_cross_entropy")
    np.testing.assert_allclose(value, expected, rtol=tol(dtype)["rtol"], atol=0.0)


@dtypes
@pytest.mark.parametrize("name", CE_LOSSES)
def test_cross_entropy_finite_at_zero_and_one(name, dtype):
    if name == "binary_cross_entropy":
        y_hat = [[0.0, 1.0, 0.5], [1.0, 0.0, 0.25], [0.0, 1.0, 1.0]]
        y = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.3]]
    else:
        y_hat = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
        y = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    y_hat = np.array(y_hat, dtype=dtype)
    y = np.array(y, dtype=dtype)

    value = ops.loss(y_hat, y, name)

    assert math.isfinite(value)
    expected = reference.loss(y_hat, y, name)  # log clipped at eps of dtype
    np.testing.assert_allclose(value, expected, rtol=tol(dtype)["rtol"])


@dtypes
@pytest.mark.parametrize("name", LOSSES)
def test_loss_of_perfect_predictions(name, dtype):
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
    value = ops.loss(y.copy(), y, name)
    # 0 for squared errors; about -log(1 - eps) per entry for cross-entropies.
    assert 0.0 <= value <= 10 * eps(dtype)


# ---------------------------------------------------------------------------
# output_delta
# ---------------------------------------------------------------------------

OUTPUT_DELTA_SHAPES = [(1, 3), (6, 1), (5, 4), (16, 7)]


def make_output_data(rng, activation, loss, shape):
    """Pre-activations z and targets y (float64) valid for the pair: for the
    cross-entropies f(z) lies well inside (0, 1), for relu z stays away from 0."""
    n, m = shape
    if loss in CE_LOSSES and activation in ("identity", "relu"):
        z = rng.uniform(0.05, 0.95, size=shape)
    elif loss in CE_LOSSES and activation == "tanh":
        z = rng.uniform(0.05, 1.5, size=shape)
    elif activation == "relu":
        z = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)
    elif activation == "logistic":
        z = rng.uniform(-3.0, 3.0, size=shape)
    else:
        z = 1.5 * rng.standard_normal(shape)
    if loss in ("half_squared_error", "squared_error"):
        y = rng.standard_normal(shape)
    elif loss == "binary_cross_entropy":
        y = rng.uniform(0.0, 1.0, size=shape)
        y.flat[::3] = 0.0
        y.flat[1::3] = 1.0
    else:
        y = np.zeros(shape)
        y[np.arange(n), rng.integers(0, m, size=n)] = 1.0
    return z, y


def skip_degenerate(activation, shape):
    """Softmax over one column is the constant 1: its delta must be exactly 0
    (or y_hat - y when fused), which the comparisons below also cover."""


@dtypes
@pytest.mark.parametrize("shape", OUTPUT_DELTA_SHAPES, ids=str)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_output_delta_matches_numpy(activation, loss, shape, dtype):
    skip_degenerate(activation, shape)
    rng = make_rng("output_delta", activation, loss, shape, dtype_id(dtype))
    z, y = make_output_data(rng, activation, loss, shape)
    y_hat = reference.activation(z, activation).astype(dtype)
    y = y.astype(dtype)

    out = ops.output_delta(y_hat, y, activation, loss)

    assert out.dtype == np.dtype(dtype)
    assert out.shape == shape
    expected = reference.output_delta(f64(y_hat), f64(y), activation, loss)
    scale = max(1.0, float(np.max(np.abs(reference.loss_derivative(f64(y_hat), f64(y), loss)))))
    t = tol(dtype)
    np.testing.assert_allclose(out, expected, rtol=t["rtol"], atol=t["atol"] * scale)


@pytest.mark.parametrize("loss", LOSSES)
def test_output_delta_step_is_perceptron_rule(loss):
    y_hat = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(ops.output_delta(y_hat, y, "step", loss), y_hat - y)


@pytest.mark.parametrize("shape", [(1, 3), (6, 1), (5, 4)], ids=str)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu", "softmax"])
def test_output_delta_finite_differences(activation, loss, shape):
    """delta = d(n L)/dz = d(sum_k l_k)/dz.  Since l_k depends on row k only,
    d(sum_k l_k)/dz_kj = dl_k/dz_kj, the derivative of the loss of row k
    alone (n = 1); that is what is differenced, to keep rounding small."""
    skip_degenerate(activation, shape)
    rng = make_rng("output_delta_fd", activation, loss, shape)
    z, y = make_output_data(rng, activation, loss, shape)
    y_hat = ops.activation(z, activation)
    h = 1e-6

    delta = ops.output_delta(y_hat, y, activation, loss)

    def row_loss(zrow, k):
        return ops.loss(ops.activation(zrow, activation), y[k : k + 1], loss)

    fd = np.empty_like(z)
    for k, j in np.ndindex(z.shape):
        zp, zm = z[k : k + 1].copy(), z[k : k + 1].copy()
        zp[0, j] += h
        zm[0, j] -= h
        fd[k, j] = (row_loss(zp, k) - row_loss(zm, k)) / (2 * h)
    scale = max(1.0, float(np.max(np.abs(fd))))
    np.testing.assert_allclose(delta, fd, rtol=1e-7, atol=1e-8 * scale)


# ---------------------------------------------------------------------------
# dense layer
# ---------------------------------------------------------------------------

DENSE_SHAPES = [  # (n, n_in, n_out)
    (1, 1, 1),
    (1, 5, 3),
    (6, 1, 4),
    (7, 5, 1),
    (13, 17, 11),
    (33, 64, 31),
    (257, 300, 129),  # larger than any sensible block size, odd everywhere
]


def make_dense_data(rng, n, n_in, n_out, dtype):
    x = rng.uniform(-1.0, 1.0, size=(n, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / math.sqrt(n_in)).astype(dtype)
    b = rng.uniform(-0.5, 0.5, size=n_out).astype(dtype)
    return x, W, b


@dtypes
@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=str)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_forward_matches_numpy(activation, shape, dtype):
    n, n_in, n_out = shape
    rng = make_rng("dense_forward", activation, shape, dtype_id(dtype))
    x, W, b = make_dense_data(rng, n, n_in, n_out, dtype)
    inputs_before = [a.copy() for a in (x, W, b)]

    out = ops.dense_forward(x, W, b, activation)

    assert out.dtype == np.dtype(dtype)
    assert out.shape == (n, n_out)
    for before, after in zip(inputs_before, (x, W, b)):
        np.testing.assert_array_equal(before, after)
    z_ref = f64(x) @ f64(W) + f64(b)
    expected = reference.activation(z_ref, activation)
    # Error of z; every activation here is 1-Lipschitz, softmax 2-Lipschitz.
    z_err = sum_bound(n_in + 1, np.abs(f64(x)) @ np.abs(f64(W)) + np.abs(f64(b)), dtype)
    if activation == "step":
        assert np.all((out == 0.0) | (out == 1.0))
        sure = np.abs(z_ref) > 2 * z_err  # entries whose sign rounding cannot flip
        np.testing.assert_array_equal(out[sure], expected[sure])
    else:
        t = tol(dtype)
        np.testing.assert_allclose(out, expected, rtol=t["rtol"], atol=t["atol"] + 2 * z_err)


@dtypes
def test_dense_forward_default_is_identity(dtype):
    rng = make_rng("dense_forward_default", dtype_id(dtype))
    x, W, b = make_dense_data(rng, 4, 3, 2, dtype)
    out = ops.dense_forward(x, W, b)
    np.testing.assert_allclose(out, ops.dense_forward(x, W, b, activation="identity"), **tol(dtype))
    np.testing.assert_allclose(out, f64(x) @ f64(W) + f64(b), **tol(dtype))


@dtypes
@pytest.mark.parametrize("alpha", [0.0, 0.1])
@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=str)
def test_dense_backward_matches_numpy(shape, alpha, dtype):
    n, n_in, n_out = shape
    rng = make_rng("dense_backward", shape, alpha, dtype_id(dtype))
    x, W, _ = make_dense_data(rng, n, n_in, n_out, dtype)
    delta = rng.standard_normal((n, n_out)).astype(dtype)
    inputs_before = [a.copy() for a in (delta, x, W)]

    dx, dW, db = ops.dense_backward(delta, x, W, alpha=alpha)

    for before, after in zip(inputs_before, (delta, x, W)):
        np.testing.assert_array_equal(before, after)
    for got, want_shape in ((dx, (n, n_in)), (dW, (n_in, n_out)), (db, (n_out,))):
        assert got.dtype == np.dtype(dtype)
        assert got.shape == want_shape
    dx_ref, dW_ref, db_ref = reference.dense_backward(f64(delta), f64(x), f64(W), alpha)
    ad, ax, aW = np.abs(f64(delta)), np.abs(f64(x)), np.abs(f64(W))
    t = tol(dtype)
    np.testing.assert_allclose(
        dW, dW_ref, rtol=t["rtol"],
        atol=t["atol"] + sum_bound(n + 1, (ax.T @ ad + alpha * aW) / n, dtype),
    )
    np.testing.assert_allclose(
        db, db_ref, rtol=t["rtol"], atol=t["atol"] + sum_bound(n, np.sum(ad, axis=0) / n, dtype)
    )
    np.testing.assert_allclose(
        dx, dx_ref, rtol=t["rtol"], atol=t["atol"] + sum_bound(n_out, ad @ aW.T, dtype)
    )


@dtypes
@pytest.mark.parametrize("n_out", [10, 64, 65, 512, 513, 1100])
def test_bias_gradient_is_the_row_ordered_sum_bit_for_bit(n_out, dtype):
    """db[j] sums column j over the rows in order, from zero, then scales by
    1/n: the same bits for any thread count, whether the columns are summed a
    strip of registers at a time (few) or a block at a time over rows read
    in order (many; blocks of 512 columns, so 513 and 1100 end in a partial
    block)."""
    rng = make_rng("bias_gradient_bits", n_out, dtype_id(dtype))
    n, n_in = 37, 450  # (37 x 450 x n_out over 2^20 from 65 columns on: a team)
    x, W, _ = make_dense_data(rng, n, n_in, n_out, dtype)
    delta = (rng.standard_normal((n, n_out)) * 10.0 ** rng.integers(-3, 4, (n, n_out)))
    delta = delta.astype(dtype)
    acc = np.zeros(n_out, dtype)
    for row in delta:
        acc = acc + row
    want = acc * dtype(1.0 / n)
    for threads in (1, 2, 3):
        _, _, db = ops.dense_backward(delta, x, W, need_dx=False, n_threads=threads)
        np.testing.assert_array_equal(db, want, err_msg=f"{threads} threads")


@dtypes
@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_dense_backward_without_dx(alpha, dtype):
    rng = make_rng("dense_backward_no_dx", alpha, dtype_id(dtype))
    x, W, _ = make_dense_data(rng, 9, 6, 4, dtype)
    delta = rng.standard_normal((9, 4)).astype(dtype)

    dx, dW, db = ops.dense_backward(delta, x, W, alpha=alpha, need_dx=False)
    _, dW_full, db_full = ops.dense_backward(delta, x, W, alpha=alpha, need_dx=True)

    assert dx is None
    np.testing.assert_allclose(dW, dW_full, **tol(dtype))
    np.testing.assert_allclose(db, db_full, **tol(dtype))
    _, dW_ref, db_ref = reference.dense_backward(f64(delta), f64(x), f64(W), alpha)
    np.testing.assert_allclose(dW, dW_ref, **tol(dtype))
    np.testing.assert_allclose(db, db_ref, **tol(dtype))


# ---------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------

OPT_SIZES = [1, 7, 1000]


@dtypes
@pytest.mark.parametrize("size", OPT_SIZES)
@pytest.mark.parametrize(
    "momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)],
    ids=["plain", "momentum", "nesterov"],
)
def test_sgd_update_matches_numpy(momentum, nesterov, size, dtype):
    rng = make_rng("sgd", momentum, nesterov, size, dtype_id(dtype))
    lr = 0.05
    params = rng.standard_normal(size).astype(dtype)
    velocity = (0.1 * rng.standard_normal(size)).astype(dtype)
    p_ref, v_ref = f64(params).copy(), f64(velocity).copy()  # ops works in place
    t = tol(dtype)
    for _ in range(5):
        grads = rng.standard_normal(size).astype(dtype)
        grads_before = grads.copy()

        result = ops.sgd_update(params, velocity, grads, lr, momentum=momentum, nesterov=nesterov)

        assert result is None  # the update happens in place
        np.testing.assert_array_equal(grads, grads_before)
        assert params.dtype == np.dtype(dtype) and velocity.dtype == np.dtype(dtype)
        p_ref, v_ref = reference.sgd_update(p_ref, v_ref, f64(grads), lr, momentum, nesterov)
        np.testing.assert_allclose(params, p_ref, **t)
        np.testing.assert_allclose(velocity, v_ref, **t)


@dtypes
@pytest.mark.parametrize("size", OPT_SIZES)
@pytest.mark.parametrize(
    "lr,beta1,beta2,epsilon", [(1e-3, 0.9, 0.999, 1e-8), (0.05, 0.5, 0.9, 1e-4)],
    ids=["defaults", "other"],
)
def test_adam_update_matches_numpy(lr, beta1, beta2, epsilon, size, dtype):
    rng = make_rng("adam", lr, size, dtype_id(dtype))
    params = rng.standard_normal(size).astype(dtype)
    m = np.zeros(size, dtype=dtype)
    v = np.zeros(size, dtype=dtype)
    p_ref, m_ref, v_ref = f64(params).copy(), f64(m).copy(), f64(v).copy()
    tl = tol(dtype)
    for step in range(1, 6):
        grads = rng.standard_normal(size).astype(dtype)
        grads_before = grads.copy()

        result = ops.adam_update(params, m, v, grads, lr, beta1, beta2, epsilon, step)

        assert result is None
        np.testing.assert_array_equal(grads, grads_before)
        p_ref, m_ref, v_ref = reference.adam_update(
            p_ref, m_ref, v_ref, f64(grads), lr, beta1, beta2, epsilon, step
        )
        np.testing.assert_allclose(params, p_ref, **tl)
        np.testing.assert_allclose(m, m_ref, **tl)
        np.testing.assert_allclose(v, v_ref, **tl)


# ---------------------------------------------------------------------------
# a network small enough to work by hand
# ---------------------------------------------------------------------------


def test_tiny_network_worked_by_hand():
    """2 inputs -> 2 logistic hidden units -> 1 logistic output, BCE loss,
    one sample x = (1, 2) with target y = 1.  Every number below is written
    out by hand from the weights; nothing comes from the reference."""
    x = np.array([[1.0, 2.0]])
    y = np.array([[1.0]])
    W1 = np.array([[0.1, 0.2], [0.3, 0.4]])
    b1 = np.array([0.1, -0.1])
    W2 = np.array([[0.5], [-0.5]])
    b2 = np.array([0.2])

    # forward
    z1_0 = 1 * 0.1 + 2 * 0.3 + 0.1  # 0.8
    z1_1 = 1 * 0.2 + 2 * 0.4 - 0.1  # 0.9
    a1_0 = 1 / (1 + math.exp(-z1_0))
    a1_1 = 1 / (1 + math.exp(-z1_1))
    z2 = 0.5 * a1_0 - 0.5 * a1_1 + 0.2
    a2 = 1 / (1 + math.exp(-z2))
    bce = -math.log(a2)  # y = 1: -[1 log a2 + 0 log(1 - a2)]

    # backward: logistic output + BCE gives delta2 = a2 - y
    d2 = a2 - 1
    dW2 = [[a1_0 * d2], [a1_1 * d2]]  # a1^T delta2 / n, n = 1
    db2 = [d2]
    g1_0, g1_1 = 0.5 * d2, -0.5 * d2  # delta2 W2^T
    d1_0 = g1_0 * a1_0 * (1 - a1_0)  # times sigma' = a (1 - a)
    d1_1 = g1_1 * a1_1 * (1 - a1_1)
    dW1 = [[1 * d1_0, 1 * d1_1], [2 * d1_0, 2 * d1_1]]  # x^T delta1
    db1 = [d1_0, d1_1]
    dx = [[d1_0 * 0.1 + d1_1 * 0.2, d1_0 * 0.3 + d1_1 * 0.4]]  # delta1 W1^T

    close = dict(rtol=1e-12, atol=1e-15)
    # ops, chained by hand
    z1 = ops.dense_forward(x, W1, b1, "identity")
    np.testing.assert_allclose(z1, [[z1_0, z1_1]], **close)
    a1 = ops.dense_forward(x, W1, b1, "logistic")
    np.testing.assert_allclose(a1, [[a1_0, a1_1]], **close)
    np.testing.assert_allclose(ops.activation(z1, "logistic"), [[a1_0, a1_1]], **close)
    a2_ops = ops.dense_forward(a1, W2, b2, "logistic")
    np.testing.assert_allclose(a2_ops, [[a2]], **close)
    np.testing.assert_allclose(ops.loss(a2_ops, y, "binary_cross_entropy"), bce, **close)

    delta2 = ops.output_delta(a2_ops, y, "logistic", "binary_cross_entropy")
    np.testing.assert_allclose(delta2, [[d2]], **close)
    g1, dW2_ops, db2_ops = ops.dense_backward(delta2, a1, W2)
    np.testing.assert_allclose(dW2_ops, dW2, **close)
    np.testing.assert_allclose(db2_ops, db2, **close)
    np.testing.assert_allclose(g1, [[g1_0, g1_1]], **close)
    delta1 = ops.activation_backward(g1, a1, "logistic")
    np.testing.assert_allclose(delta1, [[d1_0, d1_1]], **close)
    dx_ops, dW1_ops, db1_ops = ops.dense_backward(delta1, x, W1)
    np.testing.assert_allclose(dW1_ops, dW1, **close)
    np.testing.assert_allclose(db1_ops, db1, **close)
    np.testing.assert_allclose(dx_ops, dx, **close)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


def arr(*shape, dtype=np.float64):
    return np.full(shape, 0.5, dtype=dtype)


BAD_CALLS = {
    "activation-unknown-name": lambda: ops.activation(arr(3, 4), "sigmoid"),
    "activation_backward-unknown-name": lambda: ops.activation_backward(
        arr(3, 4), arr(3, 4), "sigmoid"
    ),
    "activation_backward-shapes": lambda: ops.activation_backward(arr(3, 4), arr(3, 5), "tanh"),
    "activation_backward-transposed": lambda: ops.activation_backward(
        arr(3, 4), arr(4, 3), "tanh"
    ),
    "activation_backward-dtypes": lambda: ops.activation_backward(
        arr(3, 4, dtype=np.float32), arr(3, 4), "tanh"
    ),
    "loss-unknown-name": lambda: ops.loss(arr(3, 4), arr(3, 4), "hinge"),
    "loss-shapes": lambda: ops.loss(arr(3, 4), arr(3, 5), "squared_error"),
    "loss-transposed": lambda: ops.loss(arr(3, 4), arr(4, 3), "squared_error"),
    "loss-dtypes": lambda: ops.loss(arr(3, 4, dtype=np.float32), arr(3, 4), "squared_error"),
    "output_delta-unknown-activation": lambda: ops.output_delta(
        arr(3, 4), arr(3, 4), "sigmoid", "squared_error"
    ),
    "output_delta-unknown-loss": lambda: ops.output_delta(
        arr(3, 4), arr(3, 4), "logistic", "hinge"
    ),
    "output_delta-shapes": lambda: ops.output_delta(
        arr(3, 4), arr(3, 5), "logistic", "binary_cross_entropy"
    ),
    "output_delta-dtypes": lambda: ops.output_delta(
        arr(3, 4), arr(3, 4, dtype=np.float32), "logistic", "binary_cross_entropy"
    ),
    "dense_forward-x-W": lambda: ops.dense_forward(arr(3, 4), arr(5, 2), arr(2), "identity"),
    "dense_forward-W-b": lambda: ops.dense_forward(arr(3, 4), arr(4, 2), arr(3), "identity"),
    "dense_forward-unknown-activation": lambda: ops.dense_forward(
        arr(3, 4), arr(4, 2), arr(2), "sigmoid"
    ),
    "dense_forward-x32-W64": lambda: ops.dense_forward(
        arr(3, 4, dtype=np.float32), arr(4, 2), arr(2, dtype=np.float32), "identity"
    ),
    "dense_forward-b32": lambda: ops.dense_forward(
        arr(3, 4), arr(4, 2), arr(2, dtype=np.float32), "identity"
    ),
    "dense_backward-delta-W": lambda: ops.dense_backward(arr(3, 2), arr(3, 4), arr(4, 5)),
    "dense_backward-rows": lambda: ops.dense_backward(arr(3, 2), arr(4, 4), arr(4, 2)),
    "dense_backward-x-W": lambda: ops.dense_backward(arr(3, 2), arr(3, 4), arr(5, 2)),
    "dense_backward-dtypes": lambda: ops.dense_backward(
        arr(3, 2), arr(3, 4, dtype=np.float32), arr(4, 2)
    ),
    "sgd_update-sizes": lambda: ops.sgd_update(arr(5), arr(4), arr(5), 0.1),
    "sgd_update-grad-size": lambda: ops.sgd_update(arr(5), arr(5), arr(6), 0.1),
    "sgd_update-dtypes": lambda: ops.sgd_update(
        arr(5, dtype=np.float32), arr(5), arr(5, dtype=np.float32), 0.1
    ),
    "adam_update-sizes": lambda: ops.adam_update(
        arr(5), arr(5), arr(4), arr(5), 1e-3, 0.9, 0.999, 1e-8, 1
    ),
    "adam_update-dtypes": lambda: ops.adam_update(
        arr(5), arr(5), arr(5), arr(5, dtype=np.float32), 1e-3, 0.9, 0.999, 1e-8, 1
    ),
}


@pytest.mark.parametrize("call", list(BAD_CALLS.values()), ids=list(BAD_CALLS))
def test_bad_input_raises(call):
    with pytest.raises((ValueError, TypeError)):
        call()


# ---------------------------------------------------------------------------
# the reference itself (needs nothing from pynn)
# ---------------------------------------------------------------------------

HIDDEN = ("identity", "logistic", "tanh", "relu")
OUTPUT_LOSS = (
    ("identity", "half_squared_error"),
    ("logistic", "binary_cross_entropy"),
    ("softmax", "categorical_cross_entropy"),
    ("logistic", "squared_error"),
)


def make_network(rng, units, n, output, loss):
    coefs = [rng.standard_normal((a, b)) / math.sqrt(a) for a, b in zip(units[:-1], units[1:])]
    intercepts = [0.5 * rng.standard_normal(b) for b in units[1:]]
    X = rng.standard_normal((n, units[0]))
    m = units[-1]
    if loss == "categorical_cross_entropy":
        Y = np.zeros((n, m))
        Y[np.arange(n), rng.integers(0, m, size=n)] = 1.0
    elif output == "logistic":
        Y = rng.uniform(0.0, 1.0, size=(n, m))
        Y[0] = 1.0
        Y[1] = 0.0
    else:
        Y = rng.standard_normal((n, m))
    return coefs, intercepts, X, Y


def relative_error(got, want):
    got = np.concatenate([np.ravel(g) for g in got])
    want = np.concatenate([np.ravel(w) for w in want])
    return np.linalg.norm(got - want) / np.linalg.norm(want)


@pytest.mark.parametrize("alpha", [0.0, 0.1])
@pytest.mark.parametrize("output,loss", OUTPUT_LOSS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_reference_gradients_match_finite_differences(hidden, output, loss, alpha):
    rng = make_rng("reference-gradients", hidden, output, loss, alpha)
    units = [3, 5, 4, 3]
    coefs, intercepts, X, Y = make_network(rng, units, 7, output, loss)
    # For relu, finite differences must not straddle the kink at 0.
    a = X
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        z = a @ W + b
        if hidden == "relu":
            assert np.min(np.abs(z)) > 1e-4
        a = reference.activation(z, hidden)

    value, coef_grads, intercept_grads = reference.loss_and_gradients(
        coefs, intercepts, X, Y, hidden, output, loss, alpha
    )

    def f():
        return reference.loss_and_gradients(
            coefs, intercepts, X, Y, hidden, output, loss, alpha
        )[0]

    assert isinstance(value, float) and math.isfinite(value)
    numeric = reference.numerical_gradient(f, coefs + intercepts)
    assert relative_error(coef_grads + intercept_grads, numeric) < 1e-7
    for g, p in zip(coef_grads + intercept_grads, coefs + intercepts):
        assert g.shape == p.shape


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_reference_activation_derivative_finite_differences(name):
    rng = make_rng("reference-derivative", name)
    z = rng.uniform(-3.0, 3.0, size=(4, 6))
    if name in ("relu", "step"):
        z = np.where(np.abs(z) < 0.05, 0.5, z)
    h = 1e-5
    fd = (reference.activation(z + h, name) - reference.activation(z - h, name)) / (2 * h)
    got = reference.activation_derivative(reference.activation(z, name), name)
    np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu", "softmax"])
def test_reference_output_delta_finite_differences(activation, loss):
    rng = make_rng("reference-output-delta", activation, loss)
    z, y = make_output_data(rng, activation, loss, (5, 4))
    h = 1e-6
    delta = reference.output_delta(reference.activation(z, activation), y, activation, loss)
    # d(n L)/dz over the whole batch here (ops tests difference one row at a time)
    n = z.shape[0]

    def total():
        return n * reference.loss(reference.activation(z, activation), y, loss)

    (fd,) = reference.numerical_gradient(total, [z], eps=h)
    scale = max(1.0, float(np.max(np.abs(fd))))
    np.testing.assert_allclose(delta, fd, rtol=1e-7, atol=1e-8 * scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_reference_keeps_dtype(dtype):
    z = np.linspace(-2, 2, 12).reshape(3, 4).astype(dtype)
    for name in ACTIVATIONS:
        assert reference.activation(z, name).dtype == np.dtype(dtype)
    W = np.ones((4, 2), dtype=dtype)
    b = np.ones(2, dtype=dtype)
    assert reference.dense_forward(z, W, b, "tanh").dtype == np.dtype(dtype)
    for g in reference.dense_backward(z[:, :2], z, W, 0.1):
        assert g.dtype == np.dtype(dtype)


def test_reference_train_loss_bookkeeping():
    """With a zero learning rate nothing moves, so the epoch loss must be the
    full-batch data loss plus one alpha term per batch:
        sum_b (L_b + alpha/2 ||W||^2 / r_b) r_b / n = L + n_batches alpha/2 ||W||^2 / n."""
    rng = make_rng("reference-train-bookkeeping")
    coefs, intercepts, X, Y = make_network(rng, [3, 4, 2], 10, "logistic", "binary_cross_entropy")
    alpha = 0.3
    before = [a.copy() for a in coefs + intercepts + [X, Y]]
    for solver in ("sgd", "adam"):
        c, i, losses = reference.train(
            coefs, intercepts, X, Y, "tanh", "logistic", "binary_cross_entropy",
            solver, batch_size=4, n_epochs=2, learning_rate=0.0, alpha=alpha,
        )
        data = reference.loss(
            reference.forward(coefs, intercepts, X, "tanh", "logistic")[-1],
            Y, "binary_cross_entropy",
        )
        l2 = sum(float(np.sum(W * W)) for W in coefs)
        expected = data + 3 * 0.5 * alpha * l2 / 10  # batches of 4, 4 and 2 rows
        np.testing.assert_allclose(losses, [expected, expected], rtol=1e-13)
        for p, q in zip(c + i, coefs + intercepts):
            np.testing.assert_array_equal(p, q)
    for a, b in zip(before, coefs + intercepts + [X, Y]):
        np.testing.assert_array_equal(a, b)


def test_reference_train_one_full_batch_step():
    """One epoch of one full batch is exactly one optimizer step."""
    rng = make_rng("reference-train-step")
    coefs, intercepts, X, Y = make_network(
        rng, [3, 4, 3], 6, "softmax", "categorical_cross_entropy"
    )
    args = (X, Y, "relu", "softmax", "categorical_cross_entropy")
    value, cg, ig = reference.loss_and_gradients(coefs, intercepts, *args, alpha=0.01)
    lr = 0.1

    c, i, losses = reference.train(
        coefs, intercepts, *args, "sgd", batch_size=6, n_epochs=1,
        learning_rate=lr, alpha=0.01, momentum=0.0, nesterov=False,
    )
    assert losses == [value]
    for p_new, p, g in zip(c + i, coefs + intercepts, cg + ig):
        np.testing.assert_allclose(p_new, p - lr * g, rtol=1e-15, atol=1e-15)

    c, i, losses = reference.train(
        coefs, intercepts, *args, "adam", batch_size=6, n_epochs=1,
        learning_rate=lr, alpha=0.01,
    )
    for p_new, p, g in zip(c + i, coefs + intercepts, cg + ig):
        want, _, _ = reference.adam_update(p, 0 * p, 0 * p, g, lr, 0.9, 0.999, 1e-8, 1)
        np.testing.assert_allclose(p_new, want, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_reference_train_decreases_loss(solver):
    rng = make_rng("reference-train-decreases", solver)
    coefs, intercepts, X, Y = make_network(rng, [2, 8, 1], 40, "identity", "half_squared_error")
    Y = np.sin(X[:, :1]) + 0.5 * X[:, 1:]
    _, _, losses = reference.train(
        coefs, intercepts, X, Y, "tanh", "identity", "half_squared_error", solver,
        batch_size=8, n_epochs=30, learning_rate=0.02 if solver == "sgd" else 0.01,
    )
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 16, 33, 1000])
def test_all_finite_finds_every_nan_and_infinity(dtype, n):
    """The core's check of the data to fit (every position, so the vector
    loop's tail too; NaN with any payload, both infinities; the largest finite
    values and denormals pass)."""
    from pynn import _core
    info = np.finfo(dtype)
    x = np.linspace(-1, 1, n).astype(dtype)
    x[:: max(1, n // 3)] = info.max
    x[1 % n] = -info.max
    x[(n // 2)] = info.tiny / 4  # a denormal
    assert _core.all_finite(x)
    nans = [np.nan, -np.nan, np.inf, -np.inf]
    if dtype == np.float32:
        nans.append(np.array(0x7F800001, np.uint32).view(np.float32))  # signalling NaN
    else:
        nans.append(np.array(0x7FF0000000000001, np.uint64).view(np.float64))
        nans.append(np.array(0xFFF8000000000000, np.uint64).view(np.float64))
    for i in sorted({0, n // 2, n - 1, max(0, n - 2)}):
        for bad in nans:
            y = x.copy()
            y[i] = bad
            assert not _core.all_finite(y), (i, bad)
    assert _core.all_finite(x[:0])
    with pytest.raises(ValueError, match="contiguous"):
        _core.all_finite(np.zeros(4, dtype)[::2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_on_threads_finds_a_nan_in_any_share(dtype):
    """A large array is checked by a team, each thread a contiguous share: a
    NaN or infinity in any share, or at a share's edge, is found."""
    from pynn import _core
    n = (3 << 20) + 5  # past the point where a team starts
    x = np.ones(n, dtype)
    for threads in (1, 2, 3, 0):
        assert _core.all_finite(x, threads)
        for i in (0, n // 3, n // 2 - 1, n // 2, n // 2 + 1, 2 * n // 3, n - 1):
            for bad in (np.nan, -np.inf):
                x[i] = bad
                assert not _core.all_finite(x, threads), (threads, i)
                x[i] = 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copy_into_on_threads_copies_every_value(dtype):
    """The core's copy of a run's weight vectors (snapshots, early stopping's
    best): every value and bit (NaN payloads, -0.0) lands, alone or on a team
    (each thread a share: the shares' edges included); lengths that differ and
    buffers that overlap are refused."""
    from pynn import _core
    rng = np.random.default_rng(0)
    for n in (0, 1, 17, (1 << 20) + 7, (3 << 20) + 5):
        src = rng.standard_normal(n).astype(dtype)
        if n > 2:
            src[n // 2] = -0.0
            src[n // 3] = np.nan
            src[-1] = np.inf
        for threads in (1, 2, 3, 0):
            dst = np.full(n, 7, dtype)
            _core.copy_into(dst, src, threads)
            assert dst.tobytes() == src.tobytes(), (n, threads)
    a = np.zeros(10, dtype)
    with pytest.raises(ValueError, match="lengths differ"):
        _core.copy_into(a, np.zeros(9, dtype))
    with pytest.raises(ValueError, match="overlap"):
        _core.copy_into(a[1:], a[:-1])
    with pytest.raises(ValueError, match="contiguous"):
        _core.copy_into(a[::2], np.zeros(5, dtype))
    with pytest.raises((ValueError, TypeError)):
        _core.copy_into(np.zeros(4, np.float32), np.zeros(4, np.float64))
