"""A run's folder (``--out``): claimed for a new run, refused while it holds another, cleared by --overwrite.

Pretraining and both fine-tunings share these rules: an --out that holds a run (checkpoint.json, or a
fine-tuning's metrics.json) is refused unless --overwrite, which replaces that run's files and leaves
the folder's other files alone; an --out that is a file is refused.
"""
import os

from . import checkpoint as ckpt
from .errors import TrainingError

RUN_FILES = (ckpt.META, ckpt.MODEL, ckpt.OPTIMIZER, ckpt.TOKENIZER, "loss.png", "loss.svg", "metrics.csv",
             "metrics.json", "responses.jsonl", "samples.jsonl")


def check_out(out, overwrite, hint="pass --resume to continue it, ", error=TrainingError):
    """Refuse (raising ``error``) an --out that is a file, or that holds a run unless ``overwrite``;
    changes nothing. Shared by pretraining and fine-tuning."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise error(f"--out {out} exists and is not a folder")
    if not overwrite and (ckpt.exists(out) or os.path.exists(os.path.join(out, "metrics.json"))):
        raise error(f"{out} already holds a checkpoint: {hint}--overwrite to start again there, "
                    "or choose another --out")


def clear_run(out):
    """Remove the files of the run in ``out`` (what --overwrite replaces); other files stay."""
    for name in RUN_FILES:
        path = os.path.join(out, name)
        if os.path.isfile(path) or os.path.islink(path):
            os.remove(path)


def claim_out(out, overwrite):
    """Make ``out`` ready for a new pretraining run (checked, created, an old run's files removed)."""
    check_out(out, overwrite)
    os.makedirs(out, exist_ok=True)
    if overwrite:
        clear_run(out)
