"""Exceptions and warnings raised by pynn."""


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit``.

    It derives from ValueError and AttributeError, like scikit-learn's
    exception of the same name, so code written for either catches it.
    """


class ConvergenceWarning(UserWarning):
    """Training stopped at ``max_iter`` before the loss converged."""


class DivergenceError(ValueError, ArithmeticError):
    """Training blew up: the loss or the weights became NaN or infinite."""
