"""Instruction fine-tuning: teach a pretrained GPT to answer Alpaca-style prompts.

The loss is the ordinary next-token cross-entropy over prompt + response + one end-of-text, with the
padding (and, with ``mask_prompt``, the prompt) left out through ``ignore_index`` (see
``data_instruct.collate``). After training, the model answers the held-out prompts greedily and each
answer is compared with the expected output: exact match, after stripping surrounding whitespace.
"""
import math
import time

import numpy as np

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import optim

from ..training.schedule import lr_at
from ..training.step import evaluating, train_step
from . import data_instruct


def batch_loss(model, inputs, targets):
    """Mean cross-entropy over the targets that are not ``ignore_index``."""
    return F.cross_entropy(model(inputs), targets)


def _loss(value):
    """A loss for a log line: four decimals always (0.5200, not 0.52), n/a when there is none."""
    return "n/a" if value is None else f"{value:.4f}"


def evaluate_loss(model, items, batch_size, pad_id, **collate_kw):
    """Token-weighted mean loss over ``items`` (eval mode)."""
    total, count = 0.0, 0
    with evaluating(model):
        for inputs, targets in data_instruct.batches(items, batch_size, pad_id, **collate_kw):
            n = int((targets != data_instruct.IGNORE_INDEX).sum())
            if n:
                total += float(F.cross_entropy(model(inputs), targets, reduction="sum").item())
                count += n
    return total / count if count else float("nan")


def train(model, train_items, val_items, pad_id, epochs=2, lr=5e-4, batch_size=8, weight_decay=0.1, seed=0,
          max_length=None, mask_prompt=False, warmup=20, max_seconds=None, eval_every=None, log=print,
          max_grad_norm=1.0, on_row=None):
    """Fine-tune on [(ids, prompt_len)] items. Returns a dict with the losses and the time taken.

    ``on_row(row)``: called after every step (kind "train") and every evaluation (kind "eval"), with
    the columns of ``gpt.training.metrics.INSTRUCT_COLUMNS`` ("tokens": positions run, padding included).

    ``max_seconds`` stops early (after the step that crosses it), so a run fits a time budget; the
    learning-rate schedule (warmup, then cosine to lr / 10: gpt/training/schedule.py) then runs on whichever is
    further along, steps or time. Each step is ``gpt.training.step.train_step``: a NaN or Inf loss or gradient
    raises NonFiniteError before it reaches the weights.
    """
    collate_kw = dict(max_length=max_length, mask_prompt=mask_prompt)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    steps_per_epoch = math.ceil(len(train_items) / batch_size)
    total = epochs * steps_per_epoch
    eval_every = eval_every or steps_per_epoch
    step, start, recent, history, stopped, tokens = 0, time.perf_counter(), [], [], False, 0
    on_row = on_row or (lambda row: None)
    model.train()
    for epoch in range(1, epochs + 1):
        for inputs, targets in data_instruct.batches(train_items, batch_size, pad_id, shuffle=True, rng=rng,
                                                     **collate_kw):
            # with a time limit the schedule ends at whichever comes first: the last step or the limit
            done = step if max_seconds is None else max(step, total * (time.perf_counter() - start) / max_seconds)
            step += 1
            if not (targets != data_instruct.IGNORE_INDEX).any():
                continue               # everything cut away by max_length: nothing to learn from
            began = time.perf_counter()
            result = train_step(opt, lambda b: batch_loss(model, *b), [(inputs, targets)],
                                lr_at(done, total, lr, warmup=warmup), grad_clip=max_grad_norm, step=step,
                                params=params)
            recent.append(result.loss)
            elapsed = time.perf_counter() - start
            tokens += inputs.size
            on_row({"kind": "train", "step": step, "epoch": epoch, "tokens": tokens, "train_loss": result.loss,
                    "lr": result.lr, "grad_norm": result.grad_norm, "tokens_per_s": round(inputs.size / max(time.perf_counter() - began, 1e-9)),
                    "elapsed_s": round(elapsed, 2)})
            if step % eval_every == 0 or step == total:
                val = evaluate_loss(model, val_items, batch_size * 2, pad_id, **collate_kw) if val_items else None
                train_loss = float(np.mean(recent)) if recent else None
                history.append({"step": step, "epoch": epoch, "train_loss": train_loss,
                                "val_loss": val, "seconds": round(elapsed, 1)})
                on_row({"kind": "eval", "step": step, "epoch": epoch, "tokens": tokens, "train_loss": train_loss,
                        "val_loss": val, "elapsed_s": round(elapsed, 2)})
                log(f"step {step}/{total} (epoch {epoch}): train loss {_loss(train_loss)}  val loss {_loss(val)}  "
                    f"({elapsed:.0f} s)")
                recent = []
            if max_seconds is not None and elapsed > max_seconds:
                stopped = True
                log(f"stopping after {step} steps: the time limit of {max_seconds:.0f} s is reached")
                break
        if stopped:
            break
    val = evaluate_loss(model, val_items, batch_size * 2, pad_id, **collate_kw) if val_items else None
    train_seconds = time.perf_counter() - start
    return {"steps": step, "planned_steps": total, "val_loss": val, "train_seconds": round(train_seconds, 1),
            "history": history, "stopped_early": stopped}


@tt.no_grad()
def respond(model, tokenizer, entry, eos_id, max_new_tokens=32):
    """The model's greedy answer to one entry (text after the response header, up to end-of-text)."""
    from ..generation.generate import generate
    model.eval()
    prompt = data_instruct._encode(tokenizer, data_instruct.format_prompt(entry))
    room = model.cfg.context_length - len(prompt)
    if room < 1:
        prompt = prompt[-(model.cfg.context_length - 1):]
        room = 1
    out = generate(model, np.array([prompt], dtype=np.int64), max_new_tokens=min(max_new_tokens, room),
                       temperature=0.0, eos_id=eos_id, vocab_size=tokenizer.n_vocab)
    new = [int(t) for t in np.asarray(out)[0, len(prompt):]]
    if eos_id in new:
        new = new[:new.index(eos_id)]
    return tokenizer.decode(new)


def is_correct(response, expected):
    return response.strip() == str(expected).strip()


def answer_all(model, tokenizer, entries, eos_id, max_new_tokens=32, log=None):
    """Rows for responses.jsonl (each entry plus "response" and "correct") and the accuracy report."""
    rows = []
    for i, e in enumerate(entries):
        r = respond(model, tokenizer, e, eos_id, max_new_tokens)
        rows.append({**e, "response": r, "correct": is_correct(r, e["output"])})
        if log and (i + 1) % 50 == 0:
            log(f"answered {i + 1}/{len(entries)}")
    return rows, exact_match_report(rows)


def chance_baseline(train_entries, test_entries):
    """The exact match of a model that ignores the question and always gives the commonest training answer
    of the entry's kind (of all entries, when they have no "kind"): the score to beat. For yes/no that is
    about 0.5; for a sum or a reversed list, near 0. Returns {"exact_match", "by_kind"}."""
    by_kind = {}
    for e in train_entries:
        counts = by_kind.setdefault(e.get("kind"), {})
        counts[e["output"].strip()] = counts.get(e["output"].strip(), 0) + 1
    guess = {k: max(sorted(c), key=c.get) for k, c in by_kind.items()}
    hits = [e.get("kind") in guess and e["output"].strip() == guess[e.get("kind")] for e in test_entries]
    report = {"exact_match": sum(hits) / len(hits) if hits else None, "by_kind": {}}
    for kind in sorted(k for k in {e.get("kind") for e in test_entries} if k is not None):
        mine = [h for h, e in zip(hits, test_entries) if e.get("kind") == kind]
        report["by_kind"][kind] = sum(mine) / len(mine)
    return report


def exact_match_report(rows):
    """{"exact_match": overall, "exact_match_by_kind": {kind: accuracy}, "n": count, ...}."""
    if not rows:
        return {"exact_match": None, "n": 0}
    report = {"exact_match": sum(r["correct"] for r in rows) / len(rows), "n": len(rows)}
    kinds = sorted({r["kind"] for r in rows if "kind" in r})
    if kinds:
        report["exact_match_by_kind"] = {
            k: sum(r["correct"] for r in rows if r.get("kind") == k) / sum(1 for r in rows if r.get("kind") == k)
            for k in kinds}
        report["n_by_kind"] = {k: sum(1 for r in rows if r.get("kind") == k) for k in kinds}
    return report
