"""The epoch's shuffle, against a plain Python statement of it: xoshiro256**
seeded through splitmix64, Lemire's bounded draws and the Fisher-Yates swaps
from the last position down.  The core draws each swap's partner ahead of the
swap (to fetch it from memory in time): the order must be the one the swaps
in turn give, epoch after epoch, whatever the row count (fewer rows than it
draws ahead included)."""
import numpy as np
import pytest

from pynn import _core, _sparse

M64 = (1 << 64) - 1


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class _Xoshiro:
    def __init__(self, seed):
        self.s = []
        for _ in range(4):
            seed, v = _splitmix64(seed)
            self.s.append(v)

    def next(self):
        s = self.s
        result = (_rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def bounded(self, bound):
        m = self.next() * bound
        low = m & M64
        if low < bound:
            threshold = ((1 << 64) - bound) % bound
            while low < threshold:
                m = self.next() * bound
                low = m & M64
        return m >> 64


def _shuffled(order, rng):
    order = list(order)
    for i in range(len(order) - 1, 0, -1):
        j = rng.bounded(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def _trainer(n, seed):
    """A trainer on n rows whose batch is the whole epoch (one step, one
    shuffle), and its order array."""
    net = _core.Net([3, 2], _core.ACTIVATIONS["relu"], _core.ACTIVATIONS["softmax"],
                    _core.LOSSES["categorical_cross_entropy"])
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 3))
    Y = np.eye(2)[rng.integers(0, 2, n)]
    params = 0.1 * rng.standard_normal(net.n_params)
    grads, velocity = np.zeros_like(params), np.zeros_like(params)
    ws = np.zeros(_sparse.workspace_size(net, X, n))
    order = np.arange(n, dtype=np.int64)
    t = _core.Trainer(net, params, grads, velocity, None, _sparse.core_input(X), Y, order, ws,
                      n, True, seed, None)
    t.set_optimizer(_core.SOLVERS["sgd"], 0.01, 0.0, False, 0.9, 0.999, 1e-8, 0.0)
    return t, order


@pytest.mark.parametrize("n", [2, 3, 31, 32, 33, 34, 1000])
@pytest.mark.parametrize("seed", [0, 7, 2**63 + 5])
def test_each_epoch_is_the_fisher_yates_shuffle_of_the_last(n, seed):
    t, order = _trainer(n, seed)
    rng = _Xoshiro(seed)
    want = list(range(n))
    for epoch in range(3):
        steps, _, diverged = t.run(1, 1)
        assert steps == 1 and not diverged
        want = _shuffled(want, rng)
        assert order.tolist() == want, f"epoch {epoch}"
    assert sorted(want) == list(range(n))


def test_a_long_shuffle_moves_every_part_of_the_array():
    """Many more rows than the draws ahead: still the swaps' order, and not the
    identity anywhere (a draw used at the wrong position would show here)."""
    n = 20_000
    t, order = _trainer(n, 11)
    t.run(1, 1)
    want = _shuffled(range(n), _Xoshiro(11))
    assert order.tolist() == want
    assert (order != np.arange(n)).mean() > 0.99
