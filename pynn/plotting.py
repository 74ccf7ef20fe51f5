"""Pictures of a fit, drawn with matplotlib (an optional extra:
``pip install "pynn-mlp[plot]"``)."""
from __future__ import annotations

from typing import Any, Optional

__all__ = ["plot_loss_curve"]


def plot_loss_curve(model: Any, ax: Any = None) -> Any:
    """Draw the training loss per epoch and, with ``early_stopping``, the
    validation score per epoch (on a second y axis).

    Parameters
    ----------
    model : fitted Perceptron, MLPClassifier or MLPRegressor
        Its ``loss_curve_`` (and ``validation_scores_`` if any) are drawn.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure and axes are made if None.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes holding the loss curve (the validation score, if drawn, is
        on ``ax.right_ax``, a twin sharing the epoch axis).

    Raises
    ------
    ImportError
        matplotlib is not installed.
    pynn.NotFittedError
        The model has not been fitted.
    """
    try:
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ImportError('plot_loss_curve needs matplotlib: pip install "pynn-mlp[plot]" '
                          "(or pip install matplotlib)") from exc
    check = getattr(model, "_check_is_fitted", None)
    if check is None:
        raise TypeError(f"plot_loss_curve needs a pynn model, got {type(model).__name__}")
    check()
    if ax is None:
        ax = plt.subplots(figsize=(6, 4))[1]
    losses = list(model.loss_curve_)
    epochs = range(1, len(losses) + 1)
    (loss_line,) = ax.plot(epochs, losses, color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs
    ax.set_ylabel("training loss")
    ax.set_title(f"{type(model).__name__}: {len(losses)} epochs")
    lines = [loss_line]
    scores = getattr(model, "validation_scores_", None)
    if scores:
        right = ax.twinx()
        (val_line,) = right.plot(range(1, len(scores) + 1), scores, color="tab:orange",
                                 label="validation score")
        right.set_ylabel("validation score")
        best = getattr(model, "best_validation_score_", None)
        if best is not None:
            right.axhline(best, color="tab:orange", linestyle=":", linewidth=1)
        lines.append(val_line)
        ax.right_ax = right
    ax.legend(lines, [ln.get_label() for ln in lines], loc="best")
    ax.grid(True, alpha=0.3)
    return ax
