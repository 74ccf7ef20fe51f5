"""The single neuron of the textbook: z = X w + b, y_hat = sigma(z),
C = mean((y - y_hat)^2), trained by gradient descent in pynn's C core."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~5 ms at import; hints only
    from numpy.typing import ArrayLike

from ._typing import Any, Optional, Self, Tuple

from ._base import AvailableIf, ClassifierMixin, NetworkBase
from ._validation import check_choice, check_score_targets, column_or_1d

__all__ = ["Perceptron"]


class Perceptron(ClassifierMixin, NetworkBase):
    """A single neuron for binary classification, as in the textbook (and one
    neuron per class, one-vs-rest, for more than two classes).

    The neuron computes ``z = X @ coef_ + intercept_`` and ``y_hat = f(z)``.
    With ``activation='logistic'`` (f = sigma) it minimises the cost
    ``C = mean((y - y_hat)**2)`` by gradient descent, with the chain rule

        dC/dw_i = (2/n) sum_k (y_hat_k - y_k) sigma'(z_k) x_ki,
        sigma'(z) = sigma(z) (1 - sigma(z)),

    and ``w <- w - learning_rate_init * dC/dw``.  With ``activation='step'``
    it is Rosenblatt's perceptron: ``y_hat = [z >= 0]`` and the update
    ``w <- w + learning_rate_init * mean_k((y_k - y_hat_k) x_k)``.

    Weights start at zero, so a full-batch fit (the default) is deterministic.

    With k > 2 classes there are k such neurons side by side, neuron j
    learning "class j or not" from the same inputs; each has its own cost and
    gradient, exactly as if trained alone.  ``predict`` picks the class whose
    neuron has the largest z.

    Parameters
    ----------
    activation : {'logistic', 'step'}, default='logistic'
    learning_rate_init : float, default=0.1
    max_iter : int, default=1000
        Maximum number of epochs.
    tol : float or None, default=1e-4
        Training stops once the cost has not improved by ``tol`` for
        ``n_iter_no_change`` consecutive epochs; None runs exactly ``max_iter``.
    n_iter_no_change : int, default=10
    batch_size : int or None, default=None
        None is full-batch gradient descent; an int gives minibatches.
    shuffle : bool, default=True
        Reshuffle the rows every epoch (minibatches only).
    random_state : int, RandomState or None, default=None
    warm_start : bool, default=False
    verbose : bool or int, default=False
        1/True: a live progress bar on stderr; 2: one line per epoch on stdout.
    dtype : {'float32', 'float64', 'bfloat16'}, default='float32'
        'bfloat16': float32 weights, bfloat16 operands in the products (see
        MLPClassifier).
    n_threads : int or None, default=None
        Threads for the core, as in MLPClassifier: None follows OpenMP's default,
        capped at the processors this process may run on.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,), or (n_classes, n_features) for k > 2
    intercept_ : ndarray of shape (1,), or (n_classes,) for k > 2
    classes_ : ndarray of shape (n_classes,)
    n_iter_ : int
    loss_, loss_curve_ : the final cost and the cost of each epoch.
    n_features_in_ : int
    """

    _estimator_type = "classifier"

    out_activation_: Any = None  # set per fit from `activation`
    # a warm start reshuffles from random_state again, like a new fit
    _reseed_every_fit = True

    def __init__(self, activation="logistic", *, learning_rate_init=0.1, max_iter=1000,
                 tol=1e-4, n_iter_no_change=10, batch_size=None, shuffle=True,
                 random_state=None, warm_start=False, verbose=False, dtype="float32",
                 n_threads=None):
        self.activation = activation
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.dtype = dtype
        self.n_threads = n_threads

    # ---- the public arrays: coef_ (n_features,) and intercept_ (1,) --------------
    def _view_specs(self):
        lay = self._layout
        k = lay.units[1]
        if k == 1:
            return [(lay.w_off[0], (lay.units[0],), False), (lay.b_off[0], (1,), False)]
        # row j of coef_ is neuron j's weights: the transpose of the arena's W
        return [(lay.w_off[0], (k, lay.units[0]), True), (lay.b_off[0], (k,), False)]

    def _get_views(self):
        return [self.coef_, self.intercept_]

    def _set_views(self, views):
        self.coef_, self.intercept_ = views

    # ---- parameters -> the training run ---------------------------------------------
    def _validate_params(self, incremental):
        check_choice(self.activation, "activation", ("logistic", "step"))
        return self._validate_shared_params()

    def _training_config(self, n_rows, incremental):
        # plain gradient descent on the cost, or Rosenblatt's rule for 'step'
        # (the core's output delta for a step unit)
        return self._shared_config(n_rows, incremental, solver="sgd")

    def _activations(self):
        return "identity", self.out_activation_, "squared_error"

    def _output_activation(self, encoder):
        return self.activation

    def _restart_needed(self, dtype):
        # a warm start with another dtype or activation starts afresh
        return self._arena.dtype != dtype or self.out_activation_ != self.activation

    def fit(self, X: ArrayLike, y: ArrayLike,
            sample_weight: Optional[ArrayLike] = None) -> Self:
        """Train the neuron(s) on X and class labels y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels of any type; two classes train one neuron, more train one
            neuron per class.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights: the cost becomes ``sum_i w_i (y_i - y_hat_i)^2
            / sum_i w_i`` (per minibatch).

        Returns
        -------
        self : object
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    def partial_fit(self, X: ArrayLike, y: ArrayLike, classes: Optional[ArrayLike] = None,
                    sample_weight: Optional[ArrayLike] = None) -> Self:
        """One epoch over (X, y), continuing from the current weights.

        The first call on an unfitted model equals ``fit`` with
        ``max_iter=1`` on the same data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            Every label that can ever appear; required on the first call (as
            in scikit-learn), and if given later, the same labels.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        if not hasattr(self, "_layout") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """The neurons' pre-activations ``z = X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        z : ndarray of shape (n_samples,) for two classes, (n_samples, n_classes) for more
        """
        X = self._validate_for_predict(X, check_finite=False)
        # z = +-inf (inputs far beyond the weights' scale) still has a sign to
        # decide by; only NaN is refused
        z = self._forward(X, output="identity", allow_inf=True)
        return z.ravel() if z.shape[1] == 1 else z

    def _predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probabilities of each class, shape (n_samples, n_classes)
        (``activation='logistic'`` only: a step unit has no probabilities).
        Two classes: ``[1 - y_hat, y_hat]``; more: each neuron's ``y_hat``
        divided by their sum (one-vs-rest normalisation)."""
        X = self._validate_for_predict(X, check_finite=False)
        p = self._forward(X)
        if p.shape[1] == 1:
            p = p.ravel()
            return np.column_stack([1.0 - p, p])
        total = p.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(total > 0, p / total, 1.0 / p.shape[1])
        return out

    predict_proba = AvailableIf(
        _predict_proba, lambda self: self.activation == "logistic",
        "predict_proba is available only with activation='logistic'; a step unit "
        "outputs hard 0/1 decisions")

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted labels: for two classes, classes_[1] where z > 0 (logistic)
        or z >= 0 (step); for more, the class whose neuron has the largest z.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        z = self.decision_function(X)
        if z.ndim == 2:
            return self.classes_[np.argmax(z, axis=1)]
        pos = z >= 0 if self.out_activation_ == "step" else z > 0
        return self.classes_[pos.astype(int)]

    def score(self, X: ArrayLike, y: ArrayLike,
              sample_weight: Optional[ArrayLike] = None) -> float:
        """Mean accuracy on (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        pred = self.predict(X)
        y, sw = check_score_targets(len(pred), y, sample_weight, "Perceptron")
        return float(np.average(pred == column_or_1d(y), weights=sw))

    def loss_and_gradients(self, X: ArrayLike,  # type: ignore[override]
                           y: ArrayLike) -> Tuple[float, np.ndarray, np.ndarray]:
        """Cost C = mean((y - y_hat)^2) on (X, y) at the current weights and its
        gradient: returns ``(C, dC/dcoef_, dC/dintercept_)``, shaped like
        ``coef_`` and ``intercept_`` (with k > 2 classes, C sums the k neurons'
        costs, so row j of dC/dcoef_ is neuron j's own gradient)."""
        loss, grads = self._loss_and_grad_arena(X, y)
        (gW,), (gb,) = self._layout.split(grads)
        return (float(loss), (gW.ravel().copy() if gW.shape[1] == 1 else gW.T.copy()),
                gb.copy())
