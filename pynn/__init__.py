"""pynn: perceptrons and multilayer perceptrons trained on the CPU by a compiled
C core, with scikit-learn's interface.

>>> from pynn import MLPClassifier
>>> clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X, y)  # doctest: +SKIP
"""
from . import ops
from ._core import has_openmp, max_threads
from .exceptions import ConvergenceWarning, DivergenceError, NotFittedError
from .mlp import MLPClassifier, MLPRegressor
from .perceptron import Perceptron

__version__ = "0.1.0"

__all__ = [
    "Perceptron", "MLPClassifier", "MLPRegressor", "ops", "NotFittedError",
    "ConvergenceWarning", "DivergenceError", "has_openmp", "max_threads", "__version__",
]
