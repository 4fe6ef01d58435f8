"""Shape ops (reshape, transpose, concatenate, stack, split, ...) and indexing, against NumPy and gradcheck."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import testing as ttst


@given(data=st.data())
def test_reshape(data):
    x = data.draw(ttst.tensors(ttst.shapes()), label="x")
    target = data.draw(st.permutations(list(x.shape)), label="target") + [1]
    if target[:-1] and data.draw(st.booleans()):
        target[0] = -1
    np.testing.assert_array_equal(x.reshape(*target).data, x.data.reshape(target))
    assert tt.gradcheck(lambda x: x.reshape(target), x)
    assert tt.gradcheck(lambda x: x.flatten(), x)


@given(data=st.data())
def test_transpose_by_a_drawn_permutation(data):
    x = data.draw(ttst.tensors(ttst.shapes()), label="x")
    axes = tuple(data.draw(st.permutations(range(x.ndim)), label="axes"))
    np.testing.assert_array_equal(x.transpose(*axes).data, x.data.transpose(axes))
    np.testing.assert_array_equal(x.T.data, x.data.T)
    assert tt.gradcheck(lambda x: x.transpose(axes) * tt.tensor(np.arange(x.size, dtype=np.float64)
                                                             .reshape(x.data.transpose(axes).shape),
                                                             dtype=np.float64), x)


@given(ttst.tensors(ttst.shapes(min_dims=2)))
def test_swapaxes_unsqueeze_squeeze(x):
    np.testing.assert_array_equal(x.swapaxes(0, -1).data, np.swapaxes(x.data, 0, -1))
    assert tt.gradcheck(lambda x: x.swapaxes(0, -1), x)
    assert x.unsqueeze(1).shape == x.shape[:1] + (1,) + x.shape[1:]
    assert x.unsqueeze(-1).shape == x.shape + (1,)
    assert x.unsqueeze(1).squeeze(1).shape == x.shape
    assert x.squeeze().shape == tuple(n for n in x.shape if n != 1)
    assert tt.gradcheck(lambda x: x.unsqueeze(0).squeeze(), x)


@st.composite
def joinable(draw, same_shape):
    """2-3 float64 tensors that can be joined along a drawn axis (same shape for stack)."""
    base = list(draw(ttst.shapes(min_dims=1, max_dims=3, max_size=8)))
    axis = draw(st.integers(-len(base), len(base) - 1))
    out = []
    for _ in range(draw(st.integers(1, 3))):
        shape = list(base)
        if not same_shape:
            shape[axis] = draw(st.integers(1, 3))
        out.append(draw(ttst.tensors(tuple(shape))))
    return out, axis


@given(joinable(same_shape=False))
def test_concatenate(case):
    tensors, axis = case
    np.testing.assert_array_equal(tt.concatenate(tensors, axis).data,
                                  np.concatenate([t.data for t in tensors], axis))
    assert tt.cat is tt.concatenate
    assert tt.gradcheck(lambda *ts: tt.concatenate(ts, axis), *tensors)


@given(joinable(same_shape=True), st.booleans())
def test_stack(case, new_last):
    tensors, _ = case
    axis = -1 if new_last else 0
    np.testing.assert_array_equal(tt.stack(tensors, axis).data, np.stack([t.data for t in tensors], axis))
    assert tt.gradcheck(lambda *ts: tt.stack(ts, axis), *tensors)


@given(ttst.tensors(ttst.shapes(min_dims=1, max_dims=3, max_side=5)), st.data())
def test_split_by_size_and_by_sizes(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    n = x.shape[axis]
    size = data.draw(st.integers(1, n + 1), label="size")
    pieces = x.split(size, axis)
    expected = [n // size * [size] + ([n % size] if n % size else [])][0]
    assert [p.shape[axis] for p in pieces] == expected          # PyTorch: the last chunk may be smaller
    np.testing.assert_array_equal(tt.concatenate(pieces, axis).data, x.data)
    cut = data.draw(st.integers(0, n), label="cut")
    left, right = x.split([cut, n - cut], axis)
    assert left.shape[axis] == cut and right.shape[axis] == n - cut
    weights = [np.arange(p.size, dtype=np.float64).reshape(p.shape) for p in pieces]
    assert tt.gradcheck(lambda x: sum((p * w).sum() for p, w in zip(x.split(size, axis), weights)), x)


def test_split_uses_the_chunk_size_like_pytorch():
    x = tt.arange(7)
    assert [p.tolist() for p in x.split(3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [p.tolist() for p in x.split([2, 5])] == [[0, 1], [2, 3, 4, 5, 6]]


# ----- indexing -----

BASIC_INDICES = [
    (1,), (slice(None, None, 2),), (-1, slice(1, None)), (Ellipsis, 0), (None, 1), (slice(None), slice(None, None, -1)),
    (0, 2),
]


@pytest.mark.parametrize("index", BASIC_INDICES, ids=str)
def test_basic_indexing(index):
    x = tt.tensor(np.arange(12.0).reshape(3, 4) / 7, dtype=np.float64, requires_grad=True)
    np.testing.assert_array_equal(x[index].data, x.data[index])
    assert tt.gradcheck(lambda x: x[index], x)


def test_integer_array_indexing_with_repeats_accumulates():
    x = tt.tensor([10.0, 20.0, 30.0], requires_grad=True)
    picked = x[tt.tensor([2, 0, 2, 2])]
    np.testing.assert_array_equal(picked.data, [30.0, 10.0, 30.0, 30.0])
    (picked * tt.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 8.0])


@given(ttst.tensors(ttst.shapes(min_dims=2, max_dims=2)), st.data())
def test_integer_array_and_mixed_indexing(x, data):
    rows = np.array(data.draw(st.lists(st.integers(-x.shape[0], x.shape[0] - 1), min_size=1, max_size=5)))
    cols = np.array(data.draw(st.lists(st.integers(0, x.shape[1] - 1), min_size=len(rows), max_size=len(rows))))
    cases = [(rows, rows), ((rows, cols), (rows, cols)), ((slice(None), cols), (slice(None), cols)),
             (list(rows), rows), ((tt.tensor(rows), 0), (rows, 0))]
    for index, np_index in cases:
        np.testing.assert_array_equal(x[index].data, x.data[np_index])
        assert tt.gradcheck(lambda x: x[index], x)


def test_boolean_mask_indexing():
    x = tt.tensor([[1.0, -2.0], [-3.0, 4.0]], requires_grad=True)
    picked = x[x.data > 0]
    np.testing.assert_array_equal(picked.data, [1.0, 4.0])
    picked.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 0.0], [0.0, 1.0]])


def test_functional_shape_names():
    x = tt.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(F.reshape(x, 3, 2).data, x.data.reshape(3, 2))
    np.testing.assert_array_equal(F.transpose(x).data, x.data.T)
    np.testing.assert_array_equal(F.getitem(x, (1, 2)).data, 5.0)
    assert F.flatten(x).shape == (6,) and F.unsqueeze(x, 0).shape == (1, 2, 3)
    assert [p.shape for p in F.split(x, 2, 1)] == [(2, 2), (2, 1)]
    assert x.view(3, 2).shape == (3, 2) and x.permute(1, 0).shape == (3, 2)


MIXED_INDICES = [(Ellipsis, [0, 2]), (None, [0, 1]), ([1, 0], None), (np.array([True, False]),),
                 (slice(None), np.array([True, False, True])), (np.array(1),), ([[0], [1]], [0, 2]), ([1, 1], [2, 2])]


@pytest.mark.parametrize("index", MIXED_INDICES, ids=str)
def test_advanced_indexing_mixed_with_basic(index):
    x = tt.tensor(np.arange(6.0).reshape(2, 3) / 5, dtype=np.float64, requires_grad=True)
    np_index = tuple(np.asarray(i) if isinstance(i, list) else i for i in index)
    np.testing.assert_array_equal(x[index].data, x.data[np_index])
    assert tt.gradcheck(lambda x: x[index], x)


def test_slices_of_a_0d_tensor_add_into_its_other_gradients():
    """x[()] and x[...] of a 0-d tensor next to other uses of x: NumPy makes 0-d sums into scalars,
    which the slice's gradient must still be added into (found by the graph fuzzer)."""
    x = tt.tensor(2.0, dtype=np.float64, requires_grad=True)
    (x[()].sum() * x).backward()
    np.testing.assert_allclose(x.grad, 4.0)
    x.grad = None
    (x * x + x[()] * 3 + x[...]).backward()
    np.testing.assert_allclose(x.grad, 2 * 2.0 + 3 + 1)
