"""Matrix products with NumPy's rules: vectors, batches, broadcast batches; values and gradients."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
from tinytensor import testing as ttst


@st.composite
def matmul_shapes(draw):
    """Shapes (a, b) that NumPy's matmul accepts: 1-D operands and broadcast batch axes included."""
    n, k, m = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch_a, batch_b = draw(ttst.broadcastable_shapes(2, max_dims=2, max_side=2, max_size=4))
    a = draw(st.sampled_from([(k,), batch_a + (n, k)]))
    b = draw(st.sampled_from([(k,), batch_b + (k, m)]))
    return a, b


@given(matmul_shapes(), st.data())
def test_matmul_values_and_gradients(shapes, data):
    a = data.draw(ttst.tensors(shapes[0]), label="a")
    b = data.draw(ttst.tensors(shapes[1]), label="b")
    out = a @ b
    expected = a.data @ b.data
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    assert tt.gradcheck(lambda a, b: a @ b, a, b)


@pytest.mark.parametrize("sa, sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 2, 3), (3, 4)),
                                    ((2, 2, 3), (3,)), ((2, 3), (4, 3, 2)), ((1, 2, 3), (2, 3, 2)),
                                    ((2, 1, 2, 3), (3, 3, 1))])
def test_matmul_gradients_match_the_matrix_formulas(sa, sb):
    rng = np.random.default_rng(0)
    a_np, b_np = rng.standard_normal(sa), rng.standard_normal(sb)
    a = tt.tensor(a_np, dtype=np.float64, requires_grad=True)
    b = tt.tensor(b_np, dtype=np.float64, requires_grad=True)
    out = a @ b
    g = rng.standard_normal(out.shape)
    out.backward(g)
    # promote vectors to matrices, use dA = G B^T and dB = A^T G, then sum broadcast batch axes away
    A = a_np[None, :] if a_np.ndim == 1 else a_np
    B = b_np[:, None] if b_np.ndim == 1 else b_np
    G = g
    if b_np.ndim == 1:
        G = G[..., None]
    if a_np.ndim == 1:
        G = G[..., None, :]
    dA = G @ np.swapaxes(B, -1, -2)
    dB = np.swapaxes(A, -1, -2) @ G
    dA = dA.reshape((-1,) + A.shape).sum(0) if dA.ndim > A.ndim else dA
    dB = dB.reshape((-1,) + B.shape).sum(0) if dB.ndim > B.ndim else dB
    for axis, n in enumerate(A.shape):          # axes of size 1 that broadcast
        if n == 1 and dA.shape[axis] != 1:
            dA = dA.sum(axis, keepdims=True)
    for axis, n in enumerate(B.shape):
        if n == 1 and dB.shape[axis] != 1:
            dB = dB.sum(axis, keepdims=True)
    np.testing.assert_allclose(a.grad, dA.reshape(sa), rtol=1e-10)
    np.testing.assert_allclose(b.grad, dB.reshape(sb), rtol=1e-10)


def test_matmul_with_a_constant_operand_and_method_form():
    a = tt.tensor([[1.0, 2.0]], requires_grad=True)
    b = np.array([[3.0], [4.0]], dtype=np.float32)
    out = a.matmul(tt.tensor(b))
    assert out.item() == 11.0
    (b.T @ a.T).sum().backward()                 # NumPy array on the left goes through __rmatmul__
    np.testing.assert_array_equal(a.grad, [[3.0, 4.0]])
    assert tt.matmul(a, tt.tensor(b)).item() == 11.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_keeps_dtype(dtype):
    a = tt.tensor(np.ones((2, 2, 3)), dtype=dtype, requires_grad=True)
    b = tt.tensor(np.ones((3, 2)), dtype=dtype, requires_grad=True)
    out = a @ b
    out.sum().backward()
    assert out.dtype == dtype and a.grad.dtype == dtype and b.grad.dtype == dtype
