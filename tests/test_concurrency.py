"""Concurrency: fits of different models in different threads run at the same
time (the GIL is released inside the core) and give the same weights as serial
fits; many threads predicting with one fitted model at once are safe; repeated
fit/predict cycles do not grow memory."""
import gc
import os
import threading
import tracemalloc

import numpy as np
import pytest

from pynn import MLPClassifier, MLPRegressor

RNG = np.random.default_rng(11)
X = RNG.normal(size=(3000, 20)).astype(np.float32)
Y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 0.5)


def model(seed, **kw):
    return MLPClassifier((64, 32), max_iter=4, tol=None, random_state=seed, n_threads=1,
                         **kw)


def run_threads(targets):
    errors = []

    def wrap(fn):
        def go():
            try:
                fn()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
        return go

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors


def test_concurrent_fits_equal_serial_fits():
    serial = [model(seed).fit(X, Y) for seed in range(4)]
    parallel = [model(seed) for seed in range(4)]
    run_threads([lambda m=m: m.fit(X, Y) for m in parallel])
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a._arena, b._arena)
        assert a.loss_curve_ == b.loss_curve_


def _spin(stop):
    """Count loop turns of pure Python until stop() is true."""
    ticks = 0
    while not stop():
        ticks += 1
    return ticks


def test_fit_releases_the_gil():
    """While one thread trains, Python code in another keeps running at a
    good share of its normal pace: the step loop runs in C without the GIL.
    (Holding it, the core would let the other thread run only between its
    50 ms chunks: a few percent of the time.)"""
    import time

    t_end = time.perf_counter() + 0.3
    alone_rate = _spin(lambda: time.perf_counter() > t_end) / 0.3
    m = MLPClassifier((256, 256), max_iter=40, tol=None, random_state=0, n_threads=1)
    done = threading.Event()
    t = threading.Thread(target=lambda: (m.fit(X, Y), done.set()))
    t0 = time.perf_counter()
    t.start()
    ticks = _spin(done.is_set)
    elapsed = time.perf_counter() - t0
    t.join()
    assert elapsed > 0.2, "the fit was too short to tell"
    assert ticks / elapsed > 0.25 * alone_rate, (ticks / elapsed, alone_rate)


def test_many_threads_predict_with_one_model():
    m = MLPRegressor((32,), max_iter=3, tol=None, random_state=0).fit(X, X[:, 0])
    expected = m.predict(X)
    proba_model = model(0).fit(X, Y)
    expected_proba = proba_model.predict_proba(X)
    results = {}

    def predict(i):
        for _ in range(5):
            rows = slice(i * 100, i * 100 + 700)
            results[i] = (m.predict(X[rows]), proba_model.predict_proba(X[rows]))
            np.testing.assert_array_equal(results[i][0], expected[rows])
            np.testing.assert_array_equal(results[i][1], expected_proba[rows])

    run_threads([lambda i=i: predict(i) for i in range(16)])
    assert len(results) == 16


def test_fit_and_predict_of_one_model_from_two_threads_do_not_crash():
    """Not a supported pattern (results depend on timing), but it must not
    crash or corrupt memory: predictions stay finite."""
    m = model(0).fit(X, Y)
    out = []
    run_threads([lambda: m.set_params(warm_start=True).fit(X, Y),
                 lambda: out.extend(np.isfinite(m.predict_proba(X)).all() for _ in range(20))])
    assert all(out)


def _rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_repeated_fit_predict_cycles_do_not_grow_memory():
    Xs, Ys = X[:500], Y[:500]

    def cycle():
        m = MLPClassifier((32,), max_iter=2, tol=None, random_state=0).fit(Xs, Ys)
        m.predict_proba(Xs)
        m.partial_fit(Xs, Ys)
        m.score(Xs, Ys)

    for _ in range(10):  # warm up caches, pools and lazy imports
        cycle()
    gc.collect()
    tracemalloc.start()
    rss0 = _rss_bytes()
    traced0 = tracemalloc.get_traced_memory()[0]
    for _ in range(150):
        cycle()
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - traced0
    tracemalloc.stop()
    grown = _rss_bytes() - rss0
    assert traced < 256 * 1024, f"Python-visible memory grew by {traced} bytes"
    assert grown < 8 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB"
