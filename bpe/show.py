"""Tools for learners: watch a word get merged, see token boundaries, measure compression."""
_COLORS = [43, 46, 45, 42, 44, 41]  # ANSI background colours, cycled token by token


SPACE_MARK = "\u2423"   # ␣, how a merge trace shows a space (a leading space is part of most tokens)


def token_text(data, space=" "):
    """Readable text of a token's bytes: control characters escaped, broken UTF-8 as \\xNN, each space
    shown as ``space`` (e.g. ``SPACE_MARK``, where a blank at a token's edge would be invisible)."""
    text = data.decode("utf-8", errors="backslashreplace")
    return "".join(space if c == " " else c if c.isprintable() else repr(c)[1:-1] for c in text)


def merge_steps(tok, text):
    """Each state of `text` while it is encoded, chunk by chunk, one merge at a time.

    Returns a list of (chunk, states); states[0] is the chunk's byte tokens and each next state
    has one more merge applied (the earliest-learned pair present, at its leftmost place), so a
    learner sees BPE work: [b'l', b'o', b'w'] -> [b'lo', b'w'] -> [b'low']. (With `ignore_merges`, a
    chunk that is itself a token goes there in one step.)
    """
    out = []
    for chunk in tok.split(text):
        ids = [tok.byte_ids[b] for b in chunk.encode("utf-8", "replace")]
        states = [ids]
        whole = tok._whole.get(chunk.encode("utf-8", "replace")) if tok._whole is not None else None
        if whole is not None and len(ids) > 1:
            states.append([whole])
        while whole is None:
            step = _one_merge(states[-1], tok._ranks, tok._new_of)
            if step is None:
                break
            states.append(step)
        out.append((chunk, [[tok.token_bytes(i) for i in state] for state in states]))
    return out


def _one_merge(ids, ranks, new_of):
    """The earliest-ranked pair present merged at its leftmost place, or None (see bpe/merging.py)."""
    best, at = None, -1
    for i in range(len(ids) - 1):
        rank = ranks.get((ids[i], ids[i + 1]))
        if rank is not None and (best is None or rank < best):
            best, at = rank, i
    if best is None:
        return None
    return ids[:at] + [best if new_of is None else new_of[best]] + ids[at + 2:]


def format_steps(tok, text):
    """`merge_steps` as printable lines: one line per state, tokens separated by '|', a space shown as ␣."""
    lines = []
    for chunk, states in merge_steps(tok, text):
        lines.append(f"chunk {chunk!r}: {len(states) - 1} merge(s)" + (f" ({SPACE_MARK} is a space)" if " " in chunk else ""))
        for state in states:
            lines.append("  " + "|".join(token_text(t, SPACE_MARK) for t in state))
    return "\n".join(lines)


def show_tokens(tok, text, color=True, allowed_special="all"):
    """`text` with its token boundaries visible: coloured backgrounds, or '|' between tokens."""
    ids = tok.encode(text, allowed_special=allowed_special)
    pieces = [token_text(tok.token_bytes(i)) for i in ids]
    if not color:
        return "|".join(pieces)
    return "".join(f"\x1b[30;{_COLORS[k % len(_COLORS)]}m{p}\x1b[0m" for k, p in enumerate(pieces))


def bytes_per_token(tok, text):
    """UTF-8 bytes of `text` divided by its number of tokens: higher means better compression."""
    ids = tok.encode_ordinary(text)
    return len(text.encode("utf-8")) / max(len(ids), 1)

