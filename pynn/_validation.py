"""Input checks, label encoding and the choice of dtype: pure functions of
their arguments, no estimator state.  Every message names the argument and
says what was expected."""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from . import _core
from ._typing import Any, Optional, Tuple
from .exceptions import DataConversionWarning, sklearn_flavour

_DTYPES = {"float32": np.float32, "float64": np.float64}


# ---- hyperparameters ---------------------------------------------------------------------

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


def is_bfloat16(dtype):
    """Whether dtype asks for the mixed-precision mode: 'bfloat16' (or the
    bfloat16 dtype of the ml_dtypes package, which NumPy itself lacks)."""
    if isinstance(dtype, str):
        return dtype == "bfloat16"
    return getattr(dtype, "__name__", None) == "bfloat16" or (
        getattr(dtype, "name", None) == "bfloat16")


def resolve_dtype(dtype):
    """The dtype the weights are stored in: np.float32 or np.float64 from a
    name or dtype ('bfloat16', the mixed-precision mode, keeps float32 weights:
    see is_bfloat16); None stays None (the data's dtype decides, see
    dtype_of)."""
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype in _DTYPES:
        return np.dtype(_DTYPES[dtype])
    if is_bfloat16(dtype):
        return np.dtype(np.float32)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32', 'float64', 'bfloat16' or None, "
                         f"got {dtype!r}")
    return dt


def dtype_of(X):
    """dtype=None: float32 data trains in float32, anything else in float64
    (as scikit-learn's MLPs follow X's dtype)."""
    dt = getattr(X, "dtype", None)
    if dt is None and hasattr(X, "dtypes"):  # a DataFrame: one dtype for all columns
        kinds = set(getattr(X, "dtypes"))
        dt = kinds.pop() if len(kinds) == 1 else None
    try:
        dt = np.dtype(dt) if dt is not None else None
    except TypeError:
        dt = None
    return np.dtype(np.float32) if dt == np.float32 else np.dtype(np.float64)


_FORK_WARNED = False


def warn_if_forked():
    """Warn once when the core is on one thread because this process was forked
    after it ran threads (libgomp, OpenMP's runtime, is not fork-safe)."""
    global _FORK_WARNED
    if not _FORK_WARNED and _core.forked():
        _FORK_WARNED = True
        warnings.warn(
            "pynn runs on one thread in this process: it was forked (os.fork, "
            "multiprocessing's 'fork' start method) after pynn had run threads, and "
            "OpenMP cannot start threads in a forked child without hanging. Use the "
            "'spawn' or 'forkserver' start method (or joblib's loky backend) to keep "
            "threads in worker processes.", RuntimeWarning, stacklevel=3)


def resolve_threads(n_threads):
    """The n_threads the core is asked for (0: OpenMP's default).  The core uses
    at most the processors this process may run on (``_core.threads``), and one
    thread in a child forked after it ran threads (warned once)."""
    if n_threads is None:
        n_threads = 0  # the core asks OpenMP, which honours OMP_NUM_THREADS
    else:
        n_threads = check_int(n_threads, "n_threads", low=1, high=4096)
    if n_threads != 1:
        warn_if_forked()
    return n_threads


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


#: dtypes the core checks for NaN and infinity itself (native byte order)
_CORE_FINITE = (np.dtype(np.float32), np.dtype(np.float64))


def all_finite(a, n_threads=1):
    """True if `a` has no NaN or infinity, without a mask the size of `a`: a
    contiguous float32/float64 array in the core, in one pass over its bits
    (a large one on up to n_threads threads); others by a sum, finite only if
    every term is (when it is not, or finite values overflowed it, blocks are
    checked one by one)."""
    if a.dtype in _CORE_FINITE and a.flags.c_contiguous:
        return _core.all_finite(a.reshape(-1), n_threads)
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.sum()):
            return True
    flat = a.reshape(-1)
    step = 1 << 16
    return all(np.isfinite(flat[i:i + step]).all() for i in range(0, flat.size, step))


def too_large(name, dtype):
    """The message for finite values beyond dtype's range (not NaN or infinity)."""
    dt = np.dtype(dtype)
    hint = "; scale them or use dtype='float64'" if dt == np.float32 else "; scale them"
    return (f"{name} has values too large for {dt.name} (the largest finite {dt.name} is "
            f"{float(np.finfo(dt).max):.4g}){hint}")


def cast(arr, dtype, name, copy=False):
    """arr as a C-contiguous, aligned array of dtype (a copy if `copy`, else
    only when needed: a buffer's bytes at an odd offset, from a deserialised
    dask block or np.frombuffer, are copied so that the core reads whole
    values).  Finite values too large for dtype raise pynn's ValueError
    (too_large) instead of turning into infinity under NumPy's "overflow
    encountered in cast" RuntimeWarning.  (NumPy before 1.24 casts silently;
    the callers' finiteness checks then tell the two cases apart.)"""
    try:
        with np.errstate(over="raise"):
            if copy:
                return np.array(arr, dtype=dtype, order="C")
            return np.require(arr, dtype=dtype, requirements=["C", "A"])
    except FloatingPointError:
        raise ValueError(too_large(name, dtype)) from None


def check_2d_shape(shape, name="X"):
    """A data matrix is 2-D with at least one row and one column."""
    if len(shape) != 2:
        hint = (" Reshape your data with X.reshape(-1, 1) for a single feature or "
                "X.reshape(1, -1) for a single sample." if len(shape) == 1 else "")
        raise ValueError(f"Expected a 2-D array for {name}, got {len(shape)}-D with shape "
                         f"{shape}.{hint}")
    if shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={shape}) while a minimum "
                         f"of 1 is required: {name} is empty")
    if shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={shape}) while a minimum "
                         f"of 1 is required: {name} has no features")


def validate_X(X: Any, dtype: Any, name: str = "X", check_finite: bool = True,
               n_threads: int = 1) -> np.ndarray:
    """A 2-D, finite, C-contiguous array of `dtype` (copied only when needed).
    check_finite=False leaves the NaN/infinity test to the caller; n_threads:
    the threads the test may use on a large array."""
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
    check_2d_shape(arr.shape, name)
    out = cast(arr, dtype, name)
    if check_finite:
        refuse_non_finite(arr, out, dtype, name, n_threads)
    return out


def refuse_non_finite(X: Any, out: np.ndarray, dtype: Any, name: str = "X",
                      n_threads: int = 1) -> None:
    """validate_X's error if `out`, X as validate_X made it, holds a NaN or
    infinity: values too large for dtype, or NaN and infinities in X itself."""
    if not all_finite(out, n_threads):
        arr = np.asarray(X)
        if arr.dtype.kind == "f" and np.isfinite(arr).all():
            raise ValueError(too_large(name, dtype))
        raise ValueError(f"{name} contains NaN or infinity; remove or impute them first")


# Integer labels spanning at most this many values are encoded by table lookup.
_LABEL_TABLE_MAX = 1 << 20


def _table_base(lo):
    """The label a table of small-range integer labels starts from (lo its
    smallest): 0 where lo is small and not negative, so the labels index the
    table as they are."""
    return 0 if 0 <= lo <= _LABEL_TABLE_MAX else lo


def _table_offsets(v, base):
    """Integer labels v (each within _LABEL_TABLE_MAX of base) as intp
    positions v - base: v itself, uncopied, for intp labels and base 0.  The
    subtraction runs in intp (uint64 labels past intp's range: in uint64),
    never in a narrower type of v's, where it could wrap (int8 -128 and 127)."""
    if v.dtype == np.uint64 and base >= 0:
        return (v - np.uint64(base)).astype(np.intp)
    v = v.astype(np.intp, copy=False)
    return v - base if base else v


def unique_labels(y):
    """Sorted distinct labels; small-range integers without sorting all of y."""
    if y.dtype.kind in "iu" and y.size:
        lo, hi = int(y.min()), int(y.max())
        if hi - lo < _LABEL_TABLE_MAX:
            base = _table_base(lo)
            present = np.bincount(_table_offsets(y, base), minlength=hi - base + 1) > 0
            # (in y's type, where the sum wraps back into range: base may be past intp's)
            return np.nonzero(present)[0].astype(y.dtype) + y.dtype.type(base)
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
        k = classes.shape[0]
        if lo >= 0 and hi < k and classes[0] == 0 and classes[-1] == k - 1:
            # classes 0..k-1 (sorted and distinct): each label is its own
            # position, and intp labels are used as they are
            return y.astype(np.intp, copy=False)
        if hi - lo < _LABEL_TABLE_MAX:
            base = _table_base(lo)
            table = np.full(hi - base + 1, -1, dtype=np.intp)
            inside = np.nonzero((classes >= lo) & (classes <= hi))[0]
            table[_table_offsets(classes[inside], base)] = inside
            return table[_table_offsets(y, base)]
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


def check_patience(value):
    """n_iter_no_change: a positive int, or np.inf (never stop for lack of
    progress), as scikit-learn allows."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) \
            and value == math.inf:
        return math.inf
    return check_int(value, "n_iter_no_change", low=1)


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
    sw = cast(sw, dtype, "sample_weight")
    if not np.isfinite(sw).all():
        raise ValueError("sample_weight contains NaN or infinity")
    if (sw < 0).any():
        raise ValueError("sample_weight must be non-negative; got negative weights")
    if not sw.sum() > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive "
                         "weight")
    return sw


def validation_split(n, fraction, random_state, groups=None):
    """(train_rows, validation_rows) for early stopping, drawn from random_state
    exactly as scikit-learn's train_test_split draws them (ShuffleSplit, or
    StratifiedShuffleSplit when groups are given), rows in its order: with the
    same random state, the same rows train in the same order."""
    n_val = int(math.ceil(fraction * n))
    n_train = n - n_val
    if n_val < 2 or n_train < 1:
        raise ValueError(f"The validation set is too small: validation_fraction={fraction} of "
                         f"{n} samples leaves {n_val} for validation (at least 2 are needed) and "
                         f"{n_train} for training. Increase validation_fraction or the size "
                         f"of your dataset.")
    if groups is None:
        perm = random_state.permutation(n)
        return perm[n_val:n_val + n_train], perm[:n_val]
    uniq, inv = np.unique(groups, return_inverse=True)
    counts = np.bincount(inv)
    if n_train < len(uniq) or n_val < len(uniq):
        raise ValueError(f"early stopping's stratified split needs at least one row of each "
                         f"of the {len(uniq)} classes on both sides: {n_train} training and "
                         f"{n_val} validation rows are too few")
    members = np.split(np.argsort(inv, kind="mergesort"), np.cumsum(counts)[:-1])
    take_train = _apportion(counts, n_train, random_state)
    take_val = _apportion(counts - take_train, n_val, random_state)
    train, val = [], []
    for g in range(len(uniq)):
        rows = members[g].take(random_state.permutation(counts[g]), mode="clip")
        train.extend(rows[:take_train[g]])
        val.extend(rows[take_train[g]:take_train[g] + take_val[g]])
    return random_state.permutation(train), random_state.permutation(val)


def _apportion(counts, draws, random_state):
    """Rows of each group among `draws`: in proportion to the group sizes,
    floored, the rest going to the largest remainders with ties broken at
    random (scikit-learn's rule for stratified splits)."""
    share = counts / counts.sum() * draws
    take = np.floor(share)
    missing = int(draws - take.sum())
    remainder = share - take
    for value in np.sort(np.unique(remainder))[::-1]:
        if missing <= 0:
            break
        (tied,) = np.where(remainder == value)
        now = min(len(tied), missing)
        take[random_state.choice(tied, size=now, replace=False)] += 1
        missing -= now
    return take.astype(int)


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



def check_n_features(X, expected, who):
    """X (validated) has the number of columns the model was fitted with."""
    if X.shape[1] != expected:
        raise ValueError(f"X has {X.shape[1]} features, but {who} is expecting {expected} "
                         f"features as input")


# ---- batch size ---------------------------------------------------------------------------

def check_batch_size(batch_size):
    """'auto', None or a positive int (scikit-learn's choices)."""
    if batch_size is None:
        return
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise ValueError(f"batch_size must be 'auto', None or a positive int, "
                             f"got {batch_size!r}")
        return
    check_int(batch_size, "batch_size", low=1)


def batch_size_for(batch_size, n_samples):
    """The rows per step for a fit on n_samples rows, by scikit-learn's rules:
    None is the full batch, 'auto' min(200, n); a larger int is clipped to n
    with a warning.  The one place the batch is clamped: the core refuses a
    batch larger than the data."""
    if batch_size is None:
        return n_samples
    if isinstance(batch_size, str):
        return min(200, n_samples)
    bs = int(batch_size)
    if bs > n_samples:
        warnings.warn(f"Got batch_size={bs} larger than the {n_samples} samples; "
                      f"it is clipped to {n_samples}", UserWarning, stacklevel=5)
        bs = n_samples
    return bs


# ---- targets ------------------------------------------------------------------------------

def _check_classes_given(classes):
    cls_given = np.asarray(classes)
    if cls_given.dtype.kind in "fc" and not np.isfinite(cls_given).all():
        raise ValueError(f"classes contains NaN or infinity: {cls_given.tolist()}")
    return cls_given


class ClassTargets:
    """A classifier's targets as one class index per row: they stand for the
    rows of the one-hot matrix (a single 0/1 column for one output unit),
    which the core builds batch by batch while it trains, so a fit on many
    rows makes no (n_rows, n_outputs) matrix.  Whatever needs the matrix
    itself gets it from np.asarray (the L-BFGS solver, a loss on a sample)."""

    __slots__ = ("labels", "n_outputs", "dtype")
    ndim = 2

    def __init__(self, labels, n_outputs, dtype):
        # (aligned: the labels of y can be a view of a buffer at an odd offset)
        self.labels = np.require(labels, dtype=np.int64, requirements=["C", "A"])
        self.n_outputs = int(n_outputs)
        self.dtype = np.dtype(dtype)

    @property
    def shape(self):
        return (self.labels.shape[0], self.n_outputs)

    def __len__(self):
        return self.labels.shape[0]

    def __getitem__(self, rows):
        """The targets of some rows (an index array, mask or slice)."""
        return ClassTargets(self.labels[rows], self.n_outputs, self.dtype)

    def __array__(self, dtype=None, copy=None):
        n, m = self.shape
        out = np.zeros((n, m), dtype=dtype or self.dtype)
        if m == 1:
            out[:, 0] = self.labels == 1
        else:
            out.reshape(-1)[np.arange(n) * m + self.labels] = 1
        return out


class ClassEncoder:
    """Class labels -> the target columns of a classifier's output units.

    Two classes give one column (1 for ``classes[1]``), k > 2 classes give k
    one-hot columns, and (where allowed) a 0/1 indicator matrix of k columns is
    a multilabel target taken as it is.  Made by the first fit; later calls
    encode against the same classes and refuse labels outside them."""

    def __init__(self, classes, multilabel=False, allow_multilabel=False):
        self.classes = classes
        self.multilabel = bool(multilabel)
        self.allow_multilabel = bool(allow_multilabel)

    @property
    def n_columns(self):
        return len(self.classes) if self.multilabel or len(self.classes) > 2 else 1

    @classmethod
    def fit_encode(cls, y, n_rows, classes=None, allow_multilabel=False, dtype=np.float64,
                   min_classes=2):
        """(encoder, targets) for a first fit on labels y, whose classes are
        `classes` when given (partial_fit) or else those found in y."""
        y = np.asarray(y)
        if allow_multilabel and y.ndim == 2 and y.shape[1] > 1:
            enc = cls(np.arange(y.shape[1]), multilabel=True, allow_multilabel=True)
            return enc, enc._indicator(y, n_rows, dtype)
        y = _labels_1d(y, n_rows)
        if classes is not None:
            found = np.unique(_check_classes_given(classes))
        else:
            found = sorted_labels(y)
        if found.shape[0] < min_classes:
            raise ValueError(f"y has only one class ({found[0]!r}); a classifier needs at "
                             f"least 2 classes")
        enc = cls(found, allow_multilabel=allow_multilabel)
        return enc, enc._columns(y, dtype)

    def check_same_classes(self, classes):
        """partial_fit's classes= after the first call must repeat the first one."""
        if classes is None:
            return
        given = _check_classes_given(classes)
        if self.multilabel:
            return
        same = np.unique(given)
        if same.shape != self.classes.shape or (same != self.classes).any():
            raise ValueError(f"classes={given.tolist()} is not the same as on the first "
                             f"call to partial_fit: {self.classes.tolist()}")

    def check_same_labels(self, y, n_rows):
        """A warm start must see exactly the classes of the fit before (as
        scikit-learn requires); partial_fit may see a subset."""
        y = np.asarray(y)
        if self.multilabel or (y.ndim == 2 and y.shape[1] > 1):
            return
        found = sorted_labels(_labels_1d(y, n_rows))
        if found.shape != self.classes.shape or (found != self.classes).any():
            raise ValueError(f"warm_start can only be used where `y` has the same classes as "
                             f"in the previous call to fit. Previously got {self.classes}, "
                             f"`y` has {found}")

    def encode(self, y, n_rows, dtype=np.float64):
        """(n_rows, n_columns) targets of dtype for the labels y."""
        y = np.asarray(y)
        if self.allow_multilabel and y.ndim == 2 and y.shape[1] > 1:
            return self._indicator(y, n_rows, dtype)
        y = _labels_1d(y, n_rows)
        if self.multilabel:
            raise ValueError("this model was fitted on multilabel targets; y must be a 2-D "
                             "indicator matrix")
        return self._columns(y, dtype)

    def _indicator(self, y, n_rows, dtype):
        _check_n_rows(y, n_rows)
        if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
            raise ValueError("a 2-D y must be a multilabel indicator matrix of 0s and 1s")
        if not self.multilabel or y.shape[1] != len(self.classes):
            raise ValueError(f"y has {y.shape[1]} columns, expected the model's "
                             f"{'1-D labels' if not self.multilabel else len(self.classes)}")
        return y.astype(dtype)

    def _columns(self, y, dtype):
        idx = label_indices(y, self.classes)
        unseen = idx < 0
        if unseen.any():
            raise ValueError(f"y contains labels not in classes_ {self.classes.tolist()}: "
                             f"{np.unique(y[unseen]).tolist()[:5]}")
        # one output unit for two classes (1 for classes[1]; never, for one class),
        # else one-hot rows
        return ClassTargets(idx, 1 if len(self.classes) <= 2 else len(self.classes), dtype)

    def groups(self, Y):
        """Class of each encoded row, for a stratified split (None for multilabel)."""
        if self.multilabel:
            return None
        if isinstance(Y, ClassTargets):
            return Y.labels
        return Y[:, 0] if Y.shape[1] == 1 else np.argmax(Y, axis=1)


def _check_n_rows(y, n_rows):
    if y.shape[0] != n_rows:
        raise ValueError(f"X and y have different numbers of samples: {n_rows} and "
                         f"{y.shape[0]}")


def _labels_1d(y, n_rows):
    """1-D classification labels, one per row: no complex, NaN, infinite, None
    or continuous ones."""
    y = column_or_1d(y, warn=True)
    _check_n_rows(y, n_rows)
    if y.dtype.kind == "c":
        raise ValueError("y contains complex values")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity")
        if (y != np.round(y)).any():
            raise ValueError("Unknown label type: continuous. A classifier needs discrete "
                             "labels (integers, strings); for real-valued targets use "
                             "MLPRegressor")
    if y.dtype.kind == "O":
        if any(v is None or (isinstance(v, float) and not np.isfinite(v)) for v in y):
            raise ValueError("y contains None or NaN labels")
    return y


def regression_targets(y, n_rows, dtype):
    """Real targets as an (n_rows, n_outputs) array of dtype."""
    y = np.asarray(y)
    if y.dtype.kind == "O":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError("y must be numeric for regression; its object array holds "
                            "values that are not numbers") from None
    if y.dtype.kind == "c":
        raise ValueError("y contains complex values; regression targets must be real")
    if y.dtype.kind not in "biuf":
        raise TypeError(f"y must be numeric for regression, got dtype {y.dtype}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
    _check_n_rows(y, n_rows)
    if y.size == 0:
        raise ValueError(f"y has no targets (shape {y.shape})")
    Y = cast(y, dtype, "y", copy=True).reshape(y.shape[0], -1)
    if not np.isfinite(Y).all():
        if y.dtype.kind == "f" and np.isfinite(y).all():
            raise ValueError(too_large("y", dtype))
        raise ValueError("y contains NaN or infinity")
    return Y
