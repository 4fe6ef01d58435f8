"""Encoding one chunk: apply the learned merges to its byte ids, lowest rank first.

`pair_ids` maps a pair of adjacent ids to the id of the token they merge into. Merged tokens are
numbered in the order they were learned (id 256 + rank), so a smaller id means an earlier merge.
At every step the earliest-learned pair present is merged at its leftmost position, which is what
training did; merging it leaves pairs of later rank, so this equals "merge every occurrence left to
right, then the next rank".

Tokenizers read from other libraries' files (bpe/hf_json.py, bpe/tiktoken_file.py) number their tokens
freely, so there a pair maps to its merge's *rank*, and `new_of[rank]` is the id the merge makes; for
bpe's own tokenizers (and tiktoken's files, whose ids are ranks) the rank is the new id (`new_of=None`).

Two versions give the same answer:
- `merge_simple` rescans the chunk after every merge: O(n^2), fastest for short chunks (most words);
- `merge_heap` keeps the pairs in a heap over a linked list: O(n log n), for long chunks, so one
  100,000-character "word" still encodes in a fraction of a second.
"""
import heapq

HEAP_THRESHOLD = 16  # chunks with more ids than this use merge_heap (measured crossover)


def merge_simple(ids, pair_ids, new_of=None):
    """Merge a short list of byte ids into token ids by rescanning after each merge; returns a new list.

    pair_ids: (left_id, right_id) -> rank (lowest merges first); new_of: rank -> new id (None: the same)."""
    ids = list(ids)
    get = pair_ids.get
    while len(ids) > 1:
        best, at = None, -1
        left = ids[0]
        for i in range(1, len(ids)):
            right = ids[i]
            new = get((left, right))
            if new is not None and (best is None or new < best):
                best, at = new, i - 1
            left = right
        if best is None:
            break
        ids[at:at + 2] = [best if new_of is None else new_of[best]]
    return ids


def merge_heap(ids, pair_ids, new_of=None):
    """Merge a long list of ids with a heap of (rank, position) and a doubly linked list.

    Entries are invalidated lazily: when popped, an entry is used only if both its nodes are still
    alive and still form a pair of the same rank (the same rank always makes the same id).
    """
    n = len(ids)
    if n < 2:
        return list(ids)
    tok = list(ids)
    nxt = list(range(1, n + 1))       # nxt[i] == n means "no right neighbour"
    prv = list(range(-1, n - 1))      # prv[i] == -1 means "no left neighbour"
    alive = [True] * n
    get = pair_ids.get
    heap = [(new, i) for i in range(n - 1) if (new := get((tok[i], tok[i + 1]))) is not None]
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        new, i = pop(heap)
        if not alive[i]:
            continue
        j = nxt[i]
        if j == n or get((tok[i], tok[j])) != new:
            continue  # stale: a neighbour merged since this entry was pushed
        # merge node j into node i
        new = tok[i] = new if new_of is None else new_of[new]
        alive[j] = False
        k = nxt[j]
        nxt[i] = k
        if k != n:
            prv[k] = i
            m = get((new, tok[k]))
            if m is not None:
                push(heap, (m, i))
        p = prv[i]
        if p != -1:
            m = get((tok[p], new))
            if m is not None:
                push(heap, (m, p))
    out = []
    i = 0
    while i != n:
        out.append(tok[i])
        i = nxt[i]
    return out


def merge_chunk(ids, pair_ids, new_of=None):
    """Merge a chunk's byte ids into token ids, picking the algorithm by length."""
    if len(ids) > HEAP_THRESHOLD:
        return merge_heap(ids, pair_ids, new_of)
    return merge_simple(ids, pair_ids, new_of)
