"""pynn on a dask.distributed cluster: scikit-learn's GridSearchCV through joblib's
Dask backend, and dask-ml-style incremental learning (partial_fit over the blocks of a
Dask array, the model travelling to a worker with each block).  The cluster is a
LocalCluster of 2 worker processes with 1 thread each; the same code runs on a real
cluster given its scheduler address (see the README, "Scaling out with Dask")."""
import os
import pickle
import re

import numpy as np
import pytest

pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
joblib = pytest.importorskip("joblib")

from distributed import Client, LocalCluster, get_task_stream  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import pynn  # noqa: E402

TIMEOUT = 60  # seconds, for anything waited on from the cluster


@pytest.fixture(scope="module")
def client():
    # No fixed ports: the scheduler and workers bind random ones; no dashboard.
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, scheduler_port=0)
    c = Client(cluster, timeout=TIMEOUT)
    try:
        c.wait_for_workers(2, timeout=TIMEOUT)
        yield c
    finally:
        c.close(timeout=TIMEOUT)
        cluster.close(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _workers(client):
    return set(client.nthreads())


def test_workers_run_one_thread(client):
    """threads_per_worker=1 and the nanny's OMP_NUM_THREADS=1 reach pynn's core: inside
    a worker, n_threads=None resolves to one thread, so 2 workers use 2 cores."""
    assert client.run(pynn.max_threads) == {w: 1 for w in _workers(client)}
    omp = client.run(os.environ.get, "OMP_NUM_THREADS")
    assert set(omp.values()) == {"1"}
    assert sorted(client.nthreads().values()) == [1, 1]


def test_grid_search_on_dask_backend(client, digits):
    X, y = digits
    X, y = X[:600], y[:600]
    est = pynn.MLPClassifier(max_iter=30, tol=None, random_state=0)
    grid = {"hidden_layer_sizes": [(16,), (32,)], "learning_rate_init": [1e-3, 1e-2]}
    n_fits = 4 * 3

    with get_task_stream(client) as ts, joblib.parallel_config(backend="dask"):
        on_dask = GridSearchCV(est, grid, cv=3).fit(X, y)
    local = GridSearchCV(est, grid, cv=3).fit(X, y)  # joblib's default: in this process

    # the fits ran on the cluster's workers
    tasks = [t for t in ts.data if "_fit_and_score" in str(t["key"])]
    assert tasks, f"no _fit_and_score task ran on the cluster: {ts.data}"
    assert {t["worker"] for t in tasks} <= _workers(client)
    counts = [re.search(r"_fit_and_score_(\d+)_calls", str(t["key"])) for t in tasks]
    if all(counts):  # joblib names its batches "..._fit_and_score_<n>_calls-<id>"
        assert sum(int(m.group(1)) for m in counts) == n_fits

    # ...with the local run's results (fixed random_state: the same weights)
    np.testing.assert_array_equal(on_dask.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    assert on_dask.best_params_ == local.best_params_
    assert on_dask.best_score_ >= 0.8  # 0.873; chance is 0.1
    np.testing.assert_array_equal(on_dask.predict(X), local.predict(X))


def _blocks(X, y, rows):
    return [(X[i:i + rows], y[i:i + rows]) for i in range(0, len(X), rows)]


def test_partial_fit_survives_pickling(digits):
    """What the incremental test relies on: a model sent to another process between
    partial_fit calls (pickled there and back) trains on exactly as one kept in memory
    would, optimizer state (Adam's moments and step count, SGD's velocity) included,
    as in scikit-learn."""
    X, y = digits
    classes = np.unique(y)
    for solver in ("adam", "sgd"):
        kept = pynn.MLPClassifier((16,), solver=solver, random_state=0)
        sent = pynn.MLPClassifier((16,), solver=solver, random_state=0)
        for bx, by in _blocks(X[:900], y[:900], 300):
            kept.partial_fit(bx, by, classes=classes)
            sent = pickle.loads(pickle.dumps(sent.partial_fit(bx, by, classes=classes)))
        for a, b in zip(kept.coefs_ + kept.intercepts_, sent.coefs_ + sent.intercepts_):
            np.testing.assert_array_equal(a, b, err_msg=f"solver={solver!r}")


def test_incremental_partial_fit_over_dask_blocks(client, digits):
    X, y = digits
    X_train, y_train, X_test, y_test = X[:1500], y[:1500], X[1500:], y[1500:]
    rows, epochs = 250, 8
    classes = np.unique(y)
    Xd = da.from_array(X_train, chunks=(rows, X.shape[1]))
    yd = da.from_array(y_train, chunks=(rows,))
    assert Xd.numblocks == (6, 1)

    def new_model():
        return pynn.MLPClassifier((32,), learning_rate_init=0.01, random_state=0)

    # dask-ml style: the blocks live on the workers; the model goes to a worker with
    # each block, is trained there by partial_fit and comes back (as a future) to be
    # sent with the next block.  MLPClassifier.partial_fit returns the model itself.
    xb = client.compute(list(Xd.to_delayed().ravel()))
    yb = client.compute(list(yd.to_delayed().ravel()))
    with get_task_stream(client) as ts:
        model = new_model()
        for _ in range(epochs):
            for bx, by in zip(xb, yb):
                model = client.submit(pynn.MLPClassifier.partial_fit, model, bx, by,
                                      classes=classes, pure=False)
        remote = model.result(timeout=TIMEOUT)
    fits = [t for t in ts.data if str(t["key"]).startswith("partial_fit")]
    assert len(fits) == epochs * Xd.numblocks[0]
    assert {t["worker"] for t in fits} <= _workers(client)

    # the same loop in this process, over the NumPy blocks
    local = new_model()
    for _ in range(epochs):
        for bx, by in _blocks(X_train, y_train, rows):
            local.partial_fit(bx, by, classes=classes)

    # n_iter_ counts the epochs of the last call (as in scikit-learn); loss_curve_ all
    assert remote.n_iter_ == local.n_iter_ == 1
    assert len(remote.loss_curve_) == len(local.loss_curve_) == epochs * Xd.numblocks[0]
    for a, b in zip(remote.coefs_ + remote.intercepts_, local.coefs_ + local.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(remote.predict(X_test), local.predict(X_test))
    assert remote.score(X_test, y_test) >= 0.8  # 0.889
