"""The estimator features a scikit-learn user relies on: sample weights,
early stopping, progress reports, persistence, plots, DataFrames."""
import io
import os
import pickle
import re
import struct
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import pynn
from pynn import MLPClassifier, MLPRegressor, Perceptron


def blobs(n=120, n_features=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (n_classes, n_features))
    y = np.arange(n) % n_classes
    return centers[y] + rng.normal(0, 1, (n, n_features)), y


def quiet(fn, *a, **k):
    """fn(*a, **k) without convergence warnings (pynn's, and scikit-learn's for
    the fits of its MLPs that tests compare with)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pynn.ConvergenceWarning)
        sk_exceptions = sys.modules.get("sklearn.exceptions")
        if sk_exceptions is not None:
            warnings.simplefilter("ignore", sk_exceptions.ConvergenceWarning)
        return fn(*a, **k)


# ---- sample_weight ----------------------------------------------------------------

@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor, Perceptron])
def test_integer_sample_weights_equal_repeated_rows(cls):
    """Full-batch gradient descent: weight 2 is the row twice, weight 0 no row."""
    X, y = blobs(60)
    if cls is MLPRegressor:
        y = X @ np.array([1.0, -2.0, 0.5, 0.0])
    w = np.arange(60) % 4 % 3  # 0, 1, 2, 0, 0, 1, ...: every class keeps rows
    kw = dict(dtype="float64", max_iter=30, tol=None, batch_size=None)
    if cls is not Perceptron:
        kw.update(hidden_layer_sizes=(5,), random_state=0, solver="sgd",
                  learning_rate_init=0.05)
    weighted = cls(**kw).fit(X, y, sample_weight=w)
    rep = np.repeat(np.arange(60), w)
    repeated = cls(**kw).fit(X[rep], y[rep])
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)
    pw, pr = weighted._arena, repeated._arena
    np.testing.assert_allclose(pw, pr, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_sample_weight_follows_scikit_learn(kind, solver):
    """Minibatches, unshuffled, float64: the trajectory of scikit-learn's MLP
    with the same sample weights (loss per batch: sum w l / sum w)."""
    sk_nn = pytest.importorskip("sklearn.neural_network")
    X, y = blobs(90)
    if kind == "regressor":
        y = X @ np.array([1.0, -2.0, 0.5, 0.3])
        ours, theirs = MLPRegressor, sk_nn.MLPRegressor
    else:
        ours, theirs = MLPClassifier, sk_nn.MLPClassifier
    w = np.random.default_rng(1).uniform(0.1, 3.0, 90)
    kw = dict(hidden_layer_sizes=(6,), solver=solver, batch_size=32, shuffle=False, max_iter=5,
              tol=1e-4, n_iter_no_change=1000, random_state=0, alpha=1e-3,
              learning_rate_init=0.01)
    a = quiet(ours(dtype="float64", **kw).fit, X, y, sample_weight=w)
    b = quiet(theirs(**kw).fit, X, y, sample_weight=w)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ca, cb, rtol=1e-9, atol=1e-12)


def test_sample_weight_in_partial_fit_and_score():
    X, y = blobs(60)
    w = np.where(y == 0, 5.0, 1.0)
    m = MLPClassifier((8,), random_state=0, dtype="float64")
    m.partial_fit(X, y, sample_weight=w, classes=[0, 1, 2])
    assert m.n_iter_ == 1
    acc = (m.predict(X) == y).astype(float)
    assert m.score(X, y, sample_weight=w) == pytest.approx(np.average(acc, weights=w))


# ---- early stopping -----------------------------------------------------------------

def test_early_stopping_scores_and_restores_the_best_weights():
    X, y = blobs(300, seed=2)
    kw = dict(hidden_layer_sizes=(16,), early_stopping=True, validation_fraction=0.2,
              tol=None, random_state=0, learning_rate_init=0.05, dtype="float64")
    a = quiet(MLPClassifier(max_iter=12, **kw).fit, X, y)
    assert len(a.validation_scores_) == a.n_iter_ == 12
    assert a.best_validation_score_ == max(a.validation_scores_)
    assert all(0 <= s <= 1 for s in a.validation_scores_)
    best = int(np.argmax(a.validation_scores_))  # first epoch reaching the best
    # the same fit stopped right after the best epoch holds the same weights
    b = quiet(MLPClassifier(max_iter=best + 1, **kw).fit, X, y)
    np.testing.assert_array_equal(a._arena, b._arena)
    assert a.best_loss_ is None  # as scikit-learn: the validation score decides


def test_early_stopping_stops_when_the_score_stalls():
    X, y = blobs(200)
    m = MLPClassifier((8,), early_stopping=True, tol=10.0, n_iter_no_change=3, max_iter=100,
                      random_state=0).fit(X, y)
    # no score can beat the best by 10: the count passes 3 at epoch 5
    assert m.n_iter_ == 5 and len(m.validation_scores_) == 5


def test_early_stopping_regressor_uses_r2():
    X, _ = blobs(200)
    y = X @ np.array([1.0, -1.0, 2.0, 0.0])
    m = quiet(MLPRegressor((16,), early_stopping=True, max_iter=30, random_state=0,
                           learning_rate_init=0.01).fit, X, y)
    assert m.best_validation_score_ > 0.5
    assert m.validation_scores_[-1] <= m.best_validation_score_


def test_early_stopping_refusals():
    X, y = blobs(20)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPClassifier(early_stopping=True, validation_fraction=0.01).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="validation_fraction"):
        MLPClassifier(early_stopping=True, validation_fraction=1.0).fit(X, y)


def test_validation_split_is_stratified():
    from pynn._validation import validation_split

    groups = np.array([0] * 90 + [1] * 10)
    train, val = validation_split(100, 0.2, np.random.RandomState(0), groups)
    assert len(val) == 20 and np.bincount(groups[val]).tolist() == [18, 2]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))


# ---- progress -----------------------------------------------------------------------

def test_verbose_1_draws_a_live_bar_on_stderr(capsys):
    X, y = blobs(200)
    m = quiet(MLPClassifier((8,), early_stopping=True, max_iter=6, tol=None, verbose=1,
                            random_state=0).fit, X, y)
    out, err = capsys.readouterr()
    assert out == ""
    frames = [f for f in err.split("\r") if f.strip()]
    assert frames and err.endswith("\n")
    last = frames[-1]
    assert re.search(r"epoch 6/6 +\[#{20}\] +100%", last), last
    assert f"loss {m.loss_:.4g}" in last
    assert f"val {m.validation_scores_[-1]:.4f}" in last
    assert "samples/s" in last and "ETA" in last


def test_verbose_1_redraws_are_throttled(capsys):
    """Redraws happen at most every 0.2 s (plus the final one), so a fit of
    many short epochs does not spend its time printing."""
    X, y = blobs(100)
    import time

    t0 = time.perf_counter()
    Perceptron(max_iter=3000, tol=None, verbose=True).fit(X, y == 0)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert err.count("\r") <= elapsed / 0.2 + 3


def test_silent_by_default(capsys):
    X, y = blobs(60)
    quiet(MLPClassifier((4,), max_iter=3).fit, X, y)
    assert capsys.readouterr() == ("", "")


def test_verbose_2_reports_validation_score(capsys):
    X, y = blobs(200)
    m = quiet(MLPClassifier((8,), early_stopping=True, max_iter=3, tol=None, verbose=2,
                            random_state=0).fit, X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for line, score in zip(lines, m.validation_scores_):
        assert f"validation score = {score:.6f}" in line


# ---- persistence ----------------------------------------------------------------------

def fitted_models():
    X, y = blobs(90)
    yield "clf-str", quiet(MLPClassifier((7, 5), max_iter=5, random_state=0).fit, X,
                           np.array(["cat", "dog", "emu"])[y]), X
    yield "clf-binary-f64", quiet(MLPClassifier((4,), max_iter=5, random_state=0,
                                                dtype="float64").fit, X, y == 1), X
    yield "clf-multilabel", quiet(MLPClassifier((4,), max_iter=5, random_state=0).fit, X,
                                  np.eye(3, dtype=int)[y]), X
    yield "reg-2d", quiet(MLPRegressor((6,), max_iter=5, random_state=0).fit, X,
                          np.column_stack([X[:, 0], X[:, 1]])), X
    yield "reg-1d-es", quiet(MLPRegressor((6,), max_iter=5, random_state=0,
                                          early_stopping=True).fit, X, X[:, 0]), X
    yield "perceptron", quiet(Perceptron(max_iter=20).fit, X, y == 2), X
    yield "perceptron-ovr", quiet(Perceptron("step", max_iter=20, dtype="float64").fit, X, y), X


@pytest.mark.parametrize("name,model,X", list(fitted_models()), ids=lambda v: v if
                         isinstance(v, str) else "")
def test_save_load_round_trip_is_exact(tmp_path, name, model, X):
    path = tmp_path / "model.pynn"
    model.save(path)
    loaded = pynn.load(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    for method in ("predict", "predict_proba", "decision_function"):
        if hasattr(model, method):
            np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(model, method)(X))
    np.testing.assert_array_equal(loaded._arena, model._arena)
    assert loaded._arena.dtype == model._arena.dtype
    assert loaded.loss_curve_ == model.loss_curve_ and loaded.n_iter_ == model.n_iter_
    if hasattr(model, "classes_"):
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
        assert loaded.classes_.dtype == model.classes_.dtype
    assert loaded.validation_scores_ == model.validation_scores_
    # file objects work as well as paths
    buf = io.BytesIO()
    model.save(buf)
    np.testing.assert_array_equal(pynn.load(io.BytesIO(buf.getvalue())).predict(X),
                                  model.predict(X))


def test_loaded_model_trains_on(tmp_path):
    X, y = blobs(90)
    m = quiet(MLPClassifier((5,), max_iter=3, random_state=0).fit, X, y)
    m.save(tmp_path / "m.pynn")
    loaded = pynn.load(tmp_path / "m.pynn")
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == 1 and len(loaded.loss_curve_) == 4
    assert np.isfinite(loaded._arena).all()


def test_file_header_is_documented_plain_data(tmp_path):
    import json

    X, y = blobs(30)
    m = quiet(MLPClassifier((3,), max_iter=2, random_state=0).fit, X, y)
    m.save(tmp_path / "m.pynn")
    data = (tmp_path / "m.pynn").read_bytes()
    magic, version, hlen = struct.unpack_from("<8sII", data)
    assert magic == b"PYNNMODL" and version == 1
    header = json.loads(data[16:16 + hlen])
    assert header["estimator"] == "MLPClassifier"
    assert header["pynn_version"] == pynn.__version__
    assert header["units"] == [4, 3, 3]
    assert header["params"]["hidden_layer_sizes"] == [3]
    assert header["fitted"]["classes_"]["values"] == [0, 1, 2]
    count = header["arena"]["count"]
    assert len(data) == 16 + hlen + 4 * count + 4


def _saved(tmp_path):
    X, y = blobs(30)
    m = quiet(MLPClassifier((3,), max_iter=2, random_state=0).fit, X, y)
    m.save(tmp_path / "m.pynn")
    return (tmp_path / "m.pynn").read_bytes()


def test_rejects_corrupt_truncated_and_foreign_files(tmp_path):
    data = _saved(tmp_path)
    cases = {
        "flipped-weight-byte": (data[:-20] + bytes([data[-20] ^ 0xFF]) + data[-19:],
                                "checksum"),
        "flipped-header-byte": (data[:30] + bytes([data[30] ^ 0x01]) + data[31:],
                                "corrupt|checksum"),
        "truncated": (data[:len(data) // 2], "truncated"),
        "truncated-prefix": (data[:10], "not a pynn model file|truncated"),
        "empty": (b"", "not a pynn model file"),
        "pickle": (pickle.dumps(MLPClassifier()), "not a pynn model file"),
        "numpy": (b"\x93NUMPY" + bytes(100), "not a pynn model file"),
        "newer-format": (data[:8] + struct.pack("<I", 99) + data[12:], "version 99"),
    }
    for name, (blob, msg) in cases.items():
        path = tmp_path / f"{name}.pynn"
        path.write_bytes(blob)
        with pytest.raises(pynn.ModelFileError, match=msg):
            pynn.load(path)
    with pytest.raises(FileNotFoundError):
        pynn.load(tmp_path / "missing.pynn")
    with pytest.raises(pynn.NotFittedError):
        MLPClassifier().save(tmp_path / "unfitted.pynn")


def test_rejects_a_consistent_file_with_a_forged_header(tmp_path):
    """A header that passes the checksum but lies about the layers."""
    import json
    import zlib

    data = _saved(tmp_path)
    hlen = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[16:16 + hlen])
    header["units"] = [4, 1000, 3]
    head = json.dumps(header).encode()
    body = data[:12] + struct.pack("<I", len(head)) + head + data[16 + hlen:-4]
    (tmp_path / "forged.pynn").write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    with pytest.raises(pynn.ModelFileError, match="parameters|truncated|do not match"):
        pynn.load(tmp_path / "forged.pynn")


def test_pickle_round_trip_keeps_training_state():
    X, y = blobs(90)
    a = MLPClassifier((6,), random_state=0)
    b = MLPClassifier((6,), random_state=0)
    for i in range(0, 90, 30):
        a.partial_fit(X[i:i + 30], y[i:i + 30], classes=[0, 1, 2])
        b = pickle.loads(pickle.dumps(b.partial_fit(X[i:i + 30], y[i:i + 30],
                                                    classes=[0, 1, 2])))
    np.testing.assert_array_equal(a._arena, b._arena)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_unpickled_buffers_at_odd_offsets_are_realigned():
    """Pickle protocol 5 (as Dask sends models) can hand back the arrays at any
    byte offset; the model realigns them before the core reads them."""
    X, y = blobs(60)
    m = MLPClassifier((7,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    bufs = []
    data = pickle.dumps(m, protocol=5, buffer_callback=bufs.append)
    moved = []
    for b in bufs:
        raw = b.raw()
        frame = bytearray(len(raw) + 1)
        frame[1:] = raw
        moved.append(memoryview(frame)[1:])
    m2 = pickle.loads(data, buffers=moved)
    assert m2._arena.flags.aligned and m2._arena.flags.writeable
    assert all(v.flags.aligned for v in m2._opt_state.arrays())
    m.partial_fit(X, y)
    m2.partial_fit(X, y)
    np.testing.assert_array_equal(m2._arena, m._arena)


# ---- plots ----------------------------------------------------------------------------

def test_plot_loss_curve(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    X, y = blobs(200)
    m = quiet(MLPClassifier((8,), early_stopping=True, max_iter=5, tol=None,
                            random_state=0).fit, X, y)
    ax = pynn.plot_loss_curve(m)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), m.loss_curve_)
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(1, 6))
    np.testing.assert_allclose(ax.right_ax.lines[0].get_ydata(), m.validation_scores_)
    # into given axes, without validation scores
    import matplotlib.pyplot as plt

    fig, given = plt.subplots()
    p = Perceptron(max_iter=7, tol=None).fit(X, y == 0)
    assert pynn.plot_loss_curve(p, ax=given) is given
    assert len(given.lines) == 1 and not hasattr(given, "right_ax")
    with pytest.raises(pynn.NotFittedError):
        pynn.plot_loss_curve(MLPClassifier())
    plt.close("all")


def test_demo_saves_plot_and_model(tmp_path):
    pytest.importorskip("matplotlib")
    png, model = tmp_path / "loss.png", tmp_path / "demo.pynn"
    res = subprocess.run([sys.executable, "-m", "pynn", "--samples", "2000", "--epochs", "3",
                          "--plot", str(png), "--save", str(model)],
                         capture_output=True, text=True, cwd=str(tmp_path), timeout=120)
    assert res.returncode == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pynn.load(model).n_iter_ == 3


@pytest.mark.parametrize("epochs", [1, 2, 5, 7, 13])
def test_loss_curve_ticks_are_whole_epochs(epochs):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y = blobs(120)
    for model in (MLPClassifier((4,), max_iter=epochs, tol=None, random_state=0),
                  MLPClassifier((4,), max_iter=epochs, tol=None, random_state=0,
                                early_stopping=True)):
        ax = pynn.plot_loss_curve(model.fit(X, y))
        ax.figure.canvas.draw()
        ticks = np.asarray(ax.get_xticks())
        shown = ticks[(ticks >= ax.get_xlim()[0]) & (ticks <= ax.get_xlim()[1])]
        assert len(shown) >= 1
        np.testing.assert_array_equal(ticks, np.round(ticks))
        if hasattr(ax, "right_ax"):  # the twin shares the epoch axis
            np.testing.assert_array_equal(ax.right_ax.get_xticks(), ticks)
        plt.close(ax.figure)


def _run_demo(args, prelude="", timeout=120, cwd=None):
    """python -m pynn ARGS in a fresh interpreter, after running `prelude`."""
    code = (f"import runpy, sys\n{prelude}\nsys.argv = ['python -m pynn'] + {list(args)!r}\n"
            "runpy.run_module('pynn', run_name='__main__', alter_sys=True)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def test_demo_help_documents_every_option_without_markup():
    res = subprocess.run([sys.executable, "-m", "pynn", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "``" not in text and "`" not in text
    # argparse wraps the help of each option; join each option's lines into one
    options = re.split(r"\n  (?=-)", text.split("options:", 1)[1])
    helps = {m.group(1): " ".join(opt.split()) for opt in options
             if (m := re.match(r"(--[\w-]+)", opt.strip()))}
    expected = {"--samples": "30000", "--features": "64", "--classes": "10",
                "--hidden": "128 64", "--epochs": "20", "--batch-size": "64",
                "--dtype": "float32", "--threads": "OpenMP", "--seed": "0", "--verbose": "0",
                "--plot": "no plot", "--save": "not saved", "--compare": "off"}
    assert set(helps) == set(expected)
    for flag, default in expected.items():
        words = helps[flag].split(None, 1)
        assert len(words) == 2 and len(words[1]) > 20, f"{flag} has no help text"
        assert f"(default: {default}" in helps[flag], helps[flag]
    assert 'pip install "pynn-mlp[plot]"' in helps["--plot"]


def test_demo_plot_without_matplotlib_stops_before_training(tmp_path):
    """--plot with matplotlib missing: one clear line and exit status 2, before
    any data is made or any model trained (a million rows would take minutes)."""
    png = tmp_path / "loss.png"
    t0 = time.perf_counter()
    res = _run_demo(["--samples", "1000000", "--epochs", "50", "--plot", str(png)],
                    prelude="sys.modules['matplotlib'] = None  # as if not installed",
                    cwd=str(tmp_path))
    elapsed = time.perf_counter() - t0
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == ""  # nothing reported: no data made, no model trained
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("python -m pynn: error: --plot needs matplotlib")
    assert 'pip install "pynn-mlp[plot]"' in lines[0] and "pip install matplotlib" in lines[0]
    assert not png.exists()
    assert elapsed < 30


def test_demo_trains_in_bfloat16():
    res = _run_demo(["--samples", "3000", "--epochs", "3", "--dtype", "bfloat16"])
    assert res.returncode == 0, res.stderr
    assert "bfloat16" in res.stdout and re.search(r"accuracy", res.stdout, re.I)


def test_demo_refuses_an_output_file_in_a_missing_folder(tmp_path):
    missing = tmp_path / "no-such-folder" / "model.pynn"
    res = _run_demo(["--samples", "1000000", "--save", str(missing)], cwd=str(tmp_path))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == (f"python -m pynn: error: --save {missing}: the folder "
                                  f"{missing.parent} does not exist")


# ---- DataFrames -----------------------------------------------------------------------

def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = blobs(60)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    m = quiet(MLPClassifier((4,), max_iter=3, random_state=0).fit, df, y)
    np.testing.assert_array_equal(m.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="feature names should match"):
        m.predict(df.rename(columns={"a": "z"}))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        from_array = m.predict(X)
    np.testing.assert_array_equal(m.predict(df), from_array)
    plain = quiet(MLPClassifier((4,), max_iter=3, random_state=0).fit, X, y)
    assert not hasattr(plain, "feature_names_in_")
    with pytest.warns(UserWarning, match="fitted without feature names"):
        plain.predict(df)


# ---- review fixes ---------------------------------------------------------------------

def test_n_iter_counts_the_epochs_of_the_last_call_as_in_scikit_learn():
    sk_nn = pytest.importorskip("sklearn.neural_network")
    X, y = blobs(60)
    ours = quiet(MLPClassifier((4,), max_iter=3, random_state=0).fit, X, y)
    theirs = quiet(sk_nn.MLPClassifier((4,), max_iter=3, random_state=0).fit, X, y)
    for m in (ours, theirs):
        quiet(m.partial_fit, X, y)
        m.set_params(warm_start=True)
        quiet(m.fit, X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 3
    assert len(ours.loss_curve_) == len(theirs.loss_curve_) == 7


def test_partial_fit_may_switch_solver():
    X, y = blobs(60)
    m = MLPClassifier((4,), solver="sgd", random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    m.set_params(solver="adam")
    m.partial_fit(X, y)
    assert m._opt_state.solver == "adam" and np.isfinite(m._arena).all()


def test_a_shallow_copy_does_not_share_training_state():
    import copy

    X, y = blobs(60)
    a = quiet(MLPClassifier((4,), max_iter=3, random_state=0, warm_start=True).fit, X, y)
    b = copy.copy(a)
    b._arena = a._arena.copy()  # separate weights, as a user copying weights would make
    b._bind_views()
    moments = a._opt_state.a.copy()
    quiet(b.fit, X, y)
    np.testing.assert_array_equal(a._opt_state.a, moments)


def test_multiclass_perceptron_gradients_and_layers():
    X, y = blobs(30, n_features=3)
    p = Perceptron(max_iter=5, tol=None, dtype="float64").fit(X, y)
    loss, gc, gi = p.loss_and_gradients(X, y)
    assert gc.shape == p.coef_.shape == (3, 3) and gi.shape == p.intercept_.shape == (3,)
    for j in range(3):  # row j is neuron j's own gradient
        alone = Perceptron(max_iter=1, tol=None, dtype="float64").fit(X, y == j)
        alone.coef_[...] = p.coef_[j]
        alone.intercept_[...] = p.intercept_[j]
        _, gcj, gij = alone.loss_and_gradients(X, y == j)
        np.testing.assert_allclose(gc[j], gcj, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gi[j], gij[0], rtol=1e-12, atol=1e-15)
    acts = p.forward_layers(X)
    assert acts[1].shape == (30, 3)
    np.testing.assert_allclose(acts[1], 1 / (1 + np.exp(-(X @ p.coef_.T + p.intercept_))),
                               rtol=1e-12)


def test_workspace_grows_with_the_batch_only_as_the_layers_need():
    """The area for packing a batch of rows is reserved only for layer widths
    where packing is used (multiples of 512), and only up to 4096 rows."""
    from pynn import _core

    small = _core.Net([10, 10, 1], _core.ACTIVATIONS["relu"], _core.ACTIVATIONS["identity"],
                      _core.LOSSES["half_squared_error"])
    # activations 11 + two deltas 2 x 10 + gathered rows 10 + 1 per row + the first
    # pre-activation 1 per row (the check of the input) + the row's loss (a double,
    # 2 scalars), nothing more
    assert small.workspace_size(10**6) < 46 * 10**6
    wide = _core.Net([784, 1024, 10], _core.ACTIVATIONS["relu"], _core.ACTIVATIONS["softmax"],
                     _core.LOSSES["categorical_cross_entropy"])
    assert wide.workspace_size(10**6) < (1024 + 784 + 2 * 1024 + 10 + 10 + 10) * 10**6


def test_training_buffers_are_kept_only_when_small(monkeypatch):
    import pynn._training as training

    X, y = blobs(60)
    m = quiet(MLPClassifier((8,), max_iter=2, random_state=0).fit, X, y)
    assert "_scratch" in m.__dict__  # reused by the next partial_fit / warm start
    assert "_scratch" not in pickle.loads(pickle.dumps(m)).__dict__
    monkeypatch.setattr(training, "_SCRATCH_KEEP_BYTES", 0)
    m = quiet(MLPClassifier((8,), max_iter=2, random_state=0).fit, X, y)
    assert "_scratch" not in m.__dict__
