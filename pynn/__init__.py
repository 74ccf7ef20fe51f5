"""pynn: perceptrons and multilayer perceptrons trained on the CPU by a compiled
C core, with scikit-learn's interface.

>>> from pynn import MLPClassifier
>>> clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X, y)  # doctest: +SKIP
"""
import importlib.machinery as _machinery
import os as _os
import sys as _sys
from typing import BinaryIO, Union  # noqa: F401 (type hints)


def _locate_core():
    """Import the compiled core.  Run from a source checkout (``python -m pynn``
    in the repository after ``pip install .``), this package's folder has no
    compiled module; the installed copy's folder then serves it."""
    try:
        from . import _core  # noqa: F401
        return
    except ImportError:
        pass
    here = _os.path.normcase(_os.path.dirname(_os.path.abspath(__file__)))
    suffixes = tuple(_machinery.EXTENSION_SUFFIXES)
    for entry in _sys.path:
        cand = _os.path.join(_os.path.abspath(entry or _os.curdir), "pynn")
        if _os.path.normcase(cand) == here or not _os.path.isdir(cand):
            continue
        if any(f.startswith("_core.") and f.endswith(suffixes) for f in _os.listdir(cand)):
            __path__.append(cand)
            from . import _core  # noqa: F401
            return
    raise ImportError("pynn's compiled core (pynn._core) was not found: install pynn with "
                      "'pip install pynn-mlp' (or 'pip install .' in a source checkout) first")


_locate_core()


def _honour_simd_env():
    """Apply PYNN_SIMD the forgiving way.  The core reads the variable itself but
    only matches 'generic', 'avx2', 'avx512', 'avx512_bf16' or 'amx' exactly
    and otherwise, silently, runs the best path the CPU has; here ' AVX2 '
    means avx2 too, and a value that cannot be honoured (empty, unknown, or a
    path this CPU cannot run) gives a RuntimeWarning that names the path used
    instead."""
    value = _os.environ.get("PYNN_SIMD")
    if value is None:
        return
    from . import _core, _platform

    path, problem = _platform.simd_request(value, _core.SIMD_PATHS, _core.simd_supported())
    if path is not None:
        _core.set_simd_path(path)
    if problem is not None:
        import warnings

        warnings.warn(f"{problem}. Using {_core.simd_path()}, the best path this CPU has.",
                      RuntimeWarning, stacklevel=3)  # the importer's line


_honour_simd_env()

from . import ops  # noqa: E402
from ._core import has_openmp, max_threads, simd_path  # noqa: E402
from ._persist import load_model as _load_model  # noqa: E402
from ._version import __version__  # noqa: E402
from .exceptions import (ConvergenceWarning, DataConversionWarning, DivergenceError,  # noqa: E402
                         ModelFileError, NotFittedError)
from .mlp import MLPClassifier, MLPRegressor  # noqa: E402
from .perceptron import Perceptron  # noqa: E402
from .plotting import plot_loss_curve  # noqa: E402

__all__ = [
    "Perceptron", "MLPClassifier", "MLPRegressor", "load", "plot_loss_curve", "ops",
    "NotFittedError", "ConvergenceWarning", "DataConversionWarning", "DivergenceError",
    "ModelFileError", "has_openmp", "max_threads", "simd_path", "__version__",
]


def load(path: "Union[str, _os.PathLike[str], BinaryIO]"
         ) -> "Union[Perceptron, MLPClassifier, MLPRegressor]":
    """Read a model written by ``model.save(path)``.

    Loading never executes code: the file is plain data (a JSON header and
    the raw weights), and a corrupt, truncated, newer-format or foreign file
    is refused with :class:`pynn.ModelFileError` (a ValueError).

    Parameters
    ----------
    path : str, os.PathLike or binary file object

    Returns
    -------
    model : Perceptron, MLPClassifier or MLPRegressor
        The fitted model, predicting bitwise as the saved one did.

    Raises
    ------
    OSError
        The file cannot be read.
    ModelFileError
        The file is not a valid pynn model file.
    """
    return _load_model(path, {"Perceptron": Perceptron, "MLPClassifier": MLPClassifier,
                             "MLPRegressor": MLPRegressor})
