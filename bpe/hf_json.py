"""Hugging Face's `tokenizer.json`, byte-level BPE kind (GPT-2, Llama 3, Qwen2/2.5/3), read into a Tokenizer
whose ids are exactly the ones the `tokenizers` library gives.

What such a file holds, and what each part becomes here:
- model: {"type": "BPE", "vocab": {token: id}, "merges": ["a b", ...] or [["a", "b"], ...],
  "ignore_merges": ...}. Tokens are written through GPT-2's byte <-> character table (bpe/gpt2_files.py),
  so "Ġthe" is b" the". A merge's rank is its place in the list; the token it makes is vocab[a + b].
  With ignore_merges (Llama 3) a chunk that is itself in the vocabulary is one token, merges skipped.
- normalizer: null, or NFC (Qwen) / NFD / NFKC / NFKD, run on the text outside added tokens.
- pre_tokenizer: ByteLevel with use_regex (GPT-2's pattern), or Sequence[Split(Regex, "Isolated"),
  ByteLevel(use_regex=false)] (Llama 3, Qwen). "Isolated" keeps the text between matches as chunks too.
- added_tokens: matched in the text before anything else, longest first. Those marked special are
  bpe's special tokens (refused in text unless allowed, as tiktoken does); the others ordinary text may
  hold, as `tokenizers` always matches them (`Tokenizer.ordinary_added`).
- post_processor: ByteLevel adds nothing; TemplateProcessing's single template (Llama 3's
  <|begin_of_text|> in front) is kept as `Tokenizer.template`, not added by `encode`.
- decoder: ByteLevel (the byte table undone; invalid UTF-8 becomes U+FFFD).
Anything else (another model, normalizer or pre-tokenizer, options such as add_prefix_space, dropout,
truncation or padding) is refused with one line naming the field: never other ids without a word.
One difference is deliberate: an added token decodes to its own text here, while `tokenizers` first
reads its characters through the byte table when they all are in it (so an added "é" would decode to
the lone byte 0xE9); for the usual "<|...|>" names both give the same text.
"""
import json
import os

from .files import read_bytes
from .gpt2_files import bytes_to_unicode
from .patterns import HF_BYTELEVEL_PATTERN
from .tokenizer import NORMALIZERS, Tokenizer


class _Refused(ValueError):
    pass


def from_hf(path):
    """A Tokenizer from a Hugging Face `tokenizer.json` of the byte-level BPE kind (or the folder holding
    one): `tok.encode(text, allowed_special="all")` gives the ids of `tokenizers`'
    `Tokenizer.from_file(path).encode(text, add_special_tokens=False).ids`; `tok.template` holds what its
    `add_special_tokens=True` puts around them. Raises ValueError naming the file and the field for
    anything it does not implement."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    raw = read_bytes(path, what="tokenizer.json")
    try:
        spec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError(f"{path}: not a tokenizer.json (not JSON text)") from None
    except ValueError as e:                                 # e.g. an integer of thousands of digits
        raise ValueError(f"{path}: not a tokenizer.json ({e})") from None
    try:
        return _tokenizer(spec, path)
    except _Refused as e:
        raise ValueError(f"{path}: {e}") from None


def _tokenizer(spec, path):
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
        raise _Refused("not a tokenizer.json (no 'model' object)")
    for field in ("truncation", "padding"):
        if spec.get(field) is not None:
            raise _Refused(f"{field}: set to {_short(spec[field])}; bpe encodes whole texts, so it reads only "
                           f"files without {field} (null)")
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    vocab, merges, ignore_merges = _model(spec["model"], to_byte)
    normalizer = _normalizer(spec.get("normalizer"))
    pattern = _pre_tokenizer(spec.get("pre_tokenizer"))
    _decoder(spec.get("decoder"))
    special, ordinary = _added_tokens(spec.get("added_tokens") or [], normalizer)
    template = _post_processor(spec.get("post_processor"))
    try:
        return Tokenizer.from_vocab(pattern, vocab, merges, {**special, **ordinary}, rank_by="order",
                                    ignore_merges=ignore_merges, normalizer=normalizer,
                                    ordinary_added=ordinary, keep_gaps=True, template=template, source=path)
    except ValueError as e:
        raise _Refused(str(e)) from None


def _model(model, to_byte):
    """vocab (id -> bytes), merges [((left, right), new)] in rank order, ignore_merges."""
    kind = model.get("type", "BPE")
    if kind != "BPE":
        raise _Refused(f"model.type: {kind!r} is not supported (bpe reads byte-level BPE)")
    for field, allowed in (("dropout", (None, 0, 0.0)), ("continuing_subword_prefix", (None, "")),
                           ("end_of_word_suffix", (None, "")), ("byte_fallback", (None, False))):
        if model.get(field) not in allowed:
            raise _Refused(f"model.{field}: {_short(model.get(field))} is not supported (bpe implements "
                           f"{allowed[-1]!r} only)")
    ignore = model.get("ignore_merges", False)
    if not isinstance(ignore, bool):
        raise _Refused(f"model.ignore_merges: {_short(ignore)} is not true or false")
    raw_vocab = model.get("vocab")
    if not isinstance(raw_vocab, dict):
        raise _Refused("model.vocab: not an object of token -> id")
    outside = set("".join(raw_vocab)) - set(to_byte)
    if outside:
        token = next(t for t in raw_vocab if not outside.isdisjoint(t))
        raise _Refused(f"model.vocab: token {token!r} is not written in the byte-level alphabet "
                       f"(not a byte-level BPE vocabulary)")
    table = {ord(c): b for c, b in to_byte.items()}          # str.translate, then latin-1: char -> its byte
    vocab, ids = {}, {}
    for token, i in raw_vocab.items():
        if type(i) is not int or i < 0:
            raise _Refused(f"model.vocab: token {token!r} has id {_short(i)}, not a non-negative integer")
        if i in vocab:
            raise _Refused(f"model.vocab: id {i} is given to two tokens")
        vocab[i] = token.translate(table).encode("latin-1")
        ids[token] = i
    raw_merges = model.get("merges")
    if not isinstance(raw_merges, list):
        raise _Refused("model.merges: not a list")
    merges = []
    for rank, merge in enumerate(raw_merges):
        pair = merge.split(" ") if isinstance(merge, str) else merge
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(t, str) for t in pair):
            raise _Refused(f"model.merges[{rank}]: {_short(merge)} is not 'left right' or [left, right]")
        left, right = pair
        new = ids.get(left + right)
        if left not in ids or right not in ids or new is None:
            missing = next(t for t in (left, right, left + right) if t not in ids)
            raise _Refused(f"model.merges[{rank}]: {left!r} + {right!r}: the token {missing!r} is not in "
                           f"model.vocab")
        merges.append(((ids[left], ids[right]), new))
    return vocab, merges, ignore


def _normalizer(spec):
    if spec is None:
        return None
    parts = spec.get("normalizers") if isinstance(spec, dict) and spec.get("type") == "Sequence" else [spec]
    if not isinstance(parts, list) or len(parts) > 1:
        raise _Refused(f"normalizer: {_short(spec)} is not supported (bpe implements none, or one of "
                       f"{', '.join(NORMALIZERS)})")
    if not parts:
        return None
    kind = parts[0].get("type") if isinstance(parts[0], dict) else None
    if kind not in NORMALIZERS:
        raise _Refused(f"normalizer: type {kind!r} is not supported (bpe implements {', '.join(NORMALIZERS)})")
    return kind


def _byte_level(spec, where, use_regex):
    """Check a ByteLevel pre-tokenizer: no prefix space, and use_regex as this place needs it."""
    if spec.get("add_prefix_space", False) is not False:
        raise _Refused(f"{where}.add_prefix_space: true is not supported")
    if spec.get("use_regex", True) is not use_regex:
        raise _Refused(f"{where}.use_regex: {spec.get('use_regex', True)} is not supported here")


def _pre_tokenizer(spec):
    """The pattern that cuts text into chunks."""
    supported = ("bpe implements ByteLevel, or Sequence[Split(Regex, behavior Isolated), "
                 "ByteLevel(use_regex false)]")
    if not isinstance(spec, dict):
        raise _Refused(f"pre_tokenizer: {_short(spec)} is not supported ({supported})")
    if spec.get("type") == "ByteLevel":
        if spec.get("use_regex", True):
            _byte_level(spec, "pre_tokenizer", True)
            return HF_BYTELEVEL_PATTERN
        _byte_level(spec, "pre_tokenizer", False)
        return r"[\s\S]+"                                    # the whole text is one chunk
    steps = spec.get("pretokenizers") if spec.get("type") == "Sequence" else None
    if not isinstance(steps, list) or len(steps) != 2 or not all(isinstance(s, dict) for s in steps) \
            or steps[0].get("type") != "Split" or steps[1].get("type") != "ByteLevel":
        raise _Refused(f"pre_tokenizer: {_short(spec)} is not supported ({supported})")
    split = steps[0]
    regex = split.get("pattern", {}).get("Regex") if isinstance(split.get("pattern"), dict) else None
    if not isinstance(regex, str):
        raise _Refused(f"pre_tokenizer.pretokenizers[0].pattern: {_short(split.get('pattern'))} is not "
                       f"{{\"Regex\": ...}}")
    if split.get("behavior") != "Isolated" or split.get("invert", False) is not False:
        raise _Refused(f"pre_tokenizer.pretokenizers[0]: behavior {split.get('behavior')!r} with invert "
                       f"{split.get('invert')!r} is not supported (bpe implements Isolated, invert false)")
    _byte_level(steps[1], "pre_tokenizer.pretokenizers[1]", False)
    return regex


def _decoder(spec):
    parts = spec.get("decoders") if isinstance(spec, dict) and spec.get("type") == "Sequence" else [spec]
    if not isinstance(parts, list) or len(parts) != 1 or not isinstance(parts[0], dict) \
            or parts[0].get("type") != "ByteLevel":
        raise _Refused(f"decoder: {_short(spec)} is not supported (bpe implements ByteLevel)")


def _added_tokens(tokens, normalizer):
    """(special name -> id, ordinary name -> id) of the added tokens."""
    if not isinstance(tokens, list):
        raise _Refused("added_tokens: not a list")
    special, ordinary = {}, {}
    for k, token in enumerate(tokens):
        where = f"added_tokens[{k}]"
        if not isinstance(token, dict) or not isinstance(token.get("content"), str) or not token["content"] \
                or type(token.get("id")) is not int:
            raise _Refused(f"{where}: {_short(token)} has no content and id")
        for flag in ("single_word", "lstrip", "rstrip"):
            if token.get(flag, False) is not False:
                raise _Refused(f"{where} ({token['content']!r}): {flag} true is not supported")
        if token.get("normalized", False) and normalizer is not None:
            raise _Refused(f"{where} ({token['content']!r}): normalized true with a normalizer is not supported")
        if token["content"] in special or token["content"] in ordinary:
            raise _Refused(f"{where}: {token['content']!r} is added twice")
        (special if token.get("special", False) else ordinary)[token["content"]] = token["id"]
    return special, ordinary


def _post_processor(spec):
    """(prefix_ids, suffix_ids) the library puts around a single text."""
    parts = spec.get("processors") if isinstance(spec, dict) and spec.get("type") == "Sequence" else [spec]
    if not isinstance(parts, list):
        raise _Refused(f"post_processor: {_short(spec)} is not supported")
    template = ([], [])
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if part is None or kind == "ByteLevel":
            continue
        if kind != "TemplateProcessing":
            raise _Refused(f"post_processor: type {kind!r} is not supported (bpe implements ByteLevel and "
                           f"TemplateProcessing)")
        template = _template(part)
    return template


def _template(spec):
    known = spec.get("special_tokens") or {}
    prefix, suffix, seen_a = [], [], False
    for item in spec.get("single") or []:
        if isinstance(item, dict) and "Sequence" in item:
            if item["Sequence"].get("id") != "A" or seen_a:
                raise _Refused(f"post_processor.single: {_short(item)} is not supported (one sequence A)")
            seen_a = True
        elif isinstance(item, dict) and "SpecialToken" in item:
            name = item["SpecialToken"].get("id")
            ids = known.get(name, {}).get("ids") if isinstance(known.get(name), dict) else None
            if not isinstance(ids, list) or not all(type(i) is int for i in ids):
                raise _Refused(f"post_processor.special_tokens: no ids for {name!r}")
            (suffix if seen_a else prefix).extend(ids)
        else:
            raise _Refused(f"post_processor.single: {_short(item)} is not supported")
    if not seen_a:
        raise _Refused("post_processor.single: the template has no sequence A")
    return prefix, suffix


def _short(value):
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
