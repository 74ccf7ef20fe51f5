"""pynn: MLPClassifier.fit (warm start) and predict_proba."""
import os
import time
import warnings

import numpy as np

from cases import LEARNING_RATE, N_CLASSES
from peers import Peer, first_rows
from reference import array_dtype


def estimator(case, batch, dtype, threads, solver=None):
    import pynn
    return pynn.MLPClassifier(case.hidden, activation="relu", solver=solver or case.solver,
                              momentum=0.0,
                              nesterovs_momentum=False, learning_rate_init=LEARNING_RATE,
                              alpha=0.0, batch_size=batch, max_iter=1, tol=None,
                              shuffle=False, random_state=0, dtype=dtype, n_threads=threads)


def model_from(case, params, dtype, threads, solver=None):
    """A pynn model holding `params`, ready to predict or (warm_start) to train on.

    A first fit on one row per class creates it; its weights are then
    overwritten in place (coefs_/intercepts_ are views into the model; float32
    arrays in the bfloat16 mode, whose input is float32 too)."""
    m = estimator(case, max(case.batch, 1), dtype, threads, solver)
    m.set_params(warm_start=True)
    k = case.n_classes if not case.predict else N_CLASSES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch_size larger than the k rows
        m.fit(np.zeros((k, case.units[0]), dtype=array_dtype(dtype)), np.arange(k))
    for (W, b), mW, mb in zip(params, m.coefs_, m.intercepts_):
        mW[...] = W
        mb[...] = b
    return m


def describe(forced=False):
    import pynn
    from pynn import _core
    built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(_core.__file__)))
    return (f"pynn {pynn.__version__} ({os.path.dirname(pynn.__file__)}, core built {built}), "
            f"SIMD path "
            f"{_core.simd_path()}{' (forced)' if forced else ''} of "
            f"{list(_core.simd_supported())}, OpenMP {'yes' if _core.has_openmp() else 'no'}")


def force_simd(path):
    """Make pynn use SIMD path `path` (ValueError if unknown or unsupported);
    returns the new description."""
    from pynn import _core
    _core.set_simd_path(path)
    return describe(forced=True)


class Pynn(Peer):
    def load(self, dtype, threads):
        if self.computes_in(dtype) == "bfloat16":
            import pynn
            try:  # an older pynn refuses the mode: say so before anything is timed
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # max_iter=1 does not converge
                    pynn.MLPClassifier(dtype="bfloat16", max_iter=1).fit(
                        np.zeros((2, 1), np.float32), [0, 1])
            except ValueError as exc:
                raise RuntimeError(f"this pynn has no dtype='bfloat16' mode ({exc})") from None
        return describe()

    def train(self, s):
        """Epochs of fit on a model that already holds the starting weights
        (warm_start), like the NumPy, PyTorch and JAX peers, whose timed work also
        excludes creating and initialising the parameters."""
        X, y = s.data.X, s.data.y
        m = model_from(s.case, s.params, self.computes_in(s.dtype), s.threads)
        parts = {}

        def run(n):
            m.fit(first_rows(X, n, parts), y[:n])
        return run

    def predict(self, s):
        m = model_from(s.case, s.params, self.computes_in(s.dtype), s.threads)
        return lambda: m.predict_proba(s.data.X)

    def check_result(self, case, params, X, y, dtype, threads):
        # plain SGD whatever the case times: the reference is an SGD trainer
        m = model_from(case, params, dtype, threads, solver="sgd")
        if case.predict:
            return [m.predict_proba(X)]
        m.fit(X, y)
        return [a for pair in zip(m.coefs_, m.intercepts_) for a in pair]


class PynnF32(Pynn):
    """pynn in float32 in a bfloat16 run, on the same float32 data: the row
    that shows what the bfloat16 mode gains."""

    def computes_in(self, dtype):
        return "float32"
