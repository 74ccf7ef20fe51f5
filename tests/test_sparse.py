"""Sparse input (scipy.sparse, any format): the CSR kernels against the NumPy
reference, and fits on sparse X against the same fits on X made dense -- equal
to rounding (the products sum over the non-zeros only), bitwise the same for
any thread count, on every SIMD path; and a sparse fit never makes X dense."""
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import reference
from pynn import MLPClassifier, MLPRegressor, Perceptron, _core

PATHS = _core.simd_supported()
# weights of a dense fit and the same fit on sparse X: max |diff| / max |dense|
RTOL = {np.float64: 1e-10, np.float32: 1e-4}


def random_csr(n, d, density, seed, dtype=np.float64):
    rng = np.random.RandomState(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=rng, dtype=np.float64,
                  data_rvs=rng.standard_normal)
    return X.astype(dtype)


def core_csr(X):
    return _core.CSR(X.indptr, X.indices, np.ascontiguousarray(X.data), X.shape[1])


def rel_diff(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


# ---- kernels -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,d,m", [(1, 1, 1), (7, 13, 5), (33, 101, 17), (64, 300, 40)])
@pytest.mark.parametrize("act", ["identity", "relu", "logistic", "tanh", "softmax"])
def test_sparse_forward_matches_reference(simd, n, d, m, act, dtype):
    X = random_csr(n, d, 0.2, seed=n + d, dtype=dtype)
    rng = np.random.RandomState(1)
    W = rng.standard_normal((d, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    out = np.empty((n, m), dtype)
    _core.sparse_forward(out, core_csr(X), W, b, _core.ACTIVATIONS[act], 1)
    want = reference.dense_forward(X.toarray().astype(np.float64), W.astype(np.float64),
                                   b.astype(np.float64), act)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
    # rows picked by index, as a shuffled batch is read
    rows = np.random.RandomState(2).randint(0, n, size=2 * n + 1).astype(np.int64)
    sub = np.empty((len(rows), m), dtype)
    _core.sparse_forward(sub, core_csr(X), W, b, _core.ACTIVATIONS[act], 1, rows)
    np.testing.assert_array_equal(sub, out[rows])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,d,m", [(1, 1, 1), (7, 13, 5), (33, 101, 17), (64, 300, 40)])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_sparse_backward_matches_reference(simd, n, d, m, alpha, dtype):
    X = random_csr(n, d, 0.2, seed=n * d, dtype=dtype)
    rng = np.random.RandomState(3)
    W = rng.standard_normal((d, m)).astype(dtype)
    delta = rng.standard_normal((n, m)).astype(dtype)
    dW = np.full((d, m), np.nan, dtype)  # every element must be written
    db = np.full(m, np.nan, dtype)
    _core.sparse_backward(dW, db, delta, core_csr(X), W, alpha, 1)
    _, want_dW, want_db = reference.dense_backward(delta.astype(np.float64),
                                                   X.toarray().astype(np.float64),
                                                   W.astype(np.float64), alpha)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(dW, want_dW, rtol=tol, atol=tol)
    np.testing.assert_allclose(db, want_db, rtol=tol, atol=tol)
    # a batch of picked rows (repeats included) is the gradient of those rows
    rows = np.random.RandomState(4).randint(0, n, size=n + 2).astype(np.int64)
    delta2 = rng.standard_normal((n + 2, m)).astype(dtype)
    _core.sparse_backward(dW, db, delta2, core_csr(X), W, alpha, 1, rows)
    Xr = X.toarray().astype(np.float64)[rows]
    _, want_dW, _ = reference.dense_backward(delta2.astype(np.float64), Xr,
                                             W.astype(np.float64), alpha)
    np.testing.assert_allclose(dW, want_dW, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_kernels_bitwise_the_same_for_any_thread_count(simd, dtype):
    # big enough that the kernels do use several threads (PYNN_PAR_MIN_WORK)
    n, d, m = 256, 6000, 200
    X = random_csr(n, d, 0.02, seed=5, dtype=dtype)
    rng = np.random.RandomState(6)
    W = rng.standard_normal((d, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    delta = rng.standard_normal((n, m)).astype(dtype)
    outs, grads = [], []
    for nt in (1, 2, 3):
        out = np.empty((n, m), dtype)
        _core.sparse_forward(out, core_csr(X), W, b, _core.ACTIVATIONS["relu"], nt)
        dW, db = np.empty((d, m), dtype), np.empty(m, dtype)
        _core.sparse_backward(dW, db, delta, core_csr(X), W, 1e-3, nt)
        outs.append(out)
        grads.append((dW, db))
    for out, (dW, db) in zip(outs[1:], grads[1:]):
        assert np.array_equal(out, outs[0])
        assert np.array_equal(dW, grads[0][0]) and np.array_equal(db, grads[0][1])


def test_csr_binding_refuses_what_the_core_would_trust():
    data = np.ones(2)
    with pytest.raises(ValueError, match="column indices"):
        _core.CSR(np.array([0, 1, 2]), np.array([0, 5]), data, 5)
    with pytest.raises(ValueError, match="column indices"):
        _core.CSR(np.array([0, 1, 2]), np.array([-1, 0]), data, 5)
    with pytest.raises(ValueError, match="never decrease"):
        _core.CSR(np.array([0, 2, 1]), np.array([0, 1]), data, 5)
    with pytest.raises(ValueError, match="past the"):
        _core.CSR(np.array([0, 1, 3]), np.array([0, 1]), data, 5)
    X = core_csr(sp.csr_matrix(np.eye(3)))
    out = np.empty((2, 2))
    with pytest.raises(ValueError, match="rows must lie"):
        _core.sparse_forward(out, X, np.ones((3, 2)), np.zeros(2), 0, 1,
                             np.array([0, 3], dtype=np.int64))


# ---- estimators: sparse fit == dense fit --------------------------------------------

def problem(kind, n=240, d=60, seed=0, dtype=np.float64):
    X = random_csr(n, d, 0.15, seed, dtype)
    rng = np.random.RandomState(seed + 1)
    if kind == "reg":
        y = X @ rng.standard_normal((d, 2)) + 0.1 * rng.standard_normal((n, 2))
    else:
        y = rng.randint(0, 3, n)
    return X, np.asarray(y)


def make(kind, **kw):
    common = dict(max_iter=4, random_state=0, tol=None, batch_size=32, dtype="float64")
    common.update(kw)
    if kind == "clf":
        return MLPClassifier((16, 8), **common)
    if kind == "reg":
        return MLPRegressor((16,), **common)
    common.pop("batch_size")
    return Perceptron(batch_size=32, **common)


def weights(m):
    if isinstance(m, Perceptron):
        return [np.array(m.coef_), np.array(m.intercept_)]
    return [np.array(w) for w in m.coefs_] + [np.array(b) for b in m.intercepts_]


FORMATS = ["csr_matrix", "csr_array", "csc_matrix", "csc_array", "coo_matrix", "coo_array",
           "lil_matrix"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("kind", ["clf", "reg", "perc"])
def test_sparse_fit_equals_dense_fit(simd, kind, shuffle, dtype):
    X, y = problem(kind)
    kw = dict(shuffle=shuffle, dtype=dtype.__name__)
    if kind != "perc":
        kw["alpha"] = 1e-3
    dense = make(kind, **kw).fit(X.toarray(), y)
    sparse = make(kind, **kw).fit(X, y)
    for a, b in zip(weights(sparse), weights(dense)):
        assert rel_diff(a, b) <= RTOL[dtype]
    assert sparse.loss_curve_ == pytest.approx(dense.loss_curve_, rel=RTOL[dtype] * 10)
    pd, ps = dense.predict(X.toarray()), sparse.predict(X)
    if kind == "reg":
        np.testing.assert_allclose(ps, pd, rtol=RTOL[dtype] * 100, atol=RTOL[dtype])
    else:
        assert np.mean(ps == pd) > 0.98
    if simd == "generic" and dtype == np.float64:
        # on the portable path both products sum in the same order, the
        # non-zeros being the only non-zero terms: the very same bits
        for a, b in zip(weights(sparse), weights(dense)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_sparse_format_gives_the_csr_fit(fmt):
    X, y = problem("clf", seed=3)
    want = make("clf").fit(X, y)
    Xf = getattr(sp, fmt)(X)
    got = make("clf").fit(Xf, y)
    for a, b in zip(weights(got), weights(want)):
        assert np.array_equal(a, b)
    np.testing.assert_array_equal(got.predict_proba(Xf), want.predict_proba(X))
    assert got.score(Xf, y) == want.score(X, y)


@pytest.mark.parametrize("kind", ["clf", "reg", "perc"])
def test_partial_fit_and_sample_weight_on_sparse(kind):
    X, y = problem(kind, seed=4)
    sw = np.random.RandomState(5).uniform(0.1, 2.0, X.shape[0])
    dense, sparse = make(kind), make(kind)
    extra = {"classes": np.unique(y)} if kind != "reg" else {}
    for i in range(3):
        rows = slice(80 * i, 80 * (i + 1))
        dense.partial_fit(X[rows].toarray(), y[rows], sample_weight=sw[rows], **extra)
        sparse.partial_fit(X[rows], y[rows], sample_weight=sw[rows], **extra)
    for a, b in zip(weights(sparse), weights(dense)):
        assert rel_diff(a, b) <= 1e-10
    sparse.fit(X, y, sample_weight=sw)
    dense.fit(X.toarray(), y, sample_weight=sw)
    for a, b in zip(weights(sparse), weights(dense)):
        assert rel_diff(a, b) <= 1e-10


def test_perceptron_decision_function_and_proba_on_sparse():
    X, y = problem("perc", seed=6)
    p = make("perc").fit(X, y)
    np.testing.assert_allclose(p.decision_function(X), p.decision_function(X.toarray()),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p.predict_proba(X), p.predict_proba(X.toarray()),
                               rtol=1e-12, atol=1e-12)
    assert p.score(X, y) == p.score(X.toarray(), y)


def test_mlp_sparse_predict_methods_and_early_stopping():
    X, y = problem("clf", n=400, seed=7)
    m = make("clf", early_stopping=True, max_iter=6).fit(X, y)
    d = make("clf", early_stopping=True, max_iter=6).fit(X.toarray(), y)
    assert m.validation_scores_ == pytest.approx(d.validation_scores_)
    for a, b in zip(weights(m), weights(d)):
        assert rel_diff(a, b) <= 1e-10
    np.testing.assert_allclose(m.predict_log_proba(X), m.predict_log_proba(X.toarray()),
                               rtol=1e-12, atol=1e-12)
    reg = make("reg").fit(*problem("reg", seed=8))
    Xr, yr = problem("reg", seed=9)
    assert reg.score(Xr, yr) == pytest.approx(reg.score(Xr.toarray(), yr), rel=1e-12)


@pytest.mark.parametrize("kind", ["clf", "perc"])
def test_forward_layers_and_loss_and_gradients_on_sparse(kind):
    X, y = problem(kind, seed=10)
    m = make(kind).fit(X, y)
    acts_s, acts_d = m.forward_layers(X), m.forward_layers(X.toarray())
    assert sp.issparse(acts_s[0]) and acts_s[0].shape == X.shape
    for a, b in zip(acts_s[1:], acts_d[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    ls = m.loss_and_gradients(X, y)
    ld = m.loss_and_gradients(X.toarray(), y)
    assert ls[0] == pytest.approx(ld[0], rel=1e-12)
    def arrays(res):  # lists for the MLPs, arrays for the Perceptron
        return [np.asarray(a) for part in res[1:] for a in (part if isinstance(part, list)
                                                             else [part])]

    for a, b in zip(arrays(ls), arrays(ld)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparse_fit_bitwise_the_same_for_any_thread_count(simd, shuffle, dtype):
    # the first layer's products big enough to run on several threads
    X = random_csr(600, 4000, 0.01, seed=11)
    y = np.random.RandomState(12).randint(0, 4, 600)
    fits = [MLPClassifier((256,), solver="adam", batch_size=200, max_iter=2, tol=None,
                          shuffle=shuffle, random_state=0, dtype=dtype, n_threads=nt,
                          alpha=a).fit(X, y)
            for nt in (1, 2) for a in (0.0, 1e-3)]
    for one, two in [(fits[0], fits[2]), (fits[1], fits[3])]:
        for a, b in zip(weights(one), weights(two)):
            assert np.array_equal(a, b)


def test_unsorted_and_duplicate_indices_leave_the_callers_matrix_alone():
    X, y = problem("clf", seed=13)
    # the same matrix with each row's entries reversed and each split in two halves
    indptr, cols, vals = [0], [], []
    for i in range(X.shape[0]):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        for c, v in zip(X.indices[lo:hi][::-1], X.data[lo:hi][::-1]):
            cols += [c, c]
            vals += [v / 2, v / 2]
        indptr.append(len(cols))
    odd_csr = sp.csr_matrix((np.array(vals), np.array(cols), np.array(indptr)), shape=X.shape)
    assert not odd_csr.has_canonical_format
    before = (odd_csr.data.copy(), odd_csr.indices.copy())
    got = make("clf").fit(odd_csr, y)
    want = make("clf").fit(X, y)
    for a, b in zip(weights(got), weights(want)):
        assert rel_diff(a, b) <= 1e-12
    assert np.array_equal(odd_csr.data, before[0]) and np.array_equal(odd_csr.indices, before[1])


def test_sparse_fit_never_makes_x_dense():
    n, d, k = 2000, 200_000, 20
    rng = np.random.RandomState(14)
    cols = np.sort(rng.randint(0, d, (n, k)), axis=1).ravel()  # (sp.random is slow here)
    X = sp.csr_matrix((rng.standard_normal(n * k).astype(np.float32), cols,
                       np.arange(0, n * k + 1, k)), shape=(n, d))
    y = np.random.RandomState(15).randint(0, 2, n)
    dense_bytes = n * d * 4
    m = MLPClassifier((8,), solver="adam", batch_size=200, max_iter=1, tol=None,
                      random_state=0, dtype="float32")
    tracemalloc.start()
    try:
        m.fit(X, y)
        m.predict_proba(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    model_bytes = m.coefs_[0].nbytes
    # the model with its gradient, Adam's moments and two snapshots, the data's
    # int64 indices: well under a tenth of X made dense (1.6 GB)
    assert peak < 10 * model_bytes + 50 * X.nnz
    assert peak < dense_bytes / 10


def test_importing_pynn_does_not_import_scipy():
    code = "import pynn, sys; assert 'scipy' not in sys.modules, 'scipy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
