"""The bfloat16 mixed-precision mode (dtype='bfloat16'): float32 parameters,
the operands of every layer's three products rounded to bfloat16, float32
sums and epilogues.  Each SIMD path against the NumPy reference of the same
math (tests/reference.py: operands rounded, sums in float64), with tolerances
from the accumulation length; invariance to threads and to batching; whole
fits against float32."""
import io

import numpy as np
import pytest

import pynn
from pynn import _core, _sparse, ops
from pynn.exceptions import ModelFileError  # noqa: F401  (the model-file test's errors)

import reference as ref

U = 2.0 ** -24  # float32's unit roundoff

#: The kernel variants the mode runs on here: each SIMD path this CPU has, and
#: the avx512_bf16 and amx paths' pair kernels with their instructions
#: (vdpbf16ps, the AMX tiles) emulated in plain C (gemm_emu.c), any CPU.
EMULATED = {"emulated-vdpbf16ps": "vdpbf16ps", "emulated-amx": "amx"}
KERNELS = _core.simd_supported() + tuple(EMULATED)
#: Variants that run vdpbf16ps or tdpbf16ps (or their emulation): denormal
#: operands read as zero and denormal sums are flushed to zero there.
PAIRS = tuple(EMULATED) + ("avx512_bf16", "amx")


@pytest.fixture(params=KERNELS)
def simd(request):
    """Each kernel variant in turn (replaces conftest's fixture in this file);
    the previous path restored and the emulation switched off afterwards."""
    before = _core.simd_path()
    if request.param in EMULATED:
        _core.set_bf16_emulation(EMULATED[request.param])
    else:
        _core.set_simd_path(request.param)
    try:
        yield request.param
    finally:
        _core.set_bf16_emulation(None) if request.param in EMULATED else None
        _core.set_simd_path(before)


def _net(units, hidden="relu", output="identity", loss="half_squared_error", bf16=True):
    return _core.Net(units, _core.ACTIVATIONS[hidden], _core.ACTIVATIONS[output],
                     _core.LOSSES[loss], bf16=bf16)


def _arena(coefs, intercepts):
    return np.concatenate([a.ravel() for W, b in zip(coefs, intercepts) for a in (W, b)])


def _params(units, rng, scale=1.0):
    coefs = [(rng.standard_normal((a, b)) * scale / np.sqrt(a)).astype(np.float32)
             for a, b in zip(units[:-1], units[1:])]
    intercepts = [(0.1 * rng.standard_normal(b)).astype(np.float32) for b in units[1:]]
    return coefs, intercepts


def _setup(seed, units, n):
    """(rng, params arena, X of n rows) of a random network with these units."""
    rng = np.random.default_rng(seed)
    params = _arena(*_params(units, rng))
    return rng, params, rng.standard_normal((n, units[0])).astype(np.float32)


def _predict(net, params, X, batch=None, n_threads=1):
    batch = batch or X.shape[0]
    out = np.empty((X.shape[0], net.n_outputs), dtype=params.dtype)
    ws = np.empty(net.workspace_size(batch), dtype=params.dtype)
    _sparse.predict(net, out, params, X, ws, batch, n_threads)
    return out


def _loss_grad(net, params, X, Y, alpha=0.0, n_threads=1):
    grads = np.empty_like(params)
    ws = np.empty(net.workspace_size(X.shape[0]), dtype=params.dtype)
    loss = _sparse.loss_grad(net, grads, params, X, Y, alpha, ws, n_threads)
    return loss, grads


# ---- rounding ----------------------------------------------------------------------


@pytest.mark.parametrize("bits", [
    0x3F800000, 0x3F808000, 0x3F818000, 0x3F80FFFF, 0x3F807FFF, 0xBF808000, 0xBF818000,
    0x00000001, 0x00008000, 0x00018000, 0x007FFFFF, 0x00800000, 0x7F7F0000, 0x7F7F7FFF,
    0x80000000, 0x00000000, 0x3EAAAAAB, 0x4049 << 16 | 0x0FDB,
])
def test_rounding_rule_through_the_product(simd, bits):
    """x * 1 through a one-unit layer is bfloat16(x): nearest, ties to even
    (0x3F808000 is halfway between 1 and its successor: down to even; 0x3F818000
    up to even), subnormals included; the same for the weight (1 * w)."""
    x = np.array([bits], dtype=np.uint32).view(np.float32)
    want = ref.bf16_round(x)[0]
    if simd in PAIRS and abs(want) < np.finfo(np.float32).tiny:
        want = 0.0  # vdpbf16ps reads a denormal operand as zero
    net = _net([1, 1])
    one = np.ones((1, 1), np.float32)
    # (values, not bits: a sum starts from +0, so -0 comes out as +0)
    out = _predict(net, np.array([1.0, 0.0], np.float32), x.reshape(1, 1))
    assert out[0, 0] == np.float32(want)
    out = _predict(net, np.array([x[0], 0.0], np.float32), one)
    assert out[0, 0] == np.float32(want)


def test_pair_kernels_flush_denormals(simd):
    """vdpbf16ps reads denormal operands as zero and flushes denormal results
    (Intel SDM): on the pair kernels 2^-130 * 1 and 2^-63 * 2^-64 give 0; the
    float kernels' mode keeps both (exact products of bfloat16 values)."""
    net = _net([1, 1])
    cases = [(2.0 ** -130, 1.0), (2.0 ** -63, 2.0 ** -64), (2.0 ** -60, 2.0 ** -60)]
    for x, w in cases:
        out = _predict(net, np.array([w, 0.0], np.float32), np.array([[x]], np.float32))
        want = np.float32(x * w)
        if simd in PAIRS and abs(x * w) < np.finfo(np.float32).tiny:
            want = np.float32(0.0)
        assert out[0, 0] == want, (x, w, out[0, 0])


def test_emulation_switch():
    """The emulations are off by default and report the previous setting;
    what each changes in the bits of the mode's products."""
    with pytest.raises(ValueError, match="kind"):
        _core.set_bf16_emulation("sse")
    try:
        rng, params, X = _setup(11, [300, 64, 5], 50)
        assert _core.set_bf16_emulation("vdpbf16ps") is None
        a = _predict(_net([300, 64, 5]), params, X)
        assert _core.set_bf16_emulation("amx") == "vdpbf16ps"
        b = _predict(_net([300, 64, 5]), params, X)
        assert _core.set_bf16_emulation(None) == "amx"
        c = _predict(_net([300, 64, 5]), params, X)
        # vdpbf16ps adds a pair's high product first, tdpbf16ps (the SDM's
        # form) sums 16 pair steps' low and high halves apart and then adds
        # them to the sums: other bits than the float kernels' chain, same sums.
        # On a path with the instruction, the hardware gives the emulation's bits.
        assert not np.array_equal(a, b)
        path = _core.simd_path()
        if path == "avx512_bf16":
            np.testing.assert_array_equal(c, a)
        elif path == "amx":
            np.testing.assert_array_equal(c, b)
        else:
            assert not np.array_equal(a, c) and not np.array_equal(b, c)
        for x in (a, b):
            np.testing.assert_allclose(x, c, rtol=1e-4, atol=1e-5)
    finally:
        _core.set_bf16_emulation(None)


def test_reference_rounding_matches_ml_dtypes():
    """The reference's rounding is the usual one (the ml_dtypes package, which
    JAX installs, where it is there)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(50000) * 10.0 ** rng.integers(-40, 38, 50000)).astype(np.float32)
    x = np.concatenate([x, np.array([np.inf, -np.inf, np.nan, 3.4e38, 1e-45, -0.0,
                                     1 + 2**-8, 1 + 3 * 2**-8], np.float32)])
    assert np.array_equal(ref.bf16_round(x), x.astype(ml_dtypes.bfloat16).astype(np.float64),
                          equal_nan=True)


def test_rounding_special_values():
    r = ref.bf16_round(np.array([np.inf, -np.inf, np.nan, 3.4e38, -3.4e38, 1 + 2**-8,
                                 1 + 3 * 2**-8], np.float32))
    assert r[0] == np.inf and r[1] == -np.inf and np.isnan(r[2])
    assert r[3] == np.inf and r[4] == -np.inf  # past the largest bfloat16 (~3.39e38)
    assert r[5] == 1.0 and r[6] == 1 + 2**-6


# ---- one product against the reference ---------------------------------------------


def _bound(a, b):
    """Float32 summation error of the products of a @ b (bfloat16 operands, so
    each product is exact): k u sum_p |a_p b_p|, and the bias's rounding."""
    k = a.shape[1]
    return (k + 2) * U * (np.abs(ref.bf16_round(a)) @ np.abs(ref.bf16_round(b))) + 1e-30


@pytest.mark.parametrize("n,k,m", [(1, 1, 1), (7, 3, 5), (1, 64, 32), (33, 130, 17),
                                   (130, 784, 40), (9, 1100, 70)])
def test_forward_product_matches_reference(simd, n, k, m):
    """One layer (identity): z = bf(x) bf(W) + b within the accumulation bound,
    for shapes with 1, odd sizes, edges of tiles and several K blocks."""
    rng = np.random.default_rng(n * 1000 + k + m)
    X = rng.standard_normal((n, k)).astype(np.float32)
    (W,), (b,) = _params([k, m], rng)
    got = _predict(_net([k, m]), _arena([W], [b]), X)
    want = ref.dense_forward(X, W, b, bf16=True)
    bound = _bound(X, W) + 2 * U * np.abs(b)
    np.testing.assert_array_less(np.abs(got - want), bound)
    # ... and the rounding is there: float32 products break that bound
    if k >= 64:
        f32 = _predict(_net([k, m], bf16=False), _arena([W], [b]), X)
        assert (np.abs(f32 - want) > 2 * bound).any()


@pytest.mark.parametrize("hidden", ["relu", "logistic", "tanh", "identity"])
@pytest.mark.parametrize("units,n", [((5, 3, 2), 1), ((64, 32, 10), 32), ((70, 130, 33), 57),
                                     ((784, 256, 128, 10), 128)])
def test_gradients_match_the_mixed_precision_reference(simd, hidden, units, n):
    """Loss and every gradient against the reference's chain rule on rounded
    operands.  A layer's input is pynn's float32 value there and the
    reference's float64 one, so now and then the two round to neighbouring
    bfloat16 values: the comparison is of norms, and pynn must sit far closer
    to the mixed-precision reference than its float32 mode does."""
    rng = np.random.default_rng(len(units) * 100 + n)
    X = rng.standard_normal((n, units[0])).astype(np.float32)
    Y = rng.standard_normal((n, units[-1])).astype(np.float32)
    coefs, intercepts = _params(list(units), rng)
    params = _arena(coefs, intercepts)
    loss, g = _loss_grad(_net(list(units), hidden), params, X, Y, alpha=0.1)
    _, g32 = _loss_grad(_net(list(units), hidden, bf16=False), params, X, Y, alpha=0.1)
    rl, rc, ri = ref.loss_and_gradients(coefs, intercepts, X, Y, hidden, "identity",
                                        "half_squared_error", alpha=0.1, bf16=True)
    want = _arena(rc, ri).astype(np.float64)
    assert loss == pytest.approx(rl, rel=1e-4)
    err = np.linalg.norm(g - want)
    assert err <= 5e-4 * np.linalg.norm(want)
    if n > 1:
        assert err <= 0.25 * np.linalg.norm(g32 - want)


def test_float64_core_refuses_bf16():
    net = _net([3, 2])
    params = np.zeros(8, np.float64)
    with pytest.raises(Exception, match="unsupported|bf16|bfloat16"):
        _predict(net, params, np.ones((2, 3)))


# ---- invariances ------------------------------------------------------------------


def test_row_alone_equals_row_in_a_batch(simd):
    units = [50, 70, 9]
    _, params, X = _setup(3, units, 37)
    net = _net(units, "tanh", "softmax", "categorical_cross_entropy")
    whole = _predict(net, params, X)
    for r in (0, 5, 36):
        assert np.array_equal(_predict(net, params, X[r:r + 1]), whole[r:r + 1])
    assert np.array_equal(_predict(net, params, X, batch=8), whole)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_fit_is_the_same_on_any_thread_count(simd, solver):
    """A net wide enough for a team (a 1024-wide layer, batches of 520 rows:
    two K blocks in the weight gradients) gives one thread's bits."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1040, 40)).astype(np.float32)
    y = rng.integers(0, 3, 1040)
    fits = [pynn.MLPClassifier((1024,), dtype="bfloat16", solver=solver, batch_size=520,
                               max_iter=2, random_state=0, n_threads=t, alpha=1e-3,
                               tol=None).fit(X, y) for t in (1, 2)]
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, fits[1].coefs_ + fits[1].intercepts_):
        assert np.array_equal(a, b)
    assert np.array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))


def test_full_batch_gradient_on_a_team_equals_one_thread(simd):
    """Over 4096 rows the room holds one K block, packed block by block."""
    units = [30, 1024, 4]
    rng, params, X = _setup(5, units, 5000)
    Y = rng.standard_normal((5000, 4)).astype(np.float32)
    l1, g1 = _loss_grad(_net(units), params, X, Y, n_threads=1)
    l2, g2 = _loss_grad(_net(units), params, X, Y, n_threads=2)
    assert l1 == l2 and np.array_equal(g1, g2)


# ---- the estimators ----------------------------------------------------------------


def test_estimator_mode():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((200, 20))
    y = rng.integers(0, 3, 200)
    m = pynn.MLPClassifier((16,), dtype="bfloat16", max_iter=3, random_state=0).fit(X, y)
    f = pynn.MLPClassifier((16,), dtype="float32", max_iter=3, random_state=0).fit(X, y)
    assert m.get_params()["dtype"] == "bfloat16"
    assert all(W.dtype == np.float32 for W in m.coefs_ + m.intercepts_)
    assert m.predict_proba(X).dtype == np.float32
    # the same start, different products: the weights part a little
    diff = max(np.abs(a - b).max() for a, b in zip(m.coefs_, f.coefs_))
    assert 0 < diff < 0.05
    # prediction runs the same products: the reference on the trained weights
    P = ref.forward(m.coefs_, m.intercepts_, X.astype(np.float32), "relu", "softmax",
                    bf16=True)[-1]
    assert np.abs(m.predict_proba(X) - P).max() < 1e-4


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_forward_layers_run_the_mode(hidden):
    """forward_layers of a bfloat16 model: every layer in the mode (the
    reference on rounded operands), its last the model's predict_proba."""
    rng = np.random.default_rng(12)
    X = rng.standard_normal((70, 30)).astype(np.float32)
    y = rng.integers(0, 3, 70)
    m = pynn.MLPClassifier((40, 20), activation=hidden, dtype="bfloat16", max_iter=3,
                           random_state=0).fit(X, y)
    acts = m.forward_layers(X)
    assert len(acts) == 4 and all(a.dtype == np.float32 for a in acts[1:])
    want = ref.forward(m.coefs_, m.intercepts_, X, hidden, "softmax", bf16=True)
    for a, w in zip(acts[1:], want[1:]):
        assert np.abs(a - w).max() < 1e-4
    np.testing.assert_allclose(acts[-1], m.predict_proba(X), rtol=1e-6, atol=1e-7)
    # not the float32 products: those are further from the mode's reference
    f32 = [ops.dense_forward(X, m.coefs_[0], m.intercepts_[0], hidden)]
    assert np.abs(f32[0] - want[1]).max() > 10 * np.abs(acts[1] - want[1]).max()


def test_warm_start_from_float32_and_not_from_float64():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((100, 8))
    y = rng.integers(0, 2, 100)
    m = pynn.MLPClassifier((8,), dtype="float32", max_iter=2, random_state=0,
                           warm_start=True).fit(X, y)
    m.set_params(dtype="bfloat16").fit(X, y)  # float32 weights carry on
    assert m.coefs_[0].dtype == np.float32
    m64 = pynn.MLPClassifier((8,), dtype="float64", max_iter=2, random_state=0,
                             warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="dtype changed"):
        m64.set_params(dtype="bfloat16").fit(X, y)


def test_model_file_keeps_the_mode():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((100, 8)).astype(np.float32)
    y = rng.standard_normal(100)
    m = pynn.MLPRegressor((8,), dtype="bfloat16", max_iter=2, random_state=0).fit(X, y)
    buf = io.BytesIO()
    m.save(buf)
    buf.seek(0)
    back = pynn.load(buf)
    assert back.get_params()["dtype"] == "bfloat16"
    assert np.array_equal(back.predict(X), m.predict(X))


def test_sparse_input_first_layer_stays_float32():
    """CSR input: the first layer's sparse products run in float32 (they are
    not matrix products); the layers above in bfloat16."""
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(9)
    Xd = (rng.random((60, 40)) < 0.1) * rng.standard_normal((60, 40))
    Xd = Xd.astype(np.float32)
    y = rng.integers(0, 3, 60)
    m = pynn.MLPClassifier((20,), dtype="bfloat16", max_iter=2, random_state=0).fit(
        sp.csr_matrix(Xd), y)
    W0, W1 = m.coefs_
    b0, b1 = m.intercepts_
    h = np.maximum(Xd.astype(np.float64) @ W0 + b0, 0)
    z = ref.matmul(h, W1, bf16=True) + b1
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(m.predict_proba(sp.csr_matrix(Xd)), e / e.sum(1, keepdims=True),
                               atol=1e-4)


@pytest.mark.parametrize("simd,data", [
    (k, d) for k in KERNELS for d in ("digits", "demo")
    # (the emulations are slow: digits is their whole fit)
    if d == "digits" or k not in EMULATED], indirect=["simd"])
def test_fit_reaches_float32_accuracy(simd, data):
    """Whole fits on each kernel: test accuracy within 0.5 percentage points
    of float32."""
    if data == "digits":
        datasets = pytest.importorskip("sklearn.datasets")
        X, y = datasets.load_digits(return_X_y=True)
        X = X / 16.0
        hidden, iters = (64,), 60
    else:
        from pynn.datasets import make_cluster_classification
        X, y = make_cluster_classification(n_samples=6000, random_state=0)
        hidden, iters = (128, 64), 15
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    cut = len(y) * 3 // 4
    tr, te = order[:cut], order[cut:]
    acc = {}
    for dt in ("float32", "bfloat16"):
        m = pynn.MLPClassifier(hidden, dtype=dt, max_iter=iters, random_state=0, tol=None)
        m.fit(X[tr], y[tr])
        acc[dt] = m.score(X[te], y[te])
    assert acc["float32"] > 0.85
    assert abs(acc["bfloat16"] - acc["float32"]) <= 0.005 + 1e-12, acc


def test_perceptron_takes_the_mode():
    rng = np.random.default_rng(10)
    X = rng.standard_normal((80, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    p = pynn.Perceptron(dtype="bfloat16", random_state=0).fit(X, y)
    assert p.coef_.dtype == np.float32 and p.score(X, y) > 0.9
