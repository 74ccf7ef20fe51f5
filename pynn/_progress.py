"""Progress reports of a fit: a live one-line bar (``verbose=1`` or True) or
one line per epoch (``verbose=2``).  Reports are written between chunks of
training steps (each about 50 ms of work in C), and the bar is redrawn at most
every ``_REDRAW_SECONDS``, so reporting costs nothing measurable."""
from __future__ import annotations

import sys
import time
from typing import Optional

_REDRAW_SECONDS = 0.2
_BAR_WIDTH = 20


def _rate(x: float) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}"


def _clock(seconds: float) -> str:
    seconds = int(round(max(seconds, 0.0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Receives the training loop's events and reports them (or not).

    level 0: silent; 1: a live bar on ``stream`` (default sys.stderr) showing
    the epoch, the share of max_iter epochs done, the last loss and validation score, samples/s and
    the time left if every epoch up to max_iter runs; 2: one line per epoch on
    ``stream`` (default sys.stdout), like scikit-learn's verbose output.
    """

    def __init__(self, level, max_iter: int, n_samples: int, stream=None):
        self.level = int(level) if level else 0
        self.stream = stream
        self.max_iter = max_iter
        self.n_samples = n_samples
        self.epoch = 0                    # epochs finished in this call
        self.in_epoch = 0                 # samples seen in the current epoch
        self.samples = 0                  # samples seen in this fit
        self.t0 = time.perf_counter()
        self.busy = 0.0                   # seconds spent in the step loop
        self.loss: Optional[float] = None
        self.val: Optional[float] = None
        self.last_draw = 0.0
        self.drawn = False
        self.width = 0

    def _out(self):
        if self.stream is not None:
            return self.stream
        return sys.stderr if self.level == 1 else sys.stdout

    def chunk(self, samples: int, seconds: float) -> None:
        """A chunk of steps covering `samples` rows ran for `seconds`."""
        if not self.level:
            return
        self.samples += samples
        self.in_epoch += samples
        self.busy += seconds
        if self.level == 1:
            self._maybe_draw()

    def _maybe_draw(self) -> None:
        now = time.perf_counter()
        if now - self.last_draw >= _REDRAW_SECONDS:
            self.last_draw = now
            self._draw()

    def epoch_end(self, loss: float, val_score=None) -> None:
        if not self.level:
            return
        self.epoch += 1
        self.in_epoch = 0
        self.loss, self.val = loss, val_score
        if self.level >= 2:
            line = f"Iteration {self.epoch}, loss = {loss:.8f}"
            if val_score is not None:
                line += f", validation score = {val_score:.6f}"
            line += f", {_rate(self.speed())} samples/s"
            print(line, file=self._out(), flush=True)
        else:
            self._maybe_draw()

    def message(self, text: str) -> None:
        """A remark of the training loop (learning rate change, stopping)."""
        if not self.level:
            return
        out = self._out()
        if self.level == 1 and self.drawn:
            out.write("\n")
            self.drawn = False
        print(text, file=out, flush=True)

    def speed(self) -> float:
        return self.samples / self.busy if self.busy > 0 else 0.0

    def _draw(self) -> None:
        out = self._out()
        runs = self.max_iter
        done_epochs = self.epoch
        total = runs * self.n_samples
        frac = min((done_epochs * self.n_samples + self.in_epoch) / total, 1.0) if total else 0.0
        filled = int(round(frac * _BAR_WIDTH))
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        speed = self.speed()
        parts = [f"epoch {min(self.epoch + 1, runs)}/{runs}",
                 f"[{bar}] {100 * frac:3.0f}%"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4g}")
        if self.val is not None:
            parts.append(f"val {self.val:.4f}")
        if speed > 0:
            parts.append(f"{_rate(speed)} samples/s")
            left = (runs - done_epochs) * self.n_samples - self.in_epoch
            parts.append(f"ETA {_clock(left / speed)}")
        parts.append(f"elapsed {_clock(time.perf_counter() - self.t0)}")
        line = "  ".join(parts)
        # spaces blank what a longer previous line left (no terminal escapes:
        # the bar may go to a log file)
        out.write("\r" + line + " " * max(0, self.width - len(line)))
        out.flush()
        self.width = len(line)
        self.drawn = True

    def close(self) -> None:
        """The final state of the bar, then a new line."""
        if self.level == 1 and self.epoch > 0:
            self._draw()
            self._out().write("\n")
            self._out().flush()
            self.drawn = False
