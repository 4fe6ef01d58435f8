"""A finished run's ``metrics.csv`` as the same events the live page gets during training."""
import csv
import os

from tinytensor.viz.server import MAX_BODY

METRICS = "metrics.csv"
MAX_BYTES = 64 * MAX_BODY          # a metrics file larger than this (64 MiB) is refused


def _number(text):
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def run_events(folder, name=None):
    """[(kind, data), ...] from ``folder``'s metrics.csv: "step" for each train row, "eval" for each
    evaluation, each tagged with the run's name (default: the folder's name)."""
    path = os.path.join(folder, METRICS)
    name = name or os.path.basename(os.path.normpath(folder))
    if not os.path.isfile(path):
        raise ValueError(f"{folder} has no {METRICS}: pass a folder written by python -m gpt train or finetune")
    if os.path.getsize(path) > MAX_BYTES:
        raise ValueError(f"{path} is larger than {MAX_BYTES >> 20} MiB")
    out = [("run", {"run": name, "live": False})]
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            data = {k: _number(v) for k, v in row.items() if k and k != "kind"}
            data["run"] = name
            if data.get("train_loss") is None and data.get("val_loss") is None and row.get("kind") != "eval":
                continue
            out.append(("eval" if row.get("kind") == "eval" else "step", data))
    out.append(("done", {"run": name}))
    return out
