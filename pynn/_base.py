"""What every pynn estimator shares: scikit-learn's parameter protocol, the
one ``_fit(incremental)`` behind fit and partial_fit (with the rollback of a
refused call), prediction, and the model's state as plain data (for pickling
and model files).

An estimator subclass translates its scikit-learn parameters into the pieces
this class asks for: a training config, the layer sizes and activations, the
target encoding and the initial weights.  Data flows one way: estimator ->
_validation -> _training -> _core."""
from __future__ import annotations

from typing import TYPE_CHECKING

import contextlib
import inspect
import math
import os
import threading
import time
import warnings
import weakref

import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~5 ms at import; hints only
    from numpy.typing import ArrayLike

    from ._training import TrainingConfig

from ._typing import Any, BinaryIO, Dict, List, Optional, Self, Tuple, Union

from . import _arena, _core, _persist, _sparse, ops
# _training (dataclasses and all) is imported when a fit starts, not with pynn
from ._validation import (ClassEncoder, ClassTargets, all_finite, batch_size_for,
                          check_batch_size, check_bool, check_fits_dtype, check_float, check_int,
                          check_n_features, check_patience, check_random_state,
                          check_sample_weight, check_verbose, check_y_given, dtype_of,
                          feature_names, is_bfloat16, refuse_non_finite, resolve_dtype,
                          resolve_threads, validate_X)
from .exceptions import ModelFileError, NotFittedError, OutputOverflow, sklearn_flavour

# Rows per block when predicting: bounds the workspace, not the result.
_PREDICT_BLOCK = 256
# Smallest block handed to a thread of its own when predicting in parallel.
_PREDICT_MIN_BLOCK = 32
# Multiply-adds per thread in the first call to the core when predicting: about
# 50 ms on the portable path, 3-6 ms on AVX-512 ...
_PREDICT_CALL_WORK = 250_000_000
# ... and each later call takes as many rows as ran in about this long in the
# call before (never fewer, at most 16 times as many): Ctrl-C stops a long
# predict between calls, and each call's fixed costs (the weights packed for
# it, its threads started, its last rows on one thread) stay a small part of
# it.  0: every call takes the first's rows.
_PREDICT_CALL_SECONDS = 0.05
# Dense training data of at least this many bytes, and at least _CHECK_LATE_RATIO
# times what undoing the fit would copy (the optimizer state a warm start
# continues, but for plain gradient descent's velocity; the weights come back
# from the run's own snapshot of them), is checked for NaN and infinity by the
# core as the steps read it, instead of in a pass over it before training (see
# _fit).
_CHECK_LATE_BYTES = 4 << 20
_CHECK_LATE_RATIO = 8
# Seeds for the core's shuffling are drawn below this bound from the random state.
_SEED_BOUND = np.iinfo(np.int64).max


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
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        kind = self._estimator_type
        clf = reg = None
        if kind == "classifier":
            clf = ClassifierTags(multi_class=self._multi_class, multi_label=self._multi_output)
        elif kind == "regressor":
            reg = RegressorTags()
        return Tags(estimator_type=kind, input_tags=InputTags(sparse=True),
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



# One fit at a time per estimator: the estimators being fitted, each with the
# thread that fits it (weak keys: no state on the estimator, nothing to pickle).
_FITTING: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()
_FITTING_LOCK = threading.Lock()


@contextlib.contextmanager
def _fitting(model):
    """Refuse a second fit or partial_fit of `model` while one runs in another
    thread (both would write the same weights and attributes)."""
    me = threading.get_ident()
    with _FITTING_LOCK:
        owner = _FITTING.get(model)
        if owner is not None and owner != me:
            raise RuntimeError(f"this {type(model).__name__} is already being fitted in another "
                               f"thread; fit one estimator per thread (e.g. copies made with "
                               f"sklearn.base.clone)")
        _FITTING[model] = me
    try:
        yield
    finally:
        with _FITTING_LOCK:
            _FITTING.pop(model, None)


class AvailableIf:
    """A method that exists only when check(self) holds (hasattr is False
    otherwise), as scikit-learn's available_if: e.g. partial_fit, absent for
    solver='lbfgs'."""

    def __init__(self, fn, check, why):
        self.fn, self.check, self.why = fn, check, why
        self.__doc__ = fn.__doc__

    def __get__(self, obj, owner=None):
        if obj is not None and not self.check(obj):
            raise AttributeError(self.why)
        return self.fn if obj is None else self.fn.__get__(obj, owner)


# ----------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------

def _count(value, name):
    """A count stored in a model file (a non-negative integer; JSON numbers
    arrive as floats)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value != int(value) or value < 0):
        raise ModelFileError(f"corrupt model file: {name} is {value!r}, not a count")
    return int(value)


class NetworkBase(ParamsMixin):
    """Fit, partial_fit, prediction and state shared by the Perceptron and the
    MLPs.  Subclasses provide the hooks in the first section below."""

    coefs_: List[np.ndarray]
    intercepts_: List[np.ndarray]
    n_features_in_: int
    out_activation_: Any
    loss_: float
    # the constructor parameters every pynn estimator has
    learning_rate_init: float
    max_iter: int
    shuffle: bool
    tol: Optional[float]
    n_iter_no_change: int
    warm_start: bool
    verbose: Any
    batch_size: Any
    dtype: Any
    random_state: Any
    n_threads: Optional[int]

    #: True: every fit (not partial_fit) draws a new random state from
    #: ``random_state``; False: a warm start continues the previous one.
    _reseed_every_fit = False

    # ---- hooks: what a subclass says about itself ---------------------------------
    def _validate_params(self, incremental: bool) -> np.dtype:
        """Check every hyperparameter (scikit-learn checks them in fit); return
        the dtype of the weights."""
        raise NotImplementedError  # pragma: no cover

    def _training_config(self, n_rows: int, incremental: bool) -> TrainingConfig:
        raise NotImplementedError  # pragma: no cover

    def _l2_penalty(self) -> float:
        """alpha of the loss's L2 term."""
        return 0.0

    def _hidden_sizes(self) -> List[int]:
        return []

    def _activations(self) -> Tuple[str, str, str]:
        """(hidden activation, output activation, loss): names the core defines."""
        raise NotImplementedError  # pragma: no cover

    def _encode_targets(self, y, n_rows, first, classes, dtype, warm=False):
        """The (n_rows, n_outputs) targets of dtype for y; on the first fit, also
        records what the targets say (classes_, the output activation...).
        warm: a warm-started fit (not partial_fit)."""
        raise NotImplementedError  # pragma: no cover

    def _fit_bytes_per_param(self, dtype) -> int:
        """What a fit of this estimator holds per network parameter."""
        from ._training import bytes_per_param
        return bytes_per_param("sgd", False, dtype)

    def _init_weights(self):
        """Fill a freshly allocated arena (default: zeros)."""

    def _restart_needed(self, dtype) -> bool:
        """On a warm start: whether the parameters changed so that the weights
        cannot continue (then the fit starts afresh)."""
        return False

    def _hold_out(self, X, Y, y, sw, first):
        """Split off early stopping's validation rows: (X, Y, sw, score) where
        score() scores the current weights on them, or None."""
        return X, Y, sw, None

    def _view_specs(self):
        """(offset, shape, transposed) of each public array, in arena order."""
        return self._layout.layer_specs()

    def _get_views(self):
        return [a for pair in zip(self.coefs_, self.intercepts_) for a in pair]

    def _set_views(self, views):
        self.coefs_ = views[0::2]
        self.intercepts_ = views[1::2]

    def _export_targets(self) -> Dict[str, Any]:
        """What the fitted target encoding needs to be rebuilt (plain data)."""
        return {}

    def _import_targets(self, fitted: Dict[str, Any]) -> None:
        """Rebuild the target encoding from _export_targets' data."""

    # ---- what every estimator's parameters share ------------------------------------
    def _validate_shared_params(self) -> np.dtype:
        """Check the parameters every pynn estimator has; return the dtype."""
        check_float(self.learning_rate_init, "learning_rate_init", low=0.0, low_open=True)
        check_int(self.max_iter, "max_iter", low=1)
        check_bool(self.shuffle, "shuffle")
        if self.tol is not None:
            check_float(self.tol, "tol", low=0.0)
        check_patience(self.n_iter_no_change)
        check_bool(self.warm_start, "warm_start")
        check_verbose(self.verbose)
        resolve_threads(self.n_threads)
        check_batch_size(self.batch_size)
        dtype = resolve_dtype(self.dtype)
        if dtype is not None:  # None follows X: checked once X is seen
            check_fits_dtype(dtype, **self._dtype_sensitive_params())
        return dtype

    def _dtype_sensitive_params(self) -> Dict[str, Any]:
        """Parameters that must stay finite and non-zero in the model's dtype."""
        return {"learning_rate_init": self.learning_rate_init}

    def _shared_config(self, n_rows: int, incremental: bool, **solver: Any) -> TrainingConfig:
        """The training config for a fit on n_rows rows from the shared
        parameters plus `solver`'s settings."""
        # L-BFGS takes every row at once, whatever batch_size says
        from ._training import TrainingConfig
        batch_size = (n_rows if solver.get("solver") == "lbfgs"
                      else batch_size_for(self.batch_size, n_rows))
        return TrainingConfig(
            learning_rate_init=float(self.learning_rate_init), batch_size=batch_size,
            max_iter=1 if incremental else int(self.max_iter), shuffle=bool(self.shuffle),
            tol=None if self.tol is None else float(self.tol),
            n_iter_no_change=check_patience(self.n_iter_no_change),
            n_threads=resolve_threads(self.n_threads), verbose=check_verbose(self.verbose),
            incremental=incremental, **solver)

    # ---- the fit ---------------------------------------------------------------
    def _fit(self, X, y, incremental=False, classes=None, sample_weight=None):
        """fit (incremental=False) and partial_fit (True).  Everything up to the
        training loop either succeeds or leaves the model as it was (unfitted,
        or with its previous weights and classes)."""
        with _fitting(self):
            saved = self.__dict__.copy()
            try:
                run = self._prepare_run(X, y, incremental, classes, sample_weight)
            except BaseException:
                self.__dict__.clear()
                self.__dict__.update(saved)
                raise
            # A run that checks X as it trains (_check_late) may find a NaN after
            # some steps: the model then goes back to what it was, as if X had
            # been refused before training.
            undo = self._undo_point(saved, run) if getattr(run, "check_x", False) else None
            refused = False
            try:
                run.run(self)
            except _core.NonFiniteInputError:
                if undo is None:
                    raise
                refused = True
            except Exception:
                # (a divergence, say) before the run reached a bad row: X would
                # have been refused before training, so it is refused now
                if undo is None or all_finite(run.X, resolve_threads(self.n_threads)):
                    raise
                refused = True
            finally:
                if not refused:
                    self._opt_state = run.optimizer
                    buffers = run.keep_buffers()
                    if buffers is None:
                        self.__dict__.pop("_scratch", None)
                    else:
                        self._scratch = buffers
            if refused:
                self._roll_back(saved, undo, run)
                refuse_non_finite(X, run.X, run.X.dtype)
                raise ValueError("X contains NaN or infinity; remove or impute them first")
        return self

    def _check_late(self, X, first):
        """Whether the core checks the dense, validated X for NaN and
        infinity batch by batch as it trains (the first epoch reads every row
        before its step), instead of a pass over X before: that pass reads all
        of X from memory once more, ~10% of a small network's fit.  Only where
        undoing the steps taken before a bad row is cheap next to that pass
        (first fits undo nothing; a warm start's weights come back from the
        run's snapshot of them, _undo_point), and not with early stopping (the
        held-out rows are scored, not trained on) or L-BFGS (no step loop)."""
        if (getattr(self, "solver", "sgd") == "lbfgs" or getattr(self, "early_stopping", False)
                or X.nbytes < _CHECK_LATE_BYTES):
            return False
        from ._training import plain_sgd
        undo = 0
        opt = self.__dict__.get("_opt_state")
        if not first and opt is not None and not plain_sgd(getattr(self, "solver", "sgd"),
                                                           getattr(self, "momentum", 0.0)):
            # (the weights come back from the run's first snapshot: no copy)
            undo = sum(a.nbytes for a in opt.arrays())
        return X.nbytes >= _CHECK_LATE_RATIO * undo

    def _undo_point(self, saved, run):
        """What _roll_back needs beyond the attributes in `saved`: whether the
        run changes the weights in place (a warm start's: they come back from
        the run's snapshot of them at its start, run.start_weights), a copy of
        the optimizer state it continues, and the random state.  (A first
        fit's arrays are new.)  Plain gradient descent's velocity needs no
        copy: the core writes it only at an epoch's last step, after every row
        of the first epoch was checked."""
        from ._training import plain_sgd
        opt, cfg = saved.get("_opt_state"), run.config
        kept = None
        if opt is not None and run.optimizer is opt:
            kept = opt.copy(arrays=not plain_sgd(cfg.solver, cfg.momentum))
        return {"arena": saved.get("_arena") is run.arena, "opt": kept, "rng": run.rng_before}

    def _roll_back(self, saved, undo, run):
        start = run.start_weights() if undo["arena"] else None
        if start is not None:  # (None: the run never started; the weights are as they were)
            np.copyto(saved["_arena"], start)
        self.__dict__.clear()
        self.__dict__.update(saved)
        if undo["opt"] is not None:
            self._opt_state = undo["opt"]
        rng, state = undo["rng"]
        rng.set_state(state)

    def _prepare_run(self, X, y, incremental, classes, sample_weight):
        dtype = self._validate_params(incremental)
        fitted = hasattr(self, "_layout")
        first = not (fitted and (self.warm_start or incremental))
        if not first and not incremental and self._restart_needed(dtype):
            first = True
        if not first and list(self._layout.units[1:-1]) != self._hidden_sizes():
            raise ValueError(f"hidden_layer_sizes changed from {list(self._layout.units[1:-1])} "
                             f"to {self._hidden_sizes()}: a warm start or partial_fit continues "
                             f"the same architecture; refit from scratch (warm_start=False)")
        check_y_given(y, type(self).__name__)
        self._check_feature_names(X, reset=first)
        if dtype is None:  # dtype=None: the data's (the model's, on a warm start)
            dtype = self._arena.dtype if not first else dtype_of(X)
            check_fits_dtype(dtype, **self._dtype_sensitive_params())
        check_late = False
        if _sparse.is_sparse(X):
            X = _sparse.validate_sparse(X, dtype)
        else:
            raw, X = X, validate_X(X, dtype, check_finite=False)
            check_late = self._check_late(X, first)
            if not check_late:
                refuse_non_finite(raw, X, dtype, n_threads=resolve_threads(self.n_threads))
        if not first:
            check_n_features(X, self.n_features_in_, type(self).__name__)
        Y = self._encode_targets(y, X.shape[0], first, classes, dtype,
                                 warm=not first and not incremental)
        sw = check_sample_weight(sample_weight, X.shape[0], dtype)
        if not first:
            self._sync_arena()
            if self._arena.dtype != dtype:
                raise ValueError(f"dtype changed from {self._arena.dtype} to {dtype} "
                                 f"between fits; refit from scratch (warm_start=False)")
        if first or not hasattr(self, "_random_state") or (self._reseed_every_fit
                                                           and not incremental):
            self._random_state = check_random_state(self.random_state)
        # before anything draws from it (the first weights, the run's seed): a
        # run that checks X late puts it back if it refuses X (the global one
        # for random_state=None, or the caller's own RandomState)
        rng_before = (self._random_state, self._random_state.get_state()) if check_late else None
        if first:
            self.n_features_in_ = X.shape[1]
            self._allocate([X.shape[1], *self._hidden_sizes(), Y.shape[1]], dtype)
            self._init_weights()
            self._reset_training_curves()
        if not isinstance(Y, ClassTargets):  # (class labels go to the core as they are)
            Y = np.ascontiguousarray(Y, dtype=dtype)
        X, Y, sw, score = self._hold_out(X, Y, y, sw, first)
        from ._training import LbfgsRun, TrainingRun
        config = self._training_config(X.shape[0], incremental)
        config.check_schedule(self.t_, X.shape[0], dtype)
        if config.solver == "lbfgs":
            # every evaluation takes the whole target matrix
            return LbfgsRun(config, self._make_net(), self._arena, X,
                            np.ascontiguousarray(Y, dtype=dtype), sw)
        seed = int(self._random_state.randint(_SEED_BOUND, dtype=np.int64))
        return TrainingRun(config, self._make_net(), self._arena, X, Y, sw, seed,
                           optimizer=self.__dict__.get("_opt_state"),
                           buffers=self.__dict__.get("_scratch"), validation=score,
                           check_x=check_late, rng_before=rng_before)

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

    # ---- the arena and the public arrays ---------------------------------------------
    def _check_is_fitted(self):
        if not hasattr(self, "_layout"):
            raise sklearn_flavour(NotFittedError)(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                f"appropriate arguments before using this estimator.")

    def _make_net(self, output=None):
        hidden, out, loss = self._activations()
        return _core.Net(self._layout.units, _core.ACTIVATIONS[hidden],
                         _core.ACTIVATIONS[output or out], _core.LOSSES[loss],
                         bf16=is_bfloat16(self.dtype))

    def _allocate(self, units, dtype, arena=None):
        """A fresh zeroed arena for layer sizes `units`, or (a loaded model)
        `arena` itself, adopted without a copy."""
        if arena is None:
            self._layout, self._arena = _arena.allocate(units, dtype,
                                                        self._fit_bytes_per_param(dtype))
        else:
            self._layout, self._arena = _arena.Layout(units), _arena.realign(arena)
        self._bind_views()

    def _bind_views(self):
        """Point the public arrays into the arena (writes go to the model)."""
        self._set_views(_arena.views(self._arena, self._view_specs()))

    def _sync_arena(self):
        """Re-pack the public arrays if the user replaced them (not in place)."""
        try:
            arrays = list(self._get_views())
        except AttributeError:
            arrays = []
        specs = self._view_specs()
        if _arena.views_intact(self._arena, arrays, specs):
            return
        self._arena = _arena.pack(arrays, specs, self._layout.size, self._arena.dtype)
        self._bind_views()
        self._opt_state = None

    # ---- state: pickling, copies, model files -------------------------------------------
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
            self._arena = _arena.realign(self._arena)
            opt = self._opt_state
            if opt is not None:
                opt.a = _arena.realign(opt.a)
                if opt.b is not None:
                    opt.b = _arena.realign(opt.b)
            self._bind_views()

    def __copy__(self):
        """A shallow copy with weights and optimizer state of its own (training
        one never changes the other)."""
        new = type(self).__new__(type(self))
        new.__setstate__(self.__getstate__())
        if new.__dict__.get("_opt_state") is not None:
            new._opt_state = new._opt_state.copy()
        return new

    def _export(self) -> Tuple[List[int], np.ndarray, Dict[str, Any]]:
        """(layer sizes, arena, fitted attributes as plain data): the model as
        a model file stores it.  The optimizer state is not part of it."""
        self._check_is_fitted()
        self._sync_arena()
        fitted = {
            "n_features_in_": int(self.n_features_in_),
            "out_activation_": self.out_activation_,
            "n_iter_": int(self.n_iter_),
            "t_": int(self.t_),
            "loss_": float(getattr(self, "loss_", float("nan"))),
            "loss_curve_": [float(v) for v in self.loss_curve_],
            "best_loss_": None if self.best_loss_ is None else float(self.best_loss_),
            "validation_scores_": (None if self.validation_scores_ is None
                                   else [float(v) for v in self.validation_scores_]),
            "best_validation_score_": (None if self.best_validation_score_ is None
                                       else float(self.best_validation_score_)),
            **self._export_targets(),
        }
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in_"] = [str(v) for v in self.feature_names_in_]
        return list(self._layout.units), self._arena, fitted

    @classmethod
    def _from_export(cls, params: Dict[str, Any], units: List[int], arena: np.ndarray,
                     fitted: Dict[str, Any]):
        """The model that _export described; raises ModelFileError when the
        pieces do not fit together."""
        model = cls(**params)
        model._validate_params(incremental=False)
        if units[1:-1] != model._hidden_sizes():
            raise ModelFileError(f"corrupt model file: layer sizes {units} do not match the "
                                 f"estimator's hidden layers {model._hidden_sizes()}")
        model._allocate(units, arena.dtype, arena=arena)
        model.n_features_in_ = _count(fitted["n_features_in_"], "n_features_in_")
        if model.n_features_in_ != units[0]:
            raise ModelFileError("corrupt model file: n_features_in_ does not match the layers")
        model.out_activation_ = fitted["out_activation_"]
        if model.out_activation_ not in _core.ACTIVATIONS:
            raise ModelFileError(f"corrupt model file: unknown output activation "
                                 f"{model.out_activation_!r}")
        model._reset_training_curves()
        model.n_iter_ = _count(fitted["n_iter_"], "n_iter_")
        model.t_ = _count(fitted["t_"], "t_")
        model.loss_ = fitted["loss_"]
        model.loss_curve_ = list(fitted["loss_curve_"])
        model.best_loss_ = fitted["best_loss_"]
        best = [] if model.best_loss_ is None else [model.best_loss_]
        if not all(isinstance(v, float) for v in [model.loss_, *best, *model.loss_curve_]):
            raise ModelFileError("corrupt model file: the training losses are not numbers")
        if fitted.get("validation_scores_") is not None:
            model.validation_scores_ = list(fitted["validation_scores_"])
            model.best_validation_score_ = fitted["best_validation_score_"]
            if not all(isinstance(v, float) for v in [model.best_validation_score_,
                                                       *model.validation_scores_]):
                raise ModelFileError("corrupt model file: the validation scores are not "
                                     "numbers")
        if "feature_names_in_" in fitted:
            model.feature_names_in_ = np.array(fitted["feature_names_in_"], dtype=object)
        model._import_targets(fitted)
        return model

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

        Raises
        ------
        pynn.ModelFileError
            The model could not be loaded back (e.g. its parameters were set
            to invalid values after the fit, or its weights hold NaN); nothing
            is written.
        """
        units, arena, fitted = self._export()
        _persist.save_model(path, type(self).__name__, self.get_params(), units, arena, fitted,
                            cls=type(self))

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
        if _sparse.is_sparse(X):
            X = _sparse.validate_sparse(X, self._arena.dtype, check_finite=check_finite)
        else:
            X = validate_X(X, self._arena.dtype, check_finite=check_finite)
        check_n_features(X, self.n_features_in_, type(self).__name__)
        self._sync_arena()
        return X

    def _forward(self, X, output=None, allow_inf=False):
        """Output of the network for validated X.  With several threads, blocks of
        rows go to threads whole (each needs its own workspace); the result is
        bitwise the same for any thread count and block size."""
        net = self._make_net(output)
        n = X.shape[0]
        nt = _core.threads(resolve_threads(self.n_threads))
        block = min(_PREDICT_BLOCK, n)
        if nt > 1 and n >= 2 * _PREDICT_MIN_BLOCK:
            block = max(_PREDICT_MIN_BLOCK, min(block, -(-n // (4 * nt))))
        slots = max(1, min(nt, -(-n // block)))
        out = np.empty((n, self._layout.units[-1]), dtype=self._arena.dtype)
        # past the blocks' workspaces: room to pack the weights once per call
        pack = net.predict_pack_size() if n > block else 0
        # (predict's workspace, a forward pass's: under a quarter of training's
        # for 784-256-128-10.  Sixteen threads' blocks of the training layout,
        # 37 MB in float32, were over glibc's largest mmap threshold, 32 MiB: a
        # fresh mapping every call, whose page faults took a third of a 16-thread
        # prediction of 10,000 rows)
        ws = np.empty(_sparse.predict_workspace_size(net, X, block) * slots + pack,
                      dtype=self._arena.dtype)
        # The core runs on rows [r0, r0 + step) per call, a fraction of a second of
        # work, so Ctrl-C between calls stops a long predict (the same bits: no row
        # depends on its block).
        units = self._layout.units
        per_row = max(1, sum(a * b for a, b in zip(units[:-1], units[1:])))
        step = max(block * slots, _PREDICT_CALL_WORK * nt // per_row // block * block)
        r0 = 0
        try:
            while r0 < n:
                part = X if r0 == 0 and step >= n else X[r0:r0 + step]
                t0 = time.perf_counter()
                _sparse.predict(net, out[r0:r0 + step], self._arena, part, ws, block, nt)
                took = time.perf_counter() - t0
                r0 += step
                if _PREDICT_CALL_SECONDS > 0 and took > 0:
                    grow = min(_PREDICT_CALL_SECONDS / took, 16.0)
                    step = max(step, int(step * grow) // block * block)
        except _core.NonFiniteError:
            raise ValueError("X contains NaN or infinity; remove or impute them first") from None
        if not all_finite(out) and not (allow_inf and not np.isnan(out).any()):
            raise OutputOverflow(
                "the model's output overflowed to NaN or infinity on some rows of X: their "
                "values are far outside what the model can handle (scale X the same way as "
                "the training data)")
        return out

    # ---- low-level access -------------------------------------------------------
    def forward_layers(self, X: ArrayLike) -> List[np.ndarray]:
        """Run the forward pass layer by layer.

        Returns the list ``[X, a_1, ..., a_L]`` of every layer's output, where
        ``a_l = f_l(a_{l-1} @ coefs_[l-1] + intercepts_[l-1])``, each computed by the
        core's dense kernel; ``a_L`` is the network's output.  A sparse X stays
        sparse (in CSR form); its layer is the core's sparse kernel.  With
        ``dtype='bfloat16'`` each dense layer runs the mode's products, as
        ``predict`` does.
        """
        X = self._validate_for_predict(X)
        hidden, output, _ = self._activations()
        weights, biases = self._layout.split(self._arena)
        bf16 = is_bfloat16(self.dtype)
        acts = [X]
        for i, (W, b) in enumerate(zip(weights, biases)):
            act = output if i == len(weights) - 1 else hidden
            if i == 0 and _sparse.is_sparse(X):
                acts.append(_sparse.forward(X, W, b, act, resolve_threads(self.n_threads)))
                continue
            if bf16:
                acts.append(self._bf16_layer(acts[-1], W, b, act))
                continue
            acts.append(ops.dense_forward(acts[-1], W, b, act, n_threads=self.n_threads))
        return acts

    def _bf16_layer(self, x, W, b, act):
        """One dense layer in the bfloat16 mode: a one-layer network of the
        core in the mode, through its prediction (the mode's products)."""
        code = _core.ACTIVATIONS[act]
        net = _core.Net([W.shape[0], W.shape[1]], code, code,
                        _core.LOSSES["half_squared_error"], bf16=True)
        x = np.ascontiguousarray(x, dtype=W.dtype)
        params = np.concatenate([W.ravel(), b])
        out = np.empty((x.shape[0], W.shape[1]), dtype=W.dtype)
        batch = max(1, min(x.shape[0], 1024))
        ws = np.empty(net.predict_workspace_size(batch), dtype=W.dtype)
        _sparse.predict(net, out, params, x, ws, batch, resolve_threads(self.n_threads))
        return out

    def _loss_and_grad_arena(self, X, y):
        check_y_given(y, type(self).__name__)
        X = self._validate_for_predict(X)
        Y = np.ascontiguousarray(
            self._encode_targets(y, X.shape[0], False, None, self._arena.dtype),
            dtype=self._arena.dtype)
        net = self._make_net()
        grads = np.empty_like(self._arena)
        ws = np.empty(_sparse.workspace_size(net, X, X.shape[0]), dtype=self._arena.dtype)
        alpha = self._l2_penalty()
        loss = _sparse.loss_grad(net, grads, self._arena, X, Y, alpha, ws,
                                 resolve_threads(self.n_threads))
        if not (math.isfinite(loss) and all_finite(grads)):
            raise OutputOverflow(
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
        cg, ig = self._layout.split(grads)
        return float(loss), cg, ig


class ClassifierMixin:
    """Targets of a classifier: labels encoded by one ClassEncoder, made on the
    first fit; ``classes_`` are its classes."""

    #: whether a 0/1 indicator matrix y is taken as multilabel targets
    _allow_multilabel = False
    #: fewest classes a first fit accepts
    _min_classes = 2
    #: whether a warm-started fit must see exactly the classes of the fit before
    _warm_start_same_classes = False

    classes_: np.ndarray
    out_activation_: Any

    def _output_activation(self, encoder: ClassEncoder) -> str:
        raise NotImplementedError  # pragma: no cover

    @property
    def _multilabel(self) -> bool:
        return self._encoder.multilabel

    def _encode_targets(self, y, n_rows, first, classes, dtype, warm=False):
        check_y_given(y, type(self).__name__)
        if first:
            enc, Y = ClassEncoder.fit_encode(y, n_rows, classes, self._allow_multilabel, dtype,
                                             min_classes=self._min_classes)
            self._encoder, self.classes_ = enc, enc.classes
            self.out_activation_ = self._output_activation(enc)
            return Y
        self._encoder.check_same_classes(classes)
        if warm and self._warm_start_same_classes:
            self._encoder.check_same_labels(y, n_rows)
        return self._encoder.encode(y, n_rows, dtype)

    def _export_targets(self):
        return {"classes_": self.classes_, "multilabel": self._encoder.multilabel}

    def _import_targets(self, fitted):
        if "classes_" not in fitted:
            raise ModelFileError("corrupt model file: a classifier without classes_")
        enc = ClassEncoder(fitted["classes_"], bool(fitted.get("multilabel", False)),
                           self._allow_multilabel)
        n, k = len(enc.classes), self._layout.units[-1]
        if n < self._min_classes or enc.n_columns != k:
            raise ModelFileError(f"corrupt model file: {n} classes do not fit {k} output "
                                 f"units")
        if not isinstance(fitted.get("multilabel", False), bool):
            raise ModelFileError("corrupt model file: multilabel is not true or false")
        if enc.classes.ndim != 1:
            raise ModelFileError("corrupt model file: classes_ is not a list of labels")
        try:
            unique = np.unique(enc.classes)
        except TypeError:
            unique = None
        if unique is None or unique.shape != enc.classes.shape or (unique != enc.classes).any():
            raise ModelFileError("corrupt model file: classes_ is not sorted and unique")
        expected = self._output_activation(enc)
        if self.out_activation_ != expected:
            raise ModelFileError(f"corrupt model file: out_activation_ is "
                                 f"{self.out_activation_!r}, {type(self).__name__} with these "
                                 f"classes and parameters uses {expected!r}")
        self._encoder, self.classes_ = enc, enc.classes
