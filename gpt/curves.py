"""Reading a run's curves: its plot (loss.svg, drawn from metrics.csv) and the warning when it overfits.

Pretraining draws train and validation loss against tokens seen, as the book's chapter 5 does: the
loss of every step (thin), and the evaluated train and validation losses (points). Classification
draws loss against examples seen and accuracy per epoch; instruction tuning, loss against tokens seen.
"""
import os

from .plot import COLORS, Chart, write_svg

PLOT = "loss.svg"
# one colour per split in every panel: train blue, validation orange, test green
SPLIT_COLOR = {"train": COLORS[0], "val": COLORS[1], "test": COLORS[2]}


def _xy(rows, x, y):
    pts = [(r.get(x), r.get(y)) for r in rows if r.get(x) is not None and r.get(y) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _loss_chart(log, x, xlabel, ylabel, evaluated_train=True):
    """Loss against ``x``: every step's (thin), and the evaluations' (points)."""
    chart = Chart(xlabel, ylabel)
    chart.add("train loss, each step", *_xy(log.rows("train"), x, "train_loss"), thin=True, color=SPLIT_COLOR["train"])
    evals = log.rows("eval")
    if evaluated_train:
        chart.add("train loss, evaluated", *_xy(evals, x, "train_loss"), points=True, color=SPLIT_COLOR["train"])
    return chart.add("validation loss", *_xy(evals, x, "val_loss"), points=True, color=SPLIT_COLOR["val"])


def plot_pretraining(log, folder, title):
    """loss.svg of a pretraining run from its MetricsLog; returns the file's path."""
    chart = _loss_chart(log, "tokens", "tokens seen", "cross-entropy loss (nats per token)")
    return write_svg(os.path.join(folder, PLOT), [chart], title=title)


def plot_classification(log, folder, title):
    """loss.svg of a classification run: loss against examples seen, and accuracy by epoch."""
    loss = _loss_chart(log, "examples", "examples seen", "cross-entropy loss")
    acc = Chart("epoch", "accuracy")                  # the axis spans the values (0.97-0.99 is not squashed flat)
    for name in ("train", "val", "test"):
        acc.add(f"{name} accuracy", *_xy(log.rows("eval"), "epoch", f"{name}_accuracy"), points=True,
                color=SPLIT_COLOR[name])
    return write_svg(os.path.join(folder, PLOT), [loss, acc], title=title)


def plot_instruction(log, folder, title):
    """loss.svg of an instruction-tuning run: loss on the trained tokens against tokens seen."""
    chart = _loss_chart(log, "tokens", "tokens seen", "cross-entropy loss (trained tokens)", evaluated_train=False)
    return write_svg(os.path.join(folder, PLOT), [chart], title=title)


def rising(values, n=2):
    """True when each of the last ``n`` values is higher than the one before it."""
    values = [v for v in values if v is not None]
    return len(values) > n and all(b > a for a, b in zip(values[-n - 1:], values[-n:]))


def overfitting_warning(val_losses, n=2):
    """One line when validation loss has just risen at each of the last ``n`` evaluations (said once
    per rise: not again while it keeps rising), else None."""
    if not rising(val_losses, n) or rising(val_losses[:-1], n):
        return None
    shown = " -> ".join(f"{v:.3f}" for v in [v for v in val_losses if v is not None][-n - 1:])
    return (f"warning: validation loss has risen at each of the last {n} evaluations ({shown}): the model is "
            "memorising its training text; more text (--data), fewer steps or --drop-rate would help")
