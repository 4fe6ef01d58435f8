"""The settings of a pretraining run: one dataclass, built once from the command line (or by a caller of
``gpt.train``), checked once, and stored in checkpoint.json under "args".

    TrainSettings     every flag of ``python -m gpt train`` as a field (``gpt.TrainConfig`` is the same class)
    .resolved()       with the defaults that depend on other settings filled in (the preset's lr)
    .check()          every setting checked before any work, each mistake said in the command line's words
    resumed(...)      the settings a checkpoint was trained with, and the flags that may change on --resume
    build_config(...) the model's config: the family's preset with the model flags given
"""
import dataclasses
import os
import re
from dataclasses import dataclass

from ..errors import TrainingError
from ..models import ARCHS, GPTConfig, config_class
from . import checkpoint as ckpt


@dataclass
class TrainSettings:
    """Every setting of a pretraining run (stored in checkpoint.json under "args"); ``gpt.TrainConfig``."""
    data: str = None                 # a UTF-8 text file; None: the CPython help topics
    out: str = "runs/tiny"
    arch: str = "gpt2"               # the model family: gpt2, llama or qwen3 (gpt/models/__init__.py)
    preset: str = "tiny"             # a preset of that family
    tokenizer: str = None            # a bpe tokenizer file, a tokenizer.json, or a folder with GPT-2's files
    vocab_size: int = None           # for a tokenizer trained here; None: TRAIN_VOCAB's, else the preset's
    context_length: int = None       # model overrides; None: the preset's
    emb_dim: int = None
    n_layers: int = None
    n_heads: int = None
    n_kv_heads: int = None           # llama, qwen3 only
    drop_rate: float = None
    qkv_bias: bool = None
    tie_weights: bool = None
    max_steps: int = 530             # the compute of 600 steps at vocabulary 1024 (see TRAIN_VOCAB)
    epochs: float = None             # instead of max_steps: passes over the training windows
    batch_size: int = 16
    grad_accum: int = 1
    stride: int = None               # None: context_length (windows do not overlap)
    val_fraction: float = 0.1
    lr: float = None                 # None: the preset's (PRESET_LR)
    min_lr: float = None             # None: lr / 10
    warmup_steps: int = None         # None: 5% of max_steps (at most 100)
    schedule: str = "cosine"         # or "constant"
    weight_decay: float = 0.1
    beta2: float = 0.95              # AdamW's second-moment decay (PyTorch's default is 0.999)
    decay_all: bool = False          # decay every parameter (as the book does) instead of matrices only
    grad_clip: float = 1.0           # 0: no clipping
    eval_every: int = 100
    eval_batches: int = 8
    save_every: int = 100
    sample_prompt: str = "The"
    sample_tokens: int = 40
    seed: int = 1234
    init: str = "gpt2"               # or "torch": PyTorch's default layer init, as the book's code has it
    device: str = "cpu"
    dtype: str = "float32"           # or "bfloat16" (cuda) / "float16": tt.autocast, float32 master weights
    zero: bool = False               # under mpiexec: each rank keeps 1/N of AdamW's moments (ZeRO-1)

    # flags that may change when resuming (the rest must match the checkpoint)
    RESUMABLE = ("max_steps", "epochs", "eval_every", "eval_batches", "save_every", "sample_prompt",
                 "sample_tokens", "device", "out", "dtype", "zero")
    # the peak learning rate when --lr is not given: larger models need smaller steps. The GPT-2 sizes
    # take the rates the GPT-3 paper (Table 2.1) used for models of 125M, 350M, 760M and 1.3B parameters;
    # the tiny model (about a million) trains well at 2e-3.
    PRESET_LR = {"tiny": 2e-3, "gpt2-small": 6e-4, "gpt2-medium": 3e-4, "gpt2-large": 2.5e-4, "gpt2-xl": 2e-4,
                 "qwen3-0.6b": 3e-4, "llama3.2-1b": 3e-4, "qwen3-1.7b": 3e-4, "llama3.2-3b": 3e-4,
                 "qwen3-4b": 2e-4, "llama3-8b": 2e-4, "qwen3-8b": 2e-4}

    # the vocabulary of a tokenizer trained here, by preset, where it differs from the preset's model:
    # at 2,048 tokens most words are whole tokens, so the tiny model's samples hold far more real words
    # (benchmarks/sample_words_bench.py); its larger output layer costs 12% more per step, paid for
    # by 530 steps instead of 600
    TRAIN_VOCAB = {"tiny": 2048}

    def to_dict(self):
        return dataclasses.asdict(self)

    def resolved(self):
        """A copy with the defaults that depend on other settings filled in (the preset's lr)."""
        lr = self.lr if self.lr is not None else self.PRESET_LR.get(self.preset, self.PRESET_LR["tiny"])
        return dataclasses.replace(self, lr=lr)

    def check(self):
        """Raise TrainingError at the first setting that cannot run (before any work is done)."""
        _check(self)


TrainConfig = TrainSettings          # the public name since the first version (gpt.TrainConfig)


_MODEL_FLAGS = ("context_length", "emb_dim", "n_layers", "n_heads", "n_kv_heads", "drop_rate", "qkv_bias",
                "tie_weights")


def build_config(args, vocab_size):
    """The preset's config (of ``args.arch``'s family) with the model flags given; a mistake is said in
    flags (``--n-heads``)."""
    cls = config_class(args.arch)
    over = {k: getattr(args, k) for k in _MODEL_FLAGS if getattr(args, k) is not None}
    known = {f.name for f in dataclasses.fields(cls)}
    for name in over:
        if name not in known:
            raise TrainingError(f"--{name.replace('_', '-')} does not apply to --arch {args.arch}")
    try:
        return cls.preset(args.preset, vocab_size=vocab_size, **over)
    except ValueError as e:
        raise TrainingError(_in_flags(str(e), cls)) from None


def _in_flags(message, cls=GPTConfig):
    """A config's message in the command line's words: ``emb_dim`` -> ``--emb-dim``."""
    message = message.removeprefix(f"{cls.__name__}: ")
    names = "|".join(f.name for f in dataclasses.fields(cls))
    return re.sub(rf"\b({names})\b", lambda m: "--" + m.group(1).replace("_", "-"), message)


def check_device_available(device):
    """A TrainingError (one line on the command line) before any work when --device cuda cannot run here."""
    if device != "cpu":
        from tinytensor import backend
        try:
            backend.require_cuda()
        except RuntimeError as exc:
            raise TrainingError(f"--device {device}: {exc}") from None


DTYPES = ("float32", "bfloat16", "float16")


def check_dtype(dtype, device):
    """A TrainingError when --dtype cannot run on --device (bfloat16 needs a GPU: NumPy has none)."""
    if dtype not in DTYPES:
        raise TrainingError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "bfloat16":
        if device == "cpu":
            raise TrainingError("--dtype bfloat16 needs --device cuda (NumPy has no bfloat16); on the CPU use "
                                "--dtype float16 (slow) or float32")
        from tinytensor import amp
        try:
            amp.bfloat16_dtype()
        except RuntimeError as exc:
            raise TrainingError(f"--dtype bfloat16: {exc}") from None


def _check(settings):
    positive = ("max_steps", "batch_size", "grad_accum", "eval_every", "eval_batches", "save_every")
    for name in positive:
        v = getattr(settings, name)
        if not isinstance(v, int) or v <= 0:
            raise TrainingError(f"--{name.replace('_', '-')} must be a positive integer, got {v!r}")
    if settings.epochs is not None and not settings.epochs > 0:
        raise TrainingError(f"--epochs must be positive, got {settings.epochs}")
    if not 0 < settings.lr < float("inf"):
        raise TrainingError(f"--lr must be a positive number, got {settings.lr}")
    if settings.min_lr is not None and not 0 <= settings.min_lr <= settings.lr:
        raise TrainingError(f"--min-lr must be between 0 and --lr, got {settings.min_lr}")
    if not 0 <= settings.beta2 < 1:
        raise TrainingError(f"--beta2 must be in [0, 1), got {settings.beta2}")
    if not (settings.weight_decay >= 0 and settings.grad_clip >= 0):
        raise TrainingError("--weight-decay and --grad-clip must be >= 0")
    if not 0 <= settings.val_fraction < 1:
        raise TrainingError(f"--val-fraction must be in [0, 1), got {settings.val_fraction}")
    if not isinstance(settings.seed, int) or settings.seed < 0:
        raise TrainingError(f"--seed must be an integer >= 0, got {settings.seed!r}")
    if settings.schedule not in ("cosine", "constant"):
        raise TrainingError(f"--schedule must be cosine or constant, got {settings.schedule!r}")
    if settings.device not in ("cpu", "cuda") and not str(settings.device).startswith("cuda:"):
        raise TrainingError(f"--device must be cpu or cuda, got {settings.device!r}")
    check_device_available(settings.device)
    check_dtype(settings.dtype, settings.device)
    if settings.init not in ("gpt2", "torch"):
        raise TrainingError(f"--init must be gpt2 or torch, got {settings.init!r}")
    if settings.arch not in ARCHS:
        raise TrainingError(f"--arch must be one of {', '.join(ARCHS)}, got {settings.arch!r}")
    presets = config_class(settings.arch).PRESETS
    if settings.preset not in presets:
        raise TrainingError(f"unknown preset {settings.preset!r} for --arch {settings.arch}: choose one of "
                            f"{', '.join(presets)}")
    vocab = settings.vocab_size or config_class(settings.arch).preset(settings.preset).vocab_size
    build_config(settings, vocab)                    # the model flags, checked before any work


def resumed(settings, given):
    """The stored arguments of the checkpoint in settings.out, with the flags the user passed that may change."""
    meta = ckpt.read_meta(settings.out, repair=True, resume=True)   # this run owns --out: finish a cut-off save
    saved = ckpt.args_from(meta, TrainSettings, os.path.join(settings.out, ckpt.META))
    for name in given:
        mine, theirs = getattr(settings, name), getattr(saved, name)
        if name in TrainSettings.RESUMABLE or name == "data":      # the text itself is compared by its digest
            setattr(saved, name, mine)
        elif mine != theirs and not (name == "tokenizer" and mine and theirs
                                    and os.path.realpath(mine) == os.path.realpath(theirs)):
            raise TrainingError(f"--{name.replace('_', '-')} {mine} differs from the checkpoint's {theirs}; "
                                "a resumed run keeps its settings (start a new --out to change them)")
    saved.out = settings.out
    return saved, meta
