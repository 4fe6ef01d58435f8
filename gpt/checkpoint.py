"""Checkpoints: a folder that a run killed at any instant can be resumed from, exactly.

    DIR/model.safetensors       the weights (names as in model.state_dict())
    DIR/optimizer.safetensors   AdamW's moments; hyperparameters and step counts in its metadata
    DIR/tokenizer.bpe           the tokenizer (bpe's text format)
    DIR/checkpoint.json         step, config, data position, RNG state, training arguments, format

Saving is crash-safe in three moves:
 1. write model.safetensors.step-N and optimizer.safetensors.step-N (each via a temporary name);
 2. replace checkpoint.json (temporary name + rename): this rename is the commit point;
 3. rename the two staged files over model.safetensors and optimizer.safetensors.
A kill before 2 leaves the previous checkpoint intact (stray staged files are deleted later); a
kill after 2 leaves staged files: readers use them where they are (``file_path``), and the run that owns
the folder renames them into place when it resumes (``read_meta(folder, repair=True)``).
"""
import glob
import json
import os

import numpy as np

import tinytensor as tt
from tinytensor import serialize
from tinytensor.atomic import replacing

from .config import GPTConfig

FORMAT = "tinytensor-gpt-checkpoint"
VERSION = 1
MODEL, OPTIMIZER, META, TOKENIZER = "model.safetensors", "optimizer.safetensors", "checkpoint.json", "tokenizer.bpe"


def write_json(obj, path):
    """JSON to ``path`` through a temporary name, fsync and rename."""
    with replacing(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def optimizer_arrays(optimizer):
    """AdamW/SGD state as (arrays, metadata): arrays named "<index>.<name>", numbers in metadata JSON."""
    sd = optimizer.state_dict()
    arrays, scalars = {}, {}
    for i, entry in sd["state"].items():
        for k, v in entry.items():
            if hasattr(v, "shape"):
                arrays[f"{i}.{k}"] = v
            else:
                scalars[f"{i}.{k}"] = v
    meta = {"param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars)}
    return arrays, meta


def optimizer_state_from_arrays(arrays, meta):
    """Invert ``optimizer_arrays`` into a dict for ``optimizer.load_state_dict``."""
    state = {}
    for key, v in arrays.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    for key, v in json.loads(meta.get("scalars", "{}")).items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    return {"param_groups": json.loads(meta["param_groups"]), "state": state}


def save(folder, model, optimizer, meta):
    """Write a checkpoint of ``model``, ``optimizer`` and ``meta`` (JSON-able dict holding "step")."""
    os.makedirs(folder, exist_ok=True)
    step = int(meta["step"])
    staged = {}
    tag = {"format": FORMAT, "step": str(step)}
    staged[MODEL] = os.path.join(folder, f"{MODEL}.step-{step}")
    tt.save(model.state_dict(), staged[MODEL], metadata=tag)
    if optimizer is not None:
        arrays, opt_meta = optimizer_arrays(optimizer)
        staged[OPTIMIZER] = os.path.join(folder, f"{OPTIMIZER}.step-{step}")
        tt.save(arrays, staged[OPTIMIZER], metadata={**tag, **opt_meta})
    _fsync_dir(folder)
    record = {"format": FORMAT, "version": VERSION, **meta, "step": step,
              "files": {name: os.path.basename(path) for name, path in staged.items()}}
    write_json(record, os.path.join(folder, META))                        # the commit point
    _fsync_dir(folder)
    for name, path in staged.items():
        os.replace(path, os.path.join(folder, name))
    _fsync_dir(folder)
    _remove_strays(folder, step)


def _remove_strays(folder, keep_step):
    for path in glob.glob(os.path.join(glob.escape(folder), "*.step-*")) + \
            glob.glob(os.path.join(glob.escape(folder), "*.tmp-*")):
        if not path.endswith(f".step-{keep_step}"):
            try:
                os.remove(path)
            except OSError:
                pass


def exists(folder):
    return os.path.isfile(os.path.join(folder, META))


def read_meta(folder, repair=False):
    """checkpoint.json of ``folder``, checked; clear errors when absent or damaged.

    Reading never changes the folder (a training run may be saving into it at that moment). Only the
    run that owns the folder passes ``repair=True`` to finish a save interrupted after its commit point.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no checkpoint folder {folder}")
    path = os.path.join(folder, META)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder} holds no checkpoint ({META} is missing)")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tinytensor GPT checkpoint")
    version, step = meta.get("version"), meta.get("step")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path} is damaged: its format version is {version!r}, not a whole number")
    if version > VERSION:
        raise ValueError(f"{path} has format version {version}; this code reads up to {VERSION}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"{path} is damaged: its step is {step!r}")
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"{path} is damaged: it holds no model config")
    if repair:
        _recover(folder, meta)
    _check_files(folder, meta)
    return meta


def file_path(folder, meta, name):
    """Where ``name`` of the checkpoint ``meta`` describes lies now: its final name, or, while a save is
    between its commit point and its renames, the staged copy."""
    staged = os.path.join(folder, f"{name}.step-{int(meta['step'])}")
    return staged if os.path.exists(staged) else os.path.join(folder, name)


def _recover(folder, meta):
    """Finish step 3 of a save that was interrupted after its commit point."""
    step = int(meta["step"])
    for name in (MODEL, OPTIMIZER):
        staged = os.path.join(folder, f"{name}.step-{step}")
        if os.path.exists(staged):
            os.replace(staged, os.path.join(folder, name))


def _check_files(folder, meta):
    step = int(meta["step"])
    for name in (MODEL,) + ((OPTIMIZER,) if OPTIMIZER in meta.get("files", {}) else ()):
        path = file_path(folder, meta, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint {folder} is incomplete: {name} is missing")
        tag = serialize.load_metadata(path)
        if tag.get("step") != str(step):
            raise ValueError(f"checkpoint {folder} is inconsistent: {name} is from step {tag.get('step')}, "
                             f"checkpoint.json from step {step}")


def load_config(meta):
    return GPTConfig.from_dict(meta["config"])


def load_model(folder, meta=None, device="cpu"):
    """The GPT stored in ``folder``, and its meta dict."""
    from .model import GPT
    meta = meta or read_meta(folder)
    cfg = load_config(meta)
    model = GPT(cfg, init=False)
    load_weights(model, file_path(folder, meta, MODEL))
    if device != "cpu":
        model.to(device)
    return model, meta


def load_weights(model, path):
    """Copy model.safetensors into ``model``; errors name the missing, unexpected or mis-shaped tensor."""
    state = tt.load(path)
    own = dict(model.named_parameters())
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing[:5])}"] if missing else []) + \
                ([f"unexpected {', '.join(unexpected[:5])}"] if unexpected else [])
        raise ValueError(f"{path} does not fit this model (another model shape?): {'; '.join(parts)}")
    for name, p in own.items():
        if tuple(state[name].shape) != p.shape:
            raise ValueError(f"{path}: {name} has shape {tuple(state[name].shape)}, the model expects {p.shape} "
                             "(a checkpoint of another model shape?)")
        p.data = np.ascontiguousarray(state[name], dtype=p.dtype)


def load_optimizer(folder, optimizer, meta=None):
    path = file_path(folder, meta or read_meta(folder), OPTIMIZER)
    arrays = tt.load(path)
    meta = serialize.load_metadata(path)
    optimizer.load_state_dict(optimizer_state_from_arrays(arrays, meta))
