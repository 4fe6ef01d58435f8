"""GPT-2's published tokenizer files, read into a `Tokenizer` that gives tiktoken's "gpt2" ids.

OpenAI released two files: `encoder.json` (token text -> id) and `vocab.bpe` (the 50,000 merges in
rank order, one "left right" pair a line after a "#version" header). Both write bytes as printable
characters through a fixed bytes <-> unicode table (`bytes_to_unicode`), so that a space shows as
"Ġ" and a newline as "Ċ". We undo that table to get each token's bytes and ids.
"""
import hashlib
import json
import os

from .files import download, read_bytes, replace_file
from .patterns import GPT2_PATTERN
from .tokenizer import Tokenizer

GPT2_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
GPT2_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


def bytes_to_unicode():
    """GPT-2's table byte -> printable character.

    Bytes that already print as themselves (and are not a space) keep their character; the other
    68 bytes, in increasing order, take the characters chr(256), chr(257), ...
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def gpt2(encoder_json, vocab_bpe=None):
    """A Tokenizer from GPT-2's `encoder.json` and `vocab.bpe` (or a folder holding both).

    Its ids are GPT-2's (and tiktoken's "gpt2"): "Hello, I am" -> [15496, 11, 314, 716];
    the special token "<|endoftext|>" is id 50256.
    """
    if vocab_bpe is None:
        folder = os.fspath(encoder_json)
        encoder_json, vocab_bpe = os.path.join(folder, "encoder.json"), os.path.join(folder, "vocab.bpe")
    encoder = _read_encoder(os.fspath(encoder_json))
    pairs = _read_merges(os.fspath(vocab_bpe))
    byte_to_char = bytes_to_unicode()
    char_to_byte = {c: b for b, c in byte_to_char.items()}
    try:
        byte_ids = [encoder[byte_to_char[b]] for b in range(256)]
    except KeyError as e:
        raise ValueError(f"{encoder_json}: no id for the single-byte token {e.args[0]!r}") from None
    merges = []
    for rank, (left, right) in enumerate(pairs):
        new = encoder.get(left + right)
        if left not in encoder or right not in encoder or new is None:
            raise ValueError(f"{vocab_bpe}: merge {rank} ({left!r} {right!r}) has a token missing "
                             f"from {encoder_json}")
        merges.append(((encoder[left], encoder[right]), new))
    known = set(byte_ids) | {new for _, new in merges}
    specials = {}
    for text, i in encoder.items():
        if i not in known:
            if any(c not in char_to_byte for c in text):
                raise ValueError(f"{encoder_json}: token {text!r} is not in GPT-2's byte alphabet")
            specials[bytes(char_to_byte[c] for c in text).decode("utf-8")] = i
    try:
        return Tokenizer(GPT2_PATTERN, merges, specials, byte_ids)
    except ValueError as e:
        raise ValueError(f"{encoder_json} and {vocab_bpe} do not fit together: {e}") from None


def _read_encoder(path):
    try:
        encoder = json.loads(read_bytes(path, what="encoder.json").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path}: not GPT-2's encoder.json ({e})") from None
    if not isinstance(encoder, dict) or not all(isinstance(v, int) for v in encoder.values()):
        raise ValueError(f"{path}: not GPT-2's encoder.json (expected a JSON object of token -> id)")
    return encoder


def _read_merges(path):
    try:
        lines = read_bytes(path, what="vocab.bpe").decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not GPT-2's vocab.bpe (not UTF-8: {e.reason})") from None
    if not lines[0].startswith("#version"):
        raise ValueError(f"{path}: not GPT-2's vocab.bpe (first line {lines[0][:40]!r} is not '#version ...')")
    pairs = []
    for n, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{path}: line {n}: expected 'left right', found {line[:60]!r}")
        pairs.append((parts[0], parts[1]))
    return pairs


def download_gpt2(folder):
    """Download GPT-2's encoder.json and vocab.bpe into `folder` (needs internet); returns the folder.

    Each file is checked against its known SHA-256, written under a temporary name and renamed into
    place. Files already present with the right hash are kept. Then: `bpe.gpt2(folder)`.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    for name, sha in GPT2_SHA256.items():
        path = os.path.join(folder, name)
        if os.path.exists(path) and _sha256(path) == sha:
            continue
        data = download(GPT2_URL + name, f"without a network, copy encoder.json and vocab.bpe into {folder}")
        if hashlib.sha256(data).hexdigest() != sha:
            raise ValueError(f"downloaded {name} does not have the expected SHA-256 {sha}")
        replace_file(path, data)
    return folder


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
