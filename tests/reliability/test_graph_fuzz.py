"""Engine fuzzing: random small computation graphs, every gradient checked with ``tt.gradcheck``.

A graph is a list of op specs ``(name, i, j, p)`` applied in order to a growing list of values that
starts with 1-3 float64 inputs of small broadcastable shapes. ``i`` and ``j`` pick operands counting back
from the newest value (0 is the newest), ``p`` is the op's small integer parameter (axis, keepdims,
variant). Every op accepts every operand shape: where shapes do not fit an op, the op falls back to a
form that does (documented next to it), so hypothesis can shrink the list freely and a failure shrinks
to the shortest list of specs, which the failure message prints as a little program.

Ops are kept inside their domain: ``log`` and ``sqrt`` see ``x*x + 1``, a divisor is ``b*b + 1``,
``exp`` sees ``tanh(x)``. Kinks cannot be avoided by construction (ops compose: ``abs(relu(x + s) - s)``
puts a kink back at 0), so ``relu``/``abs`` inputs within ``KINK_MARGIN`` of 0 and ``max``/``min`` with
two candidates within ``KINK_MARGIN`` of each other mark the example as near a kink, and it is rejected
(``assume``): there central differences cannot judge a subgradient.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import testing as ttst

SHIFT = 1 / math.pi          # moves relu's and abs's kink off the values hypothesis likes (0, 1, 0.5, ...)
TIE_STEP = math.sqrt(2) / 17  # distinct offsets added before max/min so that ties are rare
KINK_MARGIN = 1e-3            # far more than gradcheck's step (1e-6) times any slope up to the kink
_near_kinks = []              # filled while a graph is built: one entry per op evaluated near a kink


def _watch_kink(x):
    """Note when some element of ``x`` (the input of relu or abs) is within KINK_MARGIN of 0."""
    if np.abs(x.data).min(initial=np.inf) < KINK_MARGIN:
        _near_kinks.append("kink")
    return x


def _watch_tie(x, axis, largest):
    """Note when the two largest (or smallest) candidates of a max (min) are within KINK_MARGIN."""
    data = x.data.reshape(1, -1) if axis is None else np.moveaxis(x.data, axis, -1).reshape(-1, x.shape[axis])
    if data.shape[1] > 1:
        ordered = np.sort(data, axis=1)
        gap = ordered[:, -1] - ordered[:, -2] if largest else ordered[:, 1] - ordered[:, 0]
        if gap.min() < KINK_MARGIN:
            _near_kinks.append("tie")


def _axis(x, p):
    """An axis of ``x`` from ``p`` (None for a 0-d tensor or when ``p`` picks 'all')."""
    if x.ndim == 0 or p % (x.ndim + 1) == x.ndim:
        return None
    return p % (x.ndim + 1) - x.ndim          # negative axes: -1 is the last


def _vector(x):
    """``x`` with at least one axis (a 0-d value becomes shape (1,))."""
    return x.reshape(1) if x.ndim == 0 else x


def _matrix(x):
    """``x`` as a 2-D (rows, last axis) tensor."""
    if x.ndim == 0:
        return x.reshape(1, 1)
    if x.ndim == 1:
        return x.reshape(1, -1)
    return x.reshape(-1, x.shape[-1])


def _fit(a, b):
    """``b`` if it broadcasts with ``a``, else ``b.mean()`` (a 0-d value broadcasts with anything)."""
    try:
        np.broadcast_shapes(a.shape, b.shape)
        return b
    except ValueError:
        return b.mean()


def _pattern(shape, p):
    """A fixed boolean array of ``shape`` (the where/masked_fill condition): alternate elements."""
    return (np.arange(math.prod(shape)).reshape(shape) + p) % 2 == 0


def _offsets(x):
    return tt.tensor(np.arange(x.size, dtype=np.float64).reshape(x.shape) * TIE_STEP, dtype=x.dtype)


# ----- unary ops: fn(a, p) -----

def _extreme(a, p, name):
    shifted = a + _offsets(a)                 # break exact ties (from broadcasting) by distinct offsets
    _watch_tie(shifted, _axis(a, p), largest=name == "max")
    return getattr(shifted, name)(axis=_axis(a, p), keepdims=p >= 4)


def _getitem(a, p):
    if a.ndim == 0:
        return a[()]
    variant = p % 4
    if variant == 0:
        return a[::-1]
    if variant == 1:
        return a[..., :1]
    if variant == 2:
        return a[np.array([0, a.shape[0] - 1, 0])]          # repeated rows: gradients must add up
    mask = _pattern(a.shape, p)
    mask.flat[0] = True                                      # never empty
    return a[mask]                                           # boolean mask


def _split_join(a, p):
    if a.ndim == 0:
        return a * 1.0
    axis = p % a.ndim
    pieces = a.split(1 + p % 2, axis=axis)
    return tt.concatenate(pieces[::-1], axis=axis)


def _transpose(a, p):
    if a.ndim < 2:
        return a.T
    axes = list(range(a.ndim))
    axes = axes[::-1] if p % 2 == 0 else axes[1:] + axes[:1]
    return a.transpose(*axes)


UNARY = {
    "neg": lambda a, p: -a,
    "exp": lambda a, p: a.tanh().exp(),                       # exp(tanh a): bounded
    "log": lambda a, p: (a * a + 1).log(),
    "sqrt": lambda a, p: (a * a + 1).sqrt(),
    "tanh": lambda a, p: a.tanh(),
    "sigmoid": lambda a, p: a.sigmoid(),
    "relu": lambda a, p: _watch_kink(a + SHIFT).relu(),
    "abs": lambda a, p: abs(_watch_kink(a - SHIFT)),
    "pow": lambda a, p: a ** (2 + p % 2),
    "scalar": lambda a, p: [2.0 - a, a * 1.5 + 0.25, 1 / (a * a + 1), a / 3.0][p % 4],
    "gelu": lambda a, p: F.gelu(a),
    "sum": lambda a, p: a.sum(axis=_axis(a, p), keepdims=p >= 4),
    "mean": lambda a, p: a.mean(axis=_axis(a, p), keepdims=p >= 4),
    "var": lambda a, p: a.var(axis=_axis(a, p), keepdims=p >= 4),
    "max": lambda a, p: _extreme(a, p, "max"),
    "min": lambda a, p: _extreme(a, p, "min"),
    "reshape": lambda a, p: a.reshape(-1) if p % 2 == 0 else a.reshape(*a.shape[::-1]),
    "transpose": _transpose,
    "unsqueeze": lambda a, p: a.unsqueeze(p % (a.ndim + 1)),
    "squeeze": lambda a, p: a.squeeze(),
    "getitem": _getitem,
    "split": _split_join,
    "masked_fill": lambda a, p: a.masked_fill(_pattern(a.shape, p), 0.5),
    "softmax": lambda a, p: F.softmax(_vector(a), axis=_axis(_vector(a), p) or -1),
    "log_softmax": lambda a, p: F.log_softmax(_vector(a), axis=_axis(_vector(a), p) or -1),
    "cross_entropy": lambda a, p: F.cross_entropy(
        _matrix(a), np.arange(_matrix(a).shape[0]) % _matrix(a).shape[1],
        reduction=("mean", "sum", "none")[p % 3]),
    "embedding": lambda a, p: F.embedding(np.array([[0, p % _matrix(a).shape[0]], [0, 0]]), _matrix(a)),
}


# ----- binary ops: fn(a, b, p) -----

def _matmul(a, b, p):
    """a @ b^T when the last axes agree and the batch axes broadcast, else a @ a^T."""
    a2, b2 = (a if a.ndim else a.reshape(1)), (b if b.ndim else b.reshape(1))
    if a2.shape[-1] == b2.shape[-1]:
        try:
            np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
            return a2 @ (b2 if b2.ndim == 1 else b2.swapaxes(-1, -2))
        except ValueError:
            pass
    return a2 @ (a2 if a2.ndim == 1 else a2.swapaxes(-1, -2))


def _concatenate(a, b, p):
    a, b = _vector(a), _vector(b)
    axis = p % a.ndim
    if b.ndim == a.ndim and all(n == m for k, (n, m) in enumerate(zip(a.shape, b.shape)) if k != axis):
        return tt.concatenate([a, b], axis=axis)
    return tt.concatenate([a, a], axis=axis)


def _stack(a, b, p):
    return tt.stack([a, b if b.shape == a.shape else a * 2.0], axis=p % (a.ndim + 1))


def _where(a, b, p):
    b = _fit(a, b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    return tt.where(_pattern(shape, p), a, b)


def _linear(a, b, p):
    x = _vector(a)
    w = _matrix(b)
    if w.shape[1] != x.shape[-1]:
        w = _matrix(x)
    return F.linear(x, w)


def _layer_norm(a, b, p):
    """layer_norm(a) with weight and bias (D,) made from b (or from a when b's last axis is not D)."""
    x = _vector(a)
    D = x.shape[-1]
    source = _matrix(b) if _matrix(b).shape[1] == D else _matrix(x)
    weight = source.mean(axis=0) + 1.0 if p % 4 != 0 else None
    bias = source.sum(axis=0) * 0.5 if p % 2 else None
    return F.layer_norm(x, weight, bias)


def _attention(a, b, p):
    q = _matrix(a)
    kv = _matrix(b) if _matrix(b).shape[1] == q.shape[1] else q
    T, S, D = q.shape[0], kv.shape[0], q.shape[1]
    causal = p % 2 == 0 and S >= T
    return F.scaled_dot_product_attention(q.reshape(1, 1, T, D), kv.reshape(1, 1, S, D),
                                          (kv * 0.5).reshape(1, 1, S, D), causal=causal)


BINARY = {
    "add": lambda a, b, p: a + _fit(a, b),
    "sub": lambda a, b, p: a - _fit(a, b),
    "mul": lambda a, b, p: a * _fit(a, b),
    "div": lambda a, b, p: a / (_fit(a, b) ** 2 + 1),
    "tensor_pow": lambda a, b, p: (a * a + 1) ** _fit(a, b).tanh(),
    "where": _where,
    "matmul": _matmul,
    "linear": _linear,
    "concatenate": _concatenate,
    "stack": _stack,
    "layer_norm": _layer_norm,
    "attention": _attention,
}

NAMES = list(UNARY) + list(BINARY)

# families, so that each op is drawn often enough in CI's 30 examples per test
ELEMENTWISE = ["neg", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "pow", "scalar",
               "add", "sub", "mul", "div", "tensor_pow", "where"]
REDUCE_AND_SHAPE = ["sum", "mean", "var", "max", "min", "reshape", "transpose", "unsqueeze", "squeeze",
                    "getitem", "split", "masked_fill", "concatenate", "stack", "add", "mul"]
FUSED = ["softmax", "log_softmax", "cross_entropy", "gelu", "layer_norm", "attention", "linear", "matmul",
         "embedding", "add", "mul", "sum"]


def op_specs(names):
    return st.lists(st.tuples(st.sampled_from(names), st.integers(0, 3), st.integers(0, 3), st.integers(0, 7)),
                    min_size=1, max_size=6)


def build(specs, inputs):
    """Run the specs on the inputs; return every value (inputs first, output last) and the program text.

    ``_near_kinks`` says afterwards whether some op was evaluated near a kink or a tie."""
    _near_kinks.clear()
    values = list(inputs)
    lines = [f"v{k} = input{tuple(x.shape)}" for k, x in enumerate(inputs)]
    for name, i, j, p in specs:
        a_k = len(values) - 1 - i % len(values)
        b_k = len(values) - 1 - j % len(values)
        a, b = values[a_k], values[b_k]
        if name in UNARY:
            out = UNARY[name](a, p)
            call = f"{name}(v{a_k}, p={p})"
        else:
            out = BINARY[name](a, b, p)
            call = f"{name}(v{a_k}, v{b_k}, p={p})"
        lines.append(f"v{len(values)} = {call}  -> shape {tuple(out.shape)}")
        values.append(out)
    return values, "\n".join(lines)


@st.composite
def graphs(draw, names=tuple(NAMES)):
    n = draw(st.integers(1, 3))
    shapes = draw(ttst.broadcastable_shapes(n, max_size=12))
    inputs = [draw(ttst.tensors(s)) for s in shapes]
    specs = draw(op_specs(list(names)))
    return inputs, specs


def check_gradients(graph):
    inputs, specs = graph
    values, program = build(specs, inputs)
    note("graph:\n" + program)
    assume(not _near_kinks)
    # keep to magnitudes where central differences in float64 are accurate to gradcheck's tolerance
    assume(all(float(np.abs(v.data).max(initial=0)) < 1e3 for v in values))

    def fn(*xs):
        return build(specs, xs)[0][-1]
    try:
        assert tt.gradcheck(fn, *inputs)
    except tt.GradcheckError as first:
        # Central differences err by ~eps^2 times the third derivative; where a graph is extremely curved
        # (layer_norm of layer_norm of a constant row has slope 1e4) a smaller step settles it. A wrong
        # backward is wrong at every step size, so it still fails here.
        try:
            assert tt.gradcheck(fn, *inputs, eps=1e-8)
        except tt.GradcheckError:
            raise AssertionError(f"{first}\nin the graph:\n{program}") from None


@given(graphs(ELEMENTWISE))
def test_elementwise_graph_gradients(graph):
    check_gradients(graph)


@given(graphs(REDUCE_AND_SHAPE))
def test_reduce_and_shape_graph_gradients(graph):
    check_gradients(graph)


@given(graphs(FUSED))
def test_fused_op_graph_gradients(graph):
    check_gradients(graph)


@given(graphs())
def test_any_op_graph_gradients(graph):
    check_gradients(graph)


@given(graphs())
def test_random_graph_backward_keeps_dtype_and_shape(graph):
    """The same graphs in float32: every leaf gradient comes back float32 and of its input's shape."""
    inputs, specs = graph
    inputs = [tt.tensor(x.data, dtype=np.float32, requires_grad=True) for x in inputs]
    values, program = build(specs, inputs)
    note("graph:\n" + program)
    out = values[-1]
    assert out.dtype == np.float32, f"output became {out.dtype}\n{program}"
    out.backward(np.ones(out.shape, dtype=np.float32))
    for k, x in enumerate(inputs):
        if x.grad is not None:
            assert x.grad.dtype == np.float32 and x.grad.shape == x.shape, \
                f"input {k}: grad {x.grad.dtype} {x.grad.shape} for {x.shape}\n{program}"


SHAPE_SETS = [[(2, 3), (3,)], [(3, 1, 2), (1, 2, 2)], [(), (2,)], [(4,), (4,)]]


@pytest.mark.parametrize("name", NAMES)
def test_each_op_alone_in_every_variant(name):
    """Every op, every parameter value, on fixed shapes: each variant runs in CI whatever hypothesis draws."""
    rng = np.random.default_rng(0)
    for shapes in SHAPE_SETS:
        inputs = [tt.tensor(rng.uniform(-2, 2, s), dtype=np.float64, requires_grad=True) for s in shapes]
        for p in range(8):
            for i, j in ((0, 1), (1, 0)):
                values, program = build([(name, i, j, p)], inputs)
                if _near_kinks:
                    continue
                try:
                    tt.gradcheck(lambda *xs: build([(name, i, j, p)], xs)[0][-1], *inputs)
                except tt.GradcheckError as e:
                    raise AssertionError(f"{e}\nin the graph:\n{program}") from None


def test_every_op_is_in_a_family():
    """Guard against an op silently dropping out of the tables."""
    assert len(NAMES) == len(set(NAMES)) >= 35
    assert set(ELEMENTWISE + REDUCE_AND_SHAPE + FUSED) == set(NAMES)
