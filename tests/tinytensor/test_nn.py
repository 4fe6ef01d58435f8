"""nn.Module and the layers: parameter discovery, state dicts (strict errors), modes, containers."""
import math

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import nn


class Block(nn.Module):
    def __init__(self):
        self.norm = nn.LayerNorm(3)
        self.proj = nn.Linear(3, 3)
        self.scale = nn.Parameter(np.array([2.0], dtype=np.float32))
        self.drop = nn.Dropout(0.5)
        self.not_a_param = tt.tensor([1.0])              # a plain tensor is not a parameter

    def forward(self, x):
        return self.drop(self.proj(self.norm(x))) * self.scale


class Net(nn.Module):
    def __init__(self):
        self.emb = nn.Embedding(5, 3)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(3, 4, bias=False)
        self.shared = self.head.weight                  # the same parameter twice: listed once

    def forward(self, ids):
        h = self.emb(ids)
        for block in self.blocks:
            h = block(h)
        return self.head(h)


EXPECTED_NAMES = ["emb.weight"] + [f"blocks.{i}.{n}" for i in range(2) for n in
                                   ("scale", "norm.weight", "norm.bias", "proj.weight", "proj.bias")] + ["shared"]
# the tied head weight is named where it is met first; like PyTorch, a module's own attributes come first


def test_named_parameters_walks_the_tree_once_per_parameter():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert sorted(names) == sorted(EXPECTED_NAMES)
    assert len(names) == len(set(names))
    assert net.parameters()[0] is net.head.weight
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert net.num_parameters() == 5 * 3 + 2 * (1 + 3 + 3 + 9 + 3) + 12


def test_state_dict_is_a_dict_of_copies():
    net = Net()
    state = net.state_dict()
    assert sorted(state) == sorted(EXPECTED_NAMES)
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["emb.weight"][:] = 0
    assert not np.all(net.emb.weight.data == 0)


def test_load_state_dict_round_trip_and_independence():
    tt.manual_seed(0)
    a = Net()
    tt.manual_seed(1)
    b = Net()
    state = a.state_dict()
    b.load_state_dict(state)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
    saved = state["shared"].copy()
    b.head.weight.data -= 1.0                     # an in-place update, as an optimizer does
    np.testing.assert_array_equal(state["shared"], saved)
    b.load_state_dict({k: tt.tensor(v) for k, v in a.state_dict().items()})
    b.emb.weight.data *= 0
    assert not np.all(a.emb.weight.data == 0)


def test_load_state_dict_casts_to_the_parameter_dtype():
    lin = nn.Linear(2, 2)
    lin.load_state_dict({"weight": np.eye(2), "bias": np.zeros(2)})
    assert lin.weight.dtype == np.float32
    np.testing.assert_array_equal(lin.weight.data, np.eye(2))


def test_load_state_dict_strict_errors_name_the_keys():
    net = Net()
    state = net.state_dict()
    missing = dict(state)
    del missing["shared"]
    with pytest.raises(KeyError, match="missing: shared"):
        net.load_state_dict(missing)
    extra = dict(state, **{"blocks.7.scale": np.ones(1)})
    with pytest.raises(KeyError, match="unexpected: blocks.7.scale"):
        net.load_state_dict(extra)
    result = net.load_state_dict(extra, strict=False)
    assert result == {"missing": [], "unexpected": ["blocks.7.scale"]}
    assert net.load_state_dict(missing, strict=False)["missing"] == ["shared"]


def test_load_state_dict_rejects_a_wrong_shape_and_changes_nothing():
    net = Net()
    before = net.state_dict()
    state = {k: v + 1 for k, v in before.items()}
    state["shared"] = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"shared.*\(3, 4\).*\(4, 3\)"):
        net.load_state_dict(state)
    with pytest.raises(ValueError, match="shared"):
        net.load_state_dict(state, strict=False)
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_train_and_eval_toggle_dropout_everywhere():
    net = Net()
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    x = tt.ones(50, 3)
    block = net.blocks[0]
    np.testing.assert_array_equal(block.drop(x).data, x.data)
    net.train()
    tt.manual_seed(0)
    dropped = block.drop(x).data
    assert np.any(dropped == 0) and np.any(dropped == 2.0)


def test_sequential_and_module_list():
    tt.manual_seed(0)
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Tanh())
    assert len(seq) == 4 and isinstance(seq[1], nn.ReLU) and seq[-1] is seq[3]
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = tt.tensor(np.random.default_rng(0).standard_normal((5, 3)))
    expected = F.linear(F.relu(F.linear(x, seq[0].weight, seq[0].bias)), seq[2].weight, seq[2].bias).tanh()
    np.testing.assert_allclose(seq(x).data, expected.data, rtol=1e-6)
    mods = nn.ModuleList()
    mods.append(nn.GELU()).append(nn.Linear(1, 1))
    assert len(mods) == 2 and [type(m) for m in mods] == [nn.GELU, nn.Linear]
    assert [n for n, _ in mods.named_parameters()] == ["1.weight", "1.bias"]
    assert mods[0:1] == [mods[0]]
    with pytest.raises(IndexError, match="out of range"):
        mods[2]


def test_zero_grad_and_gradients_reach_every_parameter():
    net = Net().eval()
    out = net(np.array([[0, 1], [4, 4]]))
    out.sum().backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if n != "shared")
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_linear_layer_init_and_shape():
    tt.manual_seed(0)
    lin = nn.Linear(16, 3)
    assert lin.weight.shape == (3, 16) and lin.bias.shape == (3,)
    bound = 1 / math.sqrt(16)
    assert np.all(np.abs(lin.weight.data) <= bound) and np.abs(lin.weight.data).max() > bound / 2
    assert lin(tt.ones(2, 5, 16)).shape == (2, 5, 3)
    assert nn.Linear(2, 2, bias=False).bias is None
    assert [n for n, _ in nn.Linear(2, 2, bias=False).named_parameters()] == ["weight"]


def test_embedding_and_layer_norm_layers():
    tt.manual_seed(0)
    emb = nn.Embedding(10, 4)
    assert emb(np.array([[1, 2, 3]])).shape == (1, 3, 4)
    np.testing.assert_array_equal(emb(np.array([7])).data[0], emb.weight.data[7])
    ln = nn.LayerNorm(4)
    out = ln(tt.tensor(np.arange(8.0).reshape(2, 4)))
    np.testing.assert_allclose(out.data.mean(axis=-1), 0.0, atol=1e-6)
    np.testing.assert_allclose(out.data.var(axis=-1), 1.0, rtol=1e-4)


def test_module_to_dtype_casts_every_parameter():
    net = Net().to(np.float64)
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net(np.array([1, 2])).dtype == np.float64
    assert all(p.grad is None for p in net.parameters())


def test_skip_init_builds_layers_without_drawing_or_filling():
    class Pair(nn.Module):
        def __init__(self, dim):
            self.norm = nn.LayerNorm(dim)
            self.proj = nn.Linear(dim, 2 * dim, dtype=np.float64)

    tt.manual_seed(0)
    expected = tt.randn(4).numpy()
    tt.manual_seed(0)
    lin = nn.skip_init(nn.Linear, 3, 4)
    emb = nn.skip_init(nn.Embedding, 5, 2)
    pair = nn.skip_init(Pair, 3)
    np.testing.assert_array_equal(tt.randn(4).numpy(), expected)     # the seeded stream did not move
    assert (lin.weight.shape, lin.bias.shape, lin.in_features, lin.out_features) == ((4, 3), (4,), 3, 4)
    assert emb.weight.shape == (5, 2) and (emb.num, emb.dim) == (5, 2)
    assert pair.proj.weight.dtype == np.float64 and pair.norm.weight.shape == (3,)
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in pair.parameters())
    assert nn.skip_init(nn.Linear, 3, 4, bias=False).bias is None
    tt.manual_seed(0)
    nn.Linear(3, 4)                                  # outside skip_init the default draws happen again
    assert not np.array_equal(tt.randn(4).numpy(), expected)
    np.testing.assert_array_equal(nn.LayerNorm(3).weight.data, np.ones(3))
