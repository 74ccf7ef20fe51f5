"""Thread limits from the environment and from threadpoolctl; no copy of X."""
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import pynn


def test_threadpoolctl_limits_the_core():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):
        assert pynn.max_threads() == 1
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert pynn.max_threads() == 1


def test_omp_num_threads_is_respected(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", "import pynn; print(pynn.max_threads())"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    # capped at the processors this process may run on
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert out.stdout.strip() == (str(min(3, cpus)) if pynn.has_openmp() else "1")


def _peak_memory_of_fit(model, X, y):
    tracemalloc.start()
    try:
        model.fit(X, y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_fitting_c_contiguous_float32_data_makes_no_copy_of_X():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 500)).astype(np.float32)  # 40 MB
    y = rng.integers(0, 3, 20000)
    model = pynn.MLPClassifier((16,), max_iter=1, tol=None, batch_size=64, random_state=0,
                               n_threads=1)
    peak = _peak_memory_of_fit(model, X, y)
    # the model, one-hot targets and a workspace of a few batches: far below X's size
    assert peak < X.nbytes / 8, peak


def test_float64_data_for_a_float32_model_is_converted_once():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 250))  # 40 MB of float64 -> 20 MB of float32
    y = rng.integers(0, 3, 20000)
    model = pynn.MLPClassifier((16,), max_iter=1, tol=None, random_state=0, n_threads=1)
    peak = _peak_memory_of_fit(model, X, y)
    assert peak < X.nbytes / 2 * 1.25, peak
