"""Text to token ids, cached, and the digests that recognise a text, a tokenizer and its ids again.

Tokenising megabytes of text with a Python BPE takes a while, so the ids are kept in the cache folder
(gpt/data/cache.py) under a name made of digests: the text's, the tokenizer's and the ids' own.
"""
import glob
import hashlib
import os

import numpy as np

from tinytensor.atomic import replacing

from .. import files
from . import cache


def text_digest(text):
    """A short SHA-256 of the text, to recognise the same corpus again."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def tokenizer_digest(tok):
    """A short SHA-256 of what decides a tokenizer's output: pattern, merges, specials, byte ids."""
    h = hashlib.sha256()
    h.update(tok.pattern.encode("utf-8"))
    h.update(repr(list(tok.merges)).encode())
    h.update(repr(sorted(tok.special_tokens.items())).encode())
    h.update(repr(list(getattr(tok, "byte_ids", range(256)))).encode())
    return h.hexdigest()[:16]


def save_npy(array, path):
    """np.save through a temporary name and a rename, so a reader never sees half a file."""
    with replacing(path, "wb") as f:
        np.save(f, array)


def ids_digest(ids):
    """A short SHA-256 of a token id array (as little-endian int32)."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i4").tobytes()).hexdigest()[:16]


def _cached_ids(path, n_vocab):
    """The ids in a cache file when they are whole and match the digest in its name, else None."""
    try:
        files.check_regular(path)
        cached = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    if cached.ndim != 1 or cached.dtype != np.int32 or (cached.size and not 0 <= cached.min() <= cached.max() < n_vocab):
        return None
    return cached if path.endswith(f"-{ids_digest(cached)}.npy") else None


def encode_cached(text, tok, folder=None):
    """Token ids (int32 array) of ``text``, cached in ``folder`` (default: the cache folder's ``tokens``,
    see gpt/data/cache.py) as tokens-<text>-<tokenizer>-<ids>.npy.

    The last part of the name is the digest of the ids themselves, so a cache file that was changed or
    swapped (say, shuffled) no longer matches its name: it is removed and the text is encoded again.
    A cache that cannot be written costs only the time to encode again next time.
    """
    folder = folder if folder is not None else cache.cache_dir("tokens")
    stem = os.path.join(folder, f"tokens-{text_digest(text)}-{tokenizer_digest(tok)}")
    for path in sorted(glob.glob(glob.escape(stem) + "-*.npy")):
        cached = _cached_ids(path, tok.n_vocab)
        if cached is not None:
            return cached
        cache.remove_quietly(path)
    ids = np.asarray(tok.encode(text, allowed_special="all"), dtype=np.int32)
    cache.try_write(lambda path: save_npy(ids, path), f"{stem}-{ids_digest(ids)}.npy")
    return ids


def data_digests(tok, ids, recorded=None):
    """{"tokenizer", "ids"}: digests a checkpoint records of what its run trains on. With ``recorded`` (the
    "data" entry of a checkpoint being resumed) raise ValueError when either differs from it."""
    now = {"tokenizer": tokenizer_digest(tok), "ids": ids_digest(ids)}
    if recorded:
        if recorded.get("tokenizer", now["tokenizer"]) != now["tokenizer"]:
            raise ValueError("the tokenizer in the checkpoint folder is not the one this run was trained with "
                             "(tokenizer.bpe was changed); restore it, or start a new run")
        if recorded.get("ids", now["ids"]) != now["ids"]:
            raise ValueError("the text encodes to other token ids than when this run started (the tokenizer or "
                             "its code changed); the run cannot continue exactly: start a new run")
    return now


