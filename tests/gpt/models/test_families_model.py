"""Llama 3 and Qwen3 on the engine: logits against an independent float64 NumPy forward, the KV cache (kv heads
only), the configs and their published shapes, and what they share with GPT-2 (training on the twins, LoRA,
checkpoints, the classifier head, generation)."""
import math

import numpy as np
import pytest

import gpt
import tinytensor as tt
import tinytensor.functional as F
from gpt import LlamaConfig, Qwen3Config
from gpt.training import checkpoint as ckpt
from gpt.models import lora
from gpt.weights.hf import hf_state
from tinytensor import optim

from test_device_seam import fake_cuda  # noqa: F401  (a fixture)


def small(cls=LlamaConfig, **over):
    base = dict(vocab_size=61, context_length=24, emb_dim=16, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=24,
                rope_theta=10000.0, norm_eps=1e-5, tie_weights=False)
    if cls is Qwen3Config:
        base["head_dim"] = 8                            # apart from emb_dim / n_heads = 4, as Qwen3 does
    base.update(over)
    return cls(**base)


def randomised(cfg, seed=1, dtype=np.float32):
    """A model whose every parameter (norm scales too) is random, so no term of the forward hides."""
    model = gpt.build_model(cfg)
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        base, scale = (1.0, 0.3) if p.ndim == 1 else (0.0, 0.25)
        p.data = (base + scale * rng.standard_normal(p.shape)).astype(dtype)
    return model


# ----- an independent forward in float64 NumPy, from Hugging Face's layout and the papers' formulas -----

def _rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _inv_freq(D, theta, scaling):
    """theta^(-2i/D); with Llama 3 scaling, each frequency by its band (keep / divide by factor / blend)."""
    inv = theta ** (-np.arange(0, D, 2) / D)
    if scaling:
        out = []
        for f in inv:
            wavelen = 2 * math.pi / f
            lo, hi = scaling["original_context_length"] / scaling["low_freq_factor"], \
                scaling["original_context_length"] / scaling["high_freq_factor"]
            if wavelen < hi:
                out.append(f)
            elif wavelen > lo:
                out.append(f / scaling["factor"])
            else:
                t = (scaling["original_context_length"] / wavelen - scaling["low_freq_factor"]) / \
                    (scaling["high_freq_factor"] - scaling["low_freq_factor"])
                out.append((1 - t) * f / scaling["factor"] + t * f)
        inv = np.array(out)
    return inv


def _rotate(x, positions, inv):
    """Each pair (x_i, x_{i + D/2}) as a complex number, times e^{i p f_i}."""
    h = x.shape[-1] // 2
    z = (x[..., :h] + 1j * x[..., h:]) * np.exp(1j * positions[:, None] * inv[None, :])
    return np.concatenate([z.real, z.imag], axis=-1)


def reference_forward(sd, ids, cfg, start=0):
    """Logits of a Llama / Qwen3 with Hugging Face-layout weights ``sd``, positions from ``start``."""
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    B, T = ids.shape
    H, H_kv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    pos = np.arange(start, start + T, dtype=np.float64)
    inv = _inv_freq(D, cfg.rope_theta, cfg.rope_scaling)
    x = sd["model.embed_tokens.weight"][ids]
    mask = np.triu(np.ones((T, T), bool), k=1)
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        h = _rms(x, sd[p + "input_layernorm.weight"], cfg.norm_eps)
        q = (h @ sd[p + "self_attn.q_proj.weight"].T).reshape(B, T, H, D)
        k = (h @ sd[p + "self_attn.k_proj.weight"].T).reshape(B, T, H_kv, D)
        v = (h @ sd[p + "self_attn.v_proj.weight"].T).reshape(B, T, H_kv, D)
        if cfg.qk_norm:
            q = _rms(q, sd[p + "self_attn.q_norm.weight"], cfg.norm_eps)
            k = _rms(k, sd[p + "self_attn.k_norm.weight"], cfg.norm_eps)
        q, k = _rotate(q.transpose(0, 2, 1, 3), pos, inv), _rotate(k.transpose(0, 2, 1, 3), pos, inv)
        v = v.transpose(0, 2, 1, 3)
        group = H // H_kv
        out = np.empty((B, H, T, D))
        for head in range(H):                           # query head h reads kv head h // group
            s = q[:, head] @ k[:, head // group].transpose(0, 2, 1) / math.sqrt(D)
            s = np.where(mask, -np.inf, s)
            w = np.exp(s - s.max(-1, keepdims=True))
            out[:, head] = (w / w.sum(-1, keepdims=True)) @ v[:, head // group]
        x = x + out.transpose(0, 2, 1, 3).reshape(B, T, H * D) @ sd[p + "self_attn.o_proj.weight"].T
        h = _rms(x, sd[p + "post_attention_layernorm.weight"], cfg.norm_eps)
        gate, up = h @ sd[p + "mlp.gate_proj.weight"].T, h @ sd[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ sd[p + "mlp.down_proj.weight"].T
    x = _rms(x, sd["model.norm.weight"], cfg.norm_eps)
    return x @ sd.get("lm_head.weight", sd["model.embed_tokens.weight"]).T


SCALING = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_context_length": 64}
CASES = {"llama_gqa_scaled": dict(cls=LlamaConfig, rope_scaling=SCALING, rope_theta=500000.0, head_dim=8),
         "llama_mqa_tied": dict(cls=LlamaConfig, n_kv_heads=1, tie_weights=True),
         "qwen3_gqa": dict(cls=Qwen3Config),
         "qwen3_mha_tied": dict(cls=Qwen3Config, n_kv_heads=4, tie_weights=True)}


@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_independent_float64_forward(case):
    cfg = small(**CASES[case])
    model = randomised(cfg)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 20))
    want = reference_forward(hf_state(model), ids, cfg)
    got = model(ids).numpy()
    assert got.dtype == np.float32 and got.shape == (2, 20, cfg.vocab_size)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
    tight = randomised(cfg, dtype=np.float64)
    np.testing.assert_allclose(tight(ids).numpy(), reference_forward(hf_state(tight), ids, cfg), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", ["llama_gqa_scaled", "qwen3_gqa"])
def test_kv_cache_holds_only_kv_heads_grows_and_gives_the_full_pass_logits(case, monkeypatch):
    monkeypatch.setattr(gpt.KVCache, "START", 4)              # so the buffers must grow (4 -> 8 -> 16 -> 24)
    cfg = small(**CASES[case])
    model = randomised(cfg, dtype=np.float64)
    ids = np.random.default_rng(2).integers(0, cfg.vocab_size, (2, 23))
    full = model(ids).numpy()
    cache = model.new_cache(2)
    assert cache.keys[0].shape == (2, cfg.n_kv_heads, 4, cfg.head_dim)
    pieces = [model(ids[:, :5], cache=cache).numpy()]
    for t in range(5, 23, 3):
        pieces.append(model(ids[:, t:t + 3], cache=cache).numpy())
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-10, atol=1e-10)
    assert cache.length == 23 and cache.keys[1].shape == (2, cfg.n_kv_heads, 24, cfg.head_dim)
    with pytest.raises(ValueError, match="context length"):
        model(ids[:, :2], cache=cache)
    out_cached = gpt.generate(model, ids[:1, :4], max_new_tokens=15, use_cache=True)
    out_full = gpt.generate(model, ids[:1, :4], max_new_tokens=15, use_cache=False)
    np.testing.assert_array_equal(out_cached, out_full)


def test_output_is_causal_and_errors_name_the_model():
    model = randomised(small(Qwen3Config))
    ids = np.random.default_rng(3).integers(0, 61, (1, 10))
    changed = ids.copy()
    changed[0, 6:] = (changed[0, 6:] + 1) % 61
    np.testing.assert_allclose(model(changed).numpy()[:, :6], model(ids).numpy()[:, :6], rtol=1e-6)
    with pytest.raises(ValueError, match="Qwen3: token id 61 is outside"):
        model(np.array([[61]]))
    with pytest.raises(ValueError, match="Qwen3: 25 tokens exceed the context length 24"):
        model(np.zeros((1, 25), np.int64))
    with pytest.raises(TypeError, match="LlamaConfig or Qwen3Config"):
        gpt.Llama(gpt.GPTConfig.preset("tiny"))
    with pytest.raises(TypeError, match="Qwen3Config"):
        gpt.Qwen3(small())


def test_configs_validate_round_trip_and_published_shapes():
    for cls in (LlamaConfig, Qwen3Config):
        for name in cls.PRESETS:
            cfg = cls.preset(name)
            again = gpt.models.config_from_dict(cfg.to_dict())
            assert again == cfg and type(again) is cls
    # parameter counts of the published models (their model cards / safetensors totals)
    published = {"llama3.2-1b": 1.236e9, "llama3.2-3b": 3.213e9, "llama3-8b": 8.030e9}
    for name, n in published.items():
        assert LlamaConfig.preset(name).num_parameters() == pytest.approx(n, rel=1e-3)
    published = {"qwen3-0.6b": 0.596e9, "qwen3-1.7b": 1.721e9, "qwen3-4b": 4.022e9, "qwen3-8b": 8.191e9}
    for name, n in published.items():
        assert Qwen3Config.preset(name).num_parameters() == pytest.approx(n, rel=1e-3)
    for cls in (LlamaConfig, Qwen3Config):
        tiny = gpt.build_model(cls.preset("tiny"))
        assert tiny.num_parameters() == tiny.cfg.num_parameters()
    assert Qwen3Config().qk_norm and not LlamaConfig().qk_norm and Qwen3Config().head_dim == 128
    for bad, match in ((dict(n_kv_heads=3), "multiple of n_kv_heads"), (dict(head_dim=7), "head_dim must be even"),
                       (dict(rope_theta=0.5), "rope_theta"), (dict(emb_dim=18, n_heads=4), "divisible"),
                       (dict(rope_scaling={"factor": 8.0}), "rope_scaling must be null"),
                       (dict(rope_scaling={**SCALING, "factor": 0.5}), "factor >= 1"),
                       (dict(hidden_dim=0), "hidden_dim must be a positive integer"),
                       (dict(vocab_size=2 ** 30), "more than")):
        with pytest.raises(ValueError, match=match):
            LlamaConfig.preset("tiny", **bad)
    with pytest.raises(ValueError, match="unknown field"):
        LlamaConfig.from_dict({"arch": "llama", "qkv_bias": True})
    with pytest.raises(ValueError, match="arch is 'llama'"):
        Qwen3Config.from_dict(LlamaConfig.preset("tiny").to_dict())
    with pytest.raises(ValueError, match="unknown arch"):
        gpt.models.config_from_dict({"arch": "mamba"})
    assert "arch" not in gpt.GPTConfig.preset("tiny").to_dict()          # GPT-2 checkpoints keep their old form


def test_structure_the_shared_code_relies_on():
    model = gpt.build_model(Qwen3Config.preset("tiny"))
    names = {n for n, _ in model.named_parameters()}
    for n in ("tok_emb.weight", "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight",
              "blocks.0.attn.q_norm.weight", "blocks.0.norm2.weight", "blocks.0.mlp.fc.weight",
              "blocks.0.mlp.proj.weight", "final_norm.weight"):
        assert n in names
    assert "out_head.weight" not in names and model.out_head.weight is model.tok_emb.weight    # tied: one parameter
    assert set(ckpt.param_shapes(model.cfg)) == names
    assert all(tuple(p.shape) == ckpt.param_shapes(model.cfg)[n] for n, p in model.named_parameters())
    for n, p in model.named_parameters():                # init: norms at 1, matrices N(0, 0.02) (shortcut ones less)
        if p.ndim == 1:
            np.testing.assert_array_equal(p.data, 1.0)
        elif n.endswith(("attn.proj.weight", "mlp.proj.weight")):
            assert p.data.std() == pytest.approx(0.02 / math.sqrt(2 * model.cfg.n_layers), rel=0.1)
        else:
            assert p.data.std() == pytest.approx(0.02, rel=0.1)
    torch_style = gpt.build_model(LlamaConfig.preset("tiny"), init="torch")
    fc = torch_style.blocks[0].mlp.fc.weight.data
    assert np.abs(fc).max() <= 1 / math.sqrt(128) and torch_style.tok_emb.weight.data.std() == pytest.approx(1, rel=0.1)


def _train(cfg, reference, steps=3):
    tt.manual_seed(0)
    model = gpt.build_model(cfg).to(np.float64)
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    rng = np.random.default_rng(0)
    losses, grads = [], []
    with tt.reference_ops(reference), tt.op_counter() as ops:
        for step in range(steps):
            ids = rng.integers(0, cfg.vocab_size, (2, 9))
            tt.manual_seed(100 + step)
            loss = F.cross_entropy(model(ids[:, :-1]), ids[:, 1:])
            loss.backward()
            losses.append(loss.item())
            grads.append({n: p.grad.copy() for n, p in model.named_parameters()})
            opt.step()
            opt.zero_grad()
    return losses, grads, set(ops.counts)


@pytest.mark.parametrize("cls", [LlamaConfig, Qwen3Config])
def test_trains_the_same_on_the_twins_and_every_parameter_learns(cls):
    cfg = small(cls, drop_rate=0.1)
    losses, grads, ops = _train(cfg, reference=False)
    twin_losses, twin_grads, twin_ops = _train(cfg, reference=True)
    assert {"rms_norm", "rope", "swiglu", "scaled_dot_product_attention", "linear"} <= ops
    assert not twin_ops & {"rms_norm", "rope", "swiglu", "silu", "scaled_dot_product_attention", "linear"}
    np.testing.assert_allclose(twin_losses, losses, rtol=1e-10)
    for a, b in zip(grads, twin_grads):
        for name in a:
            assert np.abs(a[name]).max() > 0, name
            np.testing.assert_allclose(b[name], a[name], rtol=1e-8, atol=1e-12, err_msg=name)


def test_lora_wraps_the_same_layers_and_merges_to_the_same_logits():
    model = randomised(small(Qwen3Config))
    ids = np.random.default_rng(4).integers(0, 61, (2, 12))
    names = lora.apply_lora(model, rank=2, alpha=4)
    assert len(names) == 4 * model.cfg.n_layers
    lora.mark_trainable(model)
    for m in model.modules():
        if isinstance(m, lora.LoRALinear):
            m.lora_B.data = np.random.default_rng(5).standard_normal(m.lora_B.shape).astype(np.float32) * 0.1
    adapted = model(ids).numpy()
    lora.merge_lora(model)
    np.testing.assert_allclose(model(ids).numpy(), adapted, rtol=1e-4, atol=1e-5)


def test_checkpoint_round_trip_and_classifier_head(tmp_path):
    model = randomised(small(LlamaConfig, tie_weights=True))
    ckpt.save(tmp_path / "run", model, None, {"step": 3, "config": model.cfg.to_dict()})
    loaded, meta = ckpt.load_model(tmp_path / "run")
    assert type(loaded) is gpt.Llama and loaded.cfg == model.cfg
    ids = np.random.default_rng(6).integers(0, 61, (1, 9))
    np.testing.assert_array_equal(loaded(ids).numpy(), model(ids).numpy())
    meta["config"]["n_kv_heads"] = 4                    # the config no longer fits the weights
    with pytest.raises(ValueError, match="attn.qkv.weight"):
        ckpt.load_config(meta, tmp_path / "run")
    from gpt.finetune import classify
    classify.replace_head(model, 3)
    logits = classify.class_logits(model, ids, np.array([9]))
    assert logits.shape == (1, 3)
    classify.set_trainable(model, "last")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in trainable if n.startswith(("out_head", "blocks.1.", "final_norm"))} and trainable


def test_generation_stops_at_any_of_several_end_ids():
    model = randomised(small(), dtype=np.float64)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    free = gpt.generate(model, prompt, max_new_tokens=8)
    first, second = int(free[0, 4]), int(free[1, 5])            # an id each row reaches at a known step
    out = gpt.generate(model, prompt, max_new_tokens=8, eos_id=[first, second])
    for row, stop in ((0, first), (1, second)):
        new = out[row, 3:].tolist()
        end = next(i for i, t in enumerate(new) if t in (first, second))
        assert new[:end] == free[row, 3:3 + end].tolist() and all(t == new[end] for t in new[end:])
    assert out.shape[1] <= free.shape[1]


def test_a_training_step_and_generation_stay_on_the_device(fake_cuda):
    import test_device_seam as seam
    cfg = small(Qwen3Config, drop_rate=0.1)
    models = {}
    for device in ("cpu", "cuda"):
        tt.manual_seed(0)
        models[device] = gpt.build_model(cfg).to(device)
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, 61, (2, 12)), rng.integers(0, 61, (2, 12))
    losses = {}
    for device, model in models.items():
        tt.manual_seed(10)
        loss = F.cross_entropy(model(ids), targets)
        loss.backward()
        losses[device] = loss.item()
        if device == "cuda":
            bad = [n for n, p in model.named_parameters() if not seam.on_device(p.grad)]
            assert not bad, f"gradients left the device: {bad}"
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-5)
    prompt = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(gpt.generate(models["cuda"], prompt, max_new_tokens=4),
                                  gpt.generate(models["cpu"], prompt, max_new_tokens=4))
    assert all(seam.on_device(k) for k in models["cuda"].new_cache(1).keys)


@pytest.mark.parametrize("cls", [LlamaConfig, Qwen3Config])
def test_float16_autocast_keeps_norms_in_float32_and_gradients_float32(cls):
    # Qwen3's q/k RMSNorm meets the 16-bit output of a projection: under autocast it must run in float32
    # (as layer norm does), not refuse the float32 weight beside a float16 input
    cfg = small(cls)
    model = gpt.build_model(cfg)
    ids = np.arange(10).reshape(2, 5) % cfg.vocab_size
    with tt.autocast(dtype="float16"):
        logits = model(ids)
        loss = F.cross_entropy(logits, ids)
    loss.backward()
    assert logits.dtype == np.float16 and loss.dtype == np.float32 and math.isfinite(loss.item())
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())
