"""Plain gradient descent (SGD, momentum 0) is applied by the backward pass as
each layer's weight gradient comes out of its product (the product's epilogue
writes W + v, v = -(lr dW)), and the last step of a call writes the velocity v
it leaves.  It must give exactly the bits of the gradient and then the SGD
step (the core's loss_grad, then sgd_update): weights, velocity and epoch
losses (with the L2 term's sums of squares taken on the way), on every path,
thread count, K blocking, input kind and mode.  Layers whose W is over the
core's limit (internal.h: PYNN_SGD_FUSE_MAX_BYTES, 64 MiB; tests set 2 MiB,
_core.sgd_fuse_max_kib) are updated by the separate pass instead, or, above
the first layer, in slices between the tiles of the layer below's weight
gradient, with the same bits; fused layers of 2 MiB or more keep no packed
copy of W for the forward products (PYNN_WPACK_MAX_BYTES)."""
import numpy as np
import pytest
import scipy.sparse as sp

from pynn import _core, _sparse

LR = 0.05
LIMIT_KIB = _core.sgd_fuse_max_kib()  # (the core's own, read before any test sets another)


@pytest.fixture
def fuse_limit():
    """Sets the fused update's limit (KiB; None: the core's own) for a test,
    and restores the core's own after it."""
    def set_limit(kib):
        _core.sgd_fuse_max_kib(LIMIT_KIB if kib is None else kib)
    yield set_limit
    _core.sgd_fuse_max_kib(LIMIT_KIB)


def test_the_fused_update_limit_is_read_and_set(fuse_limit):
    assert LIMIT_KIB == 64 << 10
    fuse_limit(2048)
    assert _core.sgd_fuse_max_kib() == 2048
    for bad in (-1, 1.5, "2", 2 ** 31):
        with pytest.raises(ValueError):
            _core.sgd_fuse_max_kib(bad)
    assert _core.sgd_fuse_max_kib() == 2048


def _trainer(units, X, Y, dtype, alpha, shuffle, batch, bf16=False):
    rng = np.random.default_rng(3)
    net = _core.Net(units, _core.ACTIVATIONS["relu"], _core.ACTIVATIONS["softmax"],
                    _core.LOSSES["categorical_cross_entropy"], bf16=bf16)
    params = (0.3 * rng.standard_normal(net.n_params)).astype(dtype)
    grads, velocity = np.zeros_like(params), np.zeros_like(params)
    ws = np.zeros(_sparse.workspace_size(net, X, batch), dtype)
    t = _core.Trainer(net, params, grads, velocity, None, _sparse.core_input(X), Y,
                      np.arange(X.shape[0], dtype=np.int64), ws, batch, shuffle, 11)
    t.set_optimizer(_core.SOLVERS["sgd"], LR, 0.0, False, 0.9, 0.999, 1e-8, alpha)
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


# kind: (rows, batch, steps, units, sparse input, bfloat16 mode).  deep: a batch
# past the kernels' K block (256), so the weight gradient's partial sums are
# parked between blocks before the update.  team: wide enough (batch x widest
# layer >= 2^20 multiply-adds) that two threads train as a team, which runs
# each layer's weight gradient and update a phase after its input gradient
# (with three layers or more, in a third delta buffer).
CASES = {
    "dense": (157, 20, 19, [30, 48, 24, 5], False, False),
    # one row per step: a narrow layer's update (fewer units than a panel) runs
    # over W as one flat array (gemm_tile.h: outer_run), for widths of every
    # gcd with the vector length (1, 2, 4, 8 and 16 for float's 16 lanes)
    "one-row": (40, 1, 45, [30, 48, 24, 5], False, False),
    "one-row-narrow": (40, 1, 45, [12, 4, 12, 16, 20, 10, 13, 31, 8, 7, 1, 5], False, False),
    "sparse": (157, 20, 19, [30, 48, 24, 5], True, False),
    # an output layer of 5 units over 150 inputs: its weight gradient and
    # update run as tiles laid across W's rows, the last one partial
    # (gemm_tile.h: narrow_run)
    "narrow-output": (157, 20, 19, [30, 150, 5], False, False),
    "deep-batch": (700, 300, 5, [40, 48, 24, 5], False, False),
    # batches of enough rows that the forward products pack W: the weight
    # gradient's epilogue keeps a packed copy of each W current for them
    # (train.c: train_wpack), panels partial at 200 and 72 units; the last
    # batch of each epoch is one row, whose weight gradients run row by row
    # and so leave the copies behind (no later step of the call reads them)
    "packed-w": (129, 64, 9, [40, 200, 72, 5], False, False),
    # batches whose first layer's x^T a thread alone packs right after the
    # forward pass, for the weight gradient that ends the backward pass
    # (train.c: xt0_ahead; x^T's block and the W above within
    # PYNN_XT_AHEAD_BYTES), the last batch of 44 rows too; two threads train
    # it as a team, which packs x^T in its phases instead
    "team-xt-ahead": (300, 128, 5, [200, 256, 64, 5], False, False),
    "bf16": (157, 20, 19, [30, 48, 24, 5], False, True),
    "team": (300, 64, 9, [40, 512, 64, 5], False, False),
    "team-4-layers": (300, 64, 9, [40, 512, 64, 48, 5], False, False),
    "team-2-layers": (300, 64, 9, [40, 512, 5], False, False),
    "team-1-layer": (300, 64, 9, [4096, 5], False, False),
    "team-sparse": (300, 64, 9, [40, 512, 64, 5], True, False),
    "team-deep-batch": (700, 300, 5, [40, 512, 64, 5], False, False),
    "team-bf16": (300, 64, 9, [40, 512, 64, 5], False, True),
    # layers of 2 MiB or more: fused without a packed copy of W, and with the
    # limit at 2 MiB (below) updated by the separate pass: a large layer
    # between small ones (768 x 768: 2.25 MiB of float32), and a large first
    # layer (800 x 700) (two full batches and a part: their large products are
    # slow under the sanitizer build of CI, so fewer steps, and with the L2
    # term only, below)
    "team-large-middle": (130, 64, 3, [40, 768, 768, 24, 5], False, False),
    "team-large-first": (130, 64, 3, [800, 700, 5], False, False),
    "team-large-bf16": (130, 64, 3, [40, 768, 768, 24, 5], False, True),
    "team-large-sparse": (130, 64, 3, [40, 768, 768, 24, 5], True, False),
    # a large W above a large first layer: with the limit at 2 MiB, updated in
    # slices between the three-vector tiles of the first layer's weight
    # gradient (gemm_tile.h: bg_slice; 300 rows, the last row tile partial),
    # the rest after it (dense.c: pynn__sgd_bg_finish; all of it in a step
    # whose velocity is written, and in the epoch's last step of 2 rows, which
    # runs row by row)
    "team-large-hidden": (130, 64, 3, [300, 768, 768, 5], False, False),
}
# (kind, alpha, limit KiB): the large cases with the L2 term, whose sums of
# squares are taken from fused and unfused layers alike, under the core's own
# limit (fused) and under 2 MiB (the separate pass and the slices)
KINDS = [(k, a, lim) for k in CASES for a in (0.0, 1e-3)
         for lim in ((None, 2048) if k.startswith("team-large") else (None,))
         if not (k.startswith("team-large") and a == 0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, alpha, limit", KINDS)
def test_fused_steps_give_the_bits_of_gradient_then_step(simd, dtype, alpha, kind, limit,
                                                        fuse_limit):
    fuse_limit(limit)
    n, batch, steps, units, sparse, bf16 = CASES[kind]
    if bf16 and dtype != np.float32:
        pytest.skip("the bfloat16 mode keeps float32 weights")
    rng = np.random.default_rng(0)
    nin = units[0]
    X = rng.standard_normal((n, nin)).astype(dtype)
    if sparse:
        X = sp.csr_matrix(np.where(rng.random((n, nin)) < 0.3, X, 0).astype(dtype))
    Y = np.eye(5, dtype=dtype)[rng.integers(0, 5, n)]
    for threads in (1, 2):
        # the reference: each batch's gradient, then the step
        net = _core.Net(units, _core.ACTIVATIONS["relu"], _core.ACTIVATIONS["softmax"],
                        _core.LOSSES["categorical_cross_entropy"], bf16=bf16)
        if _core.threads(threads) > 1:  # (a team where the CPUs allow it: the case's point)
            assert (_core._net_threads(net, batch, threads) > 1) == kind.startswith("team")
        t, params, _ = _trainer(units, X, Y, dtype, alpha, False, batch, bf16=bf16)
        ref, vref, grads = params.copy(), np.zeros_like(params), np.zeros_like(params)
        ws = np.zeros(_sparse.workspace_size(net, X, batch), dtype)
        ref_losses, acc, pos = [], 0.0, 0
        for _ in range(steps):
            rows = slice(pos, min(pos + batch, n))
            nr = rows.stop - rows.start
            if sparse:
                loss = net.loss_grad_csr(grads, ref, _sparse.core_input(X[rows]), Y[rows], alpha,
                                         ws, threads)
            else:
                loss = net.loss_grad(grads, ref, X[rows], Y[rows], alpha, ws, threads)
            _core.sgd_update(ref, vref, grads, LR, 0.0, False)
            acc += loss * nr
            pos = rows.stop
            if pos == n:
                ref_losses.append(acc / n)
                acc, pos = 0.0, 0
        # the step loop, in one call per epoch and in calls of one step
        for per_call in (steps, 1):
            t, params, velocity = _trainer(units, X, Y, dtype, alpha, False, batch, bf16=bf16)
            losses = _train(t, steps, per_call, threads)
            assert np.array_equal(params, ref), (threads, per_call)
            assert np.array_equal(velocity, vref), (threads, per_call)
            assert losses == ref_losses and len(losses) >= 1, (threads, per_call)
        assert np.all(np.isfinite(ref))
        # shuffled: one call per epoch against calls of one step
        got = []
        for per_call in (steps, 1):
            t, params, velocity = _trainer(units, X, Y, dtype, alpha, True, batch, bf16=bf16)
            got.append((params, velocity, _train(t, steps, per_call, threads)))
        assert np.array_equal(got[0][0], got[1][0]) and np.array_equal(got[0][1], got[1][1])
        assert got[0][2] == got[1][2]


@pytest.mark.parametrize("units, batch", [([8, 16, 3], 20), ([40, 512, 64, 3], 64)])
def test_a_nonfinite_loss_stops_before_any_fused_update(units, batch):
    """The step whose loss is NaN changes no weight, fused or not, alone or in
    a team (whose input gradient of the top layer ran before the loss)."""
    rng = np.random.default_rng(1)
    n = 4 * batch
    X = rng.standard_normal((n, units[0])).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    Y[2 * batch + 5, 1] = np.nan  # in the third batch, neither an epoch's last nor the call's
    for threads in (1, 2):
        t, params, _ = _trainer(units, X, Y, np.float32, 0.0, False, batch)
        n, loss, diverged = t.run(2, threads)
        assert n == 2 and not diverged
        before = params.copy()
        n, loss, diverged = t.run(5, threads)
        assert diverged and n == 0
        assert np.array_equal(params, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_velocity_at_epoch_end_is_written_by_the_epochs_last_step_only(dtype):
    """With velocity_at_epoch_end (the estimators' setting), plain gradient
    descent writes the velocity it leaves (-lr g) at an epoch's last step,
    not at the last step of every call: calls of one step leave it as it was
    until the epoch ends, then it holds what one call per epoch leaves; the
    weights are the same bits either way."""
    units, n, batch = [300, 768, 768, 5], 130, 64  # (three steps an epoch)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, units[0])).astype(dtype)
    Y = np.eye(5, dtype=dtype)[rng.integers(0, 5, n)]
    t, ref, vref = _trainer(units, X, Y, dtype, 0.0, False, batch)
    _train(t, 3, 3, 1)
    assert np.any(vref != 0)
    t, params, velocity = _trainer(units, X, Y, dtype, 0.0, False, batch)
    t.velocity_at_epoch_end = True
    for step in range(3):
        n_done, loss, diverged = t.run(1, 1)
        assert n_done == 1 and not diverged
        if step < 2:
            assert loss is None and not np.any(velocity)
    assert loss is not None
    assert np.array_equal(params, ref) and np.array_equal(velocity, vref)


@pytest.mark.parametrize("limit", [None, 2048])
@pytest.mark.parametrize("first_momentum, second_momentum", [(0.0, 0.9), (0.9, 0.0)])
def test_warm_start_velocity_after_a_change_of_momentum(first_momentum, second_momentum, limit,
                                                        fuse_limit):
    """A warm start's fit starts a fresh optimizer: zero velocity where it has
    momentum; plain gradient descent reuses the previous velocity's array
    without zeroing it (training/fresh_optimizer), as it never reads it, and
    its epoch's last step overwrites all of it.  Either way the second fit
    gives the bits (weights and velocity) of a model holding the same weights
    whose optimizer is new.  Layers of every update kind: fused (the two small
    ones), fused without a packed copy of W (the two of 2.3 MiB), and with the
    limit at 2 MiB the separate pass (the first) and slices (the second)."""
    import pynn

    fuse_limit(limit)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 800)).astype(np.float32)
    y = rng.integers(0, 4, 300)

    def model(momentum):
        return pynn.MLPClassifier((720, 800, 48), solver="sgd", momentum=momentum,
                                  nesterovs_momentum=False, learning_rate_init=0.01,
                                  batch_size=64, max_iter=2, tol=None, shuffle=False,
                                  random_state=0, warm_start=True, n_threads=1)

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = model(first_momentum).fit(X, y)
        assert np.any(a._opt_state.a != 0)
        start = [w.copy() for w in a.coefs_ + a.intercepts_]
        a.set_params(momentum=second_momentum)
        a.fit(X, y)
        b = model(second_momentum)
        b.set_params(max_iter=1).fit(X, y)
        for dst, src in zip(b.coefs_ + b.intercepts_, start):
            dst[...] = src
        b.set_params(max_iter=2).fit(X, y)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert np.array_equal(wa, wb)
    assert np.array_equal(a._opt_state.a, b._opt_state.a)
