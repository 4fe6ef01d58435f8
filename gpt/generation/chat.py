"""Answering instructions with an instruction-tuned model (the command is gpt/cli/chat.py).

Each instruction goes into the Alpaca template the model was tuned on (gpt/finetune/data_instruct.py),
and the answer is printed as it is generated (control characters escaped, gpt/generation/printable.py),
up to the end-of-text token. Greedy by default, as the fine-tuning's own evaluation answers.
"""
import json
import os
import shlex
import sys

from .. import files
from ..errors import TrainingError
from .printable import PrintableStream, printable


def classifier_hint(folder):
    """The one-line error for a classifier given where a text generator is expected."""
    return (f"{folder} is a classifier: it labels text rather than generating it; use "
            f"`python -m gpt classify --checkpoint {shlex.quote(folder)} \"some text\"`")


def not_a_chat_model(folder, meta):
    """The one-line error for a checkpoint that is not instruction-tuned (None when it is)."""
    q = shlex.quote(folder)
    if meta.get("task") == "instruct":
        return None
    if meta.get("task") == "classify":
        return classifier_hint(folder)
    return (f"{folder} is a language model that was not instruction-tuned, so it continues text rather than "
            f"answering: continue text with `python -m gpt sample --checkpoint {q} --prompt \"...\"`, or "
            f"instruction-tune it first: `python -m gpt finetune instruct --data data/instruct.json --init {q} "
            f"--out runs/sft --mask-prompt` (data from `python -m gpt make-data instruct --out data/instruct.json`)")


def load_chat_model(folder, device="cpu"):
    """(model, tokenizer) of an instruction-tuned checkpoint; TrainingError with what to do otherwise."""
    import bpe

    from ..training import checkpoint as ckpt
    meta = ckpt.read_meta(folder)
    problem = not_a_chat_model(folder, meta)
    if problem:
        raise TrainingError(problem)
    model, meta = ckpt.load_model(folder, meta, device=device)
    tok = bpe.Tokenizer.load(ckpt.tokenizer_path(folder, meta))
    if tok.eot_id is None:
        raise TrainingError(f"the tokenizer in {folder} has no <|endoftext|> token to end an answer with")
    return model, tok


def answer(model, tok, instruction, input_text="", stream=None, **sampling):
    """Generate the answer to one instruction, writing it to ``stream`` (default: standard output) as it
    comes, control characters escaped; returns its text as generated."""
    from ..finetune.data_instruct import format_prompt
    from .generate import TextStreamer, encode_tail, generate
    stream = PrintableStream(stream if stream is not None else sys.stdout)
    L = model.cfg.context_length
    ids, cut = encode_tail(tok.encode_ordinary, format_prompt({"instruction": instruction, "input": input_text}), L - 1)
    if cut:                                       # cutting its start would cut the template's header
        raise ValueError(f"the instruction and its input, in the prompt's template, do not fit the model's context "
                         f"of {L} tokens (one is left to answer with): shorten them")
    eot = tok.eot_id
    streamer = TextStreamer(tok, [], stream)
    new = []

    def on_token(column):
        if int(column[0]) != eot:
            new.append(int(column[0]))
            streamer(column)
    generate(model, [ids], eos_id=eot, on_token=on_token, vocab_size=tok.n_vocab, **sampling)
    streamer.finish()
    return tok.decode(new)


RESPONSES = "responses.jsonl"      # fine-tuning's answers to its held-out instructions (gpt/finetune/pipeline.py)


def answered_right(folder, most=3, limit=1 << 20):
    """Up to ``most`` held-out entries that the model in ``folder`` answered right, from its responses.jsonl
    (read up to ``limit`` bytes; a line that is not an entry is skipped): instructions that are known to work.

    One per kind of task first, the kinds it learned most above chance (metrics.json's exact match by kind
    against its chance score) first; a kind at or below chance is left out when another is above it, since
    a right answer there may be the commonest answer given every time. Then more instructions of the kinds
    shown, until ``most``. [] when there is no such file."""
    path = os.path.join(folder, RESPONSES)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(limit)
    except OSError:
        return []
    rows = []                                           # (kind, entry); a kind that is not a string is none
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("correct") is True \
                and all(isinstance(row.get(k, ""), str) for k in ("instruction", "input", "output")):
            rows.append((row.get("kind") if isinstance(row.get("kind"), str) else None, row))
    lift = _lift_by_kind(folder)
    if any(v > 0 for v in lift.values()):
        rows = [(kind, row) for kind, row in rows if lift.get(kind, 0) > 0]
    rows.sort(key=lambda kind_row: -lift.get(kind_row[0], 0))      # stable: file order within a kind
    found, kinds, seen = [], set(), set()
    for first_pass in (True, False):
        for kind, row in rows:
            if len(found) == most:
                return found
            kind = kind or row["instruction"]
            if row["instruction"] in seen or (first_pass and kind in kinds):
                continue
            seen.add(row["instruction"])
            kinds.add(kind)
            found.append(row)
    return found


def _lift_by_kind(folder):
    """kind -> exact match minus its chance score, from fine-tuning's metrics.json ({} when it says none)."""
    try:
        metrics = json.loads(files.read_text(os.path.join(folder, "metrics.json"), files.MAX_JSON, "metrics.json"))
        scores, chance = metrics["exact_match_by_kind"], metrics["chance_exact_match_by_kind"]
        return {k: float(v) - float(chance[k]) for k, v in scores.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def greeting(folder):
    """The first lines of an interactive chat: how to talk to it, and what it can answer."""
    lines = [f"chatting with {folder}: type an instruction, then its input (Enter for none); Ctrl-D or 'exit' quits.",
             "It knows only the kinds of instruction it was tuned on, and the words they used: anything else "
             "gets a confident-looking guess."]
    worked = answered_right(folder)
    if worked:
        lines.append(f"Held-out instructions it answered right ({os.path.join(folder, RESPONSES)} has them all):")
        for row in worked:
            given = f"  [input: {row['input']}]" if row.get("input") else ""
            lines.append(f"  {row['instruction']}{given}  ->  {row['output']}")
    return "\n".join(printable(line) for line in lines)
