"""Large dense training data is checked for NaN and infinity by the core as the
steps read it (each row's first pre-activation of the first layer: a NaN or
infinity anywhere in a row makes it non-finite), not in a pass over X before
training.  A refused fit must still leave the model as it was: unfitted, or
with its weights, optimizer state, curves and random state as before the call,
so that what follows is bitwise what it would have been without the call.

The size threshold is lowered here so that small data takes the same path."""
import warnings

import numpy as np
import pytest

import pynn
import pynn._base as base
from pynn import _core


def _counted_refusals(monkeypatch):
    """The calls of the up-front check (a list that fills as it is called)."""
    calls = []
    real = base.refuse_non_finite

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(base, "refuse_non_finite", counted)
    return calls


@pytest.fixture
def late(monkeypatch):
    """Every dense fit checks X in the core, and the up-front check counts its calls."""
    monkeypatch.setattr(base, "_CHECK_LATE_BYTES", 0)
    monkeypatch.setattr(base, "_CHECK_LATE_RATIO", 0)
    return _counted_refusals(monkeypatch)


def _data(dtype, n=300, d=20, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    return X, rng.integers(0, classes, n)


def _fit(model, method, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "partial_fit":
            return model.partial_fit(X, y, classes=np.arange(4))
        return model.fit(X, y)


def _state(m):
    opt = m._opt_state
    return ([a.copy() for a in m.coefs_ + m.intercepts_], list(m.loss_curve_), m.n_iter_, m.t_,
            None if opt is None else [a.copy() for a in opt.arrays()],
            m._random_state.get_state())


def _same(a, b):
    weights_a, *rest_a = a
    weights_b, *rest_b = b
    assert all(np.array_equal(u, v) for u, v in zip(weights_a, weights_b))
    assert rest_a[0] == rest_b[0] and rest_a[1] == rest_b[1] and rest_a[2] == rest_b[2]
    assert (rest_a[3] is None) == (rest_b[3] is None)
    if rest_a[3] is not None:
        assert all(np.array_equal(u, v) for u, v in zip(rest_a[3], rest_b[3]))
    key_a, *pos_a = rest_a[4][1:]
    key_b, *pos_b = rest_b[4][1:]
    assert np.array_equal(key_a, key_b) and pos_a == pos_b  # the random state too


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row", [0, 150, 299])
@pytest.mark.parametrize("solver,batch,shuffle", [("sgd", 32, False), ("sgd", 1, True),
                                                  ("adam", 64, True), ("sgd", 300, False)])
def test_a_first_fit_is_refused_and_leaves_the_model_unfitted(late, dtype, bad, row, solver,
                                                              batch, shuffle):
    X, y = _data(dtype)
    X[row, 7] = bad
    m = pynn.MLPClassifier((16,), solver=solver, batch_size=batch, shuffle=shuffle,
                           max_iter=3, random_state=0, dtype=dtype)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _fit(m, "fit", X, y)
    assert not hasattr(m, "coefs_") and not hasattr(m, "_arena")
    assert len(late) == 1  # the core found it; the message's check ran after


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("solver,momentum", [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.9)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_refused_warm_fit_leaves_the_model_as_it_was(late, dtype, method, solver, momentum,
                                                        n_threads):
    """The rows before the bad one were trained on (the core checks as it
    goes); all of it is undone, and the next fit gives the bits of a model
    that never saw the refused call."""
    X, y = _data(dtype)
    bad = X.copy()
    bad[200, 3] = np.nan

    def model():
        return pynn.MLPClassifier((16,), solver=solver, momentum=momentum, batch_size=16,
                                  max_iter=2, random_state=0, dtype=dtype, warm_start=True,
                                  n_threads=n_threads)

    m, twin = _fit(model(), method, X, y), _fit(model(), method, X, y)
    before = _state(m)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _fit(m, method, bad, y)
    _same(_state(m), before)
    _fit(m, method, X, y)
    _fit(twin, method, X, y)
    _same(_state(m), _state(twin))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_path_finds_a_bad_value_anywhere_in_a_row(late, simd, dtype):
    """Each column of the row, with the first hidden unit's weights zero (an
    infinity reaches it as inf * 0 = NaN)."""
    X, y = _data(dtype, n=64, d=9)
    m = _fit(pynn.MLPClassifier((40, 8), batch_size=8, max_iter=1, random_state=0, dtype=dtype,
                                warm_start=True), "fit", X, y)
    m.coefs_[0][:, 0] = 0
    before = _state(m)
    for col in range(9):
        for bad in (np.inf, -np.inf, np.nan):
            Z = X.copy()
            Z[37, col] = bad
            with pytest.raises(ValueError, match="X contains NaN or infinity"):
                _fit(m, "fit", Z, y)
            _same(_state(m), before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_wide_first_layer_finds_a_bad_value(late, simd, dtype, n_threads):
    """A first layer wide and deep enough for the tiles three vectors wide
    on the AVX-512 paths (their own epilogue writes each row's first
    pre-activation), on every path."""
    X, y = _data(dtype, n=96, d=300)
    m = _fit(pynn.MLPClassifier((256,), batch_size=32, max_iter=1, random_state=0, dtype=dtype,
                                warm_start=True, n_threads=n_threads), "fit", X, y)
    before = _state(m)
    for row, col, bad in [(40, 0, np.nan), (70, 299, np.inf), (95, 150, -np.inf)]:
        Z = X.copy()
        Z[row, col] = bad
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            _fit(m, "fit", Z, y)
        _same(_state(m), before)
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            m.predict_proba(Z)


def test_the_bfloat16_mode_checks_each_batch_before_its_step(late):
    X, y = _data("float32")
    X[123, 0] = np.inf
    m = pynn.MLPClassifier((16,), batch_size=32, max_iter=2, random_state=0, dtype="bfloat16")
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _fit(m, "fit", X, y)
    assert not hasattr(m, "coefs_")


def test_values_too_large_for_float32_get_their_own_message(late):
    X, y = _data("float64")
    X[5, 5] = 1e300
    m = pynn.MLPClassifier((16,), max_iter=1, random_state=0, dtype="float32")
    with pytest.raises(ValueError, match="too large for float32"):
        _fit(m, "fit", X, y)


def test_a_perceptron_is_refused_the_same_way(late):
    X, y = _data("float64")
    X[250, 1] = np.nan
    p = pynn.Perceptron(max_iter=2, random_state=0, dtype="float64")
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _fit(p, "fit", X, y)
    assert not hasattr(p, "coef_")


def test_a_clean_fit_skips_the_up_front_check_and_gives_the_same_bits(late, monkeypatch):
    X, y = _data("float64")
    late_fit = _fit(pynn.MLPClassifier((16,), max_iter=2, random_state=0, dtype="float64"),
                    "fit", X, y)
    assert late == []  # only the core looked at X
    monkeypatch.setattr(base, "_CHECK_LATE_BYTES", 1 << 62)
    early_fit = _fit(pynn.MLPClassifier((16,), max_iter=2, random_state=0, dtype="float64"),
                     "fit", X, y)
    assert len(late) == 1
    assert all(np.array_equal(a, b) for a, b in zip(late_fit.coefs_, early_fit.coefs_))


def test_a_first_layer_that_overflows_on_finite_rows_is_not_called_bad_input(late):
    """Finite rows whose first pre-activation overflows are read again and
    found finite: the step goes on, and the fit fails as a divergence."""
    X, y = _data("float32")
    X[10] = np.finfo(np.float32).max
    m = pynn.MLPRegressor((16,), activation="identity", max_iter=2, random_state=0,
                          dtype="float32", learning_rate_init=1e-3)
    with pytest.raises(pynn.DivergenceError):
        _fit(m, "fit", X, X[:, 1].astype(np.float64))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 7, 32])
def test_the_core_stops_before_the_bad_batch_and_keeps_the_steps_before(dtype, batch):
    """Trainer.check_x: the steps before the batch that holds the bad row are
    taken (the same bits as those steps alone on clean data), that batch's
    and later ones are not."""
    X, y = _data(dtype, n=200)
    net = _core.Net([20, 16, 4], _core.ACTIVATIONS["relu"], _core.ACTIVATIONS["softmax"],
                    _core.LOSSES["categorical_cross_entropy"])
    init = np.random.default_rng(1).standard_normal(net.n_params).astype(dtype) * 0.1
    bad = X.copy()
    bad[101, 19] = np.nan

    def trainer(data):
        params = init.copy()
        t = _core.Trainer(net, params, np.empty_like(params), np.zeros_like(params), None, data,
                          y.astype(np.int64), None,
                          np.empty(net.workspace_size(batch), dtype=dtype), batch, False, 0)
        t.set_optimizer(_core.SOLVERS["sgd"], 0.01, 0.0, False, 0.9, 0.999, 1e-8, 0.0)
        return t, params

    t, params = trainer(bad)
    t.check_x = True
    with pytest.raises(_core.NonFiniteInputError):
        t.run(10**6, 1)
    clean, clean_params = trainer(X)
    steps, _, _ = clean.run(101 // batch, 1)
    assert steps == 101 // batch
    assert np.array_equal(params, clean_params)
    t, _ = trainer(bad)  # without check_x the core trusts its caller
    t.run(10**6, 1)


@pytest.mark.parametrize("given", ["global", "instance"])
def test_a_refused_first_fit_leaves_the_callers_random_state_as_it_was(late, given):
    """random_state=None draws the first weights from NumPy's global generator,
    a RandomState instance from itself: a refused fit puts either back."""
    X, y = _data("float32")
    X[280, 2] = np.nan
    rs = np.random.RandomState(7)
    source = np.random.mtrand._rand if given == "global" else rs
    before = source.get_state()
    m = pynn.MLPClassifier((16,), max_iter=2, dtype="float32",
                           random_state=None if given == "global" else rs)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _fit(m, "fit", X, y)
    after = source.get_state()
    assert np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_a_divergence_before_the_bad_row_is_reached_still_refuses_x(late):
    """The loss blows up before the step loop gets to the NaN: X is refused
    (as a check before training would have) and the warm-started model is
    left as it was, not put back to a divergence snapshot."""
    X, y = _data("float64", n=2000)
    X *= 1e3
    m = _fit(pynn.MLPRegressor((16,), solver="sgd", learning_rate_init=1e-9, max_iter=1,
                               random_state=0, dtype="float64", warm_start=True),
             "fit", X, X[:, 0])
    before = _state(m)
    bad = X.copy()
    bad[1999, 0] = np.nan
    m.set_params(learning_rate_init=1e2)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _fit(m, "fit", bad, X[:, 0])
    _same(_state(m), before)
    # without the NaN, the same fit diverges
    with pytest.raises(pynn.DivergenceError):
        _fit(m, "fit", X, X[:, 0])


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_backups_in_the_first_epoch_keep_the_calls_start_for_a_refusal(late, monkeypatch,
                                                                     method, n_threads):
    """A refused warm start goes back to the run's first snapshot, the weights
    at the call's start (no copy of its own): the backups taken while the
    first epoch reads X -- one every step here -- rotate through the other
    buffer and must not overwrite it.  The bad value is in the last row, so
    every backup of the epoch comes before the refusal."""
    import pynn._training as training
    monkeypatch.setattr(training, "_BACKUP_SECONDS", 0.0)
    monkeypatch.setattr(training, "_BACKUP_COST_RATIO", 0)
    monkeypatch.setattr(training, "_CHUNK_SECONDS", 0.0)  # (a step a chunk)
    copies = []
    real_copy = _core.copy_into

    def counted_copy(dst, src, *args):
        copies.append(dst.size)
        return real_copy(dst, src, *args)

    monkeypatch.setattr(_core, "copy_into", counted_copy)
    X, y = _data("float64")
    bad = X.copy()
    bad[299, 5] = np.nan

    def model():
        return pynn.MLPClassifier((16,), solver="sgd", momentum=0.0, batch_size=16,
                                  max_iter=1, random_state=0, dtype="float64",
                                  warm_start=True, n_threads=n_threads)

    m, twin = _fit(model(), method, X, y), _fit(model(), method, X, y)
    before = _state(m)
    copies.clear()
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _fit(m, method, bad, y)
    assert len(copies) >= 4  # the call's start, then backups during the epoch
    _same(_state(m), before)
    _fit(m, method, X, y)
    _fit(twin, method, X, y)
    _same(_state(m), _state(twin))


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_plain_sgd_warm_start_is_checked_late_however_large_its_weights(monkeypatch,
                                                                          method):
    """Undoing a refused plain-SGD warm start copies nothing (the weights come
    back from the run's snapshot, the velocity is untouched until the epoch's
    end), so its X is checked late at any size over the threshold; a run with
    momentum continues an optimizer state that would have to be copied, and
    X under 8 times its size is checked before training."""
    monkeypatch.setattr(base, "_CHECK_LATE_BYTES", 0)  # (the ratio stays)
    calls = _counted_refusals(monkeypatch)
    X, y = _data("float64")  # 48 KB against 51 KB of weights (256 hidden units)

    def model(momentum):
        return pynn.MLPClassifier((256,), solver="sgd", momentum=momentum, batch_size=32,
                                  max_iter=1, random_state=0, dtype="float64",
                                  warm_start=True)

    plain, heavy = _fit(model(0.0), method, X, y), _fit(model(0.9), method, X, y)
    assert plain._arena.nbytes * base._CHECK_LATE_RATIO > X.nbytes
    calls.clear()
    _fit(plain, method, X, y)
    assert calls == []
    _fit(heavy, method, X, y)
    assert len(calls) == 1
    bad = X.copy()
    bad[150, 2] = np.nan
    before = _state(plain)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _fit(plain, method, bad, y)
    _same(_state(plain), before)


@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_a_refused_plain_sgd_partial_fit_keeps_its_step_count(late, schedule):
    """Plain SGD's velocity is not copied for the undo (untouched before the
    epoch's end), but the optimizer's own scalars are kept too: its step
    count and rate come back as they were, and the next call, whose rate
    depends on them ('invscaling', 'adaptive'), gives the twin's bits."""
    X, y = _data("float64")
    bad = X.copy()
    bad[250, 1] = np.nan

    def model():
        return pynn.MLPClassifier((16,), solver="sgd", momentum=0.0, batch_size=16,
                                  learning_rate=schedule, random_state=0, dtype="float64")

    m, twin = _fit(model(), "partial_fit", X, y), _fit(model(), "partial_fit", X, y)
    t_before = (m._opt_state.t, m._opt_state.lr)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _fit(m, "partial_fit", bad, y)
    assert (m._opt_state.t, m._opt_state.lr) == t_before
    _fit(m, "partial_fit", X, y)
    _fit(twin, "partial_fit", X, y)
    _same(_state(m), _state(twin))
