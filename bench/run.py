#!/usr/bin/env python
"""Training and prediction throughput of pynn against other CPU MLP trainers.

    python bench/run.py                      # every case, every installed peer, 1 thread
    python bench/run.py --quick              # a smoke run of well under 20 s
    python bench/run.py --threads 2 --cases wide predict --peers pynn torch

Every tool does the same work on the same data: one epoch of plain minibatch SGD
(lr 0.01, no momentum, no L2 penalty) of a ReLU MLP with a softmax +
cross-entropy output, batches in order, or a forward pass over 10k rows.
See bench/README.md for what is measured and how FLOPs are counted.
"""
# Nothing but the standard library may be imported before _pin_and_limit():
# the thread settings must be in place before numpy, torch or jax load.
import argparse
import gc
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The source tree's ./pynn has no compiled core: always use the installed pynn.
sys.path[:] = [p for p in sys.path
               if os.path.normcase(os.path.abspath(p or os.curdir))
               != os.path.normcase(_REPO_ROOT)]

LEARNING_RATE = 0.01
PREDICT_ROWS = 10_000
N_CLASSES = 10
TIME_BUDGET_S = 3.0  # stop repeating a measurement once its runs took this long


# ----------------------------------------------------------------------------
# the cases
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    units: tuple       # layer sizes, input first
    batch: int         # minibatch size; 0 for prediction
    n: int             # samples per epoch (rows to predict)
    n_quick: int

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
        return 6 * macs - 2 * first_in * first_out

    def gemm_shape(self, n):
        """(m, k, n) of the first layer's forward product."""
        rows = n if self.predict else self.batch
        return rows, self.units[0], self.units[1]

    def describe(self, n):
        net = "-".join(map(str, self.units))
        if self.predict:
            return f"predict_proba of {n:,} rows, {net}"
        return f"{net}, batch {self.batch}, one epoch of {n:,} samples"


# Sample counts are whole numbers of batches (no ragged last batch, hence no
# recompilation for the JIT peers) and make one pynn epoch last roughly 0.3-1 s
# on one core of a current x86 CPU.
CASES = [
    Case("mnist-like", (784, 256, 128, 10), 128, 280 * 128, 30 * 128),
    Case("small", (64, 32, 10), 32, 31_250 * 32, 2_000 * 32),
    Case("online", (64, 32, 10), 1, 150_000, 4_000),
    Case("wide", (784, 1024, 1024, 10), 256, 12 * 256, 2 * 256),
    Case("predict", (784, 256, 128, 10), 0, PREDICT_ROWS, PREDICT_ROWS),
]
CASE_NAMES = [c.name for c in CASES]
PEER_NAMES = ["pynn", "numpy", "sklearn", "torch", "torch.compile", "jax"]
QUICK_PEERS = ["pynn", "numpy", "sklearn"]


# ----------------------------------------------------------------------------
# command line, pinning and thread limits (before any numerical import)
# ----------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"small epochs, one timed run, peers {', '.join(QUICK_PEERS)}")
    ap.add_argument("--cases", nargs="+", choices=CASE_NAMES, default=None, metavar="CASE",
                    help=f"subset of {', '.join(CASE_NAMES)}")
    ap.add_argument("--peers", nargs="+", choices=PEER_NAMES, default=None, metavar="PEER",
                    help=f"subset of {', '.join(PEER_NAMES)}")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for every tool; the process is pinned to this many cores")
    ap.add_argument("--simd", default=None, help="force pynn's SIMD path "
                    "(generic, avx2, avx512)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed runs per measurement, best kept (default 3, 1 with --quick)")
    ap.add_argument("--markdown", metavar="FILE", default=None,
                    help="also write the results as Markdown to FILE")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    args.cases = [c for c in CASES if c.name in (args.cases or CASE_NAMES)]
    if args.peers is None:
        args.peers = QUICK_PEERS if args.quick else PEER_NAMES
    else:
        args.peers = [p for p in PEER_NAMES if p in args.peers]
    return args


def _pin_and_limit(threads):
    """Pin this process to `threads` cores and tell every library to use that
    many threads.  Returns the sorted list of cores."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if allowed:
        if threads > len(allowed):
            sys.exit(f"--threads {threads}: this process may only run on {len(allowed)} "
                     f"core(s) {allowed}")
        # one thread: the last allowed core, usually the quietest (core 0 takes
        # most interrupts); several: the first ones
        cores = allowed[-1:] if threads == 1 else allowed[:threads]
        os.sched_setaffinity(0, cores)
    else:
        cores = []
    n = str(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n
    eigen = "false" if threads == 1 else "true"
    os.environ["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={eigen} "
                               f"intra_op_parallelism_threads={threads}")
    # every tool on the CPU: a JAX with a GPU plugin would otherwise use the GPU
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    return cores


ARGS = parse_args() if __name__ == "__main__" else None
CORES = _pin_and_limit(ARGS.threads) if ARGS is not None else []

import numpy as np  # noqa: E402  (after the thread settings, on purpose)


# ----------------------------------------------------------------------------
# shared data, initial weights and the numpy reference trainer
# ----------------------------------------------------------------------------

@dataclass
class Data:
    X: np.ndarray          # (n, n_in), the benchmark dtype
    y: np.ndarray          # (n,) int64 labels in [0, N_CLASSES)
    Y: np.ndarray          # (n, N_CLASSES) one-hot, the benchmark dtype


def make_data(n, n_in, dtype, seed=0):
    """Standard-normal inputs and uniformly random labels, every class present."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in), dtype=np.float64).astype(dtype)
    y = rng.integers(0, N_CLASSES, n)
    y[:min(n, N_CLASSES)] = np.arange(min(n, N_CLASSES))
    Y = np.zeros((n, N_CLASSES), dtype=dtype)
    Y[np.arange(n), y] = 1
    return Data(X, y, Y)


def initial_weights(units, dtype, seed=1):
    """Glorot-uniform weights and biases, [(W (n_in, n_out), b (n_out,)), ...]."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(6.0 / (n_in + n_out))
        params.append((rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype),
                       rng.uniform(-bound, bound, n_out).astype(dtype)))
    return params


def copy_params(params, dtype=None):
    return [(W.astype(dtype or W.dtype, copy=True), b.astype(dtype or b.dtype, copy=True))
            for W, b in params]


def numpy_forward(params, X):
    """Softmax probabilities of the ReLU MLP."""
    a = X
    for W, b in params[:-1]:
        a = a @ W
        a += b
        np.maximum(a, 0, out=a)
    W, b = params[-1]
    z = a @ W
    z += b
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def numpy_sgd_step(params, x, Y, lr, kinks=None):
    """One SGD step in place on the batch (x, one-hot Y): mean cross-entropy loss.
    `kinks`, a list, gets the smallest |pre-activation| of each hidden layer."""
    acts = [x]
    for W, b in params[:-1]:
        a = acts[-1] @ W
        a += b
        if kinks is not None:
            kinks.append(float(np.abs(a).min()))
        np.maximum(a, 0, out=a)
        acts.append(a)
    W, b = params[-1]
    p = acts[-1] @ W
    p += b
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    delta = (p - Y) / x.shape[0]                    # d loss / d logits
    for layer in range(len(params) - 1, -1, -1):
        W, b = params[layer]
        gW = acts[layer].T @ delta
        gb = delta.sum(axis=0)
        if layer > 0:                                # the input needs no gradient
            delta = delta @ W.T
            delta *= acts[layer] > 0
        W -= lr * gW
        b -= lr * gb


def numpy_epoch(params, X, Y, batch, lr, n=None, kinks=None):
    n = X.shape[0] if n is None else n
    for i in range(0, n, batch):
        numpy_sgd_step(params, X[i:i + batch], Y[i:i + batch], lr, kinks)


# ----------------------------------------------------------------------------
# correctness of pynn before timing it
# ----------------------------------------------------------------------------

def pynn_estimator(case, batch, dtype, threads):
    import pynn
    return pynn.MLPClassifier(case.hidden, activation="relu", solver="sgd", momentum=0.0,
                              nesterovs_momentum=False, learning_rate_init=LEARNING_RATE,
                              alpha=0.0, batch_size=batch, max_iter=1, tol=None,
                              shuffle=False, random_state=0, dtype=dtype, n_threads=threads)


def pynn_model_from(case, params, dtype, threads):
    """A pynn model holding `params`, ready to predict or (warm_start) to train on.

    A first fit on one row per class creates it; its weights are then
    overwritten in place (coefs_/intercepts_ are views into the model)."""
    m = pynn_estimator(case, max(case.batch, 1), dtype, threads)
    m.set_params(warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch_size larger than the 10 rows
        m.fit(np.zeros((N_CLASSES, case.units[0]), dtype=dtype), np.arange(N_CLASSES))
    for (W, b), mW, mb in zip(params, m.coefs_, m.intercepts_):
        mW[...] = W
        mb[...] = b
    return m


class CheckFailed(Exception):
    """pynn's result differs from the numpy reference."""


def _max_rel_err(got, want):
    """max over arrays of max|got - want| / max|want|."""
    return max(float(np.max(np.abs(np.asarray(g, np.float64) - w)) / float(np.max(np.abs(w))))
               for g, w in zip(got, want))


def _check_data_and_reference(case, start, margin=1e-6, tries=20):
    """Training data for the check and the float64 reference weights after one
    epoch on it from `start`.

    A hidden pre-activation within float32 rounding (~1e-7 here) of ReLU's kink
    can land on the other side in float32, which switches that unit's gradient
    for that sample and moves the weights by far more than rounding: the data
    is drawn again until every hidden pre-activation of the reference run is at
    least `margin` away from 0 (the best of `tries` draws is kept otherwise)."""
    batch = case.batch
    n = 2 * batch + batch // 2 if batch > 1 else 50    # with a ragged last batch
    best = None
    for seed in range(123, 123 + tries):
        data = make_data(n, case.units[0], np.float64, seed=seed)
        ref, kinks = copy_params(start), []
        numpy_epoch(ref, data.X, data.Y, batch, LEARNING_RATE, kinks=kinks)
        if best is None or min(kinks) > best[0]:
            best = (min(kinks), data, ref)
        if best[0] >= margin:
            break
    return best[1], best[2]


def check_pynn(case, dtype, threads):
    """pynn's result against the float64 numpy reference from the same start:
    the weights after one epoch (training) or predict_proba (prediction).
    Checked in float64 (rtol 1e-9) and, for a float32 run, in float32 (1e-4).
    Returns {dtype name: max rel err}; raises CheckFailed on disagreement."""
    start = initial_weights(case.units, np.float64, seed=7)
    if case.predict:
        data = make_data(300, case.units[0], np.float64, seed=123)
        want = [numpy_forward(start, data.X)]
    else:
        data, ref = _check_data_and_reference(case, start)
        want = [a for pair in ref for a in pair]
    errors = {}
    for dt, rtol in (("float64", 1e-9), ("float32", 1e-4)):
        if dt == "float32" and dtype != "float32":
            continue
        m = pynn_model_from(case, copy_params(start, dt), dt, threads)
        X = data.X.astype(dt)
        if case.predict:
            got = [m.predict_proba(X)]
        else:
            m.fit(X, data.y)
            got = [a for pair in zip(m.coefs_, m.intercepts_) for a in pair]
        err = _max_rel_err(got, want)
        errors[dt] = err
        if not err <= rtol:
            raise CheckFailed(
                f"pynn disagrees with the numpy reference on case {case.name!r} in {dt}: "
                f"max rel err {err:.3g} > {rtol:g} "
                f"({'predict_proba' if case.predict else 'weights after one epoch'})")
    return errors


# ----------------------------------------------------------------------------
# the peers: for each, one function per task returning run(n), which trains one
# epoch over the first n samples (whole batches), or predict(), which returns
# the probabilities of all rows
# ----------------------------------------------------------------------------

@dataclass
class Setup:
    case: Case
    data: Data
    params: list           # initial weights in the benchmark dtype
    dtype: str
    threads: int


# --- pynn --------------------------------------------------------------------

def pynn_train(s):
    """Epochs of fit on a model that already holds the starting weights
    (warm_start), like the NumPy, PyTorch and JAX peers, whose timed work also
    excludes creating and initialising the parameters."""
    X, y = s.data.X, s.data.y
    m = pynn_model_from(s.case, s.params, s.dtype, s.threads)

    def run(n):
        m.fit(X[:n], y[:n])
    return run


def pynn_predict(s):
    m = pynn_model_from(s.case, s.params, s.dtype, s.threads)
    return lambda: m.predict_proba(s.data.X)


# --- numpy by hand -------------------------------------------------------------

def numpy_train(s):
    params = copy_params(s.params)

    def run(n):
        numpy_epoch(params, s.data.X, s.data.Y, s.case.batch, LEARNING_RATE, n)
    return run


def numpy_predict(s):
    return lambda: numpy_forward(s.params, s.data.X)


# --- scikit-learn ----------------------------------------------------------------

def _sklearn_estimator(case, batch):
    from sklearn.neural_network import MLPClassifier
    return MLPClassifier(case.hidden, activation="relu", solver="sgd", momentum=0.0,
                         nesterovs_momentum=False, learning_rate_init=LEARNING_RATE,
                         alpha=0.0, batch_size=batch, max_iter=1, shuffle=False,
                         random_state=0)


def sklearn_train(s):
    X, y = s.data.X, s.data.y

    def run(n):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning after max_iter=1
            _sklearn_estimator(s.case, s.case.batch).fit(X[:n], y[:n])
    return run


def sklearn_predict(s):
    m = _sklearn_estimator(s.case, N_CLASSES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(np.zeros((N_CLASSES, s.case.units[0]), dtype=s.dtype), np.arange(N_CLASSES))
    m.coefs_ = [W.copy() for W, _ in s.params]
    m.intercepts_ = [b.copy() for _, b in s.params]
    return lambda: m.predict_proba(s.data.X)


# --- torch (eager and torch.compile) ------------------------------------------------

def _torch_model(s):
    import torch
    from torch import nn
    mods = []
    for i, (W, b) in enumerate(s.params):
        lin = nn.Linear(*W.shape, dtype=getattr(torch, s.dtype))
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if i < len(s.params) - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def _torch_train(s, compiled):
    import torch
    model = _torch_model(s)
    forward = torch.compile(model) if compiled else model
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    X, y, b = torch.from_numpy(s.data.X), torch.from_numpy(s.data.y), s.case.batch

    def run(n):
        for i in range(0, n, b):
            opt.zero_grad(set_to_none=True)
            loss_fn(forward(X[i:i + b]), y[i:i + b]).backward()
            opt.step()
    return run


def _torch_predict(s, compiled):
    import torch
    model = _torch_model(s)
    forward = torch.compile(model) if compiled else model
    X = torch.from_numpy(s.data.X)

    def predict():
        with torch.inference_mode():
            return torch.softmax(forward(X), dim=1)
    return predict


def torch_train(s):
    return _torch_train(s, compiled=False)


def torch_predict(s):
    return _torch_predict(s, compiled=False)


def torch_compile_train(s):
    return _torch_train(s, compiled=True)


def torch_compile_predict(s):
    return _torch_predict(s, compiled=True)


# --- JAX -----------------------------------------------------------------------------

def _jax_logits(params, x):
    import jax
    a = x
    for W, b in params[:-1]:
        a = jax.nn.relu(a @ W + b)
    W, b = params[-1]
    return a @ W + b


def _jax_loss(params, x, y):
    import jax
    import jax.numpy as jnp
    logp = jax.nn.log_softmax(_jax_logits(params, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _jax_params(s):
    import jax.numpy as jnp
    return [(jnp.asarray(W), jnp.asarray(b)) for W, b in s.params]


def jax_train(s):
    import jax

    def step(params, x, y):
        loss, grads = jax.value_and_grad(_jax_loss)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - LEARNING_RATE * g, params, grads), loss

    step = jax.jit(step, donate_argnums=0)
    b = s.case.batch
    # the data set lives on the device already, split into batches (as torch's
    # tensors share numpy's memory, this is not part of the timed work)
    xs = [jax.device_put(s.data.X[i:i + b]) for i in range(0, s.data.X.shape[0], b)]
    ys = [jax.device_put(s.data.y[i:i + b].astype(np.int32))
          for i in range(0, s.data.X.shape[0], b)]
    state = {"params": _jax_params(s)}

    def run(n):
        params = state["params"]
        for k in range(n // b):
            params, _ = step(params, xs[k], ys[k])
        state["params"] = jax.block_until_ready(params)
    return run


def jax_predict(s):
    import jax
    forward = jax.jit(lambda p, x: jax.nn.softmax(_jax_logits(p, x), axis=1))
    params, X = _jax_params(s), jax.device_put(s.data.X)
    return lambda: forward(params, X).block_until_ready()


PEERS = {
    "pynn": (pynn_train, pynn_predict),
    "numpy": (numpy_train, numpy_predict),
    "sklearn": (sklearn_train, sklearn_predict),
    "torch": (torch_train, torch_predict),
    "torch.compile": (torch_compile_train, torch_compile_predict),
    "jax": (jax_train, jax_predict),
}


# ----------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------

def best_time(fn, repeats, budget=TIME_BUDGET_S):
    """Best wall time of up to `repeats` calls of fn(); stops early once the
    calls took `budget` seconds in all.  Returns (seconds, calls made)."""
    times = []
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            if sum(times) >= budget:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return min(times), len(times)


def time_task(case, task, n, repeats):
    """Warm up (JIT compilation, caches, first-call costs), then time.

    Training warms up on the first tenth of the epoch (at least two batches),
    with the same batch shape as the timed epochs."""
    if case.predict:
        task()
        return best_time(task, repeats)
    warm = min(n, max(2 * case.batch, (n // 10) // case.batch * case.batch))
    task(warm)
    return best_time(lambda: task(n), repeats)


def gemm_peak(m, k, n, dtype, seconds=0.2):
    """GFLOP/s of numpy's (m x k) @ (k x n) with the current thread settings."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    C = np.empty((m, n), dtype=dtype)
    np.matmul(A, B, out=C)
    reps, t = 1, 0.0
    while True:                      # calls per timing: about `seconds` / 3
        t0 = time.perf_counter()
        for _ in range(reps):
            np.matmul(A, B, out=C)
        t = time.perf_counter() - t0
        if t >= seconds / 3:
            break
        reps *= 2 if t == 0 else max(2, int(seconds / 3 / t) + 1)
    best, _ = best_time(lambda: [np.matmul(A, B, out=C) for _ in range(reps)], 3)
    return 2.0 * m * k * n * reps / best / 1e9


# ----------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------

@dataclass
class Row:
    tool: str
    samples_per_s: float = None
    gflops: float = None
    runs: int = 0
    note: str = ""


def import_peers(peers, dtype, threads):
    """Import what each peer needs; returns ({peer: version string},
    {peer: reason it is unavailable})."""
    versions, missing = {}, {}
    for peer in peers:
        try:
            if peer == "pynn":
                versions[peer] = pynn_description()
            elif peer == "numpy":
                versions[peer] = f"numpy {np.__version__}{_blas_description()}"
            elif peer == "sklearn":
                import sklearn
                import sklearn.neural_network  # noqa: F401
                versions[peer] = f"scikit-learn {sklearn.__version__}"
            elif peer in ("torch", "torch.compile"):
                import torch
                torch.set_num_threads(threads)
                versions[peer] = f"torch {torch.__version__}"
            elif peer == "jax":
                import jax
                import jaxlib
                if dtype == "float64":
                    jax.config.update("jax_enable_x64", True)
                jax.devices()
                versions[peer] = f"jax {jax.__version__}, jaxlib {jaxlib.__version__}"
        except Exception as exc:  # a peer that cannot load is skipped, not fatal
            missing[peer] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return versions, missing


def pynn_description(forced=False):
    import pynn
    from pynn import _core
    built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(_core.__file__)))
    return (f"pynn {pynn.__version__} ({os.path.dirname(pynn.__file__)}, core built {built}), "
            f"SIMD path "
            f"{_core.simd_path()}{' (forced)' if forced else ''} of "
            f"{list(_core.simd_supported())}, OpenMP {'yes' if _core.has_openmp() else 'no'}")


def _blas_description():
    try:
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            i = blas[0]
            return (f" ({i.get('internal_api')} {i.get('version')}, {i.get('num_threads')} "
                    f"thread(s), {i.get('architecture')})")
    except Exception:
        pass
    return ""


def run_case(case, args, peers, missing):
    n = case.n_quick if args.quick else case.n
    data = make_data(n, case.units[0], args.dtype)
    s = Setup(case, data, initial_weights(case.units, args.dtype), args.dtype, args.threads)
    flops = case.flops_per_sample()
    m, k, nn = case.gemm_shape(n)
    peak = gemm_peak(m, k, nn, args.dtype)
    result = {"case": case, "n": n, "peak": peak, "gemm": (m, k, nn), "rows": [],
              "check": None}
    name, description = case_title(result, args.dtype)
    print(f"\n== {name}: {description}", flush=True)
    for peer in peers:
        row = Row(peer)
        result["rows"].append(row)
        if peer in missing:
            row.note = f"unavailable ({missing[peer]})"
            continue
        if peer == "pynn":
            errs = check_pynn(case, args.dtype, args.threads)  # raises on failure
            result["check"] = errs
            print("check: pynn matches numpy reference (max rel err "
                  + ", ".join(f"{e:.1e} in {d}" for d, e in errs.items()) + ")", flush=True)
        make = PEERS[peer][1 if case.predict else 0]
        try:
            task = make(s)
            secs, row.runs = time_task(case, task, n, args.repeats)
        except Exception as exc:
            if peer == "pynn":
                raise
            row.note = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            print(f"  {peer}: {row.note}", flush=True)
            continue
        row.samples_per_s = n / secs
        row.gflops = row.samples_per_s * flops / 1e9
        if row.runs < args.repeats:
            row.note = f"best of {row.runs} (epoch over {TIME_BUDGET_S:g} s budget)"
    # other work on these cores shows as a GEMM rate that moved during the case
    after = gemm_peak(m, k, nn, args.dtype)
    if not 0.8 < after / peak < 1.25:
        result["warning"] = (f"WARNING: the GEMM rate moved from {peak:.1f} to {after:.1f} "
                             f"GFLOP/s during this case: the machine was busy, timings "
                             f"are unreliable")
        print(result["warning"], flush=True)
    return result


def table(result, markdown=False):
    rows = result["rows"]
    pynn_row = next((r for r in rows if r.tool == "pynn" and r.samples_per_s), None)
    header = ["tool", "samples/s", "GFLOP/s", "% of GEMM peak", "pynn speedup"]
    body, notes = [], []
    for r in rows:
        if r.samples_per_s is None:
            body.append([r.tool, "-", "-", "-", "-"])
        else:
            speed = (f"{pynn_row.samples_per_s / r.samples_per_s:.2f}x" if pynn_row else "-")
            body.append([r.tool, f"{r.samples_per_s:,.0f}", f"{r.gflops:.1f}",
                         f"{100 * r.gflops / result['peak']:.0f}%", speed])
        if r.note:
            notes.append(f"{r.tool}: {r.note}")
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        lines += [""] + [f"- {n}" for n in notes] if notes else []
        return "\n".join(lines)
    widths = [max(len(x[i]) for x in [header] + body) for i in range(len(header))]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(b) for b in body]
    lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines)


def case_title(result, dtype):
    """(name, one-line description) of a case's result."""
    case, (m, k, n) = result["case"], result["gemm"]
    return case.name, (f"{case.describe(result['n'])}, {dtype}; "
                       f"{case.flops_per_sample():,} FLOP per "
                       f"{'row' if case.predict else 'sample'}; GEMM peak "
                       f"{result['peak']:.1f} GFLOP/s (numpy {dtype} ({m}x{k}) @ ({k}x{n}))")


def main(args):
    t_start = time.perf_counter()
    versions, missing = import_peers(args.peers, args.dtype, args.threads)
    if "pynn" in args.peers and "pynn" in missing:
        sys.exit(f"pynn could not be imported: {missing['pynn']}\n"
                 f"install it first: pip install --no-build-isolation .")
    if args.simd and "pynn" in versions:
        from pynn import _core
        try:
            _core.set_simd_path(args.simd)
        except ValueError as exc:
            sys.exit(f"--simd {args.simd}: {exc}")
        versions["pynn"] = pynn_description(forced=True)
    from pynn._platform import cpu_model

    machine = [f"CPU: {cpu_model()}, {os.cpu_count()} logical cores, load average "
               f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start",
               f"threads: {args.threads}, pinned to core(s) {CORES or 'not pinned'}",
               f"python {platform.python_version()}, {platform.system()} {platform.release()}"]
    machine += list(dict.fromkeys(versions[p] for p in args.peers if p in versions))
    machine += [f"{p}: unavailable ({missing[p]})" for p in args.peers if p in missing]
    machine += [f"epochs: {'quick' if args.quick else 'full'}, best of {args.repeats} "
                f"timed run(s) after a warm-up, lr {LEARNING_RATE}"]
    print("\n".join(machine), flush=True)

    results = []
    for case in args.cases:
        result = run_case(case, args, args.peers, missing)
        results.append(result)
        print(table(result), flush=True)
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s")

    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("# pynn benchmark\n\n" + "".join(f"- {line}\n" for line in machine))
            for r in results:
                name, description = case_title(r, args.dtype)
                f.write(f"\n## {name}\n\n{description}\n\n{table(r, markdown=True)}\n")
                if r.get("warning"):
                    f.write(f"\n**{r['warning']}**\n")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    try:
        main(ARGS)
    except CheckFailed as exc:
        sys.exit(f"ABORT: correctness check failed, nothing more is timed: {exc}")
