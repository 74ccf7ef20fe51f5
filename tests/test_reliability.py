"""Reliability fixes, one test each: early stopping follows scikit-learn's
split order, a shallow copy shares no optimizer state, a huge power_t is
refused up front, the memory guard counts what a fit allocates, and a second
concurrent fit of one estimator is refused."""
import copy
import threading
import tracemalloc
import warnings

import numpy as np
import pytest

import pynn
from pynn import MLPClassifier, MLPRegressor, _arena
from pynn._training import bytes_per_param


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def blobs(n=90, n_features=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    return X, np.argmax(X[:, :3], axis=1)


def test_a_shallow_copy_continues_like_a_deep_copy():
    X, y = blobs()
    a = MLPClassifier((6,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    shallow, deep = copy.copy(a), copy.deepcopy(a)
    for _ in range(3):
        a.partial_fit(X, y)        # the original trains on: its moments move
    shallow.partial_fit(X, y)
    deep.partial_fit(X, y)
    np.testing.assert_array_equal(shallow._arena, deep._arena)
    assert shallow._opt_state.a is not a._opt_state.a


def test_huge_power_t_is_refused_before_training():
    X, y = blobs()
    m = MLPClassifier((5,), solver="sgd", learning_rate="invscaling", power_t=100,
                      max_iter=5, random_state=0)
    with pytest.raises(ValueError, match="power_t=100"):
        m.fit(X, y)
    assert not hasattr(m, "coefs_")  # refused before anything was trained
    # a large but workable power_t trains, its rate computed without overflow
    ok = quiet(MLPClassifier((5,), solver="sgd", learning_rate="invscaling", power_t=3,
                             max_iter=3, random_state=0).fit, X, y)
    assert ok._opt_state.lr == pytest.approx(1e-3 / (ok.t_ + 1) ** 3)


@pytest.mark.parametrize("solver,early_stopping", [("adam", False), ("adam", True),
                                                   ("sgd", False), ("lbfgs", False)])
def test_memory_guard_counts_what_a_fit_allocates(solver, early_stopping, monkeypatch):
    X = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    y = np.arange(64) % 3
    kw = dict(hidden_layer_sizes=(256,), solver=solver, early_stopping=early_stopping,
              max_iter=3, n_threads=1, random_state=0)
    import scipy.optimize  # noqa: F401  (its import is not the fit's memory)

    quiet(MLPClassifier(**{**kw, "max_iter": 1}).fit, X, y)  # warm the caches
    tracemalloc.start()
    m = quiet(MLPClassifier(**kw).fit, X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    n_params = m._arena.size
    counted = bytes_per_param(solver, early_stopping, np.float32) * n_params
    # what the guard counts covers the fit's peak, less the data and the
    # batch-sized workspace (neither grows with the network)
    others = 4 * X.nbytes + 4 * m._make_net().workspace_size(64) * 4
    assert counted >= peak - others, (peak / (4 * n_params), counted / (4 * n_params))
    # and a machine with less than that refuses the fit before allocating
    monkeypatch.setattr(_arena, "_total_memory", lambda: counted - 1)
    with pytest.raises(MemoryError, match="needs about"):
        MLPClassifier(**kw).fit(X, y)
    monkeypatch.setattr(_arena, "_total_memory", lambda: 6 * 4 * n_params)  # old guard: 4x
    if counted > 6 * 4 * n_params:
        with pytest.raises(MemoryError):
            MLPClassifier(**kw).fit(X, y)


def test_a_second_concurrent_fit_of_one_estimator_is_refused():
    X, y = blobs(n=4000, n_features=30)
    m = MLPClassifier((64,), max_iter=600, tol=None, random_state=0, n_threads=1)
    started, errors = threading.Event(), []

    def long_fit():
        started.set()
        quiet(m.fit, X, y)

    t = threading.Thread(target=long_fit)
    t.start()
    started.wait()
    deadline = 200
    while not hasattr(m, "_layout") and deadline:  # the first fit is under way
        threading.Event().wait(0.01)
        deadline -= 1
    try:
        MLPRegressor(max_iter=1).fit(X[:50], y[:50])  # other estimators are not affected
        with pytest.raises(RuntimeError, match="already being fitted in another thread"):
            m.fit(X[:100], y[:100] % 2)
        with pytest.raises(RuntimeError, match="already being fitted"):
            m.partial_fit(X[:100], y[:100])
    finally:
        t.join()
    # the model is consistent: its network matches its attributes
    assert m.n_outputs_ == m._layout.units[-1] == 3 and m.predict(X).shape == (4000,)
    quiet(m.set_params(max_iter=1).fit, X, y)  # and can be fitted again

    # (the first fit ran max_iter epochs undisturbed)
