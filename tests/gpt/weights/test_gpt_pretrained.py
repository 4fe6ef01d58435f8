"""GPT-2 weights in Hugging Face's layout: load, save, round trips, clear errors, memory mapping."""
import json

import numpy as np
import pytest

import tinytensor as tt
from gpt import GPT, GPTConfig, load_gpt2, save_gpt2
from gpt.weights.gpt2 import gpt2_state

from gpt_helpers import small_model
from test_gpt_model import _randomise, reference_forward


def _hf_files(folder, model, prefix="", with_config=True, drop=(), extra=None, tied_head=True):
    """Write ``model`` the way Hugging Face's hub files look (optionally without config.json or a tensor)."""
    sd = gpt2_state(model, prefix=prefix)
    n = model.cfg.context_length
    for i in range(model.cfg.n_layers):     # the mask buffers old checkpoints carry
        sd[f"{prefix}h.{i}.attn.bias"] = np.tril(np.ones((n, n), np.float32))[None, None]
        sd[f"{prefix}h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
    if tied_head and model.cfg.tie_weights:
        sd["lm_head.weight"] = sd[f"{prefix}wte.weight"]
    for name in drop:
        sd.pop(name)
    sd.update(extra or {})
    folder.mkdir(parents=True, exist_ok=True)
    tt.save(sd, folder / "model.safetensors", metadata={"format": "pt"})
    if with_config:
        c = model.cfg
        (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": c.emb_dim, "n_layer": c.n_layers,
                                                        "n_head": c.n_heads, "n_positions": c.context_length,
                                                        "vocab_size": c.vocab_size}))
    return folder


@pytest.mark.parametrize("prefix", ["", "transformer."])
@pytest.mark.parametrize("tied", [True, False])
def test_load_hf_layout_matches_the_reference_forward(tmp_path, prefix, tied):
    model = _randomise(small_model(tie_weights=tied))
    folder = _hf_files(tmp_path / "hf", model, prefix=prefix)
    loaded = load_gpt2(folder)
    assert loaded.cfg.tie_weights == tied and loaded.cfg.emb_dim == 32 and loaded.cfg.n_heads == 4
    ids = np.random.default_rng(0).integers(0, 97, (2, 16))
    ref = reference_forward(tt.load(folder / "model.safetensors"), ids, n_heads=4)
    np.testing.assert_allclose(loaded(ids).numpy(), ref, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy(), rtol=1e-5, atol=1e-5)  # layout: BLAS rounds differently


def test_save_then_load_round_trip_and_file_layout(tmp_path):
    model = _randomise(small_model(qkv_bias=False))
    save_gpt2(model, tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["model_type"] == "gpt2" and cfg["n_embd"] == 32 and cfg["n_layer"] == 2 and cfg["n_head"] == 4
    assert cfg["n_positions"] == 16 and cfg["vocab_size"] == 97 and cfg["tie_word_embeddings"] is False
    from tinytensor.serialize import load_metadata
    assert load_metadata(tmp_path / "out" / "model.safetensors") == {"format": "pt"}
    sd = tt.load(tmp_path / "out" / "model.safetensors")
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (32, 96)         # Conv1D: (in, out)
    assert sd["transformer.h.1.mlp.c_proj.weight"].shape == (128, 32)
    assert not sd["transformer.h.0.attn.c_attn.bias"].any()                   # no QKV bias -> zeros
    assert "lm_head.weight" in sd
    back = load_gpt2(tmp_path / "out" / "model.safetensors")
    ids = np.arange(16).reshape(1, 16)
    np.testing.assert_allclose(back(ids).numpy(), model(ids).numpy(), rtol=1e-5, atol=1e-5)
    again = tmp_path / "again"
    save_gpt2(back, again)
    a, b = tt.load(again / "model.safetensors"), sd
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_config_inferred_from_shapes_without_config_json(tmp_path, monkeypatch):
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context_length=8, emb_dim=128, n_layers=3, n_heads=2, tie_weights=True))
    folder = _hf_files(tmp_path / "hf", model, with_config=False)
    with pytest.raises(ValueError, match="number of attention heads is unknown"):     # never guessed
        load_gpt2(folder)
    from gpt.weights import gpt2 as pretrained
    monkeypatch.setitem(pretrained._PUBLISHED, (128, 3), 2)     # as if OpenAI had published this size
    loaded = load_gpt2(folder)
    c = loaded.cfg
    assert (c.vocab_size, c.context_length, c.emb_dim, c.n_layers, c.n_heads) == (50, 8, 128, 3, 2)
    ids = np.arange(8).reshape(1, 8)
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy(), rtol=1e-5, atol=1e-6)


def test_weights_are_memory_mapped_not_copied(tmp_path):
    model = small_model()
    loaded = load_gpt2(_hf_files(tmp_path / "hf", model))
    w = loaded.blocks[0].attn.qkv.weight.data
    base = w
    while getattr(base, "base", None) is not None and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, np.memmap)
    # copy-on-write: training may change the weights without touching the file
    before = (tmp_path / "hf" / "model.safetensors").read_bytes()
    loaded.blocks[0].attn.qkv.weight.data += 1
    assert (tmp_path / "hf" / "model.safetensors").read_bytes() == before


def test_missing_and_misshaped_tensors_are_named(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match=r"h\.1\.mlp\.c_fc\.weight is missing"):
        load_gpt2(_hf_files(tmp_path / "a", model, drop=["h.1.mlp.c_fc.weight"]))
    bad = {"h.0.attn.c_proj.weight": np.zeros((32, 31), np.float32)}
    with pytest.raises(ValueError, match=r"h\.0\.attn\.c_proj\.weight has shape \(32, 31\), expected \(32, 32\)"):
        load_gpt2(_hf_files(tmp_path / "b", model, extra=bad))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_gpt2(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_gpt2(tmp_path / "nowhere")


def test_gpt2_tokenizer_with_gpt2_shapes(shared_data):
    import bpe
    tok = bpe.gpt2(shared_data / "gpt2" / "encoder.json", shared_data / "gpt2" / "vocab.bpe")
    assert tok.encode("Hello, I am") == [15496, 11, 314, 716]
    assert tok.n_vocab == GPTConfig.preset("gpt2-small").vocab_size


def _as_bf16_file(src, dst):
    """Rewrite a float32 safetensors file with every float32 tensor stored as BF16 (the top 16 bits), the way
    many published checkpoints are; returns {name: the float32 values the BF16 file holds}."""
    import struct
    header = {}
    blobs, offset, expected = [], 0, {}
    for name, array in tt.load(src).items():
        if array.dtype == np.float32:
            top = (np.ascontiguousarray(array).view(np.uint32) >> 16).astype("<u2")
            expected[name] = (top.astype(np.uint32) << 16).view(np.float32)
            blob, kind = top.tobytes(), "BF16"
        else:
            blob, kind = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(), "F32"
            expected[name] = array
        header[name] = {"dtype": kind, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header).encode()
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
    return expected


def test_a_bf16_checkpoint_loads_as_float32(tmp_path):
    model = _randomise(small_model())
    folder = _hf_files(tmp_path / "hf", model)
    (tmp_path / "bf16").mkdir()
    (tmp_path / "bf16" / "config.json").write_text((folder / "config.json").read_text())
    expected = _as_bf16_file(folder / "model.safetensors", tmp_path / "bf16" / "model.safetensors")
    loaded = load_gpt2(tmp_path / "bf16")
    state = gpt2_state(loaded, prefix="")
    assert state["wte.weight"].dtype == np.float32
    for name in ("wte.weight", "h.1.mlp.c_fc.weight", "ln_f.bias"):
        np.testing.assert_array_equal(state[name], expected[name], err_msg=name)
    ids = np.random.default_rng(0).integers(0, 97, (2, 16))
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy(), rtol=0.1, atol=0.1)  # bf16 keeps ~3 digits


# ----- every config.json field honoured or refused; sizes checked before building (issue 15, items 4, 15) -----
def _with_config(folder, **fields):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(fields)
    path.write_text(json.dumps(config))
    return folder


def test_layer_norm_epsilon_is_honoured(tmp_path, monkeypatch):
    import functools

    import test_gpt_model
    model = _randomise(small_model())
    folder = _with_config(_hf_files(tmp_path / "hf", model), layer_norm_epsilon=0.5)
    loaded = load_gpt2(folder)
    monkeypatch.setattr(test_gpt_model, "_ln", functools.partial(test_gpt_model._ln, eps=0.5))
    ids = np.random.default_rng(0).integers(0, 97, (2, 16))
    ref = reference_forward(tt.load(folder / "model.safetensors"), ids, n_heads=4)
    np.testing.assert_allclose(loaded(ids).numpy(), ref, rtol=2e-4, atol=2e-4)
    assert loaded.cfg.norm_eps == 0.5
    save_gpt2(loaded, tmp_path / "back")                                     # and it is written back
    assert json.loads((tmp_path / "back" / "config.json").read_text())["layer_norm_epsilon"] == 0.5


@pytest.mark.parametrize("field,value", [("scale_attn_weights", False), ("scale_attn_by_inverse_layer_idx", True),
                                         ("activation_function", "relu"), ("add_cross_attention", True),
                                         ("n_inner", 100), ("model_type", "gpt_neo"), ("rotary_dim", 64),
                                         ("layer_norm_epsilon", "small"), ("tie_word_embeddings", False)])
def test_config_fields_that_change_the_computation_are_refused_by_name(tmp_path, field, value):
    no_head = field == "tie_word_embeddings"                # untied, but the file has no lm_head.weight
    folder = _with_config(_hf_files(tmp_path / "hf", small_model(tie_weights=True), tied_head=not no_head),
                          **{field: value})
    with pytest.raises(ValueError, match=field if field != "tie_word_embeddings" else "lm_head.weight is missing"):
        load_gpt2(folder)


def test_harmless_config_fields_are_accepted(tmp_path):
    hub = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
           "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
           "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 16, "resid_pdrop": 0.1,
           "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
           "summary_type": "cls_index", "summary_use_proj": True, "scale_attn_weights": True, "n_inner": None,
           "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}}, "use_cache": True,
           "reorder_and_upcast_attn": False, "scale_attn_by_inverse_layer_idx": False, "torch_dtype": "float32",
           "transformers_version": "4.40.0", "tie_word_embeddings": True}     # openai-community/gpt2's, and more
    model = _randomise(small_model(tie_weights=True))
    loaded = load_gpt2(_with_config(_hf_files(tmp_path / "hf", model), **hub))
    ids = np.arange(16).reshape(1, 16)
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy(), rtol=1e-5, atol=1e-5)


def _never_built(monkeypatch):
    import gpt.models.gpt2
    built = []
    real = gpt.models.gpt2.GPT.__init__
    monkeypatch.setattr(gpt.models.gpt2.GPT, "__init__", lambda self, *a, **k: built.append(1) or real(self, *a, **k))
    return built


def test_sizes_are_checked_against_the_tensors_before_building(tmp_path, monkeypatch):
    folder = _hf_files(tmp_path / "hf", small_model())
    built = _never_built(monkeypatch)
    with pytest.raises(ValueError, match="n_layers is 1,000,000, more than"):
        load_gpt2(_with_config(folder, n_layer=1_000_000))
    with pytest.raises(ValueError, match=r"h\.2\.ln_1\.weight is missing"):
        load_gpt2(_with_config(folder, n_layer=40))
    assert not built


def test_a_stray_block_tensor_is_refused_before_building(tmp_path, monkeypatch):
    stray = {"h.99999999.ln_1.weight": np.ones(32, np.float32)}
    for config in (True, False):
        folder = _hf_files(tmp_path / f"hf{config}", small_model(), with_config=config, extra=stray)
        built = _never_built(monkeypatch)
        with pytest.raises(ValueError, match=r"unexpected tensor h\.99999999\.ln_1\.weight"):
            load_gpt2(folder)
        assert not built


@pytest.mark.parametrize("kind", ["fifo", "dev zero", "too big"])
def test_config_json_must_be_a_small_regular_file(tmp_path, monkeypatch, kind):
    import os
    folder = _hf_files(tmp_path / "hf", small_model())
    if kind == "fifo":
        (folder / "config.json").unlink()
        os.mkfifo(folder / "config.json")
    elif kind == "dev zero":
        (folder / "config.json").unlink()
        os.symlink("/dev/zero", folder / "config.json")
    else:
        from gpt import files
        monkeypatch.setattr(files, "MAX_JSON", 10)
    with pytest.raises(ValueError, match="config.json"):
        load_gpt2(folder)
