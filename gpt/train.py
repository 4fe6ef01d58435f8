"""Pretraining: one loop, in the style of nanoGPT's train.py.

    for each step:  lr from the schedule -> grad_accum micro-batches (forward, loss, backward)
                    -> clip the gradient norm -> AdamW step
                    -> every eval_every steps: train/val loss and a sample; every save_every: checkpoint

Everything a run depends on (weights, optimizer moments, data position, random state, step) goes into
the checkpoint, so ``resume`` continues bit for bit as if the run had never stopped.
"""
import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import optim, random
from tinytensor.atomic import replacing

from . import checkpoint as ckpt
from . import runlock
from .config import GPTConfig
from .data import (BatchSampler, SlidingWindowDataset, data_digests, default_corpus, encode_cached, eval_batches,
                   read_text, text_digest, train_val_split)
from .generate import generate
from .model import GPT
from .progress import ProgressBar, format_seconds


class TrainingError(Exception):
    """A problem a user can fix (bad arguments, wrong files); the CLI prints it as one line."""


@dataclass
class TrainConfig:
    """Every setting of a training run (stored in checkpoint.json under "args")."""
    data: str = None                 # a UTF-8 text file; None: the CPython help topics
    out: str = "runs/tiny"
    preset: str = "tiny"
    tokenizer: str = None            # a bpe tokenizer file, or a folder with GPT-2's encoder.json + vocab.bpe
    vocab_size: int = None           # for a tokenizer trained here; None: the preset's
    context_length: int = None       # model overrides; None: the preset's
    emb_dim: int = None
    n_layers: int = None
    n_heads: int = None
    drop_rate: float = None
    qkv_bias: bool = None
    tie_weights: bool = None
    max_steps: int = 600
    epochs: float = None             # instead of max_steps: passes over the training windows
    batch_size: int = 16
    grad_accum: int = 1
    stride: int = None               # None: context_length (windows do not overlap)
    val_fraction: float = 0.1
    lr: float = 2e-3
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

    # flags that may change when resuming (the rest must match the checkpoint)
    RESUMABLE = ("max_steps", "epochs", "eval_every", "eval_batches", "save_every", "sample_prompt",
                 "sample_tokens", "device", "out")

    def to_dict(self):
        return dataclasses.asdict(self)


def lr_at(step, max_steps, lr, min_lr, warmup, schedule):
    """Learning rate of step ``step`` (0-based): linear warmup to ``lr``, then cosine down to ``min_lr``."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    progress = min(1.0, max(0.0, (step - warmup) / max(1, max_steps - warmup)))
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


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


def evaluate(model, dataset, batch_size, max_batches, device="cpu"):
    """Mean cross-entropy over (up to ``max_batches``) batches of ``dataset``, in eval mode."""
    if dataset is None or len(dataset) == 0:
        return None
    was = model.training
    model.eval()
    total, count = 0.0, 0
    with tt.no_grad():
        for x, y in eval_batches(dataset, batch_size, max_batches):
            logits = model(tt.tensor(x, device=device))
            total += F.cross_entropy(logits, y, reduction="sum").item()
            count += y.size
    model.train(was)
    return total / count


def load_tokenizer(spec):
    """A bpe tokenizer from a saved file, or GPT-2's from a folder holding encoder.json and vocab.bpe."""
    import bpe
    if os.path.isdir(spec):
        enc, merges = os.path.join(spec, "encoder.json"), os.path.join(spec, "vocab.bpe")
        if not (os.path.isfile(enc) and os.path.isfile(merges)):
            raise TrainingError(f"tokenizer folder {spec} needs encoder.json and vocab.bpe (GPT-2's files)")
        return bpe.gpt2(enc, merges)
    if not os.path.isfile(spec):
        raise TrainingError(f"no such tokenizer file or folder: {spec}")
    return bpe.Tokenizer.load(spec)


def build_config(args, vocab_size):
    over = {k: getattr(args, k) for k in ("context_length", "emb_dim", "n_layers", "n_heads", "drop_rate",
                                           "qkv_bias", "tie_weights") if getattr(args, k) is not None}
    try:
        return GPTConfig.preset(args.preset, vocab_size=vocab_size, **over)
    except ValueError as e:
        raise TrainingError(str(e)) from None


def check_device_available(device):
    """A TrainingError (one line on the command line) before any work when --device cuda cannot run here."""
    if device != "cpu":
        from tinytensor import backend
        try:
            backend.require_cuda()
        except RuntimeError as exc:
            raise TrainingError(f"--device {device}: {exc}") from None


def _check_args(a):
    positive = ("max_steps", "batch_size", "grad_accum", "eval_every", "eval_batches", "save_every")
    for name in positive:
        v = getattr(a, name)
        if not isinstance(v, int) or v <= 0:
            raise TrainingError(f"--{name.replace('_', '-')} must be a positive integer, got {v!r}")
    if a.epochs is not None and a.epochs <= 0:
        raise TrainingError(f"--epochs must be positive, got {a.epochs}")
    if not a.lr > 0 or not math.isfinite(a.lr):
        raise TrainingError(f"--lr must be a positive number, got {a.lr}")
    if a.min_lr is not None and not 0 <= a.min_lr <= a.lr:
        raise TrainingError(f"--min-lr must be between 0 and --lr, got {a.min_lr}")
    if not 0 <= a.beta2 < 1:
        raise TrainingError(f"--beta2 must be in [0, 1), got {a.beta2}")
    if a.weight_decay < 0 or a.grad_clip < 0:
        raise TrainingError("--weight-decay and --grad-clip must be >= 0")
    if not 0 <= a.val_fraction < 1:
        raise TrainingError(f"--val-fraction must be in [0, 1), got {a.val_fraction}")
    if a.schedule not in ("cosine", "constant"):
        raise TrainingError(f"--schedule must be cosine or constant, got {a.schedule!r}")
    if a.device not in ("cpu", "cuda") and not str(a.device).startswith("cuda:"):
        raise TrainingError(f"--device must be cpu or cuda, got {a.device!r}")
    check_device_available(a.device)
    if a.init not in ("gpt2", "torch"):
        raise TrainingError(f"--init must be gpt2 or torch, got {a.init!r}")
    if a.preset not in GPTConfig.PRESETS:
        raise TrainingError(f"unknown preset {a.preset!r}: choose one of {', '.join(GPTConfig.PRESETS)}")


class _StopFlag:
    """First Ctrl-C (or SIGTERM): finish the step, save, stop. Second Ctrl-C: stop at once."""

    def __init__(self):
        self.requested, self.previous = False, {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        sys.stderr.write("\nstopping: finishing this step and saving a checkpoint (Ctrl-C again quits without saving)\n")

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:          # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _prepare_out(a, overwrite):
    if ckpt.exists(a.out) and not overwrite:
        raise TrainingError(f"{a.out} already holds a checkpoint: pass --resume to continue it, --overwrite to "
                            "start again there, or choose another --out")
    if os.path.exists(a.out) and not os.path.isdir(a.out):
        raise TrainingError(f"--out {a.out} exists and is not a folder")
    os.makedirs(a.out, exist_ok=True)
    if overwrite:
        for name in (ckpt.META, ckpt.MODEL, ckpt.OPTIMIZER, ckpt.TOKENIZER, "loss.png"):
            path = os.path.join(a.out, name)
            if os.path.exists(path):
                os.remove(path)


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


def plot_losses(history, path):
    """Write a PNG of train and validation loss against step, when matplotlib is installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        pts = [(s, h[key]) for s, h in zip(steps, history) if h.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.legend()
    fig.tight_layout()
    try:
        with replacing(path, "wb") as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
    return True


@runlock.locks_out                   # one run at a time on a.out
def train(a, resume=False, overwrite=False, given=(), stream=None, stop_at=None):
    """Run (or resume) training as ``a`` (a TrainConfig) says; returns a summary dict.

    ``given``: names of the settings the user passed explicitly (checked against a resumed checkpoint).
    ``stop_at``: behave as if interrupted (Ctrl-C) once this step is done: save and return.
    """
    stream = stream if stream is not None else sys.stdout
    say = stream.write
    meta = None
    if resume:
        a, meta = _resume_args(a, given)
    _check_args(a)
    a = dataclasses.replace(a, **{k: os.path.abspath(getattr(a, k)) for k in ("data", "tokenizer") if getattr(a, k)})
    text = read_text(a.data) if a.data else default_corpus()     # a missing --data fails before any folder is made
    if not resume:
        _prepare_out(a, overwrite)

    # ----- text and tokenizer -----
    corpus = a.data or "CPython help topics (pydoc_data.topics)"
    if meta is not None and meta["data"]["digest"] != text_digest(text):
        raise TrainingError(f"{corpus} is not the text this checkpoint was trained on (its contents changed)")
    tok_path = os.path.join(a.out, ckpt.TOKENIZER)
    if resume:
        tok = load_tokenizer(ckpt.tokenizer_path(a.out, meta))
    elif a.tokenizer:
        tok = load_tokenizer(a.tokenizer)
        tok.save(tok_path)
    else:
        import bpe
        vocab = a.vocab_size or GPTConfig.preset(a.preset).vocab_size
        if vocab > 8192:
            raise TrainingError(f"preset {a.preset} has a vocabulary of {vocab}: pass --tokenizer DIR with GPT-2's "
                                "encoder.json and vocab.bpe, or --vocab-size to train a smaller tokenizer here")
        if vocab < 257:
            raise TrainingError(f"--vocab-size must be at least 257 (256 bytes + <|endoftext|>), got {vocab}")
        t0 = time.perf_counter()
        tok = bpe.train(text, vocab, special_tokens=("<|endoftext|>",))
        tok.save(tok_path)
        say(f"trained a BPE tokenizer of {tok.n_vocab} tokens in {time.perf_counter() - t0:.1f}s -> {tok_path}\n")

    # ----- model config -----
    if meta is not None:
        try:
            cfg = ckpt.load_config(meta, a.out)
        except ValueError as e:
            raise TrainingError(f"cannot resume from {a.out}: {e}") from None
    else:
        cfg = build_config(a, tok.n_vocab)
    if cfg.vocab_size < tok.n_vocab:
        raise TrainingError(f"the model's vocabulary ({cfg.vocab_size}) is smaller than the tokenizer's ({tok.n_vocab})")

    # ----- data -----
    ids = encode_cached(text, tok, a.out)
    digests = data_digests(tok, ids, meta["data"] if meta is not None else None)
    train_ids, val_ids = train_val_split(ids, a.val_fraction)
    L = cfg.context_length
    stride = a.stride or L
    train_set = SlidingWindowDataset(train_ids, L, stride)
    val_set = SlidingWindowDataset(val_ids, L, L)
    if len(val_set) == 0:
        val_set = None
    try:
        sampler = BatchSampler(train_set, a.batch_size, seed=a.seed)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    max_steps = a.max_steps
    if a.epochs is not None:
        max_steps = max(1, int(a.epochs * sampler.batches_per_epoch) // a.grad_accum)
    warmup = a.warmup_steps if a.warmup_steps is not None else min(100, max_steps // 20)
    min_lr = a.min_lr if a.min_lr is not None else a.lr / 10

    # ----- model and optimizer -----
    tt.manual_seed(a.seed)
    model = GPT(cfg, init=a.init)
    step, history = 0, []
    if meta is not None:
        try:
            ckpt.load_weights(model, os.path.join(a.out, ckpt.MODEL))
        except ValueError as e:
            raise TrainingError(f"cannot resume from {a.out}: {e}") from None
    if a.device != "cpu":
        model.to(a.device)
    model.train()
    optimizer = optim.AdamW(param_groups(model, a.weight_decay, a.decay_all), lr=a.lr, betas=(0.9, a.beta2),
                            weight_decay=a.weight_decay)
    params = model.parameters()
    if meta is not None:
        try:
            ckpt.load_optimizer(a.out, optimizer)
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise TrainingError(f"cannot resume from {a.out}: {e}") from None
        step = int(meta["step"])
        sampler.load_state_dict(meta["data"]["sampler"])
        random.set_state(meta["rng"])
        history = meta.get("history", [])
    say(f"model: {cfg.n_layers} layers, {cfg.n_heads} heads, emb {cfg.emb_dim}, context {L}, vocab {cfg.vocab_size}"
        f" = {model.num_parameters():,} parameters\n")
    say(f"data: {corpus}: {len(ids):,} tokens ({len(train_ids):,} train / {len(val_ids):,} val), "
        f"{len(train_set)} windows, {sampler.batches_per_epoch} batches of {a.batch_size} per epoch\n")
    if resume:
        say(f"resuming {a.out} at step {step} of {max_steps}\n")

    prompt_ids = tok.encode(a.sample_prompt, allowed_special="all") if a.sample_prompt else []
    prompt_ids = prompt_ids[-(L // 2):] if prompt_ids else [0]

    def meta_now():
        return {"step": step, "max_steps": max_steps, "config": cfg.to_dict(), "args": a.to_dict(),
                "data": {"corpus": corpus, "digest": text_digest(text), "tokens": int(len(ids)),
                         "sampler": sampler.state_dict(), **digests},
                "rng": random.get_state(), "tokenizer": ckpt.TOKENIZER, "history": history}

    def save():
        ckpt.save(a.out, model, optimizer, meta_now())

    def do_eval():
        tr = evaluate(model, train_set, a.batch_size, a.eval_batches, a.device)
        va = evaluate(model, val_set, a.batch_size, a.eval_batches, a.device)
        out = generate(model, [prompt_ids], max_new_tokens=a.sample_tokens, temperature=0.8, top_k=40, seed=a.seed)
        sample = tok.decode(out[0].tolist())
        entry = {"step": step, "train_loss": tr, "val_loss": va, "tokens": int(step * tokens_per_step),
                 "elapsed": round(elapsed_before + time.perf_counter() - t_start, 2)}
        history.append(entry)
        vs = f"{va:.4f}" if va is not None else "n/a"
        bar.write(f"step {step:>6} | train loss {tr:.4f} | val loss {vs} | lr {lr_at(max(step - 1, 0), max_steps, a.lr, min_lr, warmup, a.schedule):.2e}")
        bar.write("  sample: " + sample.replace("\n", "\\n"))
        if plot_losses(history, os.path.join(a.out, "loss.png")):
            pass
        return entry

    tokens_per_step = a.batch_size * L * a.grad_accum
    elapsed_before = history[-1]["elapsed"] if history else 0.0
    bar = ProgressBar(max_steps, initial=step, stream=stream)
    t_start = time.perf_counter()
    last_loss = None
    status = "done"
    with _StopFlag() as stop:
        if step == 0 and not resume:
            do_eval()
            save()
        while step < max_steps:
            if stop.requested:
                status = "interrupted"
                break
            lr = lr_at(step, max_steps, a.lr, min_lr, warmup, a.schedule)
            for g in optimizer.param_groups:
                g["lr"] = lr
            loss_sum = 0.0
            for _ in range(a.grad_accum):
                x, y = sampler.next_batch()
                logits = model(tt.tensor(x, device=a.device))
                loss = F.cross_entropy(logits, y)
                value = loss.item()
                if not math.isfinite(value):
                    bar.close()
                    raise TrainingError(f"loss became {value} at step {step + 1}; stopped without saving it. "
                                        f"The last good checkpoint (step {_saved_step(a.out)}) is in {a.out}")
                loss_sum += value
                (loss * (1.0 / a.grad_accum) if a.grad_accum > 1 else loss).backward()
            norm = optim.clip_grad_norm(params, a.grad_clip if a.grad_clip > 0 else float("inf"))
            if not math.isfinite(norm):
                bar.close()
                raise TrainingError(f"the gradient norm became {norm} at step {step + 1}; stopped without saving "
                                    f"it. The last good checkpoint (step {_saved_step(a.out)}) is in {a.out}")
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            last_loss = loss_sum / a.grad_accum
            bar.update(step, loss=last_loss, tokens=tokens_per_step)
            if step % a.eval_every == 0 or step == max_steps:
                do_eval()
            if step % a.save_every == 0 or step == max_steps:
                save()
            if stop_at is not None and step >= stop_at and step < max_steps:
                stop.requested = True
        if status == "interrupted":
            save()
    bar.close()
    wall = time.perf_counter() - t_start
    if status == "interrupted":
        say(f"interrupted: saved step {step} to {a.out}; continue with --resume --out {a.out}\n")
    else:
        say(f"finished {step} steps in {format_seconds(wall)}; checkpoint in {a.out}\n")
    return {"status": status, "step": step, "wall_s": wall, "history": history, "loss": last_loss, "out": a.out}


def _saved_step(folder):
    try:
        with open(os.path.join(folder, ckpt.META), encoding="utf-8") as f:
            return json.load(f).get("step", "?")
    except (OSError, ValueError):
        return "none"


_ = (np, field)
