"""The tokenizer file: versioned, line-based, readable in any text editor.

    bpe-tokenizer 1
    pattern "<the regex, as a JSON string>"
    bytes identity                  (or: bytes followed by the 256 ids of bytes 0..255)
    specials 1
    "<|endoftext|>" 4096            (name as a JSON string, then its id)
    merges 3840
    101 32                          (merge k joins these two ids into id 256 + k)
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
VERSION = 1


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
    """Parse a tokenizer file into keyword arguments for `Tokenizer(...)`."""
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
    if version != str(VERSION):
        raise ValueError(f"{path}: tokenizer file version {version!r} is not supported "
                         f"(this code reads version {VERSION})")
    pattern = _json(lines, lines.keyed("pattern"), str, "the pattern as a JSON string")
    byte_text = lines.keyed("bytes")
    if byte_text == "identity":
        byte_ids = None
    else:
        parts = byte_text.split(" ")
        if len(parts) != 256 or not all(map(_digits, parts)):
            raise lines.error("expected 'bytes identity' or 'bytes' and 256 ids")
        byte_ids = [int(p) for p in parts]
    special_tokens = {}
    for _ in range(lines.count("specials")):
        line = lines.next("a special token line")
        name_text, _, id_text = line.rpartition(" ")
        name = _json(lines, name_text, str, "a JSON string and an id")
        if not _digits(id_text):
            raise lines.error(f"expected a JSON string and an id, found {line[:60]!r}")
        special_tokens[name] = int(id_text)
    merges = []
    for rank in range(lines.count("merges")):
        line = lines.next(f"merge {rank}")
        parts = line.split(" ")
        if len(parts) != 2 or not all(map(_digits, parts)):
            raise lines.error(f"expected two ids 'left right', found {line[:60]!r}")
        merges.append(((int(parts[0]), int(parts[1])), 256 + rank))
    if lines.n < len(lines.lines):
        lines.n += 1
        raise lines.error("unexpected text after the last merge")
    return dict(pattern=pattern, merges=merges, special_tokens=special_tokens, byte_ids=byte_ids)


def _digits(text):
    """True for a non-empty run of ASCII digits (str.isdigit also takes '١٢' and '²')."""
    return text.isascii() and text.isdigit()


def _json(lines, text, kind, what):
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, kind):
        raise lines.error(f"expected {what}, found {text[:60]!r}")
    return value
