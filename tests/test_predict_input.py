"""Non-finite rows are refused by every prediction method, wherever they sit in X
(the check runs inside the core, block by block, on one thread or several)."""
import numpy as np
import pytest

import pynn
from pynn import _sparse


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = (X[:, 0] > 0).astype(int)
    yc = rng.integers(0, 3, 200)
    out = {}
    for dtype in ("float32", "float64"):
        out["clf", dtype] = pynn.MLPClassifier((8,), max_iter=3, tol=None, random_state=0,
                                               dtype=dtype).fit(X, yc)
        out["reg", dtype] = pynn.MLPRegressor((8,), max_iter=3, tol=None, random_state=0,
                                              dtype=dtype).fit(X, X[:, 1])
        out["perc", dtype] = pynn.Perceptron(max_iter=3, tol=None, dtype=dtype).fit(X, y)
    return out


@pytest.mark.parametrize("kind", ["clf", "reg", "perc"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row", [0, 777, 1999])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_non_finite_rows_are_refused(models, kind, dtype, bad, row, n_threads):
    model = models[kind, dtype].set_params(n_threads=n_threads)
    X = np.random.default_rng(1).standard_normal((2000, 5))
    X[row, 3] = bad
    methods = ["predict"] + (["predict_proba"] if kind == "clf" else []) + (
        ["decision_function", "predict_proba"] if kind == "perc" else [])
    for method in methods:
        with pytest.raises(ValueError, match="NaN or infinity"):
            getattr(model, method)(X)
    X[row, 3] = 0.0
    assert np.all(np.isfinite(np.asarray(model.predict(X), dtype=float)))


def _wide_model(dtype, zero_first_unit):
    """A model whose first layer is wide enough for the tiled products, and
    (zero_first_unit) whose first hidden unit has all-zero weights: an
    infinite input then reaches that unit's pre-activation as inf * 0 = NaN."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 70)).astype(dtype)
    y = rng.integers(0, 5, 300)
    m = pynn.MLPClassifier((37, 19), max_iter=2, tol=None, random_state=0,
                           dtype=dtype).fit(X, y)
    if zero_first_unit:
        m.coefs_[0][:, 0] = 0
        m.intercepts_[0][0] = 0
    return m


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("zero_first_unit", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_non_finite_values_anywhere_in_a_block_are_refused_on_every_path(
        simd, dtype, bad, zero_first_unit, n_threads):
    """Dense blocks are checked through the first layer's pre-activation of
    each row's first unit (a non-finite input makes it non-finite whatever the
    weights), so each position of a row and each block is tried, with that
    unit's weights all zero too."""
    m = _wide_model(dtype, zero_first_unit).set_params(n_threads=n_threads)
    X = np.random.default_rng(4).standard_normal((700, 70)).astype(dtype)
    clean = m.predict_proba(X)
    for row, col in [(0, 0), (0, 69), (255, 33), (256, 0), (511, 69), (699, 1), (698, 68)]:
        X[row, col] = bad
        with pytest.raises(ValueError, match="NaN or infinity"):
            m.predict_proba(X)
        with pytest.raises(ValueError, match="NaN or infinity"):
            m.predict(X[row:row + 1])
        X[row, col] = 0.5
        clean[row] = m.predict_proba(X[row:row + 1])[0]
    assert np.array_equal(m.predict_proba(X), clean)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_finite_input_that_overflows_the_first_layer_is_not_called_non_finite(simd, dtype):
    """A finite row whose first layer overflows (its pre-activation infinite)
    is read again to tell it from a NaN in X: a linear network reports that its
    output overflowed, and a ReLU one (whose units may swallow the overflow)
    never says that X holds NaN."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((600, 70)).astype(dtype)
    reg = pynn.MLPRegressor((37,), activation="identity", max_iter=2, tol=None,
                            random_state=0, dtype=dtype).fit(X[:300], X[:300, 0])
    big = X.copy()
    # the first unit's pre-activation: max * sum |w| (its bias aside), infinite
    big[300] = np.finfo(dtype).max * np.where(reg.coefs_[0][:, 0] < 0, -1, 1)
    with pytest.raises(ValueError, match="overflowed"):
        reg.predict(big)
    try:
        _wide_model(dtype, False).predict_proba(big)
    except ValueError as e:
        assert "NaN or infinity" not in str(e)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_weights_packed_once_per_call_give_the_bits_of_per_block_packing(simd, dtype, n_threads):
    """The core packs the weights once per predict call when the workspace has
    room after its blocks' workspaces (layers 70-37-19-5: the last panel of
    every layer partly filled); without that room each block packs its own.
    Both give the same bits, and a row alone (one block, never pre-packed)
    gives its row of the batch."""
    m = _wide_model(dtype, False)
    X = np.random.default_rng(6).standard_normal((1000, 70)).astype(dtype)
    net = m._make_net(None)
    params = m._arena  # the model's parameters, every layer's in one array
    full = m.set_params(n_threads=n_threads).predict_proba(X)
    for i in (0, 255, 256, 999):
        assert np.array_equal(m.predict_proba(X[i:i + 1]), full[i:i + 1])
    block = 128
    outs = []
    for pack in (0, net.predict_pack_size()):
        ws = np.empty(net.workspace_size(block) * 2 + pack, dtype=dtype)
        out = np.empty((1000, 5), dtype=dtype)
        net.predict(out, params, X, ws, block, n_threads)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])
    assert np.array_equal(outs[0], full)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_predict_runs_in_a_forward_pass_workspace(simd, dtype, sparse, n_threads):
    """predict's workspace per block is a forward pass's (predict_workspace_size):
    a fraction of training's, and two blocks' of it (with and without the room to
    pack the weights) give the bits of training-sized blocks and of the estimator;
    one scalar less is refused before the core runs."""
    import scipy.sparse as sp

    rng = np.random.default_rng(8)
    X = rng.standard_normal((700, 70)).astype(np.float32)
    y = rng.integers(0, 5, 700)
    m = pynn.MLPClassifier((256, 64), max_iter=1, tol=None, random_state=0,
                           dtype=dtype).fit(X[:200], y[:200])
    adt = m._arena.dtype
    X = X.astype(adt)
    if sparse:
        X[X < 0.5] = 0
        X = sp.csr_matrix(X)
    full = m.set_params(n_threads=n_threads).predict_proba(X)
    net = m._make_net(None)
    block = 128
    fwd = net.predict_workspace_size(block, sparse)
    train = net.workspace_size_csr(block) if sparse else net.workspace_size(block)
    assert 0 < fwd < train / 2
    xin = _sparse.core_input(X) if sparse else X
    run = net.predict_csr if sparse else net.predict
    for per_block in (fwd, train):
        for pack in (0, net.predict_pack_size()):
            out = np.empty((700, 5), dtype=adt)
            # NaN-filled: a forward pass reading past its part would show
            ws = np.full(per_block * 2 + pack, np.nan, dtype=adt)
            run(out, m._arena, xin, ws, block, n_threads)
            assert np.array_equal(out, full), (per_block, pack)
    with pytest.raises(ValueError, match="workspace too small"):
        run(np.empty((700, 5), dtype=adt), m._arena, xin, np.empty(fwd - 1, adt), block, 1)
