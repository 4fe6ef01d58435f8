"""The ops Llama and Qwen add (RMSNorm, RoPE, SiLU, SwiGLU): each fused op against its twin, gradchecked over
hypothesis-drawn shapes, checked against float64 NumPy written out here, and by the properties that define it."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import nn
from tinytensor import reference as R
from tinytensor import testing as ttst

from test_device_seam import fake_cuda  # noqa: F401  (a fixture)
from test_fused import assert_same

BOTH = pytest.mark.parametrize("impl", [F, R], ids=["fused", "twin"])


# ----- RMSNorm -----

@given(ttst.tensors(ttst.shapes(min_dims=1, max_size=16)), st.booleans(), st.data())
def test_rms_norm_matches_twin_and_gradchecks(x, with_weight, data):
    w = data.draw(ttst.tensors((x.shape[-1],)), label="weight") if with_weight else None
    inputs = [x] + ([w] if with_weight else [])

    def call(fn):
        return lambda x, *w: fn(x, w[0] if w else None, 1e-6)
    assert_same(call(F.rms_norm), call(R.rms_norm), inputs, rtol=1e-8, atol=1e-9)
    assert tt.gradcheck(call(F.rms_norm), *inputs, atol=1e-4)


@BOTH
def test_rms_norm_gradient_by_its_jacobian(impl):
    rng = np.random.default_rng(5)
    D, eps = 5, 1e-6
    x_np, w_np, g = (rng.standard_normal(D) for _ in range(3))
    rstd = 1 / np.sqrt((x_np * x_np).mean() + eps)
    xhat = x_np * rstd
    jacobian = rstd * (np.eye(D) - np.outer(xhat, xhat) / D)      # d xhat_i / d x_j
    x, w = (tt.tensor(a, dtype=np.float64, requires_grad=True) for a in (x_np, w_np))
    y = impl.rms_norm(x, w, eps)
    y.backward(g)
    np.testing.assert_allclose(y.data, xhat * w_np, rtol=1e-12)
    np.testing.assert_allclose(x.grad, jacobian.T @ (g * w_np), rtol=1e-10)
    np.testing.assert_allclose(w.grad, g * xhat, rtol=1e-12)


@given(ttst.arrays(ttst.shapes(min_dims=1, max_size=16), min_magnitude=0.1), st.floats(0.1, 10.0))
def test_rms_norm_gives_unit_rms_and_ignores_the_scale_of_a_row(a, scale):
    x = tt.tensor(a, dtype=np.float64)
    y = F.rms_norm(x, eps=0.0)
    np.testing.assert_allclose(np.sqrt((y.data ** 2).mean(axis=-1)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(F.rms_norm(x * scale, eps=0.0).data, y.data, rtol=1e-12, atol=1e-12)


def test_rms_norm_qwen3_per_head_use_and_layer_and_errors():
    rng = np.random.default_rng(0)
    q = tt.tensor(rng.standard_normal((2, 5, 4, 8)), requires_grad=True)          # (B, T, H, D): each head alone
    norm = nn.RMSNorm(8)
    out = norm(q)
    assert out.dtype == np.float32 and out.shape == q.shape
    np.testing.assert_allclose(np.sqrt((out.data ** 2).mean(-1)), 1.0, rtol=1e-3)
    out.sum().backward()
    assert q.grad.shape == q.shape and norm.weight.grad.shape == (8,)
    with pytest.raises(ValueError, match="weight of shape"):
        F.rms_norm(q, tt.ones(4))
    with pytest.raises(ValueError, match="0-d"):
        F.rms_norm(tt.tensor(1.0))
    with pytest.raises(TypeError, match="float64"):
        F.rms_norm(q, tt.tensor(np.ones(8), dtype=np.float64))


# ----- RoPE -----

@st.composite
def rope_case(draw):
    lead = draw(st.sampled_from([(), (2,), (1, 3), (2, 1, 2)]))
    T, D = draw(st.integers(1, 4)), 2 * draw(st.integers(1, 3))
    x = draw(ttst.tensors(lead + (T, D)))
    positions = draw(st.lists(st.integers(0, 50), min_size=T, max_size=T))
    theta = draw(st.sampled_from([10.0, 1e4, 5e5]))
    return x, F.rope_tables(D, positions, theta=theta, dtype=np.float64)


@given(rope_case())
def test_rope_matches_twin_and_gradchecks(case):
    x, (cos, sin) = case
    assert_same(lambda x: F.rope(x, cos, sin), lambda x: R.rope(x, cos, sin), [x])
    assert tt.gradcheck(lambda x: F.rope(x, cos, sin), x)


@given(rope_case())
def test_rope_turns_each_pair_so_lengths_stay(case):
    x, (cos, sin) = case
    D = x.shape[-1]
    out = F.rope(x, cos, sin).data
    pair = lambda a: a[..., :D // 2] ** 2 + a[..., D // 2:] ** 2      # noqa: E731 (length^2 of each pair)
    np.testing.assert_allclose(pair(out), pair(x.data), rtol=1e-10, atol=1e-12)
    back = F.rope(tt.tensor(out, dtype=np.float64), cos, -sin).data          # turned back by minus the angle
    np.testing.assert_allclose(back, x.data, atol=1e-12)


@given(st.integers(0, 200), st.integers(0, 200), st.integers(1, 100))
def test_rope_scores_depend_only_on_the_distance(m, n, shift):
    """q at position m against k at n scores the same as at m + s and n + s: RoPE encodes relative position."""
    rng = np.random.default_rng(m * 1000 + n)
    q, k = (tt.tensor(rng.standard_normal((1, 8)), dtype=np.float64) for _ in range(2))

    def score(i, j):
        cq, sq = F.rope_tables(8, [i], theta=500.0, dtype=np.float64)
        ck, sk = F.rope_tables(8, [j], theta=500.0, dtype=np.float64)
        return float((F.rope(q, cq, sq).data * F.rope(k, ck, sk).data).sum())
    assert score(m, n) == pytest.approx(score(m + shift, n + shift), rel=1e-9, abs=1e-9)


def test_rope_matches_a_complex_rotation_written_out():
    """Pairs (x_i, x_{i+D/2}) as complex numbers z: rope multiplies z by e^{i p theta^(-2i/D)}."""
    rng = np.random.default_rng(1)
    T, D, theta = 6, 8, 100.0
    x = rng.standard_normal((2, T, D))
    z = x[..., :D // 2] + 1j * x[..., D // 2:]
    angles = np.arange(T)[:, None] * theta ** (-np.arange(0, D, 2) / D)[None, :]
    turned = z * np.exp(1j * angles)
    want = np.concatenate([turned.real, turned.imag], axis=-1)
    cos, sin = F.rope_tables(D, T, theta=theta, dtype=np.float64)
    g = rng.standard_normal(x.shape)
    for impl in (F, R):
        t = tt.tensor(x, dtype=np.float64, requires_grad=True)
        out = impl.rope(t, cos, sin)
        out.backward(g)
        np.testing.assert_allclose(out.data, want, rtol=1e-12, atol=1e-12)
        gz = (g[..., :D // 2] + 1j * g[..., D // 2:]) * np.exp(-1j * angles)     # the gradient turns back
        np.testing.assert_allclose(t.grad, np.concatenate([gz.real, gz.imag], axis=-1), rtol=1e-12, atol=1e-12)


def test_llama3_frequencies_keep_short_stretch_long_and_blend_between():
    inv = F.rope_frequencies(128, theta=500000.0)
    scaling = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_context_length": 8192}
    scaled = F.rope_frequencies(128, theta=500000.0, scaling=scaling)
    wavelen = 2 * math.pi / inv
    short, long_ = wavelen < 8192 / 4, wavelen > 8192 / 1
    between = ~short & ~long_
    assert short.any() and long_.any() and between.any()
    np.testing.assert_array_equal(scaled[short], inv[short])
    np.testing.assert_allclose(scaled[long_], inv[long_] / 8, rtol=1e-15)
    # in between: a straight line in 8192 / wavelen from inv / 8 (at low_freq_factor) to inv (at high_freq_factor)
    t = (8192 / wavelen[between] - 1.0) / (4.0 - 1.0)
    np.testing.assert_allclose(scaled[between], (1 - t) * inv[between] / 8 + t * inv[between], rtol=1e-15)
    assert np.all(scaled[between] < inv[between]) and np.all(scaled[between] > inv[between] / 8)


def test_rope_tables_and_errors():
    cos, sin = F.rope_tables(6, 4)
    assert cos.shape == sin.shape == (4, 3) and cos.dtype == np.float32
    np.testing.assert_allclose(cos[0], 1.0) and np.testing.assert_allclose(sin[0], 0.0)
    x = tt.tensor(np.ones((2, 4, 6)))
    assert F.rope(x, cos, sin).dtype == np.float32
    with pytest.raises(ValueError, match="even"):
        F.rope(tt.tensor(np.ones((2, 5))), cos, sin)
    with pytest.raises(ValueError, match="does not broadcast"):
        F.rope(tt.tensor(np.ones((2, 5, 6))), cos, sin)
    with pytest.raises(ValueError, match="even number"):
        F.rope_tables(5, 3)
    with pytest.raises(ValueError, match="theta"):
        F.rope_tables(4, 3, theta=float("nan"))
    with pytest.raises(ValueError, match="Llama 3 scaling"):
        F.rope_frequencies(4, scaling={"factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0,
                                       "original_context_length": 10})


# ----- SiLU and SwiGLU -----

@given(ttst.tensors(ttst.shapes(), domain="wide", min_value=-8.0, max_value=8.0))
def test_silu_matches_twin_and_gradchecks(x):
    assert_same(F.silu, R.silu, [x])
    assert tt.gradcheck(F.silu, x)


@given(ttst.shapes(min_dims=1, max_size=12), st.data())
def test_swiglu_both_forms_match_twin_and_gradcheck(shape, data):
    gate = data.draw(ttst.tensors(shape), label="gate")
    up = data.draw(ttst.tensors(shape), label="up")
    assert_same(F.swiglu, R.swiglu, [gate, up])
    assert tt.gradcheck(F.swiglu, gate, up)
    both = tt.tensor(np.concatenate([gate.data, up.data], axis=-1), dtype=np.float64, requires_grad=True)
    assert_same(F.swiglu, R.swiglu, [both])
    assert tt.gradcheck(F.swiglu, both)
    np.testing.assert_allclose(F.swiglu(both).data, F.swiglu(gate, up).data, rtol=1e-15)


@BOTH
def test_silu_and_swiglu_derivatives_written_out(impl):
    x_np = np.linspace(-6, 6, 13)
    u_np = np.cos(x_np)
    s = 1 / (1 + np.exp(-x_np))
    x = tt.tensor(x_np, dtype=np.float64, requires_grad=True)
    y = impl.silu(x)
    y.sum().backward()
    np.testing.assert_allclose(y.data, x_np * s, rtol=1e-14)
    np.testing.assert_allclose(x.grad, s * (1 + x_np * (1 - s)), rtol=1e-12)
    x.grad = None
    u = tt.tensor(u_np, dtype=np.float64, requires_grad=True)
    impl.swiglu(x, u).sum().backward()
    np.testing.assert_allclose(x.grad, u_np * s * (1 + x_np * (1 - s)), rtol=1e-12)
    np.testing.assert_allclose(u.grad, x_np * s, rtol=1e-12)


def test_silu_saturates_without_overflow_in_float32():
    x = tt.tensor(np.array([-1000.0, -90.0, 0.0, 90.0, 1000.0], np.float32), requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = F.silu(x)
        y.sum().backward()
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 0.0, 90.0, 1000.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.5, 1.0, 1.0])
    assert y.dtype == np.float32 and x.grad.dtype == np.float32 and isinstance(nn.SiLU()(x), tt.Tensor)


def test_swiglu_errors():
    with pytest.raises(ValueError, match="even length"):
        F.swiglu(tt.tensor(np.ones((2, 3))))
    with pytest.raises(ValueError, match="same shape"):
        F.swiglu(tt.tensor(np.ones((2, 3))), tt.tensor(np.ones((2, 4))))


# ----- all four: float32 agreement, the switch, the device seam -----

@pytest.mark.parametrize("name", ["rms_norm", "rope", "silu", "swiglu"])
def test_fused_agree_with_twins_in_float32_and_run_twins_under_the_switch(name):
    rng = np.random.default_rng(8)
    cos, sin = F.rope_tables(4, 3)
    x32 = tt.tensor(rng.standard_normal((2, 2, 3, 4)), requires_grad=True)
    w32 = tt.tensor(rng.standard_normal(4), requires_grad=True)
    fn = {"rms_norm": lambda x, w: F.rms_norm(x, w), "rope": lambda x, w: F.rope(x, cos, sin) * w,
          "silu": lambda x, w: F.silu(x) * w, "swiglu": lambda x, w: F.swiglu(x) * w[:2]}[name]
    twin = {"rms_norm": lambda x, w: R.rms_norm(x, w), "rope": lambda x, w: R.rope(x, cos, sin) * w,
            "silu": lambda x, w: R.silu(x) * w, "swiglu": lambda x, w: R.swiglu(x) * w[:2]}[name]
    assert fn(x32, w32).dtype == np.float32
    assert_same(fn, twin, [x32, w32], rtol=1e-5, atol=1e-6)
    with tt.op_counter() as fused:
        fn(x32, w32).sum().backward()
    with tt.reference_ops(), tt.op_counter() as twins:
        fn(x32, w32).sum().backward()
    assert name in fused.counts and name not in twins.counts


def test_the_four_ops_stay_on_the_device(fake_cuda):
    import test_device_seam as seam
    cos, sin = F.rope_tables(4, 3)
    cases = [("rms_norm", lambda a, w: F.rms_norm(a, w), [(2, 3, 4), (4,)], seam._any),
             ("rope", lambda a: F.rope(a, *(tt.tensor(t, dtype=np.float64, device=a.device).data for t in (cos, sin))),
              [(2, 3, 4)], seam._any),
             ("silu_swiglu", lambda a, b: F.silu(a) * F.swiglu(a, b) + F.swiglu(a).sum(), [(3, 4), (3, 4)], seam._any)]
    for case in cases:
        out_c, ins_c = seam.run_case(case, "cpu")
        out_d, ins_d = seam.run_case(case, "cuda")
        assert seam.on_device(out_d.data), case[0]
        np.testing.assert_allclose(seam.host(out_d.data), out_c.data, rtol=1e-12, atol=1e-12)
        for a, b in zip(ins_c, ins_d):
            assert seam.on_device(b.grad), case[0]
            np.testing.assert_allclose(seam.host(b.grad), a.grad, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="different devices"):
        F.rope(tt.tensor(np.ones((3, 4)), device="cuda"), cos, sin)


@pytest.mark.parametrize("op", ["silu", "swiglu_halves", "swiglu_pair", "rms_norm", "rope"])
def test_inputs_laid_out_in_any_order_give_the_contiguous_results(op):
    """Inputs that are transposed views: every result and gradient written where it is read back."""
    rng = np.random.default_rng(9)
    base = rng.standard_normal((6, 4, 5))
    cos, sin = F.rope_tables(6, 5, dtype=np.float64)
    fns = {"silu": lambda a, b: F.silu(a), "swiglu_halves": lambda a, b: F.swiglu(a),
           "swiglu_pair": lambda a, b: F.swiglu(a, b), "rms_norm": lambda a, b: F.rms_norm(a),
           "rope": lambda a, b: F.rope(a.swapaxes(0, 1), cos, sin)}
    results = []
    for layout in ("transposed", "contiguous"):
        arrays = [base.transpose(2, 1, 0), base.transpose(2, 1, 0) * 2]     # (5, 4, 6) views
        if layout == "contiguous":
            arrays = [np.ascontiguousarray(a) for a in arrays]
        a, b = (tt.tensor(x, dtype=np.float64, requires_grad=True) for x in arrays)
        out = fns[op](a, b)
        out.backward(np.cos(np.arange(out.size)).reshape(out.shape))
        results.append([out.data, a.grad] + ([b.grad] if op == "swiglu_pair" else []))
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)
