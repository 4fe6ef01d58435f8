"""The Tokenizer: text -> ids -> text with a list of byte-pair merges.

A tokenizer is four things: a regex `pattern` that cuts text into chunks, the id of each of the 256
bytes, the `merges` in the order they were learned, and `special_tokens` (names such as
"<|endoftext|>" that map to one id and are never split). Encoding cuts the text into chunks, turns
each chunk into byte ids and applies the merges (bpe/merging.py); decoding joins the tokens' bytes.

Tokenizers of other libraries (`bpe.from_hf`, `bpe.from_tiktoken`) are the same machine with a few
more parts, given to `Tokenizer.from_vocab`: ids numbered freely (a merge's rank is then its place in
the list, not its id), a whole chunk that is itself a token taken as one token ("ignore_merges"), a
Unicode normalizer run before splitting, and added tokens that ordinary text may hold.
"""
import os
import unicodedata

import regex

from . import fileformat
from .merging import merge_chunk
from .patterns import Splitter

_CACHE_LIMIT = 200_000  # chunks remembered before the cache is emptied
MAX_ID = 2 ** 31 - 1    # token ids fit in int32 arrays
NORMALIZERS = ("NFC", "NFD", "NFKC", "NFKD")


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
        pattern: regex (for the `regex` module) that splits text into chunks, e.g. `bpe.GPT2_PATTERN`;
            it must match every character (a pattern that would drop text is refused).
        merges: list of `((left_id, right_id), new_id)` in rank order; merge k must make id 256 + k.
        special_tokens: dict name -> id; ids must come after the merged tokens (and below 2**31).
        byte_ids: the id of each byte 0..255 (a permutation of 0..255); default: byte b is id b.

    Attributes: `pattern`, `merges`, `special_tokens` (dict name -> id), `eot_id` (the id of
    "<|endoftext|>" or None), `n_vocab` (largest id + 1), `byte_ids`, `pair_ids` (dict
    (left_id, right_id) -> new_id, the merges as a lookup table), `source` (the file it was read
    from, or None; errors name it), and for tokenizers from other libraries: `normalizer` (None or
    "NFC"...), `ignore_merges`, `ordinary_added` (added tokens that ordinary text may hold: always
    matched, never refused), `template` ((prefix_ids, suffix_ids) that the original library's
    `encode` adds around a text, e.g. Llama 3's <|begin_of_text|>; `encode` here never adds them).
    """

    def __init__(self, pattern, merges, special_tokens=None, byte_ids=None):
        byte_ids = list(range(256)) if byte_ids is None else [int(b) for b in byte_ids]
        if sorted(byte_ids) != list(range(256)):
            raise ValueError("byte_ids must hold each of the ids 0..255 exactly once")
        vocab = [b""] * 256                            # id -> bytes
        for b, i in enumerate(byte_ids):
            vocab[i] = bytes([b])
        checked = []
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
            vocab.append(vocab[left] + vocab[right])
            checked.append(((left, right), new))
        for name, i in (special_tokens or {}).items():
            if _is_id(i) and i < len(vocab):
                raise ValueError(f"special token {name!r} has id {i!r}; special ids must be ints "
                                 f">= {len(vocab)} (after the merged tokens)")
        self._build(Splitter(pattern), dict(enumerate(vocab)), byte_ids, checked, special_tokens,
                    rank_by="id")
        self._own_format = True

    @classmethod
    def from_vocab(cls, pattern, vocab, merges, special_tokens=None, *, rank_by="order", ignore_merges=False,
                   normalizer=None, ordinary_added=(), keep_gaps=False, template=((), ()), source=None):
        """A tokenizer from an explicit vocabulary, as other libraries' files give it.

        vocab: dict id -> bytes, holding each of the 256 single bytes once.
        merges: list of ((left_id, right_id), new_id); vocab[new_id] must be vocab[left] + vocab[right].
        rank_by: "order" (Hugging Face: the earlier in the list, the earlier merged) or "id" (tiktoken:
            the smaller the new id, the earlier; merges may then share a new id).
        ignore_merges: a chunk whose bytes are a token is that one token (Llama 3; tiktoken always).
        normalizer: None or "NFC", "NFD", "NFKC", "NFKD", applied to text outside added tokens.
        ordinary_added: names in `special_tokens` that ordinary text may hold (always matched).
        keep_gaps: text the pattern does not match becomes chunks of its own (Hugging Face's "Isolated").
        template: (prefix_ids, suffix_ids) the original library adds around a text (kept as `template`).
        """
        tok = cls.__new__(cls)
        if normalizer not in (None, *NORMALIZERS):
            raise ValueError(f"normalizer {normalizer!r} is not one of {', '.join(NORMALIZERS)}")
        if rank_by not in ("order", "id"):
            raise ValueError(f"rank_by must be 'order' or 'id', got {rank_by!r}")
        byte_ids = {}
        for i, data in vocab.items():
            if not _is_id(i) or type(data) is not bytes or not data:
                raise ValueError(f"vocab entry {i!r}: {data!r} is not an id (0 to {MAX_ID}) and non-empty bytes")
            if len(data) == 1:
                if data[0] in byte_ids:
                    raise ValueError(f"ids {byte_ids[data[0]]} and {i} are both the byte {data!r}")
                byte_ids[data[0]] = i
        missing = [b for b in range(256) if b not in byte_ids]
        if missing:
            raise ValueError(f"the vocabulary has no token for {len(missing)} of the 256 bytes (e.g. byte "
                             f"0x{missing[0]:02x}); a byte-level BPE needs them all")
        tok._build(Splitter(pattern, source, keep_gaps), vocab, [byte_ids[b] for b in range(256)], merges,
                   special_tokens, rank_by=rank_by, ordinary_added=ordinary_added)
        tok._vocab = dict(vocab)                       # the model's own tokens, for `save`
        tok.ignore_merges = bool(ignore_merges)
        tok._whole = {data: i for i, data in vocab.items()} if ignore_merges else None
        tok.normalizer = normalizer
        for part in template:
            for i in part:
                if i not in tok._id_to_bytes:
                    raise ValueError(f"the template uses id {i!r}, which is not a token")
        tok.template = tuple(list(part) for part in template)
        tok.source = source
        return tok

    def _build(self, splitter, vocab, byte_ids, merges, special_tokens, *, rank_by, ordinary_added=()):
        """Set every field from checked parts; `vocab` maps each id to its bytes."""
        self._split = splitter
        self.pattern = splitter.pattern
        self.byte_ids = list(byte_ids)
        self.merges = []
        self.pair_ids = {}                             # (left_id, right_id) -> new_id
        self._ranks = {}                               # (left_id, right_id) -> rank (merge order)
        self._new_of = None if rank_by == "id" else [] # rank -> new id (None: the rank is the new id)
        for rank, ((left, right), new) in enumerate(merges):
            for i in (left, right, new):
                if not _is_id(i) or i not in vocab:
                    raise ValueError(f"merge {rank} ({left!r}, {right!r}) -> {new!r} uses an id that is not a token")
            if (left, right) in self.pair_ids:
                raise ValueError(f"merge {rank} repeats the pair ({left}, {right})")
            if vocab[left] + vocab[right] != vocab[new]:
                raise ValueError(f"merge {rank} joins {vocab[left]!r} and {vocab[right]!r} into id {new}, "
                                 f"which is {vocab[new]!r}")
            self.pair_ids[(left, right)] = new
            if self._new_of is None:
                self._ranks[(left, right)] = new
            else:
                self._ranks[(left, right)] = rank
                self._new_of.append(new)
            self.merges.append(((left, right), new))
        if self._new_of is None:
            self._ranks = self.pair_ids                # one table serves both
        self._id_to_bytes = dict(vocab)
        self.special_tokens = {}
        for name, i in (special_tokens or {}).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"special token name {name!r} must be a non-empty string")
            if not _is_id(i):
                raise ValueError(f"special token {name!r} has id {i!r}; special ids must be ints "
                                 f"from 0 to {MAX_ID}")
            if i in self.special_tokens.values():
                raise ValueError(f"special token {name!r} reuses id {i}")
            if i in vocab and vocab[i] != name.encode("utf-8"):
                raise ValueError(f"special token {name!r} has id {i}, which is already the token {vocab[i]!r}")
            self.special_tokens[name] = i
            self._id_to_bytes[i] = name.encode("utf-8")
        self.ordinary_added = frozenset(ordinary_added)
        unknown = self.ordinary_added - set(self.special_tokens)
        if unknown:
            raise ValueError(f"ordinary_added names {sorted(unknown)}, which are not added tokens")
        self.n_vocab = max(self._id_to_bytes) + 1
        self.eot_id = self.special_tokens.get("<|endoftext|>")
        self._identity_bytes = self.byte_ids == list(range(256))
        self._cache = _ChunkCache(self._encode_chunk)
        self._special_re = _alternation(self.special_tokens)
        self._ordinary_re = _alternation(self.ordinary_added)
        self._whole, self.ignore_merges, self.normalizer, self.template = None, False, None, ([], [])
        self._own_format, self.source = False, None

    @property
    def source(self):
        """The file this tokenizer was read from (None if it was made in memory); errors name it."""
        return self._split.name

    @source.setter
    def source(self, path):
        self._split.name = None if path is None else os.fspath(path)

    # ---- encoding -------------------------------------------------------------------------------
    def _encode_chunk(self, chunk):
        """Ids of one chunk (a str the pattern matched), merges applied."""
        try:
            data = chunk.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: encode it as U+FFFD, as tiktoken does
            data = chunk.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
        if self._whole is not None:
            whole = self._whole.get(data)
            if whole is not None:
                return [whole]
        ids = list(data) if self._identity_bytes else [self.byte_ids[b] for b in data]
        return merge_chunk(ids, self._ranks, self._new_of) if len(ids) > 1 else ids

    def split(self, text):
        """The chunks `text` is cut into before merging (after the normalizer, if any); joined, they
        give the (normalized) text back. Special tokens are not looked for."""
        if self.normalizer is not None:
            text = unicodedata.normalize(self.normalizer, text)
        return self._split(text)

    def _encode_text(self, text):
        """Normalize, split and merge a text that holds no added token to match."""
        out = []
        extend, cache = out.extend, self._cache
        for chunk in self.split(text):
            extend(cache[chunk])
        return out

    def encode_ordinary(self, text):
        """Encode `text` treating special-token text as ordinary text (except `ordinary_added` tokens,
        which ordinary text may hold)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        if self._ordinary_re is None:
            return self._encode_text(text)
        return self._encode_around(text, self._ordinary_re)

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
        allowed = self._names(allowed_special, "allowed_special") | self.ordinary_added
        if disallowed_special == "all":
            if len(allowed) < len(self.special_tokens):
                found = self._special_re.search(text) if not allowed else next(
                    (m for m in self._special_re.finditer(text) if m.group() not in allowed), None)
                if found is not None:
                    self._refuse(found.group())
        else:
            for name in self._names(disallowed_special, "disallowed_special") - self.ordinary_added:
                if name in text:
                    self._refuse(name)
        if not allowed:
            return self._encode_text(text)
        if allowed == set(self.special_tokens):
            special_re = self._special_re
        elif allowed == self.ordinary_added:
            special_re = self._ordinary_re
        else:
            special_re = _alternation(allowed)
        return self._encode_around(text, special_re)

    def _encode_around(self, text, special_re):
        out, start = [], 0
        for m in special_re.finditer(text):
            out += self._encode_text(text[start:m.start()])
            out.append(self.special_tokens[m.group()])
            start = m.end()
        out += self._encode_text(text[start:])
        return out

    def _refuse(self, name):
        raise SpecialTokenError(name, f"text contains the special token {name!r}; pass allowed_special={{{name!r}}} "
                                      f"(or 'all') to encode it as id {self.special_tokens[name]}, or "
                                      f"disallowed_special=() to encode it as ordinary text")

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
        """Write the tokenizer to a text file (see bpe/fileformat.py: version 1 for bpe's own tokenizers,
        version 2 for those of other libraries); atomic via os.replace."""
        if self._own_format:
            fileformat.write(path, self.pattern, self.merges, self.special_tokens, self.byte_ids)
            return
        fileformat.write_general(path, dict(
            pattern=self.pattern, vocab=self._vocab, merges=self.merges, special_tokens=self.special_tokens,
            rank_by="id" if self._new_of is None else "order", ignore_merges=self.ignore_merges,
            normalizer=self.normalizer, ordinary_added=self.ordinary_added, keep_gaps=self._split.keep_gaps,
            template=self.template))

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; raises ValueError saying what is wrong with a bad file."""
        fields = fileformat.read(path)
        try:
            if fields.pop("version", 1) == 2:
                return cls.from_vocab(**fields, source=path)
            tok = cls(**fields)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from None
        tok.source = path
        return tok

    def __repr__(self):
        return (f"Tokenizer(n_vocab={self.n_vocab}, merges={len(self.merges)}, "
                f"special_tokens={self.special_tokens})")


class SpecialTokenError(ValueError):
    """The text holds a special token that `encode` was not allowed to encode (its name is `.name`)."""

    def __init__(self, name, message):
        super().__init__(message)
        self.name = name


def _is_id(i):
    return type(i) is int and 0 <= i <= MAX_ID


def _alternation(names):
    """A regex matching any of `names`, longest first (so a name that contains another one wins)."""
    names = sorted(names, key=len, reverse=True)
    return regex.compile("|".join(map(regex.escape, names))) if names else None
