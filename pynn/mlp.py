"""Multilayer perceptrons with scikit-learn's interface: MLPClassifier and
MLPRegressor.  Parameter names, defaults, outputs, losses, initialisation and
fitted attributes follow sklearn.neural_network so that switching is a
one-line import change; the math runs in pynn's C core."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numbers

import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~5 ms at import; hints only
    from numpy.typing import ArrayLike

from ._typing import Optional, Self

from . import _core
from ._base import AvailableIf, ClassifierMixin, NetworkBase
from .exceptions import ModelFileError
from ._validation import (check_bool, check_choice, check_float,
                          check_int, check_score_targets, check_y_given, column_or_1d, dtype_of,
                          regression_targets, validation_split)

__all__ = ["MLPClassifier", "MLPRegressor"]

def _stochastic(self):
    return self.solver != "lbfgs"


_NOT_STOCHASTIC = ("partial_fit is only available for stochastic optimizers ('sgd', 'adam'); "
                   "lbfgs is not stochastic")

# the activations a hidden layer may use (the core names them all)
_HIDDEN = ("identity", "logistic", "tanh", "relu")
_SCHEDULES = ("constant", "invscaling", "adaptive")


class _BaseMLP(NetworkBase):
    """Shared by MLPClassifier and MLPRegressor."""

    _multi_output = True  # multilabel indicator targets; several regression targets

    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size,
                 learning_rate, learning_rate_init, power_t, max_iter, shuffle,
                 random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                 beta_1, beta_2, epsilon, n_iter_no_change, max_fun, dtype, n_threads,
                 early_stopping, validation_fraction):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction

    # ---- validation -------------------------------------------------------------
    def _hidden_sizes(self):
        h = self.hidden_layer_sizes
        if isinstance(h, (numbers.Integral, np.integer)) and not isinstance(h, bool):
            h = [h]
        try:
            h = list(h)
        except TypeError:
            raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints, "
                            f"got {self.hidden_layer_sizes!r}") from None
        if len(h) >= _core.MAX_LAYERS:
            raise ValueError(f"hidden_layer_sizes has {len(h)} layers; pynn supports at most "
                             f"{_core.MAX_LAYERS - 1} hidden layers")
        return [check_int(u, "hidden_layer_sizes entries", low=1) for u in h]

    def _validate_params(self, incremental):
        self._hidden_sizes()
        check_choice(self.activation, "activation", _HIDDEN)
        check_choice(self.solver, "solver", (*_core.SOLVERS, "lbfgs"))
        check_int(self.max_fun, "max_fun", low=1)
        check_float(self.alpha, "alpha", low=0.0)
        check_choice(self.learning_rate, "learning_rate", _SCHEDULES)
        check_float(self.power_t, "power_t", low=0.0)
        check_float(self.momentum, "momentum", low=0.0, high=1.0)
        check_bool(self.nesterovs_momentum, "nesterovs_momentum")
        check_float(self.beta_1, "beta_1", low=0.0, high=1.0, high_open=True)
        check_float(self.beta_2, "beta_2", low=0.0, high=1.0, high_open=True)
        check_float(self.epsilon, "epsilon", low=0.0, low_open=True)
        check_bool(self.early_stopping, "early_stopping")
        check_float(self.validation_fraction, "validation_fraction", low=0.0, high=1.0,
                    low_open=True, high_open=True)
        dtype = self._validate_shared_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True: there is no "
                             "held-out data to score between calls; use fit, or set "
                             "early_stopping=False")
        return dtype

    def _dtype_sensitive_params(self):
        return {**super()._dtype_sensitive_params(), "alpha": self.alpha,
                "epsilon": self.epsilon}

    def _training_config(self, n_rows, incremental):
        return self._shared_config(
            n_rows, incremental, solver=self.solver, schedule=self.learning_rate,
            power_t=float(self.power_t), momentum=float(self.momentum),
            nesterov=bool(self.nesterovs_momentum), beta_1=float(self.beta_1),
            beta_2=float(self.beta_2), epsilon=float(self.epsilon), alpha=self._l2_penalty(),
            max_fun=int(self.max_fun))

    def _l2_penalty(self):
        return float(self.alpha)

    def _fit_bytes_per_param(self, dtype):
        from ._training import bytes_per_param
        return bytes_per_param(self.solver, bool(self.early_stopping), dtype)

    @property
    def _optimizer(self):
        """The optimizer state, under scikit-learn's private name (its
        ``learning_rate`` is the current step size); None for lbfgs."""
        return self.__dict__.get("_opt_state")

    # ---- the network --------------------------------------------------------------
    def _allocate(self, units, dtype, arena=None):
        super()._allocate(units, dtype, arena)
        self.n_layers_ = len(units)
        self.n_outputs_ = units[-1]

    def _init_weights(self):
        """Glorot-uniform weights and biases drawn exactly as scikit-learn draws them."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        for W, b in zip(self.coefs_, self.intercepts_):
            fan_in, fan_out = W.shape
            bound = np.sqrt(factor / (fan_in + fan_out))
            W[...] = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            b[...] = self._random_state.uniform(-bound, bound, fan_out)

    def _hold_out(self, X, Y, y, sw, first):
        """Early stopping: hold out validation_fraction of the rows as
        scikit-learn does (stratified for two classes); the score is accuracy
        or R^2 on them."""
        if not self.early_stopping or self.solver == "lbfgs":  # lbfgs uses every row
            return X, Y, sw, None
        if first or self.validation_scores_ is None:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
        self.best_loss_ = None  # as scikit-learn: the validation score decides
        # scikit-learn stratifies classifiers with one output column (two classes)
        groups = self._stratify_groups(Y) if Y.shape[1] == 1 else None
        if groups is not None:
            self._check_stratifiable(groups)
        train, held = validation_split(X.shape[0], float(self.validation_fraction),
                                       self._random_state, groups)
        y_arr = np.asarray(y)
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            y_arr = y_arr.ravel()
        X_val, y_val = X[held], y_arr[held]
        sw_val = None if sw is None else sw[held]
        X, Y = X[train], Y[train]
        sw = None if sw is None else np.ascontiguousarray(sw[train])
        if sw is not None and not sw.sum() > 0:
            raise ValueError("sample_weight is zero on every training row left after the "
                             "validation split")
        if sw_val is not None and not sw_val.sum() > 0:
            raise ValueError("sample_weight is zero on every row held out for early "
                             "stopping: the validation score would be undefined")
        return X, Y, sw, lambda: self._validation_score(X_val, y_val, sw_val)

    def fit(self, X: ArrayLike, y: ArrayLike,
            sample_weight: Optional[ArrayLike] = None) -> Self:
        """Fit the model to data matrix X and targets y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; a pandas DataFrame's column names are kept in
            ``feature_names_in_``.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets: class labels of any type, or a 0/1 indicator matrix for
            multilabel classification; real values for regression.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample.  Each minibatch's loss is the
            weighted mean ``sum_i w_i l_i / sum_i w_i`` (and the L2 term is
            divided by ``sum_i w_i``), as in scikit-learn.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier, trained by pynn's C core.

    A drop-in for ``sklearn.neural_network.MLPClassifier`` (solvers 'sgd' and
    'adam').  Hidden layers use ``activation``; the output is one logistic unit
    with binary cross-entropy for two classes, logistic units for multilabel
    targets, and softmax with categorical cross-entropy for more classes.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
        Units of each hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
    solver : {'sgd', 'adam'}, default='adam'
    alpha : float, default=1e-4
        L2 penalty: the loss gains ``alpha / 2 * sum(W**2) / n_batch``.
    batch_size : int, 'auto' or None, default='auto'
        'auto' is ``min(200, n_samples)``; None is full-batch gradient descent.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule for 'sgd', as in scikit-learn.
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
    random_state : int, RandomState or None, default=None
    tol : float or None, default=1e-4
        None disables the convergence test: exactly ``max_iter`` epochs run.
    verbose : bool or int, default=False
        0/False: silent.  1/True: a live progress bar on stderr (epoch, loss,
        validation score, samples/s, time left).  2: one line per epoch on
        stdout, for logs.
    warm_start : bool, default=False
        Continue from the previous fit's weights instead of starting afresh.
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (drawn as
        scikit-learn's train_test_split draws it: stratified for two
        classes), score it after every epoch (accuracy or R^2), stop once the score has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and keep the weights that scored best.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping`` is on.
    beta_1, beta_2, epsilon : float, defaults 0.9, 0.999, 1e-8
    n_iter_no_change : int, default=10
    dtype : {'float32', 'float64', 'bfloat16'}, default='float32'
        Precision of the weights and of all arithmetic.  'bfloat16' is mixed
        precision: weights, biases, optimizer state, losses and ``coefs_`` stay
        float32, and the operands of every layer's three matrix products (the
        forward ``x @ W``, the gradients ``x.T @ delta`` and ``delta @ W.T``)
        are rounded to bfloat16 (to nearest, ties to even) and multiplied with
        float32 sums, as in PyTorch's ``autocast``; bias, activations and their
        derivatives are float32.  Prediction uses the same products.  The
        first layer on sparse input stays float32 (its products are not
        matrix products).
    n_threads : int or None, default=None
        Threads for the core; None follows OpenMP's default (OMP_NUM_THREADS).
        More than the processors this process may run on are not used (a
        bigger value is silently capped), and a process forked after pynn ran
        threads uses one thread (with a RuntimeWarning).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coefs_, intercepts_ : lists of ndarray
        Views into the model's parameters: ``coefs_[i]`` is ``(n_in, n_out)``;
        writing into them in place changes the model.
    n_iter_, loss_, loss_curve_, best_loss_, t_, n_features_in_, n_layers_,
    n_outputs_, out_activation_ : as in scikit-learn.
    validation_scores_ : list of float or None
        The validation score after each epoch (``early_stopping`` only).
    best_validation_score_ : float or None
        The best of those; the model holds the weights that reached it.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame X seen in ``fit`` (absent otherwise).
    """

    _estimator_type = "classifier"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 max_fun=15000, dtype="float32", n_threads=None):
        super().__init__(hidden_layer_sizes, activation, solver, alpha, batch_size,
                         learning_rate, learning_rate_init, power_t, max_iter, shuffle,
                         random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                         beta_1, beta_2, epsilon, n_iter_no_change, max_fun, dtype, n_threads,
                         early_stopping, validation_fraction)

    _allow_multilabel = True
    # scikit-learn fits a single class (its output unit learns "never")
    _min_classes = 1
    # a warm start must see the same classes as the fit before it
    _warm_start_same_classes = True

    def _output_activation(self, encoder):
        return "logistic" if encoder.n_columns == 1 or encoder.multilabel else "softmax"

    def _activations(self):
        loss = ("categorical_cross_entropy" if self.out_activation_ == "softmax"
                else "binary_cross_entropy")
        return self.activation, self.out_activation_, loss

    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None,
                    classes: Optional[ArrayLike] = None) -> Self:
        """One epoch over (X, y), continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array-like of shape (n_classes,), default=None
            Every label that can ever appear; required on the first call, as
            in scikit-learn (not needed for a multilabel indicator matrix).

        Returns
        -------
        self : object
        """
        if not hasattr(self, "_layout"):
            if classes is None and np.asarray(y).ndim == 1:
                raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    partial_fit = AvailableIf(partial_fit, _stochastic, _NOT_STOCHASTIC)  # type: ignore

    def _stratify_groups(self, Y):
        return self._encoder.groups(Y)

    def _check_stratifiable(self, groups):
        """Every class needs two members for the stratified split of early
        stopping.  The message is scikit-learn's, whose classes are the rows of
        its boolean target encoding ('True' is the positive class of two)."""
        counts = np.bincount(groups.astype(np.intp), minlength=self._encoder.n_columns)
        few = [int(g) for g in np.nonzero(counts[:len(self.classes_)] == 1)[0]]
        if not few:
            return
        k = self._encoder.n_columns
        rows = [str(bool(g)) if k == 1 else " ".join(str(j == g) for j in range(k))
                for g in few]
        raise ValueError(f"The least populated classes in y have only 1 member, which is "
                         f"too few. The minimum number of groups for any class cannot be "
                         f"less than 2. Classes with too few members are: {rows} (the "
                         f"labels {self.classes_[few].tolist()}); early stopping splits "
                         f"off its validation set stratified by class")

    def _predict_validated(self, X):
        p = self._forward(X)
        if self._multilabel:
            return (p > 0.5).astype(int)
        if len(self.classes_) == 1:  # fitted on one class, as scikit-learn allows
            return np.repeat(self.classes_, X.shape[0])
        if len(self.classes_) == 2:
            return self.classes_[(p.ravel() > 0.5).astype(int)]
        return self.classes_[np.argmax(p, axis=1)]

    def _accuracy(self, pred, y, sample_weight):
        y = np.asarray(y)
        if self._multilabel:
            correct = (pred == y).all(axis=1)
        else:
            correct = pred == column_or_1d(y)
        return float(np.average(correct, weights=sample_weight))

    def _validation_score(self, X, y, sw):
        return self._accuracy(self._predict_validated(X), y, sw)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1 (softmax or binary outputs); for multilabel models,
            each column is that label's independent probability.
        """
        X = self._validate_for_predict(X, check_finite=False)
        p = self._forward(X)
        if p.shape[1] == 1 and not self._multilabel:  # two classes (or one)
            p = p.ravel()
            return np.column_stack([1.0 - p, p])
        return p

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,), or (n_samples, n_classes) for multilabel
            Labels from ``classes_`` (a 0/1 indicator matrix for multilabel).
        """
        return self._predict_validated(self._validate_for_predict(X, check_finite=False))

    def score(self, X: ArrayLike, y: ArrayLike,
              sample_weight: Optional[ArrayLike] = None) -> float:
        """Mean accuracy on (X, y) (subset accuracy for multilabel).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        pred = self.predict(X)
        y, sw = check_score_targets(len(pred), y, sample_weight, type(self).__name__)
        return self._accuracy(pred, y, sw)


class MLPRegressor(_BaseMLP):
    """Multi-layer perceptron regressor, trained by pynn's C core.

    A drop-in for ``sklearn.neural_network.MLPRegressor``.  With
    ``loss='squared_error'`` (the default): identity output units and
    ``1/n sum_k 1/2 ||y_hat_k - y_k||^2``; for a single target this equals
    scikit-learn's loss exactly, with several targets scikit-learn's reported
    loss is additionally divided by the number of targets, while both follow
    the same gradient.  With ``loss='poisson'``: exponential output units
    (the log link) and half the Poisson deviance
    ``1/n sum_k sum_j [y log(y / y_hat) - y + y_hat]``, as scikit-learn
    defines it; targets must be non-negative.

    Parameters and attributes are those of :class:`MLPClassifier`, without
    ``classes_``, plus ``loss`` (keyword-only in pynn: scikit-learn 1.7+
    takes it as the first positional parameter).
    """

    _estimator_type = "regressor"

    # scikit-learn's loss names -> (output activation, the core's loss)
    _LOSSES = {"squared_error": ("identity", "half_squared_error"),
               "poisson": ("exp", "half_poisson_deviance")}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error",
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 max_fun=15000, dtype="float32", n_threads=None):
        super().__init__(hidden_layer_sizes, activation, solver, alpha, batch_size,
                         learning_rate, learning_rate_init, power_t, max_iter, shuffle,
                         random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                         beta_1, beta_2, epsilon, n_iter_no_change, max_fun, dtype, n_threads,
                         early_stopping, validation_fraction)
        self.loss = loss

    def _validate_params(self, incremental):
        check_choice(self.loss, "loss", tuple(self._LOSSES))
        return super()._validate_params(incremental)

    def _activations(self):
        # the output activation fixed by the first fit decides the loss
        output = self.out_activation_
        loss = next(core for out, core in self._LOSSES.values() if out == output)
        return self.activation, output, loss

    def _encode_targets(self, y, n_rows, first, classes, dtype, warm=False):
        check_y_given(y, type(self).__name__)
        Y = regression_targets(y, n_rows, dtype)
        output = self._LOSSES[self.loss][0] if first else self.out_activation_
        if output == "exp" and (Y < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for "
                             "loss='poisson' (a Poisson regression's targets are counts or "
                             "rates, >= 0)")
        if first:
            self.out_activation_ = output
            self._y_ndim = np.asarray(y).ndim
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} targets, expected {self.n_outputs_}")
        return Y

    def _export_targets(self):
        return {"y_ndim": int(self._y_ndim)}

    def _import_targets(self, fitted):
        y_ndim = fitted.get("y_ndim")
        if y_ndim not in (1, 2) or isinstance(y_ndim, bool):
            raise ModelFileError(f"corrupt model file: y_ndim is {y_ndim!r}, not 1 or 2")
        if y_ndim == 1 and self.n_outputs_ != 1:
            raise ModelFileError(f"corrupt model file: y_ndim is 1 with {self.n_outputs_} "
                                 f"outputs")
        expected = self._LOSSES[self.loss][0]
        if self.out_activation_ != expected:
            raise ModelFileError(f"corrupt model file: out_activation_ is "
                                 f"{self.out_activation_!r}, loss={self.loss!r} uses "
                                 f"{expected!r}")
        self._y_ndim = int(y_ndim)

    def partial_fit(self, X: ArrayLike, y: ArrayLike,
                    sample_weight: Optional[ArrayLike] = None) -> Self:
        """One epoch over (X, y), continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    partial_fit = AvailableIf(partial_fit, _stochastic, _NOT_STOCHASTIC)  # type: ignore

    def _stratify_groups(self, Y):
        return None

    def _predict_validated(self, X):
        # in the model's dtype, as scikit-learn's MLPRegressor predicts in X's
        out = self._forward(X)
        return out.ravel() if self._y_ndim == 1 else out

    def _validation_score(self, X, y, sw):
        return self._r2(self._predict_validated(X), y, sw)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            float32 for float32 X, else float64, as scikit-learn's MLPRegressor
            (whose weights follow X's dtype); a float32 model's outputs widen
            exactly.
        """
        pred = self._predict_validated(self._validate_for_predict(X, check_finite=False))
        # float32 data gives float32 predictions, any other float64 (widening is exact)
        return pred.astype(dtype_of(X), copy=False)

    def score(self, X: ArrayLike, y: ArrayLike,
              sample_weight: Optional[ArrayLike] = None) -> float:
        """Coefficient of determination R^2 (averaged uniformly over targets).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        pred = self.predict(X)
        y, sw = check_score_targets(len(pred), y, sample_weight, type(self).__name__)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"y must be numeric for regression, got dtype {y.dtype}")
        k = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
        if k != self.n_outputs_:
            raise ValueError(f"y has {k} targets, expected {self.n_outputs_}")
        return self._r2(pred, y, sw)

    @staticmethod
    def _r2(pred, y, sample_weight):
        pred = np.asarray(pred, dtype=np.float64)
        pred = pred.reshape(pred.shape[0], -1)
        y = np.asarray(y, dtype=np.float64).reshape(pred.shape[0], -1)
        w = None if sample_weight is None else np.asarray(sample_weight, float)[:, None]
        mean = np.average(y, axis=0, weights=None if w is None else w.ravel())
        ss_res = np.sum((w if w is not None else 1.0) * (y - pred) ** 2, axis=0)
        ss_tot = np.sum((w if w is not None else 1.0) * (y - mean) ** 2, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res > 0, 0.0, 1.0))
        return float(np.mean(r2))

