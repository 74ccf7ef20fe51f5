"""Plain gradient descent (SGD, momentum 0) is applied by the backward pass as
each layer's weight gradient comes out of its product (the product's epilogue
writes W + -(lr dW)), except in the last step of a call, whose gradients give
the velocity left behind.  A call of one step is therefore never fused: the
same steps one call at a time must give exactly the bits of one long call --
weights, epoch losses (the L2 term's sums of squares taken on the way) and the
velocity -- on every path, thread count, K blocking, input kind and mode."""
import numpy as np
import pytest
import scipy.sparse as sp

from pynn import _core, _sparse


def _trainer(units, X, Y, dtype, alpha, shuffle, batch, bf16=False):
    rng = np.random.default_rng(3)
    net = _core.Net(units, _core.ACTIVATIONS["relu"], _core.ACTIVATIONS["softmax"],
                    _core.LOSSES["categorical_cross_entropy"], bf16=bf16)
    params = (0.3 * rng.standard_normal(net.n_params)).astype(dtype)
    grads, velocity = np.zeros_like(params), np.zeros_like(params)
    ws = np.zeros(_sparse.workspace_size(net, X, batch), dtype)
    t = _core.Trainer(net, params, grads, velocity, None, _sparse.core_input(X), Y,
                      np.arange(X.shape[0], dtype=np.int64), ws, batch, shuffle, 11)
    t.set_optimizer(_core.SOLVERS["sgd"], 0.05, 0.0, False, 0.9, 0.999, 1e-8, alpha)
    return t, params, velocity


def _train(t, steps, per_call, threads):
    losses, done = [], 0
    while done < steps:
        n, loss, diverged = t.run(min(per_call, steps - done), threads)
        assert not diverged and n > 0
        done += n
        if loss is not None:
            losses.append(loss)
    return losses


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [0.0, 1e-3])
@pytest.mark.parametrize("kind", ["dense", "sparse", "deep-batch", "bf16"])
def test_fused_steps_give_the_bits_of_gradient_then_step(simd, dtype, alpha, kind):
    if kind == "bf16" and dtype != np.float32:
        pytest.skip("the bfloat16 mode keeps float32 weights")
    rng = np.random.default_rng(0)
    # deep-batch: a batch past the kernels' K block (256), so the weight
    # gradient's partial sums are parked between blocks before the update
    n, nin, batch, steps = (700, 40, 300, 7) if kind == "deep-batch" else (157, 30, 20, 25)
    units = [nin, 48, 24, 5]
    X = rng.standard_normal((n, nin)).astype(dtype)
    if kind == "sparse":
        X = sp.csr_matrix(np.where(rng.random((n, nin)) < 0.3, X, 0).astype(dtype))
    Y = np.eye(5, dtype=dtype)[rng.integers(0, 5, n)]
    for threads in (1, 2):
        for shuffle in (False, True):
            got = []
            for per_call in (steps, 1):
                t, params, velocity = _trainer(units, X, Y, dtype, alpha, shuffle, batch,
                                               bf16=kind == "bf16")
                losses = _train(t, steps, per_call, threads)
                got.append((params.copy(), velocity.copy(), losses))
            (p1, v1, l1), (p2, v2, l2) = got
            assert np.array_equal(p1, p2), (threads, shuffle)
            assert np.array_equal(v1, v2), (threads, shuffle)
            assert l1 == l2 and len(l1) >= 1, (threads, shuffle)
            assert np.all(np.isfinite(p1))


def test_a_nonfinite_loss_stops_before_any_fused_update():
    """The step whose loss is NaN changes no weight, fused or not."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 8)).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 80)]
    Y[45, 1] = np.nan  # in the third batch of 20, neither an epoch's last nor the call's
    for threads in (1, 2):
        t, params, _ = _trainer([8, 16, 3], X, Y, np.float32, 0.0, False, 20)
        n, loss, diverged = t.run(2, threads)
        assert n == 2 and not diverged
        before = params.copy()
        n, loss, diverged = t.run(5, threads)
        assert diverged and n == 0
        assert np.array_equal(params, before)
