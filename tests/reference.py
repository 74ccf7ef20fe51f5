"""Plain NumPy reference for everything the pynn C core computes.

Each function is the textbook formula, written for clarity rather than speed.
Arrays are 2-D ``(n, m)``: ``n`` rows (samples), ``m`` columns (units).
Computation happens in the floating dtype of the inputs (float32 stays
float32, float64 stays float64); inputs are never modified.

Conventions (identical to scikit-learn's MLP and to csrc/pynn.h):

* A dense layer computes ``Z = X W + b`` with ``W`` of shape ``(n_in, n_out)``.
* A loss ``L`` is the mean over the ``n`` rows of a per-row loss ``l_k``
  summed over the ``m`` output columns.
* ``delta`` always means ``d l_k / d z_k`` for each row ``k``: it is *not*
  divided by ``n``; the ``1/n`` of the mean is applied in ``dense_backward``.
"""

import numpy as np

ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "softmax", "step")
ELEMENTWISE_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "step")
LOSSES = (
    "half_squared_error",
    "squared_error",
    "binary_cross_entropy",
    "categorical_cross_entropy",
)

# Poisson regression's output link and loss (output layer only; y_hat > 0,
# y >= 0).  Kept out of the tuples above, which the kernel tests sweep with
# data of any sign.
POISSON_ACTIVATION = "exp"
POISSON_LOSS = "half_poisson_deviance"

# (activation, loss) pairs whose output delta simplifies to exactly y_hat - y.
FUSED_PAIRS = (
    ("softmax", "categorical_cross_entropy"),
    ("logistic", "binary_cross_entropy"),
    ("identity", "half_squared_error"),
    (POISSON_ACTIVATION, POISSON_LOSS),
)


def _float_array(x):
    """``x`` as an ndarray of a floating dtype (integers become float64)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return x


def _check_activation(name):
    if name not in ACTIVATIONS + (POISSON_ACTIVATION,):
        raise ValueError(f"unknown activation {name!r}")


def _check_loss(name):
    if name not in LOSSES + (POISSON_LOSS,):
        raise ValueError(f"unknown loss {name!r}")


def _xlogy(x, y):
    """x * log(y) with the convention 0 * log(y) = 0 (even for y = 0)."""
    out = np.zeros(np.broadcast(x, y).shape, dtype=np.result_type(x, y))
    nz = x != 0
    out[nz] = (x * np.log(np.where(nz, y, 1)))[nz]
    return out


def _clip_probability(p):
    """clip(p, eps, 1 - eps) with eps the machine epsilon of p's dtype."""
    eps = np.finfo(p.dtype).eps
    return np.clip(p, eps, 1 - eps)


# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------


def activation(z, name):
    """a = f(z), a new array.

    identity  f(z) = z
    logistic  f(z) = 1 / (1 + exp(-z))     computed with e = exp(-|z|):
                                          z >= 0: 1/(1+e),  z < 0: e/(1+e)
    tanh      f(z) = tanh(z)
    relu      f(z) = max(0, z)
    softmax   f(z)_j = exp(z_j - max_i z_i) / sum_i exp(z_i - max_i z_i)  (per row)
    step      f(z) = 1 if z >= 0 else 0    (Heaviside, Rosenblatt's perceptron)
    exp       f(z) = exp(z)                (the log link of Poisson regression)
    """
    _check_activation(name)
    z = _float_array(z)
    if name == "identity":
        return z.copy()
    if name == "logistic":
        e = np.exp(-np.abs(z))  # in (0, 1]: never overflows
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0).astype(z.dtype)
    if name == "exp":
        return np.exp(z)
    if name == "softmax":
        shifted = z - np.max(z, axis=-1, keepdims=True)
        e = np.exp(shifted)
        return e / np.sum(e, axis=-1, keepdims=True)
    # step
    return np.where(z >= 0, 1, 0).astype(z.dtype)


def activation_derivative(a, name):
    """f'(z) written through the cached output a = f(z).

    identity 1;  logistic a (1 - a);  tanh 1 - a^2;  relu [a > 0];  step 0;
    exp a (exp' = exp).
    Softmax has a full Jacobian, not an elementwise derivative: ValueError.
    """
    _check_activation(name)
    a = _float_array(a)
    if name == "identity":
        return np.ones_like(a)
    if name == "logistic":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (a > 0).astype(a.dtype)
    if name == "step":
        return np.zeros_like(a)
    if name == "exp":
        return a.copy()
    raise ValueError("softmax has no elementwise derivative; use activation_backward")


def activation_backward(delta, a, name):
    """Pull delta = dl/da back through a = f(z): returns dl/dz.

    elementwise f:  dl/dz = delta * f'(a)
    softmax:        dl/dz_j = sum_i delta_i da_i/dz_j = a_j (delta_j - sum_i delta_i a_i)
                    (row by row)
    """
    _check_activation(name)
    delta = _float_array(delta)
    a = _float_array(a)
    if delta.shape != a.shape:
        raise ValueError("delta and a must have the same shape")
    if name == "softmax":
        s = np.sum(delta * a, axis=-1, keepdims=True)
        return a * (delta - s)
    return delta * activation_derivative(a, name)


# --------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------


def _as_rows(y_hat, y):
    y_hat = _float_array(y_hat)
    y = _float_array(y)
    if y_hat.shape != y.shape:
        raise ValueError("y_hat and y must have the same shape")
    if y_hat.ndim == 1:  # a single output column
        y_hat = y_hat.reshape(-1, 1)
        y = y.reshape(-1, 1)
    return y_hat, y


def loss(y_hat, y, name):
    """Mean over the n rows of the per-row loss l_k, as a Python float.

    half_squared_error         l_k = 1/2 sum_j (yhat_kj - y_kj)^2
        (scikit-learn's squared_error; scikit-learn divides by n*m, we by n)
    squared_error              l_k = sum_j (yhat_kj - y_kj)^2
    binary_cross_entropy       l_k = -sum_j [y log p + (1 - y) log(1 - p)]
    categorical_cross_entropy  l_k = -sum_j y log p
        with p = clip(yhat, eps, 1 - eps), eps = machine epsilon of yhat's
        dtype, and 0 log p = 0.
    half_poisson_deviance      l_k = sum_j [y log(y / yhat) - y + yhat]
        (scikit-learn's 'poisson' loss), with 0 log(0 / yhat) = 0.
    L = (1/n) sum_k l_k
    """
    _check_loss(name)
    y_hat, y = _as_rows(y_hat, y)
    n = y_hat.shape[0]
    if name == "half_squared_error":
        total = 0.5 * np.sum((y_hat - y) ** 2)
    elif name == "squared_error":
        total = np.sum((y_hat - y) ** 2)
    elif name == "binary_cross_entropy":
        p = _clip_probability(y_hat)
        total = -np.sum(_xlogy(y, p) + _xlogy(1 - y, 1 - p))
    elif name == POISSON_LOSS:
        total = np.sum(_xlogy(y, y / y_hat) - y + y_hat)
    else:  # categorical_cross_entropy
        p = _clip_probability(y_hat)
        total = -np.sum(_xlogy(y, p))
    return float(total / n)


def loss_derivative(y_hat, y, name):
    """dl_k/dyhat_k for every row k (per-row loss, NOT divided by n).

    half_squared_error         yhat - y
    squared_error              2 (yhat - y)
    binary_cross_entropy       (p - y) / (p (1 - p))
    categorical_cross_entropy  -y / p
    half_poisson_deviance      1 - y / yhat
    with p = clip(yhat, eps, 1 - eps) as in `loss`.  Inside (eps, 1 - eps)
    the clip does nothing; it only keeps the result finite at 0 and 1.
    """
    _check_loss(name)
    y_hat, y = _as_rows(y_hat, y)
    if name == "half_squared_error":
        return y_hat - y
    if name == "squared_error":
        return 2 * (y_hat - y)
    if name == POISSON_LOSS:
        return 1 - y / y_hat
    p = _clip_probability(y_hat)
    if name == "binary_cross_entropy":
        return (p - y) / (p * (1 - p))
    return -y / p


def output_delta(y_hat, y, activation, loss):  # noqa: A002 (mirrors the C API)
    """delta_k = dl_k/dz_k of the output layer, y_hat = f(z) (not divided by n).

    Fused pairs (the textbook simplifications), exactly y_hat - y:
        (softmax, categorical_cross_entropy), (logistic, binary_cross_entropy),
        (identity, half_squared_error), (exp, half_poisson_deviance)
    (identity, squared_error): 2 (y_hat - y)
    step output, any loss: y_hat - y  (Rosenblatt's perceptron rule; the true
        derivative of a step is 0 almost everywhere)
    any other pair: the chain rule, activation_backward(dl/dyhat, y_hat).
    """
    _check_activation(activation)
    _check_loss(loss)
    y_hat, y = _as_rows(y_hat, y)
    if (activation, loss) in FUSED_PAIRS or activation == "step":
        return y_hat - y
    if (activation, loss) == ("identity", "squared_error"):
        return 2 * (y_hat - y)
    return activation_backward(loss_derivative(y_hat, y, loss), y_hat, activation)


# Module-level aliases, so functions whose parameters are named `activation`
# or `loss` (mirroring the C API) can still reach the functions.
_activation_fn = activation
_loss_fn = loss


# --------------------------------------------------------------------------
# dense layer
# --------------------------------------------------------------------------


def bf16_round(x):
    """x rounded to the nearest bfloat16 (ties to even), as float64 values.

    The value is first taken as float32 (the mixed-precision mode stores
    float32), then its binary32 pattern u keeps its top 16 bits after adding
    0x7FFF plus the lowest kept bit: round to nearest, ties to even.  NaN stays
    NaN; finite values past the largest bfloat16 become infinite."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    r = np.where(nan, (u | 0x400000) & 0xFFFF0000, r).astype(np.uint32)
    return r.view(np.float32).astype(np.float64)


def matmul(a, b, bf16=False):
    """a @ b; bf16: of the operands rounded to bfloat16, summed in float64
    (the mixed-precision mode's products, bar float32's rounding of the sums)."""
    if bf16:
        return bf16_round(a) @ bf16_round(b)
    return a @ b


def dense_forward(x, W, b, activation="identity", bf16=False):  # noqa: A002
    """a = f(x W + b);  x (n, n_in), W (n_in, n_out), b (n_out,) -> (n, n_out).
    bf16: the product's operands rounded to bfloat16 (see matmul)."""
    x, W, b = _float_array(x), _float_array(W), _float_array(b)
    if x.ndim != 2 or W.ndim != 2 or b.ndim != 1:
        raise ValueError("x and W must be 2-D, b 1-D")
    if x.shape[1] != W.shape[0] or W.shape[1] != b.shape[0]:
        raise ValueError("shapes of x, W, b do not match")
    return _activation_fn(matmul(x, W, bf16) + b, activation)


def dense_backward(delta, x, W, alpha=0.0, bf16=False):
    """Gradients of the mean loss through z = x W + b, delta = dl_k/dz_k.

    With n = rows of delta:
        dW = x^T delta / n + alpha W / n      (L2 term alpha/2 ||W||^2 / n)
        db = sum_k delta_k / n
        dx = delta W^T                        (per-row, not divided by n)
    Returns (dx, dW, db).  bf16: both products' operands rounded to bfloat16
    (the L2 term and db use W and delta as they are).
    """
    delta, x, W = _float_array(delta), _float_array(x), _float_array(W)
    n = delta.shape[0]
    if x.shape[0] != n or x.shape[1] != W.shape[0] or delta.shape[1] != W.shape[1]:
        raise ValueError("shapes of delta, x, W do not match")
    dW = (matmul(x.T, delta, bf16) + alpha * W) / n
    db = np.sum(delta, axis=0) / n
    dx = matmul(delta, W.T, bf16)
    return dx, dW, db


# --------------------------------------------------------------------------
# optimizers (one step; return new arrays, inputs untouched)
# --------------------------------------------------------------------------


def sgd_update(params, velocity, grads, lr, momentum=0.0, nesterov=False):
    """One SGD step (scikit-learn's SGDOptimizer).  Returns (params', v').

        v' = momentum v - lr g
        params' = params + v'                       (plain / classical momentum)
        params' = params + momentum v' - lr g       (Nesterov)
    momentum = 0 gives plain gradient descent params' = params - lr g.
    """
    params, velocity, grads = (_float_array(a) for a in (params, velocity, grads))
    v_new = momentum * velocity - lr * grads
    if nesterov:
        p_new = params + momentum * v_new - lr * grads
    else:
        p_new = params + v_new
    return p_new, v_new


def adam_update(params, m, v, grads, lr, beta1, beta2, epsilon, t):
    """One Adam step (scikit-learn's AdamOptimizer); t >= 1 counts this step.

        m' = b1 m + (1 - b1) g
        v' = b2 v + (1 - b2) g^2
        lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
        params' = params - lr_t m' / (sqrt(v') + eps)
    Returns (params', m', v').
    """
    if t < 1:
        raise ValueError("t counts the step being taken and must be >= 1")
    params, m, v, grads = (_float_array(a) for a in (params, m, v, grads))
    m_new = beta1 * m + (1 - beta1) * grads
    v_new = beta2 * v + (1 - beta2) * grads * grads
    lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    p_new = params - lr_t * m_new / (np.sqrt(v_new) + epsilon)
    return p_new, m_new, v_new


# --------------------------------------------------------------------------
# a tiny multi-layer perceptron
# --------------------------------------------------------------------------


def forward(coefs, intercepts, X, hidden, output, bf16=False):
    """Activations [X, a_1, ..., a_L] of an MLP.

    a_l = hidden(a_{l-1} W_l + b_l) for l < L,  a_L = output(a_{L-1} W_L + b_L).
    bf16: every product's operands rounded to bfloat16 (see matmul).
    """
    acts = [_float_array(X)]
    n_layers = len(coefs)
    for l, (W, b) in enumerate(zip(coefs, intercepts)):
        name = output if l == n_layers - 1 else hidden
        acts.append(dense_forward(acts[-1], W, b, name, bf16))
    return acts


def loss_and_gradients(coefs, intercepts, X, Y, hidden, output, loss, alpha=0.0,  # noqa: A002
                       bf16=False):
    """Loss and its gradients for the batch (X, Y), by backpropagation.

    loss = L(a_L, Y) + (alpha / 2) sum_l ||W_l||^2 / n     (biases unpenalized)
    delta_L = output_delta(a_L, Y)
    for l = L .. 1:   (dx, dW_l, db_l) = dense_backward(delta_l, a_{l-1}, W_l, alpha)
                      delta_{l-1} = activation_backward(dx, a_{l-1}, hidden)
    bf16: every product's operands rounded to bfloat16 (the mixed-precision
    mode; see matmul).
    Returns (loss, coef_grads, intercept_grads).
    """
    acts = forward(coefs, intercepts, X, hidden, output, bf16)
    n = acts[0].shape[0]
    value = _loss_fn(acts[-1], Y, loss)
    value += 0.5 * alpha * sum(float(np.sum(W * W)) for W in coefs) / n

    n_layers = len(coefs)
    coef_grads = [None] * n_layers
    intercept_grads = [None] * n_layers
    delta = output_delta(acts[-1], Y, output, loss)
    for l in range(n_layers - 1, -1, -1):
        dx, coef_grads[l], intercept_grads[l] = dense_backward(
            delta, acts[l], coefs[l], alpha, bf16
        )
        if l > 0:
            delta = activation_backward(dx, acts[l], hidden)
    return value, coef_grads, intercept_grads


def train(
    coefs,
    intercepts,
    X,
    Y,
    hidden,
    output,
    loss,  # noqa: A002
    solver,
    batch_size,
    n_epochs,
    learning_rate,
    alpha=0.0,
    momentum=0.9,
    nesterov=True,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
):
    """Minibatch training without shuffling.  Returns (coefs, intercepts, epoch_losses).

    Each epoch walks the consecutive batches X[i:i+batch_size] (the last may be
    smaller) and takes one optimizer step per batch ('sgd' with momentum /
    nesterov, or 'adam' with t = global step count starting at 1).
    epoch loss = sum_batches batch_loss * batch_rows / n_samples, where
    batch_loss (taken before the step) includes alpha/2 sum ||W||^2 / batch_rows.
    Works on copies; the inputs are never modified.
    """
    if solver not in ("sgd", "adam"):
        raise ValueError(f"unknown solver {solver!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    X, Y = _float_array(X), _float_array(Y)
    n_layers = len(coefs)
    # The optimizer sees one list of arrays: the weights, then the biases.
    params = [np.array(W, copy=True) for W in coefs] + [
        np.array(b, copy=True) for b in intercepts
    ]
    state_a = [np.zeros_like(p) for p in params]  # velocity, or Adam's m
    state_b = [np.zeros_like(p) for p in params]  # Adam's v
    n_samples = X.shape[0]
    t = 0
    epoch_losses = []
    for _ in range(n_epochs):
        accumulated = 0.0
        for start in range(0, n_samples, batch_size):
            xb = X[start : start + batch_size]
            yb = Y[start : start + batch_size]
            batch_loss, cg, ig = loss_and_gradients(
                params[:n_layers], params[n_layers:], xb, yb, hidden, output,
                loss, alpha,
            )
            accumulated += batch_loss * xb.shape[0]
            grads = cg + ig
            t += 1
            for i, g in enumerate(grads):
                if solver == "sgd":
                    params[i], state_a[i] = sgd_update(
                        params[i], state_a[i], g, learning_rate, momentum, nesterov
                    )
                else:
                    params[i], state_a[i], state_b[i] = adam_update(
                        params[i], state_a[i], state_b[i], g, learning_rate,
                        beta1, beta2, epsilon, t,
                    )
        epoch_losses.append(accumulated / n_samples)
    return params[:n_layers], params[n_layers:], epoch_losses


# --------------------------------------------------------------------------
# finite differences
# --------------------------------------------------------------------------


def numerical_gradient(f, params_list, eps=1e-6):
    """Central differences  df/dp ~ (f(p + eps) - f(p - eps)) / (2 eps).

    f() is a scalar function that reads the arrays of params_list; each entry
    is perturbed in place, one at a time, and restored afterwards.
    Returns one gradient array per parameter array.
    """
    grads = []
    for p in params_list:
        g = np.zeros(p.shape, dtype=np.float64)
        for idx in np.ndindex(p.shape):
            orig = p[idx]
            try:
                p[idx] = orig + eps
                f_plus = float(f())
                p[idx] = orig - eps
                f_minus = float(f())
            finally:
                p[idx] = orig
            g[idx] = (f_plus - f_minus) / (2 * eps)
        grads.append(g.astype(p.dtype, copy=False))
    return grads
