"""A finished run's ``metrics.csv`` as the same events the live page gets during training."""
import csv
import io
import os

from .. import files
from ..training.metrics import NAME as METRICS
from ..training.metrics import _number       # a cell read back as the log itself reads it (int, float, text, None)


def run_events(folder, name=None):
    """[(kind, data), ...] from ``folder``'s metrics.csv: "run" first, "step" for each train row, "eval"
    for each evaluation, "done" last, each tagged with the run's name (default: the folder's name). The
    file is read as untrusted: a regular file of bounded size (gpt/files.py)."""
    path = os.path.join(folder, METRICS)
    name = name or os.path.basename(os.path.normpath(folder))
    if not os.path.isfile(path):
        raise ValueError(f"{folder} has no {METRICS}: pass a folder written by python -m gpt train or finetune")
    text = files.read_text(path, files.MAX_JSON, "a metrics log")
    out = [("run", {"run": name, "live": False})]
    try:
        for row in csv.DictReader(io.StringIO(text, newline="")):
            data = {k: _number(v) for k, v in row.items() if k and k != "kind"}
            data["run"] = name
            out.append(("eval" if row.get("kind") == "eval" else "step", data))
    except csv.Error as exc:
        raise ValueError(f"{path}: not a metrics log ({exc})") from None
    out.append(("done", {"run": name}))
    return out
