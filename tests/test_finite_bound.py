"""The end of a fit proves its model finite by bounds where it can
(``Net.finite_bound``): from the largest magnitudes of the weights, of the
checked rows' inputs and of their targets, bounds on every value a loss and
gradient pass computes.  Where they prove it (1), the pass is skipped; where
they do not (0) it runs as before; -1 says the weights themselves hold a NaN
or infinity.

What must hold: a proof is never wrong (wherever it says 1, the pass gives a
finite loss and finite gradients, also at scales right below where it stops
proving), it proves the models an ordinary fit leaves, and a fit whose last
update blew the weights up is still refused."""
import math
import warnings

import numpy as np
import pytest

import pynn
import pynn._training as training
from pynn import _core

ACT = _core.ACTIVATIONS
LOSS = _core.LOSSES

# (hidden, output, loss) as the estimators build them, and two other pairs
COMBOS = [
    ("relu", "softmax", "categorical_cross_entropy"),   # MLPClassifier, multiclass
    ("tanh", "logistic", "binary_cross_entropy"),       # MLPClassifier, binary
    ("logistic", "identity", "half_squared_error"),     # MLPRegressor
    ("identity", "exp", "half_poisson_deviance"),       # MLPRegressor, Poisson
    ("relu", "step", "squared_error"),                  # Perceptron-like
    ("relu", "logistic", "squared_error"),              # delta through act'
]


def _net(units, combo):
    hidden, out, loss = combo
    return _core.Net(units, ACT[hidden], ACT[out], LOSS[loss])


def _targets(combo, n, m, rng, dtype, ymax=1.0):
    if combo[2] == "categorical_cross_entropy":
        Y = np.zeros((n, m), dtype)
        Y[np.arange(n), rng.integers(0, m, n)] = 1
        return Y
    if combo[2] == "binary_cross_entropy":
        return rng.integers(0, 2, (n, m)).astype(dtype)
    if combo[2] == "half_poisson_deviance":
        return (ymax * rng.random((n, m))).astype(dtype)
    return (ymax * rng.uniform(-1, 1, (n, m))).astype(dtype)


def _loss_grad(net, params, X, Y, alpha):
    grads = np.empty_like(params)
    ws = np.empty(net.workspace_size(X.shape[0]), params.dtype)
    with np.errstate(all="ignore"):
        loss = net.loss_grad(grads, params, X, Y, alpha, ws, 1)
    return loss, grads


def _finite(net, params, X, Y, alpha):
    loss, grads = _loss_grad(net, params, X, Y, alpha)
    return math.isfinite(loss) and bool(np.isfinite(grads).all())


def _bound(net, params, X, Y, alpha):
    return net.finite_bound(params, float(np.abs(X).max()), float(np.abs(Y).max()), alpha,
                            X.shape[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(c))
def test_a_proof_is_never_wrong_up_to_where_it_stops(dtype, combo):
    """Weights of one sign and inputs at their bound (the worst case the bounds
    assume, sums without cancellation), scaled up by 2x steps: wherever the
    bounds prove the pass finite, it is; they prove it at ordinary scales; and
    the sweep goes on until the pass itself overflows."""
    rng = np.random.default_rng(0)
    units = (6, 5, 4, 3)
    net = _net(units, combo)
    n = 4
    X = np.ones((n, units[0]), dtype)
    Y = _targets(combo, n, units[-1], rng, dtype)
    base = rng.uniform(0.5, 1.0, net.n_params).astype(dtype)
    proven_at, finite_until = [], None
    top = math.log2(float(np.finfo(dtype).max))
    for k in range(-64, int(8 * top)):  # weight scales 2^(k/8), up to the dtype's largest
        scale = 2.0 ** (k / 8)
        params = base * dtype(scale)
        if not np.isfinite(params).all() or (finite_until and scale > 2 * finite_until):
            break
        r = _bound(net, params, X, Y, 1e-4)
        fin = _finite(net, params, X, Y, 1e-4)
        if r == 1:
            assert fin, f"proven finite at weight scale {scale:.3g}, but the pass is not"
            proven_at.append(scale)
        else:
            assert r == 0
        if not fin and finite_until is None:
            finite_until = scale
    assert proven_at and proven_at[0] == 2.0 ** -8, "small weights are not proven finite"
    assert finite_until is not None, "the sweep never reached an overflow"


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "bfloat16"])
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(c))
def test_random_models_proven_are_finite(dtype, combo):
    """Random weights, rows and targets over many magnitudes (mixed signs, some
    weights far larger than the rest): every proof holds (also for the
    products that round their operands to bfloat16)."""
    rng = np.random.default_rng(1)
    units = (7, 6, 5, 3)
    bf16 = dtype == "bfloat16"
    dtype = np.float32 if bf16 else dtype
    hidden, out, loss = combo
    net = _core.Net(units, ACT[hidden], ACT[out], LOSS[loss], bf16=bf16)
    proven = 0
    top = np.log10(np.finfo(dtype).max)
    for _ in range(300):
        n = int(rng.integers(1, 9))
        # (half of the draws of ordinary magnitudes)
        hi = top if rng.random() < 0.5 else 1.0
        xs, ws, ys = (10.0 ** rng.uniform(-3, hi) for _ in range(3))
        X = (xs * rng.standard_normal((n, units[0]))).astype(dtype)
        Y = _targets(combo, n, units[-1], rng, dtype, ymax=min(ys, float(np.finfo(dtype).max)))
        params = (ws * rng.standard_normal(net.n_params)
                  * 10.0 ** rng.uniform(-3, 0, net.n_params)).astype(dtype)
        if not (np.isfinite(X).all() and np.isfinite(Y).all() and np.isfinite(params).all()):
            continue
        alpha = float(10.0 ** rng.uniform(-6, 3))
        r = _bound(net, params, X, Y, alpha)
        if r == 1:
            proven += 1
            assert _finite(net, params, X, Y, alpha)
        else:
            assert r == 0
    assert proven > 20


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_weights_not_finite_say_so(dtype, bad):
    net = _net((5, 4, 3), COMBOS[0])
    params = np.full(net.n_params, 0.1, dtype)
    X, Y = np.ones((2, 5), dtype), np.eye(3, dtype=dtype)[:2]
    assert _bound(net, params, X, Y, 0.0) == 1
    for at in (0, net.n_params // 2, net.n_params - 1):  # first W, later, last bias
        p = params.copy()
        p[at] = bad
        assert _bound(net, p, X, Y, 0.0) == -1


def test_inputs_or_alpha_beyond_the_bounds_are_not_proven():
    net = _net((5, 4, 3), COMBOS[2])
    params = np.full(net.n_params, 0.1)
    X, Y = np.ones((2, 5)), np.ones((2, 3))
    assert net.finite_bound(params, 1.0, 1.0, 1e-4, 2) == 1
    # (past the largest double over 2^16)
    for xmax, ymax, alpha in [(np.nan, 1, 0), (np.inf, 1, 0), (1, np.nan, 0), (1, 1, np.inf),
                              (1e305, 1, 0), (1, 1e305, 0), (1, 1, 1e305)]:
        assert net.finite_bound(params, xmax, ymax, alpha, 2) == 0


@pytest.mark.parametrize("out,loss", [("step", "half_poisson_deviance"),
                                      ("identity", "half_poisson_deviance"),
                                      ("exp", "half_squared_error"),
                                      ("identity", "binary_cross_entropy"),
                                      ("softmax", "half_squared_error")])
def test_pairs_the_bounds_do_not_cover_are_not_proven(out, loss):
    """A Poisson loss of an output that can be 0 (log(y / 0)), and pairs whose
    delta the bounds do not follow: never proven, whatever the weights.  (The
    step output's Poisson loss is infinite on these rows.)"""
    net = _core.Net((5, 4, 3), ACT["relu"], ACT[out], LOSS[loss])
    params = np.full(net.n_params, 1e-3)
    X, Y = np.ones((2, 5)), np.full((2, 3), 0.5)
    assert net.finite_bound(params, 1.0, 1.0, 0.0, 2) == 0
    if out == "step":
        assert not _finite(net, -params, X, Y, 0.0)


def test_a_fit_ends_by_the_bounds_not_the_pass(monkeypatch):
    """An ordinary fit's final check is settled by the bounds: the loss and
    gradient pass does not run (the wide network's pass cost ~1.4% of a fit
    call of 12 steps)."""
    calls = []
    real = training._sparse.loss_grad
    monkeypatch.setattr(training._sparse, "loss_grad",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 8)), rng.integers(0, 3, 200)
    for est in (pynn.MLPClassifier((16,), max_iter=3, random_state=0),
                pynn.MLPRegressor((16,), max_iter=3, random_state=0, dtype="float32"),
                # (float64: float32's bound on a Poisson output's pre-activation,
                # exp(80), is below what a worst case of these weights allows)
                pynn.MLPRegressor((16,), loss="poisson", max_iter=3, random_state=0,
                                  dtype="float64"),
                pynn.Perceptron(max_iter=3, random_state=0)):
        target = y if not isinstance(est, pynn.MLPRegressor) else np.abs(X[:, 0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, target)
    assert calls == []


def test_a_fit_the_bounds_cannot_prove_runs_the_pass(monkeypatch):
    """Large (finite) data: the bounds do not prove it, the pass runs and
    settles it (here: finite, the fit succeeds)."""
    calls = []
    real = training._sparse.loss_grad
    monkeypatch.setattr(training._sparse, "loss_grad",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(0)
    X, y = 1e303 * rng.standard_normal((50, 3)), rng.integers(0, 2, 50)
    m = pynn.MLPClassifier((4,), max_iter=1, learning_rate_init=1e-300, solver="sgd",
                           random_state=0, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m.fit(X, y)
        except pynn.DivergenceError:
            pass
    assert len(calls) == 1


def test_a_blown_up_last_update_is_still_refused():
    """The regression the final check exists for (test_properties): weights
    blown up by the last update, finite but too large -- the bounds do not
    prove them, the pass finds the overflow, the fit raises."""
    X = 1e6 * np.random.default_rng(0).standard_normal((6, 2))
    y = np.random.default_rng(0).standard_normal(6)
    m = pynn.MLPRegressor((3,), activation="identity", solver="sgd", dtype="float32",
                          max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(pynn.DivergenceError):
            m.fit(X, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_give_the_same_answer(dtype):
    """A W large enough for its pass to run on a team (each thread a share):
    the same answer for any thread count, with the largest weight, or a NaN
    or infinity, in any share (the shares' edges included)."""
    rng = np.random.default_rng(0)
    net = _net((700, 600, 3), COMBOS[0])
    params = (0.01 * rng.uniform(-1, 1, net.n_params)).astype(dtype)
    nw = 700 * 600  # the first W, past the size a team takes
    X, Y = np.ones((2, 700), dtype), np.eye(3, dtype=dtype)[:2]
    for at in (0, nw // 3, nw // 2 - 1, nw // 2, nw // 2 + 1, nw - 1):
        # a weight large enough that the bounds stop proving, in one share only
        big = params.copy()
        big[at] = np.finfo(dtype).max / 1e6
        bad = params.copy()
        bad[at] = np.nan
        for p, want in ((params, 1), (big, 0), (bad, -1)):
            got = [net.finite_bound(p, 1.0, 1.0, 0.0, 2, threads) for threads in (1, 2, 3, 0)]
            assert got == [want] * 4, (at, want, got)
