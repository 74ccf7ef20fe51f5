"""Every SIMD path this CPU can run, against the NumPy reference; and the
promises that hold on each path: results independent of the thread count, and a
row's prediction the same alone or inside a batch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import pynn
import reference
from pynn import _core, ops

PATHS = _core.simd_supported()
#: The path a new process takes: the best this CPU runs (amx where it has it).
DEFAULT = PATHS[-1]


def test_the_default_path_is_the_best_the_cpu_has():
    assert PATHS[0] == "generic"
    assert _core.simd_path() in PATHS
    assert set(PATHS) <= set(_core.SIMD_PATHS)
    assert _core.SIMD_PATHS == ("generic", "avx2", "avx512", "avx512_bf16", "amx")


def test_an_unknown_or_unsupported_path_is_refused():
    with pytest.raises(ValueError, match="SIMD path"):
        _core.set_simd_path("sse9")
    missing = [p for p in _core.SIMD_PATHS if p not in PATHS]
    for p in missing:
        with pytest.raises(ValueError, match="cannot run"):
            _core.set_simd_path(p)


TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
# m: 1 row, a partial row tile, several tiles (B is then packed); k: 1, odd, and more
# than one K block (the chain continues across blocks: the float kernels' blocks are at
# most 512 deep, the bfloat16 pair kernels' 256); n: partial and full panels
SHAPES = [(1, 1, 1), (1, 64, 32), (5, 3, 7), (13, 300, 17), (40, 257, 33), (64, 600, 129),
          (7, 520, 48)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exponential_activations_on_every_path(simd, dtype):
    """softmax and logistic (the vectorised exponentials on x86 paths): within
    a few ulp of a long double reference over the whole range, exact 0 and 1
    where they saturate, and NaN in, NaN out -- a NaN z must not come out as
    a tiny finite probability (the SIMD exp once clamped NaN to its lower
    bound), or a NaN output layer would give a finite loss."""
    rng = np.random.default_rng(17)
    big = np.finfo(dtype).max
    z = np.concatenate([rng.uniform(-30, 30, 4000), rng.uniform(-800, 800, 400),
                        [0.0, -0.0, 1e-30, -1e-30, 87.0, -87.0, -103.0, -708.4, -745.0,
                         -746.0, 709.0, 1e3, -1e3, big, -big, np.inf, -np.inf]]).astype(dtype)
    zl = z.astype(np.longdouble)
    with np.errstate(over="ignore", invalid="ignore"):  # (the branch not taken)
        want = np.where(zl >= 0, 1 / (1 + np.exp(-zl)), np.exp(zl) / (1 + np.exp(zl)))
    got = ops.activation(z.reshape(1, -1), "logistic")[0]
    tiny = np.finfo(dtype).tiny
    normal = np.abs(want) >= tiny
    err = np.abs(got - want.astype(dtype))[normal] / np.spacing(want.astype(dtype)[normal])
    assert err.max() <= 4
    assert np.all(got[~normal] <= tiny)  # below the normal range: 0 or the smallest normal
    assert got[z == np.inf] == 1 and got[z == -np.inf] <= tiny
    # rows of 1..21 columns: the vector part and every length of tail
    for m in range(1, 22):
        Z = rng.uniform(-40, 40, (37, m)).astype(dtype)
        Zl = Z.astype(np.longdouble)
        E = np.exp(Zl - Zl.max(axis=1, keepdims=True))
        want = (E / E.sum(axis=1, keepdims=True)).astype(dtype)
        got = ops.activation(Z, "softmax")
        np.testing.assert_allclose(got, want, rtol=64 * np.finfo(dtype).eps,
                                   atol=np.finfo(dtype).tiny)
        bad = Z.copy()
        bad[3, m // 2] = np.nan
        bad[5, m - 1] = np.inf
        out = ops.activation(bad, "softmax")
        assert np.isnan(out[3]).all() and np.isnan(out[5]).all()
        rest = np.ones(37, bool)
        rest[[3, 5]] = False
        np.testing.assert_array_equal(out[rest], got[rest])
    nan_in = np.array([[np.nan, 1.0, -np.nan, -50.0, 3.0]], dtype)
    out = ops.activation(nan_in, "logistic")[0]
    assert np.isnan(out[[0, 2]]).all() and np.isfinite(out[[1, 3, 4]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_gives_a_row_the_bits_it_gets_alone(simd, dtype):
    """The x86 softmax takes the exponentials of a whole block of rows as one
    array, in full vectors: a value's lane then depends on the rows before
    it. Each row must still get the bits it gets alone, for every width (the
    tail of a row, of the block) and batch size, NaN and infinite rows too."""
    rng = np.random.default_rng(21)
    for m in list(range(1, 20)) + [31, 32, 33, 64]:
        for n in (1, 2, 3, 5, 8, 9, 17):
            Z = (rng.standard_normal((n, m)) * rng.choice([0.1, 5, 80], (n, 1))).astype(dtype)
            if n > 2:
                Z[1, m // 2] = np.nan
                Z[2, 0] = np.inf
            block = ops.activation(Z, "softmax")
            for r in range(n):
                assert np.array_equal(ops.activation(Z[r:r + 1], "softmax")[0], block[r],
                                      equal_nan=True), (m, n, r)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("act", ["identity", "relu", "logistic", "tanh", "softmax"])
def test_dense_forward_on_every_path(simd, shape, act, dtype):
    m, k, n = shape
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    x = rng.standard_normal((m, k)).astype(dtype)
    W = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    want = reference.dense_forward(x.astype(np.float64), W.astype(np.float64),
                                   b.astype(np.float64), act)
    np.testing.assert_allclose(ops.dense_forward(x, W, b, act), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_dense_backward_on_every_path(simd, shape, dtype):
    m, k, n = shape
    rng = np.random.default_rng(7 + m * 1000 + k * 10 + n)
    x = rng.standard_normal((m, k)).astype(dtype)
    W = rng.standard_normal((k, n)).astype(dtype)
    d = rng.standard_normal((m, n)).astype(dtype)
    dx, dW, db = ops.dense_backward(d, x, W, alpha=0.3)
    rdx, rdW, rdb = reference.dense_backward(d.astype(np.float64), x.astype(np.float64),
                                             W.astype(np.float64), alpha=0.3)
    scale = np.sqrt(max(m, k, n))  # sums of up to that many unit-size terms
    tol = dict(rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale)
    np.testing.assert_allclose(dx, rdx, **tol)
    np.testing.assert_allclose(dW, rdW, **tol)
    np.testing.assert_allclose(db, rdb, **tol)


@pytest.mark.parametrize("rows", [37, 1])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "logistic"])
def test_network_gradients_on_every_path(simd, hidden, rows):
    # (one row: the input gradients through the 4-unit output layer run in
    # scalar chains, rowt_run, with each hidden derivative in the epilogue)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((37, 300))
    y = rng.integers(0, 4, 37)
    m = pynn.MLPClassifier((40, 19), activation=hidden, dtype="float64", max_iter=1,
                           tol=None, alpha=0.01, random_state=0, n_threads=1).fit(X, y)
    X, y = X[:rows], y[:rows]
    loss, cg, ig = m.loss_and_gradients(X, y)
    Y = np.eye(4)[y]
    rloss, rcg, rig = reference.loss_and_gradients(m.coefs_, m.intercepts_, X, Y, hidden,
                                                   "softmax", "categorical_cross_entropy",
                                                   alpha=0.01)
    assert loss == pytest.approx(rloss, rel=1e-12)
    for got, want in zip(cg + ig, rcg + rig):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_training_trajectory_on_every_path(simd, solver):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((61, 20))
    y = rng.standard_normal(61)
    kw = dict(hidden_layer_sizes=(13,), solver=solver, batch_size=16, shuffle=False,
              tol=None, learning_rate_init=0.01, alpha=1e-3, random_state=0,
              dtype="float64", n_threads=1)
    m = pynn.MLPRegressor(max_iter=1, warm_start=True, **kw).fit(X, y)
    W0 = [c.copy() for c in m.coefs_]
    b0 = [c.copy() for c in m.intercepts_]
    m.set_params(max_iter=3).fit(X, y)
    coefs, intercepts, losses = reference.train(
        W0, b0, X, y.reshape(-1, 1), "relu", "identity", "half_squared_error", solver,
        batch_size=16, n_epochs=3, learning_rate=0.01, alpha=1e-3, momentum=0.9,
        nesterov=True)
    for got, want in zip(m.coefs_ + m.intercepts_, coefs + intercepts):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.loss_curve_[-3:], losses, rtol=1e-10)


def _threaded_problem(dtype):
    # big enough that every product is split across threads
    rng = np.random.default_rng(11)
    X = rng.standard_normal((512, 300)).astype(dtype)
    y = rng.integers(0, 7, 512)
    return X, y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_are_bitwise_the_same_for_any_thread_count(simd, dtype):
    X, y = _threaded_problem(dtype)
    fits = []
    for nt in (1, 2, 3):
        m = pynn.MLPClassifier((256, 64), solver="adam", batch_size=256, max_iter=2,
                               tol=None, random_state=0, dtype=dtype, n_threads=nt)
        fits.append(m.fit(X, y))
    for other in fits[1:]:
        for a, b in zip(fits[0].coefs_ + fits[0].intercepts_,
                        other.coefs_ + other.intercepts_):
            assert np.array_equal(a, b)
    p1 = fits[0].set_params(n_threads=1).predict_proba(X)
    p2 = fits[0].set_params(n_threads=2).predict_proba(X)
    assert np.array_equal(p1, p2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_row_predicts_the_same_alone_and_in_any_batch(simd, dtype):
    X, y = _threaded_problem(dtype)
    m = pynn.MLPClassifier((256, 64), max_iter=1, tol=None, random_state=0, dtype=dtype,
                           n_threads=2).fit(X, y)
    full = m.predict_proba(X)
    for i in (0, 1, 7, 255, 256, 511):
        assert np.array_equal(m.predict_proba(X[i:i + 1]), full[i:i + 1])
    assert np.array_equal(m.predict_proba(X[3:300]), full[3:300])


@pytest.fixture
def l1d_restored():
    before = _core.gemm_l1d_kib()
    yield before
    _core.gemm_l1d_kib(before)


def test_the_l1_size_the_products_block_for_is_read_and_set(l1d_restored):
    detected = l1d_restored
    assert isinstance(detected, int) and 0 <= detected <= 4096
    assert _core.gemm_l1d_kib(64) == detected
    assert _core.gemm_l1d_kib() == 64
    for bad in (-1, 2.5, "48"):
        with pytest.raises(ValueError, match="kib"):
            _core.gemm_l1d_kib(bad)
    assert _core.gemm_l1d_kib() == 64


def test_k_block_depths_follow_the_l1(l1d_restored):
    """The deepest K block (internal.h: pynn_gemm_kc_max) for the kernels'
    panels and tiles: the AVX-512 ones (32 floats or 16 doubles wide, 8 rows)
    and the AVX2 ones (16 floats or 8 doubles, 6 rows), float32 and float64.
    512 on an L1 under 48 KiB or unknown; on 48 KiB, 256 for the AVX-512 panels
    (a 512-deep one would fill two thirds of L1) and for AVX2 the depth that
    fills 3/4 of it with the tile's rows and panel; on 64 KiB the same rules."""
    kernels = [(128, 32), (128, 64), (64, 24), (64, 48)]
    want = {0: [512] * 4, 32: [512] * 4, 48: [256, 256, 418, 329], 64: [256, 256, 512, 438]}
    for kib, depths in want.items():
        _core.gemm_l1d_kib(kib)
        assert [_core.gemm_kc_max(p, t) for p, t in kernels] == depths, kib
    with pytest.raises(ValueError, match="positive"):
        _core.gemm_kc_max(0, 24)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_k_blocks_chosen_for_a_large_l1_give_the_same_bits(simd, dtype, l1d_restored):
    """On a CPU with a large L1 data cache (48 KiB or more) the float products
    block K in at most 256 where a 512-deep B panel would fill two thirds of it,
    else no deeper than fills 3/4 of it with a tile's A rows and B panel
    (internal.h, pynn_gemm_kc_max); in at most 512 elsewhere.  A tile's sum
    runs in the same order either way (partial sums parked in C exactly): every
    product of a layer, and a whole fit on two threads, give the same bits with
    the L1 taken for 32 KiB (512-deep blocks), 48 KiB (256 on the AVX-512
    paths, 418 and 329 on AVX2's float32 and float64) and 64 KiB (256; 512 and
    438), and the values are the reference's.  The depths 1000 and 460
    split differently under each (1000: 2, 3 or 4 blocks; 460: 1 or 2)."""
    shapes = [(64, 600, 129), (40, 784, 256), (256, 1100, 48), (9, 513, 33), (24, 1000, 40),
              (33, 460, 70)]
    X, y = _threaded_problem(dtype)
    X = np.hstack([X, X[:, :400] * 0.5])  # 700 inputs: 2 blocks or 3
    runs = []
    for kib in (32, 48, 64):
        _core.gemm_l1d_kib(kib)
        out = []
        for m, k, n in shapes:
            r = np.random.default_rng(m * k + n)
            x = r.standard_normal((m, k)).astype(dtype)
            W = (r.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
            b = r.standard_normal(n).astype(dtype)
            d = r.standard_normal((m, n)).astype(dtype)
            out.append(ops.dense_forward(x, W, b, "relu", n_threads=1))
            want = reference.dense_forward(*(a.astype(np.float64) for a in (x, W, b)), "relu")
            np.testing.assert_allclose(out[-1], want, **TOL[dtype])
            out.extend(ops.dense_backward(d, x, W, alpha=0.1, n_threads=2))
            out.append(ops.dense_forward(d, W.T.copy(), np.zeros(k, dtype), "identity"))
        fit = pynn.MLPClassifier((300,), solver="adam", batch_size=128, max_iter=2, tol=None,
                                 random_state=0, dtype=str(np.dtype(dtype)),
                                 n_threads=2).fit(X, y)
        out.extend(fit.coefs_ + fit.intercepts_)
        runs.append(out)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradients_with_delta_packed_whole_give_the_same_bits(simd, dtype):
    """A weight gradient x^T delta of more rows than a chunk (256) runs in
    chunks of rows with delta packed whole into the workspace's room, each
    thread packing and running its own column panels (gemm_tile.h: bwhole_run).
    With the room and without it (panel by panel), on 1, 2 and 3 threads, the
    product gives the same bits, and the values are numpy's.  Shapes: one and
    several K blocks (k, the batch, up to 700), partial panels and row tiles."""
    shapes = [(600, 300, 130), (1030, 64, 200), (520, 700, 96), (777, 128, 257)]
    room = np.empty(1100 * 720, dtype)
    for m, k, n in shapes:
        r = np.random.default_rng(m + k + n)
        x = r.standard_normal((k, m)).astype(dtype)
        d = r.standard_normal((k, n)).astype(dtype)
        W = r.standard_normal((m, n)).astype(dtype)
        outs = []
        for bw in (None, np.empty((n + 31) // 32 * 32 * k + 16, dtype)):
            for nt in (1, 2, 3):
                c = np.full((m, n), np.nan, dtype)
                _core._product_time(1, c, x, d, W.ravel(), room, 0, 0.5, 1, 1, nt,
                                    bwhole=bw)
                outs.append(c)
        want = (x.astype(np.float64).T @ d + 0.5 * W) / k
        np.testing.assert_allclose(outs[0], want, rtol=1e-4 if dtype == np.float32 else 1e-11,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)
        for other in outs[1:]:
            assert np.array_equal(other, outs[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tall_forward_and_input_gradients_with_w_packed_whole_give_the_same_bits(simd, dtype):
    """A forward product x W + b (relu) and an input gradient delta W^T of more
    rows than a chunk (a batch over 256) run in chunks with W (W^T) packed
    whole into the workspace's second room, the same way: with the room and
    without, on 1, 2 and 3 threads, the same bits, and numpy's values."""
    room = np.empty(1100 * 1100, dtype)
    relu = 3  # (the core's activation code; the input gradient's: none, plain delta W^T)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    for kind, m, k, n in [(0, 600, 300, 130), (0, 1030, 700, 96), (2, 777, 257, 200),
                          (2, 520, 640, 72)]:
        r = np.random.default_rng(m + k + n)
        a = r.standard_normal((m, k)).astype(dtype)
        if kind == 0:
            b = (r.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
            aux = r.standard_normal(n).astype(dtype)
            want = np.maximum(a.astype(np.float64) @ b + aux, 0)
        else:
            b = r.standard_normal((n, k)).astype(dtype)
            aux = None
            want = a.astype(np.float64) @ b.T
        outs = []
        for bw in (None, np.empty((n + 31) // 32 * 32 * k + 16, dtype)):
            for nt in (1, 2, 3):
                c = np.full((m, n), np.nan, dtype)
                _core._product_time(kind, c, a, b, aux, room, relu if kind == 0 else 0, 0.0, 1, 1,
                                    nt, bwhole=bw)
                outs.append(c)
        np.testing.assert_allclose(outs[0], want, **tol)
        for other in outs[1:]:
            assert np.array_equal(other, outs[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_three_vector_tiles_give_the_same_bits(simd, dtype, l1d_restored):
    """On the AVX-512 paths, with K blocks of at most 256 (a large L1), products
    whose B is packed run in tiles three vectors wide, two to a group of three
    column panels (gemm_tile.h: tri_run; bwhole_run for weight gradients with
    delta packed whole and for W prepacked).  With the L1 taken for 32 KiB
    (512-deep blocks, the same bits: test above) they run in NR-wide tiles.
    Forward products with bias and ReLU (A packed, A in place) and with the
    bias alone, weight gradients (with and without the room for delta) and
    input gradients with the ReLU, logistic and tanh derivatives (the tiles'
    own epilogue, tri_epilogue), on 1, 2 and 3 threads (each thread's run of panels
    forms groups of its own, with panels left over, a partial one among them
    on the last thread; a 256-wide one on a thread alone), with a partial last row
    tile, panels past the last whole group and a partial last panel: the same bits
    both ways, and numpy's values; so do a fit on 1 and 2 threads and its
    predictions (W packed whole), a row alone and in the batch, and fits by
    plain gradient descent, which the weight gradients' tiles apply."""
    identity, logistic, tanh, relu = 0, 1, 2, 3  # (the core's activation codes)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    room = np.empty(1100 * 1100, dtype)
    r = np.random.default_rng(3)
    cases = []
    # (kind, m, k, n, the activation: forward products with the bias alone
    # too, input gradients with each derivative the epilogue applies; weight
    # gradients with the L2 term, and without it (the scale alone, which the
    # tiles apply as they store their sums, as they do a forward's bias))
    for kind, m, k, n, act, *l2 in [(0, 67, 512, 1100, relu), (0, 300, 700, 600, relu),
                                    (0, 33, 1024, 1100, relu), (0, 67, 300, 1024, relu),
                                    (0, 130, 300, 256, relu), (0, 67, 300, 1024, identity),
                                    (1, 600, 300, 1100, 0), (1, 300, 256, 1024, 0),
                                    (1, 47, 96, 1000, 0), (1, 300, 256, 1024, 0, 0.0),
                                    (1, 600, 300, 1100, 0, 0.0), (2, 67, 1100, 512, relu),
                                    (2, 130, 600, 700, relu), (2, 67, 1100, 512, logistic),
                                    (2, 130, 600, 700, tanh)]:
        l2 = l2[0] if l2 else (0.5 if kind == 1 else 0.0)
        a = r.standard_normal((m, k) if kind != 1 else (k, m)).astype(dtype)
        if kind == 0:
            b = (r.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
            aux = r.standard_normal(n).astype(dtype)
            want = a.astype(np.float64) @ b + aux
            if act == relu:
                want = np.maximum(want, 0)
        elif kind == 1:
            b = r.standard_normal((k, n)).astype(dtype)
            aux = r.standard_normal(m * n).astype(dtype)
            want = (a.astype(np.float64).T @ b + l2 * aux.reshape(m, n)) / k
        else:
            b = r.standard_normal((n, k)).astype(dtype)
            aux = r.standard_normal(m * n).astype(dtype)
            out = aux.reshape(m, n).astype(np.float64)
            if act == logistic:
                aux = (1 / (1 + np.exp(-aux))).astype(dtype)  # (cached outputs)
                out = aux.reshape(m, n).astype(np.float64)
                deriv = out * (1 - out)
            elif act == tanh:
                aux = np.tanh(aux).astype(dtype)
                out = aux.reshape(m, n).astype(np.float64)
                deriv = 1 - out * out
            else:
                deriv = out > 0
            want = (a.astype(np.float64) @ b.T) * deriv
        cases.append((kind, m, k, n, act, l2, a, b, aux, want))
    X, y = _threaded_problem(dtype)
    # (a fused layer under 2 MiB, its panels shared by two threads)
    wide = 1024 if dtype == np.float32 else 600
    runs = []
    for kib in (64, 32):
        _core.gemm_l1d_kib(kib)
        out = []
        for kind, m, k, n, act, l2, a, b, aux, want in cases:
            rooms = (None, np.empty((n + 31) // 32 * 32 * k + 16, dtype)) if kind == 1 else (None,)
            for bw in rooms:
                for nt in (1, 2, 3):
                    c = np.full((m, n), np.nan, dtype)
                    _core._product_time(kind, c, a, b, aux, room, act, l2, 1, 1, nt,
                                        bwhole=bw)
                    np.testing.assert_allclose(c, want, **tol)
                    out.append(c)
        for nt in (1, 2):
            fit = pynn.MLPClassifier((1100,), batch_size=64, max_iter=1, tol=None,
                                     random_state=0, dtype=str(np.dtype(dtype)),
                                     n_threads=nt).fit(X, y)
            p = fit.predict_proba(X)
            for i in (0, 9, 300):
                assert np.array_equal(fit.predict_proba(X[i:i + 1]), p[i:i + 1])
            out.extend(fit.coefs_ + fit.intercepts_ + [p])
            # plain gradient descent fused into the weight gradients (W under
            # 2 MiB), with the L2 term: batches of 64 rows (one K block: the
            # sums parked on the stack) and of 300 (two: parked in C), and
            # the packed copy of W the epilogue keeps for the forward products
            for batch in (64, 300):
                sgd = pynn.MLPClassifier((wide, 200), solver="sgd", momentum=0.0, alpha=1e-3,
                                         batch_size=batch, max_iter=2, tol=None,
                                         shuffle=False, random_state=0,
                                         dtype=str(np.dtype(dtype)), n_threads=nt).fit(X, y)
                out.extend(sgd.coefs_ + sgd.intercepts_ + [sgd.predict_proba(X)])
        runs.append(out)
    for one, other in zip(*runs):
        assert np.array_equal(one, other)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_batch_of_many_rows_trains_bitwise_the_same_for_any_thread_count(simd, dtype):
    """Batches of 512 rows: every product of the step has more rows than a
    chunk, and runs in chunks with its B packed whole (the workspace's rooms):
    the same weights on 1, 2 and 3 threads, and the values of a fit whose
    batches are under a chunk's rows (256, its products panel by panel) after
    the same single step."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((1024, 600)).astype(dtype)
    y = rng.integers(0, 5, 1024)
    fits = [pynn.MLPClassifier((384, 256), solver="sgd", momentum=0.0, batch_size=512,
                               max_iter=2, tol=None, shuffle=False, random_state=0, dtype=dtype,
                               n_threads=nt).fit(X, y) for nt in (1, 2, 3)]
    for other in fits[1:]:
        assert other.loss_curve_ == fits[0].loss_curve_
        for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, other.coefs_ + other.intercepts_):
            assert np.array_equal(a, b)
    # one step on all 512 rows equals one step of the plain reference
    one = pynn.MLPClassifier((384, 256), solver="sgd", momentum=0.0, batch_size=512,
                             max_iter=1, tol=None, shuffle=False, random_state=0, dtype=dtype,
                             n_threads=2)
    ref = pynn.MLPClassifier((384, 256), solver="sgd", momentum=0.0, batch_size=512,
                             max_iter=1, tol=None, shuffle=False, random_state=0,
                             dtype="float64", n_threads=1)
    one.fit(X[:512], y[:512])
    ref.fit(X[:512].astype(np.float64), y[:512])
    tol = dict(rtol=2e-3, atol=2e-5) if dtype == "float32" else dict(rtol=1e-9, atol=1e-12)
    for a, b in zip(one.coefs_ + one.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_parallel_optimizer_update_is_bitwise_the_same(simd, solver):
    # 1100 x 256 weights: the update and its L2 sum of squares run in chunks on
    # several threads; losses and weights must not depend on the thread count
    rng = np.random.default_rng(2)
    X = rng.standard_normal((96, 1100)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    fits = [pynn.MLPClassifier((256,), solver=solver, alpha=0.01, momentum=0.9,
                               batch_size=32, max_iter=2, tol=None, random_state=0,
                               n_threads=nt).fit(X, y) for nt in (1, 2, 3)]
    for other in fits[1:]:
        assert other.loss_curve_ == fits[0].loss_curve_
        for a, b in zip(fits[0].coefs_ + fits[0].intercepts_,
                        other.coefs_ + other.intercepts_):
            assert np.array_equal(a, b)


def _team_fits(make, X, y, sw):
    fits = [make(nt).fit(X, y, sample_weight=sw) for nt in (1, 2)]
    one, two = fits
    assert one.loss_curve_ == two.loss_curve_
    for a, b in zip(one.coefs_ + one.intercepts_, two.coefs_ + two.intercepts_):
        assert np.array_equal(a, b)
    assert np.array_equal(one.predict_proba(X), two.predict_proba(X))
    l1, g1, _ = one.loss_and_gradients(X, y)
    l2, g2, _ = two.loss_and_gradients(X, y)
    assert l1 == l2 and all(np.array_equal(a, b) for a, b in zip(g1, g2))
    return one


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("hidden", ["relu", "logistic"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_fit_on_one_team_gives_the_bits_of_one_thread(simd, dtype, hidden, solver):
    # A whole fit runs on one team of threads (one parallel region per call):
    # a 1024-wide layer makes the team pack A ahead for a forward and an
    # input-gradient product, batches of 520 rows split the weight gradients
    # into two K blocks (at most 512 deep), logistic units sync between product
    # and activation, L2 and sample weights go through the shared loss and sums
    # of squares.  Plain gradient descent (sgd, momentum 0) is applied in the
    # weight gradients' epilogues, a team's a phase after the input gradients.
    rng = np.random.default_rng(12)
    X = rng.standard_normal((1040, 200)).astype(dtype)
    y = rng.integers(0, 5, 1040)
    sw = rng.uniform(0.5, 2.0, 1040)
    one = _team_fits(lambda nt: pynn.MLPClassifier(
        (64, 1024), activation=hidden, solver=solver, momentum=0.0, alpha=1e-3,
        batch_size=520, max_iter=2, tol=None, random_state=0, dtype=dtype, n_threads=nt),
        X, y, sw)
    assert all(np.isfinite(c).all() for c in one.coefs_)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_full_batch_gradient_on_one_team_gives_the_bits_of_one_thread(simd, dtype):
    # over 4096 rows the workspace holds one K block of x^T: the team packs
    # and syncs block by block (10 blocks of 500 rows here)
    rng = np.random.default_rng(14)
    X = rng.standard_normal((5000, 100)).astype(dtype)
    y = rng.integers(0, 3, 5000)
    m = pynn.MLPClassifier((64,), max_iter=1, tol=None, random_state=0, dtype=dtype,
                           n_threads=1).fit(X[:50], y[:50])
    l1, g1, i1 = m.loss_and_gradients(X, y)
    l2, g2, i2 = m.set_params(n_threads=2).loss_and_gradients(X, y)
    assert l1 == l2 and all(np.array_equal(a, b) for a, b in zip(g1 + i1, g2 + i2))
    # and they are the gradients (the NumPy reference, in float64)
    Y = np.eye(3)[y]
    ref_loss, ref_g, ref_i = reference.loss_and_gradients(
        [c.astype(np.float64) for c in m.coefs_], [b.astype(np.float64) for b in m.intercepts_],
        X.astype(np.float64), Y, "relu", "softmax", "categorical_cross_entropy", m.alpha)
    rtol = 1e-4 if dtype == "float32" else 1e-9
    np.testing.assert_allclose(l1, ref_loss, rtol=rtol)
    for got, want in zip(g1 + i1, ref_g + ref_i):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_fit_on_sparse_input_on_one_team_gives_the_bits_of_one_thread(simd, shuffle):
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(13)
    X = sparse.random(520, 3000, density=0.01, format="csr", random_state=13,
                      dtype=np.float32)
    y = rng.integers(0, 3, 520)
    _team_fits(lambda nt: pynn.MLPClassifier(
        (256, 64), solver="sgd", momentum=0.9, alpha=1e-3, batch_size=130, shuffle=shuffle,
        max_iter=2, tol=None, random_state=0, n_threads=nt), X, y, None)


# ---- PYNN_SIMD ------------------------------------------------------------------------

_REPORT = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import pynn
print(json.dumps({"path": pynn.simd_path(),
                  "warnings": [[w.category.__name__, str(w.message)] for w in caught]}))
"""


def _import_with_simd_env(value):
    """simd_path() and the warnings of `import pynn` in a fresh interpreter run
    with PYNN_SIMD=value."""
    env = dict(os.environ, PYNN_SIMD=value)
    res = subprocess.run([sys.executable, "-c", _REPORT], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _spellings():
    """Every path this CPU runs, as named and as a user might type it."""
    for p in PATHS:
        yield pytest.param(p, p, id=p)
        yield pytest.param(p.upper(), p, id=f"{p}-upper")
        yield pytest.param(f"  {p.capitalize()}\t\n", p, id=f"{p}-padded")


@pytest.mark.parametrize("value,path", list(_spellings()))
def test_pynn_simd_forces_a_path_in_any_case(value, path):
    got = _import_with_simd_env(value)
    assert got == {"path": path, "warnings": []}


def _refused():
    yield pytest.param("", "is empty", id="empty")
    yield pytest.param("   ", "is empty", id="blank")
    yield pytest.param("bogus", "is not a SIMD path", id="bogus")
    yield pytest.param("avx-2", "is not a SIMD path", id="avx-2")
    for p in _core.SIMD_PATHS:  # those this CPU cannot run (avx512 on an AVX2-only CPU)
        if p not in PATHS:
            yield pytest.param(p.upper(), "names a path this CPU", id=f"{p}-unsupported")


@pytest.mark.parametrize("value,why", list(_refused()))
def test_pynn_simd_that_cannot_be_honoured_warns_and_names_the_path_used(value, why):
    got = _import_with_simd_env(value)
    best = DEFAULT
    assert got["path"] == best
    (category, message), = got["warnings"]
    assert category == "RuntimeWarning"
    assert message.startswith(f"PYNN_SIMD={value!r} {why}")
    assert f"valid values (any case): {', '.join(_core.SIMD_PATHS)}" in message
    assert f"this CPU can run: {', '.join(PATHS)}" in message
    assert message.endswith(f"Using {best}, the best path this CPU has.")


def test_simd_request_on_a_cpu_that_runs_only_the_generic_path():
    """The rule itself, for a CPU this machine may not be (the test above
    covers an unsupported path only where the CPU lacks one)."""
    from pynn._platform import simd_request

    paths, supported = ("generic", "avx2", "avx512"), ("generic",)
    assert simd_request(" Generic ", paths, supported) == ("generic", None)
    path, problem = simd_request("AVX512", paths, supported)
    assert path is None
    assert problem.startswith("PYNN_SIMD='AVX512' names a path this CPU")
    assert problem.endswith("cannot run; valid values (any case): generic, avx2, avx512; "
                            "this CPU can run: generic")
    assert simd_request("", paths, supported)[1].startswith("PYNN_SIMD='' is empty;")
    assert simd_request("sse9", paths, supported)[1].startswith(
        "PYNN_SIMD='sse9' is not a SIMD path;")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["identity", "relu", "logistic"])
def test_products_run_by_rows_give_the_bits_of_tiles(simd, dtype, act):
    """One or two rows, or a K of a few steps, run row by row over several
    column panels (gemm_tile.h: row_run); a row's bits are those it gets
    inside a batch that runs as tiles, for every width (partial panels, one to
    four panels per pass, more than four)."""
    rng = np.random.default_rng(11)
    for n in (1, 3, 8, 9, 16, 17, 31, 32, 33, 48, 64, 65, 70, 129):
        for k in (1, 2, 4, 37):
            x = rng.standard_normal((23, k)).astype(dtype)
            W = rng.standard_normal((k, n)).astype(dtype)
            b = rng.standard_normal(n).astype(dtype)
            batch = ops.dense_forward(x, W, b, act)
            for rows in (slice(0, 1), slice(5, 7), slice(22, 23)):
                assert np.array_equal(ops.dense_forward(x[rows], W, b, act), batch[rows])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_shallow_input_gradient_gives_each_row_the_bits_it_gets_alone(simd, dtype):
    """delta @ W^T with K = a few output units runs its tiles in groups of
    column panels, row tile by row tile across a group (gemm_tile.h: pl.gp),
    not panel by panel; a row alone with K <= 16 runs in scalar chains
    (rowt_run), with more as one row tile in the plain order: each element's
    sum is the same chain every way.  A row alone gets the bits it gets in
    the batch, for every thread count, for groups that end in a partial
    panel, a narrow last group, and shares that start and end inside a
    group."""
    rng = np.random.default_rng(13)
    # (a team only above 2^20 multiply-adds: the 300-row batches)
    cases = [(k, n_in, 37) for k in (1, 3, 10, 16, 17, 26) for n_in in (17, 100, 1025)]
    cases += [(k, 1025, 300) for k in (4, 10, 17, 26)]
    for k, n_in, n in cases:
        x = rng.standard_normal((n, n_in)).astype(dtype)
        W = rng.standard_normal((n_in, k)).astype(dtype)
        d = rng.standard_normal((n, k)).astype(dtype)
        full = [ops.dense_backward(d, x, W, n_threads=t)[0] for t in (1, 2, 3)]
        for t in (1, 2):
            assert np.array_equal(full[t], full[0]), (k, n_in, t + 1)
        for r in (0, 8, 9, n - 1):
            alone = ops.dense_backward(d[r:r + 1], x[r:r + 1], W, n_threads=1)[0]
            assert np.array_equal(alone[0], full[0][r]), (k, n_in, r)
        want = d.astype(np.float64) @ W.astype(np.float64).T
        np.testing.assert_allclose(full[0], want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_narrow_products_give_each_column_the_bits_of_a_wide_one(simd, dtype):
    """A product of at most 12 columns (an output layer of a few units) runs as
    tiles laid across its rows, every lane a row (gemm_tile.h: narrow_run),
    wherever a panel would leave lanes idle: the weight gradient with A = x^T
    read in place, the forward product from a transposed copy of x's rows, 128
    steps of K at a time.  Each element is still its chain along K from zero:
    a column gets the bits it gets inside a product of 32 columns, which runs
    as panels, for every width, partial row tiles, several K blocks of the
    copy, both epilogues (bias and activation; the gradient's scale and L2
    term) and one to three threads; and a row of the forward alone gets the
    bits it gets in the batch."""
    rng = np.random.default_rng(23)
    # (rows, inputs): forward m x k x n, weight gradient k x m x n
    shapes = [(200, 150), (129, 70), (33, 300), (64, 64)]
    for n in range(1, 13):
        for m, k in shapes:
            x = rng.standard_normal((m, k)).astype(dtype)
            W = (rng.standard_normal((k, 32)) / np.sqrt(k)).astype(dtype)
            b = rng.standard_normal(32).astype(dtype)
            d = rng.standard_normal((m, 32)).astype(dtype)
            Wn, bn, dn = W[:, :n].copy(), b[:n].copy(), d[:, :n].copy()
            for act in ("identity", "relu", "logistic"):
                wide = ops.dense_forward(x, W, b, act)
                got = ops.dense_forward(x, Wn, bn, act)
                assert np.array_equal(got, wide[:, :n]), (n, m, k, act)
            for r in (0, m - 1):
                alone = ops.dense_forward(x[r:r + 1], Wn, bn, "relu")
                assert np.array_equal(alone[0], ops.dense_forward(x, Wn, bn, "relu")[r])
            _, dW_wide, db_wide = ops.dense_backward(d, x, W, alpha=0.3, need_dx=False)
            _, dW, db = ops.dense_backward(dn, x, Wn, alpha=0.3, need_dx=False)
            assert np.array_equal(dW, dW_wide[:, :n]), (n, m, k)
            assert np.array_equal(db, db_wide[:n]), (n, m, k)
            want = x.astype(np.float64).T @ dn.astype(np.float64) / m + 0.3 / m * Wn
            np.testing.assert_allclose(dW, want, rtol=TOL[dtype]["rtol"],
                                       atol=TOL[dtype]["atol"] * np.sqrt(m))
    # a team (over 2^20 multiply-adds), its shares ending inside tiles' runs
    for n in (1, 3, 10):
        x = rng.standard_normal((5000, 300)).astype(dtype)
        W = rng.standard_normal((300, n)).astype(dtype)
        b = rng.standard_normal(n).astype(dtype)
        d = rng.standard_normal((5000, n)).astype(dtype)
        fwd = [ops.dense_forward(x, W, b, "relu", n_threads=t) for t in (1, 2, 3)]
        bwd = [ops.dense_backward(d, x, W, alpha=0.1, need_dx=False, n_threads=t)[1]
               for t in (1, 2, 3)]
        for t in (1, 2):
            assert np.array_equal(fwd[t], fwd[0]) and np.array_equal(bwd[t], bwd[0]), (n, t)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_of_many_rows_run_in_chunks_and_keep_each_rows_bits(simd, dtype):
    """A product whose K block of A is over 2 MiB (3000 rows of a 256-deep
    block) runs its row tiles in chunks of about 256 rows, every K block of a
    chunk, each column panel by column panel, before the next chunk
    (gemm_tile.h: chunk_run), so that a chunk's rows of A and C stay in cache.
    Every tile is still computed, once: the values are the reference's; every
    row alone gets the bits it gets in the batch; and a team of two or three
    threads, whose shares start and end inside chunks, gets one thread's
    bits.  The forward product (x W) in chunks, then the input gradient
    (delta W^T)."""
    rng = np.random.default_rng(17)
    for m, k, n in [(3000, 256, 90), (3000, 90, 256)]:
        x = rng.standard_normal((m, k)).astype(dtype)
        W = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
        b = rng.standard_normal(n).astype(dtype)
        d = rng.standard_normal((m, n)).astype(dtype)
        fwd = [ops.dense_forward(x, W, b, "relu", n_threads=t) for t in (1, 2, 3)]
        bwd = [ops.dense_backward(d, x, W, alpha=0.3, n_threads=t) for t in (1, 2, 3)]
        for t in (1, 2):
            assert np.array_equal(fwd[t], fwd[0]), (m, k, n, t + 1)
            for got, want in zip(bwd[t], bwd[0]):
                assert np.array_equal(got, want), (m, k, n, t + 1)
        for r in range(m):
            alone = ops.dense_forward(x[r:r + 1], W, b, "relu", n_threads=1)
            assert np.array_equal(alone[0], fwd[0][r]), (m, k, n, r)
            dx = ops.dense_backward(d[r:r + 1], x[r:r + 1], W, n_threads=1)[0]
            assert np.array_equal(dx[0], bwd[0][0][r]), (m, k, n, r)
        x64, W64, d64 = (a.astype(np.float64) for a in (x, W, d))
        want = reference.dense_forward(x64, W64, b.astype(np.float64), "relu")
        np.testing.assert_allclose(fwd[0], want, **TOL[dtype])
        scale = np.sqrt(max(m, k, n))
        tol = dict(rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale)
        for got, want in zip(bwd[0], reference.dense_backward(d64, x64, W64, alpha=0.3)):
            np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_gradient_that_packs_a_in_chunks_gives_the_reference(simd, dtype):
    """A full-batch gradient of 3000 rows of 1024 inputs: the first layer's
    forward, in chunks, packs its A (rows 4 KiB apart), a thread alone chunk
    by chunk before the chunk's tiles, a team every block ahead.  Both give
    the NumPy reference, with the same bits."""
    rng = np.random.default_rng(19)
    X = rng.standard_normal((3000, 1024)).astype(dtype)
    y = rng.integers(0, 3, 3000)
    m = pynn.MLPClassifier((130,), max_iter=1, tol=None, random_state=0, dtype=dtype,
                           n_threads=1).fit(X[:50], y[:50])
    l1, g1, i1 = m.loss_and_gradients(X, y)
    l2, g2, i2 = m.set_params(n_threads=2).loss_and_gradients(X, y)
    assert l1 == l2 and all(np.array_equal(a, b) for a, b in zip(g1 + i1, g2 + i2))
    ref_loss, ref_g, ref_i = reference.loss_and_gradients(
        [c.astype(np.float64) for c in m.coefs_], [b.astype(np.float64) for b in m.intercepts_],
        X.astype(np.float64), np.eye(3)[y], "relu", "softmax", "categorical_cross_entropy",
        m.alpha)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(l1, ref_loss, rtol=rtol)
    for got, want in zip(g1 + i1, ref_g + ref_i):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_one_row_weight_gradient_is_exact(simd, dtype):
    """With one row the weight gradient is x^T d + alpha W: each product of
    the chain's single step is rounded once, as NumPy's is, and the epilogue
    scales and adds in the same order; so the bits are NumPy's."""
    rng = np.random.default_rng(12)
    for n_in, n_out in ((64, 32), (7, 130), (300, 9)):
        x = rng.standard_normal((1, n_in)).astype(dtype)
        W = rng.standard_normal((n_in, n_out)).astype(dtype)
        d = rng.standard_normal((1, n_out)).astype(dtype)
        _, dW, _ = ops.dense_backward(d, x, W, alpha=0.25)
        want = (x.T * d) * dtype(1.0) + W * dtype(0.25)
        assert np.array_equal(dW, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_update_gives_the_same_bits_on_every_path(dtype):
    # Adam's loop is compiled per instruction set (optim_avx2.c, optim_avx512.c)
    # and vectorised by the compiler: each element's multiply, add, square root
    # and divide are correctly rounded, so every path must give the generic bits,
    # tails of every length included
    rng = np.random.default_rng(5)
    before = _core.simd_path()
    try:
        for size in (1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 1000, 4099):
            start = [rng.standard_normal(size).astype(dtype) for _ in range(3)]
            start[2] = np.abs(start[2])  # v >= 0
            grads = [rng.standard_normal(size).astype(dtype) for _ in range(4)]
            got = {}
            for path in PATHS:
                _core.set_simd_path(path)
                p, m, v = (a.copy() for a in start)
                for t, g in enumerate(grads, 1):
                    ops.adam_update(p, m, v, g, 0.01, 0.9, 0.999, 1e-8, t)
                got[path] = (p, m, v)
            for path in PATHS[1:]:
                for a, b in zip(got["generic"], got[path]):
                    assert np.array_equal(a, b), (size, path)
    finally:
        _core.set_simd_path(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_steps_give_the_bits_of_gradient_then_update(simd, dtype):
    # the step loop's Adam (with the L2 term's sums of squares kept, lane by
    # lane, on the way: they make the next step's loss) against the core's
    # loss_grad, which sums the squares afresh, then adam_update
    from pynn import _sparse
    # (alpha large: the L2 term dominates the loss, so its last bits show)
    # (widths whose W and b leave tails past the blocks of 8: lane 0's share)
    units, n, batch, steps, alpha, lr = [30, 47, 23, 5], 157, 20, 19, 100.0, 0.01
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, units[0])).astype(dtype)
    Y = np.eye(5, dtype=dtype)[rng.integers(0, 5, n)]
    net = _core.Net(units, _core.ACTIVATIONS["relu"], _core.ACTIVATIONS["softmax"],
                    _core.LOSSES["categorical_cross_entropy"])
    params = (0.3 * np.random.default_rng(3).standard_normal(net.n_params)).astype(dtype)
    ws = np.zeros(_sparse.workspace_size(net, X, batch), dtype)
    ref, m, v, grads = params.copy(), *(np.zeros_like(params) for _ in range(3))
    ref_losses, acc, pos = [], 0.0, 0
    for t in range(1, steps + 1):
        rows = slice(pos, min(pos + batch, n))
        loss = net.loss_grad(grads, ref, X[rows], Y[rows], alpha, ws, 1)
        ops.adam_update(ref, m, v, grads, lr, 0.9, 0.999, 1e-8, t)
        acc += loss * (rows.stop - rows.start)
        pos = rows.stop
        if pos == n:
            ref_losses.append(acc / n)
            acc, pos = 0.0, 0
    p, a, b = params.copy(), np.zeros_like(params), np.zeros_like(params)
    tr = _core.Trainer(net, p, np.zeros_like(params), a, b, _sparse.core_input(X), Y,
                       np.arange(n, dtype=np.int64), ws, batch, False, 11)
    tr.set_optimizer(_core.SOLVERS["adam"], lr, 0.0, False, 0.9, 0.999, 1e-8, alpha)
    done, losses = 0, []
    while done < steps:
        k, loss, diverged = tr.run(steps - done, 1)
        assert not diverged and k > 0
        done += k
        if loss is not None:
            losses.append(loss)
    assert np.array_equal(p, ref) and np.array_equal(a, m) and np.array_equal(b, v)
    assert losses == ref_losses and len(losses) == 2
