"""Awkward but valid input works and gives the same result as the plain case:
Fortran-order, strided, read-only and memory-mapped arrays, integer X, string
labels, a single row, lists, and pandas objects."""
import numpy as np
import pytest

from pynn import MLPClassifier, MLPRegressor, Perceptron

RNG = np.random.default_rng(7)
X_INT = RNG.integers(-3, 4, size=(40, 5))
X = X_INT.astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)   # 3 classes
Y_REG = X @ np.arange(1, 6, dtype=np.float32)


def make(kind):
    if kind == "clf":
        return MLPClassifier((6,), max_iter=5, tol=None, random_state=0), Y
    if kind == "reg":
        return MLPRegressor((6,), max_iter=5, tol=None, random_state=0), Y_REG
    return Perceptron(max_iter=20, tol=None), Y


def fortran(a):
    return np.asfortranarray(a)


def strided(a):
    big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), dtype=a.dtype)
    big[::2, ::3] = a
    view = big[::2, ::3]
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    return view


def readonly(a):
    b = a.copy()
    b.flags.writeable = False
    return b


def memmapped(a, tmp_path):
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
    mm[...] = a
    mm.flush()
    return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)


def reversed_rows(a):
    return a[::-1][::-1]  # a negative-stride view of the same values


VARIANTS = {
    "fortran": lambda a, p: fortran(a),
    "strided": lambda a, p: strided(a),
    "readonly": lambda a, p: readonly(a),
    "memmap": memmapped,
    "negative-stride": lambda a, p: reversed_rows(a),
    "integer": lambda a, p: X_INT,
    "float64": lambda a, p: a.astype(np.float64),
    "list": lambda a, p: a.tolist(),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("kind", ["clf", "reg", "perc"])
def test_awkward_X_trains_and_predicts_like_plain(tmp_path, kind, variant):
    plain_model, y = make(kind)
    plain_model.fit(X, y)
    odd_model, _ = make(kind)
    odd_X = VARIANTS[variant](X, tmp_path)
    odd_model.fit(odd_X, y)
    np.testing.assert_array_equal(odd_model._arena, plain_model._arena)
    np.testing.assert_array_equal(odd_model.predict(odd_X), plain_model.predict(X))
    np.testing.assert_array_equal(plain_model.predict(VARIANTS[variant](X, tmp_path)),
                                  plain_model.predict(X))
    if hasattr(plain_model, "predict_proba"):
        np.testing.assert_array_equal(plain_model.predict_proba(odd_X),
                                      plain_model.predict_proba(X))


@pytest.mark.parametrize("kind", ["clf", "perc"])
def test_string_and_other_labels_train_like_integers(kind):
    model, y = make(kind)
    model.fit(X, y)
    names = np.array(["apple", "banana", "cherry"])
    for labels in (names[y], names[y].astype(object), (y + 10).astype(np.int8),
                   y.astype(np.float64), [str(v) for v in y]):
        other, _ = make(kind)
        other.fit(X, labels)
        np.testing.assert_array_equal(other._arena, model._arena)
        pred = other.predict(X)
        # same decisions, expressed in the new labels
        mapping = dict(zip(y.tolist(), np.asarray(labels).tolist()))
        assert pred.tolist() == [mapping[v] for v in model.predict(X).tolist()]


@pytest.mark.parametrize("dtype, values", [
    (np.int8, [-128, 0, 127]),  # a table over the whole type: y - lo wraps in int8
    (np.int16, [-32768, -32767, -1]),
    (np.uint8, [0, 200, 255]),
    (np.uint64, [2**63 + 1, 2**63 + 2, 2**64 - 1]),  # past int64, a narrow range
    (np.uint64, [5, 2**63, 2**64 - 1]),
    (np.int64, [-2**63, 0, 2**63 - 1]),
    (np.int64, [10**12, 10**12 + 3, 10**12 + 2**19]),
])
def test_integer_labels_at_their_types_limits_train_like_small_ones(dtype, values):
    model, y = make("clf")
    model.fit(X, y)
    labels = np.array(values, dtype=dtype)[y]
    other, _ = make("clf")
    other.fit(X, labels)
    np.testing.assert_array_equal(other.classes_, np.array(values, dtype=dtype))
    np.testing.assert_array_equal(other._arena, model._arena)
    np.testing.assert_array_equal(other.predict(X),
                                  np.array(values, dtype=dtype)[model.predict(X)])
    other.set_params(warm_start=True).fit(X, labels)  # the same classes again
    unknown = np.array([values[0], values[2] - 1], dtype=dtype)  # values[2] - 1: no class
    with pytest.raises(ValueError, match="not in classes_"):
        other.partial_fit(X[:2], unknown)


@pytest.mark.parametrize("kind", ["clf", "reg", "perc"])
def test_a_single_row_predicts_like_inside_a_batch(kind):
    model, y = make(kind)
    model.fit(X, y)
    batch = model.predict(X)
    for i in (0, 17, 39):
        np.testing.assert_array_equal(model.predict(X[i:i + 1]), batch[i:i + 1])
        np.testing.assert_array_equal(model.predict(X[i].reshape(1, -1)), batch[i:i + 1])


def test_fit_on_a_single_row():
    m = MLPRegressor((3,), max_iter=3, tol=None, random_state=0).fit(X[:1], Y_REG[:1])
    assert m.predict(X[:1]).shape == (1,) and np.isfinite(m.predict(X)).all()


def misaligned(a):
    """a's values in a buffer at an odd byte offset (as np.frombuffer or a
    deserialised dask block can give): no value is aligned to its size."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    raw[1:] = np.frombuffer(np.ascontiguousarray(a).tobytes(), np.uint8)
    assert not out.flags.aligned
    return out


@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("sparse", [False, True])
def test_misaligned_arrays_train_and_predict_like_aligned_ones(kind, sparse):
    """X, y and sample weights whose values sit at an odd byte offset are
    copied aligned before the core reads them (unaligned int64 labels and
    doubles are undefined behaviour in C; the sanitizer build checks it)."""
    import scipy.sparse as sp
    plain_model, y = make(kind)
    X64 = X.astype(np.float64)
    sw = np.arange(1, 41.0)
    Xp = sp.csr_matrix(np.where(np.abs(X64) > 0.5, X64, 0)) if sparse else X64
    plain_model.set_params(dtype="float64").fit(Xp, y, sample_weight=sw)
    odd_model, _ = make(kind)
    if sparse:
        Xo = sp.csr_matrix((misaligned(Xp.data), misaligned(Xp.indices.astype(np.int64)),
                            misaligned(Xp.indptr.astype(np.int64))), shape=Xp.shape)
    else:
        Xo = misaligned(X64)
    yo = misaligned(np.asarray(y, dtype=np.int64 if kind == "clf" else np.float64))
    odd_model.set_params(dtype="float64").fit(Xo, yo, sample_weight=misaligned(sw))
    np.testing.assert_array_equal(odd_model._arena, plain_model._arena)
    np.testing.assert_array_equal(odd_model.predict(Xo), plain_model.predict(Xp))


def test_readonly_and_memmapped_targets_and_weights(tmp_path):
    plain = MLPRegressor((4,), max_iter=3, tol=None, random_state=0)
    plain.fit(X, Y_REG, sample_weight=np.arange(1, 41.0))
    odd = MLPRegressor((4,), max_iter=3, tol=None, random_state=0)
    y_mm = memmapped(Y_REG.reshape(-1, 1), tmp_path).ravel()
    odd.fit(readonly(X), y_mm, sample_weight=readonly(np.arange(1, 41.0)))
    np.testing.assert_array_equal(odd._arena, plain._arena)


def test_pandas_inputs():
    pd = pytest.importorskip("pandas")
    model, y = make("clf")
    model.fit(X, y)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    other, _ = make("clf")
    other.fit(df, pd.Series(y))
    np.testing.assert_array_equal(other._arena, model._arena)
    np.testing.assert_array_equal(other.predict(df), model.predict(X))
