"""checkpoint.json's fields and types in one table, and the checks that hold a file to it.

A checkpoint folder may come from anywhere, so every field is checked before it is used: the wrong
type gives one line naming the file and the field (``args.lr must be a finite number, not "fast"``)
instead of a traceback far away, and a file name must be a plain name in the folder.
"""
import dataclasses
import json
import math

from .. import files

# checkpoint.json, field by field. "x.y" is y inside x, "x[]" every element of the list x, "x.*" every value
# of the object x. needed: "always", "resume" (to continue training), or "" (optional). A type ending
# in "?" may also be null. Fields not listed are kept and not read.
#   field                         type       needed    what it holds
SCHEMA = (
    ("format",                    "text",    "always", "tinytensor-gpt-checkpoint"),
    ("version",                   "count",   "always", "the format version"),
    ("step",                      "count",   "always", "optimizer steps taken"),
    ("config",                    "object",  "always", "the model config's fields (checked by its from_dict)"),
    ("config.arch",               "text",    "",       "gpt2 (also when absent), llama or qwen3 (gpt/models/)"),
    ("files",                     "object",  "",       "name -> its staged copy while a save is under way"),
    ("files.*",                   "name",    "",       "a plain file name in the folder"),
    ("tokenizer",                 "name",    "",       "the tokenizer file, a plain name in the folder"),
    ("max_steps",                 "count",   "",       "the run's planned steps"),
    ("args",                      "object",  "resume", "the training settings (checked by args_from)"),
    ("data",                      "object",  "resume", "what the run trains on"),
    ("data.corpus",               "text",    "",       "the --data path, or the default corpus's name"),
    ("data.digest",               "text",    "resume", "SHA-256 (16 hex digits) of the text"),
    ("data.tokens",               "count",   "",       "its length in tokens"),
    ("data.tokenizer",            "text",    "",       "digest of the tokenizer (gpt.data.tokenizer_digest)"),
    ("data.ids",                  "text",    "",       "digest of the token ids (gpt.data.ids_digest)"),
    ("data.sampler",              "object",  "resume", "the batch sampler's position"),
    ("data.sampler.epoch",        "count",   "resume", ""),
    ("data.sampler.position",     "count",   "resume", ""),
    ("data.sampler.seed",         "int",     "",       ""),
    ("rng",                       "object",  "resume", "the library's random generator state"),
    ("rng.bit_generator",         "text",    "resume", ""),
    ("rng.state",                 "object",  "resume", ""),
    ("grad_scaler",               "object",  "",       "float16 loss scaling (tt.GradScaler.state_dict)"),
    ("history",                   "list",    "",       "one entry per evaluation"),
    ("history[]",                 "object",  "",       ""),
    ("history[].step",            "count",   "",       ""),
    ("history[].train_loss",      "real?",   "",       "(NaN allowed: a diverged evaluation)"),
    ("history[].val_loss",        "real?",   "",       ""),
    ("history[].elapsed",         "number",  "",       "seconds of training so far"),
    ("elapsed",                   "number",  "",       "seconds of training so far, across resumes"),
    ("task",                      "text",    "",       "classify or instruct (fine-tuned models)"),
    ("labels",                    "list",    "",       "a classifier's labels, in class-id order"),
    ("labels[]",                  "text",    "",       ""),
    ("max_length",                "count",   "",       "a classifier's longest input"),
    ("pad_id",                    "count",   "",       "a classifier's padding id"),
    ("base",                      "text",    "",       "what a fine-tuned model started from"),
    ("train_mode",                "text",    "",       "what fine-tuning trained"),
    ("parallel",                  "object",  "",       "a run of mpiexec -n N: N and each rank's random state"),
    ("parallel.world_size",       "count",   "",       "(checked with the states by gpt/training/checkpoint.py)"),
    ("parallel.rng",              "list",    "",       "one generator state per rank, in rank order"),
)
_TYPES = {"text": (lambda v: isinstance(v, str), "a string"),
          "name": (lambda v: isinstance(v, str), "a plain file name"),
          "count": (lambda v: type(v) is int and v >= 0, "a whole number >= 0"),
          "int": (lambda v: type(v) is int, "a whole number"),
          "number": (lambda v: type(v) in (int, float) and math.isfinite(v), "a finite number"),
          "real": (lambda v: type(v) in (int, float), "a number"),
          "object": (lambda v: isinstance(v, dict), "a JSON object"),
          "list": (lambda v: isinstance(v, list), "a JSON list")}


def _field_values(obj, parts, where=""):
    """(dotted place, value) of every ``parts`` path in ``obj``; ``...`` marks a missing field whose parent exists."""
    if not parts:
        yield where, obj
        return
    head, rest = parts[0], parts[1:]
    each = head.endswith("[]")
    name = head[:-2] if each else head
    if not isinstance(obj, dict):
        return                                           # the parent's own row reports its type
    keys = list(obj) if name == "*" else [name]
    for key in keys:
        place = f"{where}.{key}" if where else key
        if key not in obj:
            yield place, ...
        elif each:
            if isinstance(obj[key], list):
                for i, item in enumerate(obj[key]):
                    yield from _field_values(item, rest, f"{place}[{i}]") if rest else [(f"{place}[{i}]", item)]
        else:
            yield from _field_values(obj[key], rest, place)


def check_schema(meta, path, resume=False):
    """Raise ValueError naming ``path`` and the first field of ``meta`` that does not fit ``SCHEMA``."""
    for field, kind, needed, _ in SCHEMA:
        nullable = kind.endswith("?")
        test, description = _TYPES[kind.rstrip("?")]
        for place, value in _field_values(meta, field.split(".")):
            if value is ...:
                if needed == "always" or (needed == "resume" and resume):
                    hint = " (it was not written by `python -m gpt train`, so it cannot be resumed)" \
                        if needed == "resume" else ""
                    raise ValueError(f"{path} is damaged: field {place!r} is missing{hint}")
                continue
            if (value is None and nullable) or test(value):
                if kind == "name":
                    files.plain_name(value, f"{path} field {place!r}")
                continue
            shown = json.dumps(value)[:60] if not isinstance(value, float) else repr(value)
            raise ValueError(f"{path} is damaged: field {place!r} must be {description}"
                             f"{' or null' if nullable else ''}, not {shown}")


_PLAIN = {str: (lambda v: isinstance(v, str), "a string"),
          int: (lambda v: type(v) is int, "a whole number"),
          float: (lambda v: type(v) in (int, float) and math.isfinite(v), "a finite number"),
          bool: (lambda v: type(v) is bool, "true or false")}


def args_from(meta, cls, path="checkpoint.json"):
    """The dataclass ``cls`` (e.g. TrainConfig) built from ``meta["args"]``, each value checked against the
    field's type (str, int, float, bool; null where the default is None). Unknown names are ignored."""
    args = meta.get("args")
    if not isinstance(args, dict):
        raise ValueError(f"{path} is damaged: field 'args' must be a JSON object of training settings")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in args:
            continue
        value = args[f.name]
        kind = f.type if isinstance(f.type, type) else {"str": str, "int": int, "float": float, "bool": bool}.get(f.type)
        if kind in _PLAIN and not (value is None and f.default is None):
            test, description = _PLAIN[kind]
            if not test(value):
                raise ValueError(f"{path} is damaged: field 'args.{f.name}' must be {description}, "
                                 f"not {json.dumps(value)[:60]}")
        values[f.name] = value
    return cls(**values)
