"""The plain rung (``tinytensor.reference.PLAIN``) against the other two: the fused op and the composed twin.

Each plain pair is NumPy arrays in and out with a backward written by hand. Wrapped as a ``tt.Function``,
its hand-written backward is checked against central differences by ``tt.gradcheck`` (float64); then its
output and input gradients must equal the fused op's (``F``) and the twin's (``reference``) under one
upstream gradient, on hypothesis-drawn shapes.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import reference as R
from tinytensor import testing as ttst
from tinytensor.reference import PLAIN

small = dict(max_side=4, max_size=24)


def plain_op(name, **constants):
    """The plain pair of ``name`` as a Tensor op; ``constants`` (targets, tables, axis) go to its forward."""
    fwd, bwd = PLAIN[name]

    class Plain(tt.Function):
        @staticmethod
        def forward(ctx, *arrays):
            out, ctx.cache = fwd(*arrays, **constants)
            return np.asarray(out)

        @staticmethod
        def backward(ctx, g):
            return bwd(g, ctx.cache)
    return Plain.apply


def assert_three_rungs_agree(name, arrays, fused, twin, **constants):
    """gradcheck of the plain pair; then plain, fused and twin: the same output and input gradients."""
    tensors = [tt.tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
    plain = plain_op(name, **constants)
    assert tt.gradcheck(plain, *tensors)
    g = np.random.default_rng(0).standard_normal(np.shape(plain(*tensors).data))
    results = []
    for op in (plain, fused, twin):
        for t in tensors:
            t.grad = None
        out = op(*tensors)
        (out * tt.tensor(g, dtype=np.float64)).sum().backward()
        results.append((out.data, [t.grad for t in tensors]))
    (out_p, grads_p), others = results[0], results[1:]
    for out, grads in others:
        np.testing.assert_allclose(out, out_p, rtol=1e-9, atol=1e-12)
        for got, want in zip(grads, grads_p):
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-11)


def test_every_fused_op_of_the_ladder_has_a_plain_pair():
    assert set(PLAIN) == {"softmax", "log_softmax", "cross_entropy", "gelu", "layer_norm", "linear",
                          "scaled_dot_product_attention", "rms_norm", "rope", "swiglu"}
    for fwd, bwd in PLAIN.values():
        assert fwd.__doc__ and bwd.__doc__


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=ttst.data())
def test_softmax_and_log_softmax(name, data):
    x = data.draw(ttst.arrays(ttst.shapes(min_dims=1, **small), domain="wide"))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    assert_three_rungs_agree(name, [x], lambda x: getattr(F, name)(x, axis), lambda x: getattr(R, name)(x, axis),
                             axis=axis)


@given(data=ttst.data())
def test_cross_entropy(data):
    batch = data.draw(ttst.shapes(min_dims=1, max_dims=2, max_size=6))
    C = data.draw(st.integers(1, 5))
    logits = data.draw(ttst.arrays(batch + (C,)))
    targets = data.draw(ttst.ids(batch, num=C))
    targets[data.draw(ttst.arrays(batch, domain="unit")) > 0.5] = -100        # some positions ignored
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))
    if reduction == "mean" and (targets == -100).all():
        targets.flat[0] = 0                          # a mean of nothing is NaN in every rung: tested below
    loss = lambda op: lambda x: op(x, targets, reduction=reduction)          # noqa: E731
    assert_three_rungs_agree("cross_entropy", [logits], loss(F.cross_entropy), loss(R.cross_entropy),
                             targets=targets, reduction=reduction)


def test_cross_entropy_of_nothing_kept_is_nan_with_zero_gradient():
    fwd, bwd = PLAIN["cross_entropy"]
    out, cache = fwd(np.ones((2, 3)), np.array([-100, -100]))
    assert np.isnan(out)
    np.testing.assert_array_equal(bwd(np.float64(1.0), cache)[0], np.zeros((2, 3)))


@given(x=ttst.arrays(ttst.shapes(**small), domain="wide"))
def test_gelu(x):
    assert_three_rungs_agree("gelu", [x], F.gelu, R.gelu)


@given(data=ttst.data())
def test_layer_norm_and_rms_norm(data):
    x = data.draw(ttst.arrays(ttst.shapes(min_dims=1, min_side=2, **small)))
    w, b = data.draw(ttst.arrays(x.shape[-1:])), data.draw(ttst.arrays(x.shape[-1:]))
    assert_three_rungs_agree("layer_norm", [x, w, b], F.layer_norm, R.layer_norm)
    assert_three_rungs_agree("rms_norm", [x, w], F.rms_norm, R.rms_norm)


@given(data=ttst.data())
def test_linear(data):
    x = data.draw(ttst.arrays(ttst.shapes(min_dims=1, **small)))
    out_f = data.draw(st.integers(1, 4))
    w, b = data.draw(ttst.arrays((out_f, x.shape[-1]))), data.draw(ttst.arrays((out_f,)))
    assert_three_rungs_agree("linear", [x, w, b], F.linear, R.linear)


@given(data=ttst.data())
def test_attention_with_and_without_grouped_heads(data):
    B, H_kv, G = (data.draw(st.integers(1, 2)) for _ in range(3))
    T, D = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    causal = data.draw(st.booleans())
    S = T + data.draw(st.integers(0, 2))                    # causal: at least as many keys as queries
    q = data.draw(ttst.arrays((B, H_kv * G, T, D)))
    k, v = (data.draw(ttst.arrays((B, H_kv, S, D))) for _ in range(2))
    sdpa = lambda op: lambda q, k, v: op(q, k, v, causal=causal)             # noqa: E731
    assert_three_rungs_agree("scaled_dot_product_attention", [q, k, v], sdpa(F.scaled_dot_product_attention),
                             sdpa(R.scaled_dot_product_attention), causal=causal)


@given(data=ttst.data())
def test_rope(data):
    x = data.draw(ttst.arrays(ttst.shapes(min_dims=2, max_dims=4, min_side=1, max_side=3).map(
        lambda s: s[:-1] + (2 * s[-1],))))
    half = x.shape[-2:-1] + (x.shape[-1] // 2,)                  # (T, D/2): any angles, a table per position
    cos, sin = data.draw(ttst.arrays(half)), data.draw(ttst.arrays(half))
    assert_three_rungs_agree("rope", [x], lambda x: F.rope(x, cos, sin), lambda x: R.rope(x, cos, sin),
                             cos=cos, sin=sin)


@given(data=ttst.data())
def test_swiglu(data):
    gate = data.draw(ttst.arrays(ttst.shapes(**small), domain="wide"))
    up = data.draw(ttst.arrays(gate.shape))
    assert_three_rungs_agree("swiglu", [gate, up], F.swiglu, R.swiglu)


def test_a_wrong_hand_backward_is_caught():
    """The check can fail: layer norm's backward without its mean(gh) term disagrees with all three."""
    fwd, bwd = PLAIN["layer_norm"]

    def wrong(g, cache):
        dx, dw, db = bwd(g, cache)
        xhat, rstd, w = cache
        return dx + rstd * (g * w).mean(axis=-1, keepdims=True), dw, db
    PLAIN["layer_norm"] = (fwd, wrong)
    try:
        x = np.random.default_rng(2).standard_normal((3, 4))
        with pytest.raises((tt.GradcheckError, AssertionError)):
            assert_three_rungs_agree("layer_norm", [x, np.ones(4), np.zeros(4)], F.layer_norm, R.layer_norm)
    finally:
        PLAIN["layer_norm"] = (fwd, bwd)
