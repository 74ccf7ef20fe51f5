"""Threads and processes: a child forked after the core ran threads runs on one
thread instead of hanging (libgomp is not fork-safe); thread counts beyond the
processors are capped instead of ending the interpreter when threads cannot be
created; Ctrl-C stops a long predict.  Whatever could hang or end the process
runs in a subprocess with a timeout."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import interrupt_child
import pynn
from pynn import _base, _core

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# Big enough that the kernels and predict really start teams of two threads.
SETUP = textwrap.dedent(
    """
    import hashlib, os, sys, warnings
    import numpy as np
    import pynn
    from pynn import _core

    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 64)).astype(np.float32)
    y = rng.integers(0, 3, 3000)

    def fit_and_predict():
        m = pynn.MLPClassifier((256, 128), max_iter=2, tol=None, batch_size=256,
                               random_state=0, n_threads=2).fit(X, y)
        p = m.predict_proba(X)
        return hashlib.sha256(m.coefs_[0].tobytes() + p.tobytes()).hexdigest()
    """
)


def run_child(code, timeout, setup=SETUP, **kw):
    """Run code in a new session; on timeout kill the whole process group (a hung
    forked grandchild included) and fail."""
    # run outside the source tree (cwd=tmp_path) so the child imports the installed pynn
    proc = subprocess.Popen([sys.executable, "-c", setup + textwrap.dedent(code)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the child process hung (no result within {timeout} s)")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftover workers, if any
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.skipif(not pynn.has_openmp(), reason="a build without OpenMP runs no thread team, "
                    "so a forked child has none to avoid")
def test_os_fork_after_threads_runs_on_one_thread_with_the_same_results(tmp_path):
    out = run_child(
        """
        before = fit_and_predict()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    got = fit_and_predict()
                    again = fit_and_predict()
                fork_warnings = [c for c in caught if issubclass(c.category, RuntimeWarning)
                                 and "forked" in str(c.message)]
                os.write(w, ("%s %s %d %d %d" % (got, again, _core.forked(),
                                                 _core.threads(2), len(fork_warnings))).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        msg = os.read(r, 1000).decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        got, again, forked, threads, n_warn = msg.split()
        assert got == before and again == before, (got, again, before)
        assert forked == "1" and threads == "1", msg
        assert n_warn == "1", msg          # warned once, not on every call
        assert not _core.forked()          # the parent keeps its threads
        assert fit_and_predict() == before
        print("OK")
        """, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("OK")


def test_every_entry_point_in_a_forked_child_with_the_default_threads(tmp_path):
    # n_threads=None (OpenMP's default): L-BFGS (loss and gradient of the whole
    # set), loss_and_gradients, predict and the ops kernels, after threads ran
    out = run_child(
        """
        from pynn import ops

        def everything():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # L-BFGS stops at max_iter
                m = pynn.MLPClassifier((256,), solver="lbfgs", max_iter=3, tol=None,
                                       random_state=0).fit(X, y)
            loss, cg, ig = m.loss_and_gradients(X, y)
            grads = cg + ig
            W = np.ascontiguousarray(m.coefs_[0])
            a = ops.dense_forward(X, W, m.intercepts_[0], "relu")
            parts = [m.predict_proba(X), np.float64(loss), a] + list(grads)
            return hashlib.sha256(b"".join(np.asarray(p).tobytes() for p in parts)).hexdigest()

        before = everything() + fit_and_predict()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    os.write(w, (everything() + fit_and_predict()).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        msg = os.read(r, 1000).decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert msg == before, (msg, before)
        print("OK")
        """, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("OK")


def test_multiprocessing_fork_pool_after_threads_does_not_hang(tmp_path):
    out = run_child(
        """
        import multiprocessing

        def work(_):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return fit_and_predict()

        if __name__ == "__main__":
            before = fit_and_predict()
            with multiprocessing.get_context("fork").Pool(2) as pool:
                got = pool.map(work, range(4))
            assert got == [before] * 4, (got, before)
            print("OK")
        """, timeout=90, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("OK")


def test_joblib_multiprocessing_backend_after_threads_does_not_hang(tmp_path):
    pytest.importorskip("joblib")
    out = run_child(
        """
        import joblib

        if __name__ == "__main__":
            before = fit_and_predict()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                got = joblib.Parallel(n_jobs=2, backend="multiprocessing")(
                    joblib.delayed(fit_and_predict)() for _ in range(2))
            assert got == [before] * 2, (got, before)
            print("OK")
        """, timeout=90, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("OK")


def test_a_child_forked_before_any_threads_keeps_them(tmp_path):
    out = run_child(
        """
        pid = os.fork()
        if pid == 0:
            os._exit(1 if _core.forked() else 0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        print("OK")
        """, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def _cpus():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@pytest.mark.skipif(not pynn.has_openmp(), reason="no OpenMP")
def test_thread_counts_are_capped_at_the_processors():
    assert 1 <= _core.threads(4096) <= _cpus()
    assert _core.threads(1) == 1
    assert pynn.max_threads() <= _cpus()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS on Linux")
def test_many_threads_under_an_address_space_limit_do_not_end_the_process(tmp_path):
    code = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        import numpy as np
        import pynn
        rng = np.random.default_rng(0)
        X = rng.standard_normal((20000, 64)).astype(np.float32)
        y = rng.integers(0, 3, 20000)
        ref = pynn.MLPClassifier((512,), max_iter=1, tol=None, batch_size=512,
                                 random_state=0, n_threads=1).fit(X[:4000], y[:4000])
        for nt in (512, 1000, 4096):
            m = pynn.MLPClassifier((512,), max_iter=1, tol=None, batch_size=512,
                                   random_state=0, n_threads=nt).fit(X[:4000], y[:4000])
            assert np.array_equal(m.coefs_[0], ref.coefs_[0])
            assert np.array_equal(m.predict_proba(X), ref.predict_proba(X))
        print("OK")
        """)
    out = run_child(code, timeout=300, setup="", cwd=tmp_path)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.strip() == "OK"


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_predict_in_many_calls_gives_the_same_bits(monkeypatch, sparse, n_threads):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5000, 30))
    X[X < 0.5] = 0
    y = rng.integers(0, 4, 5000)
    m = pynn.MLPClassifier((40, 20), max_iter=2, tol=None, random_state=0,
                           n_threads=n_threads).fit(X, y)
    if sparse:
        sp = pytest.importorskip("scipy.sparse")
        X = sp.csr_matrix(X)
    whole = m.predict_proba(X)
    calls = []
    real_predict = _base._sparse.predict

    def counted(net, out, *args):
        calls.append(out.shape[0])
        return real_predict(net, out, *args)

    monkeypatch.setattr(_base._sparse, "predict", counted)
    monkeypatch.setattr(_base, "_PREDICT_CALL_SECONDS", 0)
    monkeypatch.setattr(_base, "_PREDICT_CALL_WORK", 1)  # a call per block
    assert np.array_equal(m.predict_proba(X), whole)
    assert len(calls) > 1 and len(set(calls[:-1])) == 1 and sum(calls) == X.shape[0]
    calls.clear()
    monkeypatch.setattr(_base, "_PREDICT_CALL_WORK", 40 * 30 * 777)  # odd sizes
    assert np.array_equal(m.predict_proba(X), whole)
    assert len(calls) > 1 and sum(calls) == X.shape[0]
    # calls that grow with the time the previous one took: the same bits
    calls.clear()
    monkeypatch.setattr(_base, "_PREDICT_CALL_SECONDS", 10.0)
    monkeypatch.setattr(_base, "_PREDICT_CALL_WORK", 1)
    assert np.array_equal(m.predict_proba(X), whole)
    assert len(calls) > 1 and calls[1] > calls[0] and sum(calls) == X.shape[0]


PREDICT_CHILD = textwrap.dedent(
    """
    import json, time
    import numpy as np
    import pynn

    rng = np.random.default_rng(0)
    model = pynn.MLPClassifier((256, 256), max_iter=1, tol=None, random_state=0).fit(
        rng.standard_normal((500, 20)).astype(np.float32), rng.integers(0, 10, 500))
    X = rng.standard_normal((2_000_000, 20)).astype(np.float32)
    print("READY", flush=True)
    try:
        model.predict(X)
        print(json.dumps({"finished": True}), flush=True)
    except KeyboardInterrupt:
        caught = time.time()
        pred = model.predict(X[:5])
        print(json.dumps({"finished": False, "caught": caught, "n_pred": int(len(pred))}),
              flush=True)
    """
)


def test_sigint_stops_a_long_predict_quickly(tmp_path):
    result, sent = interrupt_child(PREDICT_CHILD, tmp_path, delay=0.3, timeout=120)
    assert result["finished"] is False
    assert result["caught"] - sent < 1.0
    assert result["n_pred"] == 5
