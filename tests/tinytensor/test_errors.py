"""Bad input gives an exception of a fitting type whose message names the op, the shapes or the id."""
import re

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import nn

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "lt": lambda a, b: a < b,
    "eq": lambda a, b: a == b,
    "where": lambda a, b: tt.where(True, a, b),
}


def shapes_named(message, *shapes):
    return all(str(s) in message for s in shapes)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_name_themselves_and_both_shapes(name):
    a, b = tt.ones(2, 3, requires_grad=True), tt.ones(4)
    with pytest.raises(ValueError) as info:
        BINARY[name](a, b)
    assert name in str(info.value) and shapes_named(str(info.value), (2, 3), (4,))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_refuse_to_mix_float32_and_float64(name):
    with pytest.raises(TypeError, match=f"{name}.*float32.*float64"):
        BINARY[name](tt.ones(2), tt.ones(2, dtype=np.float64))


@pytest.mark.parametrize("sa, sb", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3, 4), (5, 4, 2)), ((2, 2, 3), (3, 3, 1))])
def test_matmul_mismatch(sa, sb):
    with pytest.raises(ValueError) as info:
        tt.ones(*sa) @ tt.ones(*sb)
    assert "matmul" in str(info.value) and shapes_named(str(info.value), sa, sb)


def test_matmul_of_0d_and_mixed_dtypes():
    with pytest.raises(ValueError, match="matmul.*at least 1 dimension"):
        tt.tensor(2.0) @ tt.ones(2)
    with pytest.raises(TypeError, match="matmul"):
        tt.ones(2, 2) @ tt.ones(2, 2, dtype=np.float64)


def test_where_condition_that_does_not_broadcast():
    with pytest.raises(ValueError, match=r"where.*\(3,\)"):
        tt.where(np.ones(3, dtype=bool), tt.ones(2), tt.ones(2))


def test_backward_on_a_non_scalar_needs_a_gradient():
    y = tt.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=re.escape("(2, 3)")):
        y.backward()
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        y.backward(np.ones(3))


def test_backward_on_a_tensor_without_history():
    with pytest.raises(RuntimeError, match="requires_grad"):
        tt.ones(1).backward()


@pytest.mark.parametrize("bad", [5, 17, -1, -6])
def test_embedding_ids_out_of_range_are_named(bad):
    weight = tt.ones(5, 2, requires_grad=True)
    with pytest.raises(IndexError, match=f"embedding: id {bad} .*5 rows"):
        F.embedding(np.array([[0, bad], [1, 2]]), weight)
    with pytest.raises(IndexError, match=f"id {bad}"):
        nn.Embedding(5, 2)(tt.tensor([bad]))


def test_embedding_ids_must_be_integers():
    with pytest.raises(TypeError, match="embedding.*float"):
        F.embedding(np.array([0.0, 1.0]), tt.ones(5, 2))


@pytest.mark.parametrize("bad", [3, 4, -1, -7])
def test_cross_entropy_targets_out_of_range_are_named(bad):
    with pytest.raises(IndexError, match=f"cross_entropy: target id {bad} .*3 classes"):
        F.cross_entropy(tt.ones(2, 3, requires_grad=True), np.array([0, bad]))


def test_cross_entropy_refuses_float_targets_and_wrong_shapes():
    logits = tt.ones(2, 3)
    with pytest.raises(TypeError, match="cross_entropy.*integer.*float"):
        F.cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="cross_entropy"):
        F.cross_entropy(logits, tt.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"cross_entropy.*\(2, 3\).*\(2,\).*\(3,\)"):
        F.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="cross_entropy"):
        F.cross_entropy(tt.ones(3), np.array([0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, np.array([0, 1]), reduction="avg")


@pytest.mark.parametrize("data", [[[1.0, 2.0], [3.0]], [[1, 2], 3], [[[1.0]], [1.0]]])
def test_ragged_lists(data):
    with pytest.raises(ValueError, match="ragged"):
        tt.tensor(data)


def test_tensor_creation_errors():
    with pytest.raises(TypeError, match="dtype"):
        tt.tensor([1.0], dtype="float99")
    with pytest.raises(TypeError, match="floating-point"):
        tt.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="tensor"):
        tt.tensor(["a", "b"])
    with pytest.raises(ValueError, match=r"item\(\).*\(2,\)"):
        tt.ones(2).item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(tt.ones(2))


def test_indexing_errors():
    x = tt.ones(2, 3)
    with pytest.raises(IndexError, match=r"\(2, 3\)"):
        x[5]
    with pytest.raises(IndexError, match=r"\(2, 3\)"):
        x[:, np.array([0, 3])]
    with pytest.raises(IndexError, match="integers or booleans"):
        x[np.array([0.0])]


def test_shape_op_errors():
    x = tt.ones(2, 3)
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"transpose.*\(2, 3\)"):
        x.transpose(0, 0)
    with pytest.raises(ValueError, match=r"transpose.*\(2, 3\)"):
        x.transpose(0, 5)
    with pytest.raises(ValueError, match=r"concatenate.*\(2, 3\).*\(2, 2\)"):
        tt.concatenate([x, tt.ones(2, 2)], axis=0)
    with pytest.raises(TypeError, match="concatenate"):
        tt.concatenate([x, tt.ones(2, 3, dtype=np.float64)])
    with pytest.raises(ValueError, match=r"stack.*\(2, 3\).*\(3, 2\)"):
        tt.stack([x, tt.ones(3, 2)])
    with pytest.raises(ValueError, match=r"split.*\[1, 1\].*3"):
        x.split([1, 1], axis=1)
    with pytest.raises(ValueError, match="split.*positive"):
        x.split(0)
    with pytest.raises(ValueError, match=r"squeeze.*\(2, 3\)"):
        x.squeeze(0)
    with pytest.raises(ValueError, match=r"masked_fill.*\(2, 2, 3\)"):
        x.masked_fill(np.ones((2, 2, 3), dtype=bool), 0.0)


def test_nn_op_shape_errors():
    x = tt.ones(2, 3)
    with pytest.raises(ValueError, match=r"layer_norm: weight of shape \(4,\) for input of shape \(2, 3\)"):
        F.layer_norm(x, tt.ones(4), tt.ones(3))
    with pytest.raises(ValueError, match=r"linear.*\(2, 3\).*\(4, 5\)"):
        F.linear(x, tt.ones(4, 5))
    with pytest.raises(ValueError, match=r"linear: bias of shape \(3,\)"):
        F.linear(x, tt.ones(4, 3), tt.ones(3))
    with pytest.raises(TypeError, match="linear.*float64.*float32"):
        F.linear(tt.ones(2, 3, dtype=np.float64), tt.ones(4, 3))
    q, k = tt.ones(1, 1, 3, 2), tt.ones(1, 1, 2, 2)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention.*\(1, 1, 3, 2\).*\(1, 1, 2, 2\)"):
        F.scaled_dot_product_attention(q, k, tt.ones(1, 1, 2, 3))
    with pytest.raises(ValueError, match=r"causal.*\(2\).*\(3\)"):
        F.scaled_dot_product_attention(q, k, k)


def test_nn_ops_refuse_to_mix_float32_and_float64():
    x64 = tt.ones(2, 3, dtype=np.float64)
    with pytest.raises(TypeError, match="layer_norm.*float"):
        F.layer_norm(x64, tt.ones(3), tt.ones(3))
    q = tt.ones(1, 1, 2, 2)
    with pytest.raises(TypeError, match="scaled_dot_product_attention.*float"):
        F.scaled_dot_product_attention(q, q, q.astype(np.float64))


def test_reduction_axis_errors():
    with pytest.raises(IndexError, match=r"axis -3 .*\(2, 3\)"):
        tt.ones(2, 3).sum(axis=-3)
