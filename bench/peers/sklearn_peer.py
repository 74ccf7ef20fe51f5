"""scikit-learn: sklearn.neural_network.MLPClassifier with the same hyperparameters."""
import warnings

import numpy as np

from cases import LEARNING_RATE, N_CLASSES
from peers import Peer, first_rows


def _estimator(case, batch):
    from sklearn.neural_network import MLPClassifier
    return MLPClassifier(case.hidden, activation="relu", solver=case.solver, momentum=0.0,
                         nesterovs_momentum=False, learning_rate_init=LEARNING_RATE,
                         alpha=0.0, batch_size=batch, max_iter=1, shuffle=False,
                         random_state=0)


class Sklearn(Peer):
    def load(self, dtype, threads):
        import sklearn
        import sklearn.neural_network  # noqa: F401
        return f"scikit-learn {sklearn.__version__}"

    def train(self, s):
        X, y = s.data.X, s.data.y
        parts = {}

        def run(n):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning after max_iter=1
                _estimator(s.case, s.case.batch).fit(first_rows(X, n, parts), y[:n])
        return run

    def predict(self, s):
        m = _estimator(s.case, N_CLASSES)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(np.zeros((N_CLASSES, s.case.units[0]), dtype=s.dtype), np.arange(N_CLASSES))
        m.coefs_ = [W.copy() for W, _ in s.params]
        m.intercepts_ = [b.copy() for _, b in s.params]
        return lambda: m.predict_proba(s.data.X)
