"""The tools pynn is timed against, one module per tool, registered in PEERS.

Adding a peer: write bench/peers/<tool>_peer.py with a subclass of Peer (see
numpy_peer.py for the shortest one) and add its line to PEERS.  The order of
PEERS is the order of the table rows.

Standard library only here: run.py reads the names before the thread settings
are in place; a peer's module is imported by get(), after them.
"""
import importlib
from dataclasses import dataclass

# command-line and table name: "module in this folder.class in it"
PEERS = {
    "pynn": "pynn_peer.Pynn",
    "pynn.f32": "pynn_peer.PynnF32",
    "numpy": "numpy_peer.Numpy",
    "sklearn": "sklearn_peer.Sklearn",
    "torch": "torch_peer.Torch",
    "torch.compile": "torch_peer.TorchCompile",
    "torch.autocast": "torch_peer.TorchAutocast",
    "torch.bf16": "torch_peer.TorchBf16",
    "jax": "jax_peer.Jax",
}
# The peers of a float32 or float64 run, and of a bfloat16 run.  numpy,
# scikit-learn and JAX have no bfloat16 training on a CPU worth timing (numpy
# has no bfloat16 matmul at all), so the bfloat16 run has pynn in that mode,
# pynn in float32 (the mode's speedup), and PyTorch's two bfloat16 ways.
FLOAT_PEERS = ["pynn", "numpy", "sklearn", "torch", "torch.compile", "jax"]
BF16_PEERS = ["pynn", "pynn.f32", "torch.autocast", "torch.bf16"]
QUICK_PEERS = ["pynn", "numpy", "sklearn"]  # the default with --quick (float runs)


def peers_for(dtype):
    """The peers that can run with --dtype `dtype`."""
    return BF16_PEERS if dtype == "bfloat16" else FLOAT_PEERS


@dataclass
class Setup:
    """What a peer's train() or predict() gets."""
    case: object           # cases.Case
    data: object           # reference.Data: X, y and one-hot Y of the whole epoch
    params: list           # initial weights [(W (n_in, n_out), b (n_out,)), ...], dtype
    # "float32", "float64" or "bfloat16" (params and data are then float32: only
    # the products' operands are bfloat16)
    dtype: str
    threads: int


class Peer:
    """One tool.  train() and predict() do their setup untimed and return the
    function that is timed."""

    def __init__(self, name):
        self.name = name

    def load(self, dtype, threads):
        """Import what the tool needs and apply the thread count (and dtype
        settings); return a one-line version description.  Raising an exception
        makes the peer 'unavailable'."""
        raise NotImplementedError

    def train(self, s):
        """Return run(n): one epoch of s.case.solver (plain SGD or Adam) over the
        first n samples of s.data (whole batches of s.case.batch), starting where
        the last run stopped.  s.data.X is a scipy CSR matrix when s.case.sparse;
        a peer without sparse input raises NotImplementedError."""
        raise NotImplementedError

    def predict(self, s):
        """Return predict(): the softmax probabilities of all rows of s.data.X."""
        raise NotImplementedError

    def computes_in(self, dtype):
        """The precision the peer computes in when the run's dtype is `dtype`
        (pynn.f32: float32 in a bfloat16 run)."""
        return dtype

    # Optional: check_result(case, params, X, y, dtype, threads) returning the
    # weights and biases [W0, b0, W1, b1, ...] after one epoch from `params`
    # (training cases) or [predict_proba(X)] (prediction).  A peer that has it is
    # checked against the numpy reference before it is timed (reference.check).
    check_result = None
    # {precision: tolerance} where the peer's differs from reference.RTOL, and
    # whether exceeding it aborts the run (False: the row gets a note instead)
    check_rtol = None
    check_enforced = True


def first_rows(X, n, cache):
    """X[:n], made once per n: a slice of a CSR matrix is a copy, which the
    timed work should not include (a dense slice is a view)."""
    if n not in cache:
        cache[n] = X[:n]
    return cache[n]


def get(name):
    """The peer registered as `name` (imports its module)."""
    module, cls = PEERS[name].rsplit(".", 1)
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(name)
