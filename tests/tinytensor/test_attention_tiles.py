"""Attention in tiles (tinytensor/schedule/attention_tiles.py) and grouped-query attention, against the twin.

The tiles are made tiny here (a few rows and keys) so that small shapes cross many tile edges: T not a
multiple of the tile, S > T (a KV cache), causal and not, several query heads per key/value head, and
scores large enough that the online softmax must rescale. ``tracemalloc`` sees NumPy's allocations, so
the promise that no (T, S) array is held is checked by measuring.
"""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import config
from tinytensor import reference as R
from tinytensor.ops import attention
from tinytensor.schedule import attention_tiles


@pytest.fixture
def tiles(monkeypatch):
    """Every call runs in tiles of ``rows`` query rows and ``keys`` keys (3 and 4 unless set), the causal
    diagonal in pieces of ``diagonal`` rows (2); with heads side by side (one thread), one row and one
    key fewer."""
    def use(rows=3, keys=4, minimum=0, diagonal=2):
        monkeypatch.setattr(attention_tiles, "ROWS", rows)
        monkeypatch.setattr(attention_tiles, "KEYS", keys)
        monkeypatch.setattr(attention_tiles, "SIDE_ROWS", max(1, rows - 1))
        monkeypatch.setattr(attention_tiles, "SIDE_KEYS", max(1, keys - 1))
        monkeypatch.setattr(attention_tiles, "DIAGONAL", diagonal)
        monkeypatch.setattr(attention_tiles, "MIN_SCORES", minimum)
    use()
    return use


def untiled(monkeypatch):
    monkeypatch.setattr(attention_tiles, "MIN_SCORES", 10 ** 18)


def values_and_grads(fn, arrays, g, dtype=np.float64):
    tensors = [tt.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(g.astype(dtype))
    return [out.data] + [t.grad for t in tensors]


def assert_close(got, want, rtol=1e-9, atol=1e-11):
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)


@st.composite
def attention_case(draw):
    """q (B, H, T, D), k and v (B, H_kv, S, D) with H = H_kv G, causal or not, scores small or large."""
    B, kv_heads, groups = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    T, D = draw(st.integers(1, 11)), draw(st.integers(1, 4))
    causal = draw(st.booleans())
    S = draw(st.integers(T if causal else 1, 13))
    size = draw(st.sampled_from([1.0, 30.0]))             # 30: scores past SAFE_SCORE, the max shift on
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, kv_heads * groups, T, D)) * size
    k, v = rng.standard_normal((2, B, kv_heads, S, D))
    return q, k, v, rng.standard_normal(q.shape), causal


@given(case=attention_case())
def test_tiles_match_the_twin_and_the_untiled_op(case):
    q, k, v, g, causal = case
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(attention_tiles, "ROWS", 3)
        mp.setattr(attention_tiles, "KEYS", 4)
        mp.setattr(attention_tiles, "SIDE_ROWS", 2)
        mp.setattr(attention_tiles, "SIDE_KEYS", 3)
        mp.setattr(attention_tiles, "DIAGONAL", 2)
        mp.setattr(attention_tiles, "MIN_SCORES", 0)
        tiled = values_and_grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal),
                                 [q, k, v], g)
        mp.setattr(config, "threads", 1)                  # one thread: the diagonal as a staircase,
        tiled_one = values_and_grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal),
                                     [q, k, v], g)        # the kv heads side by side in each call
        mp.setattr(attention_tiles, "SIDE_BUDGET", 0)     # ... or one head per call
        tiled_one_head = values_and_grads(
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal), [q, k, v], g)
        mp.setattr(config, "threads", 2)                  # several: the diagonal's squares, jobs on threads
        tiled_two = values_and_grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal),
                                     [q, k, v], g)
        untiled(mp)
        whole = values_and_grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal),
                                 [q, k, v], g)
    twin = values_and_grads(lambda q, k, v: R.scaled_dot_product_attention(q, k, v, causal=causal), [q, k, v], g)
    for got in (tiled, tiled_one, tiled_one_head, tiled_two, whole):
        assert_close(got, twin)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
def test_tiles_gradcheck(tiles, causal, groups):
    rng = np.random.default_rng(groups)
    q = tt.tensor(rng.standard_normal((1, 2 * groups, 7, 3)), dtype=np.float64, requires_grad=True)
    k, v = (tt.tensor(rng.standard_normal((1, 2, 9, 3)), dtype=np.float64, requires_grad=True) for _ in range(2))
    assert attention_tiles.chosen(7, 9, 0.0, np)
    assert tt.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal), q, k, v)


def test_float32_tiles_match_the_float64_twin(tiles):
    tiles(rows=16, keys=32)
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((2, 2, 70, 8)) for _ in range(3))
    g = rng.standard_normal(q.shape)
    got = values_and_grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [q, k, v], g, np.float32)
    want = values_and_grads(lambda q, k, v: R.scaled_dot_product_attention(q, k, v), [q, k, v], g)
    assert all(a.dtype == np.float32 for a in got)
    assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rows,keys,diagonal", [(3, 4, 2), (5, 2, 2), (5, 2, 64), (4, 3, 1)])
@pytest.mark.parametrize("T,S,causal", [(7, 7, True), (5, 12, True), (7, 9, False), (1, 4, True)])
def test_key_tiles_cover_exactly_the_keys_each_row_sees(tiles, monkeypatch, T, S, causal, rows, keys, diagonal):
    """The tiles' keys, with their masks, are the visible keys of every row, each key once; causal
    tiles wholly in the future are not made at all (also with fewer keys than rows per tile), and of
    the diagonal only the staircase of DIAGONAL-row pieces is computed."""
    tiles(rows=rows, keys=keys)
    monkeypatch.setattr(attention_tiles, "DIAGONAL", diagonal)
    offset = S - T
    for r0, r1 in attention_tiles.row_tiles(T):
        seen = np.zeros((r1 - r0, S), dtype=int)
        computed = 0
        for a, b, lo, hi, bias in attention_tiles.key_tiles(r0, r1, S, causal, offset, np.float64):
            assert 0 <= a < b <= r1 - r0 and 0 <= lo < hi <= S
            visible = np.ones((b - a, hi - lo), dtype=int)
            if bias is not None:
                visible[:, visible.shape[1] - bias.shape[1]:] = bias == 0
            seen[a:b, lo:hi] += visible
            computed += visible.size
        rows = np.arange(r0, r1)[:, None]
        want = (np.arange(S)[None, :] <= rows + offset) if causal else np.ones((r1 - r0, S), dtype=bool)
        np.testing.assert_array_equal(seen, want.astype(int))
        pieces = -(-(r1 - r0) // diagonal)      # each piece computes at most diagonal^2 / 2 masked scores
        assert computed - want.sum() <= pieces * diagonal * (diagonal - 1) // 2


def test_tiles_never_hold_the_score_matrix(monkeypatch):
    """Forward and backward at T = S = 2048 on one head: the tiled path's peak of NumPy memory stays far
    below the 16 MB of one (T, S) float32 array; the untiled path needs several of them."""
    rng = np.random.default_rng(0)
    q, k, v = (tt.tensor(rng.standard_normal((1, 1, 2048, 8)) * 0.3, requires_grad=True) for _ in range(3))
    g = rng.standard_normal(q.shape).astype(np.float32)
    scores_bytes = 2048 * 2048 * 4

    def peak():
        tracemalloc.start()
        try:
            F.scaled_dot_product_attention(q, k, v, causal=True).backward(g)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert attention_tiles.chosen(2048, 2048, 0.0, np)
    assert peak() < scores_bytes / 4
    untiled(monkeypatch)
    assert peak() > scores_bytes


def test_the_backward_split_over_threads_matches_one_thread(tiles, monkeypatch):
    """With fewer key/value heads than threads, the rows of one head are shared out and each part sums
    its own dk, dv; the result must not depend on the split."""
    rng = np.random.default_rng(2)
    q, k, v = rng.standard_normal((1, 3, 10, 4)), rng.standard_normal((1, 1, 10, 4)), rng.standard_normal((1, 1, 10, 4))
    g = rng.standard_normal(q.shape)
    results = []
    for threads in (1, 3, 5):
        monkeypatch.setattr(config, "threads", threads)
        results.append(values_and_grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [q, k, v], g))
    assert_close(results[1], results[0])
    assert_close(results[2], results[0])


def test_dropout_keeps_the_untiled_path_and_the_twins_mask(tiles):
    assert not attention_tiles.chosen(4096, 4096, 0.1, np) and attention_tiles.chosen(4096, 4096, 0.0, np)
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1, 2, 6, 3)) for _ in range(3))
    g = rng.standard_normal(q.shape)

    def seeded(impl):
        def fn(q, k, v):
            tt.manual_seed(11)
            return impl.scaled_dot_product_attention(q, k, v, dropout_p=0.3)
        return fn
    assert_close(values_and_grads(seeded(F), [q, k, v], g), values_and_grads(seeded(R), [q, k, v], g))


# ----- grouped-query attention -----

@pytest.mark.parametrize("causal", [True, False])
def test_grouped_query_attention_equals_repeated_heads(causal):
    """Each key/value head serves H / H_kv query heads: the same as multi-head attention over k and v
    with each head repeated, in values and gradients (dk, dv summed over the group)."""
    rng = np.random.default_rng(4)
    q, k, v = rng.standard_normal((2, 6, 5, 3)), rng.standard_normal((2, 2, 7, 3)), rng.standard_normal((2, 2, 7, 3))
    g = rng.standard_normal(q.shape)
    grouped = values_and_grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal), [q, k, v], g)
    rep = np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1)
    full = values_and_grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal), [q, *rep], g)
    np.testing.assert_allclose(grouped[0], full[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grouped[1], full[1], rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(grouped[2:], full[2:]):                 # dk, dv: the sum over each group's copies
        np.testing.assert_allclose(mine, theirs.reshape(2, 2, 3, 7, 3).sum(axis=2), rtol=1e-12, atol=1e-12)


def test_grouped_views_do_not_copy():
    q = np.zeros((2, 7, 6, 5, 3)).transpose(2, 0, 3, 1, 4)[0]      # (2, 5, 7, 3), heads strided as in the GPT
    k = np.zeros((2, 1, 4, 3))
    assert np.shares_memory(attention.grouped(q, 1, 5), q)
    assert attention.grouped(q, 1, 5).shape == (2, 1, 5, 7, 3)
    assert np.shares_memory(attention.grouped(k, 1, 1), k)


def test_grouped_query_attention_through_the_twin_switch():
    rng = np.random.default_rng(6)
    q, k, v = rng.standard_normal((1, 4, 3, 2)), rng.standard_normal((1, 2, 3, 2)), rng.standard_normal((1, 2, 3, 2))
    g = rng.standard_normal(q.shape)
    fused = values_and_grads(F.scaled_dot_product_attention, [q, k, v], g)
    with tt.reference_ops():
        twin = values_and_grads(F.scaled_dot_product_attention, [q, k, v], g)
    assert_close(fused, twin)


@pytest.mark.parametrize("q_shape,kv_shape,message", [
    ((1, 6, 3, 2), (1, 4, 3, 2), r"q \(1, 6, 3, 2\) has 6 heads and k, v \(1, 4, 3, 2\) have 4.*multiple"),
    ((1, 2, 3, 2), (1, 4, 3, 2), r"q \(1, 2, 3, 2\) has 2 heads and k, v \(1, 4, 3, 2\) have 4"),
    ((1, 2, 3, 2), (1, 0, 3, 2), r"has 2 heads and k, v \(1, 0, 3, 2\) have 0"),
    ((2, 2, 3, 2), (1, 2, 3, 2), r"q \(2, 2, 3, 2\), k \(1, 2, 3, 2\).*\(B, H_kv, S, D\)"),
])
def test_head_counts_that_do_not_divide_are_one_clear_error(q_shape, kv_shape, message):
    q, kv = tt.ones(*q_shape), tt.ones(*kv_shape)
    with pytest.raises(ValueError, match=message):
        F.scaled_dot_product_attention(q, kv, kv)


def test_weights_too_small_to_matter_are_zero_not_subnormal(tiles, monkeypatch):
    """Scores far apart (trained attention can be this sharp): a weight below float32's normal range
    (about e^-87) would be a subnormal number, on which exp and the products that read it run 10 to 100
    times slower. The tiles raise scores below -FLUSH (after the shift) to -FLUSH before exp (such
    weights are below 1e-26 of their row's largest, invisible at float32's precision), so every exp
    gives 0 (a masked key) or a normal number, forward and backward, and the result equals the twin's."""
    tiles(rows=16, keys=16, diagonal=8)
    found = []

    class ExpSpy:                       # attention_tiles' numpy, with exp counting the subnormals it makes
        def __getattr__(self, name):
            return getattr(np, name)

        def exp(self, x, out=None):
            e = np.exp(x, out=out)
            found.append(int(np.count_nonzero((e != 0) & (np.abs(e) < np.finfo(e.dtype).tiny))))
            return e
    monkeypatch.setattr(attention_tiles, "np", ExpSpy())
    monkeypatch.setattr(attention_tiles, "chosen", lambda *args: True)      # (its `xp is np` sees the spy)
    rng = np.random.default_rng(7)
    q, k, v = rng.standard_normal((3, 1, 2, 40, 8))
    q *= 40                             # scores spread over about +-300
    g = rng.standard_normal(q.shape)
    for causal in (True, False):
        fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal)      # noqa: E731
        got = values_and_grads(fn, [q, k, v], g, np.float32)
        want = values_and_grads(lambda q, k, v: R.scaled_dot_product_attention(q, k, v, causal=causal),
                                [q, k, v], g)
        assert_close(got, want, rtol=2e-3, atol=2e-3)
    assert len(found) > 20 and sum(found) == 0, f"{sum(found)} subnormal weights made"


def test_the_untiled_softmax_flushes_negligible_weights_too():
    """The untiled path's softmax, with the max shift: a row whose scores span +-300 gets weights that
    are 0 (masked) or normal numbers, equal to the float64 softmax; and score_bound bounds every score."""
    rng = np.random.default_rng(8)
    q, k = rng.standard_normal((1, 1, 9, 8)) * 40, rng.standard_normal((1, 1, 300, 8))
    bound = attention.score_bound(q, k)
    s64 = q @ np.swapaxes(k, -1, -2)
    assert np.abs(s64).max() <= bound and attention.score_bound(q[..., :0, :], k) == np.inf
    bias = np.triu(np.full((9, 9), -np.inf), 1)         # causal over the last 9 keys
    s64[..., -9:] += bias
    s = s64.astype(np.float32)
    attention._softmax_(s, bias.astype(np.float32), shift=True)
    assert not np.any((s != 0) & (s < np.finfo(np.float32).tiny))
    assert np.all(s[..., -9:][..., bias == -np.inf] == 0)          # masked keys: weight exactly 0
    want = np.exp(s64 - s64.max(-1, keepdims=True))
    np.testing.assert_allclose(s, want / want.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("tiled", [True, False])
def test_sharp_causal_attention_gives_future_keys_exactly_zero_weight(tiles, monkeypatch, tiled):
    """With scores raised to -FLUSH (the max shift on), the mask must still win: values of future keys,
    however large, do not reach a query's output, tiled or not."""
    tiles(rows=16, keys=16, diagonal=8)
    if not tiled:
        untiled(monkeypatch)
    rng = np.random.default_rng(9)
    q, k, v = rng.standard_normal((3, 1, 2, 40, 8)).astype(np.float32)
    q *= 40
    far = v.copy()
    far[..., 20:, :] = 1e30
    near = F.scaled_dot_product_attention(tt.tensor(q), tt.tensor(k), tt.tensor(v)).data
    with_far = F.scaled_dot_product_attention(tt.tensor(q), tt.tensor(k), tt.tensor(far)).data
    np.testing.assert_array_equal(with_far[..., :20, :], near[..., :20, :])


def test_the_schedule_follows_the_thread_count(monkeypatch):
    """One thread: tiles from MIN_SCORES per head, the diagonal as a staircase; several: tiles from
    THREADED_SCORES times as many, the diagonal's whole squares (the measurements are in attention_tiles)."""
    monkeypatch.setattr(config, "threads", 1)
    assert attention_tiles.chosen(512, 512, 0.0, np) and attention_tiles.diagonal_rows() == attention_tiles.DIAGONAL
    monkeypatch.setattr(config, "threads", 2)
    assert not attention_tiles.chosen(1024, 1024, 0.0, np) and attention_tiles.chosen(2048, 2048, 0.0, np)
    assert attention_tiles.diagonal_rows() >= attention_tiles.ROWS
    schedule_tiles = attention_tiles.key_tiles(0, 256, 256, True, 0, np.float32, attention_tiles.diagonal_rows())
    assert [(a, b) for a, b, *_ in schedule_tiles] == [(0, 256)]
