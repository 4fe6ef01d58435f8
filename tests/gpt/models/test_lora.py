"""LoRA: starts at the base model, trains only the adapters, and merges back to the same logits."""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import nn, optim

from gpt.models import lora
from gpt.models.gpt2_config import GPTConfig
from gpt.models.gpt2 import GPT

CFG = dict(vocab_size=61, context_length=16, emb_dim=16, n_layers=2, n_heads=2, drop_rate=0.0)


def tiny_gpt(seed=0, **kw):
    tt.manual_seed(seed)
    return GPT(GPTConfig(**{**CFG, **kw}))


def ids(B=2, T=7, seed=1):
    return np.random.default_rng(seed).integers(0, CFG["vocab_size"], size=(B, T))


def perturb_adapters(model, seed=3):
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.endswith(("lora_A", "lora_B")):
            p.data = rng.normal(0, 0.3, p.shape).astype(np.float32)


def test_lora_linear_starts_at_base_and_matches_formula():
    tt.manual_seed(0)
    base = nn.Linear(5, 4)
    x = tt.tensor(np.random.default_rng(0).normal(size=(3, 5)))
    before = base(x).numpy()
    layer = lora.LoRALinear(base, rank=2, alpha=6.0)
    assert layer.lora_A.shape == (2, 5) and layer.lora_B.shape == (4, 2)
    assert np.all(layer.lora_B.numpy() == 0) and np.any(layer.lora_A.numpy() != 0)
    np.testing.assert_array_equal(layer(x).numpy(), before)            # B = 0: exactly the base layer
    layer.lora_B.data = np.random.default_rng(1).normal(size=(4, 2)).astype(np.float32)
    W, b = base.weight.numpy(), base.bias.numpy()
    A, B = layer.lora_A.numpy(), layer.lora_B.numpy()
    expected = x.numpy() @ W.T + b + 3.0 * (x.numpy() @ A.T) @ B.T    # alpha / rank = 3
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_lora_linear_gradients():
    tt.manual_seed(0)
    layer = lora.LoRALinear(nn.Linear(3, 2, dtype=np.float64), rank=2, alpha=4.0)
    layer.lora_B.data = np.random.default_rng(2).normal(size=(2, 2))
    x = tt.tensor(np.random.default_rng(0).normal(size=(4, 3)), dtype=np.float64, requires_grad=True)

    def fn(x, A, B):
        layer.lora_A, layer.lora_B = A, B
        return (layer(x) ** 2).sum()
    A = tt.tensor(layer.lora_A.numpy(), dtype=np.float64, requires_grad=True)
    B = tt.tensor(layer.lora_B.numpy(), dtype=np.float64, requires_grad=True)
    assert tt.gradcheck(fn, x, A, B)


def test_apply_lora_wraps_the_block_linears_and_freezes_the_rest():
    model = tiny_gpt()
    total_before = model.num_parameters()
    names = lora.apply_lora(model, rank=4, alpha=8)
    expected = [f"blocks.{i}.{n}" for i in range(2) for n in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")]
    assert sorted(names) == sorted(expected)
    assert isinstance(model.blocks[1].mlp.fc, lora.LoRALinear)
    assert type(model.out_head) is nn.Linear
    trainable = lora.mark_trainable(model)
    assert all(n.endswith(("lora_A", "lora_B")) for n in trainable) and len(trainable) == 2 * len(expected)
    E = CFG["emb_dim"]
    per_block = 4 * ((E + 3 * E) + (E + E) + (E + 4 * E) + (4 * E + E))   # rank * (in + out) per layer
    n_trainable, n_total = lora.count_parameters(model)
    assert n_trainable == 2 * per_block
    assert n_total == total_before + n_trainable
    # the base weights keep their names, so a base state dict still loads into the adapted model
    assert "blocks.0.attn.qkv.weight" in dict(model.named_parameters())


def test_mark_trainable_extra_prefixes():
    model = tiny_gpt()
    lora.apply_lora(model, rank=2)
    names = lora.mark_trainable(model, ["final_norm"])
    assert "final_norm.weight" in names and "final_norm.bias" in names
    assert "blocks.1.norm1.weight" not in names
    assert not model.tok_emb.weight.requires_grad


def test_training_changes_only_the_adapters():
    model = tiny_gpt()
    frozen = {k: v.copy() for k, v in model.state_dict().items()}
    lora.apply_lora(model, rank=2, alpha=4)
    lora.mark_trainable(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optim.AdamW(params, lr=1e-2)
    x = ids()
    for _ in range(3):
        loss = F.cross_entropy(model(x[:, :-1]), x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = model.state_dict()
    for k, v in frozen.items():
        np.testing.assert_array_equal(state[k], v, err_msg=k)
    assert any(np.any(v != 0) for k, v in state.items() if k.endswith("lora_B"))


@pytest.mark.parametrize("tie", [False, True])
def test_merged_model_gives_the_same_logits(tie):
    model = tiny_gpt(tie_weights=tie)
    lora.apply_lora(model, rank=3, alpha=5)
    perturb_adapters(model)
    x = ids()
    model.eval()
    adapted = model(x).numpy()
    base_names = set(tiny_gpt(tie_weights=tie).state_dict())
    assert np.abs(adapted - tiny_gpt(tie_weights=tie).eval()(x).numpy()).max() > 1e-2   # the adapters matter
    lora.merge_lora(model)
    assert not any(isinstance(m, lora.LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == base_names
    np.testing.assert_allclose(model(x).numpy(), adapted, rtol=1e-4, atol=1e-5)
    # and the merged weights survive a save/load round trip into a plain GPT
    fresh = tiny_gpt(seed=9, tie_weights=tie)
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_allclose(fresh.eval()(x).numpy(), adapted, rtol=1e-4, atol=1e-5)


def test_apply_lora_errors_and_all_targets():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="no Linear"):
        lora.apply_lora(model, targets=("nothing.here",))
    with pytest.raises(ValueError, match="rank"):
        lora.LoRALinear(nn.Linear(2, 2), rank=0)
    names = lora.apply_lora(model, targets=None)
    assert "out_head" in names and len(names) == 4 * 2 + 1
    assert set(lora.lora_state_dict(model)) == {f"{n}.lora_{ab}" for n in names for ab in "AB"}


def test_a_rank_above_the_layer_is_refused_with_the_parameter_count():
    model = tiny_gpt()                                     # emb 16: attn.qkv is 16 -> 48, mlp.fc 16 -> 64
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match=r"LoRA rank 100,000 is larger than blocks\.0\.attn\.qkv \(16 in, 48 out\)"
                                         r".*6,400,000 parameters, the layer has 768.*at most 16"):
        lora.apply_lora(model, rank=100_000)
    assert {n for n, _ in model.named_parameters()} == set(before)          # nothing was wrapped
    lora.apply_lora(tiny_gpt(), rank=16)                                      # min(in, out) itself is fine
    with pytest.raises(ValueError, match="rank"):
        lora.LoRALinear(nn.Linear(4, 3), rank=4)
