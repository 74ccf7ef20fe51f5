"""A training run: epochs of minibatch steps run by the C core in chunks, with
Python between chunks for progress, convergence, the learning-rate schedule,
early stopping, divergence recovery and Ctrl-C.

The estimator hands over an explicit :class:`TrainingConfig` (what scikit-learn's
parameters mean for this fit); the run owns the optimizer state
(:class:`OptimizerState`), the buffers the core writes into
(:class:`TrainingBuffers`) and the weight snapshots.  The fitted attributes of
the training curve (``n_iter_``, ``t_``, ``loss_``, ``loss_curve_``, ``best_loss_``,
``validation_scores_``, ``best_validation_score_``) are written on the estimator
passed as ``curves``."""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _core, _sparse
from ._progress import Progress
from ._typing import Any, Callable, Optional, Tuple
from ._validation import all_finite
from .exceptions import ConvergenceWarning, DivergenceError, OutputOverflow, sklearn_flavour

# A chunk of training steps in C lasts about this long, so Ctrl-C (handled by
# Python between chunks) takes effect well within half a second.
_CHUNK_SECONDS = 0.05
# Plain SGD's velocity (-lr g: what momentum 0 leaves) is written at each
# epoch's last step, where a fit stops, not at every chunk's last: a wide
# network's chunk is a step or two, and the velocity's extra stream over W
# cost each such step ~2% (a stopped fit's velocity is its last epoch's)
_VELOCITY_AT_EPOCH_END = True
# Snapshots of the weights for recovery from divergence are taken this often,
# and no more often than every _BACKUP_COST_RATIO times what the last one took
# (a copy of the weights and a check: a network of tens of MB would otherwise
# spend a share of a percent of its fit on them).
_BACKUP_SECONDS = 0.5
_BACKUP_COST_RATIO = 500
# With n_threads=None, the thread counts tried are measured again this often.
_REPROBE_SECONDS = 2.0
# With n_threads given, one thread is tried too where a step takes less than
# this (ChunkPlanner): the team's barriers are then a share of the step worth
# measuring against; a longer step is all work (a 784-256-128-10 step of 128
# rows takes ~0.7 ms on two cores of a Zen 4, and a 1-thread probe would
# cost a fit of 0.2 s about 3%).
_SOLO_PROBE_STEP_SECONDS = 50e-6
# Training buffers up to this size stay with the model between fit calls; larger
# ones are released when a call ends (a big model should not hold 3x its size).
_SCRATCH_KEEP_BYTES = 256 << 20
# L-BFGS-B's memory: scipy's default number of correction pairs (maxcor).
_LBFGS_HISTORY = 10
# The final finiteness check runs the loss and gradient on this many training rows.
_FINAL_CHECK_ROWS = 32
# The adaptive schedule divides the learning rate by this when progress stalls,
# and stops once it is at most _ADAPTIVE_MIN_LR (scikit-learn's rule).
_ADAPTIVE_DIVISOR = 5.0
_ADAPTIVE_MIN_LR = 1e-6


def bytes_per_param(solver, early_stopping, dtype):
    """Bytes a fit holds per parameter of the network: every arena-sized
    buffer it allocates (what the memory guard counts)."""
    itemsize = np.dtype(dtype).itemsize
    if solver == "lbfgs":
        # the arena and its gradient; L-BFGS-B's correction pairs and
        # workspace (about 4m + 5 vectors of doubles for m pairs, measured) and
        # the float64 iterates, gradients and copies scipy and the run keep
        return 2 * itemsize + 8 * (4 * _LBFGS_HISTORY + 5 + 8)
    moments = 2 if solver == "adam" else 1  # SGD keeps a velocity
    # arena, gradient, moments, two divergence snapshots, early stopping's best
    return itemsize * (2 + moments + 2 + (1 if early_stopping else 0))


@dataclass(frozen=True)
class TrainingConfig:
    """What the estimator's parameters mean for one call of fit or partial_fit."""

    solver: str                      # 'sgd', 'adam' (the core's names) or 'lbfgs'

    learning_rate_init: float
    batch_size: int                  # rows per step, at most the rows of the fit
    max_iter: int                    # epochs in this call
    shuffle: bool
    tol: Optional[float]             # None: no convergence test, max_iter epochs run
    n_iter_no_change: float          # an int, or math.inf
    schedule: str = "constant"       # 'constant', 'invscaling' or 'adaptive' (sgd)
    power_t: float = 0.5
    momentum: float = 0.0
    nesterov: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    alpha: float = 0.0               # L2 penalty
    n_threads: int = 0               # 0: OpenMP's default, chosen by measurement
    verbose: int = 0
    incremental: bool = False        # partial_fit: one epoch, continuing the optimizer
    max_fun: int = 15000             # lbfgs: most loss-and-gradient evaluations


    def check_schedule(self, t_start, n_rows, dtype):
        """Refuse, before training, an invscaling schedule whose learning rate
        would fall below the smallest positive number of dtype within this
        call's epochs (a huge power_t)."""
        if self.solver != "sgd" or self.schedule != "invscaling":
            return
        t_end = t_start + n_rows * self.max_iter
        if invscaling_rate(self.learning_rate_init, t_end, self.power_t) < np.finfo(dtype).tiny:
            raise ValueError(f"power_t={self.power_t} makes learning_rate='invscaling''s rate "
                             f"learning_rate_init / (t + 1) ** power_t fall below the smallest "
                             f"positive {np.dtype(dtype).name} within max_iter={self.max_iter} "
                             f"epochs of {n_rows} samples; use a smaller power_t")


def invscaling_rate(learning_rate_init, t, power_t):
    """learning_rate_init / (t + 1) ** power_t (scikit-learn's expression, to
    the bit); where the power overflows, in logarithms, underflowing to 0."""
    try:
        return learning_rate_init / (t + 1) ** power_t
    except OverflowError:
        return learning_rate_init * math.exp(-power_t * math.log1p(t))


@dataclass
class OptimizerState:
    """What the optimizer carries from step to step, and from one partial_fit
    call to the next (it is pickled with the model): the velocity (SGD) or the
    first moments (Adam) in ``a``, Adam's second moments in ``b`` (None for
    SGD), the step count ``t`` and the current learning rate."""

    solver: str
    a: np.ndarray
    b: Optional[np.ndarray]
    t: int
    lr: float

    @property
    def learning_rate(self):
        """The current step size (scikit-learn's optimizers call it so)."""
        return self.lr

    def arrays(self):
        return [x for x in (self.a, self.b) if x is not None]

    def copy(self, arrays=True):
        """A copy (arrays=False: one that shares the arrays, its scalars its own)."""
        if not arrays:
            return OptimizerState(self.solver, self.a, self.b, self.t, self.lr)
        return OptimizerState(self.solver, self.a.copy(),
                              None if self.b is None else self.b.copy(), self.t, self.lr)


@dataclass
class TrainingBuffers:
    """Arrays the core writes into during a fit, kept with the model between
    calls while small (partial_fit loops and warm starts do not pay for fresh
    pages every time); never pickled, never shared with a copy."""

    grads: np.ndarray
    ws: np.ndarray
    snapshots: Tuple[np.ndarray, np.ndarray]
    # the thread counts' measured speeds (ChunkPlanner), for the next fit call
    # of the same threads and batch size: a partial_fit loop or repeated warm
    # starts measure again every _REPROBE_SECONDS, not at every call
    planner: Optional["ChunkPlanner"] = None

    @classmethod
    def reuse_or_new(cls, old, arena, ws_size):
        if (isinstance(old, cls) and old.grads.shape == arena.shape
                and old.grads.dtype == arena.dtype and old.ws.size == ws_size):
            return old
        return cls(np.empty_like(arena), np.empty(ws_size, arena.dtype),
                   (np.empty_like(arena), np.empty_like(arena)))

    @property
    def nbytes(self):
        return sum(a.nbytes for a in (self.grads, self.ws, *self.snapshots))


def _zeroed(arr, like, fill=True):
    """arr filled with zeros (unless not fill) when it matches `like`, else a
    new zero array."""
    if isinstance(arr, np.ndarray) and arr.shape == like.shape and arr.dtype == like.dtype:
        if fill:
            arr.fill(0)
        return arr
    return np.zeros_like(like)


def plain_sgd(solver, momentum):
    """Plain gradient descent: the core keeps no velocity from step to step."""
    return solver == "sgd" and momentum == 0


def fresh_optimizer(config, arena, old=None):
    """A new optimizer state for `config`; arrays of `old` (this model's own)
    are zeroed and reused.  Plain gradient descent's velocity (momentum 0) is
    reused as it is: the core never reads it, only writes -lr g at each
    epoch's last step (a stopped fit's velocity is its last epoch's, or the
    previous fit's before one ended).  Zeroing it cost a wide network's
    one-epoch warm start ~0.4% of its fit (784-1024-1024-10, float64: 15 MB)."""
    old_a = old.a if old is not None else None
    old_b = old.b if old is not None else None
    plain = plain_sgd(config.solver, config.momentum)
    return OptimizerState(config.solver, _zeroed(old_a, arena, fill=not plain),
                          _zeroed(old_b, arena) if config.solver == "adam" else None,
                          0, float(config.learning_rate_init))


class ChunkPlanner:
    """Plans the chunks of training steps run in C between returns to Python.

    Each chunk lasts about ``_CHUNK_SECONDS``.  With ``n_threads=None`` the thread
    count is chosen by measurement: the core's results are bitwise the same for
    any count, so it may switch at will.  On a machine whose cores are busy with
    other work, OpenMP teams can run many times slower than one thread; short
    probes every ``_REPROBE_SECONDS`` keep the faster choice.  With n_threads
    given (more than one), one thread is measured too once a step proves shorter
    than ``_SOLO_PROBE_STEP_SECONDS``: such a step syncs its team several times
    in a few microseconds, the one place where one thread can win on a machine
    that is not otherwise busy (n_threads is a most, as everywhere in pynn).
    A thread count's speed is the better of its last two measurements, and the
    most threads stay the choice unless fewer run ``_TEAM_EDGE`` times as fast
    after the team was measured twice: one slow chunk of a team (a thread
    descheduled for a while) does not send a fit to one thread for good, two in
    a row do."""

    # a probe runs a quarter of a chunk
    _PROBE_SHARE = 4
    # a chunk shorter than this is too short to time well
    _SHORT_SECONDS = 0.002
    # most steps a chunk may ask for
    _MAX_STEPS = 1 << 30
    # fewer threads are chosen only when this much faster than the most
    _TEAM_EDGE = 1.15

    def __init__(self, n_threads, key=None):
        self.key = key   # what the speeds were measured for
        self.solo_probe = False
        if n_threads:
            self.options = [_core.threads(n_threads)]
            self.solo_probe = self.options[0] > 1
        else:
            most = _core.max_threads()
            self.options = [most, 1] if most > 1 else [1]
        self.rate = {}   # steps per second, per thread count
        self.when = {}   # when that rate was measured
        self.seen = {}   # measurements long enough to time, per thread count
        self.last = {}   # the latest of those

    def next(self):
        """(threads, steps) for the next chunk."""
        now = time.perf_counter()
        known = [o for o in self.options if o in self.rate]
        for o in self.options:
            if o not in self.rate or (len(self.options) > 1
                                      and now - self.when[o] > _REPROBE_SECONDS):
                # a probe at this option's last speed (or the best known)
                rate = self.rate.get(o) or max((self.rate[k] for k in known), default=0.0)
                return o, max(1, int(rate * _CHUNK_SECONDS / self._PROBE_SHARE))
        most = max(self.options)
        best = max(self.options,
                   key=lambda o: self.rate[o] * (self._TEAM_EDGE if o == most else 1.0))
        if best != most and self.seen.get(most, 0) < 2:
            # the team measured slow once: once more before it is dropped
            return most, max(1, int(self.rate[most] * _CHUNK_SECONDS / self._PROBE_SHARE))
        return best, max(1, min(int(self.rate[best] * _CHUNK_SECONDS), self._MAX_STEPS))

    def record(self, threads, steps, elapsed):
        if not steps or elapsed <= 0:
            return
        short = elapsed < self._SHORT_SECONDS
        if short and threads in self.rate:
            return
        rate = steps / elapsed
        if short:
            self.rate[threads] = rate
        else:
            seen = self.seen.get(threads, 0)
            last = self.last.get(threads)
            self.rate[threads] = rate if last is None else max(rate, last)
            self.last[threads] = rate
            self.seen[threads] = seen + 1
        # a short first measurement counts as stale: the next probe measures again
        self.when[threads] = -1e9 if short else time.perf_counter()
        if self.solo_probe and not short and elapsed < steps * _SOLO_PROBE_STEP_SECONDS:
            self.solo_probe = False
            self.options.append(1)


def divergence_message(learning_rate_init):
    # the first sentence is scikit-learn's, word for word
    return (f"Solver produced non-finite parameter weights. The input data may contain "
            f"large values and need to be preprocessed. Training diverged: the loss or "
            f"the weights became NaN or infinite (learning_rate_init={learning_rate_init}). "
            f"Lower learning_rate_init, scale the input features (e.g. to zero mean and "
            f"unit variance), or increase alpha.")


@dataclass
class _Run:
    """What every run trains: the config, the network, the arena (updated in
    place) and the data (X dense or CSR, Y encoded, row weights or None)."""

    config: TrainingConfig
    net: _core.Net
    arena: np.ndarray
    X: Any
    Y: Any  # (n, n_outputs) targets: an array, or _validation.ClassTargets
    sw: Optional[np.ndarray]


@dataclass
class TrainingRun(_Run):
    """One call of fit or partial_fit: epochs over (X, Y) from the weights in
    ``arena`` (updated in place).

    ``optimizer`` is the state to continue (partial_fit) or None;
    ``validation`` scores the current weights on held-out data (early
    stopping) or is None; ``seed`` seeds the core's shuffling."""

    seed: int
    optimizer: Optional[OptimizerState] = None
    buffers: Optional[TrainingBuffers] = None
    validation: Optional[Callable[[], float]] = None
    # the core checks X for NaN and infinity as it reads each batch (the
    # estimator undoes the run if it finds one; _base._check_late), and the
    # random state before the run's seed was drawn, to put back then
    check_x: bool = False
    rng_before: Optional[Tuple[Any, Any]] = None
    converged: bool = field(default=False, init=False)
    # early stopping only: the loss or the validation score became NaN or
    # infinite; the fit ends with the weights that scored best, as scikit-learn's
    diverged: bool = field(default=False, init=False)
    # Two snapshots of the weights, taken every _backup_every seconds
    # (_BACKUP_SECONDS or more) at a chunk's start while they are finite: on
    # divergence the model goes back to the newest one a finite-loss step has
    # started from, instead of keeping NaN or infinite weights.  _spare: the
    # second buffer until the first snapshot after the call's start needs it.
    _good: Tuple[np.ndarray, np.ndarray] = field(default=None, init=False)  # type: ignore
    _spare: Optional[np.ndarray] = field(default=None, init=False)
    _backup_every: float = field(default=_BACKUP_SECONDS, init=False)
    _steps_since_backup: int = field(default=0, init=False)
    _last_backup: float = field(default=0.0, init=False)

    def run(self, curves):
        """Train; write the curve attributes on `curves`.  Raises
        DivergenceError (weights put back to the last finite ones) when the
        loss or the weights become NaN or infinite."""
        cfg, arena = self.config, self.arena
        trainer = self._start()
        key = (cfg.n_threads, cfg.batch_size, _sparse.is_sparse(self.X))
        planner = self.buffers.planner
        if planner is None or planner.key != key:
            planner = self.buffers.planner = ChunkPlanner(cfg.n_threads, key)
        # n_iter_ counts the epochs of this call, as in scikit-learn (loss_curve_
        # keeps every epoch)
        curves.n_iter_ = 0
        progress = Progress(cfg.verbose, cfg.max_iter, self.X.shape[0])
        best = arena.copy() if self.validation is not None else None
        try:
            for _ in range(cfg.max_iter):
                loss = self._epoch(trainer, planner, progress)
                self._start_kept = None  # (every row of X has been read)
                if self._end_epoch(curves, loss, best, progress):
                    break
                if self.diverged:
                    self.optimizer = None  # its moments belong to lost weights
                    warnings.warn(f"Training diverged after {curves.n_iter_} epoch(s): the "
                                  f"loss or the validation score became NaN or infinite "
                                  f"(learning_rate_init={cfg.learning_rate_init}); early "
                                  f"stopping keeps the weights that scored best on the "
                                  f"validation set", sklearn_flavour(ConvergenceWarning),
                                  stacklevel=4)
                    break
        finally:
            if self.optimizer is not None:  # None after a divergence
                self.optimizer.t = trainer.t
            progress.close()
        if best is not None and curves.validation_scores_:
            # early stopping: the weights that scored best on the validation set
            _core.copy_into(arena, best, cfg.n_threads)
        if not self._finite_on_sample():
            # The last update can blow the weights up without making them NaN or
            # infinite (the loss is checked before each update, and the weights
            # at epoch ends): the model must still give a finite loss and
            # gradient on its training rows, or the fit failed.
            self._diverged(self._good[0])
        if (not self.converged and not self.diverged and cfg.max_iter > 0
                and not cfg.incremental and cfg.tol is not None):
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({cfg.max_iter}) reached "
                          f"and the optimization hasn't converged yet.",
                          sklearn_flavour(ConvergenceWarning), stacklevel=4)

    def _start(self):
        """The optimizer state, buffers and snapshots for this run, and the
        core's step loop over them."""
        cfg, arena, n = self.config, self.arena, self.X.shape[0]
        opt = self.optimizer
        if not cfg.incremental or opt is None or opt.solver != cfg.solver:
            # a fresh optimizer (also when partial_fit switches solver)
            opt = self.optimizer = fresh_optimizer(cfg, arena, opt)
        buf = self.buffers = TrainingBuffers.reuse_or_new(
            self.buffers, arena, _sparse.workspace_size(self.net, self.X, cfg.batch_size))
        trainer = _core.Trainer(self.net, arena, buf.grads, opt.a, opt.b,
                                _sparse.core_input(self.X),
                                # class labels: the core builds their one-hot rows
                                getattr(self.Y, "labels", self.Y),
                                None, buf.ws, cfg.batch_size,  # (the core's order: 0..n-1)
                                # shuffling a full batch would only reorder a sum
                                cfg.shuffle and cfg.batch_size < n, self.seed, self.sw)
        # the step count lives in the optimizer state; the core advances it
        trainer.t = opt.t
        trainer.check_x = self.check_x
        trainer.velocity_at_epoch_end = _VELOCITY_AT_EPOCH_END
        # both snapshots start as the weights at the call's start: one copy,
        # the second buffer kept spare until the first backup needs it
        # (the run's copies of the weights, on its threads: one core copies a
        # wide network's 7 MB in ~0.5 ms, a share of a one-epoch warm start)
        t0 = time.perf_counter()
        _core.copy_into(buf.snapshots[0], arena, cfg.n_threads)
        self._good, self._spare = (buf.snapshots[0], buf.snapshots[0]), buf.snapshots[1]
        # A run that checks X as it trains keeps this first snapshot, the
        # weights at the call's start, until its first epoch has read every
        # row (backups meanwhile rotate through the other buffer): a refused X
        # puts the model back to it (start_weights), with no copy of its own.
        self._start_kept = buf.snapshots[0] if self.check_x else None
        self._steps_since_backup, self._last_backup = 0, time.perf_counter()
        self._backup_every = max(_BACKUP_SECONDS,
                                 _BACKUP_COST_RATIO * (self._last_backup - t0))
        return trainer

    def _epoch(self, trainer, planner, progress):
        """One epoch in chunks of steps; its mean loss."""
        cfg, opt, arena = self.config, self.optimizer, self.arena
        trainer.set_optimizer(_core.SOLVERS[cfg.solver], opt.lr, cfg.momentum, cfg.nesterov,
                              cfg.beta_1, cfg.beta_2, cfg.epsilon, cfg.alpha)
        epoch_loss = None
        while epoch_loss is None:
            t0 = time.perf_counter()
            if (t0 - self._last_backup > self._backup_every
                    and all_finite(arena, cfg.n_threads)):
                if self._start_kept is not None:
                    # (the call's start stays the fallback: backups go to the other buffer)
                    older = self._spare
                    self._good = (older, self._start_kept)
                else:
                    older = self._spare if self._good[1] is self._good[0] else self._good[1]
                    self._good = (older, self._good[0])
                _core.copy_into(older, arena, cfg.n_threads)
                self._steps_since_backup, self._last_backup = 0, t0
                self._backup_every = max(_BACKUP_SECONDS,
                                         _BACKUP_COST_RATIO * (time.perf_counter() - t0))
            nt, chunk = planner.next()
            t0 = time.perf_counter()
            steps, epoch_loss, diverged = trainer.run(chunk, nt)
            elapsed = time.perf_counter() - t0
            planner.record(nt, steps, elapsed)
            progress.chunk(min(steps * cfg.batch_size, self.X.shape[0]), elapsed)
            self._steps_since_backup += steps
            if diverged or (epoch_loss is not None and not all_finite(arena, cfg.n_threads)):
                # a step has run from the newer snapshot with a finite loss,
                # unless none did
                good = self._good[0] if self._steps_since_backup else self._good[1]
                if self.validation is None:
                    self._diverged(good)
                _core.copy_into(arena, good, cfg.n_threads)
                self.diverged = True
                return math.nan
        return float(epoch_loss)

    def start_weights(self):
        """The weights at the call's start, while its first epoch checks X
        (check_x); None otherwise, or before the run started."""
        return getattr(self, "_start_kept", None)

    def keep_buffers(self):
        """The buffers to keep with the model after the run (None: too large)."""
        if self.buffers is not None and self.buffers.nbytes <= _SCRATCH_KEEP_BYTES:
            return self.buffers
        return None

    def _diverged(self, good):
        _core.copy_into(self.arena, good, self.config.n_threads)
        self.optimizer = None
        raise DivergenceError(divergence_message(self.config.learning_rate_init))

    def _end_epoch(self, curves, loss, best, progress):
        """Bookkeeping after an epoch; True when training stops."""
        cfg, opt = self.config, self.optimizer
        curves.n_iter_ += 1
        curves.t_ += self.X.shape[0]
        curves.loss_ = loss
        curves.loss_curve_.append(loss)
        prev_best = curves.best_loss_
        if self.validation is None:
            if prev_best is None:  # a warm start after early stopping
                prev_best = curves.best_loss_ = math.inf
            if loss < curves.best_loss_:
                curves.best_loss_ = loss
        score = None
        if self.validation is not None:
            try:
                score = math.nan if self.diverged else float(self.validation())
            except OutputOverflow:  # the held-out rows overflowed the model
                score = math.nan
            curves.validation_scores_.append(score)
            if math.isnan(score):
                self.diverged = True
                progress.epoch_end(loss, score)
                return False
        progress.epoch_end(loss, score)
        if cfg.tol is not None:
            if score is not None:
                worse = not score >= curves.best_validation_score_ + cfg.tol
            else:
                worse = loss > prev_best - cfg.tol
            curves._no_improvement_count = curves._no_improvement_count + 1 if worse else 0
        if score is not None and score > curves.best_validation_score_:
            curves.best_validation_score_ = score
            _core.copy_into(best, self.arena, cfg.n_threads)
        if cfg.solver == "sgd" and cfg.schedule == "invscaling":
            opt.lr = invscaling_rate(cfg.learning_rate_init, curves.t_, cfg.power_t)
        if cfg.tol is not None and curves._no_improvement_count > cfg.n_iter_no_change:
            what = "Validation score" if score is not None else "Training loss"
            if cfg.solver == "sgd" and cfg.schedule == "adaptive" and opt.lr > _ADAPTIVE_MIN_LR:
                opt.lr /= _ADAPTIVE_DIVISOR
                curves._no_improvement_count = 0
                progress.message(f"{what} did not improve more than tol={cfg.tol} for "
                                 f"{cfg.n_iter_no_change} consecutive epochs. "
                                 f"Setting learning rate to {opt.lr:f}")
                return False
            progress.message(f"{what} did not improve more than tol={cfg.tol} for "
                             f"{cfg.n_iter_no_change} consecutive epochs. Stopping.")
            self.converged = True
            return True
        if cfg.incremental:
            self.converged = True
            return True
        return False

    def _finite_on_sample(self):
        """Loss and gradient at the current weights on up to _FINAL_CHECK_ROWS
        training rows spread over the data are finite (and so are the weights).
        A few rows suffice: blown-up weights overflow on almost every row.
        Bounds from the weights' and the rows' largest magnitudes settle it in
        one pass over the weights for most models (Net.finite_bound); the
        loss and gradient pass, a fraction of a training step, runs where they
        do not, and where rows carry sample weights."""
        n = self.X.shape[0]
        idx = np.unique(np.linspace(0, n - 1, min(n, _FINAL_CHECK_ROWS)).astype(np.int64))
        rows, Y = _sparse.take_rows(self.X, idx), np.ascontiguousarray(self.Y[idx])
        if self.sw is None:
            # Bounds on every value the pass would compute, from the weights'
            # and these rows' largest magnitudes, prove most models finite
            # without running it (a wide network's pass costs a sixth of a
            # training step or more); the pass runs where they do not.
            xs = rows.data if _sparse.is_sparse(rows) else rows
            with np.errstate(invalid="ignore"):
                xmax = float(np.max(np.abs(xs), initial=0.0))
                ymax = float(np.max(np.abs(Y), initial=0.0))
            proven = self.net.finite_bound(self.arena, xmax, ymax, self.config.alpha, len(idx),
                                           self.config.n_threads)
            if proven:
                return proven > 0
        elif not all_finite(self.arena):
            return False
        grads = self.buffers.grads
        ws = np.empty(_sparse.workspace_size(self.net, self.X, len(idx)), dtype=self.arena.dtype)
        loss = _sparse.loss_grad(self.net, grads, self.arena, rows, Y, self.config.alpha, ws,
                                 self.config.n_threads,
                                 None if self.sw is None else np.ascontiguousarray(self.sw[idx]))
        return math.isfinite(loss) and all_finite(grads)


@dataclass
class LbfgsRun(_Run):
    """A fit by L-BFGS-B (scipy.optimize.minimize, as scikit-learn uses it):
    every evaluation is one call of the core for the loss and gradient of the
    whole training set, on all threads.  A float64 model hands scipy's iterate
    to the core as its parameter arena (no copy); a float32 one rounds it.

    Writes ``n_iter_`` (iterations), ``loss_``, ``loss_curve_`` (the loss after
    each iteration, which scikit-learn does not record) and ``best_loss_``."""

    optimizer: None = None
    buffers: Optional[TrainingBuffers] = None

    def run(self, curves):
        from scipy.optimize import minimize  # only L-BFGS fits import scipy

        cfg, arena = self.config, self.arena
        n = self.X.shape[0]
        grads = np.empty_like(arena)
        ws = np.empty(_sparse.workspace_size(self.net, self.X, n), dtype=arena.dtype)
        X = _sparse.core_input(self.X)  # once: every evaluation reads it
        native = arena.dtype == np.float64
        progress = Progress(cfg.verbose, cfg.max_iter, n)

        def loss_and_grad(x):
            t0 = time.perf_counter()
            params = x if native else x.astype(arena.dtype)
            loss = _sparse.loss_grad(self.net, grads, params, X, self.Y, cfg.alpha, ws,
                                     cfg.n_threads, self.sw)
            progress.chunk(n, time.perf_counter() - t0)
            return loss, grads.astype(np.float64)  # a copy scipy may keep

        last = {"x": None}

        def iteration_done(intermediate_result):
            # the accepted iterate is the last one evaluated
            last["x"] = intermediate_result.x
            loss = float(intermediate_result.fun)
            curves.loss_curve_.append(loss)
            progress.epoch_end(loss, None)

        start = arena.astype(np.float64, copy=not native)
        try:
            res = minimize(loss_and_grad, start, method="L-BFGS-B", jac=True,
                           callback=iteration_done,
                           options={"maxfun": cfg.max_fun, "maxiter": cfg.max_iter,
                                    "gtol": 0.0 if cfg.tol is None else cfg.tol})
        except KeyboardInterrupt:
            if last["x"] is not None:  # keep the last completed iteration
                np.copyto(arena, last["x"], casting="unsafe")
            raise
        finally:
            progress.close()
        if not np.isfinite(res.x).all() or not math.isfinite(res.fun):
            np.copyto(arena, start, casting="unsafe")
            raise DivergenceError(divergence_message(cfg.learning_rate_init))
        np.copyto(arena, res.x, casting="unsafe")
        curves.n_iter_ = int(min(res.nit, cfg.max_iter))
        curves.loss_ = float(res.fun)
        curves.best_loss_ = min([curves.loss_, *curves.loss_curve_])
        if res.status != 0:
            warnings.warn(f"lbfgs failed to converge after {res.nit} iteration(s) "
                          f"(status={res.status}):\n{res.message}.\n\nIncrease the number "
                          f"of iterations (max_iter={cfg.max_iter}) or of function "
                          f"evaluations (max_fun={cfg.max_fun}), or scale the data.",
                          sklearn_flavour(ConvergenceWarning), stacklevel=4)

    def keep_buffers(self):
        return None
