"""What every pynn estimator shares: parameters in the scikit-learn manner,
input validation, the parameter arena and the chunked training loop."""
from __future__ import annotations

import inspect
import math
import numbers
import os
import sys
import time
import warnings

import numpy as np
from numpy.typing import ArrayLike

from ._typing import Any, BinaryIO, Dict, List, Optional, Self, Tuple, Union

from . import _core
from ._progress import Progress
from .exceptions import (ConvergenceWarning, DataConversionWarning, DivergenceError,
                         NotFittedError, sklearn_flavour)

_DTYPES = {"float32": np.float32, "float64": np.float64}

# A chunk of training steps in C lasts about this long, so Ctrl-C (handled by
# Python between chunks) takes effect well within half a second.
_CHUNK_SECONDS = 0.05
# Snapshots of the weights for recovery from divergence are taken this often.
_BACKUP_SECONDS = 0.5
# With n_threads=None, the thread counts tried are measured again this often.
_REPROBE_SECONDS = 2.0
# Training buffers up to this size stay with the model between fit calls; larger
# ones are released when a call ends (a big model should not hold 3x its size).
_SCRATCH_KEEP_BYTES = 256 << 20
# Rows per block when predicting: bounds the workspace, not the result.
_PREDICT_BLOCK = 256
# Smallest block handed to a thread of its own when predicting in parallel.
_PREDICT_MIN_BLOCK = 32


# ----------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------

class ParamsMixin:
    """get_params / set_params / repr from the signature of ``__init__``, and the
    estimator tags scikit-learn's tools read (without depending on scikit-learn)."""

    #: 'classifier' or 'regressor', read by scikit-learn < 1.6 and by is_classifier
    _estimator_type = None

    #: what the estimator handles, read into scikit-learn's tags
    _multi_output = False
    _multi_class = True

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

        kind = self._estimator_type
        clf = reg = None
        if kind == "classifier":
            clf = ClassifierTags(multi_class=self._multi_class, multi_label=self._multi_output)
        elif kind == "regressor":
            reg = RegressorTags()
        return Tags(estimator_type=kind,
                    target_tags=TargetTags(required=True, multi_output=self._multi_output,
                                           single_output=True),
                    classifier_tags=clf, regressor_tags=reg)

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """Parameters of this estimator, as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set parameters; unknown names raise ValueError."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator "
                                 f"{type(self).__name__}. Valid parameters are: {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, p in sig.parameters.items():
            if name == "self":
                continue
            value = getattr(self, name)
            default = p.default
            same = value is default
            if not same:
                try:
                    same = bool(value == default)
                except Exception:  # arrays and the like compare ambiguously
                    same = False
            if not same:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


# ----------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------

def check_int(value, name, low=None, high=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_float(value, name, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def resolve_dtype(dtype):
    if isinstance(dtype, str) and dtype in _DTYPES:
        return np.dtype(_DTYPES[dtype])
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def resolve_threads(n_threads):
    if n_threads is None:
        return 0  # the core asks OpenMP, which honours OMP_NUM_THREADS
    return check_int(n_threads, "n_threads", low=1, high=4096)


def check_random_state(seed):
    """None -> NumPy's global RandomState; int -> a new one; RandomState as is."""
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"random_state must be None, an int or a RandomState, got {seed!r}")
    if isinstance(seed, numbers.Integral):
        if not 0 <= seed < 2**32:
            raise ValueError(f"random_state must be in [0, 2**32), got {seed}")
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    raise TypeError(f"random_state must be None, an int or a RandomState, got {seed!r}")


def _reject_kind(arr, name):
    """Numeric arrays pass; an object array of numbers becomes float64."""
    kind = arr.dtype.kind
    if kind == "O":
        try:
            return arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be numeric; an element of its object array could "
                            f"not be converted: {exc}") from None
    if kind in "SUV":
        raise TypeError(f"{name} must be numeric; got an array of dtype {arr.dtype}")
    if kind == "c":
        raise ValueError(f"Complex data not supported: {name} must be real, got an array "
                         f"of dtype {arr.dtype}")
    if kind not in "biuf":
        raise TypeError(f"{name} has unsupported dtype {arr.dtype}")
    return arr


def all_finite(a):
    """True if `a` has no NaN or infinity, without a mask the size of `a`: a sum is
    finite only if every term is; when it is not (or finite values overflowed it),
    blocks are checked one by one."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.sum()):
            return True
    flat = a.reshape(-1)
    step = 1 << 16
    return all(np.isfinite(flat[i:i + step]).all() for i in range(0, flat.size, step))


def validate_X(X: Any, dtype: Any, name: str = "X", check_finite: bool = True) -> np.ndarray:
    """A 2-D, finite, C-contiguous array of `dtype` (copied only when needed).
    check_finite=False leaves the NaN/infinity test to the caller."""
    if X is None:
        raise ValueError(f"{name} must be an array-like, got None")
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is a sparse matrix; pynn needs a dense array "
                        f"(call .toarray())")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and other oddities
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    arr = _reject_kind(arr, name)
    if arr.ndim != 2:
        hint = (" Reshape your data with X.reshape(-1, 1) for a single feature or "
                "X.reshape(1, -1) for a single sample." if arr.ndim == 1 else "")
        raise ValueError(f"Expected a 2-D array for {name}, got {arr.ndim}-D with shape "
                         f"{arr.shape}.{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum "
                         f"of 1 is required: {name} is empty")
    if arr.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum "
                         f"of 1 is required: {name} has no features")
    out = np.ascontiguousarray(arr, dtype=dtype)
    if check_finite and not all_finite(out):
        if arr.dtype.kind == "f" and np.isfinite(arr).all():
            raise ValueError(f"{name} has values too large for {np.dtype(dtype).name}")
        raise ValueError(f"{name} contains NaN or infinity; remove or impute them first")
    return out


# Integer labels spanning at most this many values are encoded by table lookup.
_LABEL_TABLE_MAX = 1 << 20


def unique_labels(y):
    """Sorted distinct labels; small-range integers without sorting all of y."""
    if y.dtype.kind in "iu" and y.size:
        lo, hi = int(y.min()), int(y.max())
        if hi - lo < _LABEL_TABLE_MAX:
            present = np.bincount((y - lo).astype(np.intp), minlength=hi - lo + 1) > 0
            return (np.nonzero(present)[0] + lo).astype(y.dtype)
    return np.unique(y)


def _label_types(y):
    """The type names among (the first thousand of) y's labels, for messages."""
    return ", ".join(sorted({type(v).__name__ for v in np.asarray(y).ravel()[:1000]}))


def sorted_labels(y):
    """unique_labels for a classifier's y, refusing labels that do not sort."""
    try:
        return unique_labels(y)
    except TypeError:
        raise TypeError(f"y contains labels of mixed types ({_label_types(y)}) that cannot be "
                        f"compared; use labels of one type (all strings or all numbers)") from None


def label_indices(y, classes):
    """Position of each label of y in the sorted array classes; -1 where unknown."""
    if y.dtype.kind in "iu" and classes.dtype.kind in "iu" and y.size:
        lo, hi = int(y.min()), int(y.max())
        if hi - lo < _LABEL_TABLE_MAX:
            table = np.full(hi - lo + 1, -1, dtype=np.intp)
            inside = (classes >= lo) & (classes <= hi)
            table[(classes[inside] - lo).astype(np.intp)] = np.nonzero(inside)[0]
            return table[(y - lo).astype(np.intp)]
    try:
        idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    except TypeError:
        raise TypeError(f"y contains labels ({_label_types(y)}) that cannot be compared with "
                        f"the classes {classes.tolist()[:5]}; use labels of one type") from None
    return np.where(classes[idx] == y, idx, -1)


def column_or_1d(y, name="y", warn=False):
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        if warn:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                          "change the shape of y to (n_samples, ), for example using ravel().",
                          sklearn_flavour(DataConversionWarning), stacklevel=4)
        return arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {arr.shape}")
    return arr


def feature_names(X):
    """The column names of a DataFrame-like X as an object array, or None when
    X has no names (or not all of them are strings, as scikit-learn decides)."""
    cols = getattr(X, "columns", None)
    if cols is None or isinstance(X, np.ndarray):
        return None
    try:
        names = np.asarray(list(cols), dtype=object)
    except TypeError:
        return None
    is_str = [isinstance(c, str) for c in names]
    if all(is_str) and len(names):
        return names
    if any(is_str):
        raise TypeError("Feature names are only supported if all input features have string "
                        f"names, but X has mixed types: {sorted({type(c).__name__ for c in names})}")
    return None


def check_fits_dtype(dtype, **values):
    """Each positive value must stay finite and non-zero when rounded to dtype
    (a learning rate of 1e39 is infinite in float32; an epsilon of 1e-50 is 0)."""
    info = np.finfo(dtype)
    for name, value in values.items():
        v = float(value)
        if v > float(info.max):
            raise ValueError(f"{name}={value!r} is too large for dtype {np.dtype(dtype).name} "
                             f"(at most {float(info.max):.3g})")
        if v > 0 and np.dtype(dtype).type(v) == 0:
            raise ValueError(f"{name}={value!r} rounds to 0 in dtype {np.dtype(dtype).name}; "
                             f"use at least {float(info.tiny):.3g}")


def check_verbose(value):
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    return check_int(value, "verbose", low=0)


def check_sample_weight(sample_weight: Any, n: int, dtype: Any) -> Optional[np.ndarray]:
    """None, or a C-contiguous array of n finite, non-negative weights of
    `dtype` with a positive sum (a scalar applies to every row)."""
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight)
    if sw.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric, got dtype {sw.dtype}")
    if sw.ndim == 0:
        sw = np.full(n, float(sw))
    if sw.ndim != 1 or sw.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},) (one weight per sample), got "
                         f"shape {sw.shape}")
    sw = np.ascontiguousarray(sw, dtype=dtype)
    if not np.isfinite(sw).all():
        raise ValueError("sample_weight contains NaN or infinity")
    if (sw < 0).any():
        raise ValueError("sample_weight must be non-negative; got negative weights")
    if not sw.sum() > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive "
                         "weight")
    return sw


def validation_split(n, fraction, random_state, groups=None):
    """(train_rows, validation_rows): a random ceil(fraction * n) rows held out,
    in proportion to each group's size when groups (e.g. class indices) are given."""
    n_val = int(math.ceil(fraction * n))
    if n_val < 2 or n - n_val < 1:
        raise ValueError(f"The validation set is too small: validation_fraction={fraction} of "
                         f"{n} samples leaves {n_val} for validation (at least 2 are needed) and "
                         f"{n - n_val} for training. Increase validation_fraction or the size "
                         f"of your dataset.")
    if groups is None:
        perm = random_state.permutation(n)
        val = np.sort(perm[:n_val])
    else:
        uniq, inv = np.unique(groups, return_inverse=True)
        counts = np.bincount(inv, minlength=len(uniq))
        share = counts * (n_val / n)
        take = np.floor(share).astype(int)
        # largest remainders get the rows still to place
        extra = n_val - take.sum()
        if extra > 0:
            take[np.argsort(-(share - take), kind="stable")[:extra]] += 1
        rows = []
        for g in range(len(uniq)):
            members = np.nonzero(inv == g)[0]
            rows.append(random_state.permutation(members)[:take[g]])
        val = np.sort(np.concatenate(rows))
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.nonzero(mask)[0], val


def check_score_targets(n: int, y: Any, sample_weight: Any,
                        who: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """y (an array of n rows, finite if numeric) and sample_weight (None or
    checked as for fit) passed to a score method."""
    check_y_given(y, who)
    y = np.asarray(y)
    if y.ndim == 0:
        raise ValueError(f"y must be 1-D (n_samples,), got a scalar {y!r}")
    check_consistent_length(np.empty((n, 0)), y)
    if y.dtype.kind == "c":
        raise ValueError("y contains complex values")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity")
    return y, check_sample_weight(sample_weight, n, np.float64)


def check_y_given(y, who):
    if y is None:
        raise ValueError(f"{who} requires y to be passed, but the target y is None")


def check_consistent_length(X, y):
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y have different numbers of samples: {X.shape[0]} and "
                         f"{y.shape[0]}")


# ----------------------------------------------------------------------------
# the network machinery
# ----------------------------------------------------------------------------

class _OutputOverflow(ValueError):
    """A forward or backward pass overflowed although its inputs were finite."""


class _Layout:
    """The arena layout of a network: offsets of each W_l and b_l."""

    def __init__(self, units):
        self.units = tuple(int(u) for u in units)
        self.w_off, self.b_off = [], []
        off = 0
        for n_in, n_out in zip(self.units[:-1], self.units[1:]):
            self.w_off.append(off)
            off += n_in * n_out
            self.b_off.append(off)
            off += n_out
        self.size = off

    def shapes(self):
        return [((a, b), (b,)) for a, b in zip(self.units[:-1], self.units[1:])]


def _total_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


class _ChunkPlanner:
    """Plans the chunks of training steps run in C between returns to Python.

    Each chunk lasts about ``_CHUNK_SECONDS``.  With ``n_threads=None`` the thread
    count is chosen by measurement: the core's results are bitwise the same for
    any count, so it may switch at will.  On a machine whose cores are busy with
    other work, OpenMP teams can run many times slower than one thread; short
    probes every ``_REPROBE_SECONDS`` keep the faster choice."""

    def __init__(self, n_threads):
        if n_threads:
            self.options = [n_threads]
        else:
            most = _core.max_threads()
            self.options = [most, 1] if most > 1 else [1]
        self.rate = {}   # steps per second, per thread count
        self.when = {}   # when that rate was measured

    def next(self):
        """(threads, steps) for the next chunk."""
        now = time.perf_counter()
        known = [o for o in self.options if o in self.rate]
        for o in self.options:
            if o not in self.rate or (len(self.options) > 1
                                      and now - self.when[o] > _REPROBE_SECONDS):
                # a probe: a quarter chunk at this option's last speed (or the best known)
                rate = self.rate.get(o) or max((self.rate[k] for k in known), default=0.0)
                return o, max(1, int(rate * _CHUNK_SECONDS / 4))
        best = max(self.options, key=lambda o: self.rate[o])
        return best, max(1, min(int(self.rate[best] * _CHUNK_SECONDS), 1 << 30))

    def record(self, threads, steps, elapsed):
        if not steps or elapsed <= 0:
            return
        short = elapsed < 0.002  # too short to time well
        if short and threads in self.rate:
            return
        self.rate[threads] = steps / elapsed
        # a short first measurement counts as stale: the next probe measures again
        self.when[threads] = -1e9 if short else time.perf_counter()


class NetworkBase(ParamsMixin):
    """Parameter arena, chunked training loop and prediction shared by the
    Perceptron and the MLPs.  Subclasses define the layer sizes, activations,
    loss, initialisation and how targets are encoded."""

    coefs_: List[np.ndarray]
    intercepts_: List[np.ndarray]
    n_features_in_: int
    out_activation_: Any
    n_threads: Optional[int]

    # ---- to be provided by subclasses -----------------------------------------
    def _check_hyperparameters(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _hidden_activation(self):
        return "identity"

    # ---- fitted-state helpers ---------------------------------------------------
    def _check_is_fitted(self):
        if not hasattr(self, "_layout"):
            raise sklearn_flavour(NotFittedError)(f"This {type(self).__name__} instance is not fitted yet. "
                                 f"Call 'fit' with appropriate arguments before using "
                                 f"this estimator.")

    def _make_net(self, output=None):
        return _core.Net(self._layout.units, _core.ACTIVATIONS[self._hidden_activation()],
                         _core.ACTIVATIONS[output or self.out_activation_],
                         _core.LOSSES[self._loss_name])

    def _allocate(self, units, dtype):
        """A fresh arena for `units`, failing fast on absurd sizes."""
        layout = _Layout(units)
        itemsize = np.dtype(dtype).itemsize
        need = layout.size * itemsize * 4  # params, grads, two optimizer moments
        if need > _total_memory():
            raise MemoryError(
                f"a network with layer sizes {list(units)} has {layout.size:,} parameters "
                f"and needs about {need / 2**30:,.1f} GiB to train, more than this machine's "
                f"memory; use smaller hidden_layer_sizes")
        self._layout = layout
        self._arena = np.zeros(layout.size, dtype=dtype)
        self._bind_views()

    # The public arrays (coefs_/intercepts_, or a Perceptron's coef_/intercept_)
    # are views into the arena, listed in arena order.
    def _view_specs(self):
        """(offset, shape) of each public array, in arena order."""
        lay = self._layout
        specs = []
        for (wshape, bshape), wo, bo in zip(lay.shapes(), lay.w_off, lay.b_off):
            specs += [(wo, wshape), (bo, bshape)]
        return specs

    def _get_views(self):
        return [a for pair in zip(self.coefs_, self.intercepts_) for a in pair]

    def _set_views(self, views):
        self.coefs_ = views[0::2]
        self.intercepts_ = views[1::2]

    def _bind_views(self):
        """Point the public arrays into the arena (writes go to the model)."""
        a = self._arena
        views = []
        for o, shape, *flip in self._view_specs():
            size = int(np.prod(shape))
            # flip: the public array is the transpose of the arena's block
            views.append(a[o:o + size].reshape(shape[::-1]).T if flip and flip[0]
                         else a[o:o + size].reshape(shape))
        self._set_views(views)

    def _views_intact(self):
        a = self._arena
        base, isz = a.__array_interface__["data"][0], a.itemsize
        try:
            views = self._get_views()
        except AttributeError:
            return False
        specs = self._view_specs()
        if len(views) != len(specs):
            return False
        for v, (off, shape, *flip) in zip(views, specs):
            if (not isinstance(v, np.ndarray) or v.shape != shape or v.dtype != a.dtype
                    or not (v.T if flip and flip[0] else v).flags.c_contiguous
                    or v.__array_interface__["data"][0] != base + off * isz):
                return False
        return True

    def _sync_arena(self):
        """Re-pack the public arrays if the user replaced them (not in place)."""
        if self._views_intact():
            return
        views, specs = list(self._get_views()), self._view_specs()
        if len(views) != len(specs):
            raise ValueError(f"the model's weight lists must hold {len(specs) // 2} "
                             f"arrays each")
        arena = np.empty(self._layout.size, dtype=self._arena.dtype)
        for v, (off, shape, *flip) in zip(views, specs):
            v = np.asarray(v)
            if v.shape != shape:
                raise ValueError(f"a weight array has shape {v.shape}, expected {shape}")
            arena[off:off + v.size] = (v.T if flip and flip[0] else v).ravel()
        self._arena = arena
        self._bind_views()
        self._opt_state = None

    def __getstate__(self):
        # The optimizer's state (moments, step count, learning rate) travels
        # with the model, so partial_fit continues exactly where it left off
        # after a pickle round trip (as Dask does between calls).
        if "_arena" in self.__dict__:
            self._sync_arena()
        state = self.__dict__.copy()
        state.pop("_scratch", None)
        if "_arena" in state:
            # the arena alone is stored; the views are rebuilt on loading
            state["_arena"] = self._arena.copy()
            for name in ("coefs_", "intercepts_", "coef_", "intercept_"):
                state.pop(name, None)
        return state

    def __setstate__(self, state):
        self._opt_state = None
        self.__dict__.update(state)
        if "_arena" in state:
            # Unpickled buffers (pickle protocol 5, as Dask sends them) may sit at any
            # byte offset; the core reads them as arrays of float or double, which
            # must be aligned, writeable and contiguous.
            self._arena = np.require(self._arena, requirements=["C", "A", "W"])
            if self._opt_state is not None:
                self._opt_state = {k: np.require(v, requirements=["C", "A", "W"])
                                   if isinstance(v, np.ndarray) else v
                                   for k, v in self._opt_state.items()}
            self._bind_views()

    # ---- training -------------------------------------------------------------
    def _check_batch_size(self):
        bs = self.batch_size
        if bs is None:
            return
        if isinstance(bs, str):
            if bs != "auto":
                raise ValueError(f"batch_size must be 'auto', None or a positive int, "
                                 f"got {bs!r}")
            return
        check_int(bs, "batch_size", low=1)

    def _prepare_training(self, n_samples):
        """Batch size for this fit (scikit-learn's rules); batch_size was
        validated with the other hyperparameters."""
        bs = self.batch_size
        if bs is None:
            return n_samples
        if isinstance(bs, str):
            return min(200, n_samples)
        bs = int(bs)
        if bs > n_samples:
            warnings.warn(f"Got batch_size={bs} larger than the {n_samples} samples; "
                          f"it is clipped to {n_samples}", UserWarning, stacklevel=4)
            bs = n_samples
        return bs

    def _optimizer_config(self):
        """(solver, momentum, nesterov, beta1, beta2, epsilon) for the core."""
        return "sgd", 0.0, False, 0.9, 0.999, 1e-8

    def _run_epochs(self, X, Y, incremental, max_iter, sw=None, val=None):
        """The stochastic training loop: epochs of minibatch steps in C, with
        Python between chunks for progress, convergence checks and Ctrl-C.

        sw: the rows' sample weights (or None).  val: ``(X_val, y_val, sw_val)``
        for early stopping: the validation score decides when to stop and the
        weights with the best score are restored at the end."""
        n = X.shape[0]
        batch = self._prepare_training(n)
        solver, momentum, nesterov, b1, b2, eps = self._optimizer_config()
        lr_schedule = getattr(self, "learning_rate", "constant")
        planner = _ChunkPlanner(resolve_threads(self.n_threads))
        net = self._make_net()
        dtype = self._arena.dtype
        old = getattr(self, "_opt_state", None) or {}
        if not incremental or not old or old.get("solver", solver) != solver:
            # a fresh optimizer (also when partial_fit switches solver); arrays
            # this model made before are zeroed in place, never a copy's
            if old.get("owner") != id(self):
                old = {}
            self._opt_state = {
                "a": self._zeroed(old.get("a"), self._arena.size, dtype),
                "b": (self._zeroed(old.get("b"), self._arena.size, dtype) if solver == "adam"
                      else np.zeros(1, dtype)),
                "t": 0, "lr": float(self.learning_rate_init), "solver": solver,
                "owner": id(self),
            }
        st = self._opt_state
        opt_b = st["b"] if solver == "adam" else st["a"]
        # Buffers the core writes into, kept between calls (partial_fit loops and
        # warm starts do not pay for fresh pages every time); never pickled.
        ws_size = net.workspace_size(min(batch, n))
        scratch = self.__dict__.get("_scratch")
        key = (self._arena.size, dtype, ws_size, id(self))  # never a shallow copy's
        if scratch is None or scratch["key"] != key:
            scratch = {"key": key,
                       "grads": np.empty_like(self._arena), "ws": np.empty(ws_size, dtype),
                       "good": (np.empty_like(self._arena), np.empty_like(self._arena))}
            self._scratch = scratch
        grads, ws = scratch["grads"], scratch["ws"]
        order = np.arange(n, dtype=np.int64)
        seed = int(self._random_state.randint(np.iinfo(np.int64).max, dtype=np.int64))
        # Shuffling a full batch would only reorder a sum: skip it (and its copy).
        trainer = _core.Trainer(net, self._arena, grads, st["a"], opt_b, X, Y, order, ws,
                                batch, bool(self.shuffle) and batch < n, seed, sw)
        trainer.t = st["t"]
        tol = self.tol
        # n_iter_ counts the epochs of this call, as in scikit-learn (loss_curve_
        # keeps every epoch)
        self.n_iter_ = 0
        progress = Progress(self.verbose, max_iter, n)
        best_arena = None
        if val is not None:
            best_arena = self._arena.copy()
        # Two snapshots of the weights, taken every _BACKUP_SECONDS at a chunk's
        # start while they are finite: on divergence the model goes back to the
        # newest one a finite-loss step has started from, instead of keeping NaN
        # or infinite weights.
        good_cur, good_prev = scratch["good"]
        np.copyto(good_cur, self._arena)
        np.copyto(good_prev, self._arena)
        steps_since_backup, last_backup = 0, time.perf_counter()
        converged = False
        try:
            for _ in range(max_iter):
                trainer.set_optimizer(_core.SOLVERS[solver], st["lr"], momentum, nesterov,
                                      b1, b2, eps, float(getattr(self, "alpha", 0.0)))
                epoch_loss = None
                while epoch_loss is None:
                    t0 = time.perf_counter()
                    if t0 - last_backup > _BACKUP_SECONDS and all_finite(self._arena):
                        good_prev, good_cur = good_cur, good_prev
                        np.copyto(good_cur, self._arena)
                        steps_since_backup, last_backup = 0, t0
                    nt, chunk = planner.next()
                    t0 = time.perf_counter()
                    steps, epoch_loss, diverged = trainer.run(chunk, nt)
                    elapsed = time.perf_counter() - t0
                    planner.record(nt, steps, elapsed)
                    progress.chunk(min(steps * batch, n), elapsed)
                    st["t"] = trainer.t
                    steps_since_backup += steps
                    if diverged or (epoch_loss is not None and not all_finite(self._arena)):
                        # a step has run from good_cur with a finite loss, unless none did
                        np.copyto(self._arena, good_cur if steps_since_backup else good_prev)
                        self._opt_state = None
                        raise DivergenceError(self._divergence_message())
                self.n_iter_ += 1
                self.t_ += n
                self.loss_ = float(epoch_loss)
                self.loss_curve_.append(self.loss_)
                prev_best = self.best_loss_
                if self.loss_ < self.best_loss_:
                    self.best_loss_ = self.loss_
                score = None
                if val is not None:
                    try:
                        score = float(self._validation_score(*val))
                    except _OutputOverflow:
                        np.copyto(self._arena, good_cur)
                        self._opt_state = None
                        raise DivergenceError(self._divergence_message()) from None
                    self.validation_scores_.append(score)
                progress.epoch_end(self.loss_, score)
                if tol is not None:
                    if val is not None:
                        worse = not score >= self.best_validation_score_ + tol
                    else:
                        worse = self.loss_ > prev_best - tol
                    self._no_improvement_count = self._no_improvement_count + 1 if worse else 0
                if val is not None and score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    np.copyto(best_arena, self._arena)
                if solver == "sgd" and lr_schedule == "invscaling":
                    st["lr"] = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
                if tol is not None and self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if val is not None else "Training loss"
                    if solver == "sgd" and lr_schedule == "adaptive" and st["lr"] > 1e-6:
                        st["lr"] /= 5.0
                        self._no_improvement_count = 0
                        progress.message(f"{what} did not improve more than tol={tol} for "
                                         f"{self.n_iter_no_change} consecutive epochs. "
                                         f"Setting learning rate to {st['lr']:f}")
                        continue
                    progress.message(f"{what} did not improve more than tol={tol} for "
                                     f"{self.n_iter_no_change} consecutive epochs. Stopping.")
                    converged = True
                    break
                if incremental:
                    converged = True
                    break
        finally:
            progress.close()
        if best_arena is not None and self.validation_scores_:
            # early stopping: the weights that scored best on the validation set
            np.copyto(self._arena, best_arena)
        if sum(a.nbytes for a in (grads, ws, *scratch["good"])) > _SCRATCH_KEEP_BYTES:
            self.__dict__.pop("_scratch", None)
        if not self._finite_on_sample(net, X, Y, grads, sw):
            # The last update can blow the weights up without making them NaN or
            # infinite (the loss is checked before each update, and the weights
            # at epoch ends): the model must still give a finite loss and
            # gradient on its training rows, or the fit failed.
            np.copyto(self._arena, good_cur)
            self._opt_state = None
            raise DivergenceError(self._divergence_message())
        if not converged and max_iter > 0 and not incremental and tol is not None:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({max_iter}) reached "
                          f"and the optimization hasn't converged yet.",
                          sklearn_flavour(ConvergenceWarning), stacklevel=3)

    @staticmethod
    def _zeroed(arr, size, dtype):
        """arr filled with zeros when it has the right size and dtype, else a new array."""
        if isinstance(arr, np.ndarray) and arr.size == size and arr.dtype == dtype:
            arr.fill(0)
            return arr
        return np.zeros(size, dtype)

    def _validation_score(self, X, y, sw):  # pragma: no cover - estimators override
        raise NotImplementedError

    def _finite_on_sample(self, net, X, Y, grads, sw, rows=32):
        """Loss and gradient at the current weights on up to `rows` training
        rows spread over the data are finite (and so are the weights).  A few
        rows suffice: blown-up weights overflow on almost every row; the check
        costs a fraction of one training step."""
        if not all_finite(self._arena):
            return False
        n = X.shape[0]
        idx = np.unique(np.linspace(0, n - 1, min(n, rows)).astype(np.int64))
        ws = np.empty(net.workspace_size(len(idx)), dtype=self._arena.dtype)
        loss = net.loss_grad(grads, self._arena, np.ascontiguousarray(X[idx]),
                             np.ascontiguousarray(Y[idx]), float(getattr(self, "alpha", 0.0)),
                             ws, resolve_threads(self.n_threads),
                             None if sw is None else np.ascontiguousarray(sw[idx]))
        return math.isfinite(loss) and all_finite(grads)

    def _divergence_message(self):
        return (f"Training diverged: the loss or the weights became NaN or infinite "
                f"(learning_rate_init={self.learning_rate_init}). Lower learning_rate_init, "
                f"scale the input features (e.g. to zero mean and unit variance), or "
                f"increase alpha.")

    def _reset_training_curves(self, early_stopping=False):
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self.best_loss_ = np.inf
        self._no_improvement_count = 0
        self._opt_state = None
        if early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

    # ---- persistence --------------------------------------------------------------
    def save(self, path: Union[str, "os.PathLike[str]", BinaryIO]) -> None:
        """Write the fitted model to ``path`` in pynn's plain-data model format.

        The file holds the hyperparameters, the weights, the classes and the
        pynn version, checked by a CRC-32; :func:`pynn.load` reads it back
        without executing any code (unlike pickle).  See ``pynn/_persist.py``
        for the byte layout.

        Parameters
        ----------
        path : str, os.PathLike or binary file object
            Where to write; an existing file is replaced atomically.
        """
        from ._persist import save_model

        save_model(self, path)

    def _check_loaded(self):
        """Consistency of a model read from a file (raises ModelFileError)."""
        from .exceptions import ModelFileError

        if self.out_activation_ not in _core.ACTIVATIONS:
            raise ModelFileError(f"corrupt model file: unknown output activation "
                                 f"{self.out_activation_!r}")
        k = self._layout.units[-1]
        if hasattr(self, "classes_"):
            n = len(self.classes_)
            ok = (k == n) if (getattr(self, "_multilabel", False) or n > 2) else (n == 2 and k == 1)
            if not ok:
                raise ModelFileError(f"corrupt model file: {n} classes do not fit {k} output "
                                     f"units")

    # ---- inference --------------------------------------------------------------
    def _check_feature_names(self, X, reset):
        """Record (reset=True) or check the column names of a DataFrame X, as
        scikit-learn does: names that differ from the fit's are an error; names
        present at fit but not now (or the reverse) give a warning."""
        names = feature_names(X)
        if reset:
            if names is None:
                self.__dict__.pop("feature_names_in_", None)
            else:
                self.feature_names_in_ = names
            return
        fitted = getattr(self, "feature_names_in_", None)
        who = type(self).__name__
        if fitted is None and names is None:
            return
        if fitted is None:
            warnings.warn(f"X has feature names, but {who} was fitted without feature names",
                          UserWarning, stacklevel=4)
            return
        if names is None:
            warnings.warn(f"X does not have valid feature names, but {who} was fitted with "
                          f"feature names", UserWarning, stacklevel=4)
            return
        if len(names) != len(fitted) or (names != fitted).any():
            unexpected = [c for c in names if c not in set(fitted)]
            missing = [c for c in fitted if c not in set(names)]
            detail = ""
            if unexpected:
                detail += f"\nFeature names unseen at fit time: {unexpected[:5]}"
            if missing:
                detail += f"\nFeature names seen at fit time, yet now missing: {missing[:5]}"
            if not detail:
                detail = "\nFeature names must be in the same order as they were in fit."
            raise ValueError("The feature names should match those that were passed during "
                             "fit." + detail)

    def _validate_for_predict(self, X: Any, check_finite: bool = True) -> np.ndarray:
        """check_finite=False: the caller runs _forward, whose core call checks."""
        self._check_is_fitted()
        self._check_feature_names(X, reset=False)
        X = validate_X(X, self._arena.dtype, check_finite=check_finite)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")
        self._sync_arena()
        return X

    def _forward(self, X, output=None, allow_inf=False):
        """Output of the network for validated X.  With several threads, blocks of
        rows go to threads whole (each needs its own workspace); the result is
        bitwise the same for any thread count and block size."""
        net = self._make_net(output)
        n = X.shape[0]
        nt = resolve_threads(self.n_threads) or _core.max_threads()
        block = min(_PREDICT_BLOCK, n)
        if nt > 1 and n >= 2 * _PREDICT_MIN_BLOCK:
            block = max(_PREDICT_MIN_BLOCK, min(block, -(-n // (4 * nt))))
        slots = max(1, min(nt, -(-n // block)))
        out = np.empty((n, self._layout.units[-1]), dtype=self._arena.dtype)
        ws = np.empty(net.workspace_size(block) * slots, dtype=self._arena.dtype)
        try:
            net.predict(out, self._arena, X, ws, block, nt)
        except _core.NonFiniteError:
            raise ValueError("X contains NaN or infinity; remove or impute them first") from None
        if not all_finite(out) and not (allow_inf and not np.isnan(out).any()):
            raise _OutputOverflow(
                "the model's output overflowed to NaN or infinity on some rows of X: their "
                "values are far outside what the model can handle (scale X the same way as "
                "the training data)")
        return out

    # ---- low-level access -------------------------------------------------------
    def forward_layers(self, X: ArrayLike) -> List[np.ndarray]:
        """Run the forward pass layer by layer.

        Returns the list ``[X, a_1, ..., a_L]`` of every layer's output, where
        ``a_l = f_l(a_{l-1} @ coefs_[l-1] + intercepts_[l-1])``, each computed by the
        core's dense kernel; ``a_L`` is the network's output.
        """
        from . import ops

        X = self._validate_for_predict(X)
        acts = [X]
        L = len(self.coefs_)
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            act = self.out_activation_ if i == L - 1 else self._hidden_activation()
            acts.append(ops.dense_forward(acts[-1], W, b, act, n_threads=self.n_threads))
        return acts

    def _loss_and_grad_arena(self, X, y):
        X = self._validate_for_predict(X)
        Y = self._encode_targets_for_loss(X, y)
        net = self._make_net()
        grads = np.empty_like(self._arena)
        ws = np.empty(net.workspace_size(X.shape[0]), dtype=self._arena.dtype)
        loss = net.loss_grad(grads, self._arena, X, Y, float(getattr(self, "alpha", 0.0)), ws,
                             resolve_threads(self.n_threads))
        if not (math.isfinite(loss) and all_finite(grads)):
            raise _OutputOverflow(
                "the loss or the gradients overflowed to NaN or infinity at the current "
                "weights: X, y or alpha are too large for the model's dtype "
                f"({self._arena.dtype.name}); scale the data or lower alpha")
        return loss, grads

    def loss_and_gradients(
            self, X: ArrayLike,
            y: ArrayLike) -> Tuple[float, List[np.ndarray], List[np.ndarray]]:
        """Loss and the gradient of every weight and bias on (X, y), at the
        current parameters, without changing the model.

        Returns ``(loss, coef_grads, intercept_grads)``; the lists hold arrays
        shaped like ``coefs_`` and ``intercepts_``.  The loss is the one the
        model minimises (the mean data loss plus ``alpha / 2 * sum(W**2) / n``).
        """
        loss, grads = self._loss_and_grad_arena(X, y)
        lay = self._layout
        cg = [grads[w:w + i * o].reshape(i, o)
              for (i, o), w in zip(zip(lay.units[:-1], lay.units[1:]), lay.w_off)]
        ig = [grads[b:b + o] for o, b in zip(lay.units[1:], lay.b_off)]
        return float(loss), cg, ig
