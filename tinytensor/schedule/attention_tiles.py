"""Attention in tiles on the CPU (FlashAttention-2's idea): no (T, S) array is ever held.

``scaled_dot_product_attention`` (ops/attention.py) takes this path for long contexts; the math is the same
as there (and as its twin, ``reference.scaled_dot_product_attention``), only its order differs, and
examples/12 walks through it one row at a time. Read top-down: the math on one tile of query rows, then
the schedule (which tiles, which jobs on which thread).

Forward, for a tile of query rows, the keys they see taken a tile at a time (the online softmax): each
row keeps only its largest score so far m and
    acc = [sum_j e_j v_j, sum_j e_j]      with e_j = exp(s_j - m)
and when a new tile raises m, what was summed shrinks by exp(m_old - m_new). After the last tile
out = acc[:D] / acc[D], and the log-sum-exp lse = m + log(acc[D]) is all the backward needs besides
out: it rebuilds each tile's weights exactly, p = exp(s - lse), and applies attention.py's formulas,
with rowsum(dp p) = g . out (called delta here).

Three products carry the per-row numbers in one extra column, instead of passes over the tile:
    [qs, -lse] [k, 1]^T = s - lse        [g, -delta] [v, 1]^T = g v^T - delta
    p [v, 1] = [p v, rowsum(p)]
so ``qa`` holds the scaled queries with -lse beside them, and ``ka``, ``va`` the keys and values with ones.
"""
import math

import numpy as np

from .. import config
from . import parallel
from ..ops.common import row_dots
from ..ops.masks import causal_bias

# ----- the math: one tile of query rows of one head against the keys it sees -----


def floor_(s, bias):
    """s <- max(s, -FLUSH) where the mask ``bias`` (None, or -inf over s's last columns) lets a key be
    seen. exp(s) then gives at least e^-FLUSH (1e-26 of the row's largest weight, invisible at float32's
    and float64's precision) instead of a subnormal number (below e^-87 in float32), on which exp and
    the products that read it run 10 to 100 times slower (measured). One pass: the max lifts the mask's
    -inf too, and adding the (small) mask again puts it back."""
    np.maximum(s, -FLUSH, out=s)
    if bias is not None:
        s[..., s.shape[-1] - bias.shape[-1]:] += bias


def forward_rows(qa, ka, va, key_tiles, out, shift):
    """Attention of the query rows ``qa`` (rows, D + 1) = [qs, 0] over the key tiles: out (rows, D) is
    written, and the rows' log-sum-exp returned. ``key_tiles``: (a, b, lo, hi, bias), rows a:b against
    keys lo:hi, with bias None or the causal mask of the tile's last columns. ``shift=False`` when no
    score can overflow exp (attention.scores_are_small): m then stays 0 and nothing needs rescaling;
    with the shift, the scores far below the row's maximum are raised to -FLUSH (``floor_``).
    Leading axes (several heads: qa (..., rows, D + 1), ka and va (..., keys, D + 1)) run side by side."""
    rows, D = out.shape[-2:]
    acc = np.zeros(out.shape[:-1] + (D + 1,), dtype=out.dtype)     # [sum e v, sum e]
    m = np.full(out.shape[:-1], -np.inf if shift else 0.0, dtype=out.dtype)
    s_buf = np.empty(out.shape[:-1] + (max(hi - lo for _, _, lo, hi, _ in key_tiles),), dtype=out.dtype)
    part = np.empty_like(acc)
    ka_t = ka.swapaxes(-1, -2)                          # (..., D + 1, keys): k^T as a view
    for a, b, lo, hi, bias in key_tiles:
        s = s_buf[..., a:b, :hi - lo]
        np.matmul(qa[..., a:b, :], ka_t[..., lo:hi], out=s)    # s = qs k^T (qa's last column is 0 here)
        if bias is not None:
            s[..., s.shape[-1] - bias.shape[-1]:] += bias
        if shift:                                       # the online softmax: a larger max shrinks the sums
            m_new = np.maximum(m[..., a:b], s.max(axis=-1))
            s -= m_new[..., None]
            acc[..., a:b, :] *= np.exp(np.maximum(m[..., a:b] - m_new, -FLUSH))[..., None]
            m[..., a:b] = m_new
            floor_(s, bias)
        np.exp(s, out=s)                                # e = exp(s - m)
        acc[..., a:b, :] += np.matmul(s, va[..., lo:hi, :], out=part[..., a:b, :])     # [e v, rowsum(e)]
    np.divide(acc[..., :D], acc[..., D:], out=out)
    return m + np.log(acc[..., D])


def backward_rows(qa, ka, va, g, ga, key_tiles, dq, dk, dv, scale, flush):
    """Gradients from the query rows qa = [qs, -lse] with g = dL/dout and ga = [g, -delta]: dq (rows, D)
    is written (dq = ds k / sqrt(D)); dk and dv (keys, D) are added to (dk += ds^T qs, dv += p^T g).
    Per tile, as in attention.py: p = exp(s - lse), dp = g v^T, ds = p (dp - delta). ``flush`` when some
    s - lse may lie below -FLUSH (``floor_``). Leading axes run side by side, as in ``forward_rows``."""
    qs, k = qa[..., :-1], ka[..., :-1]
    dq[...] = 0
    p_buf = np.empty(qa.shape[:-1] + (max(hi - lo for _, _, lo, hi, _ in key_tiles),), dtype=qa.dtype)
    ds_buf = np.empty_like(p_buf)
    ka_t, va_t = ka.swapaxes(-1, -2), va.swapaxes(-1, -2)
    for a, b, lo, hi, bias in key_tiles:
        p, ds = p_buf[..., a:b, :hi - lo], ds_buf[..., a:b, :hi - lo]
        np.matmul(qa[..., a:b, :], ka_t[..., lo:hi], out=p)    # s - lse
        if bias is not None:
            p[..., p.shape[-1] - bias.shape[-1]:] += bias
        if flush:
            floor_(p, bias)
        np.exp(p, out=p)                                # the forward's weights, exactly
        dv[..., lo:hi, :] += p.swapaxes(-1, -2) @ g[..., a:b, :]      # out = p v
        np.matmul(ga[..., a:b, :], va_t[..., lo:hi], out=ds)   # dp - delta
        ds *= p                                         # ds = p (dp - delta)
        dq[..., a:b, :] += ds @ k[..., lo:hi, :]        # s = qs k^T
        dk[..., lo:hi, :] += ds.swapaxes(-1, -2) @ qs[..., a:b, :]
    dq *= scale


# ----- the schedule: which tiles, which jobs, which thread -----

ROWS = 256          # query rows per tile (one head per NumPy call)
KEYS = 512          # keys per tile
SIDE_ROWS = 128     # ... with several heads side by side in each call (one thread, heads of at most
SIDE_KEYS = 128     #     SIDE_HEAD_DIM, as many as keep their keys within SIDE_BUDGET: ``side_by_side``)
SIDE_HEAD_DIM = 32
SIDE_BUDGET = 8192
DIAGONAL = 64       # query rows per piece of the causal diagonal on one thread (a staircase, not the square)
FLUSH = 60.0        # no weight below e^-FLUSH of its row's largest, none subnormal (floor_)
MIN_SCORES = 512 * 512     # T * S per head from which tiles are used on one thread (below, untiled is faster)
THREADED_SCORES = 9        # ... and with several threads, from 9 times as many (T from 3x as long)

# Why the thread count changes the schedule (measured, fwd + bwd of (1, 4, T, 32), causal, 2 threads): the
# untiled path's big NumPy calls share out over threads better than many tile-sized ones, which queue for
# the GIL: untiled 4.7 vs 6.3 ms at T=512, 12.5 vs 17.3 at 1,024, equal at 1,536, tiles ahead from 2,048
# (53.6 vs 67). For the same reason the staircase's short calls on the diagonal cost more than the half
# square they skip (T=2,048: 61.6 vs 53.6 ms), while on one thread they save 6% (70.7 vs 75.3 ms).
# Heads side by side (one thread, fwd + bwd of (1, 4, T, 32), 6 rounds): T=512 5.26 -> 4.67 ms, 1,024 17.3 ->
# 15.1, 2,048 59.4 -> 55.9; from 4,096 no gain alone and up to 7% slower inside a training step (T=8,192 with
# two heads per call), hence SIDE_BUDGET. In 256 x 512 tiles side by side is slower (the call's tiles leave
# the cache); with heads of 64, (1, 4, 2,048, 64): 93 vs 100 ms, slower, so wider heads keep one per call.


def chosen(T, S, dropout_p, xp):
    """Whether attention of T queries over S keys runs in tiles: on the CPU, for long contexts, without
    dropout. Dropout keeps the untiled path, whose keep-mask is drawn over the whole (T, S) exactly as
    the twin draws it (the same numbers for the same seed)."""
    least = MIN_SCORES if config.threads == 1 else MIN_SCORES * THREADED_SCORES
    return xp is np and not dropout_p and T * S >= max(1, least)


def diagonal_rows():
    """Rows per piece of the causal diagonal: DIAGONAL on one thread, the tile's whole square on several."""
    return DIAGONAL if config.threads == 1 else max(DIAGONAL, ROWS)


def key_tiles(r0, r1, S, causal, offset, dtype, diagonal=None, keys=None):
    """(a, b, lo, hi, bias) for query rows r0:r1: rows r0 + a : r0 + b against keys lo:hi, bias None or
    the causal mask over the tile's last b - a columns. Queries are aligned to the end of the keys
    (``offset`` = S - T, a KV cache): query i sees keys j <= i + offset when causal. Then the keys
    offset + r0 : offset + r1 hold the diagonal; it comes first, as a staircase of pieces of ``diagonal``
    rows (default DIAGONAL), each against the diagonal keys up to its last row's (about half of the square
    is never computed);
    the keys before it, which every row sees, follow in tiles of ``keys`` (default KEYS) from the last
    one back. Tiles wholly in the rows' future are never made."""
    rows, diagonal, keys = r1 - r0, diagonal or DIAGONAL, keys or KEYS
    tiles, end = [], S
    if causal:
        start = offset + r0                 # the first key of the diagonal
        for a in range(0, rows, diagonal):
            b = min(rows, a + diagonal)
            tiles.append((a, b, start, start + b, causal_bias(b - a, b - a, dtype, np)))
        end = start
    for hi in range(end, 0, -keys):
        tiles.append((0, rows, max(0, hi - keys), hi, None))
    return tiles


def row_tiles(T, rows=None):
    """(r0, r1) tiles of ``rows`` (default ROWS) query rows."""
    rows = rows or ROWS
    return [(r0, min(T, r0 + rows)) for r0 in range(0, T, rows)]


def side_by_side(kv_heads, S, D):
    """How many key/value heads one NumPy call takes side by side. Thin heads (D up to SIDE_HEAD_DIM) make
    short products, so a tile of one head pays a NumPy call's cost for little work: on one thread, as many
    heads as keep their keys within SIDE_BUDGET share each call, in smaller tiles (SIDE_ROWS x SIDE_KEYS).
    With several threads, or wider heads, one (the jobs spread over the threads; measured in RESULTS.md)."""
    if config.threads > 1 or D > SIDE_HEAD_DIM:
        return 1
    return max(1, min(kv_heads, SIDE_BUDGET // max(S, 1)))


class TiledSchedule:
    """One call of the op in tiles. Arrays are grouped views (``..., kv heads, G, T, D``): the G query
    heads of a group share one key/value head, and with ``kv`` an index of the (..., kv heads) axes,
    ``qa[kv][..., h, :, :]`` holds the (T, D + 1) matrices of query head h of the group and ``ka[kv]``
    the (S, D + 1) ones of its key head (one of each for an index of ints; every head, side by side, for
    the index of slices that one thread uses). ``forward()`` runs jobs of one (kv, g, row tile) each, the
    longest first; ``backward(g)`` one job per (kv) group, or parts of its rows when there are fewer
    groups than threads."""

    def __init__(self, q, k, v, out, causal, shift, bound):
        """``shift``: whether the forward subtracts the row maxima (``forward_rows``); ``bound``: the
        largest size a score can have (attention.score_bound)."""
        self.causal, self.shift, self.bound, self.out = causal, shift, bound, out
        G, T, D = q.shape[-3:]
        S = k.shape[-2]
        self.scale = q.dtype.type(1.0 / math.sqrt(D))
        self.offset = S - T
        lead = k.shape[:-3]                             # (..., kv heads)
        n = side_by_side(lead[-1], S, D)             # kv heads per call: an int index, or a slice of n
        self.groups = list(np.ndindex(*lead)) if n == 1 else \
            [outer + (slice(j, j + n),) for outer in np.ndindex(*lead[:-1]) for j in range(0, lead[-1], n)]
        rows, keys = (ROWS, KEYS) if n == 1 else (SIDE_ROWS, SIDE_KEYS)     # about as many scores per call
        self.qa = np.empty(lead + (G, T, D + 1), dtype=q.dtype)     # [qs, -lse], -lse once known
        np.multiply(q, self.scale, out=self.qa[..., :D])
        self.qa[..., D] = 0
        self.ka, self.va = (np.empty(lead + (S, D + 1), dtype=q.dtype) for _ in range(2))
        self.ka[..., :D], self.va[..., :D] = k[..., 0, :, :], v[..., 0, :, :]
        self.ka[..., D] = self.va[..., D] = 1
        self.rows = row_tiles(T, rows)
        # each row tile's key tiles (and masks), made once for every head and both passes
        diagonal = diagonal_rows()
        self.key_tiles = {r0: key_tiles(r0, r1, S, causal, self.offset, q.dtype, diagonal, keys)
                          for r0, r1 in self.rows}

    def _tiles(self, r0, r1):
        return self.key_tiles[r0]

    def forward(self):
        G = self.qa.shape[-3]
        jobs = [(kv, h, r0, r1) for kv in self.groups for h in range(G) for r0, r1 in self.rows]
        jobs.sort(key=lambda job: -job[3] if self.causal else 0)      # later rows see more keys
        parallel.run(self._forward_job, jobs, uses_blas=True)

    def _forward_job(self, job):
        kv, h, r0, r1 = job
        qa = self.qa[kv][..., h, r0:r1, :]
        lse = forward_rows(qa, self.ka[kv], self.va[kv], self._tiles(r0, r1), self.out[kv][..., h, r0:r1, :],
                           self.shift)
        qa[..., -1] = -lse

    def backward(self, g):
        """dq (..., kv heads, G, T, D), dk and dv (..., kv heads, S, D), summed over each group's heads."""
        G, T = self.qa.shape[-3:-1]
        dq = np.empty(self.qa.shape[:-1] + (self.qa.shape[-1] - 1,), dtype=self.qa.dtype)
        dk, dv = (np.zeros(self.ka.shape[:-1] + (self.ka.shape[-1] - 1,), dtype=self.qa.dtype) for _ in range(2))
        rows = [(h, r0, r1) for h in range(G) for r0, r1 in self.rows]
        parts = _balanced(rows, -(-config.threads // len(self.groups)), self._cost) if self.groups else []
        partial = len(parts) > 1            # several jobs share a group: each sums dk, dv on its own
        jobs = [(kv, i, part) for kv in self.groups for i, part in enumerate(parts)]
        sums = {}

        def job(item):
            kv, i, part = item
            if partial:
                sums[kv, i] = dki, dvi = np.zeros_like(dk[kv]), np.zeros_like(dv[kv])
            else:
                dki, dvi = dk[kv], dv[kv]
            self._backward_rows(kv, part, g, dq[kv], dki, dvi)
        parallel.run(job, jobs, uses_blas=True)
        for (kv, _), (dki, dvi) in sums.items():
            dk[kv] += dki
            dv[kv] += dvi
        return dq, dk, dv

    def _backward_rows(self, kv, rows, g, dq, dk, dv):
        qa, ka, va, out, g = self.qa[kv], self.ka[kv], self.va[kv], self.out[kv], g[kv]
        for h, r0, r1 in rows:
            qa_h, g_h = qa[..., h, r0:r1, :], g[..., h, r0:r1, :]
            ga = np.empty(qa_h.shape, dtype=qa.dtype)               # [g, -delta], delta = g . out
            ga[..., :-1] = g_h
            np.negative(row_dots(g_h, out[..., h, r0:r1, :]), out=ga[..., -1])
            # s - lse >= -bound - lse: below -FLUSH only where the scores or the rows' lse are large
            flush = not self.bound - qa_h[..., -1].min() < FLUSH
            backward_rows(qa_h, ka, va, g_h, ga, self._tiles(r0, r1), dq[..., h, r0:r1, :], dk, dv, self.scale,
                          flush)

    def _cost(self, row):
        """Score entries a row tile computes (the keys it sees times its rows)."""
        _, r0, r1 = row
        return (r1 - r0) * (self.offset + r1 if self.causal else self.ka.shape[-2])


def _balanced(items, parts, cost):
    """``items`` cut into at most ``parts`` contiguous runs of about equal total ``cost``."""
    total = sum(cost(x) for x in items) or 1
    runs, run, done = [], [], 0
    for x in items:
        run.append(x)
        done += cost(x)
        if done * parts >= total * (len(runs) + 1) and len(runs) < parts - 1:
            runs.append(run)
            run = []
    return runs + [run] if run else runs
