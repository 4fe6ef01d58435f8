"""The two fine-tuning runs end to end: load a base model, prepare data, train, evaluate, save.

``--init`` is a checkpoint folder written by ``python -m gpt train`` (model.safetensors,
checkpoint.json, tokenizer.bpe) or a GPT-2 folder in Hugging Face's layout (model.safetensors
[+ config.json]) that also holds GPT-2's encoder.json and vocab.bpe.

A fine-tuned folder has the same layout as a pretraining checkpoint; its checkpoint.json says which
task it is for ("task": "classify" with the labels, or "task": "instruct"). LoRA adapters are merged
into plain weights before saving, so a saved model never needs gpt/models/lora.py to load.

``--out`` is checked before any work: a folder holding a run is refused unless ``--overwrite`` (whose
old run files are replaced only when the new run saves), and the ``--init`` folder never. A loss or
gradient that becomes NaN or Inf stops the run (exit 1) with nothing saved.
"""
import functools
import os
import shlex
import time

import numpy as np

import tinytensor as tt

from ..errors import FinetuneError, RunFailed
from ..models import TITLES, build_model, describe, lora
from ..training import checkpoint as ckpt
from ..training import run_folder
from ..training.metrics import (CLASSIFY_COLUMNS, INSTRUCT_COLUMNS, PLOT, MetricsRows, plot_classification,
                                plot_instruction)
from ..training.metrics import NAME as METRICS_LOG
from ..training.run_folder import check_out, clear_run
from ..training.step import NonFiniteError
from ..weights.tokenizer import load_tokenizer
from . import classify, data_classify, data_instruct, instruct


# ----- base models and tokenizers -----
def load_base(init):
    """(model, tokenizer, description) from a checkpoint folder of ours or a GPT-2 folder."""
    if not os.path.isdir(init):
        raise FinetuneError(f"--init {init}: no such folder (give a folder written by `python -m gpt train`, "
                            "or a GPT-2 folder with model.safetensors)")
    tok = load_tokenizer(init, FinetuneError)
    if ckpt.exists(init):
        meta = ckpt.read_meta(init)
        if meta.get("task") == "classify":
            raise FinetuneError(f"--init {init} is a classifier; start from a language model checkpoint")
        model, meta = ckpt.load_model(init, meta)
        what = f"checkpoint {init} (step {meta.get('step')})"
    elif os.path.isfile(os.path.join(init, "model.safetensors")) or \
            os.path.isfile(os.path.join(init, "model.safetensors.index.json")):
        from ..weights.hf import load_hf
        model = load_hf(init)                       # GPT-2, Llama 3 or Qwen3 (gpt/weights/hf.py)
        what = f"{TITLES[model.cfg.ARCH]} weights from {init}"
    else:
        raise FinetuneError(f"--init {init} holds neither checkpoint.json nor model.safetensors")
    if tok.eot_id is None:
        raise FinetuneError(f"the tokenizer in {init} has no <|endoftext|> token, needed for padding")
    if model.cfg.vocab_size < tok.n_vocab:
        raise FinetuneError(f"the model's vocabulary ({model.cfg.vocab_size}) is smaller than the tokenizer's "
                            f"({tok.n_vocab})")
    return model, tok, what


def refuse_init_as_out(settings):
    """--out may never be the --init folder (fine-tuning never writes over its base model)."""
    if os.path.exists(settings.out) and os.path.isdir(settings.init) and os.path.samefile(settings.out, settings.init):
        raise FinetuneError(f"--out {settings.out} is the --init folder: fine-tuning never writes over its base model; "
                            "choose another --out")


def check_out_folder(settings):
    """Before any work: --out may not be the --init folder, nor hold a run unless --overwrite."""
    refuse_init_as_out(settings)
    check_out(settings.out, settings.overwrite, hint="", error=FinetuneError)


def checked_and_locked(run):
    """Decorator for a fine-tuning run: --out refused first when it is the --init folder (so not even a lock
    file lands there), then its run lock held for the whole run (gpt/training/run_folder.py)."""
    locked = run_folder.locks_out(run)

    @functools.wraps(run)
    def checked(settings, *args, **kwargs):
        run_folder.one_process_only("fine-tuning", FinetuneError)     # not under mpiexec -n N (N > 1)
        refuse_init_as_out(settings)
        return locked(settings, *args, **kwargs)
    return checked


def _check_answers_fit(train_enc, max_length):
    """With --mask-prompt only answer tokens are targets: how many examples lose all of theirs to the
    context (their first target sits at position prompt_len - 1); FinetuneError when every one does."""
    cut = [prompt_len for _, prompt_len in train_enc if prompt_len - 1 >= max_length]
    if cut and len(cut) == len(train_enc):
        raise FinetuneError(f"--mask-prompt: every one of the {len(cut)} training examples loses every answer "
                            f"token to the {max_length}-token context (the answers begin after prompts of up to "
                            f"{max(cut)} tokens): they need a context of at least {max(cut)} tokens; use a "
                            "base model with a longer context, shorter prompts, or leave out --mask-prompt")
    return len(cut)


def start_saving(settings):
    """Make --out ready for this run's files: created, and with --overwrite the old run's files removed."""
    os.makedirs(settings.out, exist_ok=True)
    if settings.overwrite:
        clear_run(settings.out)


def trained(fn, settings, *args, **kw):
    """``fn(*args, **kw)`` (a training loop); a NaN or Inf loss or gradient ends the run, nothing saved."""
    try:
        return fn(*args, **kw)
    except NonFiniteError as e:
        raise RunFailed(f"{e}; stopped without saving anything to {settings.out} (a lower --lr may help)") from None


def save_model(folder, model, tokenizer, meta):
    """Save weights + checkpoint.json (through gpt/training/checkpoint.py) and the tokenizer; merges LoRA first."""
    lora.merge_lora(model)
    try:
        ckpt.check_finite(model.state_dict())
    except NonFiniteError as e:
        raise RunFailed(f"{e}: the training diverged; stopped without saving the model to {folder} (a lower "
                        "--lr may help)") from None
    os.makedirs(folder, exist_ok=True)
    ckpt.save(folder, model, None, {"step": int(meta.pop("step", 0)), "config": model.cfg.to_dict(), **meta})
    tokenizer.save(os.path.join(folder, ckpt.TOKENIZER))


def write_metrics(folder, metrics, rows=None, plot=None, title=""):
    """metrics.json (the summary); with ``rows`` (MetricsRows) also metrics.csv and, drawn by ``plot``
    (a gpt.training.metrics function), loss.svg."""
    ckpt.write_json(metrics, os.path.join(folder, "metrics.json"))
    if rows is not None:
        rows.save(os.path.join(folder, METRICS_LOG))
        plot(rows, folder, title)


def saved_line(folder, *extra):
    """The closing lines of a fine-tuning run: where its files are, and the command to try next."""
    return (f"saved to {folder}: metrics.json, {', '.join(extra) + ', ' if extra else ''}every step in "
            f"{os.path.join(folder, METRICS_LOG)}, curves in {os.path.join(folder, PLOT)} "
            "(open it in a browser)")


def load_classifier(folder):
    """(model, tokenizer, meta) of a folder written by ``run_classify``."""
    meta = ckpt.read_meta(folder)
    if meta.get("task") != "classify":
        raise FinetuneError(f"{folder} is not a classifier (made by `python -m gpt finetune classify`)")
    model = build_model(ckpt.load_config(meta, folder), init=False)
    classify.replace_head(model, len(meta["labels"]))
    ckpt.load_weights(model, ckpt.file_path(folder, meta, ckpt.MODEL))
    return model.eval(), load_tokenizer(folder, FinetuneError), meta


def _trainable_report(model):
    n_train, n_total = lora.count_parameters(model)
    return {"trainable_parameters": int(n_train), "total_parameters": int(n_total),
            "trainable_fraction": round(n_train / n_total, 5)}


# ----- classification -----
def _check_split(path, what, n, train, val, test):
    """Every part of the train / val / test split must hold something, or the run cannot be judged."""
    if not (train and val and test):
        raise FinetuneError(f"{path}: {n} {what} split into {len(train)} train / {len(val)} val / {len(test)} test; "
                            "every part needs at least one: use more data")


def _also(first, then):
    """``first(row)``, then ``then(row)`` when given (``--viz``: the live page sees every row too)."""
    return first if then is None else (lambda row: (first(row), then(row)))


@checked_and_locked
def run_classify(settings, log=print, on_row=None):
    """``settings``: a ClassifySettings (gpt/finetune/settings.py). Returns the metrics dict."""
    if settings.download:
        if os.path.exists(settings.data):
            log(f"{settings.data} exists; not downloading again")
        else:
            log(f"downloading the SMS Spam Collection to {settings.data} ...")
            data_classify.download_sms_spam(settings.data)
    if not os.path.isfile(settings.data):
        raise FinetuneError(f"--data {settings.data}: no such file (make an offline one with `python -m gpt make-data "
                            "classify --out FILE`, or pass --download for the SMS Spam Collection)")
    check_out_folder(settings)
    t0 = time.perf_counter()
    rows = data_classify.read_labeled(settings.data)
    labels = data_classify.label_ids(rows)
    if len(labels) < 2:
        raise FinetuneError(f"{settings.data} has only one label ({labels[0]!r}); classification needs two or more")
    if settings.balance:
        rows = data_classify.balance(rows, settings.seed)
    if settings.max_examples and len(rows) > settings.max_examples:
        rows = [rows[i] for i in sorted(np.random.default_rng(settings.seed).choice(len(rows), settings.max_examples,
                                                                                    replace=False))]
    train_rows, val_rows, test_rows = data_classify.split(rows, seed=settings.seed)
    _check_split(settings.data, "labelled examples", len(rows), train_rows, val_rows, test_rows)

    tt.manual_seed(settings.seed)
    model, tok, what = load_base(settings.init)
    max_length = min(settings.max_length or model.cfg.context_length, model.cfg.context_length)
    enc = [data_classify.encode(part, tok, labels, max_length) for part in (train_rows, val_rows, test_rows)]
    classify.replace_head(model, len(labels))
    classify.set_trainable(model, settings.train, rank=settings.lora_rank, alpha=settings.lora_alpha)
    report = _trainable_report(model)
    log(f"base: {what}; labels {labels}; {len(enc[0])} train / {len(enc[1])} val / {len(enc[2])} test; "
        f"max length {max_length}; --train {settings.train}: {report['trainable_parameters']:,} of "
        f"{report['total_parameters']:,} parameters train")
    steps_log = MetricsRows(CLASSIFY_COLUMNS)
    history = trained(classify.train, settings, model, *enc, pad_id=tok.eot_id, epochs=settings.epochs, lr=settings.lr,
                      batch_size=settings.batch_size, weight_decay=settings.weight_decay, seed=settings.seed,
                      log=log, on_row=_also(steps_log.add, on_row))
    last = history[-1] if history else {}
    metrics = {"task": "classify", "data": os.path.abspath(settings.data), "init": os.path.abspath(settings.init),
               "train": settings.train,
               "labels": labels, "n_train": len(enc[0]), "n_val": len(enc[1]), "n_test": len(enc[2]),
               "train_accuracy": last.get("train_accuracy"), "val_accuracy": last.get("val_accuracy"),
               "test_accuracy": last.get("test_accuracy"), "epochs": settings.epochs, "lr": settings.lr,
               "batch_size": settings.batch_size, "seed": settings.seed, "max_length": max_length, **report,
               "lora_rank": settings.lora_rank if settings.train == "lora" else None,
               "lora_alpha": settings.lora_alpha if settings.train == "lora" else None,
               "seconds": round(time.perf_counter() - t0, 1), "history": history}
    start_saving(settings)
    save_model(settings.out, model, tok, {"task": "classify", "labels": labels, "max_length": max_length,
                                   "pad_id": tok.eot_id, "base": what, "train_mode": settings.train,
                                   "step": len(history)})
    write_metrics(settings.out, metrics, steps_log, plot_classification,
                  f"{describe(model.cfg)}, fine-tuned to classify: {settings.out} on {os.path.basename(settings.data)}")
    chance = classify.chance(enc[2], len(labels))[0]
    log(f"accuracy train {metrics['train_accuracy']:.3f}  val {metrics['val_accuracy']:.3f}  "
        f"test {metrics['test_accuracy']:.3f} (chance: {chance:.3f}, always the commonest label)")
    log(saved_line(settings.out))
    log(f"next: python -m gpt classify --checkpoint {shlex.quote(settings.out)} \"some text to label\"")
    return metrics


def run_predict(folder, texts):
    """[(label, probability of that label, text)] from a saved classifier."""
    model, tok, meta = load_classifier(folder)
    preds = classify.predict(model, tok, texts, meta["labels"], meta["max_length"], meta["pad_id"])
    return [(label, max(p), text) for (label, p), text in zip(preds, texts)]


# ----- instruction fine-tuning -----
@checked_and_locked
def run_instruct(settings, log=print, on_row=None):
    """``settings``: an InstructSettings (gpt/finetune/settings.py). Returns the metrics dict."""
    if not os.path.isfile(settings.data):
        raise FinetuneError(f"--data {settings.data}: no such file (make an offline one with `python -m gpt make-data "
                            "instruct --out FILE`)")
    check_out_folder(settings)
    t0 = time.perf_counter()
    entries = data_instruct.load_entries(settings.data)
    train_e, val_e, test_e = data_instruct.split(entries, seed=settings.seed)
    _check_split(settings.data, "entries", len(entries), train_e, val_e, test_e)
    if settings.max_test is not None:
        test_e = test_e[:settings.max_test]
    tt.manual_seed(settings.seed)
    model, tok, what = load_base(settings.init)
    L = model.cfg.context_length
    max_length = min(settings.max_length or L, L)
    enc = [[data_instruct.encode_entry(e, tok) for e in part] for part in (train_e, val_e)]
    cut = _check_answers_fit(enc[0], max_length) if settings.mask_prompt else 0
    if cut:
        log(f"note: with --mask-prompt, {cut} of {len(enc[0])} training examples lose every answer token to "
            f"the {max_length}-token context and teach nothing")
    too_long = sum(len(ids) + 1 > max_length for ids, _ in enc[0])
    if too_long:
        log(f"note: {too_long} of {len(enc[0])} training examples are longer than {max_length} tokens and are cut")
    if settings.train == "lora":
        lora.apply_lora(model, rank=settings.lora_rank, alpha=settings.lora_alpha)
        lora.mark_trainable(model)
    elif settings.train == "last":
        classify.set_trainable(model, "last")
    report = _trainable_report(model)
    log(f"base: {what}; {len(train_e)} train / {len(val_e)} val / {len(test_e)} test examples; "
        f"--train {settings.train}: "
        f"{report['trainable_parameters']:,} of {report['total_parameters']:,} parameters train")
    max_seconds = settings.max_minutes * 60 if settings.max_minutes else None
    steps_log = MetricsRows(INSTRUCT_COLUMNS)
    result = trained(instruct.train, settings, model, enc[0], enc[1], tok.eot_id, epochs=settings.epochs,
                     lr=settings.lr,
                     batch_size=settings.batch_size, weight_decay=settings.weight_decay, seed=settings.seed,
                     max_length=max_length,
                     mask_prompt=settings.mask_prompt, max_seconds=max_seconds, log=log, on_row=_also(steps_log.add,
                                                                                                      on_row))
    lora.merge_lora(model)
    log(f"answering {len(test_e)} held-out prompts ...")
    t1 = time.perf_counter()
    answers, em = instruct.answer_all(model, tok, test_e, tok.eot_id, settings.max_new_tokens, log=log)
    chance = instruct.chance_baseline(train_e, test_e)
    start_saving(settings)
    data_instruct.write_jsonl(answers, os.path.join(settings.out, "responses.jsonl"))
    metrics = {"task": "instruct", "data": os.path.abspath(settings.data), "init": os.path.abspath(settings.init),
               "train": settings.train, "n_train": len(train_e), "n_val": len(val_e), "n_test": len(test_e),
               "val_loss": result["val_loss"], **em, "chance_exact_match": chance["exact_match"],
               "chance_exact_match_by_kind": chance["by_kind"], "steps": result["steps"],
               "planned_steps": result["planned_steps"],
               "stopped_early": result["stopped_early"], "epochs": settings.epochs, "lr": settings.lr,
               "batch_size": settings.batch_size,
               "mask_prompt": settings.mask_prompt, "max_length": max_length, "seed": settings.seed, **report,
               "train_seconds": result["train_seconds"], "generate_seconds": round(time.perf_counter() - t1, 1),
               "seconds": round(time.perf_counter() - t0, 1), "history": result["history"]}
    save_model(settings.out, model, tok, {"task": "instruct", "base": what, "step": result["steps"]})
    write_metrics(settings.out, metrics, steps_log, plot_instruction,
                  f"{describe(model.cfg)}, instruction-tuned: {settings.out} on {os.path.basename(settings.data)}")
    log(f"val loss {result['val_loss']:.4f}; " + exact_match_line(em, chance))
    log(saved_line(settings.out, "the answers in responses.jsonl"))
    log(f"next: python -m gpt chat --checkpoint {shlex.quote(settings.out)}   (or with an instruction: "
        f"python -m gpt chat --checkpoint {shlex.quote(settings.out)} \"Reverse the list.\" "
        "--input \"time,class,read\")")
    return metrics


def exact_match_line(em, chance):
    """Exact match on the held-out answers, overall and by kind, each beside its chance baseline."""
    if not em.get("n"):
        return "no held-out answers to score"
    by_kind = "  ".join(f"{k} {v:.3f} (chance {chance['by_kind'].get(k, 0):.3f})"
                        for k, v in em.get("exact_match_by_kind", {}).items())
    return (f"exact match {em['exact_match']:.3f} on {em['n']} held-out (chance {chance['exact_match']:.3f}: always "
            "the commonest training answer of the kind)" + (f"; {by_kind}" if by_kind else ""))

