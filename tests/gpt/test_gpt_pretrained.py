"""GPT-2 weights in Hugging Face's layout: load, save, round trips, clear errors, memory mapping."""
import json

import numpy as np
import pytest

import tinytensor as tt
from gpt import GPT, GPTConfig, load_gpt2, save_gpt2
from gpt.pretrained import gpt2_state

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


def test_config_inferred_from_shapes_without_config_json(tmp_path):
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context_length=8, emb_dim=128, n_layers=3, n_heads=2, tie_weights=True))
    loaded = load_gpt2(_hf_files(tmp_path / "hf", model, with_config=False))
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
