"""The GPT model: shapes, errors, initialisation, and logits against an independent float64 NumPy forward."""
import math

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from gpt import GPT, GPTConfig
from gpt.weights.gpt2 import gpt2_state

from gpt_helpers import small_cfg, small_model


# ----- an independent GPT-2 forward pass in float64 NumPy, written from the paper/HF layout -----
def _ln(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def reference_forward(sd, ids, n_heads):
    """Logits of GPT-2 given Hugging Face-layout weights ``sd`` (Conv1D weights are (in, out))."""
    sd = {k.removeprefix("transformer."): np.asarray(v, np.float64) for k, v in sd.items()}
    B, T = ids.shape
    x = sd["wte.weight"][ids] + sd["wpe.weight"][np.arange(T)]
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("h.")})
    E = x.shape[-1]
    D = E // n_heads
    mask = np.triu(np.ones((T, T), bool), k=1)
    for i in range(n_layers):
        p = f"h.{i}."
        h = _ln(x, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
        qkv = h @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"]
        q, k, v = np.split(qkv, 3, axis=-1)
        heads = lambda a: a.reshape(B, T, n_heads, D).transpose(0, 2, 1, 3)
        q, k, v = heads(q), heads(k), heads(v)
        att = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D)
        att = np.where(mask, -np.inf, att)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(0, 2, 1, 3).reshape(B, T, E)
        x = x + y @ sd[p + "attn.c_proj.weight"] + sd[p + "attn.c_proj.bias"]
        h = _ln(x, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        h = _gelu(h @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"])
        x = x + h @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"]
    x = _ln(x, sd["ln_f.weight"], sd["ln_f.bias"])
    head = sd.get("lm_head.weight", sd["wte.weight"])
    return x @ head.T


def _randomise(model, seed=1):
    """Give every parameter (biases and norms too) random values so no term of the forward hides."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        scale = 0.5 if "norm" in name else 0.3
        base = 1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "final_norm.weight" else 0.0
        p.data = (base + scale * rng.standard_normal(p.shape)).astype(np.float32)
    return model


@pytest.mark.parametrize("tied,qkv_bias", [(False, True), (True, True), (False, False)])
def test_logits_match_independent_float64_forward(tied, qkv_bias):
    model = _randomise(small_model(tie_weights=tied, qkv_bias=qkv_bias))
    ids = np.random.default_rng(0).integers(0, 97, (3, 16))
    ours = model(ids).numpy()
    ref = reference_forward(gpt2_state(model), ids, n_heads=4)
    assert ours.shape == (3, 16, 97) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=2e-4)


def test_float64_model_matches_reference_tightly():
    model = _randomise(small_model()).to(np.float64)
    ids = np.random.default_rng(1).integers(0, 97, (2, 11))
    np.testing.assert_allclose(model(ids).numpy(), reference_forward(gpt2_state(model), ids, 4), rtol=1e-10, atol=1e-10)


def test_output_is_causal():
    model = _randomise(small_model())
    ids = np.random.default_rng(2).integers(0, 97, (1, 12))
    changed = ids.copy()
    changed[0, 8:] = (changed[0, 8:] + 1) % 97
    a, b = model(ids).numpy(), model(changed).numpy()
    np.testing.assert_array_equal(a[:, :8], b[:, :8])
    assert not np.allclose(a[:, 8:], b[:, 8:])


def test_features_then_head_is_forward_and_head_can_be_swapped():
    from tinytensor import nn
    model = _randomise(small_model())
    ids = np.arange(10).reshape(2, 5)
    feats = model.features(ids)
    assert feats.shape == (2, 5, 32)
    np.testing.assert_allclose(model.out_head(feats).numpy(), model(ids).numpy(), rtol=1e-6)
    model.out_head = nn.Linear(32, 2)
    assert model(ids).shape == (2, 5, 2)


def test_structure_names_the_fine_tuning_code_relies_on():
    model = small_model(qkv_bias=False)
    names = dict(model.named_parameters())
    for n in ("tok_emb.weight", "pos_emb.weight", "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight",
              "blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias", "blocks.1.norm2.bias",
              "blocks.1.mlp.fc.weight", "blocks.1.mlp.proj.weight", "final_norm.weight", "out_head.weight"):
        assert n in names, n
    assert "blocks.0.attn.qkv.bias" not in names and model.out_head.bias is None
    assert names["blocks.0.attn.qkv.weight"].shape == (96, 32)
    assert names["blocks.0.mlp.fc.weight"].shape == (128, 32)
    assert len(model.blocks) == 2 and model.cfg.emb_dim == 32
    assert model.num_parameters() == model.cfg.num_parameters()


def test_tied_weights_share_one_parameter():
    model = small_model(tie_weights=True)
    assert model.out_head.weight is model.tok_emb.weight
    assert "out_head.weight" not in model.state_dict()
    assert model.num_parameters() == small_model(tie_weights=False).num_parameters() - 97 * 32
    assert model.num_parameters() == model.cfg.num_parameters()


def test_init_follows_gpt2():
    tt.manual_seed(0)
    cfg = small_cfg(emb_dim=64, n_layers=8, vocab_size=500, context_length=64)
    model = GPT(cfg)
    sd = model.state_dict()
    assert abs(sd["tok_emb.weight"].std() - 0.02) < 0.002
    assert abs(sd["blocks.0.attn.qkv.weight"].std() - 0.02) < 0.002
    resid = 0.02 / math.sqrt(16)
    assert abs(sd["blocks.3.mlp.proj.weight"].std() - resid) < 0.1 * resid
    assert abs(sd["blocks.3.attn.proj.weight"].std() - resid) < 0.15 * resid
    assert not sd["blocks.0.attn.qkv.bias"].any() and not sd["blocks.2.mlp.fc.bias"].any()
    assert (sd["blocks.1.norm1.weight"] == 1).all() and not sd["final_norm.bias"].any()
    # seeded: the same seed gives the same weights, another seed others
    tt.manual_seed(0)
    again = GPT(cfg).state_dict()
    assert all(np.array_equal(sd[k], again[k]) for k in sd)
    tt.manual_seed(1)
    assert not np.array_equal(GPT(cfg).state_dict()["tok_emb.weight"], sd["tok_emb.weight"])


def test_errors_are_value_errors():
    model = small_model()
    with pytest.raises(ValueError, match="context length 16"):
        model(np.zeros((1, 17), np.int64))
    with pytest.raises(ValueError, match="token id 97"):
        model(np.array([[1, 97]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(np.array([[-1, 3]]))
    with pytest.raises(ValueError, match="integers"):
        model(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="batch, tokens"):
        model(np.zeros(3, np.int64))
    assert model(tt.tensor(np.zeros((2, 16), np.int64))).shape == (2, 16, 97)


def test_kv_cache_gives_the_same_logits_as_a_full_pass():
    model = _randomise(small_model())
    ids = np.random.default_rng(3).integers(0, 97, (2, 16))
    full = model(ids).numpy()
    cache = model.new_cache(2)
    with tt.no_grad():
        parts = [model(ids[:, :5], cache=cache).numpy()]
        for t in range(5, 16):
            parts.append(model(ids[:, t:t + 1], cache=cache).numpy())
    assert cache.length == 16
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="cached"):
        model(ids[:, :1], cache=cache)


def test_dropout_only_in_training_mode():
    model = small_model(drop_rate=0.5)
    ids = np.arange(8).reshape(1, 8)
    model.eval()
    np.testing.assert_array_equal(model(ids).numpy(), model(ids).numpy())
    model.train()
    assert not np.array_equal(model(ids).numpy(), model(ids).numpy())


def test_gradients_reach_every_parameter_and_a_batch_can_be_learned():
    model = small_model(drop_rate=0.1)
    ids = np.random.default_rng(4).integers(0, 97, (4, 16))
    x, y = ids[:, :-1], ids[:, 1:]
    opt = tt.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for step in range(40):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if step == 0:
            assert all(p.grad is not None and np.abs(p.grad).sum() > 0 for p in model.parameters())
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[0] > 4.0 and losses[-1] < 0.5 * losses[0]


def test_config_validation_presets_and_json_round_trip():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=10, context_length=8, emb_dim=30, n_layers=1, n_heads=4)
    for bad in (dict(vocab_size=0), dict(n_layers=-1), dict(context_length=2.5), dict(drop_rate=1.5),
                dict(qkv_bias="yes")):
        with pytest.raises(ValueError):
            small_cfg(**bad)
    sizes = {"gpt2-small": (768, 12, 12), "gpt2-medium": (1024, 24, 16), "gpt2-large": (1280, 36, 20),
             "gpt2-xl": (1600, 48, 25)}
    for name, (e, l, h) in sizes.items():
        c = GPTConfig.preset(name)
        assert (c.emb_dim, c.n_layers, c.n_heads, c.vocab_size, c.context_length, c.qkv_bias) == (e, l, h, 50257, 1024, True)
    assert GPTConfig.preset("gpt2-small").num_parameters() == 124_439_808 + 50257 * 768   # untied head
    assert GPTConfig.preset("gpt2-small", tie_weights=True).num_parameters() == 124_439_808
    tiny = GPTConfig.preset("tiny")
    assert GPTConfig.from_dict(tiny.to_dict()) == tiny
    with pytest.raises(ValueError, match="unknown preset"):
        GPTConfig.preset("gpt5")
    with pytest.raises(ValueError, match="unknown field"):
        GPTConfig.from_dict({**tiny.to_dict(), "n_layer": 3})


def test_torch_style_init_matches_pytorch_layer_defaults():
    tt.manual_seed(0)
    model = GPT(small_cfg(emb_dim=64, n_heads=4, vocab_size=300), init="torch")
    sd = model.state_dict()
    assert abs(sd["tok_emb.weight"].std() - 1.0) < 0.05
    for name, fan_in in (("blocks.0.attn.qkv.weight", 64), ("blocks.0.mlp.proj.weight", 256),
                         ("blocks.1.mlp.fc.bias", 64), ("out_head.weight", 64)):
        bound = 1 / math.sqrt(fan_in)
        assert np.abs(sd[name]).max() <= bound and np.abs(sd[name]).max() > 0.9 * bound, name
    assert (sd["blocks.0.norm1.weight"] == 1).all() and not sd["final_norm.bias"].any()
    with pytest.raises(ValueError, match="init"):
        GPT(small_cfg(), init="xavier")
