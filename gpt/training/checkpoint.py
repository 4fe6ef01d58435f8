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
import contextlib
import errno
import glob
import json
import math
import os
import re
import shlex

import numpy as np

import tinytensor as tt
from tinytensor import serialize
from tinytensor.atomic import replacing

from .. import files
from ..errors import TrainingError
from .checkpoint_schema import SCHEMA, args_from, check_schema  # noqa: F401 (the table of checkpoint.json)
from ..models import build_model, config_from_dict
from .step import NonFiniteError

FORMAT = "tinytensor-gpt-checkpoint"
VERSION = 1
MODEL, OPTIMIZER, META, TOKENIZER = "model.safetensors", "optimizer.safetensors", "checkpoint.json", "tokenizer.bpe"

def write_json(obj, path):
    """JSON to ``path`` through a temporary name, fsync and rename. NaN and infinities, which JSON does
    not have (Python would write a bare ``NaN``), are written as null."""
    with replacing(path, "w", encoding="utf-8") as f:
        json.dump(_finite_or_null(obj), f, indent=1, allow_nan=False)
        f.write("\n")


def _finite_or_null(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v) for v in obj]
    return obj


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
    """Write a checkpoint of ``model``, ``optimizer`` and ``meta`` (JSON-able dict holding "step").

    Weights or optimizer moments holding NaN or Inf are never written: ``NonFiniteError`` (gpt/training/step.py)
    is raised before anything is touched, so the folder's previous (finite) checkpoint stays as it was."""
    step = int(meta["step"])
    weights = model.state_dict()
    arrays, opt_meta = optimizer_arrays(optimizer) if optimizer is not None else ({}, None)
    check_finite(weights, step)
    check_finite(arrays, step, "optimizer state")
    os.makedirs(folder, exist_ok=True)
    staged = {}
    tag = {"format": FORMAT, "step": str(step)}
    writing = MODEL
    try:
        staged[MODEL] = os.path.join(folder, f"{MODEL}.step-{step}")
        tt.save(weights, staged[MODEL], metadata=tag)
        if optimizer is not None:
            writing = OPTIMIZER
            staged[OPTIMIZER] = os.path.join(folder, f"{OPTIMIZER}.step-{step}")
            tt.save(arrays, staged[OPTIMIZER], metadata={**tag, **opt_meta})
        _fsync_dir(folder)
        record = {"format": FORMAT, "version": VERSION, **meta, "step": step,
                  "files": {name: os.path.basename(path) for name, path in staged.items()}}
        writing = META
        write_json(record, os.path.join(folder, META))                    # the commit point
    except OSError as e:                   # before the commit point: the previous checkpoint stays whole
        for path in staged.values():
            with contextlib.suppress(OSError):
                os.remove(path)
        raise files.oserror(type(e), e.errno, f"saving the step-{step} checkpoint failed while writing "
                                              f"{os.path.join(folder, writing)}: {e.strerror or e}; the "
                                              "previous checkpoint there is intact") from e
    _fsync_dir(folder)
    for name, path in staged.items():
        os.replace(path, os.path.join(folder, name))
    _fsync_dir(folder)
    _remove_strays(folder, step)


def check_finite(arrays, step=None, what="weight"):
    """Raise ``NonFiniteError`` naming the first of ``arrays`` ({name: array}) that holds NaN or Inf."""
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            value = "nan" if np.isnan(array).any() else "inf"
            raise NonFiniteError(f"{what} {name!r}", value, step)


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


def read_meta(folder, repair=False, resume=False):
    """checkpoint.json of ``folder``, checked against ``SCHEMA``; clear errors when absent or damaged.

    Reading never changes the folder (a training run may be saving into it at that moment). Only the
    run that owns the folder passes ``repair=True`` to finish a save interrupted after its commit point.
    ``resume=True`` also requires what continuing a training run needs (its settings, data, RNG state).
    """
    folder = os.fspath(folder)
    if os.path.isfile(folder):
        raise FileNotFoundError(f"{folder} is a file: give the folder that holds the checkpoint "
                                f"({os.path.dirname(folder) or '.'})")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no checkpoint folder {folder}")
    path = os.path.join(folder, META)
    if not os.path.lexists(path):
        raise FileNotFoundError(f"{folder} holds no checkpoint ({META} is missing)")
    raw = files.read_bytes(files.member(folder, META, folder, files.MAX_JSON, "checkpoint.json"), files.MAX_JSON,
                           "checkpoint.json")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"{path} is not valid JSON ({str(e)[:100]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tinytensor GPT checkpoint")
    check_schema(meta, path, resume)
    if meta["version"] > VERSION:
        raise ValueError(f"{path} has format version {meta['version']}; this code reads up to {VERSION}")
    _config(meta, path)
    if repair:
        _recover(folder, meta)
    _check_files(folder, meta)
    return meta


def file_path(folder, meta, name):
    """Where ``name`` of the checkpoint ``meta`` describes lies now: its final name, or, while a save is
    between its commit point and its renames, the staged copy. Either must be a regular file in ``folder``."""
    folder = os.fspath(folder)
    staged = f"{name}.step-{int(meta['step'])}"
    chosen = staged if os.path.lexists(os.path.join(folder, staged)) else name
    return files.member(folder, chosen, os.path.join(folder, META), what=name)


def tokenizer_path(folder, meta=None):
    """The tokenizer file of checkpoint ``folder``: the plain name its checkpoint.json gives, checked."""
    name = (meta or {}).get("tokenizer", TOKENIZER)
    return files.member(folder, name, os.path.join(os.fspath(folder), META), files.MAX_TOKENIZER, "a tokenizer file")


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
        try:
            path = file_path(folder, meta, name)
        except FileNotFoundError:
            raise FileNotFoundError(f"checkpoint {folder} is incomplete: {name} is missing") from None
        tag = serialize.load_metadata(path)
        if tag.get("step") != str(step):
            raise ValueError(f"checkpoint {folder} is inconsistent: {name} is from step {tag.get('step')}, "
                             f"checkpoint.json from step {step}")


def param_shapes(cfg, classes=None):
    """{name: shape} of every parameter of ``GPT(cfg)`` (of a classifier with ``classes`` outputs when
    given), computed without building the model. Names as in ``model.named_parameters()``. A Llama or
    Qwen3 config gives its model's (gpt/models/llama.py)."""
    if cfg.ARCH != "gpt2":
        from ..models.llama import param_shapes as llama_shapes
        return llama_shapes(cfg, classes)
    E, V, P = cfg.emb_dim, cfg.vocab_size, cfg.context_length
    shapes = {"tok_emb.weight": (V, E), "pos_emb.weight": (P, E)}
    for i in range(cfg.n_layers):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (E,), b + "norm1.bias": (E,), b + "attn.qkv.weight": (3 * E, E)})
        if cfg.qkv_bias:
            shapes[b + "attn.qkv.bias"] = (3 * E,)
        shapes.update({b + "attn.proj.weight": (E, E), b + "attn.proj.bias": (E,),
                       b + "norm2.weight": (E,), b + "norm2.bias": (E,),
                       b + "mlp.fc.weight": (4 * E, E), b + "mlp.fc.bias": (4 * E,),
                       b + "mlp.proj.weight": (E, 4 * E), b + "mlp.proj.bias": (E,)})
    shapes.update({"final_norm.weight": (E,), "final_norm.bias": (E,)})
    if classes is not None:
        shapes.update({"out_head.weight": (classes, E), "out_head.bias": (classes,)})
    elif not cfg.tie_weights:
        shapes["out_head.weight"] = (V, E)
    return shapes


def check_fits(cfg, path, classes=None):
    """Raise ValueError unless the weights file ``path`` holds exactly the tensors of ``GPT(cfg)`` (names,
    shapes, count). Reads only the file's header, so a config asking for a huge model costs nothing."""
    header, _ = serialize.read_header(path)
    shapes = {k: tuple(int(n) for n in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    blocks = {int(m.group(1)) for m in map(re.compile(r"blocks\.(\d+)\.").match, shapes) if m}
    if blocks != set(range(cfg.n_layers)):
        held = f"blocks 0..{max(blocks)}" if blocks == set(range(len(blocks))) and blocks else \
            f"{len(blocks)} block indices" + (f" up to {max(blocks)}" if blocks else "")
        raise ValueError(f"{path} does not fit its config: n_layers is {cfg.n_layers}, the file holds {held}")
    _compare(path, shapes, param_shapes(cfg, classes), "its config")


def _compare(path, have, want, what):
    """Raise ValueError naming the tensors missing from ``have``, unexpected in it, or of another shape."""
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing[:5])}"] if missing else []) + \
                ([f"unexpected {', '.join(unexpected[:5])}"] if unexpected else [])
        raise ValueError(f"{path} does not fit {what} (another model shape?): {'; '.join(parts)}")
    for name, shape in want.items():
        if tuple(have[name]) != tuple(shape):
            raise ValueError(f"{path}: {name} has shape {tuple(have[name])}, {what} expects {tuple(shape)} "
                             "(a checkpoint of another model shape?)")


def _config(meta, path):
    try:
        return config_from_dict(meta["config"])
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path} is damaged: {e}") from None


def load_config(meta, folder=None):
    """The model config (GPTConfig, LlamaConfig or Qwen3Config) of checkpoint ``meta``; with ``folder``,
    first checked against the weights file there (a classifier's head has as many rows as its labels)."""
    cfg = _config(meta, os.path.join(folder, META) if folder is not None else META)
    if folder is not None:
        classes = len(meta.get("labels", [])) if meta.get("task") == "classify" else None
        check_fits(cfg, file_path(folder, meta, MODEL), classes)
    return cfg


def out_of_memory(what, cfg):
    """The one-line error for a MemoryError while building or loading the GPT of ``cfg``."""
    n = cfg.num_parameters()
    return files.oserror(OSError, errno.ENOMEM,
                         f"not enough memory for {what}: a GPT of {n:,} parameters needs {n * 4 / 2**30:.1f} GiB "
                         "as float32 (use a smaller model, or a machine with more memory)")


def load_model(folder, meta=None, device="cpu"):
    """The model stored in ``folder`` (a GPT, Llama or Qwen3, as its config says), and its meta dict."""
    meta = meta or read_meta(folder)
    cfg = load_config(meta, folder)
    try:
        model = build_model(cfg, init=False)
        load_weights(model, file_path(folder, meta, MODEL))
    except MemoryError:
        raise out_of_memory(f"the checkpoint {folder}", cfg) from None
    if device != "cpu":
        model.to(device)
    return model, meta


def load_weights(model, path):
    """Copy model.safetensors into ``model``; errors name the missing, unexpected or mis-shaped tensor."""
    state = tt.load(path)
    own = dict(model.named_parameters())
    _compare(path, {k: v.shape for k, v in state.items()}, {k: p.shape for k, p in own.items()}, "this model")
    for name, p in own.items():
        p.data = np.ascontiguousarray(state[name], dtype=p.dtype)


def load_optimizer(folder, optimizer, meta=None):
    path = file_path(folder, meta or read_meta(folder), OPTIMIZER)
    arrays = tt.load(path)
    meta = serialize.load_metadata(path)
    optimizer.load_state_dict(optimizer_state_from_arrays(arrays, meta))


# ----- the number of processes that wrote a checkpoint -----

def check_processes(meta, world, where):
    """Refuse (TrainingError) to resume ``meta``, a checkpoint written by another number of processes than
    ``world``: the batch shares and dropout streams of a run belong to its number. None: a new run."""
    saved = saved_world(meta, where)
    if meta is not None and saved != world:
        how = resume_command(saved, where) + (", without mpiexec" if saved == 1 else "")
        raise TrainingError(f"{where} was trained by {_processes(saved)} and this is {_processes(world)}: "
                            f"resume it with {how}. The batch shares and dropout streams of a run "
                            "belong to its number of processes: another number would not continue it exactly")


def saved_world(meta, where="checkpoint.json"):
    """How many processes trained the checkpoint ``meta`` (1 when it does not say); None when ``meta`` is."""
    if meta is None:
        return None
    record = meta.get("parallel")
    if record is None:
        return 1
    world, states = (record.get("world_size"), record.get("rng")) if isinstance(record, dict) else (None, None)
    if type(world) is not int or world < 1 or not isinstance(states, list) or len(states) != world:
        raise TrainingError(f"cannot resume from {where}: checkpoint.json's 'parallel' field is damaged "
                            "(it needs world_size and one random state per process)")
    return world


def _processes(n):
    return "one process" if n == 1 else f"{n} processes"


def resume_command(world, out):
    """The command that continues the run in folder ``out``, trained by ``world`` processes."""
    launch = "python -m gpt train" if world == 1 else f"mpiexec -n {world} python -m gpt train"
    return f"{launch} --resume --out {shlex.quote(out)}"
