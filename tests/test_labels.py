"""Classification targets as class labels: the core builds each batch's one-hot
rows itself (no n_rows x n_classes matrix).  The step loop must give exactly
the bits it gives on the one-hot matrix."""
import numpy as np
import pytest
import scipy.sparse as sp

from pynn import _core, _sparse
from pynn._validation import ClassTargets


def _run(units, output, loss, X, Y, dtype, shuffle, n_threads, batch, steps=25, sw=None,
         order="arange"):
    rng = np.random.default_rng(1)
    net = _core.Net(units, _core.ACTIVATIONS["relu"], _core.ACTIVATIONS[output],
                    _core.LOSSES[loss])
    params = (0.3 * rng.standard_normal(net.n_params)).astype(dtype)
    grads, velocity = np.zeros_like(params), np.zeros_like(params)
    ws = np.zeros(_sparse.workspace_size(net, X, batch), dtype)
    order = np.arange(X.shape[0], dtype=np.int64) if isinstance(order, str) else order
    t = _core.Trainer(net, params, grads, velocity, None, _sparse.core_input(X), Y,
                      order, ws, batch, shuffle, 7, sw)
    t.set_optimizer(_core.SOLVERS["sgd"], 0.05, 0.9, True, 0.9, 0.999, 1e-8, 1e-3)
    losses = []
    done = 0
    while done < steps:
        n, loss, diverged = t.run(steps - done, n_threads)
        assert not diverged
        done += n
        losses.append(loss)
    return params, losses


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("n_classes", [2, 5])
@pytest.mark.parametrize("sparse", [False, True])
def test_labels_give_the_bits_of_one_hot_rows(simd, dtype, shuffle, n_classes, sparse):
    rng = np.random.default_rng(0)
    n = 157
    X = rng.standard_normal((n, 12)).astype(dtype)
    if sparse:
        X = sp.csr_matrix(np.where(rng.random((n, 12)) < 0.3, X, 0).astype(dtype))
    labels = rng.integers(0, n_classes, n).astype(np.int64)
    m = 1 if n_classes == 2 else n_classes
    output, loss = (("logistic", "binary_cross_entropy") if m == 1
                    else ("softmax", "categorical_cross_entropy"))
    Y = np.asarray(ClassTargets(labels, m, dtype))
    sw = rng.random(n).astype(dtype)
    for threads in (1, 2):
        dense = _run([12, 9, m], output, loss, X, Y, dtype, shuffle, threads, 20, sw=sw)
        lab = _run([12, 9, m], output, loss, X, labels, dtype, shuffle, threads, 20, sw=sw)
        assert np.array_equal(dense[0], lab[0])
        assert dense[1] == lab[1]


@pytest.mark.parametrize("shuffle", [False, True])
def test_trainer_without_an_order_starts_from_rows_in_order(shuffle):
    """order=None: the trainer reads the rows in order (no order array at
    all), or when it shuffles, makes 0..n-1 itself; the bits of passing it."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((203, 7)).astype(np.float64)
    labels = rng.integers(0, 4, 203).astype(np.int64)
    runs = [_run([7, 6, 4], "softmax", "categorical_cross_entropy", X, labels, np.float64,
                 shuffle, 1, 16, steps=40, order=order) for order in ("arange", None)]
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    with pytest.raises(TypeError, match="order must be None or"):
        _run([7, 6, 4], "softmax", "categorical_cross_entropy", X, labels, np.float64,
             shuffle, 1, 16, order=np.arange(203, dtype=np.int32))


def test_class_targets_stand_for_the_one_hot_matrix():
    t = ClassTargets(np.array([2, 0, 1, 2]), 3, np.float32)
    assert t.shape == (4, 3) and len(t) == 4
    want = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    got = np.asarray(t)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert np.array_equal(np.asarray(t[[3, 1]]), want[[3, 1]])
    assert np.array_equal(np.ascontiguousarray(t[1:3], dtype=np.float64), want[1:3])
    one = ClassTargets(np.array([1, 0, 1]), 1, np.float64)
    assert np.array_equal(np.asarray(one), [[1.0], [0.0], [1.0]])


@pytest.mark.parametrize("labels,err,match", [
    (np.array([0, 1, 3, 1], np.int64), ValueError, r"labels must lie in \[0, 3\)"),
    (np.array([0, -1, 2, 1], np.int64), ValueError, r"labels must lie in \[0, 3\)"),
    (np.array([0, 1, 2, 1], np.int32), TypeError, "C-contiguous, aligned int64"),
    # int64 labels at an odd byte offset (a deserialised buffer): misaligned loads
    (np.frombuffer(np.zeros(33, np.uint8), np.int64, count=4, offset=1), TypeError,
     "C-contiguous, aligned int64"),
    (np.array([0, 1, 2], np.int64), ValueError, "labels"),
])
def test_trainer_checks_labels(labels, err, match):
    net = _core.Net([2, 3], _core.ACTIVATIONS["identity"], _core.ACTIVATIONS["softmax"],
                    _core.LOSSES["categorical_cross_entropy"])
    p = np.zeros(net.n_params, np.float32)
    X = np.zeros((4, 2), np.float32)
    ws = np.zeros(net.workspace_size(2), np.float32)
    with pytest.raises(err, match=match):
        _core.Trainer(net, p, p.copy(), p.copy(), None, X, labels,
                      np.arange(4, dtype=np.int64), ws, 2, False, 0)


@pytest.mark.parametrize("shuffle", [False, True])
def test_labels_on_a_team(simd, shuffle):
    """A layer wide enough for a team: each thread builds its share of the
    batch's rows; the bits are one thread's and those of the one-hot matrix."""
    rng = np.random.default_rng(2)
    n = 1040
    X = rng.standard_normal((n, 40)).astype(np.float32)
    labels = rng.integers(0, 5, n).astype(np.int64)
    Y = np.asarray(ClassTargets(labels, 5, np.float32))
    runs = [_run([40, 1024, 5], "softmax", "categorical_cross_entropy", X, y, np.float32,
                 shuffle, threads, 520, steps=4)
            for y, threads in ((Y, 1), (labels, 1), (labels, 2))]
    for params, losses in runs[1:]:
        assert np.array_equal(params, runs[0][0]) and losses == runs[0][1]
