"""The tokenizer page's data: text -> regex chunks -> merges applied one at a time with their ranks;
and training: the best pair and how often it occurred, at each merge.

Encoding replays the learned merges in rank order: in each chunk, the pair with the smallest rank
present is merged at its leftmost place, one step at a time (as ``bpe.show.merge_steps`` shows it in
the terminal). The last state of every chunk is checked against ``tok.encode_ordinary``, so the page
never shows a story the tokenizer does not tell.
"""
import warnings

import bpe
from bpe.show import token_text
from bpe.train import count_chunks, merge_pair

MAX_TEXT = 20_000        # characters the page may send to encode or train on
MAX_MERGES = 500


def _text(request, key="text"):
    text = request.get(key, "")
    if not isinstance(text, str):
        raise ValueError(f"{key} must be a string")
    if len(text) > MAX_TEXT:
        raise ValueError(f"{key} is {len(text):,} characters; the page takes at most {MAX_TEXT:,}")
    return text


def encode_steps(tok, text):
    """{"chunks": [{"text", "states": [{"tokens": [[id, text], ...], "merged": {"rank", "pair", "id"} or
    None}]}], "ids": tok.encode_ordinary(text)}."""
    ranks = {pair: (rank, new) for rank, (pair, new) in enumerate(tok.merges)}
    chunks = []
    for chunk in tok.split(text):
        ids = [tok.byte_ids[b] for b in chunk.encode("utf-8", "replace")]
        states = [{"tokens": _tokens(tok, ids), "merged": None}]
        while True:
            found = min(((ranks[p], i) for i, p in enumerate(zip(ids, ids[1:])) if p in ranks), default=None)
            if found is None:
                break
            (rank, new), at = found
            pair = (ids[at], ids[at + 1])
            ids = ids[:at] + [new] + ids[at + 2:]
            states.append({"tokens": _tokens(tok, ids), "merged": {"rank": rank, "pair": list(pair), "id": new}})
        final = tok.encode_ordinary(chunk)
        if final != ids:       # a tokenizer that looks whole chunks up first (Llama 3's ignore_merges)
            states.append({"tokens": _tokens(tok, final), "merged": {"rank": None, "pair": None, "id": None,
                                                                     "whole": True}})
        chunks.append({"text": chunk, "states": states})
    return {"chunks": chunks, "ids": tok.encode_ordinary(text), "n_vocab": tok.n_vocab}


def _tokens(tok, ids):
    return [[int(i), token_text(tok.token_bytes(i))] for i in ids]


def train_steps(text, n_merges, pattern=bpe.GPT2_PATTERN):
    """(tokenizer, [{"rank", "pair": [[id, text], [id, text]], "id", "text", "count"}]): ``bpe.train`` on
    ``text`` with ``n_merges`` merges, then each merge's count found by replaying the merges in order
    over the distinct chunks (weighted by how often each occurs)."""
    if not 1 <= n_merges <= MAX_MERGES:
        raise ValueError(f"merges must be between 1 and {MAX_MERGES}")
    if not text:
        raise ValueError("type some text to train on")
    with warnings.catch_warnings():        # "no more pairs to merge": the page shows how many there were
        warnings.simplefilter("ignore", UserWarning)
        tok = bpe.train(text, vocab_size=256 + n_merges, pattern=pattern)
    counts = count_chunks(text, pattern)
    words = [(list(chunk.encode("utf-8")), n) for chunk, n in counts.items()]
    out = []
    for rank, (pair, new) in enumerate(tok.merges):
        count = sum(n * sum(1 for p in zip(w, w[1:]) if p == pair) for w, n in words)
        words = [(merge_pair(w, pair, new), n) for w, n in words]
        out.append({"rank": rank, "pair": [[pair[0], token_text(tok.token_bytes(pair[0]))],
                                           [pair[1], token_text(tok.token_bytes(pair[1]))]],
                    "id": new, "text": token_text(tok.token_bytes(new)), "count": count})
    return tok, out
