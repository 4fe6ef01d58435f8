"""The Tokenizer: text -> ids -> text with a list of byte-pair merges.

A tokenizer is four things: a regex `pattern` that cuts text into chunks, the id of each of the 256
bytes, the `merges` in the order they were learned, and `special_tokens` (names such as
"<|endoftext|>" that map to one id and are never split). Encoding cuts the text into chunks, turns
each chunk into byte ids and applies the merges (bpe/merging.py); decoding joins the tokens' bytes.
"""
import os

import regex

from . import fileformat
from .merging import merge_chunk

_CACHE_LIMIT = 200_000  # chunks remembered before the cache is emptied


class _ChunkCache(dict):
    """chunk text -> token ids; computes and remembers missing chunks (most words repeat)."""

    def __init__(self, encode_chunk):
        super().__init__()
        self._encode_chunk = encode_chunk

    def __missing__(self, chunk):
        ids = self._encode_chunk(chunk)
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[chunk] = ids
        return ids


class Tokenizer:
    """A byte-level BPE tokenizer.

    Args:
        pattern: regex (for the `regex` module) that splits text into chunks, e.g. `bpe.GPT2_PATTERN`.
        merges: list of `((left_id, right_id), new_id)` in rank order; merge k must make id 256 + k.
        special_tokens: dict name -> id; ids must come after the merged tokens.
        byte_ids: the id of each byte 0..255 (a permutation of 0..255); default: byte b is id b.

    Attributes: `pattern`, `merges`, `special_tokens` (dict name -> id), `eot_id` (the id of
    "<|endoftext|>" or None), `n_vocab` (largest id + 1), `byte_ids`, `pair_ids` (dict
    (left_id, right_id) -> new_id, the merges as a lookup table).
    """

    def __init__(self, pattern, merges, special_tokens=None, byte_ids=None):
        try:
            self._re = regex.compile(pattern)
        except (regex.error, TypeError) as e:
            raise ValueError(f"invalid pattern {pattern!r}: {e}") from None
        self.pattern = pattern
        self.byte_ids = list(range(256)) if byte_ids is None else [int(b) for b in byte_ids]
        if sorted(self.byte_ids) != list(range(256)):
            raise ValueError("byte_ids must hold each of the ids 0..255 exactly once")
        self.merges = []
        self.pair_ids = {}                             # (left_id, right_id) -> new_id
        vocab = [b""] * 256                            # id -> bytes
        for b, i in enumerate(self.byte_ids):
            vocab[i] = bytes([b])
        for rank, merge in enumerate(merges):
            try:
                (left, right), new = merge
                left, right, new = int(left), int(right), int(new)
            except (TypeError, ValueError):
                raise ValueError(f"merge {rank} is {merge!r}, expected ((left_id, right_id), new_id)") from None
            if new != 256 + rank:
                raise ValueError(f"merge {rank} makes id {new}, expected {256 + rank}")
            if not (0 <= left < new and 0 <= right < new):
                raise ValueError(f"merge {rank} ({left}, {right}) uses an id not defined before it")
            if (left, right) in self.pair_ids:
                raise ValueError(f"merge {rank} repeats the pair ({left}, {right})")
            self.pair_ids[(left, right)] = new
            self.merges.append(((left, right), new))
            vocab.append(vocab[left] + vocab[right])
        self._vocab = vocab
        self.special_tokens = {}
        for name, i in (special_tokens or {}).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"special token name {name!r} must be a non-empty string")
            if not isinstance(i, int) or i < len(vocab):
                raise ValueError(f"special token {name!r} has id {i!r}; special ids must be ints "
                                 f">= {len(vocab)} (after the merged tokens)")
            if i in self.special_tokens.values():
                raise ValueError(f"special token {name!r} reuses id {i}")
            self.special_tokens[name] = i
        self._id_to_bytes = dict(enumerate(vocab))
        for name, i in self.special_tokens.items():
            self._id_to_bytes[i] = name.encode("utf-8")
        self.n_vocab = max(self._id_to_bytes) + 1
        self.eot_id = self.special_tokens.get("<|endoftext|>")
        self._identity_bytes = self.byte_ids == list(range(256))
        self._cache = _ChunkCache(self._encode_chunk)
        # longest first, so a special that contains another one wins
        names = sorted(self.special_tokens, key=len, reverse=True)
        self._special_re = regex.compile("|".join(map(regex.escape, names))) if names else None

    # ---- encoding -------------------------------------------------------------------------------
    def _encode_chunk(self, chunk):
        """Ids of one chunk (a str the pattern matched), merges applied."""
        try:
            data = chunk.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: encode it as U+FFFD, as tiktoken does
            data = chunk.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
        ids = list(data) if self._identity_bytes else [self.byte_ids[b] for b in data]
        return merge_chunk(ids, self.pair_ids) if len(ids) > 1 else ids

    def encode_ordinary(self, text):
        """Encode `text` treating special-token text as ordinary text."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        out = []
        extend, cache = out.extend, self._cache
        for chunk in self._re.findall(text):
            extend(cache[chunk])
        return out

    def encode(self, text, allowed_special=(), disallowed_special="all"):
        """Encode `text` to a list of ids.

        allowed_special: "all", or a collection of special-token names that may appear in `text`
            and become their single id. Default: none.
        disallowed_special: "all" (default: every special not allowed), or a collection of names:
            if such text appears, ValueError is raised (as tiktoken does). Pass () to encode any
            remaining special text as ordinary text.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        allowed = self._names(allowed_special, "allowed_special")
        disallowed = (set(self.special_tokens) - allowed if disallowed_special == "all"
                      else self._names(disallowed_special, "disallowed_special"))
        for name in disallowed:
            if name in text:
                raise ValueError(
                    f"text contains the special token {name!r}; pass allowed_special={{{name!r}}} "
                    f"(or 'all') to encode it as id {self.special_tokens[name]}, or "
                    f"disallowed_special=() to encode it as ordinary text")
        if not allowed:
            return self.encode_ordinary(text)
        if allowed == set(self.special_tokens):
            special_re = self._special_re
        else:
            names = sorted(allowed, key=len, reverse=True)
            special_re = regex.compile("|".join(map(regex.escape, names)))
        out, start = [], 0
        for m in special_re.finditer(text):
            out += self.encode_ordinary(text[start:m.start()])
            out.append(self.special_tokens[m.group()])
            start = m.end()
        out += self.encode_ordinary(text[start:])
        return out

    def _names(self, names, what):
        if names == "all":
            return set(self.special_tokens)
        if names in ("none", None):
            return set()
        if isinstance(names, str):
            names = {names}
        names = set(names)
        unknown = names - set(self.special_tokens)
        if unknown:
            raise ValueError(f"{what}: unknown special token(s) {sorted(unknown)}; "
                             f"this tokenizer has {sorted(self.special_tokens)}")
        return names

    # ---- decoding -------------------------------------------------------------------------------
    def decode_bytes(self, ids):
        """The bytes of a list of ids (a special token gives its name's UTF-8 bytes)."""
        ids = list(ids)
        try:
            return b"".join(map(self._id_to_bytes.__getitem__, ids))
        except (KeyError, TypeError):
            for i in ids:
                if not isinstance(i, int) and not hasattr(i, "__index__"):
                    raise ValueError(f"token id {i!r} is not an integer") from None
                if int(i) not in self._id_to_bytes:
                    raise ValueError(f"unknown token id {i!r}: this tokenizer's ids are "
                                     f"0..{self.n_vocab - 1}") from None
            raise

    def decode(self, ids, errors="replace"):
        """Text of a list of ids; bytes that are not valid UTF-8 become U+FFFD by default."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def token_bytes(self, i):
        """The bytes of one token id."""
        return self.decode_bytes([i])

    @property
    def vocab(self):
        """dict id -> bytes for every id, special tokens included."""
        return dict(self._id_to_bytes)

    # ---- files ----------------------------------------------------------------------------------
    def save(self, path):
        """Write the tokenizer to a text file (see bpe/fileformat.py); atomic via os.replace."""
        fileformat.write(path, self.pattern, self.merges, self.special_tokens, self.byte_ids)

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; raises ValueError saying what is wrong with a bad file."""
        fields = fileformat.read(path)
        try:
            return cls(**fields)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from None

    def __repr__(self):
        return (f"Tokenizer(n_vocab={self.n_vocab}, merges={len(self.merges)}, "
                f"special_tokens={self.special_tokens})")
