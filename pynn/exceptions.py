"""Exceptions and warnings raised by pynn.

pynn does not depend on scikit-learn, but its users often catch or filter
scikit-learn's classes (``sklearn.exceptions.NotFittedError``,
``ConvergenceWarning``, ``DataConversionWarning``).  When scikit-learn has been
imported, pynn raises a subclass of both its own class and scikit-learn's class
of the same name, so code written for either catches it.
"""
from __future__ import annotations

import sys

__all__ = ["NotFittedError", "ConvergenceWarning", "DataConversionWarning", "DivergenceError",
           "ModelFileError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit``.

    It derives from ValueError and AttributeError, like scikit-learn's
    exception of the same name.
    """

    def __reduce__(self):
        return (NotFittedError, self.args)


class ConvergenceWarning(UserWarning):
    """Training stopped at ``max_iter`` before the loss converged."""


class DataConversionWarning(UserWarning):
    """The input was converted: e.g. a column-vector y where a 1-D y was expected."""


class OutputOverflow(ValueError):
    """A forward or backward pass overflowed although its inputs were finite
    (internal: callers see it as a ValueError)."""


class DivergenceError(ValueError, ArithmeticError):
    """Training blew up: the loss or the weights became NaN or infinite."""

    def __reduce__(self):
        return (DivergenceError, self.args)


class ModelFileError(ValueError):
    """A model file is corrupt, truncated, of a newer format, or not a pynn model."""

    def __reduce__(self):
        return (ModelFileError, self.args)


_FLAVOURS: dict = {}


def sklearn_flavour(cls):
    """``cls`` itself, or, once scikit-learn is imported, a subclass of ``cls``
    and of the scikit-learn class with the same name (cached)."""
    sk = sys.modules.get("sklearn.exceptions")
    base = getattr(sk, cls.__name__, None) if sk is not None else None
    if base is None or issubclass(cls, base):
        return cls
    both = _FLAVOURS.get(cls)
    if both is None:
        both = type(cls.__name__, (cls, base), {"__module__": cls.__module__,
                                                 "__doc__": cls.__doc__,
                                                 "__qualname__": cls.__qualname__})
        _FLAVOURS[cls] = both
    return both
