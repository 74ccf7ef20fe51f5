"""scikit-learn's behaviours that pynn matches, one test each: the L-BFGS
solver (trajectory, max_fun, no partial_fit), the Poisson loss (kernels, the
gradient, the trajectory), n_iter_no_change=np.inf, early stopping's
best_loss_ and divergence, one-class classifiers, warm starts on other
classes, the stratification and non-finite-weight messages, and dtype=None."""
import math
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import pynn
from pynn import MLPClassifier, MLPRegressor, ops

import reference

sk_nn = pytest.importorskip("sklearn.neural_network")


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def data(kind, n=60, n_features=5, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, n_features))
    if kind == "multiclass":
        y = np.argmax(X[:, :3] + 0.3 * rng.standard_normal((n, 3)), axis=1)
    elif kind == "binary":
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
    elif kind == "poisson":
        y = rng.poisson(np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1]))
    else:
        y = X @ rng.standard_normal(n_features) + 0.1 * rng.standard_normal(n)
    return X, y


def assert_same_weights(ours, theirs, rtol, atol):
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ---- L-BFGS ------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "regressor"])
def test_lbfgs_trajectory_equals_scikit_learn(kind, activation):
    """float64, same random_state: the iterates follow scikit-learn's to
    rounding error (the parameter vector is ordered differently, so L-BFGS's
    dot products round differently; the difference stays near 1e-10)."""
    X, y = data(kind)
    cls = "MLPRegressor" if kind == "regressor" else "MLPClassifier"
    params = dict(hidden_layer_sizes=(7, 4), activation=activation, solver="lbfgs",
                  alpha=1e-3, max_iter=15, random_state=3)
    ours = quiet(getattr(pynn, cls)(dtype="float64", **params).fit, X, y)
    theirs = quiet(getattr(sk_nn, cls)(**params).fit, X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    assert_same_weights(ours, theirs, rtol=1e-6, atol=1e-8)
    # the loss after every iteration, which scikit-learn does not keep
    assert len(ours.loss_curve_) == ours.n_iter_ and ours.loss_curve_[-1] == ours.loss_


def test_lbfgs_max_fun_and_max_iter_stop_with_a_warning():
    X, y = data("multiclass")
    m = MLPClassifier((10,), solver="lbfgs", max_fun=8, max_iter=500, random_state=0)
    with pytest.warns(pynn.ConvergenceWarning, match="lbfgs failed to converge"):
        m.fit(X, y)
    assert m.n_iter_ <= 8
    m = MLPClassifier((10,), solver="lbfgs", max_iter=3, random_state=0)
    with pytest.warns(pynn.ConvergenceWarning, match="max_iter=3"):
        m.fit(X, y)
    assert m.n_iter_ == 3


def test_lbfgs_has_no_partial_fit_and_trains_on_every_row():
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPClassifier(solver="adam"), "partial_fit")
    with pytest.raises(AttributeError, match="stochastic"):
        MLPRegressor(solver="lbfgs").partial_fit
    # early_stopping and batch_size do not apply: the same fit without them
    X, y = data("binary")
    kw = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=20, random_state=0,
              dtype="float64")
    a = quiet(MLPClassifier(early_stopping=True, batch_size=7, **kw).fit, X, y)
    b = quiet(MLPClassifier(**kw).fit, X, y)
    np.testing.assert_array_equal(a._arena, b._arena)


def test_lbfgs_float32_and_warm_start():
    X, y = data("regressor")
    m = quiet(MLPRegressor((8,), solver="lbfgs", max_iter=30, random_state=0).fit, X, y)
    assert m.coefs_[0].dtype == np.float32 and np.isfinite(m.loss_)
    first = m.loss_
    m.set_params(warm_start=True)
    quiet(m.fit, X, y)  # continues from the weights it has
    assert m.loss_ <= first


def test_lbfgs_sparse_equals_dense():
    sp = pytest.importorskip("scipy.sparse")
    X, y = data("multiclass")
    X[np.abs(X) < 0.8] = 0
    kw = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=10, random_state=0,
              dtype="float64")
    a = quiet(MLPClassifier(**kw).fit, X, y)
    b = quiet(MLPClassifier(**kw).fit, sp.csr_matrix(X), y)
    np.testing.assert_allclose(b._arena, a._arena, rtol=1e-8, atol=1e-10)


# ---- Poisson -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_activation_and_poisson_loss_kernels_equal_the_reference(dtype):
    rng = np.random.RandomState(1)
    z = rng.uniform(-3, 3, (9, 3)).astype(dtype)
    y = rng.poisson(2.0, (9, 3)).astype(dtype)
    y[0, 0] = 0  # 0 log 0 = 0
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    a = ops.activation(z, "exp")
    np.testing.assert_allclose(a, reference.activation(z, "exp"), rtol=rtol)
    d = rng.standard_normal((9, 3)).astype(dtype)
    np.testing.assert_allclose(ops.activation_backward(d, a, "exp"),
                               reference.activation_backward(d, a, "exp"), rtol=rtol)
    assert ops.loss(a, y, "half_poisson_deviance") == pytest.approx(
        reference.loss(a, y, "half_poisson_deviance"), rel=rtol)
    # fused: exp + half Poisson deviance -> y_hat - y; and the chain rule agrees
    fused = ops.output_delta(a, y, "exp", "half_poisson_deviance")
    np.testing.assert_allclose(fused, a - y, rtol=rtol, atol=rtol)
    chain = reference.activation_backward(
        reference.loss_derivative(a, y, "half_poisson_deviance"), a, "exp")
    np.testing.assert_allclose(fused, chain, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_poisson_gradient_equals_finite_differences():
    X, y = data("poisson", n=25, n_features=4)
    m = quiet(MLPRegressor((5,), loss="poisson", max_iter=2, dtype="float64", alpha=1e-2,
                           random_state=0, activation="tanh").fit, X, y)
    loss, gW, gb = m.loss_and_gradients(X, y)
    h = 1e-6
    for W, G in zip(m.coefs_ + m.intercepts_, gW + gb):
        flat, gflat = W.reshape(-1), G.reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 6)):
            old = flat[i]
            flat[i] = old + h
            up = m.loss_and_gradients(X, y)[0]
            flat[i] = old - h
            down = m.loss_and_gradients(X, y)[0]
            flat[i] = old
            assert gflat[i] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9)
    # the loss is scikit-learn's half Poisson deviance plus the L2 term
    y_hat = m.predict(X)
    data_loss = np.mean(reference._xlogy(y, y / y_hat) - y + y_hat)
    l2 = 0.5 * 1e-2 * sum((W ** 2).sum() for W in m.coefs_) / len(y)
    assert loss == pytest.approx(data_loss + l2, rel=1e-10)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_poisson_trajectory_equals_scikit_learn(solver):
    X, y = data("poisson")
    params = dict(hidden_layer_sizes=(6,), loss="poisson", solver=solver, max_iter=8,
                  shuffle=False, batch_size=20, learning_rate_init=0.01, random_state=2)
    ours = quiet(MLPRegressor(dtype="float64", **params).fit, X, y)
    theirs = quiet(sk_nn.MLPRegressor(**params).fit, X, y)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    rtol = 1e-6 if solver == "lbfgs" else 1e-10
    assert_same_weights(ours, theirs, rtol=rtol, atol=1e-10)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=rtol)


def test_poisson_refuses_negative_targets_and_saves(tmp_path):
    X, y = data("poisson")
    with pytest.raises(ValueError, match="negative.*poisson"):
        MLPRegressor(loss="poisson").fit(X, y - 1.0)
    m = quiet(MLPRegressor((4,), loss="poisson", max_iter=3, random_state=0).fit, X, y)
    assert (m.predict(X) > 0).all()
    m.save(tmp_path / "p.pynn")
    again = pynn.load(tmp_path / "p.pynn")
    np.testing.assert_array_equal(again.predict(X), m.predict(X))
    assert again.loss == "poisson" and again.out_activation_ == "exp"


def test_exp_is_not_a_hidden_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPRegressor(activation="exp").fit(*data("regressor"))


# ---- stopping and early stopping ----------------------------------------------------

def test_n_iter_no_change_inf_runs_every_epoch():
    X, y = data("binary")
    m = MLPClassifier((5,), solver="sgd", tol=1e9, n_iter_no_change=np.inf, max_iter=25,
                      random_state=0)
    quiet(m.fit, X, y)
    assert m.n_iter_ == 25 and m._no_improvement_count == 24


def test_early_stopping_leaves_best_loss_none():
    X, y = data("multiclass", n=80)
    es = quiet(MLPClassifier((6,), early_stopping=True, max_iter=5, random_state=0).fit, X, y)
    assert es.best_loss_ is None and len(es.validation_scores_) == es.n_iter_
    plain = quiet(MLPClassifier((6,), max_iter=5, random_state=0).fit, X, y)
    assert plain.best_loss_ == min(plain.loss_curve_)
    # a warm start without early stopping measures best_loss_ again
    es.set_params(early_stopping=False, warm_start=True)
    quiet(es.fit, X, y)
    assert es.best_loss_ == min(es.loss_curve_[-5:])


def test_divergence_under_early_stopping_keeps_the_best_weights():
    X, y = data("regressor", n=100)
    m = MLPRegressor(100, activation="identity", solver="sgd", learning_rate_init=5.0,
                     max_iter=20, early_stopping=True, random_state=0, dtype="float64")
    with pytest.warns(pynn.ConvergenceWarning, match="diverged"):
        m.fit(X * 100, y)
    assert isinstance(m.validation_scores_[-1], float) and math.isnan(m.validation_scores_[-1])
    assert len(m.validation_scores_) == len(m.loss_curve_) == m.n_iter_
    assert np.isfinite(m._arena).all()
    # without early stopping the same fit raises, leaving finite weights
    m.set_params(early_stopping=False)
    with pytest.raises(pynn.DivergenceError, match="Solver produced non-finite parameter"):
        m.fit(X * 100, y)
    assert np.isfinite(m._arena).all()


def test_stratification_needs_two_members_per_class():
    X = [[1, 2], [2, 3], [3, 4], [4, 5]]
    with pytest.raises(ValueError, match=r"The least populated classes in y have only 1 "
                       r"member.*Classes with too few members are: \['True'\]"):
        MLPClassifier(early_stopping=True).fit(X, [0, 0, 0, 1])


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor"])
def test_early_stopping_trajectory_equals_scikit_learn(kind):
    """The held-out rows and the order of the rest are scikit-learn's (a
    stratified split for two classes, a plain one otherwise), so with
    shuffle=False the whole early-stopping run agrees."""
    X, y = data(kind, n=90)
    cls = "MLPRegressor" if kind == "regressor" else "MLPClassifier"
    params = dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.05,
                  early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                  tol=1e-3, max_iter=60, shuffle=False, random_state=5, batch_size=16)
    ours = quiet(getattr(pynn, cls)(dtype="float64", **params).fit, X, y)
    theirs = quiet(getattr(sk_nn, cls)(**params).fit, X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 60
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert_same_weights(ours, theirs, rtol=1e-9, atol=1e-10)


# ---- classes ------------------------------------------------------------------------

def test_one_class_is_fitted_as_scikit_learn_does():
    X, _ = data("binary", n=30)
    y = np.full(30, "only")
    kw = dict(max_iter=5, random_state=0, shuffle=False)
    ours = quiet(MLPClassifier((4,), dtype="float64", **kw).fit, X, y)
    theirs = quiet(sk_nn.MLPClassifier((4,), **kw).fit, X, y)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.predict_proba(X).shape == theirs.predict_proba(X).shape == (30, 2)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9)
    assert ours.score(X, y) == 1.0


def test_warm_start_needs_the_same_classes():
    X, y = data("multiclass", n=60)
    m = quiet(MLPClassifier((4,), warm_start=True, max_iter=3, random_state=0).fit, X, y)
    before = m._arena.copy()
    for other in (y % 2, np.where(y == 2, 5, y)):   # a subset; a new class
        msg = ("warm_start can only be used where `y` has the same classes as in the "
               f"previous call to fit. Previously got [0 1 2], `y` has {np.unique(other)}")
        with pytest.raises(ValueError, match=re.escape(msg)):
            m.fit(X, other)
        np.testing.assert_array_equal(m._arena, before)
    quiet(m.fit, X, y)                # the same classes continue
    m.partial_fit(X[y < 2], y[y < 2])  # partial_fit may see a subset


# ---- dtype ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_dtype_none_follows_x(cls):
    X, y = data("binary" if cls is MLPClassifier else "regressor")
    for x_dtype, want in ((np.float32, np.float32), (np.float64, np.float64),
                          (np.int64, np.float64)):
        m = quiet(cls((3,), dtype=None, max_iter=2, random_state=0).fit,
                  (X * 10).astype(x_dtype), y)
        assert all(W.dtype == want for W in m.coefs_ + m.intercepts_)
        if cls is MLPRegressor:
            assert m.predict(X.astype(x_dtype)).dtype == want
    # a warm start keeps the model's dtype whatever X is
    m = quiet(cls((3,), dtype=None, max_iter=2, warm_start=True).fit, X.astype(np.float32), y)
    quiet(m.fit, X, y)
    assert m.coefs_[0].dtype == np.float32


def test_regressor_predictions_follow_x_dtype():
    X, y = data("regressor")
    m = quiet(MLPRegressor((3,), max_iter=2, random_state=0).fit, X, y)  # float32 model
    assert m.predict(X).dtype == np.float64
    assert m.predict(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_array_equal(m.predict(X), m.predict(X.astype(np.float32)))


def test_import_pynn_imports_no_scipy():
    code = "import sys, pynn; print(sorted(m for m in ('scipy', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd="/", check=True).stdout
    assert out.strip() == "[]"
