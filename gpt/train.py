"""Pretraining: prepare, evaluate, loop (the split of the book's chapter 5, in the style of nanoGPT).

    prepare(a)          text -> tokenizer -> windows and batches -> model and AdamW   (or all of them
                        as a checkpoint left them, to resume)
    evaluate(...)       mean cross-entropy over some batches (the book's calc_loss_loader);
    evaluate_run(run)   train and validation loss and a sample, added to the run's history
    loop(run, stop)     for each step: lr from the schedule -> train_step (grad_accum micro-batches,
                        clipping, AdamW, the NaN guard; gpt/step.py) -> every eval_every steps an
                        evaluation, every save_every a checkpoint; until max_steps or a stop request
    train(a)            the three in order, with Ctrl-C / SIGTERM / SIGHUP / a closed pipe saving first

Everything a run depends on (weights, optimizer moments, data position, random state, step) goes into
the checkpoint, so ``resume`` continues bit for bit as if the run had never stopped.
"""
import dataclasses
import os
import re
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import optim, random

from . import checkpoint as ckpt
from . import curves, parallel_run, runlock
from .config import GPTConfig
from .families import ARCHS, build_model, config_class, describe
from .corpus import NAME as CORPUS_NAME
from .data import (BatchSampler, SlidingWindowDataset, data_digests, default_corpus, encode_cached, eval_batches,
                   read_text, text_digest, train_val_split)
from .errors import RunFailed, TrainingError
from .generate import generate
from .model import LanguageModel
from .metrics_log import NAME as METRICS, PRETRAIN_COLUMNS, SAMPLES, MetricsLog, SamplesLog
from .progress import ProgressBar, SafeOutput, format_seconds
from .run_folder import claim_out
from .schedule import lr_at
from .step import NonFiniteError, evaluating, train_step
from .stopping import StopFlag
from .textout import indented


@dataclass
class TrainConfig:
    """Every setting of a training run (stored in checkpoint.json under "args")."""
    data: str = None                 # a UTF-8 text file; None: the CPython help topics
    out: str = "runs/tiny"
    arch: str = "gpt2"               # the model family: gpt2, llama or qwen3 (gpt/families.py)
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


def param_groups(model, weight_decay, decay_all=False):
    """AdamW groups: weight decay on the weight matrices; none on biases, norms and embeddings."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if decay_all or (p.ndim >= 2 and not name.startswith(("tok_emb.", "pos_emb."))):
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def load_tokenizer(spec):
    """A bpe tokenizer from a saved file, a Hugging Face tokenizer.json, or GPT-2's from a folder holding
    encoder.json and vocab.bpe."""
    import bpe
    if spec.endswith(".json") and os.path.isfile(spec):
        return bpe.from_hf(spec)
    if os.path.isdir(spec):
        enc, merges = os.path.join(spec, "encoder.json"), os.path.join(spec, "vocab.bpe")
        if not (os.path.isfile(enc) and os.path.isfile(merges)):
            raise TrainingError(f"tokenizer folder {spec} needs encoder.json and vocab.bpe (GPT-2's files)")
        return bpe.gpt2(enc, merges)
    if not os.path.isfile(spec):
        raise TrainingError(f"no such tokenizer file or folder: {spec}")
    return bpe.Tokenizer.load(spec)


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


def _check_args(a):
    positive = ("max_steps", "batch_size", "grad_accum", "eval_every", "eval_batches", "save_every")
    for name in positive:
        v = getattr(a, name)
        if not isinstance(v, int) or v <= 0:
            raise TrainingError(f"--{name.replace('_', '-')} must be a positive integer, got {v!r}")
    if a.epochs is not None and not a.epochs > 0:
        raise TrainingError(f"--epochs must be positive, got {a.epochs}")
    if not 0 < a.lr < float("inf"):
        raise TrainingError(f"--lr must be a positive number, got {a.lr}")
    if a.min_lr is not None and not 0 <= a.min_lr <= a.lr:
        raise TrainingError(f"--min-lr must be between 0 and --lr, got {a.min_lr}")
    if not 0 <= a.beta2 < 1:
        raise TrainingError(f"--beta2 must be in [0, 1), got {a.beta2}")
    if not (a.weight_decay >= 0 and a.grad_clip >= 0):
        raise TrainingError("--weight-decay and --grad-clip must be >= 0")
    if not 0 <= a.val_fraction < 1:
        raise TrainingError(f"--val-fraction must be in [0, 1), got {a.val_fraction}")
    if not isinstance(a.seed, int) or a.seed < 0:
        raise TrainingError(f"--seed must be an integer >= 0, got {a.seed!r}")
    if a.schedule not in ("cosine", "constant"):
        raise TrainingError(f"--schedule must be cosine or constant, got {a.schedule!r}")
    if a.device not in ("cpu", "cuda") and not str(a.device).startswith("cuda:"):
        raise TrainingError(f"--device must be cpu or cuda, got {a.device!r}")
    check_device_available(a.device)
    check_dtype(a.dtype, a.device)
    if a.init not in ("gpt2", "torch"):
        raise TrainingError(f"--init must be gpt2 or torch, got {a.init!r}")
    if a.arch not in ARCHS:
        raise TrainingError(f"--arch must be one of {', '.join(ARCHS)}, got {a.arch!r}")
    presets = config_class(a.arch).PRESETS
    if a.preset not in presets:
        raise TrainingError(f"unknown preset {a.preset!r} for --arch {a.arch}: choose one of {', '.join(presets)}")
    build_config(a, a.vocab_size or config_class(a.arch).preset(a.preset).vocab_size)   # model flags: before any work


def _resume_args(a, given):
    """The stored arguments of the checkpoint in a.out, with the flags the user passed that may change."""
    meta = ckpt.read_meta(a.out, repair=True, resume=True)   # this run owns the folder: finish an interrupted save
    saved = ckpt.args_from(meta, TrainConfig, os.path.join(a.out, ckpt.META))
    for name in given:
        mine, theirs = getattr(a, name), getattr(saved, name)
        if name in TrainConfig.RESUMABLE or name == "data":      # the text itself is compared by its digest
            setattr(saved, name, mine)
        elif mine != theirs and not (name == "tokenizer" and mine and theirs
                                    and os.path.realpath(mine) == os.path.realpath(theirs)):
            raise TrainingError(f"--{name.replace('_', '-')} {mine} differs from the checkpoint's {theirs}; "
                                "a resumed run keeps its settings (start a new --out to change them)")
    saved.out = a.out
    return saved, meta


# ----- prepare -----

@dataclass
class Run:
    """A prepared run: what the loop reads and changes (step, history), and what a checkpoint records."""
    a: TrainConfig
    cfg: GPTConfig
    tok: object
    corpus: str                      # the text's name, for messages
    digest: str                      # its hash, checked when resuming
    n_tokens: int
    train_set: SlidingWindowDataset
    val_set: SlidingWindowDataset    # None when the text is too short for one validation window
    sampler: BatchSampler
    model: LanguageModel             # a GPT, Llama or Qwen3
    optimizer: optim.AdamW
    max_steps: int
    warmup: int
    min_lr: float
    step: int = 0
    history: list = field(default_factory=list)
    resumed: bool = False
    saved_step: object = "none"      # the step of the last checkpoint written (or found), for messages
    elapsed_before: float = 0.0      # training seconds of the earlier parts of a resumed run
    started: float = field(default_factory=time.perf_counter)
    last_loss: float = None          # the mean loss of the last step
    digests: dict = field(default_factory=dict)   # of the tokenizer and the token ids, checked when resuming
    scaler: tt.GradScaler = None     # loss scaling for --dtype float16 (disabled otherwise)
    skipped: int = 0                 # float16 steps skipped in this session (inf/nan gradients), and how
    skipped_in_a_row: int = 0        # many of the latest steps were
    log: MetricsLog = None           # metrics.csv: a row per step and per evaluation (set by ``train``)
    samples: SamplesLog = None       # samples.jsonl: each evaluation's sample (set by ``train``)
    team: parallel_run.Team = parallel_run.ALONE  # the processes of mpiexec training it (gpt/parallel_run.py)

    @property
    def tokens_per_step(self):
        return self.a.batch_size * self.cfg.context_length * self.a.grad_accum

    def lr(self, step):
        """The learning rate of step ``step`` (0-based)."""
        return lr_at(step, self.max_steps, self.a.lr, self.min_lr, self.warmup, self.a.schedule)

    def elapsed(self):
        return self.elapsed_before + time.perf_counter() - self.started

    def meta(self):
        """checkpoint.json's contents for the run as it is now."""
        return {"step": self.step, "max_steps": self.max_steps, "config": self.cfg.to_dict(), "args": self.a.to_dict(),
                "data": {"corpus": self.corpus, "digest": self.digest, "tokens": self.n_tokens,
                         "sampler": self.sampler.state_dict(), **self.digests},
                "rng": random.get_state(), "tokenizer": ckpt.TOKENIZER, "history": self.history,
                "grad_scaler": self.scaler.state_dict(), "elapsed": round(self.elapsed(), 2)}

    def save(self):
        extra, optimizer = self.team.checkpoint(self)      # under mpiexec: every rank calls it, rank 0 writes
        if self.team.leader:
            try:
                ckpt.save(self.a.out, self.model, optimizer, {**self.meta(), **extra})
            except NonFiniteError as e:       # the previous checkpoint is kept (checkpoint.save writes nothing)
                raise RunFailed(f"{e}; stopped without saving it. The last good checkpoint (step "
                                f"{self.saved_step}) is in {self.a.out}") from None
        self.saved_step = self.step


def prepare(a, meta=None, overwrite=False, say=print):
    """Everything a run needs, made fresh in ``a.out`` or, given ``meta`` (the checkpoint's record), as
    the checkpoint left it. ``a`` is checked and resolved (see ``train``). Prints what it built."""
    text = read_text(a.data) if a.data else default_corpus()     # a missing --data fails before any folder is made
    if meta is None:
        claim_out(a.out, overwrite)
    corpus = a.data or CORPUS_NAME
    digest = text_digest(text)
    if meta is not None and meta["data"]["digest"] != digest:
        raise TrainingError(f"{corpus} is not the text this checkpoint was trained on (its contents changed)")
    tok = _tokenizer(a, text, meta, say)
    if meta is not None:
        try:
            cfg = ckpt.load_config(meta, a.out)
        except ValueError as e:
            raise TrainingError(f"cannot resume from {a.out}: {e}") from None
    else:
        cfg = build_config(a, tok.n_vocab)
    if cfg.vocab_size < tok.n_vocab:
        raise TrainingError(f"the model's vocabulary ({cfg.vocab_size}) is smaller than the tokenizer's ({tok.n_vocab})")

    ids = encode_cached(text, tok)                # cached in the cache folder (gpt/cache.py)
    digests = data_digests(tok, ids, meta["data"] if meta is not None else None)
    train_set, val_set, sampler = _datasets(a, ids, cfg.context_length)
    max_steps = a.max_steps
    if a.epochs is not None:
        max_steps = max(1, int(a.epochs * sampler.batches_per_epoch) // a.grad_accum)
    model, optimizer = _model_and_optimizer(a, cfg, meta)
    run = Run(a, cfg, tok, corpus, digest, int(len(ids)), train_set, val_set, sampler, model, optimizer, max_steps,
              warmup=a.warmup_steps if a.warmup_steps is not None else min(100, max_steps // 20),
              min_lr=a.min_lr if a.min_lr is not None else a.lr / 10, digests=digests,
              scaler=tt.GradScaler(enabled=a.dtype == "float16"))
    if meta is not None:
        _restore(run, meta)
    n_train = len(train_set.ids)
    family = "" if cfg.ARCH == "gpt2" else f"{cfg.ARCH}, "
    kv = f" ({cfg.n_kv_heads} kv)" if cfg.n_kv_heads != cfg.n_heads else ""
    say(f"model: {family}{cfg.n_layers} layers, {cfg.n_heads} heads{kv}, emb {cfg.emb_dim}, context "
        f"{cfg.context_length}, vocab {cfg.vocab_size} = {model.num_parameters():,} parameters\n")
    say(f"data: {corpus}: {len(ids):,} tokens ({n_train:,} train / {len(ids) - n_train:,} val), "
        f"{len(train_set)} windows, {sampler.batches_per_epoch} batches of {a.batch_size} per epoch\n")
    if run.resumed:
        say(f"resuming {a.out} at step {run.step} of {max_steps}\n")
        if run.step >= max_steps:
            say(f"nothing left to do: the run has taken its {max_steps} steps (pass --max-steps N, more than "
                f"{max_steps}, to train it further)\n")
    return run


def _datasets(a, ids, L):
    """Training windows (every ``a.stride`` tokens), validation windows (None when the held-out part is
    shorter than one), and the sampler that draws the training batches."""
    train_ids, val_ids = train_val_split(ids, a.val_fraction)
    train_set = SlidingWindowDataset(train_ids, L, a.stride or L)
    val_set = SlidingWindowDataset(val_ids, L, L)
    try:
        sampler = BatchSampler(train_set, a.batch_size, seed=a.seed)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    return train_set, val_set if len(val_set) else None, sampler


def _model_and_optimizer(a, cfg, meta):
    """The GPT (seeded; the checkpoint's weights when resuming) on its device, and its AdamW."""
    tt.manual_seed(a.seed)
    model = build_model(cfg, init=a.init)
    if meta is not None:
        _resume_from(a.out, ckpt.load_weights, model, os.path.join(a.out, ckpt.MODEL))
    if a.device != "cpu":
        model.to(a.device)
    model.train()
    optimizer = optim.AdamW(param_groups(model, a.weight_decay, a.decay_all), lr=a.lr, betas=(0.9, a.beta2),
                            weight_decay=a.weight_decay)
    return model, optimizer


def _tokenizer(a, text, meta, say):
    """The run's tokenizer: the checkpoint's, the one --tokenizer names, or one trained here on ``text``."""
    tok_path = os.path.join(a.out, ckpt.TOKENIZER)
    if meta is not None:
        return load_tokenizer(ckpt.tokenizer_path(a.out, meta))
    if a.tokenizer:
        tok = load_tokenizer(a.tokenizer)
        tok.save(tok_path)
        return tok
    import bpe
    vocab = a.vocab_size or a.TRAIN_VOCAB.get(a.preset) or config_class(a.arch).preset(a.preset).vocab_size
    if vocab > 8192:
        raise TrainingError(f"preset {a.preset} has a vocabulary of {vocab}: pass --tokenizer DIR with GPT-2's "
                            "encoder.json and vocab.bpe, or --vocab-size to train a smaller tokenizer here")
    if vocab < 257:
        raise TrainingError(f"--vocab-size must be at least 257 (256 bytes + <|endoftext|>), got {vocab}")
    t0 = time.perf_counter()
    tok = bpe.train(text, vocab, special_tokens=("<|endoftext|>",))
    tok.save(tok_path)
    say(f"trained a BPE tokenizer of {tok.n_vocab} tokens in {time.perf_counter() - t0:.1f}s -> {tok_path}\n")
    return tok


def _resume_from(out, load, *args):
    try:
        load(*args)
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise TrainingError(f"cannot resume from {out}: {e}") from None


def _restore(run, meta):
    """Optimizer moments, data position, random state and history from the checkpoint (weights are in)."""
    _resume_from(run.a.out, ckpt.load_optimizer, run.a.out, run.optimizer)
    run.step = run.saved_step = int(meta["step"])
    run.sampler.load_state_dict(meta["data"]["sampler"])
    random.set_state(meta["rng"])
    run.history = meta.get("history", [])
    if run.a.dtype == "float16" and isinstance(meta.get("grad_scaler"), dict):
        try:
            run.scaler.load_state_dict({**meta["grad_scaler"], "enabled": True})
        except ValueError as e:
            raise TrainingError(f"cannot resume from {run.a.out}: {e}") from None
    run.elapsed_before = meta.get("elapsed", run.history[-1]["elapsed"] if run.history else 0.0)
    run.resumed = True


# ----- evaluate -----

def calc_loss_batch(model, batch, device="cpu", dtype="float32"):
    """Mean next-token cross-entropy of one (inputs, targets) batch: the loss each step minimises
    (``dtype`` bfloat16 or float16: under ``tt.autocast``; the loss itself is float32 either way)."""
    x, y = batch
    with tt.autocast(dtype=dtype if dtype != "float32" else "float16", enabled=dtype != "float32"):
        return F.cross_entropy(model(tt.tensor(x, device=device)), y)


def evaluate(model, dataset, batch_size, max_batches, device="cpu", should_stop=None):
    """Mean cross-entropy over (up to ``max_batches``) batches of ``dataset``, in eval mode.

    None when there is nothing to evaluate, or when ``should_stop()`` turned true between two batches."""
    if dataset is None or len(dataset) == 0:
        return None
    total, count = 0.0, 0
    with evaluating(model):
        for x, y in eval_batches(dataset, batch_size, max_batches):
            if should_stop is not None and should_stop():
                return None
            logits = model(tt.tensor(x, device=device))
            total += F.cross_entropy(logits, y, reduction="sum").item()
            count += y.size
    return total / count


# How the progress samples are drawn: temperature and top-k, as the book's chapter 5 `generate` draws them.
# A tiny model's distribution has a long tail of word pieces: from the default run's final weights, 30
# samples hold 96% real words (found in the training text) on average at 0.6, 91% at 0.8
# (benchmarks/sample_words_bench.py; README: Quickstart).
SAMPLE_TEMPERATURE, SAMPLE_TOP_K = 0.6, 40


class _Abandoned(Exception):
    """A stop request arrived while a sample was being generated."""


def sample_text(run, should_stop=None):
    """The run's sample (its --sample-prompt continued by --sample-tokens tokens); None when stopped."""
    a, L = run.a, run.cfg.context_length
    prompt = run.tok.encode(a.sample_prompt, allowed_special="all") if a.sample_prompt else []
    prompt = prompt[-(L // 2):] if prompt else [0]

    def on_token(_):
        if should_stop is not None and should_stop():
            raise _Abandoned
    try:
        out = generate(run.model, [prompt], max_new_tokens=a.sample_tokens, temperature=SAMPLE_TEMPERATURE,
                       top_k=SAMPLE_TOP_K, seed=a.seed, on_token=on_token, vocab_size=run.tok.n_vocab)
    except _Abandoned:
        return None
    return run.tok.decode(out[0].tolist())


def evaluate_run(run, show=print, stop=None):
    """Train and validation loss (``eval_batches`` batches each) and a sample, shown through ``show``
    and added to the run's history (and to metrics.csv and loss.svg when the run keeps a log). Returns
    the history entry, or None when ``stop`` was requested meanwhile (the evaluation is then abandoned:
    a stop never waits for it)."""
    a = run.a
    should_stop = (lambda: bool(stop)) if stop is not None else None
    tr = evaluate(run.model, run.train_set, a.batch_size, a.eval_batches, a.device, should_stop)
    va = evaluate(run.model, run.val_set, a.batch_size, a.eval_batches, a.device, should_stop)
    sample = sample_text(run, should_stop) if not stop else None
    if stop:
        return None
    entry = {"step": run.step, "train_loss": tr, "val_loss": va, "tokens": int(run.step * run.tokens_per_step),
             "elapsed": round(run.elapsed(), 2)}
    run.history.append(entry)
    vs = f"{va:.4f}" if va is not None else "n/a"
    show(f"step {run.step:>6} | train loss {tr:.4f} | val loss {vs} | lr {run.lr(max(run.step - 1, 0)):.2e}")
    show(indented(sample, "  sample: "))
    warning = curves.overfitting_warning([h.get("val_loss") for h in run.history])
    if warning:
        show(warning)
    if run.log is not None:
        run.log.write(kind="eval", step=run.step, tokens=entry["tokens"], train_loss=tr, val_loss=va,
                      elapsed_s=entry["elapsed"])
        plot(run)
    if run.samples is not None:
        run.samples.write(run.step, sample)
    return dict(entry, sample=sample)          # the sample for on_eval (the history keeps the numbers)


def plot(run):
    """Draw loss.svg from the run's metrics log; returns its path."""
    data = run.corpus if run.a.data is None else os.path.basename(run.a.data)
    title = f"{describe(run.cfg, run.model.num_parameters())} on {data}: step {run.step} of {run.max_steps}"
    return curves.plot_pretraining(run.log, run.a.out, title)


# ----- loop -----

def loop(run, stop, bar, stop_at=None, on_step=None, on_eval=None):
    """Train ``run`` until its last step or a stop request; evaluate and save when due.

    ``bar``: a ProgressBar (its ``write`` shows evaluation lines). ``stop``: a StopFlag. ``stop_at``:
    request a stop once this step is done. ``on_step(row)`` after every step, with the step, tokens
    seen, train loss, learning rate, gradient norm, elapsed seconds and tokens/s; ``on_eval(entry)`` after
    every evaluation (its losses and sample). Returns "done", or "interrupted" after saving the step it stopped at.
    """
    a = run.a

    def evaluation():
        if not run.team.leader:                      # under mpiexec rank 0 alone evaluates and samples
            return
        entry = evaluate_run(run, bar.write, stop)
        if entry is not None and on_eval is not None:
            on_eval(entry)

    if not run.resumed and run.step == 0:            # the starting point: loss of the untrained model
        evaluation()
        run.save()
    while run.step < run.max_steps:
        if run.team.stopping(stop):                  # alone: `if stop`; under mpiexec every rank agrees
            if run.saved_step != run.step:
                run.save()
            return "interrupted"
        batches = [run.team.share(run.sampler.next_batch()) for _ in range(a.grad_accum)]   # this rank's rows
        began = time.perf_counter()
        try:
            result = train_step(run.optimizer, lambda b: calc_loss_batch(run.model, b, a.device, a.dtype), batches,
                                lr=run.lr(run.step), grad_clip=a.grad_clip, step=run.step + 1,
                                params=run.model.parameters(), scaler=run.scaler, no_sync=run.team.no_sync)
        except NonFiniteError as e:
            raise RunFailed(f"{e}; stopped without saving it. The last good checkpoint (step {run.saved_step}) "
                            f"is in {a.out}") from None
        seconds = time.perf_counter() - began
        result = run.team.mean(result)                   # the loss over every rank's rows
        run.step += 1
        _count_skipped(run, result, bar)
        bar.update(run.step, loss=result.loss, tokens=run.tokens_per_step)
        run.last_loss = result.loss
        row = {"step": run.step, "tokens": run.step * run.tokens_per_step, "train_loss": result.loss,
               "lr": result.lr, "grad_norm": result.grad_norm, "elapsed": run.elapsed(),
               "tokens_per_s": round(run.tokens_per_step / max(seconds, 1e-9))}
        if run.log is not None:
            run.log.write(kind="train", step=run.step, tokens=row["tokens"], train_loss=result.loss, lr=result.lr,
                          grad_norm=result.grad_norm, tokens_per_s=row["tokens_per_s"],
                          elapsed_s=round(row["elapsed"], 2))
        if on_step is not None:
            on_step(row)
        if run.step % a.eval_every == 0 or run.step == run.max_steps:
            evaluation()
        if run.step % a.save_every == 0 or run.step == run.max_steps:
            run.save()
        if stop_at is not None and run.step >= stop_at:
            stop.request("stop_at", 130)
    return "done"


# ----- train -----

SKIP_WARNING = 10       # warn after this many skipped float16 steps in a row (and each time as many again)


def _count_skipped(run, result, bar):
    """Count a float16 step the loss scaler skipped; warn on a run of them (the weights are not moving)."""
    if not result.skipped:
        run.skipped_in_a_row = 0
        return
    run.skipped += 1
    run.skipped_in_a_row += 1
    if run.team.leader and run.skipped_in_a_row % SKIP_WARNING == 0:
        bar.write(f"warning: step {run.step}: {run.skipped_in_a_row} float16 steps in a row were skipped (inf or "
                  f"nan gradients; the weights did not change); the loss scale is now {run.scaler.get_scale():g}")


def train(a, resume=False, overwrite=False, given=(), stream=None, stop_at=None, on_step=None, on_eval=None):
    """Run (or resume) training as ``a`` (a TrainConfig) says; returns a summary dict.

    ``given``: names of the settings the user passed explicitly (checked against a resumed checkpoint).
    ``stop_at``: behave as if interrupted (Ctrl-C) once this step is done: save and return.
    ``on_step``, ``on_eval``: called after each step and each evaluation (see ``loop``).
    The summary's "status" is "done" or "interrupted"; "stopped_by" names what stopped it (SIGINT,
    SIGTERM, SIGHUP, closed output) and "exit_code" is the status the command line exits with.
    Under ``mpiexec -n N`` every rank calls it; rank 0 leads (gpt/parallel_run.py).
    """
    team = parallel_run.join(a.device)               # under mpiexec: this process's rank; else ALONE
    if not team.leader:                              # ranks 1..N-1 train what rank 0 prepares
        return parallel_run.follow(team, stop_at, on_step)
    return _train(a, team, resume, overwrite, given, stream, stop_at, on_step, on_eval)


@runlock.locks_out                   # one run at a time on a.out (taken after joining the ranks of mpiexec)
def _train(a, team, resume, overwrite, given, stream, stop_at, on_step, on_eval):
    if resume and overwrite:
        raise TrainingError("--resume continues the run in --out and --overwrite replaces it: pass only one")
    meta = None
    if resume:
        a, meta = _resume_args(a, given)            # the checkpoint's settings; fails when --out holds none
    a = a.resolved()
    _check_args(a)
    team.check(a, meta)
    a = dataclasses.replace(a, **{k: os.path.abspath(getattr(a, k)) for k in ("data", "tokenizer") if getattr(a, k)})
    stop = StopFlag()
    out = SafeOutput(stream if stream is not None else sys.stdout, on_failure=lambda e: stop.output_closed())
    run = prepare(a, meta, overwrite, out.write)
    team.lead(run, meta, out.write)                  # under mpiexec: the run to ranks 1..N-1, the model in DDP
    keep_until = run.step if run.resumed else None
    run.log = MetricsLog(os.path.join(a.out, METRICS), PRETRAIN_COLUMNS, keep_until=keep_until)
    run.samples = SamplesLog(os.path.join(a.out, SAMPLES), keep_until=keep_until)
    for note in (run.log.note, run.samples.note):
        if note:
            out.write(f"note: {note}\n")
    bar = ProgressBar(run.max_steps, initial=run.step, stream=out, elapsed_before=run.elapsed_before)
    run.started = time.perf_counter()
    with stop, run.log, run.samples, warnings.catch_warnings():            # from here Ctrl-C, SIGTERM and SIGHUP save, then stop
        if a.dtype == "float16":                     # an overflow only skips a step (GradScaler): no warning
            warnings.filterwarnings("ignore", r"(overflow|invalid value) encountered", RuntimeWarning)
        try:
            status = loop(run, stop, bar, stop_at, on_step, on_eval)
        finally:
            bar.close()
    wall = time.perf_counter() - run.started
    figure = plot(run)
    if status == "interrupted":
        out.write(f"interrupted: saved step {run.step} to {a.out}; continue with: "
                  f"python -m gpt train --resume --out {shlex.quote(a.out)}\n")
    else:
        total = run.elapsed_before + wall
        session = f" ({format_seconds(wall)} in this session)" if run.resumed else ""
        skipped = f" ({run.skipped} skipped: inf or nan float16 gradients)" if run.skipped else ""
        out.write(f"finished {run.step} steps{skipped} in {format_seconds(total)}{session}; checkpoint in {a.out}\n")
    out.write(f"  loss curve: {figure} (open it in a browser); every step: {os.path.join(a.out, METRICS)}\n")
    if status != "interrupted":
        prompt = shlex.quote(a.sample_prompt or "The")
        out.write(f"  next: python -m gpt sample --checkpoint {shlex.quote(a.out)} --prompt {prompt} "
                  f"--temperature {SAMPLE_TEMPERATURE} --top-k {SAMPLE_TOP_K}\n")
    out.flush()
    return {"status": status, "step": run.step, "skipped": run.skipped, "wall_s": wall, "history": run.history, "loss": run.last_loss,
            "out": a.out, "stopped_by": stop.reason, "exit_code": stop.exit_code if status == "interrupted" else 0}
