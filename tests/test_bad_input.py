"""Bad input at every public entry point is refused cleanly.

The catalogue of the issue's requirement: whatever is passed to ``fit``,
``partial_fit``, ``predict*`` / ``decision_function`` / ``score`` /
``forward_layers`` / ``loss_and_gradients``, the constructors' parameters (read
at fit time) and the ``pynn.ops`` kernels, a bad value gives a Python exception
of the right class (ValueError, TypeError, MemoryError, NotFittedError, ...)
whose message names the argument and what was wrong -- never a crash, a hang or
a silently wrong result.  A refused fit leaves an unfitted model unfitted and a
fitted model exactly as it was.

The module is table-driven: every parametrized case is one bad input tried at
one entry point of one estimator (ids read ``entry-estimator-case``).  The
number of bad inputs tried is the number of tests collected::

    pytest --collect-only -q tests/test_bad_input.py | tail -1

(``N_CASES`` below holds the same number.)

A bad input gives pynn's exception alone: a RuntimeWarning on the way (NumPy's
"overflow encountered in cast", say) fails the test.
"""
import copy
import io
import pickle
import resource
import signal
import sys
import time
import tracemalloc
import warnings
from typing import Callable, NamedTuple, Tuple

import numpy as np
import pytest

import pynn
from helpers import with_header
from pynn import MLPClassifier, MLPRegressor, NotFittedError, Perceptron, ops

KINDS = ("clf", "reg", "perc")
MLP = ("clf", "reg")
CLASSIFIERS = ("clf", "perc")
CLASSES = {"clf": MLPClassifier, "reg": MLPRegressor, "perc": Perceptron}

N_SAMPLES, N_FEATURES = 20, 3
_RNG = np.random.default_rng(0)
X_GOOD = _RNG.standard_normal((N_SAMPLES, N_FEATURES))
Y_GOOD = {
    "clf": np.arange(N_SAMPLES) % 2,
    "perc": np.arange(N_SAMPLES) % 2,
    "reg": X_GOOD @ np.array([1.0, -2.0, 0.5]),
}


def make(kind, **params):
    """A small, fast, deterministic estimator (single-threaded: these fits
    are tiny) with `params` on top."""
    base = dict(max_iter=2, tol=None, random_state=0, n_threads=1)
    if kind != "perc":
        base["hidden_layer_sizes"] = (4,)
    return CLASSES[kind](**{**base, **params})


def good_data(kind):
    return X_GOOD.copy(), Y_GOOD[kind].copy()


def fitted(kind, **params):
    return make(kind, **params).fit(*good_data(kind))


def weights_of(m):
    if isinstance(m, Perceptron):
        return [m.coef_, m.intercept_]
    return list(m.coefs_) + list(m.intercepts_)


def assert_unfitted(m):
    """A refused first fit must not leave a half-fitted model behind."""
    assert not hasattr(m, "coefs_") and not hasattr(m, "coef_"), \
        "a refused fit left weights on an unfitted model"
    with pytest.raises(NotFittedError, match="not fitted"):
        m.predict(X_GOOD)


def with_value(a, value, at=(3, 1)):
    a = np.array(a, dtype=float)
    a[at] = value
    return a


def _sparse(X):
    import scipy.sparse

    return scipy.sparse.csr_matrix(X)


def _ragged(_X):
    return [[1.0, 2.0, 3.0], [4.0, 5.0]] * (N_SAMPLES // 2)


def _obj_strings(X):
    out = X.astype(object)
    out[2, 2] = "a"
    return out


def _obj_none(X):
    out = X.astype(object)
    out[2, 2] = None
    return out


def _datetime(X):
    return np.arange(X.size).reshape(X.shape).astype("datetime64[s]")


pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


@pytest.fixture(autouse=True)
def _no_hang():
    """A bad input that makes pynn hang fails the test instead of the run."""
    if not hasattr(signal, "SIGALRM") or sys.platform == "win32":
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError("pynn hung on a bad input (more than 20 s)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ============================================================================
# 1. bad data at fit / partial_fit
# ============================================================================

class Case(NamedTuple):
    id: str
    kinds: Tuple[str, ...]
    build: Callable            # (X, y) -> (X, y, kwargs for the call)
    exc: type
    match: str
    entries: Tuple[str, ...] = ("fit", "partial_fit")
    first_only: bool = False   # bad only on a model's first fit (not warm_start/partial_fit)
    params: dict = {}


def _X(fn):
    return lambda X, y: (fn(X), y, {})


def _y(fn):
    return lambda X, y: (X, fn(y), {})


def _sw(fn):
    return lambda X, y: (X, y, {"sample_weight": fn(len(y))})


NONFINITE_X = r"X contains NaN or infinity"


def too_large(name):
    """pynn's message for finite values beyond float32's range (not NaN's)."""
    return (rf"^{name} has values too large for float32 \(the largest finite float32 is "
            rf"3\.403e\+38\); scale them or use dtype='float64'$")


FIT_CASES = [
    # ---- X: values
    Case("X-nan", KINDS, _X(lambda X: with_value(X, np.nan)), ValueError, NONFINITE_X),
    Case("X-posinf", KINDS, _X(lambda X: with_value(X, np.inf)), ValueError, NONFINITE_X),
    Case("X-neginf", KINDS, _X(lambda X: with_value(X, -np.inf)), ValueError, NONFINITE_X),
    Case("X-object-with-None", KINDS, _X(_obj_none), ValueError, NONFINITE_X),
    Case("X-too-large-for-float32", KINDS, _X(lambda X: X * 1e300), ValueError,
         too_large("X")),
    Case("X-one-value-1e39", KINDS, _X(lambda X: with_value(X, 1e39)), ValueError,
         too_large("X")),
    Case("X-one-value-minus-1e39", KINDS, _X(lambda X: with_value(X, -1e39)), ValueError,
         too_large("X")),
    Case("X-object-with-1e39", KINDS, _X(lambda X: with_value(X, 1e39).astype(object)),
         ValueError, too_large("X")),
    # ---- X: shape
    Case("X-1d", KINDS, _X(lambda X: X[:, 0]), ValueError, r"2-D array for X, got 1-D"),
    Case("X-3d", KINDS, _X(lambda X: X[:, :, None]), ValueError, r"2-D array for X, got 3-D"),
    Case("X-0d-scalar", KINDS, _X(lambda X: np.float64(1.0)), ValueError,
         r"2-D array for X, got 0-D"),
    Case("X-None", KINDS, _X(lambda X: None), ValueError, r"X must be an array-like, got None"),
    Case("X-zero-samples", KINDS, lambda X, y: (X[:0], y[:0], {}), ValueError,
         r"0 sample\(s\).*X is empty"),
    Case("X-zero-features", KINDS, _X(lambda X: X[:, :0]), ValueError,
         r"0 feature\(s\).*X has no features"),
    Case("X-ragged-list", KINDS, _X(_ragged), ValueError, r"X could not be converted"),
    # ---- X: type
    Case("X-str-array", KINDS, _X(lambda X: X.astype(str)), TypeError, r"X must be numeric"),
    Case("X-object-array-with-str", KINDS, _X(_obj_strings), TypeError, r"X must be numeric"),
    Case("X-a-string", KINDS, _X(lambda X: "not an array"), TypeError, r"X must be numeric"),
    Case("X-complex", KINDS, _X(lambda X: X + 1j), ValueError,
         r"Complex data not supported: X must be real"),
    Case("X-datetime", KINDS, _X(_datetime), TypeError, r"X has unsupported dtype"),
    # ---- X: sparse (taken as CSR; the same checks on the stored values)
    Case("X-sparse-nan", KINDS, _X(lambda X: _sparse(with_value(X, np.nan))), ValueError,
         NONFINITE_X),
    Case("X-sparse-inf", KINDS, _X(lambda X: _sparse(with_value(X, np.inf))), ValueError,
         NONFINITE_X),
    Case("X-sparse-too-large-for-float32", KINDS, _X(lambda X: _sparse(X * 1e300)), ValueError,
         too_large("X")),
    Case("X-sparse-one-value-1e39", KINDS, _X(lambda X: _sparse(with_value(X, 1e39))),
         ValueError, too_large("X")),
    Case("X-sparse-complex", KINDS, _X(lambda X: _sparse(X + 1j)), ValueError,
         r"Complex data not supported: X must be real"),
    Case("X-sparse-zero-features", KINDS, _X(lambda X: _sparse(X[:, :0])), ValueError,
         r"0 feature\(s\).*X has no features"),
    # ---- y: missing or of the wrong length
    Case("y-None", KINDS, _y(lambda y: None), ValueError, r"requires y to be passed"),
    Case("y-shorter-than-X", KINDS, _y(lambda y: y[:-1]), ValueError,
         r"X and y have different numbers of samples: 20 and 19"),
    Case("y-longer-than-X", KINDS, _y(lambda y: np.concatenate([y, y[:1]])), ValueError,
         r"X and y have different numbers of samples: 20 and 21"),
    Case("y-empty", KINDS, _y(lambda y: y[:0]), ValueError,
         r"X and y have different numbers of samples: 20 and 0"),
    # ---- y: values
    Case("y-nan", KINDS, _y(lambda y: with_value(y, np.nan, at=4)), ValueError,
         r"y contains NaN"),
    Case("y-inf", KINDS, _y(lambda y: with_value(y, np.inf, at=4)), ValueError,
         r"y contains NaN.*infinity"),
    Case("y-too-large-for-float32", ("reg",), _y(lambda y: y * 1e300), ValueError,
         too_large("y")),
    Case("y-one-value-1e39", ("reg",), _y(lambda y: with_value(y, 1e39, at=4)), ValueError,
         too_large("y")),
    Case("y-complex", KINDS, _y(lambda y: y + 1j), ValueError, r"(?i)\by\b.*complex"),
    Case("y-str-for-regression", ("reg",), _y(lambda y: y.astype(str)), TypeError,
         r"y must be numeric"),
    Case("y-datetime-for-regression", ("reg",),
         _y(lambda y: np.arange(len(y)).astype("datetime64[s]")), TypeError,
         r"y must be numeric"),
    Case("y-continuous-labels", CLASSIFIERS, _y(lambda y: y + 0.5), ValueError,
         r"Unknown label type: continuous"),
    Case("y-None-label", CLASSIFIERS,
         _y(lambda y: np.array(["a", "b"] * 9 + ["a", None], dtype=object)), ValueError,
         r"y contains None or NaN labels"),
    Case("y-mixed-label-types", CLASSIFIERS,
         _y(lambda y: np.array([0, "a"] * 10, dtype=object)), TypeError, r"\by\b"),
    # (MLPClassifier fits one class, as scikit-learn does: tests/test_sklearn_parity.py)
    Case("y-single-class", ("perc",), _y(np.zeros_like), ValueError,
         r"y has only one class", entries=("fit",), first_only=True),
    Case("y-multilabel-not-0-1", ("clf",),
         _y(lambda y: np.column_stack([y, y * 2, 1 - y])), ValueError,
         r"multilabel indicator matrix of 0s and 1s"),
    # ---- y: shape
    Case("y-3d", KINDS, _y(lambda y: y[:, None, None]), ValueError, r"y must be 1-D"),
    Case("y-0d-scalar", KINDS, _y(lambda y: y[0]), ValueError, r"y must be 1-D"),
    Case("y-2d-for-perceptron", ("perc",), _y(lambda y: np.column_stack([y, 1 - y])),
         ValueError, r"y must be 1-D"),
    # ---- sample_weight
    Case("sample_weight-shorter", KINDS, _sw(lambda n: np.ones(n - 1)), ValueError,
         r"sample_weight must have shape \(20,\)"),
    Case("sample_weight-2d", KINDS, _sw(lambda n: np.ones((n, 1))), ValueError,
         r"sample_weight must have shape \(20,\)"),
    Case("sample_weight-negative", KINDS, _sw(lambda n: with_value(np.ones(n), -1.0, at=2)),
         ValueError, r"sample_weight must be non-negative"),
    Case("sample_weight-negative-scalar", KINDS, _sw(lambda n: -1.0), ValueError,
         r"sample_weight must be non-negative"),
    Case("sample_weight-nan", KINDS, _sw(lambda n: with_value(np.ones(n), np.nan, at=2)),
         ValueError, r"sample_weight contains NaN or infinity"),
    Case("sample_weight-inf", KINDS, _sw(lambda n: with_value(np.ones(n), np.inf, at=2)),
         ValueError, r"sample_weight contains NaN or infinity"),
    Case("sample_weight-too-large-for-float32", KINDS,
         _sw(lambda n: with_value(np.ones(n), 1e39, at=2)), ValueError,
         too_large("sample_weight")),
    Case("sample_weight-all-zero", KINDS, _sw(np.zeros), ValueError,
         r"sample_weight sums to zero"),
    Case("sample_weight-zero-scalar", KINDS, _sw(lambda n: 0.0), ValueError,
         r"sample_weight sums to zero"),
    Case("sample_weight-str", KINDS, _sw(lambda n: np.array(["1"] * n)), TypeError,
         r"sample_weight must be numeric"),
    Case("sample_weight-complex", KINDS, _sw(lambda n: np.ones(n) + 1j), TypeError,
         r"sample_weight must be numeric"),
    # ---- early stopping
    Case("early_stopping-validation-set-too-small", MLP, lambda X, y: (X, y, {}), ValueError,
         r"validation set is too small", entries=("fit",),
         params=dict(early_stopping=True, validation_fraction=0.05)),
    Case("early_stopping-zero-weight-validation-rows", MLP,
         lambda X, y: (X, y, {"sample_weight": np.r_[1.0, np.zeros(19)]}), ValueError,
         r"sample_weight is zero on every row held out|sample_weight is zero on every training",
         entries=("fit",), params=dict(early_stopping=True, validation_fraction=0.5)),
    # ---- partial_fit only
    Case("early_stopping-with-partial_fit", MLP, lambda X, y: (X, y, {}), ValueError,
         r"partial_fit does not support early_stopping", entries=("partial_fit",),
         params=dict(early_stopping=True)),
    Case("classes-missing-on-first-call", CLASSIFIERS, lambda X, y: (X, y, {"classes": None}),
         ValueError, r"classes must be passed on the first call", entries=("partial_fit",),
         first_only=True),
    Case("labels-not-in-classes", CLASSIFIERS,
         lambda X, y: (X, with_value(y, 2, at=5).astype(int), {"classes": [0, 1]}),
         ValueError, r"y contains labels not in classes_", entries=("partial_fit",)),
    Case("classes-single", ("perc",), lambda X, y: (X, np.zeros_like(y), {"classes": [0]}),
         ValueError, r"only one class", entries=("partial_fit",), first_only=True),
    Case("classes-with-nan", CLASSIFIERS, lambda X, y: (X, y, {"classes": [0.0, 1.0, np.nan]}),
         ValueError, r"classes.*NaN|NaN.*classes", entries=("partial_fit",), first_only=True),
]


def _fit_params():
    out = []
    for case in FIT_CASES:
        for kind in case.kinds:
            for entry in case.entries:
                out.append(pytest.param(case, kind, entry, id=f"{entry}-{kind}-{case.id}"))
    return out


FIT_PARAMS = _fit_params()


def call_fit(m, kind, entry, X, y, kw):
    kw = dict(kw)
    if entry == "partial_fit" and kind in CLASSIFIERS and "classes" not in kw \
            and not hasattr(m, "_layout"):
        kw["classes"] = [0, 1]
    if "classes" in kw and kw["classes"] is None:
        del kw["classes"]
    if entry == "partial_fit":
        return m.partial_fit(X, y, **kw)
    return m.fit(X, y, **kw)


@pytest.mark.parametrize("case,kind,entry", FIT_PARAMS)
def test_bad_data_at_fit(case, kind, entry):
    X, y, kw = case.build(*good_data(kind))
    m = make(kind, **case.params)
    with pytest.raises(case.exc, match=case.match):
        call_fit(m, kind, entry, X, y, kw)
    assert_unfitted(m)


# ============================================================================
# 2. bad hyperparameters (accepted by the constructor, refused at fit time)
# ============================================================================

class Param(NamedTuple):
    name: str
    value: object
    exc: type
    match: str
    kinds: Tuple[str, ...] = KINDS


def _p(name, values, exc, match, kinds=KINDS):
    return [Param(name, v, exc, match, kinds) for v in values]


_NAN, _INF = float("nan"), float("inf")

BAD_PARAMS = [
    # hidden_layer_sizes (absurdly large sizes: test_absurd_layer_fails_fast)
    *_p("hidden_layer_sizes", [(0,), (5, -3), 0, -1, (4, 0, 4)], ValueError,
        r"hidden_layer_sizes entries must be >= 1", MLP),
    *_p("hidden_layer_sizes", [(2.5,), (5, None), ("10",), "10", (True,), (_NAN,), ((5,),)],
        TypeError, r"hidden_layer_sizes entries must be an integer", MLP),
    *_p("hidden_layer_sizes", [2.5, None, True, _NAN], TypeError,
        r"hidden_layer_sizes must be an int or a sequence of ints", MLP),
    # activation, solver, learning_rate
    *_p("activation", ["softplus", "softmax", "step", "RELU", None, 1], ValueError,
        r"activation must be one of", MLP),
    *_p("activation", ["relu", "tanh", "Logistic", None], ValueError,
        r"activation must be one of", ("perc",)),
    *_p("solver", ["newton", "SGD", None, 0], ValueError, r"solver must be one of", MLP),
    *_p("max_fun", [0, -1], ValueError, r"max_fun must be >= 1", MLP),
    *_p("max_fun", [2.5, "many"], TypeError, r"max_fun must be an integer", MLP),
    *_p("loss", ["log_loss", None, "Poisson"], ValueError, r"loss must be one of", ("reg",)),
    *_p("learning_rate", ["fast", None], ValueError, r"learning_rate must be one of", MLP),
    # real-valued
    *_p("alpha", [-1e-4], ValueError, r"alpha must be >= 0", MLP),
    *_p("alpha", [_NAN, _INF], ValueError, r"alpha must be finite", MLP),
    *_p("alpha", ["0.1", None], TypeError, r"alpha must be a real number", MLP),
    *_p("learning_rate_init", [0, 0.0, -0.1], ValueError, r"learning_rate_init must be > 0"),
    *_p("learning_rate_init", [_NAN, _INF], ValueError, r"learning_rate_init must be finite"),
    *_p("learning_rate_init", ["0.1", None], TypeError,
        r"learning_rate_init must be a real number"),
    *_p("power_t", [-0.5], ValueError, r"power_t must be >= 0", MLP),
    *_p("power_t", [_NAN], ValueError, r"power_t must be finite", MLP),
    *_p("tol", [-1.0], ValueError, r"tol must be >= 0"),
    *_p("tol", [_NAN, _INF], ValueError, r"tol must be finite"),
    *_p("tol", ["small"], TypeError, r"tol must be a real number"),
    *_p("momentum", [1.5, -0.1], ValueError, r"momentum must be (<=|>=)", MLP),
    *_p("momentum", [_NAN], ValueError, r"momentum must be finite", MLP),
    *_p("beta_1", [1.0], ValueError, r"beta_1 must be < 1", MLP),
    *_p("beta_1", [-0.1], ValueError, r"beta_1 must be >= 0", MLP),
    *_p("beta_1", [_NAN], ValueError, r"beta_1 must be finite", MLP),
    *_p("beta_2", [1.0], ValueError, r"beta_2 must be < 1", MLP),
    *_p("beta_2", [-0.1], ValueError, r"beta_2 must be >= 0", MLP),
    *_p("epsilon", [0, 0.0, -1e-8], ValueError, r"epsilon must be > 0", MLP),
    *_p("epsilon", [_NAN], ValueError, r"epsilon must be finite", MLP),
    *_p("validation_fraction", [0.0, 1.0, -0.1, 1.5], ValueError,
        r"validation_fraction must be", MLP),
    *_p("validation_fraction", [_NAN], ValueError, r"validation_fraction must be finite", MLP),
    *_p("validation_fraction", ["0.1"], TypeError, r"validation_fraction must be a real", MLP),
    # integers
    *_p("max_iter", [0, -5], ValueError, r"max_iter must be >= 1"),
    *_p("max_iter", [2.5, None, _INF, "10", True], TypeError, r"max_iter must be an integer"),
    *_p("n_iter_no_change", [0, -1], ValueError, r"n_iter_no_change must be >= 1"),
    *_p("n_iter_no_change", [2.5, -np.inf, np.nan], TypeError,
        r"n_iter_no_change must be an integer"),
    *_p("batch_size", [0, -1], ValueError, r"batch_size must be >= 1"),
    *_p("batch_size", ["big", ""], ValueError, r"batch_size must be 'auto', None or a positive"),
    *_p("batch_size", [2.5, True], TypeError, r"batch_size must be an integer"),
    *_p("verbose", [-1], ValueError, r"verbose must be >= 0"),
    *_p("verbose", ["loud", 1.5], TypeError, r"verbose must be an integer"),
    *_p("n_threads", [0, -1], ValueError, r"n_threads must be >= 1"),
    *_p("n_threads", [10**6, 2**70], ValueError, r"n_threads must be <= 4096"),
    *_p("n_threads", [2.5, "4", True], TypeError, r"n_threads must be an integer"),
    # booleans
    *_p("shuffle", ["yes", None], TypeError, r"shuffle must be True or False"),
    *_p("warm_start", ["yes"], TypeError, r"warm_start must be True or False"),
    *_p("nesterovs_momentum", ["no"], TypeError, r"nesterovs_momentum must be True or False",
        MLP),
    *_p("early_stopping", ["yes"], TypeError, r"early_stopping must be True or False", MLP),
    # random_state
    *_p("random_state", [-1, 2**32], ValueError, r"random_state must be in \[0, 2\*\*32\)"),
    *_p("random_state", ["seed", 1.5, True, np.random.default_rng(0)], TypeError,
        r"random_state must be None, an int or a RandomState"),
    # dtype
    *_p("dtype", ["float16", "int", "int32", np.int64, "float128", "complex128", "nonsense",
                  object, 32], ValueError, r"dtype must be 'float32', 'float64', 'bfloat16' or None"),
]


def _param_id(p):
    v = p.value
    if isinstance(v, float) and v != v:
        text = "nan"
    elif isinstance(v, type):
        text = v.__name__
    elif isinstance(v, np.random.Generator):
        text = "Generator"
    elif isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**6:
        text = f"2**{v.bit_length() - 1}" if v & (v - 1) == 0 else f"{v:.0e}"
    else:
        text = repr(v)
    return f"{p.name}={text}"


def _param_params(entries_for):
    out = []
    for p in BAD_PARAMS:
        for kind in p.kinds:
            for entry in entries_for(kind):
                out.append(pytest.param(p, kind, entry, id=f"{entry}-{kind}-{_param_id(p)}"))
    return out


PARAM_PARAMS = _param_params(lambda kind: ("fit", "partial_fit"))


@pytest.mark.parametrize("p,kind,entry", PARAM_PARAMS)
def test_bad_hyperparameter_at_fit(p, kind, entry):
    m = make(kind, **{p.name: p.value})  # the constructor accepts anything, as in sklearn
    with pytest.raises(p.exc, match=p.match):
        call_fit(m, kind, entry, *good_data(kind), {})
    assert_unfitted(m)


ABSURD_LAYERS = [10**10, (10**6, 10**6), (3, 10**10), (10**5, 10**5, 10**5), 2**62, 10**30]


@pytest.mark.parametrize("entry", ["fit", "partial_fit"])
@pytest.mark.parametrize("kind", MLP)
@pytest.mark.parametrize("sizes", ABSURD_LAYERS, ids=lambda s: f"hidden_layer_sizes={s!r}")
def test_absurd_layer_fails_fast(sizes, kind, entry):
    """A layer of 10**10 units must be refused at once, before any allocation."""
    m = make(kind, hidden_layer_sizes=sizes)
    X, y = good_data(kind)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises((MemoryError, ValueError), match=r"hidden_layer_sizes"):
            call_fit(m, kind, entry, X, y, {})
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert elapsed < 1.0, f"refusing hidden_layer_sizes={sizes!r} took {elapsed:.2f} s"
    assert peak < 16 * 2**20, f"refusing it allocated {peak / 2**20:.0f} MiB first"
    assert rss_growth < 64 * 2**10, f"the process grew by {rss_growth / 2**10:.0f} MiB"
    assert_unfitted(m)


# ============================================================================
# 3. a refused fit on a fitted model leaves it exactly as it was
# ============================================================================

def snapshot(m):
    return dict(weights=[np.array(w, copy=True) for w in weights_of(m)],
                n_iter=m.n_iter_, n_features=m.n_features_in_,
                classes=np.array(getattr(m, "classes_", []), copy=True),
                predictions=np.asarray(m.predict(X_GOOD)).copy())


def assert_unchanged(m, before):
    after = snapshot(m)
    assert len(after["weights"]) == len(before["weights"])
    for w0, w1 in zip(before["weights"], after["weights"]):
        assert w1.shape == w0.shape and w1.dtype == w0.dtype
        assert np.isfinite(w1).all()
        np.testing.assert_array_equal(w1, w0)
    assert after["n_iter"] == before["n_iter"]
    assert after["n_features"] == before["n_features"]
    np.testing.assert_array_equal(after["classes"], before["classes"])
    np.testing.assert_array_equal(after["predictions"], before["predictions"])


# Bad only for a model that has been fitted: they contradict the first fit.
LATER_CASES = [
    Case("X-fewer-features-than-fitted", KINDS, _X(lambda X: X[:, :2]), ValueError,
         r"X has 2 features, but \w+ is expecting 3 features"),
    Case("X-more-features-than-fitted", KINDS, _X(lambda X: np.hstack([X, X])), ValueError,
         r"X has 6 features, but \w+ is expecting 3 features"),
    Case("labels-not-in-fitted-classes", CLASSIFIERS,
         _y(lambda y: with_value(y, 2, at=5).astype(int)), ValueError,
         r"y contains labels (not in|other than) classes_|warm_start can only be used where "
         r"`y` has the same classes"),
    Case("multilabel-after-1d-labels", ("clf",),
         _y(lambda y: np.column_stack([y, 1 - y, y])), ValueError, r"y has 3 columns"),
    Case("more-targets-than-fitted", ("reg",), _y(lambda y: np.column_stack([y, y])),
         ValueError, r"y has 2 targets, expected 1"),
    Case("dtype-changed-between-fits", MLP, lambda X, y: (X, y, {}), ValueError,
         r"dtype changed from float32 to float64", params=dict(dtype="float64")),
    Case("classes-changed-between-partial_fits", CLASSIFIERS,
         lambda X, y: (X, y, {"classes": [0, 1, 2]}), ValueError, r"classes",
         entries=("partial_fit",)),
]

_ENTRIES_ON_FITTED = {"refit": "fit", "warm_start": "fit", "partial_fit": "partial_fit"}


def _fitted_params():
    out = []
    for case in FIT_CASES + LATER_CASES:
        later = case in LATER_CASES
        for kind in case.kinds:
            for how, entry in _ENTRIES_ON_FITTED.items():
                if entry not in case.entries:
                    continue
                if how != "refit" and case.first_only:
                    continue
                if how == "refit" and later:
                    continue  # a refit from scratch may change all of these
                out.append(pytest.param(case, kind, how, id=f"{how}-{kind}-{case.id}"))
    return out


FITTED_PARAMS = _fitted_params()
_FITTED_CACHE = {}


def fresh_fitted(kind):
    """A deep copy of a fitted model (fitted once per kind)."""
    if kind not in _FITTED_CACHE:
        _FITTED_CACHE[kind] = fitted(kind)
    return copy.deepcopy(_FITTED_CACHE[kind])


@pytest.mark.parametrize("case,kind,how", FITTED_PARAMS)
def test_refused_fit_leaves_fitted_model_unchanged(case, kind, how):
    m = fresh_fitted(kind)
    before = snapshot(m)
    X, y, kw = case.build(*good_data(kind))
    m.set_params(warm_start=(how == "warm_start"), **case.params)
    with pytest.raises(case.exc, match=case.match):
        call_fit(m, kind, _ENTRIES_ON_FITTED[how], X, y, kw)
    m.set_params(**{k: make(kind).get_params()[k] for k in case.params})
    assert_unchanged(m, before)


_REFIT_PARAM_PARAMS = [pytest.param(p, kind, id=f"refit-{kind}-{_param_id(p)}")
                       for p in BAD_PARAMS for kind in p.kinds]


@pytest.mark.parametrize("p,kind", _REFIT_PARAM_PARAMS)
def test_refused_hyperparameter_leaves_fitted_model_unchanged(p, kind):
    m = fresh_fitted(kind)
    before = snapshot(m)
    m.set_params(**{p.name: p.value})
    with pytest.raises(p.exc, match=p.match):
        m.fit(*good_data(kind))
    m.set_params(**{p.name: make(kind).get_params()[p.name]})
    assert_unchanged(m, before)


# ============================================================================
# 4. predict*, decision_function, score, forward_layers, loss_and_gradients
# ============================================================================

METHODS = {
    "clf": ("predict", "predict_proba", "predict_log_proba", "score", "forward_layers",
            "loss_and_gradients"),
    "reg": ("predict", "score", "forward_layers", "loss_and_gradients"),
    "perc": ("predict", "predict_proba", "decision_function", "score", "forward_layers",
             "loss_and_gradients"),
}


_GOOD_Y = object()


def call_method(m, method, X, y=_GOOD_Y, **kw):
    if method in ("score", "loss_and_gradients"):
        return getattr(m, method)(X, Y_GOOD[KIND_OF[type(m)]] if y is _GOOD_Y else y, **kw)
    return getattr(m, method)(X)


KIND_OF = {v: k for k, v in CLASSES.items()}


class XCase(NamedTuple):
    id: str
    build: Callable
    exc: type
    match: str


PREDICT_X_CASES = [
    XCase("X-nan", lambda X: with_value(X, np.nan), ValueError, NONFINITE_X),
    XCase("X-posinf", lambda X: with_value(X, np.inf), ValueError, NONFINITE_X),
    XCase("X-neginf", lambda X: with_value(X, -np.inf), ValueError, NONFINITE_X),
    XCase("X-object-with-None", _obj_none, ValueError, NONFINITE_X),
    XCase("X-too-large-for-float32", lambda X: X * 1e300, ValueError, too_large("X")),
    XCase("X-one-value-1e39", lambda X: with_value(X, 1e39), ValueError, too_large("X")),
    XCase("X-sparse-one-value-1e39", lambda X: _sparse(with_value(X, 1e39)), ValueError,
          too_large("X")),
    XCase("X-1d", lambda X: X[0], ValueError, r"2-D array for X, got 1-D"),
    XCase("X-3d", lambda X: X[:, :, None], ValueError, r"2-D array for X, got 3-D"),
    XCase("X-0d-scalar", lambda X: np.float64(1.0), ValueError, r"2-D array for X, got 0-D"),
    XCase("X-None", lambda X: None, ValueError, r"X must be an array-like, got None"),
    XCase("X-zero-samples", lambda X: X[:0], ValueError, r"0 sample\(s\).*X is empty"),
    XCase("X-zero-features", lambda X: X[:, :0], ValueError, r"0 feature\(s\)"),
    XCase("X-fewer-features", lambda X: X[:, :2], ValueError,
          r"X has 2 features, but \w+ is expecting 3 features"),
    XCase("X-more-features", lambda X: np.hstack([X, X]), ValueError,
          r"X has 6 features, but \w+ is expecting 3 features"),
    XCase("X-ragged-list", _ragged, ValueError, r"X could not be converted"),
    XCase("X-str-array", lambda X: X.astype(str), TypeError, r"X must be numeric"),
    XCase("X-object-array-with-str", _obj_strings, TypeError, r"X must be numeric"),
    XCase("X-complex", lambda X: X + 1j, ValueError, r"Complex data not supported: X"),
    XCase("X-datetime", _datetime, TypeError, r"X has unsupported dtype"),
    XCase("X-sparse-nan", lambda X: _sparse(with_value(X, np.nan)), ValueError, NONFINITE_X),
    XCase("X-sparse-inf", lambda X: _sparse(with_value(X, -np.inf)), ValueError, NONFINITE_X),
    XCase("X-sparse-fewer-features", lambda X: _sparse(X[:, :2]), ValueError,
          r"X has 2 features, but \w+ is expecting 3 features"),
    XCase("X-sparse-more-features", lambda X: _sparse(np.hstack([X, X])), ValueError,
          r"X has 6 features, but \w+ is expecting 3 features"),
]

PREDICT_PARAMS = [pytest.param(case, kind, method, id=f"{method}-{kind}-{case.id}")
                  for case in PREDICT_X_CASES for kind in KINDS for method in METHODS[kind]]


@pytest.fixture(scope="module")
def models():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {kind: fitted(kind) for kind in KINDS}


@pytest.mark.parametrize("case,kind,method", PREDICT_PARAMS)
def test_bad_X_at_predict(models, case, kind, method):
    m = models[kind]
    before = [w.copy() for w in weights_of(m)]
    with pytest.raises(case.exc, match=case.match):
        call_method(m, method, case.build(X_GOOD.copy()))
    for w0, w1 in zip(before, weights_of(m)):
        np.testing.assert_array_equal(w1, w0)


UNFITTED_PARAMS = [pytest.param(kind, method, id=f"{method}-{kind}-before-fit")
                   for kind in KINDS for method in METHODS[kind]]


@pytest.mark.parametrize("kind,method", UNFITTED_PARAMS)
def test_use_before_fit(kind, method):
    m = make(kind)
    with pytest.raises(NotFittedError, match=r"not fitted yet.*Call 'fit'"):
        call_method(m, method, X_GOOD)


class YCase(NamedTuple):
    id: str
    kinds: Tuple[str, ...]
    build: Callable            # (y) -> (y, kwargs)
    exc: type
    match: str
    methods: Tuple[str, ...] = ("score", "loss_and_gradients")


_n = N_SAMPLES
Y_CASES = [
    YCase("y-None", KINDS, lambda y: (None, {}), ValueError,
          r"\by\b.*(None|must be 1-D|to be passed)"),
    YCase("y-shorter-than-X", KINDS, lambda y: (y[:-1], {}), ValueError,
          r"X and y have different numbers of samples: 20 and 19"),
    YCase("y-nan", KINDS, lambda y: (with_value(y, np.nan, at=4), {}), ValueError,
          r"y contains NaN"),
    YCase("y-str-for-regression", ("reg",), lambda y: (y.astype(str), {}), TypeError,
          r"y must be numeric"),
    YCase("y-two-targets-for-one", ("reg",), lambda y: (np.column_stack([y, y]), {}),
          ValueError, r"y has 2 targets, expected 1"),
    YCase("y-2d-labels", CLASSIFIERS, lambda y: (np.column_stack([y, y, y]), {}), ValueError,
          r"y (must be 1-D|has 3 columns)"),
    YCase("y-labels-not-in-classes", CLASSIFIERS,
          lambda y: (with_value(y, 2, at=5).astype(int), {}), ValueError,
          r"y contains labels (not in|other than) classes_", methods=("loss_and_gradients",)),
    YCase("sample_weight-shorter", KINDS, lambda y: (y, {"sample_weight": np.ones(_n - 1)}),
          ValueError, r"sample_weight must have shape \(20,\)", methods=("score",)),
    YCase("sample_weight-nan", KINDS,
          lambda y: (y, {"sample_weight": with_value(np.ones(_n), np.nan, at=2)}),
          ValueError, r"sample_weight contains NaN", methods=("score",)),
    YCase("sample_weight-all-zero", KINDS, lambda y: (y, {"sample_weight": np.zeros(_n)}),
          ValueError, r"sample_weight sums to zero", methods=("score",)),
    YCase("sample_weight-str", KINDS, lambda y: (y, {"sample_weight": np.array(["1"] * _n)}),
          TypeError, r"sample_weight must be numeric", methods=("score",)),
]

Y_PARAMS = [pytest.param(case, kind, method, id=f"{method}-{kind}-{case.id}")
            for case in Y_CASES for kind in case.kinds for method in case.methods]


@pytest.mark.parametrize("case,kind,method", Y_PARAMS)
def test_bad_y_or_sample_weight_after_fit(models, case, kind, method):
    y, kw = case.build(Y_GOOD[kind].copy())
    with pytest.raises(case.exc, match=case.match):
        call_method(models[kind], method, X_GOOD.copy(), y, **kw)


# ============================================================================
# 5. other misuse: DataFrame column names, unavailable methods, set_params
# ============================================================================

def _df_names_mismatch(kind):
    pd = pytest.importorskip("pandas")
    cols = ["a", "b", "c"]
    m = make(kind).fit(pd.DataFrame(X_GOOD, columns=cols), Y_GOOD[kind])
    m.predict(pd.DataFrame(X_GOOD, columns=["a", "b", "z"]))


def _df_mixed_names(kind):
    pd = pytest.importorskip("pandas")
    make(kind).fit(pd.DataFrame(X_GOOD, columns=["a", 1, "c"]), Y_GOOD[kind])


def _step_predict_proba(kind):
    make(kind, activation="step").fit(*good_data(kind)).predict_proba(X_GOOD)


def _unknown_param(kind):
    make(kind).set_params(hiden_layer_sizes=(3,))


def _unknown_constructor_param(kind):
    CLASSES[kind](not_a_param=1)


MISC_CASES = [
    ("predict-with-other-feature-names", KINDS, _df_names_mismatch, ValueError,
     r"feature names should match"),
    ("fit-with-mixed-type-feature-names", KINDS, _df_mixed_names, TypeError,
     r"Feature names are only supported if all input features have string names"),
    ("predict_proba-of-a-step-perceptron", ("perc",), _step_predict_proba, AttributeError,
     r"predict_proba is available only with activation='logistic'"),
    ("set_params-unknown-name", KINDS, _unknown_param, ValueError,
     r"Invalid parameter 'hiden_layer_sizes'"),
    ("constructor-unknown-keyword", KINDS, _unknown_constructor_param, TypeError,
     r"not_a_param"),
]

MISC_PARAMS = [pytest.param(fn, kind, exc, match, id=f"{kind}-{cid}")
               for cid, kinds, fn, exc, match in MISC_CASES for kind in kinds]


@pytest.mark.parametrize("fn,kind,exc,match", MISC_PARAMS)
def test_misuse(fn, kind, exc, match):
    with pytest.raises(exc, match=match):
        fn(kind)


# ============================================================================
# 6. pynn.ops kernels: mismatched shapes and dtypes, bad scalars
# ============================================================================

def f64(*shape):
    return np.ones(shape)


def f32(*shape):
    return np.ones(shape, dtype=np.float32)


def _readonly(a):
    a.setflags(write=False)
    return a


def _sgd(params=None, velocity=None, grads=None, **kw):
    params = f64(4) if params is None else params
    velocity = np.zeros(4) if velocity is None else velocity
    grads = f64(4) if grads is None else grads
    ops.sgd_update(params, velocity, grads, **{"lr": 0.1, **kw})


def _adam(params=None, m=None, v=None, grads=None, **kw):
    params = f64(4) if params is None else params
    m = np.zeros(4) if m is None else m
    v = np.zeros(4) if v is None else v
    grads = f64(4) if grads is None else grads
    ops.adam_update(params, m, v, grads, **{"lr": 0.1, **kw})


def _df(x=None, W=None, b=None, **kw):
    return ops.dense_forward(f64(3, 4) if x is None else x, f64(4, 2) if W is None else W,
                             f64(2) if b is None else b, **kw)


def _db(delta=None, x=None, W=None, **kw):
    return ops.dense_backward(f64(3, 2) if delta is None else delta,
                              f64(3, 4) if x is None else x, f64(4, 2) if W is None else W, **kw)


HSE = "half_squared_error"

OPS_CASES = [
    # activation
    ("activation-z-list", lambda: ops.activation([[1.0, 2.0]], "relu"), TypeError,
     r"z must be a NumPy array"),
    ("activation-z-int", lambda: ops.activation(np.ones((2, 2), int), "relu"), TypeError,
     r"z must be float32 or float64"),
    ("activation-z-float16", lambda: ops.activation(np.ones((2, 2), np.float16), "relu"),
     TypeError, r"z must be float32 or float64"),
    ("activation-z-complex", lambda: ops.activation(np.ones((2, 2), complex), "relu"),
     TypeError, r"z must be float32 or float64"),
    ("activation-z-1d", lambda: ops.activation(f64(3), "relu"), ValueError, r"z must be 2-D"),
    ("activation-z-3d", lambda: ops.activation(f64(2, 2, 2), "relu"), ValueError,
     r"z must be 2-D"),
    ("activation-unknown-name", lambda: ops.activation(f64(2, 2), "softplus"), ValueError,
     r"activation must be one of"),
    ("activation-name-None", lambda: ops.activation(f64(2, 2), None), ValueError,
     r"activation must be one of"),
    # activation_backward
    ("activation_backward-shape-mismatch",
     lambda: ops.activation_backward(f64(3, 4), f64(3, 5), "relu"), ValueError,
     r"a has shape \(3, 5\), expected \(3, 4\)"),
    ("activation_backward-dtype-mismatch",
     lambda: ops.activation_backward(f32(3, 4), f64(3, 4), "relu"), TypeError,
     r"a is float64 but the other arrays are float32"),
    ("activation_backward-unknown-name",
     lambda: ops.activation_backward(f64(3, 4), f64(3, 4), "gelu"), ValueError,
     r"activation must be one of"),
    # loss
    ("loss-column-mismatch", lambda: ops.loss(f64(3, 2), f64(3, 3), HSE), ValueError,
     r"y has shape \(3, 3\), expected \(3, 2\)"),
    ("loss-row-mismatch", lambda: ops.loss(f64(3, 2), f64(4, 2), HSE), ValueError,
     r"y has shape \(4, 2\), expected \(3, 2\)"),
    ("loss-dtype-mismatch", lambda: ops.loss(f64(3, 2), f32(3, 2), HSE), TypeError,
     r"y is float32 but the other arrays are float64"),
    ("loss-y-1d", lambda: ops.loss(f64(3, 2), f64(3), HSE), ValueError, r"y must be 2-D"),
    ("loss-unknown-name", lambda: ops.loss(f64(3, 2), f64(3, 2), "hinge"), ValueError,
     r"loss must be one of"),
    ("loss-empty", lambda: ops.loss(f64(0, 2), f64(0, 2), HSE), ValueError, r"\by_hat\b"),
    # output_delta
    ("output_delta-shape-mismatch",
     lambda: ops.output_delta(f64(3, 2), f64(3, 3), "identity", HSE), ValueError,
     r"y has shape \(3, 3\), expected \(3, 2\)"),
    ("output_delta-dtype-mismatch",
     lambda: ops.output_delta(f32(3, 2), f64(3, 2), "identity", HSE), TypeError,
     r"y is float64 but the other arrays are float32"),
    ("output_delta-unknown-activation",
     lambda: ops.output_delta(f64(3, 2), f64(3, 2), "swish", HSE), ValueError,
     r"activation must be one of"),
    ("output_delta-unknown-loss",
     lambda: ops.output_delta(f64(3, 2), f64(3, 2), "identity", "l1"), ValueError,
     r"loss must be one of"),
    ("output_delta-empty",
     lambda: ops.output_delta(f64(0, 2), f64(0, 2), "identity", HSE), ValueError,
     r"\by_hat\b"),
    # dense_forward
    ("dense_forward-W-rows-mismatch", lambda: _df(W=f64(5, 2)), ValueError,
     r"W has shape \(5, 2\), expected \(4, 2\)"),
    ("dense_forward-b-length-mismatch", lambda: _df(b=f64(3)), ValueError,
     r"b has shape \(3,\), expected \(2,\)"),
    ("dense_forward-b-2d", lambda: _df(b=f64(1, 2)), ValueError, r"b must be 1-D"),
    ("dense_forward-x-1d", lambda: _df(x=f64(4)), ValueError, r"x must be 2-D"),
    ("dense_forward-dtype-mismatch", lambda: _df(x=f32(3, 4)), TypeError,
     r"W is float64 but the other arrays are float32"),
    ("dense_forward-x-int", lambda: _df(x=np.ones((3, 4), int)), TypeError,
     r"x must be float32 or float64"),
    ("dense_forward-unknown-activation", lambda: _df(activation="elu"), ValueError,
     r"activation must be one of"),
    ("dense_forward-x-no-rows", lambda: _df(x=f64(0, 4)), ValueError, r"\bx\b"),
    ("dense_forward-x-no-columns", lambda: _df(x=f64(3, 0), W=f64(0, 2)), ValueError, r"\bx\b"),
    ("dense_forward-W-no-columns", lambda: _df(W=f64(4, 0), b=f64(0)), ValueError, r"\bW\b"),
    ("dense_forward-n_threads-0", lambda: _df(n_threads=0), ValueError, r"n_threads"),
    ("dense_forward-n_threads-negative", lambda: _df(n_threads=-2), ValueError, r"n_threads"),
    ("dense_forward-n_threads-huge", lambda: _df(n_threads=10**6), ValueError, r"n_threads"),
    ("dense_forward-n_threads-2**40", lambda: _df(n_threads=2**40), ValueError, r"n_threads"),
    ("dense_forward-n_threads-str", lambda: _df(n_threads="2"), TypeError, r"n_threads"),
    ("dense_forward-n_threads-float", lambda: _df(n_threads=2.0), TypeError, r"n_threads"),
    # dense_backward
    ("dense_backward-delta-columns-mismatch", lambda: _db(delta=f64(3, 3)), ValueError,
     r"delta has shape \(3, 3\), expected \(3, 2\)"),
    ("dense_backward-delta-rows-mismatch", lambda: _db(delta=f64(2, 2)), ValueError,
     r"delta has shape \(2, 2\), expected \(3, 2\)"),
    ("dense_backward-W-rows-mismatch", lambda: _db(W=f64(5, 2), delta=f64(3, 2)), ValueError,
     r"W has shape \(5, 2\), expected \(4, 2\)"),
    ("dense_backward-dtype-mismatch", lambda: _db(W=f32(4, 2)), TypeError,
     r"W is float32 but the other arrays are float64"),
    ("dense_backward-alpha-negative", lambda: _db(alpha=-1.0), ValueError,
     r"alpha must be a finite number >= 0"),
    ("dense_backward-alpha-nan", lambda: _db(alpha=_NAN), ValueError,
     r"alpha must be a finite number >= 0"),
    ("dense_backward-alpha-str", lambda: _db(alpha="x"), TypeError, r"alpha"),
    ("dense_backward-alpha-None", lambda: _db(alpha=None), TypeError, r"alpha"),
    ("dense_backward-empty", lambda: _db(delta=f64(0, 2), x=f64(0, 4)), ValueError,
     r"\b(x|delta)\b"),
    ("dense_backward-n_threads-0", lambda: _db(n_threads=0), ValueError, r"n_threads"),
    # sgd_update
    ("sgd_update-velocity-length-mismatch", lambda: _sgd(velocity=np.zeros(3)), ValueError,
     r"velocity has shape \(3,\), expected \(4,\)"),
    ("sgd_update-grads-length-mismatch", lambda: _sgd(grads=f64(5)), ValueError,
     r"grads has shape \(5,\), expected \(4,\)"),
    ("sgd_update-dtype-mismatch", lambda: _sgd(grads=f32(4)), TypeError,
     r"grads is float32 but the other arrays are float64"),
    ("sgd_update-params-2d", lambda: _sgd(params=f64(2, 2)), ValueError,
     r"params must be 1-D"),
    ("sgd_update-params-list", lambda: _sgd(params=[1.0] * 4), TypeError,
     r"params must be a NumPy array"),
    ("sgd_update-params-readonly", lambda: _sgd(params=_readonly(f64(4))), ValueError,
     r"params is updated in place"),
    ("sgd_update-params-non-contiguous", lambda: _sgd(params=f64(8)[::2]), ValueError,
     r"params is updated in place"),
    ("sgd_update-velocity-readonly", lambda: _sgd(velocity=_readonly(np.zeros(4))),
     ValueError, r"velocity is updated in place"),
    ("sgd_update-empty", lambda: _sgd(f64(0), np.zeros(0), f64(0)), ValueError, r"params"),
    ("sgd_update-lr-0", lambda: _sgd(lr=0.0), ValueError, r"\blr\b"),
    ("sgd_update-lr-negative", lambda: _sgd(lr=-0.1), ValueError, r"\blr\b"),
    ("sgd_update-lr-nan", lambda: _sgd(lr=_NAN), ValueError, r"\blr\b"),
    ("sgd_update-lr-inf", lambda: _sgd(lr=_INF), ValueError, r"\blr\b"),
    ("sgd_update-lr-str", lambda: _sgd(lr="x"), TypeError, r"\blr\b"),
    ("sgd_update-momentum-above-1", lambda: _sgd(momentum=1.5), ValueError, r"momentum"),
    ("sgd_update-momentum-negative", lambda: _sgd(momentum=-0.5), ValueError, r"momentum"),
    ("sgd_update-momentum-nan", lambda: _sgd(momentum=_NAN), ValueError, r"momentum"),
    # adam_update
    ("adam_update-m-length-mismatch", lambda: _adam(m=np.zeros(3)), ValueError,
     r"m has shape \(3,\), expected \(4,\)"),
    ("adam_update-v-length-mismatch", lambda: _adam(v=np.zeros(5)), ValueError,
     r"v has shape \(5,\), expected \(4,\)"),
    ("adam_update-dtype-mismatch", lambda: _adam(m=np.zeros(4, np.float32)), TypeError,
     r"m is float32 but the other arrays are float64"),
    ("adam_update-v-readonly", lambda: _adam(v=_readonly(np.zeros(4))), ValueError,
     r"v is updated in place"),
    ("adam_update-t-0", lambda: _adam(t=0), ValueError, r"t must be >= 1"),
    ("adam_update-t-negative", lambda: _adam(t=-3), ValueError, r"t must be >= 1"),
    ("adam_update-t-2**70", lambda: _adam(t=2**70), ValueError, r"\bt\b"),
    ("adam_update-t-float", lambda: _adam(t=1.5), TypeError, r"\bt\b"),
    ("adam_update-t-nan", lambda: _adam(t=_NAN), TypeError, r"\bt\b"),
    ("adam_update-t-str", lambda: _adam(t="x"), TypeError, r"\bt\b"),
    ("adam_update-lr-0", lambda: _adam(lr=0.0), ValueError, r"\blr\b"),
    ("adam_update-lr-nan", lambda: _adam(lr=_NAN), ValueError, r"\blr\b"),
    ("adam_update-lr-inf", lambda: _adam(lr=_INF), ValueError, r"\blr\b"),
    ("adam_update-beta1-1", lambda: _adam(beta1=1.0), ValueError, r"beta1"),
    ("adam_update-beta1-negative", lambda: _adam(beta1=-0.1), ValueError, r"beta1"),
    ("adam_update-beta2-1", lambda: _adam(beta2=1.0), ValueError, r"beta2"),
    ("adam_update-epsilon-0", lambda: _adam(epsilon=0.0), ValueError, r"epsilon"),
    ("adam_update-epsilon-nan", lambda: _adam(epsilon=_NAN), ValueError, r"epsilon"),
]

OPS_PARAMS = [pytest.param(fn, exc, match, id=f"ops.{cid}") for cid, fn, exc, match in OPS_CASES]


@pytest.mark.parametrize("fn,exc,match", OPS_PARAMS)
def test_bad_ops_input(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


# ============================================================================
# 7. pynn.load (model files)
# ============================================================================
# Every bad model file is refused with a clear error, fast, without executing
# anything: a missing path or a directory is an OSError, a path of the wrong
# type a TypeError, and anything that is not an intact pynn model file a
# pynn.ModelFileError (a ValueError) saying what is wrong.


def _model_bytes():
    X, y = good_data("clf")
    m = make("clf", max_iter=2)
    m.fit(X, y)
    buf = io.BytesIO()
    m.save(buf)
    return buf.getvalue()


def _set(path, value):
    def edit(h):
        node = h
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _prefix(data, version=None, hlen=None):
    import struct

    v, n = struct.unpack_from("<II", data, 8)
    return data[:8] + struct.pack("<II", v if version is None else version,
                                  n if hlen is None else hlen) + data[16:]


LOAD_CASES = [
    ("empty-file", lambda d: b"", r"not a pynn model file"),
    ("magic-only", lambda d: d[:8], r"truncated|not a pynn model file"),
    ("truncated-half", lambda d: d[:len(d) // 2], r"truncated"),
    ("truncated-last-byte", lambda d: d[:-1], r"truncated|checksum"),
    ("extra-trailing-bytes", lambda d: d + b"\0" * 8, r"checksum|corrupt"),
    ("wrong-magic", lambda d: b"NOTPYNN!" + d[8:], r"not a pynn model file"),
    ("pickle-file", lambda d: pickle.dumps({"a": 1}), r"not a pynn model file"),
    ("text-file", lambda d: b"hello, world\n" * 10, r"not a pynn model file"),
    ("npy-file", lambda d: b"\x93NUMPY" + bytes(200), r"not a pynn model file"),
    ("version-0", lambda d: _prefix(d, version=0), r"version 0 is not supported"),
    ("newer-version", lambda d: _prefix(d, version=7), r"version 7 is not supported"),
    ("absurd-header-length", lambda d: _prefix(d, hlen=2**32 - 1), r"truncated"),
    ("flipped-weight-bit", lambda d: d[:-8] + bytes([d[-8] ^ 1]) + d[-7:], r"checksum"),
    ("flipped-checksum-bit", lambda d: d[:-1] + bytes([d[-1] ^ 1]), r"checksum"),
    ("header-not-json", lambda d: with_header(d, lambda h: h.clear()) .replace(
        b"{}", b"{]"), r"corrupt"),
    ("header-wrong-format-tag", lambda d: with_header(d, _set(["format"], "other")),
     r"not a pynn model header"),
    ("unknown-estimator", lambda d: with_header(d, _set(["estimator"], "os.system")),
     r"unknown estimator 'os.system'"),
    ("unknown-parameter", lambda d: with_header(d, _set(["params", "evil"], 1)),
     r"parameters unknown to MLPClassifier: \['evil'\]"),
    ("bad-parameter-value", lambda d: with_header(d, _set(["params", "alpha"], -1)),
     r"alpha must be >= 0"),
    ("bad-parameter-type", lambda d: with_header(d, _set(["params", "max_iter"], "many")),
     r"max_iter must be an integer"),
    ("units-mismatch", lambda d: with_header(d, _set(["units"], [4, 9, 2])),
     r"truncated|need \d+ parameters|corrupt"),
    ("units-absurd", lambda d: with_header(d, _set(["units"], [4, 10**10, 2])),
     r"truncated|corrupt|memory"),
    ("units-negative", lambda d: with_header(d, _set(["units"], [4, -3, 2])),
     r"corrupt"),
    ("arena-count-negative", lambda d: with_header(d, _set(["arena", "count"], -5)),
     r"corrupt|truncated"),
    ("arena-count-absurd", lambda d: with_header(d, _set(["arena", "count"], 10**15)),
     r"truncated"),
    ("arena-dtype-int", lambda d: with_header(d, _set(["arena", "dtype"], "int32")),
     r"unsupported dtype"),
    ("arena-dtype-garbage", lambda d: with_header(d, _set(["arena", "dtype"], "lol")),
     r"corrupt"),
    ("classes-count-mismatch", lambda d: with_header(
        d, _set(["fitted", "classes_"], {"dtype": "<i8", "values": [0, 1, 2, 3, 4]})),
     r"5 classes do not fit"),
    ("classes-object-dtype", lambda d: with_header(
        d, _set(["fitted", "classes_"], {"dtype": "|O", "values": [0, 1]})),
     r"unsupported dtype|corrupt"),
    ("out-activation-unknown", lambda d: with_header(
        d, _set(["fitted", "out_activation_"], "__import__")), r"unknown output activation"),
    ("n_features-mismatch", lambda d: with_header(d, _set(["fitted", "n_features_in_"], 99)),
     r"n_features_in_ does not match"),
    ("fitted-missing", lambda d: with_header(d, lambda h: h.pop("fitted")), r"corrupt"),
    ("arena-count-infinite", lambda d: with_header(d, _set(["arena", "count"], float("inf"))),
     r"corrupt|truncated"),
    ("header-deeply-nested", lambda d: _prefix(d[:16] + b"[" * 200000 + d[16:], hlen=200000),
     r"corrupt|checksum"),
    ("too-many-layers", lambda d: with_header(d, _set(["units"], [4] + [3] * 300 + [3])),
     r"corrupt"),
    ("layers-not-hidden_layer_sizes", lambda d: with_header(d, _set(["units"], [4, 5, 3])),
     r"do not match|parameters"),
    ("losses-not-numbers", lambda d: with_header(d, _set(["fitted", "best_loss_"], [1])),
     r"losses are not numbers"),
    # a declared size the file does not hold: 2 labels of dtype <U250000000 (1.9 GiB)
    ("classes-dtype-bomb", lambda d: with_header(d, _set(
        ["fitted", "classes_"], {"dtype": "<U250000000", "values": ["a", "b"]})),
     r"wider than its longest label"),
    ("classes-missing", lambda d: with_header(d, lambda h: h["fitted"].pop("classes_")),
     r"without classes_"),
    ("classes-unsorted", lambda d: with_header(
        d, _set(["fitted", "classes_"], {"dtype": "<i8", "values": [1, 0]})),
     r"not sorted and unique"),
    ("classes-duplicate", lambda d: with_header(
        d, _set(["fitted", "classes_"], {"dtype": "<i8", "values": [1, 1]})),
     r"not sorted and unique"),
    ("classes-strings-as-ints", lambda d: with_header(
        d, _set(["fitted", "classes_"], {"dtype": "<i8", "values": ["0", "1"]})),
     r"not numbers"),
    ("out-activation-mismatch", lambda d: with_header(
        d, _set(["fitted", "out_activation_"], "softmax")),
     r"out_activation_ is 'softmax'.*uses 'logistic'"),
    ("out-activation-identity", lambda d: with_header(
        d, _set(["fitted", "out_activation_"], "identity")),
     r"out_activation_ is 'identity'"),
    ("multilabel-not-bool", lambda d: with_header(d, _set(["fitted", "multilabel"], "yes")),
     r"multilabel|do not fit"),
    ("loss-curve-string", lambda d: with_header(d, _set(["fitted", "loss_curve_"], [0.5, "x"])),
     r"losses are not numbers"),
    ("validation-scores-string", lambda d: with_header(d, lambda h: h["fitted"].update(
        validation_scores_=["x"], best_validation_score_=0.5)),
     r"validation scores are not numbers"),
    ("n_iter-negative", lambda d: with_header(d, _set(["fitted", "n_iter_"], -1)),
     r"n_iter_ is -1"),
    ("n_iter-fraction", lambda d: with_header(d, _set(["fitted", "n_iter_"], 1.5)),
     r"n_iter_ is 1.5, not a count"),
    ("t-string", lambda d: with_header(d, _set(["fitted", "t_"], "x")), r"t_ is 'x'"),
    ("n_features-bool", lambda d: with_header(d, _set(["fitted", "n_features_in_"], True)),
     r"n_features_in_ is True"),
]

LOAD_PARAMS = [pytest.param(make_bytes, match, id=f"load-{cid}")
               for cid, make_bytes, match in LOAD_CASES]


@pytest.fixture(scope="module")
def model_bytes():
    return _model_bytes()


@pytest.mark.parametrize("make_bytes,match", LOAD_PARAMS)
def test_bad_model_file(tmp_path, model_bytes, make_bytes, match):
    path = tmp_path / "bad.pynn"
    path.write_bytes(make_bytes(model_bytes))
    t0 = time.perf_counter()
    with pytest.raises(pynn.ModelFileError, match=match):
        pynn.load(path)
    assert time.perf_counter() - t0 < 2.0
    # the same bytes through a file object
    with pytest.raises(pynn.ModelFileError, match=match):
        pynn.load(io.BytesIO(make_bytes(model_bytes)))


LOAD_PATH_CASES = [
    pytest.param(lambda p: p / "missing.pynn", FileNotFoundError, r"missing\.pynn",
                 id="load-missing-path"),
    pytest.param(lambda p: p, IsADirectoryError, r"a folder, not a pynn model file",
                 id="load-directory"),
    pytest.param(lambda p: None, TypeError,
                 r"needs a file name \(str or os.PathLike\) or a binary file object, got "
                 r"NoneType", id="load-None"),
    pytest.param(lambda p: 3.5, TypeError, r"needs a file name .* got float", id="load-float"),
    pytest.param(lambda p: io.StringIO("PYNNMODL"), TypeError, r"binary mode",
                 id="load-text-file-object"),
]


@pytest.mark.parametrize("make_path,exc,match", LOAD_PATH_CASES)
def test_bad_model_path(tmp_path, make_path, exc, match):
    with pytest.raises(exc, match=match):
        pynn.load(make_path(tmp_path))


#: Number of bad inputs tried by this module (= the number of tests collected).
N_CASES = (len(FIT_PARAMS) + len(PARAM_PARAMS) + len(ABSURD_LAYERS) * len(MLP) * 2
           + len(FITTED_PARAMS) + len(_REFIT_PARAM_PARAMS) + len(PREDICT_PARAMS)
           + len(UNFITTED_PARAMS) + len(Y_PARAMS) + len(MISC_PARAMS) + len(OPS_PARAMS)
           + len(LOAD_PARAMS) + len(LOAD_PATH_CASES))
