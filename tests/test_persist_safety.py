"""Model files under stress: concurrent and killed saves, models that must not
be saved, and loading that allocates only what the file holds."""
import io
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import warnings

import numpy as np
import pytest

import pynn
from helpers import with_header
from pynn import MLPClassifier, MLPRegressor, Perceptron

X = np.random.default_rng(0).standard_normal((40, 3))
Y_CLF = np.arange(40) % 3
Y_REG = X @ np.array([1.0, -2.0, 0.5])


def _fit(kind, **params):
    base = dict(max_iter=2, tol=None, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "clf":
            return MLPClassifier((4,), **{**base, **params}).fit(X, Y_CLF)
        if kind == "reg":
            return MLPRegressor((4,), **{**base, **params}).fit(X, Y_REG)
        return Perceptron(**{**base, **params}).fit(X, Y_CLF)


def _bytes(model):
    buf = io.BytesIO()
    model.save(buf)
    return buf.getvalue()


# ---- 3. concurrent saves to one path ---------------------------------------------------

def test_concurrent_saves_to_one_path_leave_an_intact_model(tmp_path):
    path = tmp_path / "m.pynn"
    a, b = _fit("clf", random_state=1), _fit("clf", random_state=2)
    errors = []

    def saver(model):
        try:
            for _ in range(25):
                model.save(path)
        except BaseException as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=(m,)) for m in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loaded = pynn.load(path)
    assert any(np.array_equal(loaded._arena, m._arena) for m in (a, b))
    assert os.listdir(tmp_path) == ["m.pynn"]  # no temporaries left


def test_save_keeps_the_file_mode_of_a_plain_open(tmp_path):
    path = tmp_path / "m.pynn"
    _fit("clf").save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


# ---- 4. save refuses what load would refuse -----------------------------------------------

REFUSED = [
    ("clf", dict(max_iter=0), r"max_iter"),
    ("clf", dict(tol=-1), r"tol"),
    ("clf", dict(activation="softmax"), r"activation"),
    ("clf", dict(hidden_layer_sizes=(9,)), r"layer sizes"),
    ("reg", dict(alpha=-1.0), r"alpha"),
    ("reg", dict(loss="poisson"), r"out_activation_"),
    ("perc", dict(activation="step"), r"out_activation_"),
    ("perc", dict(learning_rate_init=0), r"learning_rate_init"),
]


@pytest.mark.parametrize("kind,params,match", REFUSED,
                         ids=[f"{k}-{next(iter(p))}" for k, p, _ in REFUSED])
def test_save_refuses_a_model_load_would_refuse(tmp_path, kind, params, match):
    m = _fit(kind)
    m.set_params(**params)
    path = tmp_path / "m.pynn"
    with pytest.raises(pynn.ModelFileError, match=match):
        m.save(path)
    assert os.listdir(tmp_path) == []  # nothing written
    with pytest.raises(pynn.ModelFileError, match=match):
        m.save(io.BytesIO())


@pytest.mark.parametrize("kind", ["clf", "reg", "perc"])
def test_save_refuses_non_finite_weights(tmp_path, kind):
    m = _fit(kind)
    (m.coefs_[0] if kind != "perc" else m.coef_)[0, 0] = np.nan
    with pytest.raises(pynn.ModelFileError, match=r"NaN or infinity"):
        m.save(tmp_path / "m.pynn")
    assert os.listdir(tmp_path) == []


def test_saved_models_load(tmp_path):
    for kind in ("clf", "reg", "perc"):
        m = _fit(kind)
        m.save(tmp_path / f"{kind}.pynn")
        assert np.array_equal(pynn.load(tmp_path / f"{kind}.pynn")._arena, m._arena)


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_warm_start_with_other_hidden_layer_sizes_raises(how):
    m = _fit("clf", warm_start=True)
    before = m._arena.copy()
    m.set_params(hidden_layer_sizes=(5, 2))
    with pytest.raises(ValueError, match=r"hidden_layer_sizes changed from \[4\] to \[5, 2\]"):
        m.fit(X, Y_CLF) if how == "warm_start" else m.partial_fit(X, Y_CLF)
    assert np.array_equal(m._arena, before)  # the refused fit changed nothing
    m.set_params(warm_start=False)
    m.fit(X, Y_CLF)  # a fresh fit takes the new sizes
    assert m._layout.units == (3, 5, 2, 3)


# ---- 5. a killed save leaves no temporary for good -----------------------------------------

def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="pids are probed with os.kill(pid, 0)")
def test_next_save_removes_stale_temporaries_only(tmp_path):
    from pynn._persist import _host_tag

    path = tmp_path / "m.pynn"
    host = _host_tag()
    dead = tmp_path / f".m.pynn.pynn-tmp-{_dead_pid()}-{host}-x1y2z3"
    live = tmp_path / f".m.pynn.pynn-tmp-{os.getppid()}-{host}-a1b2c3"
    other_path = tmp_path / f".other.pynn.pynn-tmp-{_dead_pid()}-{host}-a1b2c3"
    other_host = tmp_path / f".m.pynn.pynn-tmp-{_dead_pid()}-0badc0de-a1b2c3"
    for f in (dead, live, other_path, other_host):
        f.write_bytes(b"x" * 1000)
    _fit("clf").save(path)
    assert not dead.exists()
    # a live process's, another path's, another machine's (its pid means nothing here)
    assert live.exists() and other_path.exists() and other_host.exists()
    pynn.load(path)


_KILLED_SAVER = textwrap.dedent("""
    import sys, time, warnings
    import numpy as np
    import pynn
    from pynn import _persist
    real = _persist._write
    def slow_write(fh, head, arena):
        fh.write(b"PYNNMODL" + bytes(4 << 20))  # a big partial file, then hang
        fh.flush()
        print("writing", flush=True)
        time.sleep(600)
    _persist._write = slow_write
    warnings.simplefilter("ignore")
    X = np.random.default_rng(0).standard_normal((20, 3))
    m = pynn.MLPClassifier((4,), max_iter=1).fit(X, np.arange(20) % 2)
    m.save(sys.argv[1])
""")


@pytest.mark.skipif(os.name != "posix", reason="kill -9")
def test_save_killed_mid_write_is_cleaned_up_by_the_next_save(tmp_path):
    path = tmp_path / "m.pynn"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SAVER, str(path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        left = [f for f in os.listdir(tmp_path) if f.startswith(".m.pynn.pynn-tmp-")]
        assert len(left) == 1 and f"-{proc.pid}-" in left[0]
        _fit("clf").save(path)  # the writer is alive: its temporary stays
        assert os.path.exists(tmp_path / left[0])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert os.path.getsize(tmp_path / left[0]) >= 4 << 20
    _fit("clf").save(path)
    assert os.listdir(tmp_path) == ["m.pynn"]
    pynn.load(path)


# ---- 6. declared sizes are bounded by what the file holds ------------------------------------

def test_string_dtype_bomb_in_classes_is_refused_without_allocating():
    data = with_header(_bytes(_fit("clf")), lambda h: h["fitted"].update(
        classes_={"dtype": "<U250000000", "values": ["a", "b", "c"]}))
    assert len(data) < 4096
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(pynn.ModelFileError, match=r"wider than its longest label"):
            pynn.load(io.BytesIO(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0
    assert peak < 1 << 20


def test_wide_string_dtype_of_short_labels_still_round_trips(tmp_path):
    y = np.array(["a", "bb", "c"], dtype="<U40")[Y_CLF]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    assert m.classes_.dtype == np.dtype("<U40")
    m.save(tmp_path / "m.pynn")
    assert pynn.load(tmp_path / "m.pynn").classes_.dtype == np.dtype("<U40")


# ---- 7. inconsistent fields (the regressor's and Perceptron's; the classifier's are in
#         test_bad_input.py's LOAD_CASES) ----------------------------------------------------

INCONSISTENT = [
    ("reg", lambda h: h["fitted"].pop("y_ndim"), r"y_ndim"),
    ("reg", lambda h: h["fitted"].update(y_ndim=3), r"y_ndim is 3"),
    ("reg", lambda h: h["fitted"].update(out_activation_="exp"), r"out_activation_ is 'exp'"),
    ("reg", lambda h: h["fitted"].update(out_activation_="softmax"), r"out_activation_"),
    ("perc", lambda h: h["fitted"].update(out_activation_="step"),
     r"out_activation_ is 'step'"),
    ("clf", lambda h: h["fitted"].update(out_activation_="identity"),
     r"out_activation_ is 'identity'.*'softmax'"),
    ("clf", lambda h: h["fitted"].update(n_iter_=-3), r"n_iter_ is -3"),
    ("clf", lambda h: h["fitted"].update(validation_scores_=[0.5, "x"],
                                         best_validation_score_=0.5), r"validation scores"),
]


@pytest.mark.parametrize("kind,edit,match", INCONSISTENT,
                         ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(INCONSISTENT)])
def test_inconsistent_fields_are_refused(kind, edit, match):
    data = with_header(_bytes(_fit(kind)), edit)
    with pytest.raises(pynn.ModelFileError, match=match):
        pynn.load(io.BytesIO(data))


def test_poisson_regressor_round_trips(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = MLPRegressor((4,), loss="poisson", max_iter=2, random_state=0).fit(X, np.abs(Y_REG))
    m.save(tmp_path / "m.pynn")
    assert np.array_equal(pynn.load(tmp_path / "m.pynn").predict(X), m.predict(X))


# ---- 8. loading reads in order, allocating only what the file holds ---------------------------

@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_load_dev_zero_fails_fast():
    t0 = time.perf_counter()
    with pytest.raises(pynn.ModelFileError, match=r"not a pynn model file"):
        pynn.load("/dev/zero")
    assert time.perf_counter() - t0 < 1.0


def test_endless_stream_with_a_valid_prefix_is_refused():
    class Endless(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            b[:] = b"\x00" * len(b)
            return len(b)
    data = _bytes(_fit("clf"))
    hlen = struct.unpack_from("<I", data, 12)[0]
    stream = io.BufferedReader(Endless())
    head = io.BytesIO(data[:16 + hlen])

    class Chain(io.RawIOBase):  # the model's prefix and header, then zeros forever
        def readable(self):
            return True

        def readinto(self, b):
            n = head.readinto(b)
            return n if n else stream.readinto(b)
    with pytest.raises(pynn.ModelFileError, match=r"checksum|after its end"):
        pynn.load(io.BufferedReader(Chain()))


def test_load_from_a_pipe(tmp_path):
    m = _fit("reg")
    data = _bytes(m)
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, data), os.close(w)))
    writer.start()
    with os.fdopen(r, "rb") as fh:
        loaded = pynn.load(fh)
    writer.join()
    assert np.array_equal(loaded.predict(X), m.predict(X))


def test_load_from_an_object_with_read_only():
    data = _bytes(_fit("perc"))

    class ReadOnly:
        def __init__(self):
            self.buf = io.BytesIO(data)

        def read(self, n=-1):
            return self.buf.read(min(n, 7) if n and n > 0 else n)  # short reads
    assert np.array_equal(pynn.load(ReadOnly())._arena, pynn.load(io.BytesIO(data))._arena)


def test_file_object_positioned_after_other_data():
    data = _bytes(_fit("clf"))
    buf = io.BytesIO(b"junk" + data)
    buf.seek(4)
    assert pynn.load(buf).n_features_in_ == 3


def test_large_model_loads_with_little_more_memory_than_its_weights(tmp_path):
    # about 48 MB of float32 weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(0)
        m = MLPRegressor((3000,), max_iter=1, random_state=0, n_threads=1).fit(
            rng.standard_normal((4, 4000)), rng.standard_normal(4))
    path = tmp_path / "big.pynn"
    m.save(path)
    nbytes = m._arena.nbytes
    assert nbytes > 40 << 20
    del m
    tracemalloc.start()
    try:
        loaded = pynn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert loaded._arena.nbytes == nbytes
    assert peak < 1.25 * nbytes, f"peak {peak / nbytes:.2f}x the weights"
