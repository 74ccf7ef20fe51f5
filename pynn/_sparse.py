"""Sparse input: scipy.sparse matrices and arrays of any format are taken as
CSR in the model's dtype (never made dense) and handed to the core's CSR
entry points.  scipy is imported only when a sparse X arrives, so
``import pynn`` does not import it.

The estimators see a validated sparse X as a scipy CSR matrix (it supports
the row indexing early stopping and the final check need); the core sees a
``_core.CSR`` (int64 indices), made from it where a core call needs it."""
from __future__ import annotations

import numpy as np

from . import _core
from ._typing import Any
from ._validation import check_2d_shape, too_large


def is_sparse(X: Any) -> bool:
    """True for scipy.sparse matrices and arrays (without importing scipy)."""
    return type(X).__module__.startswith("scipy.sparse")


def validate_sparse(X: Any, dtype: Any, name: str = "X", check_finite: bool = True):
    """A CSR copy (or X itself when it already is one) of dtype, with sorted,
    summed indices: the checks of validate_X for dense input, on the stored
    values."""
    check_2d_shape(X.shape, name)
    kind = X.dtype.kind
    if kind == "c":
        raise ValueError(f"Complex data not supported: {name} must be real, got a sparse "
                         f"matrix of dtype {X.dtype}")
    if kind not in "biuf":
        raise TypeError(f"{name} has unsupported dtype {X.dtype}")
    csr = X.tocsr() if X.format != "csr" else X
    # canonical form: sorted indices (the dense product's summation order) and
    # no duplicates; fixed on a copy, never on the caller's matrix
    if csr is X and not csr.has_canonical_format:
        csr = csr.copy()
    if not csr.has_canonical_format:
        csr.sum_duplicates()
    raw = csr.data
    if csr.dtype != dtype:
        try:  # finite values beyond dtype's range: pynn's error, not NumPy's warning
            with np.errstate(over="raise"):
                csr = csr.astype(dtype)
        except FloatingPointError:
            raise ValueError(too_large(name, dtype)) from None
    if check_finite and not np.isfinite(csr.data).all():
        if raw.dtype.kind == "f" and np.isfinite(raw).all():
            raise ValueError(too_large(name, dtype))
        raise ValueError(f"{name} contains NaN or infinity; remove or impute them first")
    return csr


def core_input(X):
    """What the core reads: X itself when dense, a _core.CSR for a validated
    sparse X."""
    if not is_sparse(X):
        return X
    data = np.ascontiguousarray(X.data)
    return _core.CSR(X.indptr, X.indices, data, X.shape[1])


def take_rows(X, idx):
    """Rows idx of X, as the core reads them (dense: C-contiguous)."""
    if is_sparse(X):
        return X[idx]
    return np.ascontiguousarray(X[idx])


def workspace_size(net, X, batch):
    """Scalars of workspace for a core call on X in blocks of `batch` rows."""
    if isinstance(X, _core.CSR) or is_sparse(X):
        return net.workspace_size_csr(batch)
    return net.workspace_size(batch)


def predict_workspace_size(net, X, batch):
    """Scalars of workspace per block of `batch` rows for predict on X."""
    return net.predict_workspace_size(batch, isinstance(X, _core.CSR) or is_sparse(X))


def predict(net, out, params, X, ws, batch, n_threads):
    """net.predict for dense X, net.predict_csr for sparse X."""
    if is_sparse(X):
        net.predict_csr(out, params, core_input(X), ws, batch, n_threads)
    else:
        net.predict(out, params, X, ws, batch, n_threads)


def loss_grad(net, grads, params, X, Y, alpha, ws, n_threads, sw=None):
    """net.loss_grad for dense X, net.loss_grad_csr for sparse X (or for the
    _core.CSR core_input made of it, for callers that evaluate many times)."""
    if isinstance(X, _core.CSR):
        return net.loss_grad_csr(grads, params, X, Y, alpha, ws, n_threads, sw)
    if is_sparse(X):
        return net.loss_grad_csr(grads, params, core_input(X), Y, alpha, ws, n_threads, sw)
    return net.loss_grad(grads, params, X, Y, alpha, ws, n_threads, sw)


def forward(X, W, b, activation, n_threads):
    """act(X W + b) for a validated sparse X (the first layer of forward_layers)."""
    out = np.empty((X.shape[0], W.shape[1]), dtype=W.dtype)
    _core.sparse_forward(out, core_input(X), np.ascontiguousarray(W), b,
                         _core.ACTIVATIONS[activation], n_threads)
    return out
