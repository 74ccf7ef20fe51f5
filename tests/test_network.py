"""The network-level math of pynn's estimators against tests/reference.py.

* the forward pass, layer by layer (forward_layers);
* the loss and the gradient of every parameter (loss_and_gradients), against
  the NumPy backpropagation and against central finite differences taken on
  the model itself (its weights perturbed in place);
* several epochs of every update rule (plain gradient descent, momentum,
  Nesterov momentum, Adam) against reference.train;
* the training trajectory of scikit-learn's MLPs;
* seeded determinism, thread-count independence, and odd shapes.

Models are fitted briefly (max_iter=1) to get their structure, then given
chosen weights by writing into ``coefs_`` / ``intercepts_`` in place.
"""
import warnings
import zlib

import numpy as np
import pytest

import pynn
import reference

HIDDEN = ("identity", "logistic", "tanh", "relu")
DEPTHS = {"1": (5,), "2": (4, 3), "3": (3, 4, 2)}

# kind -> (estimator, output activation, loss)
KINDS = {
    "regressor": (pynn.MLPRegressor, "identity", "half_squared_error"),
    "regressor2": (pynn.MLPRegressor, "identity", "half_squared_error"),
    "binary": (pynn.MLPClassifier, "logistic", "binary_cross_entropy"),
    "multiclass": (pynn.MLPClassifier, "softmax", "categorical_cross_entropy"),
    "multilabel": (pynn.MLPClassifier, "logistic", "binary_cross_entropy"),
}
CLASSIFIER_KINDS = ("binary", "multiclass", "multilabel")

GRAD_RTOL, GRAD_ATOL = 1e-10, 1e-13
FD_REL = 1e-6


def make_rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def make_data(kind, n=23, n_features=6, seed=0):
    """(X, y, Y): y as given to the estimator, Y the encoded targets the loss uses."""
    rng = make_rng("data", kind, n, n_features, seed)
    X = rng.standard_normal((n, n_features))
    if kind == "regressor":
        y = rng.standard_normal(n)
        Y = y.reshape(-1, 1)
    elif kind == "regressor2":
        y = rng.standard_normal((n, 2))
        Y = y
    elif kind == "binary":
        y = np.array([0, 1] * n)[:n]
        rng.shuffle(y)
        Y = y.reshape(-1, 1).astype(float)
    elif kind == "multiclass":
        y = np.arange(n) % 3
        rng.shuffle(y)
        Y = np.eye(3)[y]
    elif kind == "multilabel":
        y = (rng.random((n, 3)) < 0.5).astype(int)
        y[0], y[1] = [1, 1, 1], [0, 0, 0]  # every column has both labels
        Y = y.astype(float)
    else:
        raise ValueError(kind)
    return X, y, Y


def fitted_model(kind, hidden_layer_sizes, activation, alpha=0.0, dtype="float64", X=None,
                 y=None, scale=0.6, seed=0, **params):
    """A model of the given structure, fitted for one epoch, then given random weights
    (written in place, so the model's own arrays hold them)."""
    cls = KINDS[kind][0]
    if X is None:
        X, y, _ = make_data(kind)
    m = cls(hidden_layer_sizes, activation=activation, alpha=alpha, dtype=dtype, max_iter=1,
            tol=None, random_state=0, **params)
    m.fit(X, y)
    rng = make_rng("weights", kind, hidden_layer_sizes, activation, seed)
    for W, b in zip(m.coefs_, m.intercepts_):
        W[...] = scale * rng.standard_normal(W.shape)
        b[...] = scale * rng.standard_normal(b.shape)
    return m


def copies(arrays):
    return [np.array(a, dtype=np.float64, copy=True) for a in arrays]


def max_rel_err(got, want):
    """max |got - want| / max |want| over the entries of one array."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(float(np.max(np.abs(want))), 1e-300)
    return float(np.max(np.abs(got - want))) / scale


def fd_rel_err(analytic, numeric):
    """Entry-wise relative error of a gradient against finite differences, with a floor
    of 1e-3 of the array's largest entry (FD noise is absolute, ~1e-10)."""
    analytic = np.asarray(analytic, np.float64)
    numeric = np.asarray(numeric, np.float64)
    floor = max(1e-3 * float(np.max(np.abs(numeric))), 1e-8)
    denom = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    return float(np.max(np.abs(analytic - numeric) / denom))


# ---------------------------------------------------------------------------
# forward pass
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("depth", sorted(DEPTHS))
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("kind", ["regressor", "regressor2", "binary", "multiclass",
                                  "multilabel"])
def test_forward_layers_float64_matches_reference(kind, activation, depth):
    m = fitted_model(kind, DEPTHS[depth], activation)
    X, _, _ = make_data(kind, n=17, seed=1)
    acts = m.forward_layers(X)
    ref = reference.forward(copies(m.coefs_), copies(m.intercepts_), X, activation,
                            KINDS[kind][1])
    assert m.out_activation_ == KINDS[kind][1]
    assert len(acts) == len(ref) == len(DEPTHS[depth]) + 2
    np.testing.assert_array_equal(acts[0], X)
    for got, want in zip(acts, ref):
        assert got.dtype == np.float64
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("kind", ["regressor", "binary", "multiclass"])
def test_forward_layers_float32_matches_reference(kind, activation):
    m = fitted_model(kind, (6, 4), activation, dtype="float32")
    X, _, _ = make_data(kind, n=17, seed=1)
    X32 = X.astype(np.float32)
    acts = m.forward_layers(X)
    # the float64 reference evaluated on the very same float32 numbers
    ref = reference.forward(copies(m.coefs_), copies(m.intercepts_), X32.astype(np.float64),
                            activation, KINDS[kind][1])
    for got, want in zip(acts, ref):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["regressor", "regressor2", "binary", "multiclass",
                                  "multilabel"])
def test_last_layer_is_the_prediction(kind, dtype):
    m = fitted_model(kind, (5, 3), "tanh", dtype=dtype)
    X, _, _ = make_data(kind, n=40, seed=2)
    out = m.forward_layers(X)[-1]
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    if kind.startswith("regressor"):
        np.testing.assert_allclose(np.asarray(m.predict(X)).reshape(out.shape), out, **tol)
    elif kind == "binary":
        np.testing.assert_allclose(m.predict_proba(X)[:, 1], out.ravel(), **tol)
    else:
        np.testing.assert_allclose(m.predict_proba(X), out, **tol)


def test_perceptron_forward_layers():
    X, y, _ = make_data("binary", n=15)
    p = pynn.Perceptron(dtype="float64", max_iter=1, tol=None).fit(X, y)
    rng = make_rng("perceptron forward")
    p.coef_[...] = rng.standard_normal(p.coef_.shape)
    p.intercept_[...] = 0.3
    acts = p.forward_layers(X)
    z = X @ p.coef_ + p.intercept_[0]
    assert len(acts) == 2
    np.testing.assert_array_equal(acts[0], X)
    np.testing.assert_allclose(acts[1].ravel(), 1 / (1 + np.exp(-z)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p.decision_function(X), z, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------
# gradients against the NumPy reference
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.0, 0.01])
@pytest.mark.parametrize("depth", sorted(DEPTHS))
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_loss_and_gradients_match_reference(kind, activation, depth, alpha):
    X, y, Y = make_data(kind)
    m = fitted_model(kind, DEPTHS[depth], activation, alpha=alpha, X=X, y=y)
    _, out, loss_name = KINDS[kind]
    before = copies(m.coefs_ + m.intercepts_)
    loss, cg, ig = m.loss_and_gradients(X, y)
    ref_loss, ref_cg, ref_ig = reference.loss_and_gradients(
        copies(m.coefs_), copies(m.intercepts_), X, Y, activation, out, loss_name, alpha)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, ref_loss, rtol=GRAD_RTOL, atol=GRAD_ATOL)
    assert len(cg) == len(ref_cg) == len(m.coefs_)
    assert len(ig) == len(ref_ig) == len(m.intercepts_)
    for got, want, W in zip(cg, ref_cg, m.coefs_):
        assert got.shape == W.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=GRAD_RTOL, atol=GRAD_ATOL)
    for got, want, b in zip(ig, ref_ig, m.intercepts_):
        assert got.shape == b.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=GRAD_RTOL, atol=GRAD_ATOL)
    # the gradients are not all zero (a vacuous comparison would pass)
    assert max(float(np.max(np.abs(g))) for g in cg) > 1e-3
    # and computing them changed nothing
    for a, b in zip(before, m.coefs_ + m.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_alpha_adds_the_l2_penalty_to_loss_and_gradient():
    X, y, _ = make_data("multiclass")
    m = fitted_model("multiclass", (4, 3), "tanh", alpha=0.0, X=X, y=y)
    loss0, cg0, ig0 = m.loss_and_gradients(X, y)
    m.set_params(alpha=0.5)
    loss1, cg1, ig1 = m.loss_and_gradients(X, y)
    n = X.shape[0]
    penalty = 0.5 * 0.5 * sum(float(np.sum(W * W)) for W in m.coefs_) / n
    np.testing.assert_allclose(loss1 - loss0, penalty, rtol=1e-10)
    for g0, g1, W in zip(cg0, cg1, m.coefs_):
        np.testing.assert_allclose(g1 - g0, 0.5 * W / n, rtol=1e-9, atol=1e-14)
    for g0, g1 in zip(ig0, ig1):  # biases are not penalised
        np.testing.assert_allclose(g1, g0, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kind", ["regressor", "binary", "multiclass"])
def test_float32_gradients_close_to_reference(kind):
    X, y, Y = make_data(kind)
    m = fitted_model(kind, (5, 4), "tanh", alpha=0.01, dtype="float32", X=X, y=y)
    _, out, loss_name = KINDS[kind]
    loss, cg, ig = m.loss_and_gradients(X, y)
    ref_loss, ref_cg, ref_ig = reference.loss_and_gradients(
        copies(m.coefs_), copies(m.intercepts_), X.astype(np.float32).astype(np.float64), Y,
        "tanh", out, loss_name, 0.01)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for got, want in zip(cg + ig, ref_cg + ref_ig):
        assert got.dtype == np.float32
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)


def test_loss_and_gradients_accept_string_labels():
    X, y, Y = make_data("multiclass")
    labels = np.array(["cat", "dog", "emu"])[y]
    m = fitted_model("multiclass", (4,), "relu", X=X, y=labels)
    assert list(m.classes_) == ["cat", "dog", "emu"]
    loss, cg, ig = m.loss_and_gradients(X, labels)
    ref_loss, ref_cg, ref_ig = reference.loss_and_gradients(
        copies(m.coefs_), copies(m.intercepts_), X, Y, "relu", "softmax",
        "categorical_cross_entropy", m.alpha)
    np.testing.assert_allclose(loss, ref_loss, rtol=GRAD_RTOL)
    for got, want in zip(cg + ig, ref_cg + ref_ig):
        np.testing.assert_allclose(got, want, rtol=GRAD_RTOL, atol=GRAD_ATOL)


# ---------------------------------------------------------------------------
# gradients against central finite differences, taken on the model itself
# ---------------------------------------------------------------------------

def model_numerical_gradient(m, X, y, arrays, eps=1e-3):
    """Central differences of the model's own loss, each weight perturbed in place
    (the model's loss_and_gradients supplies f), with one Richardson step:
    (4 D(eps/2) - D(eps)) / 3 cancels the eps^2 term of the central difference, so
    the truncation error is O(eps^4) ~ 1e-12 while the rounding error stays
    ~1e-16 / eps ~ 1e-13.  (A plain central difference at any eps left errors of
    ~1e-6 relative on the smaller entries here, too close to the 1e-6 bound.)"""
    def f():
        return m.loss_and_gradients(X, y)[0]

    coarse = reference.numerical_gradient(f, arrays, eps=eps)
    fine = reference.numerical_gradient(f, arrays, eps=eps / 2)
    return [(4 * b - a) / 3 for a, b in zip(coarse, fine)]


@pytest.mark.parametrize("alpha", [0.0, 0.01])
@pytest.mark.parametrize("depth", ["1", "2"])
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradients_match_finite_differences(kind, activation, depth, alpha):
    X, y, _ = make_data(kind, n=11, n_features=4)
    m = fitted_model(kind, DEPTHS[depth], activation, alpha=alpha, X=X, y=y)
    params = m.coefs_ + m.intercepts_
    before = copies(params)
    _, cg, ig = m.loss_and_gradients(X, y)
    numeric = model_numerical_gradient(m, X, y, params)
    # the perturbation was undone exactly
    for a, b in zip(before, params):
        np.testing.assert_array_equal(a, b)
    errors = [fd_rel_err(g, fd) for g, fd in zip(cg + ig, numeric)]
    assert max(errors) <= FD_REL, errors
    # the perturbations reached the model (a dead f() would give zero gradients)
    assert max(float(np.max(np.abs(fd))) for fd in numeric) > 1e-3


def test_perturbing_a_weight_in_place_changes_the_loss():
    X, y, _ = make_data("binary")
    m = fitted_model("binary", (4,), "tanh", X=X, y=y)
    loss0 = m.loss_and_gradients(X, y)[0]
    m.coefs_[0][1, 2] += 0.1
    assert m.loss_and_gradients(X, y)[0] != loss0
    m.coefs_[0][1, 2] -= 0.1
    assert m.loss_and_gradients(X, y)[0] == loss0


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perceptron_gradient_hand_formula_and_finite_differences(seed):
    rng = make_rng("perceptron grad", seed)
    n, d = 19, 5
    X = rng.standard_normal((n, d))
    y = (rng.random(n) < 0.5).astype(int)
    y[:2] = [0, 1]
    p = pynn.Perceptron(dtype="float64", max_iter=1, tol=None).fit(X, y)
    p.coef_[...] = rng.standard_normal(d)
    p.intercept_[...] = rng.standard_normal(1)
    assert p.coef_.shape == (d,) and p.intercept_.shape == (1,)
    C, gw, gb = p.loss_and_gradients(X, y)

    # by hand: z = Xw + b, yhat = sigma(z), C = mean((y - yhat)^2)
    z = X @ p.coef_ + p.intercept_[0]
    s = _sigmoid(z)
    C_hand = np.mean((y - s) ** 2)
    common = (2.0 / n) * (s - y) * s * (1 - s)
    np.testing.assert_allclose(C, C_hand, rtol=1e-12)
    np.testing.assert_allclose(gw, X.T @ common, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gb, [np.sum(common)], rtol=1e-10, atol=1e-14)
    assert gw.shape == (d,) and gb.shape == (1,)

    # the reference network: a single logistic unit with the squared-error cost
    ref_loss, ref_cg, ref_ig = reference.loss_and_gradients(
        [p.coef_.reshape(-1, 1).copy()], [p.intercept_.copy()], X,
        y.reshape(-1, 1).astype(float), "identity", "logistic", "squared_error")
    np.testing.assert_allclose(C, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(gw, ref_cg[0].ravel(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gb, ref_ig[0], rtol=1e-10, atol=1e-14)

    # central differences on the model's own weights
    fd_w, fd_b = model_numerical_gradient(p, X, y, [p.coef_, p.intercept_])
    assert fd_rel_err(gw, fd_w) <= FD_REL
    assert fd_rel_err(gb, fd_b) <= FD_REL


def test_perceptron_gradient_uses_the_label_order():
    X = np.array([[0.5, -1.0], [1.5, 2.0], [-0.3, 0.7], [2.0, 0.1]])
    y = np.array(["no", "yes", "no", "yes"])
    p = pynn.Perceptron(dtype="float64", max_iter=1, tol=None).fit(X, y)
    p.coef_[...] = [0.2, -0.4]
    p.intercept_[...] = [0.1]
    _, gw, gb = p.loss_and_gradients(X, y)
    t = (y == "yes").astype(float)
    s = _sigmoid(X @ p.coef_ + 0.1)
    common = (2.0 / 4) * (s - t) * s * (1 - s)
    np.testing.assert_allclose(gw, X.T @ common, rtol=1e-12)
    np.testing.assert_allclose(gb, [common.sum()], rtol=1e-12)


# ---------------------------------------------------------------------------
# update rules: several epochs against reference.train
# ---------------------------------------------------------------------------

SOLVERS = {
    "gd": dict(solver="sgd", momentum=0.0, nesterovs_momentum=False),
    "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "adam": dict(solver="adam", beta_1=0.8, beta_2=0.99, epsilon=1e-7),
}


def train_both(kind, activation, hidden, solver, batch_size, n=37, n_epochs=3,
               learning_rate=0.05, alpha=1e-3, n_features=5):
    """Fit pynn for n_epochs from chosen weights (warm_start) and run reference.train
    from the same weights.  Returns (model, (coefs, intercepts, losses))."""
    X, y, Y = make_data(kind, n=n, n_features=n_features, seed=3)
    opts = SOLVERS[solver]
    m = fitted_model(kind, hidden, activation, alpha=alpha, X=X, y=y, scale=0.5,
                     batch_size=batch_size, shuffle=False, learning_rate_init=learning_rate,
                     **opts)
    W0, b0 = copies(m.coefs_), copies(m.intercepts_)
    n_before = len(m.loss_curve_)
    m.set_params(warm_start=True, max_iter=n_epochs)
    m.fit(X, y)
    assert len(m.loss_curve_) == n_before + n_epochs
    _, out, loss_name = KINDS[kind]
    ref = reference.train(
        W0, b0, X, Y, activation, out, loss_name, opts["solver"],
        n if batch_size is None else min(batch_size, n), n_epochs, learning_rate,
        alpha=alpha, momentum=opts.get("momentum", 0.9),
        nesterov=opts.get("nesterovs_momentum", True), beta1=opts.get("beta_1", 0.9),
        beta2=opts.get("beta_2", 0.999), epsilon=opts.get("epsilon", 1e-8))
    # the fit really moved the weights
    assert not np.allclose(m.coefs_[0], W0[0])
    return m, ref


def assert_same_training(m, ref, n_epochs=3, rtol=1e-10):
    coefs, intercepts, losses = ref
    for got, want in zip(m.coefs_, coefs):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-13)
    for got, want in zip(m.intercepts_, intercepts):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-13)
    np.testing.assert_allclose(m.loss_curve_[-n_epochs:], losses, rtol=rtol)
    assert m.loss_ == m.loss_curve_[-1]


@pytest.mark.parametrize("batch_size", [10, 37, None], ids=["b10", "b37", "full"])
@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("kind", ["regressor", "binary", "multiclass", "multilabel"])
def test_update_rules_match_reference_train(kind, solver, batch_size):
    # n=37, batch 10: three batches of 10 and a last one of 7
    m, ref = train_both(kind, "tanh", (6, 4), solver, batch_size)
    assert_same_training(m, ref)


@pytest.mark.parametrize("activation", ["identity", "logistic", "relu"])
@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_update_rules_other_activations(activation, solver):
    m, ref = train_both("multiclass", activation, (7,), solver, 10)
    assert_same_training(m, ref)


@pytest.mark.parametrize("solver", ["gd", "adam"])
def test_update_rules_batch_size_one(solver):
    m, ref = train_both("regressor2", "tanh", (3,), solver, 1, n=6, learning_rate=0.01)
    assert_same_training(m, ref)


def test_plain_gradient_descent_is_one_step_per_batch():
    """One full-batch epoch of momentum-free SGD is exactly W - lr * grad."""
    X, y, _ = make_data("multiclass", n=20)
    m = fitted_model("multiclass", (4,), "tanh", alpha=0.01, X=X, y=y, batch_size=None,
                     shuffle=False, learning_rate_init=0.3, **SOLVERS["gd"])
    loss0, cg, ig = m.loss_and_gradients(X, y)
    W0 = copies(m.coefs_ + m.intercepts_)
    m.set_params(warm_start=True, max_iter=1)
    m.fit(X, y)
    for got, w0, g in zip(m.coefs_ + m.intercepts_, W0, cg + ig):
        np.testing.assert_allclose(got, w0 - 0.3 * g, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(m.loss_curve_[-1], loss0, rtol=1e-13)


def test_warm_start_restarts_the_optimizer_state():
    """A warm-started fit starts with zero velocity: two fits of 2 epochs with
    momentum are not the same as one of 4 epochs, but each matches the reference."""
    X, y, Y = make_data("regressor", n=37, seed=3)
    kw = dict(solver="sgd", momentum=0.9, nesterovs_momentum=False, batch_size=10,
              shuffle=False, learning_rate_init=0.05, alpha=0.0)
    a = fitted_model("regressor", (5,), "tanh", X=X, y=y, **kw)
    W0, b0 = copies(a.coefs_), copies(a.intercepts_)
    a.set_params(warm_start=True, max_iter=2)
    a.fit(X, y)
    a.fit(X, y)
    c1, i1, _ = reference.train(W0, b0, X, Y, "tanh", "identity", "half_squared_error",
                                "sgd", 10, 2, 0.05, momentum=0.9, nesterov=False)
    c2, i2, _ = reference.train(c1, i1, X, Y, "tanh", "identity", "half_squared_error",
                                "sgd", 10, 2, 0.05, momentum=0.9, nesterov=False)
    c4, _, _ = reference.train(W0, b0, X, Y, "tanh", "identity", "half_squared_error",
                               "sgd", 10, 4, 0.05, momentum=0.9, nesterov=False)
    for got, want in zip(a.coefs_ + a.intercepts_, c2 + i2):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    assert not np.allclose(c2[0], c4[0], rtol=1e-6)


def test_partial_fit_keeps_the_optimizer_state():
    """partial_fit calls are one epoch each and carry the Adam moments and step count:
    k calls equal one run of k epochs."""
    X, y, Y = make_data("multiclass", n=37, seed=3)
    kw = dict(solver="adam", batch_size=10, shuffle=False, learning_rate_init=0.02,
              alpha=0.0, hidden_layer_sizes=(5,), activation="tanh", dtype="float64",
              random_state=0)
    a = pynn.MLPClassifier(**kw)
    a.partial_fit(X, y, classes=[0, 1, 2])
    W1, b1 = copies(a.coefs_), copies(a.intercepts_)
    # the same first epoch from the Glorot weights, then three more
    b = pynn.MLPClassifier(max_iter=1, tol=None, **kw).fit(X, y)
    for got, want in zip(b.coefs_ + b.intercepts_, W1 + b1):
        np.testing.assert_array_equal(got, want)
    for _ in range(3):
        a.partial_fit(X, y)
    assert a.n_iter_ == 1 and len(a.loss_curve_) == 4
    b.set_params(warm_start=True, max_iter=3)  # new optimizer: differs from partial_fit
    b.fit(X, y)
    # the reference: 4 epochs from the Glorot weights with one Adam state
    init = pynn.MLPClassifier(max_iter=1, tol=None, learning_rate_init=1e-300,
                              **{k: v for k, v in kw.items() if k != "learning_rate_init"})
    init.fit(X, y)  # a negligible step: the Glorot draw itself
    c, i, losses = reference.train(copies(init.coefs_), copies(init.intercepts_), X, Y,
                                   "tanh", "softmax", "categorical_cross_entropy", "adam",
                                   10, 4, 0.02)
    for got, want in zip(a.coefs_ + a.intercepts_, c + i):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.loss_curve_, losses, rtol=1e-10)
    assert not np.allclose(b.coefs_[0], a.coefs_[0], rtol=1e-6)


# ---------------------------------------------------------------------------
# the trajectory of scikit-learn's MLPs
# ---------------------------------------------------------------------------

def sklearn_pair(kind, **params):
    from sklearn import neural_network

    name = "MLPRegressor" if kind.startswith("regressor") else "MLPClassifier"
    ours = getattr(pynn, name)(dtype="float64", **params)
    theirs = getattr(neural_network, name)(**params)
    return ours, theirs


def fit_quietly(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


SK_CASES = [
    ("sgd", "relu", 0.9, True), ("sgd", "tanh", 0.9, False), ("sgd", "logistic", 0.0, False),
    ("adam", "relu", 0.9, True), ("adam", "tanh", 0.9, True), ("adam", "identity", 0.9, True),
]


@pytest.mark.parametrize("solver,activation,momentum,nesterov", SK_CASES)
@pytest.mark.parametrize("kind", ["regressor", "binary", "multiclass", "multilabel"])
def test_trajectory_equals_scikit_learn(kind, solver, activation, momentum, nesterov):
    X, y, _ = make_data(kind, n=53, n_features=7, seed=4)
    if kind == "binary":
        y = np.where(y == 1, "spam", "ham")
    params = dict(hidden_layer_sizes=(8, 5), activation=activation, solver=solver,
                  alpha=1e-3, batch_size=16, learning_rate_init=0.02, max_iter=5,
                  shuffle=False, random_state=7, tol=1e-4, momentum=momentum,
                  nesterovs_momentum=nesterov)
    ours, theirs = sklearn_pair(kind, **params)
    fit_quietly(ours, X, y)
    fit_quietly(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 5
    assert len(ours.coefs_) == len(theirs.coefs_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.out_activation_ == theirs.out_activation_
    if kind != "regressor":
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    else:
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-12)


def test_initial_weights_equal_scikit_learn():
    """The Glorot draw (factor 2 for logistic, 6 otherwise) is scikit-learn's."""
    X, y, _ = make_data("multiclass", n=30, seed=5)
    for activation in ("logistic", "relu"):
        params = dict(hidden_layer_sizes=(6,), activation=activation, solver="sgd",
                      learning_rate_init=1e-300, max_iter=1, shuffle=False, random_state=3,
                      momentum=0.0, alpha=0.0, batch_size=30)
        ours, theirs = sklearn_pair("multiclass", **params)
        fit_quietly(ours, X, y)
        fit_quietly(theirs, X, y)
        for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("learning_rate", ["invscaling", "constant"])
def test_learning_rate_schedule_equals_scikit_learn(learning_rate):
    X, y, _ = make_data("regressor", n=40, seed=6)
    params = dict(hidden_layer_sizes=(6,), activation="tanh", solver="sgd",
                  learning_rate=learning_rate, learning_rate_init=0.1, power_t=0.3,
                  batch_size=8, max_iter=6, shuffle=False, random_state=1, momentum=0.5)
    ours, theirs = sklearn_pair("regressor", **params)
    fit_quietly(ours, X, y)
    fit_quietly(theirs, X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


@pytest.mark.parametrize("n_iter_no_change", [2, 3])
def test_adaptive_learning_rate_and_stopping_equal_scikit_learn(n_iter_no_change):
    """With a huge tol no epoch counts as an improvement: 'adaptive' divides the
    learning rate by 5 after n_iter_no_change + 1 epochs, until it drops to 1e-6,
    and only then training stops, exactly as in scikit-learn."""
    X, y, _ = make_data("multiclass", n=40, seed=12)
    params = dict(hidden_layer_sizes=(5,), activation="tanh", solver="sgd",
                  learning_rate="adaptive", learning_rate_init=0.2, batch_size=10,
                  max_iter=200, shuffle=False, random_state=2, tol=1e3,
                  n_iter_no_change=n_iter_no_change)
    ours, theirs = sklearn_pair("multiclass", **params)
    fit_quietly(ours, X, y)
    fit_quietly(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert n_iter_no_change + 1 < ours.n_iter_ < 200
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_tol_stopping_equals_scikit_learn(solver):
    X, y, _ = make_data("regressor", n=40, seed=13)
    params = dict(hidden_layer_sizes=(5,), solver=solver, learning_rate_init=0.01,
                  batch_size=10, max_iter=100, shuffle=False, random_state=2, tol=1e-2,
                  n_iter_no_change=3)
    ours, theirs = sklearn_pair("regressor", **params)
    fit_quietly(ours, X, y)
    fit_quietly(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 100
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(ours.best_loss_, theirs.best_loss_, rtol=1e-9)


# ---------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_same_seed_gives_bitwise_identical_fits(solver, dtype):
    X, y, _ = make_data("multiclass", n=61, seed=7)
    kw = dict(hidden_layer_sizes=(9, 5), solver=solver, batch_size=8, shuffle=True,
              max_iter=4, tol=None, dtype=dtype, learning_rate_init=0.05)
    a = pynn.MLPClassifier(random_state=42, **kw).fit(X, y)
    b = pynn.MLPClassifier(random_state=42, **kw).fit(X, y)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert np.array_equal(p, q)
    assert a.loss_curve_ == b.loss_curve_
    # a RandomState with the same seed is the same stream
    c = pynn.MLPClassifier(random_state=np.random.RandomState(42), **kw).fit(X, y)
    for p, q in zip(a.coefs_ + a.intercepts_, c.coefs_ + c.intercepts_):
        assert np.array_equal(p, q)
    # refitting the same estimator object repeats itself too
    a.fit(X, y)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert np.array_equal(p, q)
    # the seed matters, and so does shuffling (the test is not vacuous)
    d = pynn.MLPClassifier(random_state=43, **kw).fit(X, y)
    assert not np.array_equal(a.coefs_[0], d.coefs_[0])
    e = pynn.MLPClassifier(random_state=42, **{**kw, "shuffle": False}).fit(X, y)
    assert not np.array_equal(a.coefs_[-1], e.coefs_[-1])


def test_shuffled_minibatch_perceptron_is_seeded():
    X, y, _ = make_data("binary", n=40, seed=8)
    kw = dict(batch_size=7, shuffle=True, max_iter=5, tol=None, dtype="float64")
    a = pynn.Perceptron(random_state=3, **kw).fit(X, y)
    b = pynn.Perceptron(random_state=3, **kw).fit(X, y)
    c = pynn.Perceptron(random_state=4, **kw).fit(X, y)
    assert np.array_equal(a.coef_, b.coef_) and np.array_equal(a.intercept_, b.intercept_)
    assert not np.array_equal(a.coef_, c.coef_)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_thread_count_does_not_change_the_weights(solver, dtype):
    rng = make_rng("threads", solver, dtype)
    X = rng.standard_normal((200, 300))
    y = rng.integers(0, 4, 200)
    kw = dict(hidden_layer_sizes=(256,), batch_size=200, max_iter=3, tol=None,
              random_state=0, dtype=dtype, solver=solver, learning_rate_init=0.01)
    one = pynn.MLPClassifier(n_threads=1, **kw).fit(X, y)
    two = pynn.MLPClassifier(n_threads=2, **kw).fit(X, y)
    for p, q in zip(one.coefs_ + one.intercepts_, two.coefs_ + two.intercepts_):
        assert np.array_equal(p, q)
    assert one.loss_curve_ == two.loss_curve_
    P1 = one.predict_proba(X)
    P2 = two.predict_proba(X)
    assert np.array_equal(P1, P2)
    # the gradients too
    l1, g1, _ = one.loss_and_gradients(X, y)
    l2, g2, _ = two.loss_and_gradients(X, y)
    assert l1 == l2
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_row_predicts_the_same_alone_and_in_a_batch(dtype, n_threads):
    rng = make_rng("rows", dtype, n_threads)
    X = rng.standard_normal((600, 40))  # more rows than one prediction block
    y = rng.integers(0, 3, 600)
    m = pynn.MLPClassifier((64, 32), max_iter=2, tol=None, random_state=0, dtype=dtype,
                           n_threads=n_threads).fit(X, y)
    P = m.predict_proba(X)
    for i in (0, 1, 255, 256, 257, 333, 599):
        assert np.array_equal(m.predict_proba(X[i:i + 1])[0], P[i]), i
    assert np.array_equal(m.predict_proba(X[100:300]), P[100:300])
    assert np.array_equal(m.predict(X[5:6]), m.predict(X)[5:6])
    r = pynn.MLPRegressor((16,), max_iter=2, tol=None, random_state=0, dtype=dtype,
                          n_threads=n_threads).fit(X, rng.standard_normal(600))
    out = r.predict(X)
    for i in (0, 300, 599):
        assert np.array_equal(r.predict(X[i:i + 1]), out[i:i + 1])


# ---------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------

def test_single_sample_regressor():
    X = np.array([[0.5, -1.0, 2.0]])
    y = np.array([1.5])
    m = pynn.MLPRegressor((4,), solver="sgd", max_iter=3, tol=None, dtype="float64",
                          random_state=0, learning_rate_init=0.1, momentum=0.0).fit(X, y)
    assert m.predict(X).shape == (1,)
    assert len(m.loss_curve_) == 3
    assert m.loss_curve_[-1] < m.loss_curve_[0]
    loss, cg, ig = m.loss_and_gradients(X, y)
    ref = reference.loss_and_gradients(copies(m.coefs_), copies(m.intercepts_), X,
                                       y.reshape(-1, 1), "relu", "identity",
                                       "half_squared_error", m.alpha)
    np.testing.assert_allclose(loss, ref[0], rtol=1e-12)
    for got, want in zip(cg + ig, ref[1] + ref[2]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


def test_single_sample_per_class_classifier():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    m = pynn.MLPClassifier((3,), max_iter=5, tol=None, random_state=0).fit(X, ["a", "b"])
    assert m.predict_proba(X[:1]).shape == (1, 2)
    assert m.predict(X[1:]).shape == (1,)


@pytest.mark.parametrize("kind", ["regressor", "binary", "multiclass"])
def test_single_feature(kind):
    X, y, Y = make_data(kind, n=25, n_features=1, seed=9)
    m = fitted_model(kind, (3,), "tanh", alpha=0.01, X=X, y=y)
    assert m.coefs_[0].shape == (1, 3)
    assert m.n_features_in_ == 1
    _, out, loss_name = KINDS[kind]
    loss, cg, ig = m.loss_and_gradients(X, y)
    ref = reference.loss_and_gradients(copies(m.coefs_), copies(m.intercepts_), X, Y,
                                       "tanh", out, loss_name, 0.01)
    np.testing.assert_allclose(loss, ref[0], rtol=GRAD_RTOL)
    for got, want in zip(cg + ig, ref[1] + ref[2]):
        np.testing.assert_allclose(got, want, rtol=GRAD_RTOL, atol=GRAD_ATOL)
    for a, b in zip(m.forward_layers(X), reference.forward(m.coefs_, m.intercepts_, X,
                                                            "tanh", out)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_odd_sizes():
    rng = make_rng("odd sizes")
    X = rng.standard_normal((31, 13))
    y = np.arange(31) % 5
    m = pynn.MLPClassifier((7, 3, 11), activation="tanh", batch_size=6, max_iter=2, tol=None,
                           dtype="float64", random_state=0).fit(X, y)
    assert [W.shape for W in m.coefs_] == [(13, 7), (7, 3), (3, 11), (11, 5)]
    assert [b.shape for b in m.intercepts_] == [(7,), (3,), (11,), (5,)]
    assert m.n_layers_ == 5 and m.n_outputs_ == 5
    assert m.predict_proba(X).shape == (31, 5)
    np.testing.assert_allclose(m.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    loss, cg, ig = m.loss_and_gradients(X, y)
    ref = reference.loss_and_gradients(copies(m.coefs_), copies(m.intercepts_), X,
                                       np.eye(5)[y], "tanh", "softmax",
                                       "categorical_cross_entropy", m.alpha)
    np.testing.assert_allclose(loss, ref[0], rtol=GRAD_RTOL)
    for got, want in zip(cg + ig, ref[1] + ref[2]):
        np.testing.assert_allclose(got, want, rtol=GRAD_RTOL, atol=GRAD_ATOL)


def test_batch_size_larger_than_n_warns_and_is_clipped():
    X, y, _ = make_data("multiclass", n=20, seed=10)
    kw = dict(hidden_layer_sizes=(4,), max_iter=3, tol=None, random_state=0,
              dtype="float64", shuffle=True)
    with pytest.warns(UserWarning, match="batch_size"):
        big = pynn.MLPClassifier(batch_size=500, **kw).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = pynn.MLPClassifier(batch_size=20, **kw).fit(X, y)
        none = pynn.MLPClassifier(batch_size=None, **kw).fit(X, y)
    for a, b, c in zip(big.coefs_ + big.intercepts_, full.coefs_ + full.intercepts_,
                       none.coefs_ + none.intercepts_):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert big.loss_curve_ == full.loss_curve_


def test_batch_size_one_takes_n_steps_per_epoch():
    X, y, Y = make_data("binary", n=9, seed=11)
    m = fitted_model("binary", (3,), "logistic", X=X, y=y, batch_size=1, shuffle=False,
                     learning_rate_init=0.1, **SOLVERS["gd"])
    W0, b0 = copies(m.coefs_), copies(m.intercepts_)
    m.set_params(warm_start=True, max_iter=2)
    m.fit(X, y)
    c, i, losses = reference.train(W0, b0, X, Y, "logistic", "logistic",
                                   "binary_cross_entropy", "sgd", 1, 2, 0.1, momentum=0.0)
    for got, want in zip(m.coefs_ + m.intercepts_, c + i):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(m.loss_curve_[-2:], losses, rtol=1e-10)
    # and it differs from one full-batch step per epoch
    c_full, _, _ = reference.train(W0, b0, X, Y, "logistic", "logistic",
                                   "binary_cross_entropy", "sgd", 9, 2, 0.1, momentum=0.0)
    assert not np.allclose(c_full[0], c[0])
