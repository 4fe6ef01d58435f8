"""Data for classification: read labelled text, balance, split, encode, and pad into batches.

Files are either a TSV of ``label<TAB>text`` lines (the SMS Spam Collection's own format) or a CSV
with ``label`` and ``text`` columns. Labels become ids 0..C-1 in sorted order.

Batches are padded on the right with the pad id (GPT-2's end-of-text) and carry each row's true
length: the classifier reads the hidden state of the last real token, ``lengths - 1``, which a causal
model computes without ever seeing the padding after it.
"""
import csv
import io
import os
import zipfile

import numpy as np

from bpe.files import download
from tinytensor.atomic import write_text

from .. import files
from .splits import seeded_split

SMS_SPAM_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"


def read_labeled(path):
    """[(label, text), ...] from a TSV (``label<TAB>text``) or a CSV with ``label,text`` columns.

    Errors name the file and line: a line with no tab, an empty label, a CSV row without both columns."""
    path = os.fspath(path)
    raw = files.read_text(path, files.MAX_FINETUNE_DATA, "a data file")
    if path.lower().endswith(".csv"):
        return _read_csv(raw, path)
    out = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep:
            raise ValueError(f"{path}:{n}: expected 'label<TAB>text', found no tab in {line[:60]!r}")
        if not label.strip():
            raise ValueError(f"{path}:{n}: the label (before the tab) is empty")
        out.append((label.strip(), text))
    if not out:
        raise ValueError(f"{path}: no examples")
    return out


def _read_csv(raw, path):
    try:
        rows = list(csv.reader(io.StringIO(raw, newline="")))
    except csv.Error as e:
        raise ValueError(f"{path}: not a readable CSV ({e})") from None
    if not rows:
        raise ValueError(f"{path}: empty CSV")
    header = [h.strip().lower() for h in rows[0]]
    if "label" not in header or "text" not in header:
        raise ValueError(f"{path}: a CSV needs a header with 'label' and 'text' columns, found {rows[0]}")
    li, ti = header.index("label"), header.index("text")
    out = []
    for n, r in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in r):
            continue
        if len(r) <= max(li, ti):
            raise ValueError(f"{path}: row {n} has {len(r)} columns, fewer than the header's 'label' and 'text'")
        if not r[li].strip():
            raise ValueError(f"{path}: row {n}: the label is empty")
        out.append((r[li].strip(), r[ti]))
    if not out:
        raise ValueError(f"{path}: no examples")
    return out


def label_ids(examples):
    """The labels in sorted order; a label's id is its position in this list."""
    return sorted({label for label, _ in examples})


def balance(examples, seed=0):
    """Undersample every class to the size of the smallest one (random choice, fixed by ``seed``);
    the order of the kept examples is the original order."""
    rng = np.random.default_rng(seed)
    by_label = {}
    for i, (label, _) in enumerate(examples):
        by_label.setdefault(label, []).append(i)
    n = min(len(v) for v in by_label.values())
    keep = sorted(int(i) for label in sorted(by_label) for i in rng.choice(by_label[label], n, replace=False))
    return [examples[i] for i in keep]


def split(examples, fractions=(0.7, 0.1, 0.2), seed=0):
    """Shuffle with ``seed`` and cut into train / val / test by ``fractions`` (the rest goes to test)."""
    return seeded_split(examples, fractions, seed)


def encode(examples, tokenizer, labels, max_length):
    """[(ids, label_id)]: text encoded (special-token text is treated as plain text) and cut to
    ``max_length`` tokens; an empty text becomes one end-of-text token so every row has a last token."""
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for label, text in examples:
        ids = encode_text(tokenizer, text, max_length)
        out.append((ids, index[label]))
    return out


def encode_text(tokenizer, text, max_length, pad_id=None):
    ids = list(tokenizer.encode_ordinary(text)) if hasattr(tokenizer, "encode_ordinary") \
        else list(tokenizer.encode(text))
    ids = ids[:max_length]
    if not ids:
        ids = [pad_id if pad_id is not None else (getattr(tokenizer, "eot_id", None) or 0)]
    return ids


def collate(sequences, pad_id):
    """Pad token lists on the right to the longest one.

    Returns ids (B, T) int64 and lengths (B,) int64; row b's last real token is ids[b, lengths[b] - 1].
    """
    if not sequences:
        raise ValueError("collate: empty batch")
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if lengths.min() < 1:
        raise ValueError("collate: every sequence needs at least one token")
    ids = np.full((len(sequences), int(lengths.max())), pad_id, dtype=np.int64)
    for b, s in enumerate(sequences):
        ids[b, :len(s)] = s
    return ids, lengths


def batches(encoded, batch_size, pad_id, shuffle=False, rng=None):
    """Yield (ids, lengths, labels) batches; ``shuffle`` uses ``rng`` (a NumPy Generator)."""
    order = rng.permutation(len(encoded)) if shuffle else np.arange(len(encoded))
    for start in range(0, len(order), batch_size):
        chunk = [encoded[i] for i in order[start:start + batch_size]]
        ids, lengths = collate([s for s, _ in chunk], pad_id)
        yield ids, lengths, np.array([y for _, y in chunk], dtype=np.int64)


def download_sms_spam(path, url=SMS_SPAM_URL):
    """Fetch the SMS Spam Collection (UCI) and write it as ``label<TAB>text`` lines to ``path``.

    Needs internet. The archive holds one file, ``SMSSpamCollection``, already in that format.
    """
    path = os.fspath(path)
    blob = download(url, "without a network, make offline data with `python -m gpt make-data classify --out FILE`")
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        name = next(n for n in z.namelist() if n.endswith("SMSSpamCollection"))
        text = z.read(name).decode("utf-8", errors="replace")
    write_text(path, text if text.endswith("\n") else text + "\n")
    return path
