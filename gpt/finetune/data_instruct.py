"""Data for instruction fine-tuning: the Alpaca prompt, encoding, and the padding/masking collate.

An entry is ``{"instruction", "input", "output"}``. The model sees

    Below is an instruction that describes a task. Write a response that appropriately completes the request.

    ### Instruction:
    {instruction}

    ### Input:            <- only when "input" is not empty
    {input}

    ### Response:
    {output}<|endoftext|>

The prompt (everything up to and including "### Response:\\n") and the output are encoded
separately and joined, so the prompt given at generation time is exactly the one seen in training.
"""
import json

import numpy as np

from tinytensor.atomic import replacing

from .. import files
from .splits import seeded_split

IGNORE_INDEX = -100
RESPONSE_HEADER = "\n\n### Response:\n"


def format_input(entry):
    """The Alpaca instruction (and input, when there is one), without the response header."""
    text = ("Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request."
            f"\n\n### Instruction:\n{entry['instruction']}")
    if entry.get("input"):
        text += f"\n\n### Input:\n{entry['input']}"
    return text


def format_prompt(entry):
    """What the model is given at generation time: the Alpaca input plus the response header."""
    return format_input(entry) + RESPONSE_HEADER


# an entry's fields: name -> required? Each is a string; "kind" (a task's name) is used to report
# accuracy per kind. Other keys are kept and not read.
ENTRY_FIELDS = {"instruction": True, "output": True, "input": False, "kind": False}


def load_entries(path):
    """A JSON list of {"instruction", "input", "output"} objects (extra keys such as "kind" are kept).

    Errors name the file, the entry and the field: a missing or non-string (null, number, list) value."""
    raw = files.read_bytes(path, files.MAX_FINETUNE_DATA, "a data file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path} is not a JSON file of instruction entries ({str(exc)[:100]}); `python -m gpt "
                         "make-data instruct --out FILE` writes one") from None
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON list of instruction entries")
    for i, e in enumerate(data):
        if not isinstance(e, dict):
            raise ValueError(f"{path}: entry {i} is {json.dumps(e)[:40]}, not an object with 'instruction' and "
                             "'output'")
        for name, required in ENTRY_FIELDS.items():
            if name not in e:
                if required:
                    raise ValueError(f"{path}: entry {i} has no {name!r}")
            elif not isinstance(e[name], str):
                raise ValueError(f"{path}: entry {i}: {name!r} must be a string, not {json.dumps(e[name])[:40]}")
        e.setdefault("input", "")
    return data


def split(entries, fractions=(0.85, 0.05, 0.10), seed=0):
    """Shuffle with ``seed`` and cut into train / val / test (the book's 85/5/10 by default)."""
    return seeded_split(entries, fractions, seed)


def _encode(tokenizer, text):
    return list(tokenizer.encode_ordinary(text)) if hasattr(tokenizer, "encode_ordinary") \
        else list(tokenizer.encode(text))


def encode_entry(entry, tokenizer):
    """(token ids of prompt + output, number of prompt tokens). No end-of-text yet: collate adds it."""
    prompt = _encode(tokenizer, format_prompt(entry))
    return prompt + _encode(tokenizer, entry["output"]), len(prompt)


def collate(items, pad_id, ignore_index=IGNORE_INDEX, max_length=None, mask_prompt=False):
    """Turn [(ids, prompt_len), ...] into inputs and targets (B, T) int64, the book's recipe:

    1. append one end-of-text (``pad_id``) to every sequence, then pad with ``pad_id`` to the longest
       of them;
    2. inputs are tokens [0, n-1), targets tokens [1, n): position t learns to predict token t+1;
    3. in the targets, every padding id after the first (the real end-of-text) becomes
       ``ignore_index``, so the model learns to stop but padding costs nothing;
    4. with ``mask_prompt``, targets before position prompt_len - 1 become ``ignore_index`` too: the
       first kept target, at position prompt_len - 1, is the first token of the response;
    5. with ``max_length``, both are cut to that many positions.
    """
    if not items:
        raise ValueError("collate: empty batch")
    width = max(len(ids) for ids, _ in items) + 1               # longest sequence + its end-of-text
    padded = np.full((len(items), width), pad_id, dtype=np.int64)
    for b, (ids, _) in enumerate(items):
        padded[b, :len(ids)] = ids                              # padded[b, len(ids)] is its end-of-text
    inputs = padded[:, :-1].copy()                              # (B, width - 1)
    targets = padded[:, 1:].copy()                              # targets[b, t] = padded[b, t + 1]
    for b, (ids, prompt_len) in enumerate(items):
        targets[b, len(ids):] = ignore_index                    # the end-of-text sits at targets[b, len(ids) - 1]
        if mask_prompt:
            targets[b, :max(prompt_len - 1, 0)] = ignore_index
    if max_length is not None:
        inputs, targets = inputs[:, :max_length], targets[:, :max_length]
    return inputs, targets


def batches(items, batch_size, pad_id, shuffle=False, rng=None, **collate_kw):
    order = rng.permutation(len(items)) if shuffle else np.arange(len(items))
    for start in range(0, len(order), batch_size):
        yield collate([items[i] for i in order[start:start + batch_size]], pad_id, **collate_kw)


def write_jsonl(rows, path):
    """One JSON object a line, written to a temporary name and renamed into place."""
    with replacing(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
