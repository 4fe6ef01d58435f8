"""Invariants of the engine over every op (dtype kept, no input mutated, backward twice accumulates) and the
graph machinery: freeing, retain_graph, accumulation, deep chains, no_grad, detach, seeds, dropout."""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import nn

IDS = np.array([[0, 2], [2, 1]])
TARGETS = np.array([1, -100, 0])
MASK = np.array([True, False, True])
COND = np.array([[True], [False]])

# name -> (fn, input shapes, domain). Inputs are float tensors requiring grad; fixed arrays are closed over.
OPS = {
    "add": (lambda a, b: a + b, [(2, 3), (3,)], "real"),
    "sub": (lambda a, b: a - b, [(2, 3), (2, 1)], "real"),
    "mul": (lambda a, b: a * b, [(2, 3), ()], "real"),
    "div": (lambda a, b: a / b, [(2, 3), (3,)], "positive"),
    "pow": (lambda a, b: a ** b, [(3,), (3,)], "positive"),
    "pow_scalar": (lambda a: a ** 3, [(3,)], "real"),
    "rsub_scalar": (lambda a: 1 - a, [(3,)], "real"),
    "rdiv_scalar": (lambda a: 2 / a, [(3,)], "positive"),
    "matmul": (lambda a, b: a @ b, [(2, 2, 3), (3, 4)], "real"),
    "neg": (lambda a: -a, [(3,)], "real"),
    "exp": (tt.exp, [(3,)], "real"),
    "log": (tt.log, [(3,)], "positive"),
    "tanh": (tt.tanh, [(3,)], "real"),
    "sqrt": (tt.sqrt, [(3,)], "positive"),
    "relu": (tt.relu, [(3,)], "real"),
    "sigmoid": (tt.sigmoid, [(3,)], "real"),
    "abs": (tt.abs, [(3,)], "real"),
    "sum": (lambda a: a.sum(axis=1), [(2, 3)], "real"),
    "mean": (lambda a: a.mean(axis=(0, 1), keepdims=True), [(2, 3)], "real"),
    "max": (lambda a: a.max(axis=0), [(2, 3)], "real"),
    "min": (lambda a: a.min(), [(2, 3)], "real"),
    "var": (lambda a: a.var(axis=-1), [(2, 3)], "real"),
    "reshape": (lambda a: a.reshape(3, 2), [(2, 3)], "real"),
    "transpose": (lambda a: a.transpose(1, 0, 2), [(2, 3, 1)], "real"),
    "T": (lambda a: a.T, [(2, 3)], "real"),
    "getitem": (lambda a: a[1:, [0, 0, 2]], [(2, 3)], "real"),
    "concatenate": (lambda a, b: tt.concatenate([a, b], axis=1), [(2, 3), (2, 1)], "real"),
    "stack": (lambda a, b: tt.stack([a, b], axis=1), [(2, 3), (2, 3)], "real"),
    "split": (lambda a: a.split(2, axis=1)[1], [(2, 3)], "real"),
    "where": (lambda a, b: tt.where(COND, a, b), [(2, 3), (3,)], "real"),
    "masked_fill": (lambda a: a.masked_fill(MASK, -1.0), [(2, 3)], "real"),
    "softmax": (lambda a: F.softmax(a, axis=0), [(2, 3)], "real"),
    "log_softmax": (F.log_softmax, [(2, 3)], "real"),
    "cross_entropy": (lambda a: F.cross_entropy(a, TARGETS), [(3, 4)], "real"),
    "cross_entropy_3d_none": (lambda a: F.cross_entropy(a, IDS, reduction="none"), [(2, 2, 3)], "real"),
    "gelu": (F.gelu, [(2, 3)], "real"),
    "layer_norm": (F.layer_norm, [(2, 3), (3,), (3,)], "real"),
    "dropout": (lambda a: F.dropout(a, 0.5, training=True), [(2, 3)], "real"),
    "embedding": (lambda w: F.embedding(IDS, w), [(3, 2)], "real"),
    "linear": (F.linear, [(2, 3), (4, 3), (4,)], "real"),
    "attention": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.2),
                  [(1, 2, 3, 2), (1, 2, 3, 2), (1, 2, 3, 2)], "real"),
    "attention_noncausal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=False),
                            [(1, 1, 2, 2), (1, 1, 3, 2), (1, 1, 3, 2)], "real"),
    "astype_roundtrip": (lambda a: a.astype(np.float64).astype(a.dtype) * 2, [(3,)], "real"),
}


def make_inputs(shapes, domain, dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0.5, 2.0, s) if domain == "positive" else rng.standard_normal(s) for s in shapes]
    return [tt.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]


def run(fn, inputs):
    tt.manual_seed(0)                                      # dropout draws the same mask every run
    return fn(*inputs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPS))
def test_dtype_is_kept_through_forward_and_backward(name, dtype):
    fn, shapes, domain = OPS[name]
    inputs = make_inputs(shapes, domain, dtype)
    out = run(fn, inputs)
    assert out.dtype == dtype
    assert isinstance(out.data, np.ndarray)
    out.backward(np.ones(out.shape, dtype=dtype))
    for x in inputs:
        assert isinstance(x.grad, np.ndarray)
        assert x.grad.dtype == dtype and x.grad.shape == x.shape, name


@pytest.mark.parametrize("name", sorted(OPS))
def test_no_input_is_mutated(name):
    fn, shapes, domain = OPS[name]
    inputs = make_inputs(shapes, domain, np.float64)
    before = [x.data.copy() for x in inputs]
    fixed = [a.copy() for a in (IDS, TARGETS, MASK, COND)]
    out = run(fn, inputs)
    g = np.random.default_rng(1).standard_normal(out.shape)
    g_before = g.copy()
    out.backward(g)
    for x, b in zip(inputs, before):
        np.testing.assert_array_equal(x.data, b)
    for a, b in zip((IDS, TARGETS, MASK, COND), fixed):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(g, g_before)


@pytest.mark.parametrize("name", sorted(OPS))
def test_backward_twice_accumulates(name):
    fn, shapes, domain = OPS[name]
    inputs = make_inputs(shapes, domain, np.float64)
    out = run(fn, inputs)
    g = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(g, retain_graph=True)
    first = [x.grad.copy() for x in inputs]
    out.backward(g)
    for x, f in zip(inputs, first):
        np.testing.assert_allclose(x.grad, 2 * f, rtol=1e-12, atol=1e-15)
    run(fn, inputs).backward(g)                         # a fresh graph adds a third copy
    for x, f in zip(inputs, first):
        np.testing.assert_allclose(x.grad, 3 * f, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_is_gradchecked_once_at_fixed_values(name):
    fn, shapes, domain = OPS[name]
    inputs = make_inputs(shapes, domain, np.float64)
    assert min(np.abs(x.data).min() for x in inputs) > 1e-3          # no kink of relu or abs nearby
    assert tt.gradcheck(lambda *xs: run(fn, xs), *make_inputs(shapes, domain, np.float64))


# ----- the graph -----

def test_backward_frees_the_graph_and_a_second_backward_says_so():
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    z = (x * 3).sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_array_equal(x.grad, [2 + 6, 4 + 6])


def test_backward_through_a_freed_intermediate_raises():
    x = tt.tensor([1.0], requires_grad=True)
    h = x.exp()
    h.sum().backward()
    with pytest.raises(RuntimeError, match="freed"):
        (h * 2).sum().backward()


def test_a_tensor_used_twice_gets_both_gradients():
    x = tt.tensor([3.0], requires_grad=True)
    a = x * x
    b = a + x * a                       # x^2 + x^3
    b.backward(np.ones(1, dtype=np.float32))
    np.testing.assert_allclose(x.grad, [2 * 3 + 3 * 9])


def test_retain_grad_keeps_an_intermediate_gradient():
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 2).retain_grad()
    m = x * 3                            # not retained
    (h * h + m).sum().backward()
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    assert m.grad is None
    assert x.is_leaf and not h.is_leaf


def test_a_10000_op_chain_backpropagates():
    x = tt.tensor([1.0], dtype=np.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    assert len(tt.topological_order(y)) == 20_001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001 ** 10_000], rtol=1e-10)


def test_gradient_of_a_leaf_is_its_own_seed():
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_only_inputs_that_require_grad_get_one():
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    c = tt.tensor([5.0, 6.0])
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad
    np.testing.assert_array_equal(x.grad, [5.0, 6.0])


def test_no_grad_records_nothing_and_restores_the_mode():
    x = tt.tensor([1.0], requires_grad=True)
    with tt.no_grad():
        y = x * 2
        assert not tt.is_grad_enabled()
    assert tt.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()

    @tt.no_grad()
    def double(t):
        return t * 2
    assert not double(x).requires_grad and tt.is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with tt.no_grad():
            1 / 0
    assert tt.is_grad_enabled()


def test_detach_shares_values_but_not_history():
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.data, [2.0, 4.0])
    y = (x * d).sum()                    # d is a constant here
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


# ----- creation conventions -----

def test_tensor_dtype_conventions():
    assert tt.tensor([1.0, 2.0]).dtype == np.float32
    assert tt.tensor(np.ones(2)).dtype == np.float32                    # float64 NumPy data -> float32
    assert tt.tensor(np.ones(2), dtype=np.float64).dtype == np.float64
    assert tt.tensor(np.ones(2), dtype="float64").dtype == np.float64
    assert tt.tensor([1, 2]).dtype == np.int64
    assert tt.tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32      # NumPy ints keep their dtype
    assert tt.tensor([True, False]).dtype == np.bool_
    assert tt.tensor(np.array([True])).dtype == np.bool_
    assert tt.tensor(3.5).shape == () and tt.tensor(3.5).item() == 3.5
    t = tt.tensor([[1.0, 2.0]], requires_grad=True)
    assert t.shape == (1, 2) and t.ndim == 2 and len(t) == 1 and t.device == "cpu" and t.grad is None
    assert isinstance(t.numpy(), np.ndarray)


def test_creation_functions():
    assert tt.zeros(2, 3).shape == (2, 3) and tt.zeros((2, 3)).dtype == np.float32
    assert tt.ones(2, dtype=np.float64).dtype == np.float64
    assert tt.ones(2, requires_grad=True).requires_grad
    assert tt.arange(4).dtype == np.int64 and tt.arange(0.0, 1.0, 0.5).dtype == np.float32
    np.testing.assert_array_equal(tt.full((2,), 7.0).data, [7.0, 7.0])
    assert tt.randn(3, 2).shape == (3, 2) and tt.rand(4).data.max() < 1.0
    assert tt.zeros_like(tt.ones(2, dtype=np.float64)).dtype == np.float64


def test_manual_seed_reproduces_every_draw():
    def draws():
        tt.manual_seed(123)
        layer = nn.Linear(3, 2)
        emb = nn.Embedding(4, 2)
        mask = F.dropout(tt.ones(10), 0.5).data
        return [tt.randn(3).data, tt.rand(2).data, layer.weight.data, layer.bias.data, emb.weight.data, mask]
    first, second = draws(), draws()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    tt.manual_seed(124)
    assert not np.array_equal(tt.randn(3).data, first[0])


# ----- dropout -----

def test_dropout_identity_cases():
    x = tt.tensor(np.arange(1.0, 7.0), requires_grad=True)
    assert F.dropout(x, 0.0, training=True) is x or np.array_equal(F.dropout(x, 0.0).data, x.data)
    np.testing.assert_array_equal(F.dropout(x, 0.7, training=False).data, x.data)
    zeros = F.dropout(x, 1.0, training=True)
    np.testing.assert_array_equal(zeros.data, 0.0)
    zeros.sum().backward()
    np.testing.assert_array_equal(x.grad, 0.0)


def test_dropout_keeps_the_mean_and_scales_the_kept():
    tt.manual_seed(0)
    p = 0.3
    x = tt.ones(20_000, requires_grad=True)
    y = F.dropout(x, p, training=True)
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1 / (1 - p), rtol=1e-6)
    assert abs(kept.mean() - (1 - p)) < 0.02                     # ~7 standard deviations
    assert abs(y.data.mean() - 1.0) < 0.03
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)                 # d/dx (x * mask) = mask


def test_dropout_rejects_bad_p():
    with pytest.raises(ValueError, match="dropout"):
        F.dropout(tt.ones(2), 1.5)
    with pytest.raises(ValueError, match="Dropout"):
        nn.Dropout(-0.1)


# ----- gradient accumulation: slices added in place, shared arrays never written -----

@pytest.mark.parametrize("case", ["qkv", "slice_and_whole", "whole_then_slices", "broadcast_and_slice", "repeated",
                                  "split_axis_1", "slices_with_a_gap", "tiles_then_whole"])
def test_slices_and_whole_uses_of_one_tensor_accumulate_right(case):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 4, 5))
    fns = {
        "qkv": lambda x: (x[0] * x[1] + x[2] ** 2).sum(axis=-1),
        "slice_and_whole": lambda x: x[1:, :2] * 3 + x.sum(axis=(0,))[None, :2] + (x * x)[0:2, :2],
        "whole_then_slices": lambda x: (x * 2).sum() + x[0].sum() * x[2, 1].sum(),
        "broadcast_and_slice": lambda x: x.sum() + x.sum() + x[..., 0].sum(),
        "repeated": lambda x: x[0] + x[0] + x[0, :1] + x[-1],
        "split_axis_1": lambda x: sum((piece * (i + 1)).sum() for i, piece in enumerate(x.split([1, 2, 1], axis=1))),
        "slices_with_a_gap": lambda x: x[0] * x[2] + x[:, 3:].sum(),
        "tiles_then_whole": lambda x: (x[:1] * 2).sum() + x[1:].sum() + (x * x).sum(),
    }
    fn = fns[case]
    x = tt.tensor(a, dtype=np.float64, requires_grad=True)
    out = fn(x)
    g = tt.tensor(rng.standard_normal(out.shape), dtype=np.float64)
    # gradcheck runs backward (through the accumulation) and compares with central differences
    assert tt.gradcheck(lambda t: (fn(t) * g).sum(), x)
    out.backward(g.data)
    y = tt.tensor(a, dtype=np.float64, requires_grad=True)
    (fn(y) * g).sum().backward()
    np.testing.assert_allclose(x.grad, y.grad, rtol=1e-12, atol=1e-12)


def test_slices_tile_a_tensor_only_when_they_cover_one_axis_exactly_once():
    from tinytensor.accumulate import _tile
    shape = (3, 4, 5)
    assert _tile(shape, [0, 1, 2])                                   # q, k, v
    assert _tile(shape, [-1, (0,), (1, slice(None))])
    assert _tile(shape, [slice(0, 2), 2])
    assert _tile(shape, [(slice(None), slice(2, 4)), (slice(None), slice(0, 2))])
    assert not _tile(shape, [0, 2])                                  # a gap
    assert not _tile(shape, [slice(0, 2), 1, 2])                     # an overlap
    assert not _tile(shape, [0, 1, 1, 2])
    assert not _tile(shape, [(0, slice(None)), (slice(1, 3), 0)])  # cuts on two axes
    assert not _tile(shape, [(0, 1), 1, 2])
    assert not _tile(shape, [slice(0, 3, 2), 1])                     # a step
    assert not _tile(shape, [Ellipsis, 0])
    assert not _tile(shape, [slice(None)])                           # a whole tensor is no slice


def test_a_shared_gradient_array_is_never_written_into():
    # add passes one array to both inputs; a slice of one of them then joins it: the other must not change
    a = tt.tensor(np.ones((2, 3)), dtype=np.float64, requires_grad=True)
    b = tt.tensor(np.ones((2, 3)), dtype=np.float64, requires_grad=True)
    s = a + b                                   # backward gives a and b the very same array
    out = s * 1.0 + a[0:1] * 5.0                # a also gets a slice gradient
    out.backward(np.ones((2, 3)))
    np.testing.assert_array_equal(b.grad, np.ones((2, 3)))
    np.testing.assert_array_equal(a.grad, [[11, 11, 11], [1, 1, 1]])    # 1 + 5 from each of the 2 rows


def test_the_trace_and_anomaly_hooks_see_plain_arrays():
    x = tt.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    with tt.detect_anomaly():
        (x[0] * x[1]).sum().backward()
    np.testing.assert_array_equal(x.grad, [[3, 4, 5], [0, 1, 2]])
