"""A finished run's ``metrics.csv`` (and ``samples.jsonl``) as the same events the live page gets during
training: every step with its gradient norm, every evaluation with its sample. An older folder without
them replays what it has."""
import csv
import io
import os

from .. import files
from ..training.metrics import NAME as METRICS
from ..training.metrics import SAMPLES, read_samples
from ..training.metrics import _number       # a cell read back as the log itself reads it (int, float, text, None)


def run_events(folder, name=None):
    """[(kind, data), ...] from ``folder``'s metrics.csv: "run" first, "step" for each train row, "eval"
    for each evaluation (with its ``sample`` from samples.jsonl, where the folder keeps one), "done" last,
    each tagged with the run's name (default: the folder's name). The files are read as untrusted: a
    regular file of bounded size (gpt/files.py); a damaged one is a ValueError naming it."""
    path = os.path.join(folder, METRICS)
    name = name or os.path.basename(os.path.normpath(folder))
    if not os.path.isfile(path):
        raise ValueError(f"{folder} has no {METRICS}: pass a folder written by python -m gpt train or finetune")
    text = files.read_text(path, files.MAX_JSON, "a metrics log")
    samples = {s["step"]: s["sample"] for s in read_samples(os.path.join(folder, SAMPLES))}
    out = [("run", {"run": name, "live": False})]
    try:
        for row in csv.DictReader(io.StringIO(text, newline="")):
            data = {k: _number(v) for k, v in row.items() if k and k != "kind"}
            data["run"] = name
            kind = "eval" if row.get("kind") == "eval" else "step"
            if kind == "eval" and data.get("step") in samples:
                data["sample"] = samples[data["step"]]
            out.append((kind, data))
    except csv.Error as exc:
        raise ValueError(f"{path}: not a metrics log ({exc})") from None
    out.append(("done", {"run": name}))
    return out
