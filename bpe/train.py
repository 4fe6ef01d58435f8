"""Training: learn byte-pair merges from text.

The rules (both trainers follow them exactly, and a test checks they agree):
- the text is cut into chunks by the pattern; merges never cross a chunk boundary;
- a pair is counted at every adjacent position of every chunk (so "aaa" holds (a, a) twice);
- each step merges the most frequent pair; a tie goes to the smallest (left_id, right_id);
- a merge replaces the pair's occurrences left to right without overlap ("aaa" -> "aa", "a");
- merge k makes id 256 + k; byte b is id b; special tokens come after the merges.

`learn_merges_naive` recounts every pair before every merge: read it first.
`learn_merges` gives the same merges much faster (see its docstring) and is what `train` uses.
"""
import heapq
import time
import warnings
from collections import Counter, defaultdict

import regex

from .patterns import GPT2_PATTERN, Splitter
from .tokenizer import Tokenizer


def train(text, vocab_size, pattern=GPT2_PATTERN, special_tokens=(), *, algorithm="incremental",
          progress=None):
    """Train a byte-level BPE tokenizer with `vocab_size` ids in all (256 bytes + merges + specials).

    text: a str, or an iterable of str (documents; no chunk spans two of them).
    special_tokens: names such as "<|endoftext|>"; each gets one id after the merges, in the order
        given. Their text is cut out of the training text before counting, so no merge learns it.
    algorithm: "incremental" (default) or "naive" (slow, for reading); both give the same merges.
    progress: optional callable `progress(merges_done, merges_total)`, called as training goes.
    If the text runs out of pairs before `vocab_size`, training stops early with a warning.
    """
    special_tokens = tuple(special_tokens)
    for name in special_tokens:
        if not isinstance(name, str) or not name:
            raise ValueError(f"special token {name!r} must be a non-empty string")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special tokens repeat a name: {list(special_tokens)}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
    smallest = 256 + len(special_tokens)
    if vocab_size < smallest:
        raise ValueError(f"vocab_size={vocab_size} is too small: the 256 byte tokens and "
                         f"{len(special_tokens)} special token(s) already need {smallest}")
    chunks = count_chunks(text, pattern, special_tokens)
    if not chunks:
        raise ValueError("cannot train on an empty corpus (the text has no characters outside "
                         "special tokens)")
    learn = {"incremental": learn_merges, "naive": learn_merges_naive}.get(algorithm)
    if learn is None:
        raise ValueError(f"algorithm must be 'incremental' or 'naive', got {algorithm!r}")
    n_merges = vocab_size - smallest
    merges = learn(chunks, n_merges, progress)
    if len(merges) < n_merges:
        warnings.warn(f"the text has no more pairs to merge after {len(merges)} merges; the "
                      f"vocabulary has {256 + len(merges) + len(special_tokens)} ids, not {vocab_size}",
                      stacklevel=2)
    first_special = 256 + len(merges)
    specials = {name: first_special + k for k, name in enumerate(special_tokens)}
    return Tokenizer(pattern, merges, specials)


def count_chunks(text, pattern=GPT2_PATTERN, special_tokens=()):
    """Counter of chunk text -> how often it occurs (special-token text removed first)."""
    documents = [text] if isinstance(text, str) else list(text)
    for doc in documents:
        if not isinstance(doc, str):
            raise TypeError(f"training text must be str (or an iterable of str), got {type(doc).__name__}")
    chunker = Splitter(pattern)          # refuses a pattern that would drop text; bounds a slow one
    splitter = (regex.compile("|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True)))
                if special_tokens else None)
    counts = Counter()
    for doc in documents:
        for piece in (splitter.split(doc) if splitter else [doc]):
            counts.update(chunker(piece))
    return counts


def merge_pair(ids, pair, new):
    """Replace each occurrence of `pair` in `ids`, left to right without overlap, by `new`."""
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def learn_merges_naive(chunk_counts, n_merges, progress=None):
    """The plain algorithm: before each merge, count every pair in every chunk again.

    chunk_counts: dict chunk text -> count. Returns [((left_id, right_id), new_id), ...].
    Cost: n_merges x (total length of the distinct chunks).
    """
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    freqs = list(chunk_counts.values())
    merges = []
    for k in range(n_merges):
        counts = Counter()
        for word, freq in zip(words, freqs):
            for pair in zip(word, word[1:]):
                counts[pair] += freq
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))  # most frequent, then smallest
        new = 256 + k
        words = [merge_pair(word, best, new) for word in words]
        merges.append((best, new))
        if progress:
            progress(k + 1, n_merges)
    return merges


def learn_merges(chunk_counts, n_merges, progress=None):
    """The incremental algorithm: same merges as `learn_merges_naive`, touching only what changes.

    - distinct chunks are kept once, with their count as a weight;
    - `counts[pair]` is kept up to date, and `where[pair]` lists the chunks that may hold the pair;
    - a heap of (-count, pair) finds the best pair. Entries are not removed when a count drops:
      a popped entry whose count is out of date is pushed back with the true count (lazy
      invalidation). An entry's count is never below the pair's true count, and a pair whose count
      rises gets a fresh entry, so the first up-to-date entry popped is the true best, ties included;
    - a merge rewrites only the chunks in `where[pair]`, adjusting the counts of the pairs next to
      each occurrence; the only pairs whose count grows are the ones holding the new id.
    """
    words, freqs = [], []
    for chunk, freq in chunk_counts.items():
        word = list(chunk.encode("utf-8"))
        if len(word) > 1:                       # a single byte holds no pair
            words.append(word)
            freqs.append(freq)
    counts = defaultdict(int)
    where = defaultdict(set)
    for wi, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            counts[pair] += freq
            where[pair].add(wi)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    merges = []
    for k in range(n_merges):
        best = _pop_best(heap, counts)
        if best is None:
            break
        new = 256 + k
        grown = _apply_merge(best, new, words, freqs, counts, where)
        del counts[best]
        for pair in grown:
            c = counts[pair]
            if c > 0:
                heapq.heappush(heap, (-c, pair))
        merges.append((best, new))
        if progress:
            progress(k + 1, n_merges)
    return merges


def _pop_best(heap, counts):
    """Pop entries until one's count is current; returns its pair (None when no pair is left)."""
    while heap:
        neg, pair = heapq.heappop(heap)
        c = counts.get(pair, 0)
        if c == -neg:
            return pair
        if c > 0:
            heapq.heappush(heap, (-c, pair))   # stale: the count fell since it was pushed
    return None


def _apply_merge(pair, new, words, freqs, counts, where):
    """Merge `pair` into `new` in every chunk that holds it, updating counts and where.

    Walking a chunk left to right, the state is (merged part) + (rest of the old chunk). Merging
    "x a b y" into "x N y" removes (x, a), (a, b), (b, y) and adds (x, N), (N, y). Returns the set
    of pairs that gained count (all hold `new`).
    """
    a, b = pair
    grown = set()
    for wi in where.pop(pair):
        word = words[wi]
        n = len(word)
        if n < 2:
            continue
        freq = freqs[wi]
        out = []
        i = 0
        changed = False
        while i < n:
            if word[i] == a and i + 1 < n and word[i + 1] == b:
                if out:
                    prev = out[-1]
                    counts[(prev, a)] -= freq
                    q = (prev, new)
                    counts[q] += freq
                    grown.add(q)
                    where[q].add(wi)
                if i + 2 < n:
                    nxt = word[i + 2]
                    counts[(b, nxt)] -= freq
                    q = (new, nxt)
                    counts[q] += freq
                    grown.add(q)
                    where[q].add(wi)
                out.append(new)
                i += 2
                changed = True
            else:
                out.append(word[i])
                i += 1
        if changed:
            words[wi] = out
    return grown


class Progress:
    """A progress callback that prints to a stream, only once training has run for a second.

    On a terminal it redraws one line (``\\r``) every ``every`` seconds; to a file or a pipe (``tty``
    False, or a stream that is not a terminal) it writes whole lines, every ``every_piped`` seconds,
    so a log keeps one line per report instead of lines run together."""

    def __init__(self, stream, after=1.0, every=0.5, every_piped=10.0, tty=None):
        if tty is None:
            tty = hasattr(stream, "isatty") and stream.isatty()
        self.stream, self.after, self.tty = stream, after, tty
        self.every = every if tty else every_piped
        self.start = time.perf_counter()
        self.last = None

    def __call__(self, done, total):
        now = time.perf_counter()
        if now - self.start < self.after and done < total:
            return
        if self.last is not None and now - self.last < self.every and done < total:
            return
        if self.last is None and done == total and now - self.start < self.after:
            return
        self.last = now
        end = "\n" if done == total or not self.tty else "\r"
        self.stream.write(f"training: {done}/{total} merges, {now - self.start:.1f} s{end}")
        self.stream.flush()
