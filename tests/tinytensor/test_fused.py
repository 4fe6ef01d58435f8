"""Every fused op against its composed twin (tinytensor/reference.py), and both against float64 NumPy derivations.

The twin is what a learner reads first: the textbook formula written with tinytensor's primitive ops, whose
gradients come from the primitives' backward. The fused op must give the same values and the same gradients,
and the derivations written out here in NumPy check each pair independently of both.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import random as ttrandom
from tinytensor import reference as R
from tinytensor import testing as ttst

GELU_C = math.sqrt(2 / math.pi)
BOTH = pytest.mark.parametrize("impl", [F, R], ids=["fused", "twin"])    # F and R share the ops' names


# ----- comparing a fused op with its twin -----

def assert_same(fused, twin, inputs, rtol=1e-9, atol=1e-11):
    """Same values, and the same gradient for every input that requires grad under one upstream gradient."""
    out_f, out_t = fused(*inputs), twin(*inputs)
    assert out_f.shape == out_t.shape and out_f.dtype == out_t.dtype
    np.testing.assert_allclose(out_f.data, out_t.data, rtol=rtol, atol=atol)
    g = np.random.default_rng(1).standard_normal(out_f.shape).astype(out_f.dtype)
    grads = []
    for out in (out_f, out_t):
        for x in inputs:
            if isinstance(x, tt.Tensor):
                x.grad = None
        (out * tt.tensor(g, dtype=out.dtype)).sum().backward()
        grads.append([x.grad for x in inputs if isinstance(x, tt.Tensor) and x.requires_grad])
    for gf, gt in zip(*grads):
        np.testing.assert_allclose(gf, gt, rtol=rtol, atol=atol)


@given(ttst.tensors(ttst.shapes(min_dims=1)), st.data())
def test_softmax_and_log_softmax_match_twins(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    assert_same(lambda x: F.softmax(x, axis), lambda x: R.softmax(x, axis), [x])
    assert_same(lambda x: F.log_softmax(x, axis), lambda x: R.log_softmax(x, axis), [x])
    assert tt.gradcheck(lambda x: F.softmax(x, axis), x)
    assert tt.gradcheck(lambda x: tt.log_softmax(x, axis), x)
    np.testing.assert_allclose(x.softmax(axis).data.sum(axis=axis), 1.0)


@st.composite
def ce_case(draw):
    C = draw(st.integers(2, 4))
    lead = draw(st.sampled_from([(draw(st.integers(1, 4)),), (draw(st.integers(1, 2)), draw(st.integers(1, 3)))]))
    ignore_index = draw(st.sampled_from([-100, -1, 0]))
    choices = st.integers(0, C - 1) | st.just(ignore_index)
    targets = np.array(draw(st.lists(choices, min_size=math.prod(lead), max_size=math.prod(lead)))).reshape(lead)
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    if reduction == "mean" and np.all(targets == ignore_index):
        targets.reshape(-1)[0] = 1                     # all-ignored mean is NaN: tested on its own below
    logits = draw(ttst.tensors(lead + (C,), domain="wide", max_value=10.0, min_value=-10.0))
    return logits, targets.astype(np.int64), ignore_index, reduction


@given(ce_case())
def test_cross_entropy_matches_twin(case):
    logits, targets, ignore_index, reduction = case
    kwargs = {"ignore_index": ignore_index, "reduction": reduction}
    assert_same(lambda z: F.cross_entropy(z, targets, **kwargs), lambda z: R.cross_entropy(z, targets, **kwargs),
                [logits])
    assert tt.gradcheck(lambda z: F.cross_entropy(z, targets, **kwargs), logits)


@given(ttst.tensors(ttst.shapes(), domain="wide", min_value=-6.0, max_value=6.0))
def test_gelu_matches_twin(x):
    assert_same(F.gelu, R.gelu, [x])
    assert tt.gradcheck(F.gelu, x)


@given(ttst.tensors(ttst.shapes(min_dims=1, min_side=2, max_size=16)), st.booleans(), st.booleans(), st.data())
def test_layer_norm_matches_twin(x, with_weight, with_bias, data):
    D = x.shape[-1]
    w = data.draw(ttst.tensors((D,)), label="weight") if with_weight else None
    b = data.draw(ttst.tensors((D,)), label="bias") if with_bias else None
    inputs = [t for t in (x, w, b) if t is not None]

    def call(fn):
        def run(*args):
            it = iter(args)
            return fn(next(it), next(it) if with_weight else None, next(it) if with_bias else None)
        return run
    assert_same(call(F.layer_norm), call(R.layer_norm), inputs, rtol=1e-8, atol=1e-9)
    assert tt.gradcheck(call(F.layer_norm), *inputs, atol=1e-4)


def test_layer_norm_backward_in_row_blocks_matches_twin(monkeypatch):
    """Backward cut into row blocks (3 rows of 4 here, the last block shorter): dx per block, and dw, db
    summed over the blocks, as from the twin."""
    from tinytensor.schedule import parallel
    monkeypatch.setattr(parallel, "CACHE_BLOCK", 12)
    rng = np.random.default_rng(7)
    x, w, b = (tt.tensor(rng.standard_normal(shape), dtype=np.float64, requires_grad=True)
               for shape in ((2, 5, 4), (4,), (4,)))
    assert_same(F.layer_norm, R.layer_norm, [x, w, b], rtol=1e-10, atol=1e-12)


@st.composite
def qkv(draw, causal):
    B, H = draw(st.sampled_from([(1, 1), (1, 2), (2, 1)]))
    T, D = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    S = draw(st.integers(T if causal else 1, 3))
    q = draw(ttst.tensors((B, H, T, D)))
    k = draw(ttst.tensors((B, H, S, D)))
    v = draw(ttst.tensors((B, H, S, D)))
    return q, k, v


@pytest.mark.parametrize("causal", [True, False])
@given(data=st.data())
def test_attention_matches_twin(causal, data):
    q, k, v = data.draw(qkv(causal))
    assert_same(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal),
                lambda q, k, v: R.scaled_dot_product_attention(q, k, v, causal=causal), [q, k, v])
    assert tt.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal), q, k, v)


def test_attention_scores_are_small_bounds_every_score():
    from tinytensor.ops.attention import SAFE_SCORE, scores_are_small
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 7, 8))
    largest = np.sqrt((q * q).sum(-1).max() * (k * k).sum(-1).max())
    assert np.abs(q @ np.swapaxes(k, -1, -2)).max() <= largest
    assert scores_are_small(q * 0.99 * SAFE_SCORE / largest, k)
    assert not scores_are_small(q * 1.01 * SAFE_SCORE / largest, k)
    assert not scores_are_small(np.full((1, 2, 3), np.nan), k) and not scores_are_small(q, k * np.inf)
    assert not scores_are_small(q[:, :0], k)


@pytest.mark.parametrize("size,unshifted", [(0.1, True), (4.0, True), (300.0, False)])
def test_attention_softmax_with_and_without_the_max_shift(size, unshifted):
    from tinytensor.ops.attention import scores_are_small
    rng = np.random.default_rng(4)
    shape = (2, 2, 6, 4)
    q_np, k_np, v_np = (rng.standard_normal(shape) for _ in range(3))
    q_np *= size / np.abs(q_np).max()
    k_np *= size / np.abs(k_np).max()
    assert scores_are_small(q_np / 2, k_np) == unshifted        # scaled queries: 1 / sqrt(D)
    g = rng.standard_normal(shape)
    results = []
    for dtype, fn in ((np.float32, F.scaled_dot_product_attention), (np.float64, R.scaled_dot_product_attention)):
        q, k, v = (tt.tensor(a, dtype=dtype, requires_grad=True) for a in (q_np, k_np, v_np))
        out = fn(q, k, v, causal=True)
        out.backward(g.astype(dtype))
        results.append([out.data, q.grad, k.grad, v.grad])
    for got, want in zip(*results):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * max(1.0, np.abs(want).max()))


def test_causal_attention_ignores_future_keys():
    rng = np.random.default_rng(0)
    q, k, v = (tt.tensor(rng.standard_normal((1, 1, 3, 2)), dtype=np.float64, requires_grad=True) for _ in range(3))
    out = F.scaled_dot_product_attention(q, k, v, causal=True)
    np.testing.assert_allclose(out.data[0, 0, 0], v.data[0, 0, 0])      # the first query sees only key 0
    out[:, :, 0].sum().backward()
    np.testing.assert_array_equal(k.grad[0, 0, 1:], 0.0)
    np.testing.assert_array_equal(v.grad[0, 0, 1:], 0.0)


def attention_np(q, k, v, causal=True, keep=None):
    """softmax(q k^T / sqrt(D) + mask) (times dropout's scaled keep-mask) v, in float64 NumPy."""
    T, S = q.shape[-2], k.shape[-2]
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.arange(S)[None, :] > np.arange(T)[:, None] + (S - T), -np.inf, s)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    return (w if keep is None else w * keep) @ v


@given(data=st.data())
def test_attention_dropout_gradient_with_a_fixed_seed(data):
    q, k, v = data.draw(qkv(causal=True))
    p = 0.4

    def seeded(impl):
        def fn(q, k, v):
            tt.manual_seed(7)                  # the same mask on every call
            return impl.scaled_dot_product_attention(q, k, v, causal=True, dropout_p=p)
        return fn
    assert tt.gradcheck(seeded(F), q, k, v)
    assert_same(seeded(F), seeded(R), [q, k, v])
    tt.manual_seed(7)                          # the mask both drew: kept weights scaled by 1 / (1 - p)
    keep = (ttrandom.uniform(q.shape[:-1] + (k.shape[-2],), dtype=np.float64) >= p) / (1 - p)
    np.testing.assert_allclose(seeded(F)(q, k, v).data, attention_np(q.data, k.data, v.data, keep=keep),
                               rtol=1e-10, atol=1e-12)


def test_attention_dropout_is_off_outside_training():
    q = tt.tensor(np.ones((1, 1, 2, 2)))
    a = F.scaled_dot_product_attention(q, q, q, dropout_p=0.9, training=False)
    np.testing.assert_array_equal(a.data, F.scaled_dot_product_attention(q, q, q).data)


@given(st.integers(1, 5), st.integers(1, 3), st.data())
def test_embedding_matches_twin(num, dim, data):
    ids = data.draw(ttst.ids(ttst.shapes(max_size=8), num=num), label="ids")
    weight = data.draw(ttst.tensors((num, dim)), label="weight")
    assert_same(lambda w: F.embedding(ids, w), lambda w: R.embedding(ids, w), [weight])
    assert tt.gradcheck(lambda w: F.embedding(tt.tensor(ids), w), weight)


@BOTH
def test_embedding_is_a_one_hot_product_and_repeated_ids_add_up(impl):
    rng = np.random.default_rng(2)
    weight_np, ids = rng.standard_normal((4, 2)), np.array([[3, 1], [3, 3]])
    onehot = np.eye(4)[ids]                             # (2, 2, 4): a lookup is onehot(ids) @ weight
    g = np.arange(8.0).reshape(2, 2, 2)
    weight = tt.tensor(weight_np, dtype=np.float64, requires_grad=True)
    out = impl.embedding(ids, weight)
    out.backward(g)
    np.testing.assert_array_equal(out.data, onehot @ weight_np)
    np.testing.assert_allclose(weight.grad, np.einsum("btn,btd->nd", onehot, g), rtol=1e-15)
    np.testing.assert_array_equal(weight.grad[3], g[0, 0] + g[1, 0] + g[1, 1])


@given(st.integers(1, 3), st.integers(1, 3), st.booleans(), st.data())
def test_linear_matches_twin(n_in, n_out, with_bias, data):
    lead = data.draw(ttst.shapes(max_dims=2, max_size=4), label="lead")
    x = data.draw(ttst.tensors(lead + (n_in,)), label="x")
    w = data.draw(ttst.tensors((n_out, n_in)), label="w")
    b = data.draw(ttst.tensors((n_out,)), label="b") if with_bias else None
    inputs = [x, w] + ([b] if with_bias else [])
    assert_same(F.linear, R.linear, inputs)
    assert tt.gradcheck(F.linear, *inputs)


# ----- float64 NumPy derivations written out in the tests -----

@BOTH
def test_softmax_gradient_is_the_jacobian_times_g(impl):
    rng = np.random.default_rng(3)
    x_np, g = rng.standard_normal(5), rng.standard_normal(5)
    s = np.exp(x_np) / np.exp(x_np).sum()
    jacobian = np.diag(s) - np.outer(s, s)          # ds_i/dx_j = s_i (δ_ij - s_j)
    x = tt.tensor(x_np, dtype=np.float64, requires_grad=True)
    y = impl.softmax(x)
    y.backward(g)
    np.testing.assert_allclose(y.data, s, rtol=1e-14)
    np.testing.assert_allclose(x.grad, jacobian.T @ g, rtol=1e-12)
    x2 = tt.tensor(x_np, dtype=np.float64, requires_grad=True)
    impl.log_softmax(x2).backward(g)                    # d log s_i / dx_j = δ_ij - s_j
    np.testing.assert_allclose(x2.grad, (np.eye(5) - s[None, :]).T @ g, rtol=1e-12)


@BOTH
def test_cross_entropy_gradient_is_softmax_minus_one_hot(impl):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((4, 3))
    t = np.array([2, 0, -100, 1])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    kept = t != -100
    expected_loss = -np.log(p[np.arange(4)[kept], t[kept]]).mean()
    expected_grad = (p - np.eye(3)[np.where(kept, t, 0)]) * kept[:, None] / kept.sum()
    logits = tt.tensor(z, dtype=np.float64, requires_grad=True)
    loss = impl.cross_entropy(logits, t)
    loss.backward()
    assert loss.item() == pytest.approx(expected_loss, rel=1e-13)
    np.testing.assert_allclose(logits.grad, expected_grad, rtol=1e-12, atol=1e-15)
    logits.grad = None
    impl.cross_entropy(logits, t, reduction="sum").backward()
    np.testing.assert_allclose(logits.grad, expected_grad * kept.sum(), rtol=1e-12, atol=1e-15)


@BOTH
def test_cross_entropy_everything_ignored_is_nan_like_pytorch(impl):
    logits = tt.tensor(np.zeros((2, 3)), requires_grad=True)
    loss = impl.cross_entropy(logits, np.array([-100, -100]))
    assert math.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(logits.grad, 0.0)
    assert impl.cross_entropy(logits, np.array([-100, -100]), reduction="sum").item() == 0.0


@BOTH
def test_gelu_derivative_by_the_sech_form(impl):
    x_np = np.linspace(-4, 4, 17)
    u = GELU_C * (x_np + 0.044715 * x_np ** 3)
    sech2 = 1 / np.cosh(u) ** 2
    expected = 0.5 * (1 + np.tanh(u)) + 0.5 * x_np * sech2 * GELU_C * (1 + 3 * 0.044715 * x_np ** 2)
    x = tt.tensor(x_np, dtype=np.float64, requires_grad=True)
    y = impl.gelu(x)
    y.sum().backward()
    np.testing.assert_allclose(y.data, 0.5 * x_np * (1 + np.tanh(u)), rtol=1e-14)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-10)


@BOTH
def test_layer_norm_gradient_by_its_jacobian(impl):
    rng = np.random.default_rng(5)
    D, eps = 4, 1e-5
    x_np, w_np, b_np, g = (rng.standard_normal(D) for _ in range(4))
    mu, var = x_np.mean(), x_np.var()
    rstd = 1 / np.sqrt(var + eps)
    xhat = (x_np - mu) * rstd
    # d xhat_i / d x_j = rstd (δ_ij - 1/D - xhat_i xhat_j / D)
    jacobian = rstd * (np.eye(D) - 1 / D - np.outer(xhat, xhat) / D)
    x, w, b = (tt.tensor(a, dtype=np.float64, requires_grad=True) for a in (x_np, w_np, b_np))
    y = impl.layer_norm(x, w, b, eps)
    y.backward(g)
    np.testing.assert_allclose(y.data, xhat * w_np + b_np, rtol=1e-12)
    np.testing.assert_allclose(x.grad, jacobian.T @ (g * w_np), rtol=1e-10)
    np.testing.assert_allclose(w.grad, g * xhat, rtol=1e-12)
    np.testing.assert_allclose(b.grad, g, rtol=1e-14)


@pytest.mark.parametrize("offset", [0.0, 3e3, 1e5])
def test_layer_norm_float32_stays_precise_far_from_zero(offset):
    """Rows around a large common value: the float32 mean is rounded, and the rounding must not show."""
    rng = np.random.default_rng(11)
    x_np = (offset + rng.standard_normal((16, 768))).astype(np.float32)
    w_np, b_np = rng.standard_normal(768).astype(np.float32), rng.standard_normal(768).astype(np.float32)
    g = rng.standard_normal((16, 768)).astype(np.float32)
    results = {}
    for dtype in (np.float32, np.float64):
        x, w, b = (tt.tensor(a, dtype=dtype, requires_grad=True) for a in (x_np, w_np, b_np))
        y = F.layer_norm(x, w, b)
        y.backward(g.astype(dtype))
        results[dtype] = (y.data, x.grad, w.grad, b.grad)
    for got, want in zip(results[np.float32], results[np.float64]):
        assert np.abs(got - want).max() <= 2e-6 * np.abs(want).max()


@BOTH
def test_linear_gradient_by_hand(impl):
    rng = np.random.default_rng(6)
    x_np, w_np, b_np = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    g = rng.standard_normal((2, 3, 5))
    x, w, b = (tt.tensor(a, dtype=np.float64, requires_grad=True) for a in (x_np, w_np, b_np))
    y = impl.linear(x, w, b)
    y.backward(g)
    np.testing.assert_allclose(y.data, x_np @ w_np.T + b_np, rtol=1e-12)
    np.testing.assert_allclose(x.grad, g @ w_np, rtol=1e-12)
    np.testing.assert_allclose(w.grad, np.einsum("bto,bti->oi", g, x_np), rtol=1e-12)
    np.testing.assert_allclose(b.grad, g.sum(axis=(0, 1)), rtol=1e-12)


@BOTH
def test_attention_gradient_by_hand(impl):
    rng = np.random.default_rng(7)
    q_np, k_np, v_np = (rng.standard_normal((1, 2, 3, 2)) for _ in range(3))
    g = rng.standard_normal((1, 2, 3, 2))
    scale = 1 / math.sqrt(2)
    s = q_np @ np.swapaxes(k_np, -1, -2) * scale
    s = np.where(np.triu(np.ones((3, 3), bool), 1), -np.inf, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(v_np, -1, -2)
    ds = np.zeros_like(p)
    for idx in np.ndindex(p.shape[:-1]):            # softmax row by row through its Jacobian
        row = p[idx]
        ds[idx] = (np.diag(row) - np.outer(row, row)) @ dp[idx]
    dq, dk = ds @ k_np * scale, np.swapaxes(ds, -1, -2) @ q_np * scale
    q, k, v = (tt.tensor(a, dtype=np.float64, requires_grad=True) for a in (q_np, k_np, v_np))
    out = impl.scaled_dot_product_attention(q, k, v)
    out.backward(g)
    np.testing.assert_allclose(out.data, p @ v_np, rtol=1e-12)
    for got, want in ((q.grad, dq), (k.grad, dk), (v.grad, dv)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "gelu", "layer_norm", "attention", "cross_entropy"])
def test_fused_ops_agree_with_twins_in_float32(name):
    rng = np.random.default_rng(8)
    x32 = tt.tensor(rng.standard_normal((2, 2, 3, 4)), requires_grad=True)
    cases = {
        "softmax": (F.softmax, R.softmax),
        "log_softmax": (F.log_softmax, R.log_softmax),
        "gelu": (F.gelu, R.gelu),
        "layer_norm": (F.layer_norm, R.layer_norm),
        "attention": (lambda x: F.scaled_dot_product_attention(x, x, x),
                      lambda x: R.scaled_dot_product_attention(x, x, x)),
        "cross_entropy": (lambda x: F.cross_entropy(x.reshape(4, 3, 4)[0], np.array([0, 3, 1])),
                          lambda x: R.cross_entropy(x.reshape(4, 3, 4)[0], np.array([0, 3, 1]))),
    }
    fused, twin = cases[name]
    assert fused(x32).dtype == np.float32
    assert_same(fused, twin, [x32], rtol=1e-4, atol=1e-5)


# ----- regressions -----

def test_softmax_of_a_0d_tensor_is_one_with_zero_gradient_like_pytorch():
    x = tt.tensor(2.0, dtype=np.float64, requires_grad=True)
    y = F.softmax(x)
    assert y.shape == () and y.item() == 1.0
    y.backward()
    assert x.grad.shape == () and x.grad == 0.0
    x.grad = None
    z = F.log_softmax(x)
    assert z.shape == () and z.item() == 0.0
    z.backward()
    assert x.grad == 0.0


def test_attention_mask_cache_stays_bounded_whatever_lengths_it_sees():
    """Every distinct (T, S) used to keep its mask and bias for the life of the process (300 prompt
    lengths held ~800 MB): the memory held after many lengths must stay bounded."""
    import gc
    import tracemalloc
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with tt.no_grad():
            for T in range(1, 301):                 # float64 biases and bool masks: 81 MB if all were kept
                q = tt.tensor(np.ones((1, 1, T, 1)), dtype=np.float64)
                F.scaled_dot_product_attention(q, q, q, causal=True)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 40 << 20, f"{held / 2**20:.0f} MB still held after 300 prompt lengths"
