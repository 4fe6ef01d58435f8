"""The tokenizer file: versioned, line-based, readable in any text editor.

Version 1 holds a tokenizer trained by bpe (or GPT-2's), whose merge k makes id 256 + k:

    bpe-tokenizer 1
    pattern "<the regex, as a JSON string>"
    bytes identity                  (or: bytes followed by the 256 ids of bytes 0..255)
    specials 1
    "<|endoftext|>" 4096            (name as a JSON string, then its id)
    merges 3840
    101 32                          (merge k joins these two ids into id 256 + k)
    ...

Version 2 holds any tokenizer (from `bpe.from_hf`, `bpe.from_tiktoken`, `Tokenizer.from_vocab`), ids free:

    bpe-tokenizer 2
    pattern "<the regex, as a JSON string>"
    chunks tile                     (or: isolated, Hugging Face's Split: text between matches is a chunk too)
    normalizer none                 (or: NFC, NFD, NFKC, NFKD)
    ignore-merges no                (or: yes: a chunk that is a token is that token)
    rank-by order                   (or: id: the merge making the smaller id goes first)
    tokens 703
    0 21                            (an id, then its bytes in hex; the 256 single bytes among them)
    ...
    specials 2
    "<|im_start|>" 701
    "<think>" 702 ordinary          (an added token ordinary text may hold)
    template 701 |                  (ids put before | after a text by the original library)
    merges 446
    220 220 259                     (left right new, in rank order)
    ...

Reading checks every line and raises ValueError naming the file, the line and what is wrong; lines
may end in CRLF (a file that went through an editor or a checkout that converts line ends); numbers
are ASCII digits only. Writing goes to a new temporary in the same folder, then os.replace puts it
in place, so a crash never leaves half a file under the real name (bpe/files.py).
"""
import json
import os

from .files import read_bytes, replace_file  # noqa: F401 (replace_file: its old home)

MAGIC = "bpe-tokenizer"
VERSION = 1             # what `write` writes; `write_general` writes version 2
VERSIONS = ("1", "2")   # what `read` reads


def write(path, pattern, merges, special_tokens, byte_ids):
    """Write a tokenizer's parts to `path` atomically."""
    lines = [f"{MAGIC} {VERSION}", f"pattern {json.dumps(pattern)}"]
    if list(byte_ids) == list(range(256)):
        lines.append("bytes identity")
    else:
        lines.append("bytes " + " ".join(map(str, byte_ids)))
    lines.append(f"specials {len(special_tokens)}")
    lines += [f"{json.dumps(name)} {i}" for name, i in special_tokens.items()]
    lines.append(f"merges {len(merges)}")
    lines += [f"{left} {right}" for (left, right), _ in merges]
    replace_file(path, ("\n".join(lines) + "\n").encode("utf-8"))


def write_general(path, parts):
    """Write version 2 from `Tokenizer.from_vocab`'s arguments (a dict; see the module docstring)."""
    prefix, suffix = parts["template"]
    lines = [f"{MAGIC} 2", f"pattern {json.dumps(parts['pattern'])}",
             f"chunks {'isolated' if parts['keep_gaps'] else 'tile'}", f"normalizer {parts['normalizer'] or 'none'}",
             f"ignore-merges {'yes' if parts['ignore_merges'] else 'no'}", f"rank-by {parts['rank_by']}",
             f"tokens {len(parts['vocab'])}"]
    lines += [f"{i} {data.hex()}" for i, data in sorted(parts["vocab"].items())]
    lines.append(f"specials {len(parts['special_tokens'])}")
    lines += [f"{json.dumps(name)} {i}" + (" ordinary" if name in parts["ordinary_added"] else "")
              for name, i in parts["special_tokens"].items()]
    lines.append("template " + " ".join(map(str, prefix)) + " | " + " ".join(map(str, suffix)))
    lines.append(f"merges {len(parts['merges'])}")
    lines += [f"{left} {right} {new}" for (left, right), new in parts["merges"]]
    replace_file(path, ("\n".join(lines) + "\n").encode("utf-8"))


class _Lines:
    """Numbered lines of a file, with errors that name the file and line."""

    def __init__(self, path, text):
        if "\r\n" in text:            # CRLF line ends; a JSON string on a line never holds a raw CR
            text = text.replace("\r\n", "\n")
        self.path, self.lines, self.n = path, text.split("\n"), 0
        if self.lines and self.lines[-1] == "":
            self.lines.pop()

    def error(self, message):
        return ValueError(f"{self.path}: line {self.n}: {message}")

    def next(self, what):
        if self.n >= len(self.lines):
            raise ValueError(f"{self.path}: file ends early (after line {self.n}), expected {what}; "
                             f"the file is truncated or damaged")
        self.n += 1
        return self.lines[self.n - 1]

    def keyed(self, key):
        line = self.next(f"'{key} ...'")
        head, _, rest = line.partition(" ")
        if head != key:
            raise self.error(f"expected '{key} ...', found {line[:60]!r}")
        return rest

    def count(self, key):
        rest = self.keyed(key)
        if not _digits(rest):
            raise self.error(f"expected '{key} <count>', found {rest[:60]!r}")
        return int(rest)


def read(path):
    """Parse a tokenizer file: version 1 into keyword arguments for `Tokenizer(...)`, version 2 into
    keyword arguments for `Tokenizer.from_vocab(...)` plus "version": 2."""
    path = os.fspath(path)
    raw = read_bytes(path, what="tokenizer file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a bpe tokenizer file (not UTF-8 text: {e.reason} "
                         f"at byte {e.start})") from None
    lines = _Lines(path, text)
    first = lines.next("the header")
    magic, _, version = first.partition(" ")
    if magic != MAGIC:
        raise ValueError(f"{path}: not a bpe tokenizer file (first line is {first[:60]!r}, "
                         f"expected '{MAGIC} {VERSION}')")
    if version not in VERSIONS:
        raise ValueError(f"{path}: tokenizer file version {version!r} is not supported "
                         f"(this code reads versions {' and '.join(VERSIONS)})")
    pattern = _json(lines, lines.keyed("pattern"), str, "the pattern as a JSON string")
    if version == "2":
        return _read_general(lines, pattern)
    byte_text = lines.keyed("bytes")
    if byte_text == "identity":
        byte_ids = None
    else:
        parts = byte_text.split(" ")
        if len(parts) != 256 or not all(map(_digits, parts)):
            raise lines.error("expected 'bytes identity' or 'bytes' and 256 ids")
        byte_ids = [int(p) for p in parts]
    special_tokens, _ = _specials(lines, ordinary=False)
    merges = []
    for rank in range(lines.count("merges")):
        line = lines.next(f"merge {rank}")
        parts = line.split(" ")
        if len(parts) != 2 or not all(map(_digits, parts)):
            raise lines.error(f"expected two ids 'left right', found {line[:60]!r}")
        merges.append(((int(parts[0]), int(parts[1])), 256 + rank))
    _end(lines)
    return dict(pattern=pattern, merges=merges, special_tokens=special_tokens, byte_ids=byte_ids)


def _read_general(lines, pattern):
    keep_gaps = _choice(lines, "chunks", {"tile": False, "isolated": True})
    normalizer = _choice(lines, "normalizer", {"none": None, "NFC": "NFC", "NFD": "NFD", "NFKC": "NFKC",
                                               "NFKD": "NFKD"})
    ignore_merges = _choice(lines, "ignore-merges", {"no": False, "yes": True})
    rank_by = _choice(lines, "rank-by", {"order": "order", "id": "id"})
    vocab = {}
    for _ in range(lines.count("tokens")):
        line = lines.next("a token line")
        id_text, _, hex_text = line.partition(" ")
        if not _digits(id_text) or not _hex(hex_text):
            raise lines.error(f"expected an id and the token's bytes in hex, found {line[:60]!r}")
        if int(id_text) in vocab:
            raise lines.error(f"id {id_text} is given twice")
        vocab[int(id_text)] = bytes.fromhex(hex_text)
    special_tokens, ordinary = _specials(lines, ordinary=True)
    before, bar, after = lines.keyed("template").partition("|")
    if not bar or not all(map(_digits, before.split() + after.split())):
        raise lines.error("expected 'template <ids> | <ids>'")
    template = ([int(i) for i in before.split()], [int(i) for i in after.split()])
    merges = []
    for rank in range(lines.count("merges")):
        line = lines.next(f"merge {rank}")
        parts = line.split(" ")
        if len(parts) != 3 or not all(map(_digits, parts)):
            raise lines.error(f"expected three ids 'left right new', found {line[:60]!r}")
        merges.append(((int(parts[0]), int(parts[1])), int(parts[2])))
    _end(lines)
    return dict(version=2, pattern=pattern, vocab=vocab, merges=merges, special_tokens=special_tokens,
                rank_by=rank_by, ignore_merges=ignore_merges, normalizer=normalizer, ordinary_added=ordinary,
                keep_gaps=keep_gaps, template=template)


def _specials(lines, ordinary):
    """The 'specials' section: name -> id, and the names marked ordinary (version 2 only)."""
    special_tokens, marked = {}, set()
    for _ in range(lines.count("specials")):
        line = lines.next("a special token line")
        is_ordinary = ordinary and line.endswith(" ordinary")    # a JSON string ends in '"', never so
        name_text, _, id_text = line.removesuffix(" ordinary" if is_ordinary else "").rpartition(" ")
        name = _json(lines, name_text, str, "a JSON string and an id")
        if not _digits(id_text):
            raise lines.error(f"expected a JSON string and an id, found {line[:60]!r}")
        if name in special_tokens:
            raise lines.error(f"special token {name!r} is given twice")
        special_tokens[name] = int(id_text)
        if is_ordinary:
            marked.add(name)
    return special_tokens, marked


def _choice(lines, key, options):
    value = lines.keyed(key)
    if value not in options:
        raise lines.error(f"expected '{key}' and one of {', '.join(options)}, found {value[:60]!r}")
    return options[value]


def _end(lines):
    if lines.n < len(lines.lines):
        lines.n += 1
        raise lines.error("unexpected text after the last merge")


def _digits(text):
    """True for a run of 1 to 20 ASCII digits (str.isdigit also takes '١٢' and '²'; ids are below 2**31)."""
    return text.isascii() and text.isdigit() and len(text) <= 20


_HEX_DIGITS = set("0123456789abcdef")


def _hex(text):
    """True for the bytes of a token in lowercase hex (bytes.fromhex alone would also take spaces)."""
    return 0 < len(text) <= 2048 and len(text) % 2 == 0 and set(text) <= _HEX_DIGITS


def _json(lines, text, kind, what):
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, kind):
        raise lines.error(f"expected {what}, found {text[:60]!r}")
    return value
