"""The GPT-2 loader is as strict as the Llama/Qwen3 one (issue 26, 10, and the loaders' Low items).

It used to cast integer and boolean weights silently, load ``tie_word_embeddings: true`` with a different
``lm_head`` untied, take the later of ``transformer.ln_f.weight`` and ``ln_f.weight``, and guess the head
count when config.json was missing; every loader widened F64 above float32's range to inf in silence.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import gpt
import tinytensor as tt
from gpt import GPT, GPTConfig, load_gpt2
from gpt.weights import gpt2 as pretrained
from gpt.weights.gpt2 import gpt2_state

FAMILIES = Path(__file__).resolve().parents[1] / "fixtures" / "families"


def gpt2_folder(folder, tie=False, config=True, change=None):
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context_length=8, emb_dim=32, n_layers=2, n_heads=4, tie_weights=tie))
    sd = gpt2_state(model)
    if change:
        change(sd)
    folder.mkdir(parents=True, exist_ok=True)
    tt.save(sd, folder / "model.safetensors", metadata={"format": "pt"})
    if config:
        c = {"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 8, "vocab_size": 50}
        if isinstance(config, dict):
            c.update(config)
        (folder / "config.json").write_text(json.dumps(c))
    return folder


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.uint8])
def test_gpt2_refuses_integer_or_boolean_weights(tmp_path, dtype):
    def to_int(sd):
        sd["transformer.h.0.mlp.c_fc.bias"] = (sd["transformer.h.0.mlp.c_fc.bias"] * 100).astype(dtype)
    with pytest.raises(ValueError, match="c_fc.bias is .*floating point"):
        load_gpt2(gpt2_folder(tmp_path, change=to_int))


def test_gpt2_refuses_a_tied_config_with_a_different_head(tmp_path):
    def head(sd):
        sd["lm_head.weight"] = sd["transformer.wte.weight"] + 1.0
    with pytest.raises(ValueError, match="ties the output head.*differs"):
        load_gpt2(gpt2_folder(tmp_path, config={"tie_word_embeddings": True}, change=head))


def test_gpt2_refuses_a_tensor_given_twice_under_both_names(tmp_path):
    def twice(sd):
        sd["ln_f.weight"] = sd["transformer.ln_f.weight"] * 2.0
    with pytest.raises(ValueError, match="both transformer.ln_f.weight and ln_f.weight"):
        load_gpt2(gpt2_folder(tmp_path, change=twice))


def test_gpt2_without_config_does_not_guess_the_head_count(tmp_path, monkeypatch):
    folder = gpt2_folder(tmp_path, config=False)
    with pytest.raises(ValueError, match="config.json"):
        load_gpt2(folder)
    monkeypatch.setitem(pretrained._PUBLISHED, (32, 2), 4)          # a published size: its head count is known
    assert load_gpt2(folder).cfg.n_heads == 4


@pytest.mark.parametrize("loader", ["gpt2", "qwen3"])
def test_f64_weights_beyond_float32_are_refused(tmp_path, loader):
    if loader == "gpt2":
        def huge(sd):
            sd["transformer.h.0.mlp.c_fc.bias"] = np.full(128, 1e300)
        load = lambda: load_gpt2(gpt2_folder(tmp_path, change=huge))
    else:
        folder = tmp_path / "q"
        shutil.copytree(FAMILIES / "qwen3_tied", folder)
        sd = tt.load(folder / "model.safetensors")
        sd = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in sd.items()}
        sd["model.norm.weight"] = np.full(sd["model.norm.weight"].shape, 1e300)
        tt.save(sd, folder / "model.safetensors", metadata={"format": "pt"})
        load = lambda: gpt.load_hf(folder)
    with pytest.raises(ValueError, match="float32"):
        load()


def test_a_tied_head_of_the_wrong_shape_is_said_so(tmp_path):
    folder = tmp_path / "q"
    shutil.copytree(FAMILIES / "qwen3_tied", folder)
    sd = tt.load(folder / "model.safetensors")
    sd = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in sd.items()}
    emb = sd["model.embed_tokens.weight"]
    sd["lm_head.weight"] = np.zeros((emb.shape[0] - 1, emb.shape[1]), emb.dtype)
    tt.save(sd, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="lm_head.weight has shape"):
        gpt.load_hf(folder)
