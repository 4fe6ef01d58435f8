"""Second derivatives of every op: ``tt.gradgradcheck`` over hypothesis-drawn shapes.

gradgradcheck differentiates the first-order gradient as recorded by ``create_graph=True`` (each primitive's
backward written in Tensor ops; each fused op through its composed twin) and compares it with central
differences of the plain first-order gradient (the raw-array backward): so the two backward paths are
checked against each other too. Shapes stay small: the check is per element.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import testing as ttst
from tinytensor.ops.index import scatter
from tinytensor.ops.shape import broadcast_to

SMALL = ttst.shapes(max_size=8)
few = settings(max_examples=8)


def check(fn, *inputs):
    assert tt.gradgradcheck(fn, *inputs, atol=1e-4)


# ----- primitives: elementwise -----

UNARY = {
    "neg": (lambda x: -x, {}),
    "exp": (tt.exp, {}),
    "log": (tt.log, {"domain": "positive"}),
    "tanh": (tt.tanh, {}),
    "sqrt": (tt.sqrt, {"domain": "positive"}),
    "relu": (tt.relu, {"min_magnitude": 1e-3}),
    "sigmoid": (tt.sigmoid, {}),
    "abs": (tt.abs, {"min_magnitude": 1e-3}),
    "pow_const": (lambda x: x ** 3, {}),
    "rpow": (lambda x: 2.0 ** x, {}),
    "astype": (lambda x: x.astype("float64") * x, {}),
    "masked_fill": (lambda x: (x * x).masked_fill(x.data > 0, 0.5), {"min_magnitude": 1e-3}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@few
@given(data=st.data())
def test_unary_second_derivative(name, data):
    fn, domain = UNARY[name]
    x = data.draw(ttst.tensors(SMALL, **domain), label="x")
    check(lambda x: fn(x) * x if name in ("relu", "abs") else fn(x), x)     # relu'' = 0: times x it is not


BINARY = {
    "add": (lambda a, b: (a + b) * a, {}),
    "sub": (lambda a, b: (a - b) * b, {}),
    "mul": (lambda a, b: a * b, {}),
    "div": (lambda a, b: a / b, {"domain": "positive"}),
    "pow": (lambda a, b: b ** a, {"domain": "positive"}),
    "where": (lambda a, b: tt.where(a.data > 0, a * a, b * b * b), {}),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@few
@given(ttst.broadcastable_shapes(2, max_size=8), st.data())
def test_binary_second_derivative_with_broadcasting(name, shapes, data):
    fn, domain = BINARY[name]
    a = data.draw(ttst.tensors(shapes[0], min_magnitude=1e-3), label="a")       # (where's condition: a > 0)
    b = data.draw(ttst.tensors(shapes[1], **domain), label="b")
    check(fn, a, b)


# ----- primitives: reductions, shapes, indexing, matmul, dropout -----

@pytest.mark.parametrize("op", ["sum", "mean", "var", "max", "min"])
@few
@given(x=ttst.tensors(ttst.shapes(min_dims=1, max_size=8), distinct=True), keepdims=st.booleans(), data=st.data())
def test_reduction_second_derivative(op, x, keepdims, data):
    axis = data.draw(st.sampled_from([None] + list(range(x.ndim))), label="axis")
    check(lambda x: getattr(x * x, op)(axis=axis, keepdims=keepdims) * 1.5, x)


@few
@given(x=ttst.tensors(ttst.shapes(min_dims=2, max_size=12)))
def test_shape_ops_second_derivative(x):
    check(lambda x: (x * x).T.reshape(-1) * x.swapaxes(0, -1).reshape(-1), x)
    check(lambda x: tt.concatenate([x * x, x], axis=-1), x)
    check(lambda x: tt.stack([x, x * x]).sum(axis=0) * x, x)
    check(lambda x: broadcast_to(x * x, (2,) + x.shape), x)


@few
@given(x=ttst.tensors(ttst.shapes(min_dims=1, max_size=12)), data=st.data())
def test_indexing_second_derivative(x, data):
    rows = data.draw(st.lists(st.integers(0, x.shape[0] - 1), min_size=1, max_size=5), label="rows")
    check(lambda x: (x * x)[rows] * x[rows], x)                 # integer arrays, repeats add up
    check(lambda x: (x * x)[:1] * x[-1:], x)                      # basic slices
    check(lambda x: scatter((x * x)[rows], (np.array(rows),), (x.shape[0] + 1,) + x.shape[1:]) * 2.0, x)


@few
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.booleans(), st.booleans(), st.data())
def test_matmul_second_derivative(n, k, m, a_vector, b_vector, data):
    a = data.draw(ttst.tensors((k,) if a_vector else (2, n, k)), label="a")
    b = data.draw(ttst.tensors((k,) if b_vector else (k, m)), label="b")
    check(lambda a, b: (a @ b) * (a @ b), a, b)


@few
@given(x=ttst.tensors(SMALL))
def test_dropout_second_derivative(x):
    def fn(x):
        tt.manual_seed(3)                     # the same mask on every call
        return F.dropout(x * x, 0.5)
    check(fn, x)


# ----- fused ops (through their composed twins) -----

@few
@given(x=ttst.tensors(ttst.shapes(min_dims=1, max_size=12)))
def test_softmax_and_log_softmax_second_derivative(x):
    check(lambda x: F.softmax(x, -1), x)
    check(lambda x: F.log_softmax(x, 0), x)


@few
@given(st.integers(1, 4), st.integers(2, 4), st.sampled_from(["mean", "sum", "none"]), st.data())
def test_cross_entropy_second_derivative(n, c, reduction, data):
    logits = data.draw(ttst.tensors((n, c)), label="logits")
    targets = data.draw(ttst.ids((n,), num=c), label="targets")
    targets[0] = -100 if n > 1 else targets[0]                  # one ignored position
    check(lambda x: F.cross_entropy(x, targets, reduction=reduction), logits)


@few
@given(x=ttst.tensors(SMALL))
def test_gelu_silu_second_derivative(x):
    check(F.gelu, x)
    check(F.silu, x)


@few
@given(x=ttst.tensors(ttst.shapes(min_dims=1, min_side=2, max_size=12)), with_weight=st.booleans(),
       with_bias=st.booleans(), data=st.data())
def test_layer_norm_and_rms_norm_second_derivative(x, with_weight, with_bias, data):
    D = x.shape[-1]
    w = data.draw(ttst.tensors((D,)), label="w") if with_weight else None
    b = data.draw(ttst.tensors((D,)), label="b") if with_bias else None
    extra = [t for t in (w, b) if t is not None]

    def ln(x, *wb):
        it = iter(wb)
        return F.layer_norm(x, next(it) if with_weight else None, next(it) if with_bias else None)
    check(ln, x, *extra)
    check(lambda x, *w: F.rms_norm(x, w[0] if w else None), x, *([w] if w is not None else []))


@few
@given(st.integers(1, 3), st.integers(1, 3), st.booleans(), st.booleans(), st.data())
def test_attention_second_derivative(T, D, causal, grouped, data):
    H, H_kv = (2, 1) if grouped else (1, 1)
    q = data.draw(ttst.tensors((1, H, T, D)), label="q")
    k, v = (data.draw(ttst.tensors((1, H_kv, T + 1, D)), label=n) for n in "kv")
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal), q, k, v)


@few
@given(st.integers(1, 3), st.integers(1, 3), st.booleans(), st.data())
def test_linear_second_derivative(n_in, n_out, with_bias, data):
    x = data.draw(ttst.tensors((2, n_in)), label="x")
    w = data.draw(ttst.tensors((n_out, n_in)), label="w")
    extra = [data.draw(ttst.tensors((n_out,)), label="b")] if with_bias else []
    check(lambda x, w, *b: F.linear(x, w, *b) * F.linear(x, w, *b), x, w, *extra)


@few
@given(st.integers(1, 4), st.integers(1, 3), st.data())
def test_embedding_rope_swiglu_second_derivative(num, half, data):
    ids = data.draw(ttst.ids((3,), num=num), label="ids")
    w = data.draw(ttst.tensors((num, 2 * half)), label="w")
    check(lambda w: F.embedding(ids, w) * F.embedding(ids, w), w)
    cos, sin = F.rope_tables(2 * half, 3, dtype=np.float64)
    check(lambda w: F.rope(F.embedding(ids, w) * w.sum(), cos, sin), w)
    check(lambda w: F.swiglu(F.embedding(ids, w)), w)
    check(lambda a, b: F.swiglu(a, b), w, w * 1.0)
