"""tiktoken's rank files (Llama 3's `tokenizer.model`, OpenAI's `*.tiktoken`) read into a Tokenizer whose ids
are exactly the ones `tiktoken` gives.

The file is one token a line: its bytes in base64, a space, its rank; the rank is the token's id. It
holds no merges: tiktoken encodes a chunk by taking it whole when it is a token, and otherwise, starting
from single bytes, by joining again and again the adjacent pair whose joined bytes have the lowest rank
(the leftmost of equals). That is bpe's merging with a merge for every way of cutting a token into two
tokens, ranked by the token's id (`Tokenizer.from_vocab(..., rank_by="id", ignore_merges=True)`).
The file holds neither the pattern nor the special tokens: they come with the model (for Llama 3:
`bpe.LLAMA3_PATTERN`, and the names and ids in its tokenizer_config.json).
"""
import base64
import binascii
import os

from .files import read_bytes
from .tokenizer import MAX_ID, Tokenizer


def from_tiktoken(path, pattern, special_tokens=None):
    """A Tokenizer from a tiktoken rank file.

    pattern: the model's pre-tokenizing regex, e.g. `bpe.LLAMA3_PATTERN` (Llama 3) or `bpe.GPT4_PATTERN`.
    special_tokens: dict name -> id, or a list of names numbered from the first id after the ranks
        (Llama 3: 128000, 128001, ...).
    `tok.encode(text, allowed_special=..., disallowed_special=...)` behaves as tiktoken's `encode`.
    """
    path = os.fspath(path)
    ranks = read_ranks(path)
    vocab = {rank: token for token, rank in ranks.items()}
    merges = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = ranks.get(token[:cut]), ranks.get(token[cut:])
            if left is not None and right is not None:
                merges.append(((left, right), rank))
    merges.sort(key=lambda merge: merge[1])
    if special_tokens is None:
        special_tokens = {}
    elif not isinstance(special_tokens, dict):
        special_tokens = list(special_tokens)
        twice = next((name for k, name in enumerate(special_tokens) if name in special_tokens[:k]), None)
        if twice is not None:                            # each name takes the next id: a repeat would shift them
            raise ValueError(f"{twice!r} appears twice in special_tokens; every later id would move by one")
        first = max(vocab) + 1
        special_tokens = {name: first + k for k, name in enumerate(special_tokens)}
    try:
        return Tokenizer.from_vocab(pattern, vocab, merges, special_tokens, rank_by="id", ignore_merges=True,
                                    source=path)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def read_ranks(path):
    """dict token bytes -> rank of a tiktoken file; ValueError naming the line for anything malformed."""
    data = read_bytes(path, what="tiktoken rank file")
    ranks, seen = {}, set()
    for n, line in enumerate(data.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if not line:
            continue
        parts = line.split(b" ")
        if len(parts) != 2 or not (parts[1].isascii() and parts[1].isdigit()):
            raise ValueError(f"{path}: line {n}: expected 'base64-token rank', found {line[:60]!r}; "
                             f"not a tiktoken rank file")
        try:
            token = base64.b64decode(parts[0], validate=True)
        except binascii.Error:
            raise ValueError(f"{path}: line {n}: {parts[0][:60]!r} is not base64") from None
        rank = int(parts[1])
        if not token or rank > MAX_ID:
            raise ValueError(f"{path}: line {n}: an empty token or a rank above {MAX_ID}")
        if token in ranks or rank in seen:
            raise ValueError(f"{path}: line {n}: the token {token!r} or the rank {rank} appears twice")
        ranks[token] = rank
        seen.add(rank)
    if not ranks:
        raise ValueError(f"{path}: no tokens; not a tiktoken rank file")
    return ranks
