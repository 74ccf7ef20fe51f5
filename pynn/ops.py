"""The core's kernels, one formula at a time, on NumPy arrays.

For people learning or checking the math: each function runs one C kernel
of the core and returns NumPy arrays, so every step of forward propagation,
the chain rule and gradient descent can be inspected.  Inputs are float32 or
float64 arrays (all of one dtype); outputs have that dtype.

========================  ================================================
``activation``            a = f(z)
``activation_backward``   delta * f'(z), with f' read from the output a
``loss``                  mean over rows of the per-row loss
``output_delta``          d loss_k / d z_k of the output layer
``dense_forward``         f(x W + b)
``dense_backward``        dW = x^T delta / n + alpha W / n, db, dx = delta W^T
``sgd_update``            v = momentum v - lr g; p += v (or Nesterov)
``adam_update``           one Adam step
========================  ================================================
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numbers

import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~5 ms at import; hints only
    from numpy.typing import ArrayLike

from ._typing import Any, List, Optional, Tuple

from . import _core
from ._validation import check_fits_dtype, check_float, warn_if_forked

__all__ = [
    "ACTIVATIONS", "LOSSES", "activation", "activation_backward", "loss", "output_delta",
    "dense_forward", "dense_backward", "sgd_update", "adam_update",
]

#: Activation names understood by the core.
ACTIVATIONS = tuple(_core.ACTIVATIONS)
#: Loss names understood by the core.
LOSSES = tuple(_core.LOSSES)


def _code(table, name, what):
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"{what} must be one of {sorted(table)}, got {name!r}")
    return table[name]


def _arrays(names: Any, arrays: Any, ndims: Any, dtype: Any = None) -> List[np.ndarray]:
    """Checks dtypes and dimensions; returns C-contiguous arrays of one float dtype."""
    out = []
    for name, a, nd in zip(names, arrays, ndims):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array, got {type(a).__name__}")
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            raise TypeError(f"{name} is {a.dtype} but the other arrays are {dtype}; "
                            f"use one dtype")
        if a.ndim != nd:
            raise ValueError(f"{name} must be {nd}-D, got {a.ndim}-D with shape {a.shape}")
        if a.size == 0:
            raise ValueError(f"{name} is empty (shape {a.shape}); every dimension must be "
                             f"at least 1")
        out.append(np.ascontiguousarray(a))
    return out


def _threads(n_threads):
    # the core uses at most the processors this process may run on, and one
    # thread in a child forked after it ran threads (warned once)
    if n_threads != 1:
        warn_if_forked()
    if n_threads is None:
        return 0
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    if not 1 <= n_threads <= _MAX_THREADS:
        raise ValueError(f"n_threads must be between 1 and {_MAX_THREADS} or None, got "
                         f"{n_threads!r}")
    return int(n_threads)


_MAX_THREADS = 4096


def activation(z: ArrayLike, name: str) -> np.ndarray:
    """Return ``f(z)`` for the activation ``name``; softmax acts on each row.

    Parameters
    ----------
    z : ndarray of shape (n, m), float32 or float64
    name : {'identity', 'logistic', 'tanh', 'relu', 'softmax', 'step'}

    Returns
    -------
    a : ndarray of shape (n, m), same dtype as z
    """
    code = _code(_core.ACTIVATIONS, name, "activation")
    (z,) = _arrays(["z"], [z], [2])
    a = z.copy()
    _core.activate(a, code)
    return a


def activation_backward(delta: ArrayLike, a: ArrayLike, name: str) -> np.ndarray:
    """Return ``delta * f'(z)`` where ``f'`` is written through the output ``a = f(z)``.

    logistic: a (1 - a); tanh: 1 - a^2; relu: [a > 0]; identity: 1; step: 0;
    softmax: the Jacobian-vector product ``a_j (delta_j - sum_i delta_i a_i)``.

    Parameters
    ----------
    delta : ndarray of shape (n, m)
        The gradient with respect to the activation's output.
    a : ndarray of shape (n, m), same dtype
        The activation's output f(z).
    name : {'identity', 'logistic', 'tanh', 'relu', 'softmax', 'step'}

    Returns
    -------
    delta_z : ndarray of shape (n, m)
        The gradient with respect to z.
    """
    code = _code(_core.ACTIVATIONS, name, "activation")
    delta, a = _arrays(["delta", "a"], [delta, a], [2, 2])
    out = delta.copy()
    _core.activation_backward(out, a, code)
    return out


def loss(y_hat: ArrayLike, y: ArrayLike, name: str) -> float:
    """Mean over the n rows of the per-row loss (summed over output columns).

    'half_squared_error': 1/2 sum (y_hat - y)^2 (scikit-learn's squared error);
    'squared_error': sum (y_hat - y)^2 (the textbook perceptron cost);
    'binary_cross_entropy' and 'categorical_cross_entropy' clip p to
    [eps, 1 - eps] before the log.

    Parameters
    ----------
    y_hat, y : ndarray of shape (n, m), one float dtype
        Predictions and targets.
    name : {'half_squared_error', 'squared_error', 'binary_cross_entropy',
            'categorical_cross_entropy'}

    Returns
    -------
    loss : float
    """
    code = _code(_core.LOSSES, name, "loss")
    y_hat, y = _arrays(["y_hat", "y"], [y_hat, y], [2, 2])
    return float(_core.loss(y_hat, y, code))


def output_delta(y_hat: ArrayLike, y: ArrayLike, activation: str, loss: str) -> np.ndarray:
    """Return delta_k = d loss_k / d z_k for every row k (not divided by n).

    The matched pairs (softmax, categorical_cross_entropy),
    (logistic, binary_cross_entropy) and (identity, half_squared_error) fuse
    to ``y_hat - y``; 'step' uses Rosenblatt's rule ``y_hat - y``.

    Parameters
    ----------
    y_hat, y : ndarray of shape (n, m), one float dtype
    activation : str
        The output activation that produced y_hat.
    loss : str
        The loss (see :func:`loss`).

    Returns
    -------
    delta : ndarray of shape (n, m)
    """
    act = _code(_core.ACTIVATIONS, activation, "activation")
    kind = _code(_core.LOSSES, loss, "loss")
    y_hat, y = _arrays(["y_hat", "y"], [y_hat, y], [2, 2])
    delta = np.empty_like(y_hat)
    _core.output_delta(delta, y_hat, y, act, kind)
    return delta


def dense_forward(x: ArrayLike, W: ArrayLike, b: ArrayLike, activation: str = "identity",
                  n_threads: Optional[int] = None) -> np.ndarray:
    """Return ``f(x @ W + b)``, the output of a dense layer.

    Parameters
    ----------
    x : ndarray of shape (n, n_in)
    W : ndarray of shape (n_in, n_out), same dtype
    b : ndarray of shape (n_out,), same dtype
    activation : str, default='identity'
    n_threads : int or None, default=None
        Threads for the product (None: OpenMP's default).

    Returns
    -------
    out : ndarray of shape (n, n_out)
    """
    act = _code(_core.ACTIVATIONS, activation, "activation")
    x, W, b = _arrays(["x", "W", "b"], [x, W, b], [2, 2, 1])
    out = np.empty((x.shape[0], W.shape[1]), dtype=x.dtype)
    _core.dense_forward(out, x, W, b, act, _threads(n_threads))
    return out


def dense_backward(delta: ArrayLike, x: ArrayLike, W: ArrayLike, alpha: float = 0.0,
                   need_dx: bool = True, n_threads: Optional[int] = None
                   ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """Gradients of a dense layer ``z = x W + b`` for the mean loss over n rows.

    Returns ``(dx, dW, db)`` with ``dW = x^T delta / n + alpha W / n``,
    ``db = sum_k delta_k / n`` and ``dx = delta W^T`` (None unless need_dx).
    ``dx`` is the gradient with respect to the layer's input; multiply it by
    the previous layer's f' (``activation_backward``) to get that layer's delta.

    Parameters
    ----------
    delta : ndarray of shape (n, n_out)
        The gradient of each row's loss with respect to z (not divided by n).
    x : ndarray of shape (n, n_in)
    W : ndarray of shape (n_in, n_out)
    alpha : float, default=0.0
        L2 penalty.
    need_dx : bool, default=True
    n_threads : int or None, default=None

    Returns
    -------
    dx : ndarray of shape (n, n_in) or None
    dW : ndarray of shape (n_in, n_out)
    db : ndarray of shape (n_out,)
    """
    delta, x, W = _arrays(["delta", "x", "W"], [delta, x, W], [2, 2, 2])
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number, got {alpha!r}")
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    dW = np.empty_like(W)
    db = np.empty(W.shape[1], dtype=W.dtype)
    dx = np.empty_like(x) if need_dx else None
    _core.dense_backward(dW, db, delta, x, W, dx, alpha, _threads(n_threads))
    return dx, dW, db


def _check_inplace(name, orig):
    if not (orig.flags.c_contiguous and orig.flags.writeable):
        raise ValueError(f"{name} is updated in place: it must be a writeable, "
                         f"C-contiguous array")


def sgd_update(params: np.ndarray, velocity: np.ndarray, grads: ArrayLike, lr: float,
               momentum: float = 0.0, nesterov: bool = False) -> None:
    """One gradient-descent step, in place on ``params`` and ``velocity``.

    ``v = momentum v - lr g``; ``params += v``, or with Nesterov momentum
    ``params += momentum v - lr g``.  ``momentum=0`` is plain gradient descent.

    Parameters
    ----------
    params, velocity : ndarray of shape (k,), writeable and C-contiguous
        Updated in place.
    grads : ndarray of shape (k,), same dtype
    lr : float
        Learning rate, > 0.
    momentum : float, default=0.0
        In [0, 1].
    nesterov : bool, default=False

    Returns
    -------
    None
    """
    for name, a in (("params", params), ("velocity", velocity)):
        if isinstance(a, np.ndarray):
            _check_inplace(name, a)
    params, velocity, grads = _arrays(["params", "velocity", "grads"],
                                      [params, velocity, grads], [1, 1, 1])
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    momentum = check_float(momentum, "momentum", low=0.0, high=1.0)
    check_fits_dtype(params.dtype, lr=lr)
    _core.sgd_update(params, velocity, grads, lr, momentum, bool(nesterov))


def adam_update(params: np.ndarray, m: np.ndarray, v: np.ndarray, grads: ArrayLike, lr: float,
                beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                t: int = 1) -> None:
    """One Adam step (t >= 1 counts this step), in place on params, m and v.

    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``params -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``.

    Parameters
    ----------
    params, m, v : ndarray of shape (k,), writeable and C-contiguous
        Updated in place.
    grads : ndarray of shape (k,), same dtype
    lr : float
        Learning rate, > 0.
    beta1, beta2 : float, defaults 0.9, 0.999
        In [0, 1).
    epsilon : float, default=1e-8
    t : int, default=1

    Returns
    -------
    None
    """
    for name, a in (("params", params), ("m", m), ("v", v)):
        if isinstance(a, np.ndarray):
            _check_inplace(name, a)
    params, m, v, grads = _arrays(["params", "m", "v", "grads"], [params, m, v, grads],
                                  [1, 1, 1, 1])
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Integral):
        raise TypeError(f"t must be an integer (the number of this step), got {t!r}")
    if not 1 <= t < 2**63:
        raise ValueError(f"t must be >= 1 (the number of this step), got {t}")
    t = int(t)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    beta1 = check_float(beta1, "beta1", low=0.0, high=1.0, high_open=True)
    beta2 = check_float(beta2, "beta2", low=0.0, high=1.0, high_open=True)
    epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True)
    check_fits_dtype(params.dtype, lr=lr, epsilon=epsilon)
    _core.adam_update(params, m, v, grads, lr, beta1, beta2, epsilon, t)
