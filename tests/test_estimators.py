"""The estimators' behaviour: learning real data, the Perceptron's textbook rules,
the scikit-learn API (attributes, parameters, errors, warnings, pickling), and
the refusal of bad hyperparameters and bad data."""
import pickle
import re
import time
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split

import pynn
from pynn import MLPClassifier, MLPRegressor, Perceptron

ESTIMATORS = (MLPClassifier, MLPRegressor)


def quiet(fn, *args, **kwargs):
    """Call fn with convergence warnings (pynn's and scikit-learn's) silenced."""
    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pynn.ConvergenceWarning)
        warnings.simplefilter("ignore", SklearnConvergenceWarning)
        return fn(*args, **kwargs)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def blobs(n=60, n_features=3, seed=0, gap=4.0):
    """Two well separated Gaussian blobs: a linearly separable problem."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.standard_normal((n, n_features))
    X[:, 0] += np.where(y == 1, gap, -gap)
    return X, y


def small_problem(kind, n=40, n_features=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    if kind == "binary":
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    elif kind == "multiclass":
        y = np.digitize(X[:, 0], [-0.5, 0.5])
    elif kind == "multilabel":
        y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 0] + X[:, 2] > 0]).astype(int)
    elif kind == "regressor":
        y = X @ rng.standard_normal(n_features) + 0.1 * rng.standard_normal(n)
    elif kind == "regressor2":
        y = X @ rng.standard_normal((n_features, 2))
    else:
        raise ValueError(kind)
    return X, y


def estimator_for(kind):
    return MLPRegressor if kind.startswith("regressor") else MLPClassifier


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, random_state=0)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (y - y.mean()) / y.std()
    return train_test_split(X, y, random_state=0)


# ---------------------------------------------------------------------------
# learning real data
#
# These fits run on one thread: on a 2-core machine shared with other work,
# OpenMP threads that wait at a barrier for a descheduled peer made small fits
# 10 - 100 times slower.  Thread counts are checked in test_network.py.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_digits_classifier_accuracy(digits, dtype):
    X_train, X_test, y_train, y_test = digits
    clf = quiet(MLPClassifier(hidden_layer_sizes=(64,), max_iter=100, random_state=0,
                              dtype=dtype, n_threads=1).fit, X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.95
    assert clf.coefs_[0].dtype == np.dtype(dtype)
    assert list(clf.classes_) == list(range(10))
    assert clf.loss_curve_[-1] < 0.2 * clf.loss_curve_[0]


def test_digits_classifier_default_parameters(digits):
    X_train, X_test, y_train, y_test = digits
    clf = quiet(MLPClassifier(random_state=1, n_threads=1).fit, X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.95


def test_diabetes_regressor_r2(diabetes):
    from sklearn.linear_model import LinearRegression

    X_train, X_test, y_train, y_test = diabetes
    # a linear model reaches R^2 = 0.36 on this split; the network, well
    # regularised, does as well (it measured 0.37 - 0.38 over seeds)
    linear = LinearRegression().fit(X_train, y_train).score(X_test, y_test)
    for seed in (0, 1):
        reg = quiet(MLPRegressor(hidden_layer_sizes=(32,), alpha=10.0,
                                 learning_rate_init=0.01, max_iter=300, random_state=seed,
                                 n_threads=1).fit,
                    X_train, y_train)
        r2 = reg.score(X_test, y_test)
        assert r2 > 0.3
        assert r2 > linear - 0.05
        assert reg.score(X_train, y_train) > 0.45
        assert reg.predict(X_test).shape == y_test.shape


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["logistic", "step"])
def test_perceptron_separates_separable_data(activation, dtype):
    X, y = blobs(n=80, n_features=4, seed=1)
    p = Perceptron(activation, dtype=dtype, max_iter=500).fit(X, y)
    assert p.score(X, y) == 1.0
    X_new, y_new = blobs(n=200, n_features=4, seed=2)
    assert p.score(X_new, y_new) >= 0.99


def test_perceptron_on_digits_five_or_more(digits):
    X_train, X_test, y_train, y_test = digits
    p = quiet(Perceptron(n_threads=1).fit, X_train, y_train >= 5)
    assert p.score(X_test, y_test >= 5) >= 0.8
    assert p.score(X_train, y_train >= 5) >= 0.8


# ---------------------------------------------------------------------------
# Perceptron specifics
# ---------------------------------------------------------------------------

def test_perceptron_shapes_and_attributes():
    X, y = blobs(n=30, n_features=5)
    p = quiet(Perceptron(max_iter=20).fit, X, y)
    assert p.coef_.shape == (5,)
    assert p.intercept_.shape == (1,)
    assert p.n_features_in_ == 5
    np.testing.assert_array_equal(p.classes_, [0, 1])
    assert isinstance(p.n_iter_, int) and p.n_iter_ == len(p.loss_curve_)
    assert p.loss_ == p.loss_curve_[-1]
    assert p.decision_function(X).shape == (30,)
    assert p.predict(X).shape == (30,)
    assert p.predict_proba(X).shape == (30, 2)
    assert not hasattr(p, "coefs_")


@pytest.mark.parametrize("lr", [0.1, 0.7])
def test_perceptron_first_step_from_zero_weights(lr):
    """Weights start at zero: sigma(0) = 1/2, sigma'(0) = 1/4, so one full-batch step is
    w = -lr (2/n) sum_k (1/2 - y_k) (1/4) x_k,  b = -lr (2/n) sum_k (1/2 - y_k) / 4."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((25, 4))
    y = (rng.random(25) < 0.4).astype(int)
    p = Perceptron(learning_rate_init=lr, max_iter=1, tol=None, dtype="float64").fit(X, y)
    n = len(y)
    w = -lr * (2.0 / n) * ((0.5 - y) * 0.25) @ X
    b = -lr * (2.0 / n) * np.sum((0.5 - y) * 0.25)
    np.testing.assert_allclose(p.coef_, w, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(p.intercept_, [b], rtol=1e-12, atol=1e-16)
    # the recorded loss is the cost at zero weights: mean((y - 1/2)^2) = 1/4
    np.testing.assert_allclose(p.loss_curve_, [0.25], rtol=1e-12)


def test_perceptron_full_batch_ignores_random_state():
    X, y = blobs(n=40, n_features=3, seed=4, gap=0.5)
    kw = dict(max_iter=30, tol=None)
    fits = [Perceptron(random_state=rs, **kw).fit(X, y) for rs in (None, 0, 1, 12345)]
    for other in fits[1:]:
        assert np.array_equal(fits[0].coef_, other.coef_)
        assert np.array_equal(fits[0].intercept_, other.intercept_)
    # shuffle only matters with minibatches
    a = Perceptron(shuffle=True, random_state=0, **kw).fit(X, y)
    assert np.array_equal(a.coef_, fits[0].coef_)


def test_perceptron_tol_none_runs_exactly_max_iter():
    X, y = blobs(n=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning when tol=None
        p = Perceptron(tol=None, max_iter=37).fit(X, y)
    assert p.n_iter_ == 37
    assert len(p.loss_curve_) == 37


def test_perceptron_step_is_rosenblatts_rule():
    """From zero weights step(0) = 1 for every row, so one full-batch epoch gives
    w = lr mean((y - 1) x) and b = lr mean(y - 1)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((21, 3))
    y = np.array([0, 1] * 10 + [0])
    lr = 0.3
    p = Perceptron("step", learning_rate_init=lr, max_iter=1, tol=None,
                   dtype="float64").fit(X, y)
    np.testing.assert_allclose(p.coef_, lr * np.mean((y - 1)[:, None] * X, axis=0),
                               rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(p.intercept_, [lr * np.mean(y - 1)], rtol=1e-12)
    # the second epoch applies the same rule with the new outputs step(z)
    w, b = p.coef_.copy(), p.intercept_[0]
    p.set_params(warm_start=True)
    p.fit(X, y)
    yhat = (X @ w + b >= 0).astype(float)
    np.testing.assert_allclose(p.coef_, w + lr * np.mean((y - yhat)[:, None] * X, axis=0),
                               rtol=1e-12, atol=1e-15)
    # the step unit's cost is the squared error of its 0/1 outputs
    np.testing.assert_allclose(p.loss_curve_[-1], np.mean((y - yhat) ** 2), rtol=1e-12)


def test_perceptron_predict_proba_and_decision_function():
    X, y = blobs(n=50, n_features=3, seed=6, gap=1.0)
    p = quiet(Perceptron(max_iter=50, dtype="float64").fit, X, y)
    z = p.decision_function(X)
    np.testing.assert_allclose(z, X @ p.coef_ + p.intercept_[0], rtol=1e-12, atol=1e-14)
    proba = p.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(proba[:, 1], sigmoid(z), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(p.predict(X), p.classes_[(proba[:, 1] > 0.5).astype(int)])
    np.testing.assert_array_equal(p.predict(X), np.where(z > 0, 1, 0))
    assert 0 < p.score(X, y) <= 1


def test_perceptron_step_has_no_predict_proba():
    X, y = blobs(n=20)
    p = Perceptron("step", max_iter=5, tol=None).fit(X, y)
    assert not hasattr(p, "predict_proba")
    assert not hasattr(Perceptron("step"), "predict_proba")
    assert hasattr(Perceptron("logistic"), "predict_proba")
    with pytest.raises(AttributeError):
        p.predict_proba(X)
    z = p.decision_function(X)
    np.testing.assert_array_equal(p.predict(X), np.where(z >= 0, 1, 0))


def test_perceptron_labels_and_class_count():
    X, y = blobs(n=30)
    labels = np.where(y == 1, "pos", "neg")
    p = Perceptron(max_iter=100).fit(X, labels)
    np.testing.assert_array_equal(p.classes_, ["neg", "pos"])
    assert set(p.predict(X)) <= {"neg", "pos"}
    assert p.score(X, labels) == 1.0
    with pytest.raises(ValueError, match="2 classes"):
        Perceptron().fit(X, np.zeros(30))


def test_perceptron_multiclass_is_one_vs_rest():
    """k > 2 classes: k neurons side by side, neuron j trained on "class j or
    not"; each equals a binary Perceptron trained alone on that question."""
    rng = np.random.default_rng(3)
    centers = np.array([[0, 0], [4, 0], [0, 4]], float)
    y = np.repeat(["a", "b", "c"], 20)
    X = centers[np.repeat(np.arange(3), 20)] + rng.normal(0, 0.5, (60, 2))
    p = Perceptron(dtype="float64", max_iter=300, tol=None).fit(X, y)
    assert p.coef_.shape == (3, 2) and p.intercept_.shape == (3,)
    np.testing.assert_array_equal(p.classes_, ["a", "b", "c"])
    for j, label in enumerate("abc"):
        alone = Perceptron(dtype="float64", max_iter=300, tol=None).fit(X, y == label)
        np.testing.assert_allclose(p.coef_[j], alone.coef_, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(p.intercept_[j], alone.intercept_[0], rtol=1e-12, atol=1e-14)
    z = p.decision_function(X)
    assert z.shape == (60, 3)
    np.testing.assert_allclose(z, X @ p.coef_.T + p.intercept_, rtol=1e-12)
    np.testing.assert_array_equal(p.predict(X), p.classes_[np.argmax(z, axis=1)])
    assert p.score(X, y) > 0.95
    proba = p.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # coef_ is a view of the model: writing it changes predictions
    p.coef_[0] = 0.0
    np.testing.assert_allclose(p.decision_function(X)[:, 0], p.intercept_[0])


def test_perceptron_in_place_and_replaced_weights():
    X, y = blobs(n=30, n_features=3)
    p = Perceptron(max_iter=10, tol=None, dtype="float64").fit(X, y)
    p.coef_[...] = [1.0, 2.0, 3.0]
    p.intercept_[...] = [-0.5]
    np.testing.assert_allclose(p.decision_function(X), X @ [1.0, 2.0, 3.0] - 0.5, rtol=1e-12)
    p.coef_ = np.array([-1.0, 0.0, 0.5])
    np.testing.assert_allclose(p.decision_function(X), X @ [-1.0, 0.0, 0.5] - 0.5,
                               rtol=1e-12)
    # and training continues from the replaced weights
    _, gw, gb = p.loss_and_gradients(X, y)
    p.set_params(warm_start=True, max_iter=1)
    p.fit(X, y)
    np.testing.assert_allclose(p.coef_, [-1.0, 0.0, 0.5] - 0.1 * gw, rtol=1e-12)


# ---------------------------------------------------------------------------
# fitted attributes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind,out", [("binary", "logistic"), ("multiclass", "softmax"),
                                      ("multilabel", "logistic"), ("regressor", "identity"),
                                      ("regressor2", "identity")])
def test_fitted_attributes(kind, out):
    from sklearn import neural_network

    X, y = small_problem(kind)
    cls = estimator_for(kind)
    m = quiet(cls((6, 4), max_iter=3, random_state=0).fit, X, y)
    assert isinstance(m.coefs_, list) and isinstance(m.intercepts_, list)
    assert len(m.coefs_) == len(m.intercepts_) == 3
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float32
               for a in m.coefs_ + m.intercepts_)
    assert isinstance(m.n_iter_, int) and m.n_iter_ == 3
    assert isinstance(m.loss_, float) and m.loss_ == m.loss_curve_[-1]
    assert isinstance(m.loss_curve_, list) and len(m.loss_curve_) == 3
    assert all(isinstance(v, float) for v in m.loss_curve_)
    assert m.best_loss_ == min(m.loss_curve_)
    assert m.t_ == 3 * len(X)
    assert m.n_features_in_ == 5
    assert m.out_activation_ == out
    # the same shapes and output as scikit-learn for the same problem
    sk = quiet(getattr(neural_network, cls.__name__)(hidden_layer_sizes=(6, 4), max_iter=3,
                                                     random_state=0).fit, X, y)
    assert [W.shape for W in m.coefs_] == [W.shape for W in sk.coefs_]
    assert [b.shape for b in m.intercepts_] == [b.shape for b in sk.intercepts_]
    assert m.n_layers_ == sk.n_layers_ == 4
    assert m.n_outputs_ == sk.n_outputs_
    assert m.out_activation_ == sk.out_activation_
    if cls is MLPClassifier:
        assert isinstance(m.classes_, np.ndarray)
        np.testing.assert_array_equal(m.classes_, sk.classes_)
        assert m.predict(X).shape == sk.predict(X).shape
        assert m.predict_proba(X).shape == sk.predict_proba(X).shape
    else:
        assert not hasattr(m, "classes_")
        assert m.predict(X).shape == sk.predict(X).shape


def test_no_fitted_attributes_before_fit():
    m = MLPClassifier()
    for name in ("coefs_", "intercepts_", "n_iter_", "loss_curve_", "classes_"):
        assert not hasattr(m, name)


def test_writing_coefs_in_place_changes_predictions():
    X, y = small_problem("multiclass")
    m = quiet(MLPClassifier((5,), max_iter=20, random_state=0, dtype="float64").fit, X, y)
    before = m.predict_proba(X)
    m.coefs_[1][...] = 0.0
    m.intercepts_[1][...] = [0.0, 0.0, 3.0]
    after = m.predict_proba(X)
    assert not np.allclose(before, after)
    e = np.exp([0.0, 0.0, 3.0])
    np.testing.assert_allclose(after, np.tile(e / e.sum(), (len(X), 1)), rtol=1e-12)
    np.testing.assert_array_equal(m.predict(X), np.full(len(X), m.classes_[2]))


def test_replacing_coefs_takes_effect():
    X, y = small_problem("regressor")
    m = quiet(MLPRegressor((4,), max_iter=5, random_state=0, dtype="float64").fit, X, y)
    rng = np.random.default_rng(7)
    W0 = rng.standard_normal((5, 4))
    W1 = rng.standard_normal((4, 1))
    m.coefs_[0] = W0  # new arrays, not writes into the old ones
    m.coefs_[1] = W1
    b0, b1 = m.intercepts_[0].copy(), m.intercepts_[1].copy()
    expected = (np.maximum(X @ W0 + b0, 0) @ W1 + b1).ravel()
    np.testing.assert_allclose(m.predict(X), expected, rtol=1e-12, atol=1e-14)
    # the replaced arrays are bound into the model again (in-place writes work)
    m.coefs_[1][...] = 0.0
    np.testing.assert_allclose(m.predict(X), np.full(len(X), b1[0]), rtol=1e-12)
    # replacing the whole list works too
    m.intercepts_ = [np.zeros(4), np.array([2.0])]
    np.testing.assert_allclose(m.predict(X), 2.0)
    # a wrong shape is refused
    m.coefs_[0] = np.zeros((4, 5))
    with pytest.raises(ValueError, match="shape"):
        m.predict(X)


def test_replaced_weights_are_the_starting_point_of_warm_start():
    X, y = small_problem("regressor")
    kw = dict(hidden_layer_sizes=(4,), solver="sgd", momentum=0.0, batch_size=None,
              learning_rate_init=0.05, max_iter=1, tol=None, dtype="float64", random_state=0)
    m = MLPRegressor(**kw).fit(X, y)
    m.coefs_[0] = np.full((5, 4), 0.1)
    _, cg, ig = m.loss_and_gradients(X, y)
    start = [np.full((5, 4), 0.1)] + [c.copy() for c in m.coefs_[1:]]
    m.set_params(warm_start=True)
    m.fit(X, y)
    for W, W0, g in zip(m.coefs_, start, cg):
        np.testing.assert_allclose(W, W0 - 0.05 * g, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor, Perceptron])
def test_get_params_set_params_round_trip(cls):
    m = cls(random_state=3, max_iter=17)
    params = m.get_params()
    assert params["random_state"] == 3 and params["max_iter"] == 17
    assert "dtype" in params and "n_threads" in params
    clone = cls(**params)
    assert clone.get_params() == params
    assert m.set_params(max_iter=5, tol=None) is m
    assert m.get_params()["max_iter"] == 5 and m.get_params()["tol"] is None
    with pytest.raises(ValueError, match="not_a_param"):
        m.set_params(not_a_param=1)
    assert "max_iter=5" in repr(m)


def test_sklearn_param_names_are_accepted():
    from sklearn import neural_network

    sk = neural_network.MLPClassifier().get_params()
    ours = MLPClassifier().get_params()
    shared = set(sk) - {"early_stopping", "validation_fraction", "max_fun"}
    assert shared <= set(ours)
    for name in shared:
        assert ours[name] == sk[name], name


def test_sklearn_clone():
    from sklearn.base import clone

    m = MLPClassifier((5,), max_iter=50, random_state=0, dtype="float64")
    c = clone(m)
    assert c is not m and c.get_params() == m.get_params()


def test_works_in_sklearn_pipeline_and_cross_validation():
    """The README promises a one-line switch from scikit-learn's MLPs; code that
    puts the model in a Pipeline or cross-validates it must keep working."""
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = small_problem("binary", n=60)
    m = MLPClassifier((5,), max_iter=200, random_state=0, learning_rate_init=0.01)
    pipe = quiet(make_pipeline(StandardScaler(), m).fit, X, y)
    assert pipe.score(X, y) >= 0.8
    scores = quiet(cross_val_score, MLPRegressor((5,), max_iter=20, random_state=0),
                   *small_problem("regressor", n=60), cv=3)
    assert len(scores) == 3


# ---------------------------------------------------------------------------
# errors at predict time
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor, Perceptron])
def test_predict_before_fit_raises_not_fitted(cls):
    X = np.zeros((3, 2))
    m = cls()
    methods = ["predict", "score", "forward_layers"]
    if cls is not MLPRegressor:
        methods.append("predict_proba")
    for name in methods:
        args = (X, np.array([0, 1, 0])) if name == "score" else (X,)
        with pytest.raises(pynn.NotFittedError):
            getattr(m, name)(*args)
    with pytest.raises(pynn.NotFittedError):
        m.loss_and_gradients(X, np.array([0, 1, 0]))
    with pytest.raises(AttributeError):
        m.predict(X)
    with pytest.raises(ValueError):
        m.predict(X)
    assert issubclass(pynn.NotFittedError, AttributeError)
    assert issubclass(pynn.NotFittedError, ValueError)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor"])
def test_wrong_number_of_features_at_predict(kind):
    X, y = small_problem(kind)
    m = quiet(estimator_for(kind)((3,), max_iter=2, random_state=0).fit, X, y)
    with pytest.raises(ValueError, match="5 features"):
        m.predict(X[:, :4])
    with pytest.raises(ValueError):
        m.predict(np.hstack([X, X]))
    with pytest.raises(ValueError):
        m.forward_layers(X[:, :4])
    with pytest.raises(ValueError):
        m.predict(X[0])  # 1-D
    # a warm-started fit or partial_fit must keep the feature count too
    m.set_params(warm_start=True)
    with pytest.raises(ValueError):
        m.fit(X[:, :4], y)
    with pytest.raises(ValueError):
        m.partial_fit(X[:, :4], y)


def test_perceptron_wrong_number_of_features():
    X, y = blobs(n=20, n_features=3)
    p = Perceptron(max_iter=3, tol=None).fit(X, y)
    with pytest.raises(ValueError, match="3 features"):
        p.predict(X[:, :2])


def test_predict_rejects_nan():
    X, y = small_problem("binary")
    m = quiet(MLPClassifier((3,), max_iter=2, random_state=0).fit, X, y)
    X_bad = X.copy()
    X_bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.predict(X_bad)


# ---------------------------------------------------------------------------
# labels and targets
# ---------------------------------------------------------------------------

def test_string_labels():
    X, y = small_problem("multiclass", n=90)
    names = np.array(["setosa", "versicolor", "virginica"])
    labels = names[y]
    m = quiet(MLPClassifier((10,), max_iter=300, random_state=0, learning_rate_init=0.01).fit,
              X, labels)
    np.testing.assert_array_equal(m.classes_, names)
    pred = m.predict(X)
    assert pred.dtype == labels.dtype
    assert set(pred) <= set(names)
    assert m.score(X, labels) >= 0.9
    np.testing.assert_array_equal(pred, names[np.argmax(m.predict_proba(X), axis=1)])


def test_binary_string_labels():
    X, y = small_problem("binary", n=80)
    labels = np.where(y == 1, "yes", "no")
    m = quiet(MLPClassifier((8,), max_iter=300, random_state=0, learning_rate_init=0.01).fit,
              X, labels)
    np.testing.assert_array_equal(m.classes_, ["no", "yes"])
    assert m.n_outputs_ == 1
    proba = m.predict_proba(X)
    assert proba.shape == (80, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(m.predict(X), np.where(proba[:, 1] > 0.5, "yes", "no"))
    assert m.score(X, labels) >= 0.9


def test_multilabel_indicator_targets():
    X, Y = small_problem("multilabel", n=120)
    m = quiet(MLPClassifier((16,), max_iter=300, random_state=0, learning_rate_init=0.01).fit,
              X, Y)
    np.testing.assert_array_equal(m.classes_, [0, 1, 2])
    assert m.out_activation_ == "logistic" and m.n_outputs_ == 3
    proba = m.predict_proba(X)
    assert proba.shape == (120, 3)
    assert np.all((proba >= 0) & (proba <= 1))
    assert not np.allclose(proba.sum(axis=1), 1.0)  # independent labels
    pred = m.predict(X)
    assert pred.shape == (120, 3)
    assert set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert m.score(X, Y) == np.mean((pred == Y).all(axis=1))
    assert m.score(X, Y) >= 0.8
    # a 1-D y no longer fits this model, and the indicator must be 0/1
    with pytest.raises(ValueError):
        m.loss_and_gradients(X, Y[:, 0])
    with pytest.raises(ValueError):
        MLPClassifier(max_iter=1).fit(X, Y * 2)


def test_predict_log_proba():
    X, y = small_problem("multiclass")
    for labels in (y, (y > 0).astype(int)):
        m = quiet(MLPClassifier((5,), max_iter=10, random_state=0, dtype="float64").fit,
                  X, labels)
        np.testing.assert_allclose(m.predict_log_proba(X), np.log(m.predict_proba(X)),
                                   rtol=1e-12)
        assert np.all(m.predict_log_proba(X) <= 0)


def test_score():
    from sklearn.metrics import r2_score

    X, y = small_problem("multiclass")
    m = quiet(MLPClassifier((5,), max_iter=10, random_state=0).fit, X, y)
    assert m.score(X, y) == np.mean(m.predict(X) == y)
    w = np.linspace(0.1, 1, len(y))
    np.testing.assert_allclose(m.score(X, y, sample_weight=w),
                               np.average(m.predict(X) == y, weights=w))
    for kind in ("regressor", "regressor2"):
        X, y = small_problem(kind)
        r = quiet(MLPRegressor((5,), max_iter=50, random_state=0, dtype="float64").fit, X, y)
        np.testing.assert_allclose(r.score(X, y), r2_score(y, r.predict(X)), rtol=1e-12)
        np.testing.assert_allclose(r.score(X, y, sample_weight=w[:len(y)]),
                                   r2_score(y, r.predict(X), sample_weight=w[:len(y)]),
                                   rtol=1e-12)
    p = Perceptron(max_iter=5, tol=None).fit(*blobs())
    assert p.score(*blobs()) == np.mean(p.predict(blobs()[0]) == blobs()[1])


def test_regressor_output_shapes():
    X, y = small_problem("regressor")
    r = quiet(MLPRegressor((3,), max_iter=2, random_state=0).fit, X, y)
    assert r.predict(X).shape == (40,)
    r = quiet(MLPRegressor((3,), max_iter=2, random_state=0).fit, X, y.reshape(-1, 1))
    assert r.predict(X).shape == (40, 1)
    X2, y2 = small_problem("regressor2")
    r = quiet(MLPRegressor((3,), max_iter=2, random_state=0).fit, X2, y2)
    assert r.predict(X2).shape == (40, 2)


# ---------------------------------------------------------------------------
# continuing training
# ---------------------------------------------------------------------------

def test_partial_fit_classifier():
    X, y = small_problem("multiclass", n=100)
    m = MLPClassifier((10,), random_state=0, learning_rate_init=0.01)
    with pytest.raises(ValueError, match="classes"):
        m.partial_fit(X, y)
    m.partial_fit(X[:50], y[:50], classes=[0, 1, 2])
    np.testing.assert_array_equal(m.classes_, [0, 1, 2])
    assert m.n_iter_ == 1
    for _ in range(29):
        m.partial_fit(X, y)
    # as in scikit-learn: n_iter_ counts this call's epochs, loss_curve_ all of them
    assert m.n_iter_ == 1 and len(m.loss_curve_) == 30
    assert m.loss_curve_[-1] < 0.7 * m.loss_curve_[1]
    # a batch holding only some classes is fine; an unknown label is not
    m.partial_fit(X[y == 0], y[y == 0])
    with pytest.raises(ValueError, match="not in classes_"):
        m.partial_fit(X[:3], [0, 1, 7])


def test_partial_fit_classes_may_include_unseen_labels():
    X, y = small_problem("binary")
    m = MLPClassifier((3,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    assert m.out_activation_ == "softmax" and m.n_outputs_ == 3
    assert m.predict_proba(X).shape == (40, 3)


def test_partial_fit_regressor_and_no_convergence_warning():
    X, y = small_problem("regressor", n=80)
    m = MLPRegressor((8,), random_state=0, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(20):
            m.partial_fit(X, y)
    assert m.n_iter_ == 1 and len(m.loss_curve_) == 20
    assert m.loss_curve_[-1] < 0.5 * m.loss_curve_[0]
    assert np.all(np.diff(m.loss_curve_[5:]) < 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_perceptron_partial_fit_equals_one_epoch_of_fit(dtype, n_classes, batch_size):
    """The first partial_fit is fit with max_iter=1 on the same data, bit for bit
    (minibatches shuffled from the same random_state included)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 4))
    y = np.argmax(X[:, :n_classes], axis=1)
    params = dict(dtype=dtype, batch_size=batch_size, random_state=3, n_threads=1)
    a = Perceptron(**params).partial_fit(X, y, classes=np.arange(n_classes))
    b = Perceptron(max_iter=1, tol=None, **params).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)
    assert a.loss_curve_ == b.loss_curve_ and a.n_iter_ == b.n_iter_ == 1
    np.testing.assert_array_equal(a.classes_, b.classes_)


def test_perceptron_partial_fit_continues_like_fit_epochs():
    """Full batch, k calls of partial_fit make the k epochs of one fit."""
    X, y = blobs(40)
    a = Perceptron(dtype="float64")
    for _ in range(5):
        a.partial_fit(X, y, classes=[0, 1])
    b = Perceptron(max_iter=5, tol=None, dtype="float64").fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.loss_curve_ == b.loss_curve_ and a.n_iter_ == 1 and len(a.loss_curve_) == 5
    # a fit afterwards starts again from zero weights
    c = Perceptron(max_iter=5, tol=None, dtype="float64")
    c.partial_fit(X, y, classes=[0, 1]).fit(X, y)
    np.testing.assert_array_equal(c.coef_, b.coef_)


def test_perceptron_partial_fit_classes():
    X, y = blobs(40)
    m = Perceptron()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        m.partial_fit(X, y)
    assert not hasattr(m, "coef_")
    m.partial_fit(X, y, classes=[0, 1, 2])  # a class not seen yet: three neurons
    assert m.coef_.shape == (3, 3)
    m.partial_fit(X[y == 1], y[y == 1])     # a batch of one class is fine
    with pytest.raises(ValueError, match="not the same as on the first call"):
        m.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="not in classes_"):
        m.partial_fit(X[:3], [0, 1, 7])


def test_warm_start_continues_from_previous_weights():
    X, y = small_problem("multiclass", n=60)
    kw = dict(hidden_layer_sizes=(6,), max_iter=10, tol=None, random_state=0,
              dtype="float64", learning_rate_init=0.01)
    cold = MLPClassifier(**kw).fit(X, y)
    w_after_10 = [W.copy() for W in cold.coefs_]
    # warm_start=False: a refit starts over and repeats itself exactly
    cold.fit(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(cold.coefs_, w_after_10))
    assert cold.n_iter_ == 10 and len(cold.loss_curve_) == 10

    warm = MLPClassifier(warm_start=True, **kw).fit(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(warm.coefs_, w_after_10))
    first_curve = list(warm.loss_curve_)
    warm.fit(X, y)
    assert warm.n_iter_ == 10 and len(warm.loss_curve_) == 20
    assert warm.loss_curve_[:10] == first_curve
    assert warm.loss_curve_[10] < first_curve[0]
    assert abs(warm.loss_curve_[10] - first_curve[-1]) < 0.1 * (first_curve[0] - first_curve[-1])
    assert not np.allclose(warm.coefs_[0], w_after_10[0])


def test_warm_start_refuses_a_dtype_change():
    X, y = small_problem("regressor")
    m = MLPRegressor((3,), max_iter=2, tol=None, warm_start=True, random_state=0).fit(X, y)
    m.set_params(dtype="float64")
    with pytest.raises(ValueError, match="dtype"):
        m.fit(X, y)


# ---------------------------------------------------------------------------
# stopping, warnings and verbosity
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor, Perceptron])
def test_convergence_warning_when_max_iter_is_hit(cls):
    X, y = blobs(n=40)
    with pytest.warns(pynn.ConvergenceWarning, match="Maximum iterations"):
        m = cls(max_iter=3, tol=1e-4).fit(X, y)
    assert m.n_iter_ == 3
    assert issubclass(pynn.ConvergenceWarning, UserWarning)


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_tol_none_runs_exactly_max_iter(cls):
    X, y = blobs(n=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = cls((4,), max_iter=23, tol=None, random_state=0).fit(X, y)
    assert m.n_iter_ == 23 and len(m.loss_curve_) == 23


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor, Perceptron])
def test_huge_tol_stops_after_n_iter_no_change(cls):
    """No epoch after the first improves by tol: the count of epochs without
    improvement exceeds n_iter_no_change at epoch n_iter_no_change + 2 (the first
    epoch always improves on the initial best loss, infinity), as in scikit-learn."""
    X, y = blobs(n=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stopping early is not a ConvergenceWarning
        m = cls(tol=1e6, n_iter_no_change=4, max_iter=100).fit(X, y)
    assert m.n_iter_ == 6


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor, Perceptron])
def test_verbose_prints_iterations(cls, capsys):
    X, y = blobs(n=30)
    m = cls(verbose=2, max_iter=4, tol=None).fit(X, y)
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("Iteration")]
    assert len(lines) == 4
    for i, (line, loss) in enumerate(zip(lines, m.loss_curve_), start=1):
        match = re.match(r"Iteration (\d+), loss = ([0-9.eE+-]+)", line)
        assert match and int(match.group(1)) == i
        np.testing.assert_allclose(float(match.group(2)), loss, rtol=1e-6)
    cls(max_iter=2, tol=None).fit(X, y)
    assert "Iteration" not in capsys.readouterr().out


# ---------------------------------------------------------------------------
# pickling
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor", "multilabel"])
def test_pickle_round_trip(kind):
    X, y = small_problem(kind)
    m = quiet(estimator_for(kind)((6, 3), max_iter=5, random_state=0, batch_size=8).fit, X, y)
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.get_params() == m.get_params()
    assert np.array_equal(m.predict(X), m2.predict(X))
    if hasattr(m, "predict_proba"):
        assert np.array_equal(m.predict_proba(X), m2.predict_proba(X))
    for a, b in zip(m.coefs_ + m.intercepts_, m2.coefs_ + m2.intercepts_):
        assert np.array_equal(a, b)
    assert m2.loss_curve_ == m.loss_curve_ and m2.n_iter_ == m.n_iter_
    # the loaded arrays are the model's parameters (views, not loose copies)
    m2.coefs_[-1][...] = 0.0
    assert not np.array_equal(m2.forward_layers(X)[-1], m.forward_layers(X)[-1])
    m2.coefs_[-1][...] = m.coefs_[-1]
    # the loaded model trains on exactly as the original does
    m.set_params(warm_start=True)
    m2.set_params(warm_start=True)
    quiet(m.fit, X, y)
    quiet(m2.fit, X, y)
    assert m2.n_iter_ == 5 and len(m2.loss_curve_) == 10
    for a, b in zip(m.coefs_ + m.intercepts_, m2.coefs_ + m2.intercepts_):
        assert np.array_equal(a, b)
    m2.partial_fit(X, y)
    assert m2.n_iter_ == 1 and len(m2.loss_curve_) == 11


def test_pickle_after_replacing_weights_and_perceptron():
    X, y = small_problem("regressor")
    m = quiet(MLPRegressor((4,), max_iter=3, random_state=0).fit, X, y)
    m.coefs_[0] = np.ones((5, 4), dtype=np.float32)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m2.coefs_[0], np.ones((5, 4)))
    assert np.array_equal(m2.predict(X), m.predict(X))

    Xb, yb = blobs()
    p = Perceptron(max_iter=5, tol=None).fit(Xb, yb)
    p2 = pickle.loads(pickle.dumps(p))
    assert np.array_equal(p.predict_proba(Xb), p2.predict_proba(Xb))
    p2.coef_[...] = 0
    assert np.all(p2.decision_function(Xb) == p2.intercept_[0])
    p2.set_params(warm_start=True).fit(Xb, yb)
    assert p2.n_iter_ == 5 and len(p2.loss_curve_) == 10


def test_unfitted_pickle_round_trip():
    m = pickle.loads(pickle.dumps(MLPClassifier(hidden_layer_sizes=(3,), max_iter=7)))
    assert m.get_params()["max_iter"] == 7
    with pytest.raises(pynn.NotFittedError):
        m.predict(np.zeros((1, 2)))


# ---------------------------------------------------------------------------
# divergence
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def unscaled_digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] * 1e3, y[:300]


def weights_of(m):
    return m.coefs_ + m.intercepts_ if hasattr(m, "coefs_") else [m.coef_, m.intercept_]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("target", ["multiclass", "binary", "regressor"])
def test_divergent_learning_rate_raises(unscaled_digits, target, dtype):
    X, y = unscaled_digits
    cls = MLPRegressor if target == "regressor" else MLPClassifier
    if target == "binary":
        y = y % 2
    m = cls((16,), solver="sgd", learning_rate_init=1e10, dtype=dtype, random_state=0,
            n_threads=1)
    with pytest.raises(pynn.DivergenceError) as info:
        m.fit(X, y)
    assert isinstance(info.value, ValueError)
    assert "learning_rate_init" in str(info.value)
    assert "1e10" in str(info.value) or "10000000000" in str(info.value)


def fit_maybe_diverging(X, y, target, lr, dtype):
    cls = MLPRegressor if target == "regressor" else MLPClassifier
    if target == "binary":
        y = y % 2
    m = cls((16,), solver="sgd", learning_rate_init=lr, dtype=dtype, random_state=0,
            n_threads=1)
    try:
        quiet(m.fit, X, y)
    except pynn.DivergenceError:
        pass
    return m


DIVERGING = pytest.mark.parametrize(
    "target,lr,dtype",
    [(t, lr, d) for t in ("multiclass", "binary", "regressor") for lr in (1e2, 1e10)
     for d in ("float32", "float64")])


@DIVERGING
def test_divergence_leaves_finite_weights(unscaled_digits, target, lr, dtype):
    """After a DivergenceError (or a normal return) the model must not silently hold
    NaN or infinite weights: a caught error followed by predict() would otherwise
    return NaN, or for a binary classifier one constant class, with no sign of
    trouble."""
    m = fit_maybe_diverging(*unscaled_digits, target, lr, dtype)
    bad = [i for i, w in enumerate(weights_of(m)) if not np.isfinite(w).all()]
    assert not bad, f"the model holds non-finite weights in arrays {bad}"


@DIVERGING
def test_divergence_leaves_finite_predictions(unscaled_digits, target, lr, dtype):
    """...nor finite weights so large that its own training data gives NaN or
    infinite outputs (the weights of the last step with a finite loss would not)."""
    X, y = unscaled_digits
    m = fit_maybe_diverging(X, y, target, lr, dtype)
    try:
        out = m.predict_proba(X) if target != "regressor" else m.predict(X)
    except ValueError:
        return  # refusing to predict is fine too
    assert np.isfinite(out).all(), "the model's predictions are NaN or infinite"


@pytest.mark.parametrize("backups", [True, False])
@pytest.mark.parametrize("lr,chunks", [(1e10, 4), (1e4, 10)])
def test_divergence_goes_back_to_the_snapshot_before(monkeypatch, unscaled_digits, lr, chunks,
                                                     backups):
    """Chunks of one step, snapshots taken at every chunk (as long fits take
    them every half second) or never (a short fit): a divergence puts back the
    weights the last finite-loss step started from -- the chunk before the one
    whose loss was not finite -- or, with no snapshot since, the call's
    starting weights (both snapshots hold them then: one copy, the second
    buffer kept spare until a backup needs it)."""
    import pynn._training as training
    if backups:
        monkeypatch.setattr(training, "_BACKUP_SECONDS", -1.0)
        monkeypatch.setattr(training, "_BACKUP_COST_RATIO", 0)
    starts = []
    real_next = training.ChunkPlanner.next

    def one_step(self):
        nt, _ = real_next(self)
        return nt, 1

    monkeypatch.setattr(training.ChunkPlanner, "next", one_step)
    real_run = training.TrainingRun._epoch

    def recording(self, trainer, planner, progress):
        real = planner.next
        planner.next = lambda: (starts.append(self.arena.copy()), real())[1]
        try:
            return real_run(self, trainer, planner, progress)
        finally:
            del planner.next

    monkeypatch.setattr(training.TrainingRun, "_epoch", recording)
    X, y = unscaled_digits
    m = MLPRegressor((16,), solver="sgd", learning_rate_init=lr, random_state=0, n_threads=1,
                     max_iter=3, dtype="float64", batch_size=20)
    with pytest.raises(pynn.DivergenceError):
        quiet(m.fit, X, y)
    assert len(starts) == chunks
    want = starts[-2] if backups else starts[0]
    assert np.array_equal(m._arena, want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("lr", [1e-2, 1.0, 1e2, 1e4, 1e6])
def test_fit_never_silently_returns_nan(unscaled_digits, lr, dtype):
    """Whatever the learning rate, a fit either raises DivergenceError or leaves a
    model with finite weights and finite predictions."""
    X, y = unscaled_digits
    for cls, yy in ((MLPClassifier, y), (MLPRegressor, y.astype(float))):
        m = cls((16,), solver="sgd", learning_rate_init=lr, dtype=dtype, random_state=0,
                n_threads=1, max_iter=15)
        try:
            quiet(m.fit, X, yy)
        except pynn.DivergenceError:
            continue
        assert all(np.isfinite(w).all() for w in weights_of(m)), (cls.__name__, lr)
        out = m.predict_proba(X) if cls is MLPClassifier else m.predict(X)
        assert np.isfinite(out).all(), (cls.__name__, lr)
        assert all(np.isfinite(m.loss_curve_))


# ---------------------------------------------------------------------------
# bad hyperparameters and bad data
# ---------------------------------------------------------------------------

BAD_MLP_PARAMS = [
    (dict(activation="softplus"), ValueError, "activation"),
    (dict(activation="softmax"), ValueError, "activation"),
    (dict(solver="newton"), ValueError, "solver"),
    (dict(max_fun=0), ValueError, "max_fun"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(dtype="int32"), ValueError, "dtype"),
    (dict(alpha=-1e-4), ValueError, "alpha"),
    (dict(alpha=np.inf), ValueError, "alpha"),
    (dict(learning_rate_init=0.0), ValueError, "learning_rate_init"),
    (dict(learning_rate_init=-0.1), ValueError, "learning_rate_init"),
    (dict(hidden_layer_sizes=(0,)), ValueError, "hidden_layer_sizes"),
    (dict(hidden_layer_sizes=(5, -3)), ValueError, "hidden_layer_sizes"),
    (dict(hidden_layer_sizes=-1), ValueError, "hidden_layer_sizes"),
    (dict(hidden_layer_sizes=(2.5,)), TypeError, "hidden_layer_sizes"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(max_iter=-5), ValueError, "max_iter"),
    (dict(tol=np.nan), ValueError, "tol"),
    (dict(tol=-1.0), ValueError, "tol"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size="big"), ValueError, "batch_size"),
    (dict(learning_rate="fast"), ValueError, "learning_rate"),
    (dict(momentum=1.5), ValueError, "momentum"),
    (dict(beta_1=1.0), ValueError, "beta_1"),
    (dict(beta_2=-0.1), ValueError, "beta_2"),
    (dict(epsilon=0.0), ValueError, "epsilon"),
    (dict(n_iter_no_change=0), ValueError, "n_iter_no_change"),
    (dict(n_threads=0), ValueError, "n_threads"),
    (dict(random_state=-1), ValueError, "random_state"),
    (dict(shuffle="yes"), TypeError, "shuffle"),
]


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("params,exc,word", BAD_MLP_PARAMS,
                         ids=[repr(p[0]) for p in BAD_MLP_PARAMS])
def test_bad_hyperparameters_raise_at_fit(cls, params, exc, word):
    X, y = blobs(n=20)
    m = cls(**params)  # construction accepts anything, as in scikit-learn
    with pytest.raises(exc, match=word):
        m.fit(X, y)
    assert not hasattr(m, "coefs_")


BAD_PERCEPTRON_PARAMS = [
    (dict(activation="relu"), ValueError, "activation"),
    (dict(learning_rate_init=0), ValueError, "learning_rate_init"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(tol=float("nan")), ValueError, "tol"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(n_iter_no_change=0), ValueError, "n_iter_no_change"),
]


@pytest.mark.parametrize("params,exc,word", BAD_PERCEPTRON_PARAMS,
                         ids=[repr(p[0]) for p in BAD_PERCEPTRON_PARAMS])
def test_bad_perceptron_hyperparameters(params, exc, word):
    X, y = blobs(n=20)
    with pytest.raises(exc, match=word):
        Perceptron(**params).fit(X, y)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("size", [10**10, 10**13, 2**62])
def test_absurd_layer_fails_fast(cls, size):
    X, y = blobs(n=20)
    t0 = time.perf_counter()
    with pytest.raises((MemoryError, ValueError)):
        cls(hidden_layer_sizes=(size,)).fit(X, y)
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor, Perceptron])
def test_a_refused_refit_keeps_the_trained_model(cls):
    """A fit that refuses its hyperparameters must not first wipe the trained
    weights: here batch_size=0, which is checked only after re-initialising."""
    X, y = blobs(n=40)
    m = quiet(cls(max_iter=30, random_state=0).fit, X, y)
    weights = [w.copy() for w in weights_of(m)]
    n_iter = m.n_iter_
    m.set_params(batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(X, y)
    assert m.n_iter_ == n_iter
    for before, after in zip(weights, weights_of(m)):
        np.testing.assert_array_equal(after, before)


def test_hidden_layer_sizes_forms():
    X, y = blobs(n=20)
    a = MLPClassifier(hidden_layer_sizes=7, max_iter=2, tol=None).fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=[7, 4], max_iter=2, tol=None).fit(X, y)
    c = MLPClassifier(hidden_layer_sizes=np.array([3]), max_iter=2, tol=None).fit(X, y)
    assert [W.shape for W in a.coefs_] == [(3, 7), (7, 1)]
    assert [W.shape for W in b.coefs_] == [(3, 7), (7, 4), (4, 1)]
    assert [W.shape for W in c.coefs_] == [(3, 3), (3, 1)]


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor, Perceptron])
def test_bad_data_raises(cls):
    X, y = blobs(n=20)
    m = cls(max_iter=2)
    X_nan = X.copy()
    X_nan[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.fit(X_nan, y)
    X_inf = X.copy()
    X_inf[0, 0] = np.inf
    with pytest.raises(ValueError):
        m.fit(X_inf, y)
    with pytest.raises(ValueError, match="2-D"):
        m.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="samples"):
        m.fit(X, y[:-1])
    with pytest.raises(ValueError):
        m.fit(X[:0], y[:0])
    with pytest.raises(ValueError):
        m.fit(X, None)
    with pytest.raises(TypeError):
        m.fit(X.astype(str), y)
    if cls is MLPRegressor:
        y_nan = y.astype(float)
        y_nan[0] = np.nan
        with pytest.raises(ValueError):
            m.fit(X, y_nan)
    else:
        # a classifier needs labels (one class is fine, as in scikit-learn)
        with pytest.raises(ValueError, match="class|label"):
            m.fit(X, np.full(20, 0.5))
    assert not hasattr(m, "coefs_") and not hasattr(m, "coef_")


def test_failed_fit_keeps_a_fitted_model_usable():
    X, y = small_problem("binary")
    m = quiet(MLPClassifier((4,), max_iter=5, random_state=0).fit, X, y)
    before = m.predict_proba(X)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError):
        m.fit(X_nan, y)
    np.testing.assert_array_equal(m.predict_proba(X), before)
