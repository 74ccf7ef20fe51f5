"""The benchmark cases: the networks, batch sizes and epoch sizes that are timed.

A new case is one more entry in CASES (a training case has batch >= 1, a
prediction case batch 0).  Standard library only: run.py reads this before the
thread settings are in place.
"""
from dataclasses import dataclass

LEARNING_RATE = 0.01
PREDICT_ROWS = 10_000
N_CLASSES = 10


@dataclass(frozen=True)
class Case:
    name: str
    units: tuple       # layer sizes, input first
    batch: int         # minibatch size; 0 for prediction
    n: int             # samples per epoch (rows to predict)
    n_quick: int       # the same with --quick
    nnz: int = 0       # sparse input (CSR): non-zeros per row; 0: dense input
    solver: str = "sgd"  # "sgd" (plain, no momentum) or "adam"

    @property
    def sparse(self):
        return self.nnz > 0

    @property
    def n_classes(self):
        return self.units[-1]

    @property
    def predict(self):
        return self.batch == 0

    @property
    def hidden(self):
        return self.units[1:-1]

    @property
    def layers(self):
        return list(zip(self.units[:-1], self.units[1:]))

    def flops_per_sample(self):
        """Training: forward 2·n_in·n_out, weight gradient 2·n_in·n_out and input
        gradient 2·n_in·n_out per layer, except the first layer's input gradient,
        which nobody computes.  Prediction: the forward pass only."""
        macs = sum(i * o for i, o in self.layers)
        if self.predict:
            return 2 * macs
        first_in, first_out = self.layers[0]
        if self.sparse:
            # the first layer's two products touch only the non-zeros
            return 6 * (macs - first_in * first_out) + 4 * self.nnz * first_out
        return 6 * macs - 2 * first_in * first_out

    def gemm_shape(self, n):
        """(m, k, n) of the first layer's forward product."""
        rows = n if self.predict else self.batch
        return rows, self.units[0], self.units[1]

    def describe(self, n):
        net = "-".join(map(str, self.units))
        if self.predict:
            return f"predict_proba of {n:,} rows, {net}"
        extra = f", CSR input with {self.nnz} non-zeros per row" if self.sparse else ""
        extra += f", {self.solver}" if self.solver != "sgd" else ""
        return f"{net}, batch {self.batch}, one epoch of {n:,} samples{extra}"


# Sample counts are whole numbers of batches (no ragged last batch, hence no
# recompilation for the JIT peers) and make one pynn epoch last roughly 0.3-1 s
# on one core of a current x86 CPU.  The last element (n_quick) is the --quick size.
CASES = [
    Case("mnist-like", (784, 256, 128, 10), 128, 280 * 128, 30 * 128),
    Case("small", (64, 32, 10), 32, 31_250 * 32, 2_000 * 32),
    Case("online", (64, 32, 10), 1, 150_000, 4_000),
    Case("wide", (784, 1024, 1024, 10), 256, 12 * 256, 2 * 256),
    Case("predict", (784, 256, 128, 10), 0, PREDICT_ROWS, PREDICT_ROWS),
    # sparse input (the case): CSR X, Adam; 20 classes
    Case("sparse", (50_000, 128, 20), 200, 100 * 200, 10 * 200, nnz=100, solver="adam"),
]
CASE_NAMES = [c.name for c in CASES]
