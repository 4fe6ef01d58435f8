"""A run's metrics: metrics.csv (a row per step and per evaluation, written as the run goes), the plot
drawn from it (loss.svg, through svg_chart.py) and the warning when the run overfits.

Pretraining's ``metrics.csv`` starts like this (fine-tuning's has its own columns, same idea)::

    kind,step,tokens,train_loss,val_loss,lr,grad_norm,tokens_per_s,elapsed_s
    eval,0,0,7.60838,7.60813,,,,1.42
    train,1,2048,7.59371,,7.69231e-05,2.59722,6625,1.77
    train,2,4096,7.58584,,0.000153846,2.13833,8680,2.01

``kind`` is ``train`` for a step (its batch's loss, and ``grad_norm``: the gradient norm before
clipping) or ``eval`` for an evaluation (losses over a fixed set of batches); an empty cell is a value
that row does not have. Any CSV reader can plot it::

    import csv
    rows = [r for r in csv.DictReader(open("runs/tiny/metrics.csv")) if r["kind"] == "eval"]

Each row is flushed as it is written, so the file is whole up to the last step even after a crash. A
resumed run keeps the rows up to its checkpoint's step and appends from there: no step appears twice.
The file is read back as untrusted (a regular file, bounded size); one that cannot be read is started
afresh, with a note. A file from before a column was added (``grad_norm``) is continued: its rows keep
that cell empty.

Each pretraining evaluation's sample goes to ``samples.jsonl`` beside it, one JSON line per evaluation
(``{"step": 3, "sample": "The ..."}``), flushed and kept on resume the same way (``SamplesLog``).

The plot: pretraining draws train and validation loss against tokens seen, as the book's chapter 5 does:
the loss of every step (thin), and the evaluated train and validation losses (points). Classification
draws loss against examples seen and accuracy per epoch; instruction tuning, loss against tokens seen.
"""
import csv
import io
import json
import os

from tinytensor.atomic import replacing

from .. import files
from .svg_chart import COLORS, Chart, write_svg

NAME = "metrics.csv"
SAMPLES = "samples.jsonl"
PLOT = "loss.svg"
# one colour per split in every panel: train blue, validation orange, test green
SPLIT_COLOR = {"train": COLORS[0], "val": COLORS[1], "test": COLORS[2]}
PRETRAIN_COLUMNS = ("kind", "step", "tokens", "train_loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s")
CLASSIFY_COLUMNS = ("kind", "step", "epoch", "examples", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                    "test_accuracy", "lr", "grad_norm", "elapsed_s")
INSTRUCT_COLUMNS = ("kind", "step", "epoch", "tokens", "train_loss", "val_loss", "lr", "grad_norm", "tokens_per_s",
                    "elapsed_s")


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _number(text):
    """A cell read back: int, float (nan and inf kept), the text itself, or None when empty."""
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class MetricsRows:
    """Rows kept in memory: ``write(kind=..., step=..., ...)`` adds one, ``rows(kind)`` gives them back,
    ``save(path)`` writes them all as one CSV file. Fine-tuning keeps its rows so (it saves nothing
    until the run has succeeded); pretraining appends as it goes (``MetricsLog``)."""

    def __init__(self, columns):
        self.columns, self._rows = tuple(columns), []

    def write(self, **row):
        """Add one row (columns not given stay empty)."""
        self._rows.append(row)

    def add(self, row):
        """``write`` for a row already in a dict."""
        self.write(**row)

    def rows(self, kind=None):
        """The rows so far, of one ``kind`` when given."""
        return [r for r in self._rows if kind is None or r.get("kind") == kind]

    def column(self, name, kind=None):
        """One column's values (None where empty) over the rows of ``kind``."""
        return [r.get(name) for r in self.rows(kind)]

    def save(self, path):
        """All rows as a CSV file (through a temporary name, renamed into place)."""
        with replacing(os.fspath(path), "w", encoding="utf-8", newline="") as f:
            f.write(_line(self.columns) + "".join(_line(_cell(r.get(c)) for c in self.columns) for r in self._rows))
        return path


class _Appending:
    """A file opened for appending once its kept lines are written; a context manager that closes it."""
    _file = None

    def close(self):
        if self._file is not None and not self._file.closed:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MetricsLog(_Appending, MetricsRows):
    """Rows appended to a CSV file as they are written, each flushed at once.

    ``keep_until``: None starts a new file (an old one is replaced); a step number continues the file
    there, keeping its rows up to that step (a resumed run). ``note`` says why old rows were dropped,
    when they were.
    """

    def __init__(self, path, columns, keep_until=None):
        super().__init__(columns)
        self.path, self.note = os.fspath(path), None
        self._rows = self._read(keep_until) if keep_until is not None else []
        self.save(self.path)                                               # the header and the rows kept
        self._file = open(self.path, "a", encoding="utf-8", newline="")    # the file just written

    def _read(self, keep_until):
        if not os.path.lexists(self.path):
            return []
        try:
            text = files.read_text(self.path, files.MAX_JSON, "a metrics log")
            kept = []
            for row in csv.DictReader(io.StringIO(text, newline="")):
                row = {k: _number(v) for k, v in row.items() if k in self.columns}
                if not isinstance(row.get("step"), int) or row.get("kind") in (None, ""):
                    raise ValueError(f"a row without a step or a kind: {row}")
                if row["step"] <= keep_until:
                    kept.append(row)
            return kept
        except (OSError, ValueError, csv.Error) as e:
            self.note = _unreadable(self.path, e, keep_until)
            return []

    def write(self, **row):
        """Append one row (missing columns stay empty) and flush it to the file."""
        super().write(**row)
        self._file.write(_line(_cell(row.get(c)) for c in self.columns))
        self._file.flush()


def _unreadable(path, error, keep_until):
    """The note of a log that could not be read back, so starts again."""
    return f"{path} could not be read ({str(error)[:80]}); it starts again from step {keep_until}"


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_samples(path):
    """[{"step": int, "sample": str}, ...] from a samples.jsonl ([] when there is none), read as untrusted
    (a regular file, bounded size); ValueError (one line) when a line is not such an object."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        return []
    text = files.read_text(path, files.MAX_JSON, "a samples log")
    out = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, parse_constant=_no_constant)
        except ValueError as e:
            raise ValueError(f"{path}: line {number} is not JSON ({str(e)[:60]})") from None
        if (not isinstance(item, dict) or type(item.get("step")) is not int or not isinstance(item.get("sample"), str)):
            raise ValueError(f"{path}: line {number} is not {{\"step\": int, \"sample\": text}}")
        out.append({"step": item["step"], "sample": item["sample"]})
    return out


class SamplesLog(_Appending):
    """Each evaluation's sample appended to ``path`` as a JSON line ``{"step": N, "sample": text}``,
    flushed at once. ``keep_until`` as ``MetricsLog``'s: None starts a new file, a step continues the
    file keeping its lines up to that step; ``note`` says why old lines were dropped, when they were."""

    def __init__(self, path, keep_until=None):
        self.path, self.note = os.fspath(path), None
        kept = []
        if keep_until is not None:
            try:
                kept = [s for s in read_samples(self.path) if s["step"] <= keep_until]
            except (OSError, ValueError) as e:
                self.note = _unreadable(self.path, e, keep_until)
        with replacing(self.path, "w", encoding="utf-8", newline="") as f:
            f.write("".join(_json_line(s["step"], s["sample"]) for s in kept))
        self._file = open(self.path, "a", encoding="utf-8", newline="")

    def write(self, step, sample):
        """Append the sample of the evaluation at ``step`` and flush it to the file."""
        self._file.write(_json_line(step, sample))
        self._file.flush()


def _json_line(step, sample):
    return json.dumps({"step": int(step), "sample": str(sample)}, allow_nan=False) + "\n"   # ASCII: one line


def _line(cells):
    return ",".join(_csv_field(c) for c in cells) + "\n"


def _csv_field(text):
    """A CSV field: quoted when it holds a comma, a quote or a line break."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


# ----- the plot and the overfitting warning -----


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
