"""Non-finite rows are refused by every prediction method, wherever they sit in X
(the check runs inside the core, block by block, on one thread or several)."""
import numpy as np
import pytest

import pynn


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
