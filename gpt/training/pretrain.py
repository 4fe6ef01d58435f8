"""The full pretraining run (``python -m gpt train``): train_simple (simple.py) plus exact resume, clean
stopping, metrics and many processes.

    what train_simple does             what this run adds to it
    batches from a DataLoader          a BatchSampler whose position is saved; grad_accum micro-batches
    loss.backward(); optimizer.step()  warmup + cosine lr, clipping, the NaN guard, float16 loss scaling (step.py)
    evaluate every eval_every steps    the same losses, written to metrics.csv and loss.svg (metrics.py) with
                                       an overfitting warning; a sample abandoned when a stop arrives
                                       a checkpoint every save_every steps (checkpoint.py) holding weights,
                                       optimizer moments, data position and random state: --resume
                                       continues bit for bit, as if the run had never stopped
                                       Ctrl-C, SIGTERM, SIGHUP or a closed pipe: save, then stop (stopping.py)
                                       one run at a time per --out (run_folder.py)
                                       many processes under mpiexec: parallel.py's ParallelRun is a Run whose
                                       steps agree across ranks (gpt.train, launch.py, picks it)

    prepare(settings)   text -> tokenizer -> windows and batches -> model and AdamW   (or all of them
                        as a checkpoint left them, to resume)
    loop(run, stop)     the loop: one screen
    train(settings)     prepare, loop and the closing lines, with a stop request saving first
"""
import dataclasses
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field

import tinytensor as tt
from tinytensor import optim, random

from ..data import (BatchSampler, SlidingWindowDataset, data_digests, default_corpus, encode_cached, eval_batches,
                    read_text, text_digest, train_val_split)
from ..data.corpus import NAME as CORPUS_NAME
from ..errors import RunFailed, TrainingError
from ..generation.generate import generate
from ..generation.printable import indented
from ..models import GPTConfig, LanguageModel, build_model, config_class, describe
from ..weights.tokenizer import load_tokenizer
from . import checkpoint as ckpt
from . import metrics, run_folder
from .metrics import NAME as METRICS, PRETRAIN_COLUMNS, SAMPLES, MetricsLog, SamplesLog
from .progress import ProgressBar, SafeOutput, format_seconds
from .schedule import lr_at
from .settings import TrainSettings, build_config, resumed
from .simple import calc_loss_batch, calc_loss_loader
from .step import NonFiniteError, train_step
from .stopping import StopFlag


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


# ----- prepare -----

@dataclass
class Run:
    """A prepared run: what the loop reads and changes (step, history), and what a checkpoint records.

    The loop asks the run for each of its moves (``should_stop``, ``next_batch``, ``take_step``,
    ``evaluate``, ``save``); on many processes parallel.py's ParallelRun answers them for its rank."""
    settings: TrainSettings
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

    @property
    def tokens_per_step(self):
        return self.settings.batch_size * self.cfg.context_length * self.settings.grad_accum

    def lr(self, step):
        """The learning rate of step ``step`` (0-based)."""
        s = self.settings
        return lr_at(step, self.max_steps, s.lr, self.min_lr, self.warmup, s.schedule)

    def elapsed(self):
        return self.elapsed_before + time.perf_counter() - self.started

    def meta(self):
        """checkpoint.json's contents for the run as it is now."""
        return {"step": self.step, "max_steps": self.max_steps, "config": self.cfg.to_dict(),
                "args": self.settings.to_dict(),
                "data": {"corpus": self.corpus, "digest": self.digest, "tokens": self.n_tokens,
                         "sampler": self.sampler.state_dict(), **self.digests},
                "rng": random.get_state(), "tokenizer": ckpt.TOKENIZER, "history": self.history,
                "grad_scaler": self.scaler.state_dict(), "elapsed": round(self.elapsed(), 2)}

    def resume_command(self):
        """The command that continues this run."""
        return ckpt.resume_command(1, self.settings.out)

    # ----- the moves of the loop -----
    def should_stop(self, stop):
        """Whether to stop before the next step: a stop was requested (``stop``, a StopFlag)."""
        return bool(stop)

    def next_batch(self):
        """The next (inputs, targets) batch of the sampler."""
        return self.sampler.next_batch()

    def take_step(self, batches, no_sync=None):
        """One optimizer step over ``batches`` (step.py); a StepResult. A NaN or Inf stops the run unsaved."""
        s = self.settings
        try:
            return train_step(self.optimizer, lambda b: calc_loss_batch(self.model, b, s.device, s.dtype), batches,
                              lr=self.lr(self.step), grad_clip=s.grad_clip, step=self.step + 1,
                              params=self.model.parameters(), scaler=self.scaler, no_sync=no_sync)
        except NonFiniteError as e:
            raise RunFailed(f"{e}; stopped without saving it. The last good checkpoint (step {self.saved_step}) "
                            f"is in {s.out}") from None

    def evaluate(self, show, stop=None):
        """``evaluate_run``: losses and a sample, shown and logged; None when a stop came meanwhile."""
        return evaluate_run(self, show, stop)

    def save(self, extra=None, optimizer=None):
        """Write the checkpoint of the run as it is now (``extra``: more checkpoint.json fields)."""
        try:
            ckpt.save(self.settings.out, self.model, optimizer or self.optimizer, {**self.meta(), **(extra or {})})
        except NonFiniteError as e:       # the previous checkpoint is kept (checkpoint.save writes nothing)
            raise RunFailed(f"{e}; stopped without saving it. The last good checkpoint (step "
                            f"{self.saved_step}) is in {self.settings.out}") from None
        self.saved_step = self.step


def prepare(settings, meta=None, overwrite=False, say=print):
    """Everything a run needs, made fresh in ``settings.out`` or, given ``meta`` (the checkpoint's record), as
    the checkpoint left it. ``a`` is checked and resolved (see ``train``). Prints what it built."""
    text = read_text(settings.data) if settings.data else default_corpus()   # a missing --data fails before --out
    if meta is None:
        run_folder.claim_out(settings.out, overwrite)
    corpus = settings.data or CORPUS_NAME
    digest = text_digest(text)
    if meta is not None and meta["data"]["digest"] != digest:
        raise TrainingError(f"{corpus} is not the text this checkpoint was trained on (its contents changed)")
    tok = _tokenizer(settings, text, meta, say)
    if meta is not None:
        try:
            cfg = ckpt.load_config(meta, settings.out)
        except ValueError as e:
            raise TrainingError(f"cannot resume from {settings.out}: {e}") from None
    else:
        cfg = build_config(settings, tok.n_vocab)
    if cfg.vocab_size < tok.n_vocab:
        raise TrainingError(f"the model's vocabulary ({cfg.vocab_size}) is smaller than the tokenizer's "
                            f"({tok.n_vocab})")

    ids = encode_cached(text, tok)                # cached in the cache folder (gpt/data/cache.py)
    digests = data_digests(tok, ids, meta["data"] if meta is not None else None)
    train_set, val_set, sampler = _datasets(settings, ids, cfg.context_length)
    max_steps = settings.max_steps
    if settings.epochs is not None:
        max_steps = max(1, int(settings.epochs * sampler.batches_per_epoch) // settings.grad_accum)
    model, optimizer = model_and_optimizer(settings, cfg, meta)
    run = Run(settings, cfg, tok, corpus, digest, int(len(ids)), train_set, val_set, sampler, model, optimizer,
              max_steps,
              warmup=settings.warmup_steps if settings.warmup_steps is not None else min(100, max_steps // 20),
              min_lr=settings.min_lr if settings.min_lr is not None else settings.lr / 10, digests=digests,
              scaler=tt.GradScaler(enabled=settings.dtype == "float16"))
    if meta is not None:
        _restore(run, meta)
    n_train = len(train_set.ids)
    family = "" if cfg.ARCH == "gpt2" else f"{cfg.ARCH}, "
    kv = f" ({cfg.n_kv_heads} kv)" if cfg.n_kv_heads != cfg.n_heads else ""
    say(f"model: {family}{cfg.n_layers} layers, {cfg.n_heads} heads{kv}, emb {cfg.emb_dim}, context "
        f"{cfg.context_length}, vocab {cfg.vocab_size} = {model.num_parameters():,} parameters\n")
    say(f"data: {corpus}: {len(ids):,} tokens ({n_train:,} train / {len(ids) - n_train:,} val), "
        f"{len(train_set)} windows, {sampler.batches_per_epoch} batches of {settings.batch_size} per epoch\n")
    if run.resumed:
        say(f"resuming {settings.out} at step {run.step} of {max_steps}\n")
        if run.step >= max_steps:
            say(f"nothing left to do: the run has taken its {max_steps} steps (pass --max-steps N, more than "
                f"{max_steps}, to train it further)\n")
    return run


def _datasets(settings, ids, L):
    """Training windows (every ``settings.stride`` tokens), validation windows (None when the held-out part is
    shorter than one), and the sampler that draws the training batches."""
    train_ids, val_ids = train_val_split(ids, settings.val_fraction)
    train_set = SlidingWindowDataset(train_ids, L, settings.stride or L)
    val_set = SlidingWindowDataset(val_ids, L, L)
    try:
        sampler = BatchSampler(train_set, settings.batch_size, seed=settings.seed)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    return train_set, val_set if len(val_set) else None, sampler


def model_and_optimizer(settings, cfg, meta):
    """The GPT (seeded; the checkpoint's weights when resuming) on its device, and its AdamW."""
    tt.manual_seed(settings.seed)
    model = build_model(cfg, init=settings.init)
    if meta is not None:
        _resume_from(settings.out, ckpt.load_weights, model, os.path.join(settings.out, ckpt.MODEL))
    if settings.device != "cpu":
        model.to(settings.device)
    model.train()
    optimizer = optim.AdamW(param_groups(model, settings.weight_decay, settings.decay_all), lr=settings.lr,
                            betas=(0.9, settings.beta2),
                            weight_decay=settings.weight_decay)
    return model, optimizer


def _tokenizer(settings, text, meta, say):
    """The run's tokenizer: the checkpoint's, the one --tokenizer names, or one trained here on ``text``."""
    tok_path = os.path.join(settings.out, ckpt.TOKENIZER)
    if meta is not None:
        return load_tokenizer(ckpt.tokenizer_path(settings.out, meta))
    if settings.tokenizer:
        tok = load_tokenizer(settings.tokenizer)
        tok.save(tok_path)
        return tok
    import bpe
    vocab = settings.vocab_size or settings.TRAIN_VOCAB.get(settings.preset) or \
        config_class(settings.arch).preset(settings.preset).vocab_size
    if vocab > 8192:
        raise TrainingError(f"preset {settings.preset} has a vocabulary of {vocab}: pass --tokenizer DIR with GPT-2's "
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
    _resume_from(run.settings.out, ckpt.load_optimizer, run.settings.out, run.optimizer)
    run.step = run.saved_step = int(meta["step"])
    run.sampler.load_state_dict(meta["data"]["sampler"])
    random.set_state(meta["rng"])
    run.history = meta.get("history", [])
    if run.settings.dtype == "float16" and isinstance(meta.get("grad_scaler"), dict):
        try:
            run.scaler.load_state_dict({**meta["grad_scaler"], "enabled": True})
        except ValueError as e:
            raise TrainingError(f"cannot resume from {run.settings.out}: {e}") from None
    run.elapsed_before = meta.get("elapsed", run.history[-1]["elapsed"] if run.history else 0.0)
    run.resumed = True


# ----- evaluate -----

def evaluate(model, dataset, batch_size, max_batches, device="cpu", should_stop=None):
    """Mean cross-entropy over (up to ``max_batches``) batches of ``dataset`` (simple.py's calc_loss_loader);
    None when there is nothing to evaluate, or when ``should_stop()`` turned true between two batches."""
    if dataset is None or len(dataset) == 0:
        return None
    return calc_loss_loader(model, eval_batches(dataset, batch_size, max_batches), device, should_stop)


# How the progress samples are drawn: temperature and top-k, as the book's chapter 5 `generate` draws them.
# A tiny model's distribution has a long tail of word pieces: from the default run's final weights, 30
# samples hold 96% real words (found in the training text) on average at 0.6, 91% at 0.8
# (benchmarks/sample_words_bench.py; README: Quickstart).
SAMPLE_TEMPERATURE, SAMPLE_TOP_K = 0.6, 40


class _Abandoned(Exception):
    """A stop request arrived while a sample was being generated."""


def sample_text(run, should_stop=None):
    """The run's sample (its --sample-prompt continued by --sample-tokens tokens); None when stopped."""
    settings, L = run.settings, run.cfg.context_length
    prompt = run.tok.encode(settings.sample_prompt, allowed_special="all") if settings.sample_prompt else []
    prompt = prompt[-(L // 2):] if prompt else [0]

    def on_token(_):
        if should_stop is not None and should_stop():
            raise _Abandoned
    try:
        out = generate(run.model, [prompt], max_new_tokens=settings.sample_tokens, temperature=SAMPLE_TEMPERATURE,
                       top_k=SAMPLE_TOP_K, seed=settings.seed, on_token=on_token, vocab_size=run.tok.n_vocab)
    except _Abandoned:
        return None
    return run.tok.decode(out[0].tolist())


def evaluate_run(run, show=print, stop=None):
    """Train and validation loss (``eval_batches`` batches each) and a sample, shown through ``show``
    and added to the run's history (and to metrics.csv and loss.svg when the run keeps a log). Returns
    the history entry, or None when ``stop`` was requested meanwhile (the evaluation is then abandoned:
    a stop never waits for it)."""
    settings = run.settings
    should_stop = (lambda: bool(stop)) if stop is not None else None
    tr = evaluate(run.model, run.train_set, settings.batch_size, settings.eval_batches, settings.device, should_stop)
    va = evaluate(run.model, run.val_set, settings.batch_size, settings.eval_batches, settings.device, should_stop)
    sample = sample_text(run, should_stop) if not stop else None
    if stop:
        return None
    entry = {"step": run.step, "train_loss": tr, "val_loss": va, "tokens": int(run.step * run.tokens_per_step),
             "elapsed": round(run.elapsed(), 2)}
    run.history.append(entry)
    vs = f"{va:.4f}" if va is not None else "n/a"
    show(f"step {run.step:>6} | train loss {tr:.4f} | val loss {vs} | lr {run.lr(max(run.step - 1, 0)):.2e}")
    show(indented(sample, "  sample: "))
    warning = metrics.overfitting_warning([h.get("val_loss") for h in run.history])
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
    data = run.corpus if run.settings.data is None else os.path.basename(run.settings.data)
    title = f"{describe(run.cfg, run.model.num_parameters())} on {data}: step {run.step} of {run.max_steps}"
    return metrics.plot_pretraining(run.log, run.settings.out, title)


# ----- loop -----

def loop(run, stop, bar, stop_at=None, on_step=None, on_eval=None):
    """Train ``run`` until its last step or a stop request; evaluate and save when due.

    ``bar``: a ProgressBar (its ``write`` shows evaluation lines). ``stop``: a StopFlag. ``stop_at``:
    request a stop once this step is done. ``on_step(row)`` after every step, with the step, tokens
    seen, train loss, learning rate, gradient norm, elapsed seconds and tokens/s; ``on_eval(entry)`` after
    every evaluation (its losses and sample). Returns "done", or "interrupted" after saving the step it
    stopped at.
    """
    s = run.settings

    def evaluation():
        entry = run.evaluate(bar.write, stop)
        if entry is not None and on_eval is not None:
            on_eval(entry)

    if not run.resumed and run.step == 0:            # the starting point: loss of the untrained model
        evaluation()
        run.save()
    while run.step < run.max_steps:
        if run.should_stop(stop):
            if run.saved_step != run.step:
                run.save()
            return "interrupted"
        batches = [run.next_batch() for _ in range(s.grad_accum)]
        began = time.perf_counter()
        result = run.take_step(batches)
        seconds = time.perf_counter() - began
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
        if run.step % s.eval_every == 0 or run.step == run.max_steps:
            evaluation()
        if run.step % s.save_every == 0 or run.step == run.max_steps:
            run.save()
        if stop_at is not None and run.step >= stop_at:
            stop.request("stop_at", 130)
    return "done"


SKIP_WARNING = 10       # warn after this many skipped float16 steps in a row (and each time as many again)


def _count_skipped(run, result, bar):
    """Count a float16 step the loss scaler skipped; warn on a run of them (the weights are not moving)."""
    if not result.skipped:
        run.skipped_in_a_row = 0
        return
    run.skipped += 1
    run.skipped_in_a_row += 1
    if run.skipped_in_a_row % SKIP_WARNING == 0:     # (ranks 1..N-1 of mpiexec write to nowhere)
        bar.write(f"warning: step {run.step}: {run.skipped_in_a_row} float16 steps in a row were skipped (inf or "
                  f"nan gradients; the weights did not change); the loss scale is now {run.scaler.get_scale():g}")


# ----- train -----

def train(settings, resume=False, overwrite=False, given=(), stream=None, stop_at=None, on_step=None, on_eval=None,
          team=None):
    """Run (or resume) training on this process as ``settings`` (a TrainSettings) says; returns a summary dict.

    ``given``: names of the settings the user passed explicitly (checked against a resumed checkpoint).
    ``stop_at``: behave as if interrupted (Ctrl-C) once this step is done: save and return.
    ``on_step``, ``on_eval``: called after each step and each evaluation (see ``loop``).
    ``team``: under mpiexec, rank 0's parallel.Team (gpt.train passes it; see launch.py), else None.
    The summary's "status" is "done" or "interrupted"; "stopped_by" names what stopped it (SIGINT,
    SIGTERM, SIGHUP, closed output) and "exit_code" is the status the command line exits with.
    """
    with run_folder.hold(settings.out):              # one run at a time on --out
        if resume and overwrite:
            raise TrainingError("--resume continues the run in --out and --overwrite replaces it: pass only one")
        meta = None
        if resume:
            settings, meta = resumed(settings, given)     # the checkpoint's settings; fails when --out holds none
        settings = settings.resolved()
        settings.check()
        ckpt.check_processes(meta, team.world if team is not None else 1, settings.out)
        if team is not None:
            team.check(settings)                         # what N processes cannot run (parallel.py)
        settings = dataclasses.replace(settings, **{k: os.path.abspath(getattr(settings, k))
                                                    for k in ("data", "tokenizer") if getattr(settings, k)})
        stop = StopFlag()
        out = SafeOutput(stream if stream is not None else sys.stdout, on_failure=lambda e: stop.output_closed())
        run = prepare(settings, meta, overwrite, out.write)
        if team is not None:
            run = team.lead(run, meta, out.write)        # sends the run to ranks 1..N-1; a ParallelRun
        keep_until = run.step if run.resumed else None
        run.log = MetricsLog(os.path.join(settings.out, METRICS), PRETRAIN_COLUMNS, keep_until=keep_until)
        run.samples = SamplesLog(os.path.join(settings.out, SAMPLES), keep_until=keep_until)
        for note in (run.log.note, run.samples.note):
            if note:
                out.write(f"note: {note}\n")
        bar = ProgressBar(run.max_steps, initial=run.step, stream=out, elapsed_before=run.elapsed_before)
        run.started = time.perf_counter()
        with stop, run.log, run.samples, warnings.catch_warnings():   # from here Ctrl-C, SIGTERM, SIGHUP save, then stop
            if settings.dtype == "float16":              # an overflow only skips a step (GradScaler): no warning
                warnings.filterwarnings("ignore", r"(overflow|invalid value) encountered", RuntimeWarning)
            try:
                status = loop(run, stop, bar, stop_at, on_step, on_eval)
            finally:
                bar.close()
        wall = time.perf_counter() - run.started
        _closing_lines(out, run, status, wall)
        return {"status": status, "step": run.step, "skipped": run.skipped, "wall_s": wall, "history": run.history,
                "loss": run.last_loss, "out": settings.out, "stopped_by": stop.reason,
                "exit_code": stop.exit_code if status == "interrupted" else 0}


def _closing_lines(out, run, status, wall):
    """How the run ended, where its files are, and the command to continue it or to sample from it."""
    settings = run.settings
    figure = plot(run)
    if status == "interrupted":
        out.write(f"interrupted: saved step {run.step} to {settings.out}; continue with: {run.resume_command()}\n")
    else:
        total = run.elapsed_before + wall
        session = f" ({format_seconds(wall)} in this session)" if run.resumed else ""
        skipped = f" ({run.skipped} skipped: inf or nan float16 gradients)" if run.skipped else ""
        out.write(f"finished {run.step} steps{skipped} in {format_seconds(total)}{session}; checkpoint in "
                  f"{settings.out}\n")
    out.write(f"  loss curve: {figure} (open it in a browser); every step: {os.path.join(settings.out, METRICS)}\n")
    if status != "interrupted":
        prompt = shlex.quote(settings.sample_prompt or "The")
        out.write(f"  next: python -m gpt sample --checkpoint {shlex.quote(settings.out)} --prompt {prompt} "
                  f"--temperature {SAMPLE_TEMPERATURE} --top-k {SAMPLE_TOP_K}\n")
    out.flush()
