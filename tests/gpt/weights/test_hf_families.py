"""Hugging Face folders of Llama 3 and Qwen3: the fixtures made by `transformers`
(tests/fixtures/make_family_fixtures.py) give the same logits and the same greedy text here; export and load round trips; every config field or file that
would compute something else is refused in one line; sample --hf and the chat layouts."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import gpt
import tinytensor as tt
from gpt.weights import hf as hf_folder
from gpt.generation.chat_format import chat_format

from gpt_helpers import run_cli, small_model

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FAMILIES = FIXTURES / "families"
NAMES = ["llama_untied", "llama_tied_bf16", "qwen3_tied", "qwen3_sharded"]
TOKENIZER = {"llama": FIXTURES / "tokenizers" / "llama3" / "tokenizer.json",
             "qwen3": FIXTURES / "tokenizers" / "qwen3" / "tokenizer.json"}


def reference(name):
    return tt.load(FAMILIES / name / "reference.safetensors")


def copy(name, tmp_path, config=None):
    """The fixture in a folder of its own (with config.json changed by ``config(dict)`` when given)."""
    folder = tmp_path / name
    shutil.copytree(FAMILIES / name, folder)
    if config is not None:
        c = json.loads((folder / "config.json").read_text())
        config(c)
        (folder / "config.json").write_text(json.dumps(c))
    return folder


@pytest.mark.parametrize("name", NAMES)
def test_logits_and_greedy_text_are_the_reference_librarys(name):
    ref = reference(name)
    model = gpt.load_hf(FAMILIES / name)
    assert type(model) is (gpt.Qwen3 if name.startswith("qwen3") else gpt.Llama)
    got = model(ref["ids"]).numpy()
    np.testing.assert_allclose(got, ref["logits"], rtol=1e-4, atol=1e-4 * np.abs(ref["logits"]).max())
    new = ref["greedy"].shape[1] - ref["prompt"].shape[1]
    for use_cache in (True, False):
        out = gpt.generate(model, ref["prompt"], max_new_tokens=new, use_cache=use_cache)
        np.testing.assert_array_equal(out, ref["greedy"])


def test_what_each_fixture_exercises():
    cfg = gpt.load_hf(FAMILIES / "llama_untied").cfg
    assert cfg.rope_scaling == {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_context_length": 256}
    assert (cfg.n_heads, cfg.n_kv_heads, cfg.tie_weights) == (4, 2, False)
    assert gpt.load_hf(FAMILIES / "llama_tied_bf16").cfg.tie_weights
    header, _ = tt.serialize.read_header(FAMILIES / "llama_tied_bf16" / "model.safetensors")
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"BF16"}
    qwen = gpt.load_hf(FAMILIES / "qwen3_tied").cfg
    assert qwen.qk_norm and qwen.head_dim * qwen.n_heads != qwen.emb_dim
    assert (FAMILIES / "qwen3_sharded" / "model.safetensors.index.json").is_file()
    assert all(f.stat().st_size < 400_000 for f in FAMILIES.rglob("*") if f.is_file())


def test_transformers_4_config_layout_gives_the_same_model(tmp_path):
    """rope_theta + rope_scaling (transformers 4, the published files) instead of rope_parameters (5)."""
    def older(c):
        params = c.pop("rope_parameters")
        c["rope_theta"] = params.pop("rope_theta")
        c["rope_scaling"] = params
    folder = copy("llama_untied", tmp_path, older)
    ref = reference("llama_untied")
    np.testing.assert_allclose(gpt.load_hf(folder)(ref["ids"]).numpy(), ref["logits"], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", ["llama_untied", "qwen3_tied"])
def test_save_hf_then_load_hf_round_trip(name, tmp_path):
    model = gpt.load_hf(FAMILIES / name)
    gpt.save_hf(model, tmp_path / "out")
    c = json.loads((tmp_path / "out" / "config.json").read_text())
    assert c["model_type"] == model.cfg.ARCH and c["num_key_value_heads"] == model.cfg.n_kv_heads
    again = gpt.load_hf(tmp_path / "out")
    assert again.cfg == model.cfg
    ids = reference(name)["ids"]
    np.testing.assert_array_equal(again(ids).numpy(), model(ids).numpy())
    original = tt.load(FAMILIES / name / "model.safetensors")
    written = tt.load(tmp_path / "out" / "model.safetensors")
    assert set(written) == set(original)
    for k in original:
        np.testing.assert_array_equal(written[k], original[k])


def test_gpt2_folders_go_to_the_gpt2_loader(tmp_path):
    model = small_model()
    gpt.save_hf(model, tmp_path / "g")
    loaded = gpt.load_hf(tmp_path / "g")
    assert type(loaded) is gpt.GPT
    ids = np.array([[1, 2, 3]])
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy(), rtol=1e-5, atol=1e-5)


# ----- what is refused, each in one line naming it -----

REFUSED = [
    (lambda c: c.update(hidden_act="gelu"), "hidden_act"),
    (lambda c: c.update(attention_bias=True), "attention_bias"),
    (lambda c: c.update(mlp_bias=True), "mlp_bias"),
    (lambda c: c.update(rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}), "yarn"),
    (lambda c: c.update(rope_parameters={"rope_type": "llama3", "factor": 4.0, "rope_theta": 1e4}), "without"),
    (lambda c: c["rope_parameters"].update(partial_rotary_factor=0.5), "partial_rotary_factor"),
    (lambda c: c.update(quantization_config={"quant_method": "gptq"}), "quantization_config"),
    (lambda c: c.update(logits_soft_cap=30.0), "logits_soft_cap"),
    (lambda c: c.update(model_type="mistral"), "mistral"),
    (lambda c: c.pop("hidden_size"), "hidden_size"),
    (lambda c: c.update(intermediate_size=96),
     r"mlp.gate_proj.weight has shape \(64, 32\), config.json asks for \(96, 32\)"),
    (lambda c: c.update(num_hidden_layers=3), "model.layers.2.input_layernorm.weight is missing"),
    (lambda c: c.update(num_hidden_layers=1), "unexpected tensor model.layers.1"),
    (lambda c: c.update(num_key_value_heads=3), "multiple of n_kv_heads"),
    (lambda c: c.update(tie_word_embeddings=True), "lm_head.weight differs"),
    (lambda c: c.update(vocab_size=2 ** 24, hidden_size=2 ** 16), "embed_tokens.weight has shape"),
]


@pytest.mark.parametrize("change,message", REFUSED, ids=[m[:24] for _, m in REFUSED])
def test_config_fields_that_would_change_the_logits_are_refused(change, message, tmp_path):
    folder = copy("llama_untied", tmp_path, change)
    with pytest.raises(ValueError, match=message) as e:
        gpt.load_hf(folder)
    assert "\n" not in str(e.value)


QWEN_REFUSED = [
    (lambda c: c.update(use_sliding_window=True, sliding_window=4), "use_sliding_window"),
    (lambda c: c.update(layer_types=["full_attention", "sliding_attention"]), "sliding_attention"),
    (lambda c: c.update(model_type="llama"), r"unexpected tensor model.layers.0.self_attn.[qk]_norm"),
]


@pytest.mark.parametrize("change,message", QWEN_REFUSED, ids=["use_sliding_window", "layer_types", "as_llama"])
def test_qwen3_sliding_windows_are_refused_and_unused_window_settings_pass(change, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        gpt.load_hf(copy("qwen3_tied", tmp_path, change))
    harmless = copy("qwen3_sharded", tmp_path, lambda c: c.update(sliding_window=4096, max_window_layers=28))
    assert gpt.load_hf(harmless).cfg.qk_norm


def _index(folder):
    return json.loads((folder / "model.safetensors.index.json").read_text())


def _write_index(folder, spec):
    (folder / "model.safetensors.index.json").write_text(json.dumps(spec))


def test_shard_names_from_the_index_are_untrusted(tmp_path):
    folder = copy("qwen3_sharded", tmp_path)
    spec = _index(folder)
    outside = tmp_path / "outside.safetensors"
    shutil.copy(folder / spec["weight_map"]["model.norm.weight"], outside)
    for bad in ("../outside.safetensors", str(outside), "sub/x.safetensors"):
        changed = dict(spec, weight_map={**spec["weight_map"], "model.norm.weight": bad})
        _write_index(folder, changed)
        with pytest.raises(ValueError, match="not a plain file name"):
            gpt.load_hf(folder)
    os.symlink(tmp_path / "nowhere.safetensors", folder / "link.safetensors")      # followed, as config.json is
    _write_index(folder, dict(spec, weight_map={**spec["weight_map"], "model.norm.weight": "link.safetensors"}))
    with pytest.raises(FileNotFoundError, match="no such file"):
        gpt.load_hf(folder)
    shard = spec["weight_map"]["model.norm.weight"]
    fewer = {k: v for k, v in spec["weight_map"].items() if k != "model.norm.weight"}
    _write_index(folder, dict(spec, weight_map=fewer))
    with pytest.raises(ValueError, match=f"{shard} does not match .*holds model.norm.weight"):
        gpt.load_hf(folder)
    moved = {**spec["weight_map"], "model.norm.weight": next(v for v in spec["weight_map"].values() if v != shard)}
    _write_index(folder, dict(spec, weight_map=moved))
    with pytest.raises(ValueError, match="lacks model.norm.weight"):
        gpt.load_hf(folder)
    (folder / "model.safetensors.index.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="not valid JSON"):
        gpt.load_hf(folder)
    os.remove(folder / "model.safetensors.index.json")
    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor"):
        gpt.load_hf(folder)


def test_a_tied_head_stored_too_loads_when_it_equals_the_embedding(tmp_path):
    folder = copy("qwen3_tied", tmp_path)
    sd = tt.load(folder / "model.safetensors")
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    tt.save(sd, folder / "model.safetensors")
    ref = reference("qwen3_tied")
    np.testing.assert_allclose(gpt.load_hf(folder)(ref["ids"]).numpy(), ref["logits"], rtol=1e-4, atol=1e-3)
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"] + 1
    tt.save(sd, folder / "model.safetensors")
    with pytest.raises(ValueError, match="differs from model.embed_tokens.weight"):
        gpt.load_hf(folder)


def test_save_hf_refuses_a_classifier(tmp_path):
    from gpt.finetune import classify
    model = gpt.load_hf(FAMILIES / "qwen3_tied")
    classify.replace_head(model, 2)
    with pytest.raises(ValueError, match="classifier"):
        gpt.save_hf(model, tmp_path / "c")


# ----- the folder's tokenizer, stop ids, sample --hf, chat layouts -----

def with_tokenizer(name, tmp_path):
    """The fixture with its family's tokenizer.json beside it, as a downloaded folder has."""
    folder = copy(name, tmp_path)
    shutil.copy(TOKENIZER["qwen3" if name.startswith("qwen3") else "llama"], folder / "tokenizer.json")
    return folder


def test_load_folder_prefix_and_stop_ids(tmp_path):
    folder = with_tokenizer("llama_untied", tmp_path)
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [705, 709]}))
    model, tok, prefix, stops = hf_folder.load_folder(str(folder))
    assert prefix == [704] and stops == [705, 709]              # <|begin_of_text|>; <|end_of_text|>, <|eot_id|>
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 99999}))
    with pytest.raises(ValueError, match="not a token id"):
        hf_folder.load_folder(str(folder))
    qwen = with_tokenizer("qwen3_tied", tmp_path)
    _, tok, prefix, stops = hf_folder.load_folder(str(qwen))
    assert prefix == [] and stops == [tok.special_tokens["<|endoftext|>"]]


def test_sample_hf_prints_the_greedy_continuation(tmp_path):
    folder = with_tokenizer("llama_untied", tmp_path)
    model = gpt.load_hf(folder)
    tok = hf_folder.load_tokenizer(str(folder))
    prompt = tok.template[0] + tok.encode("Hello world")
    want = tok.decode(gpt.generate(model, [prompt], max_new_tokens=8)[0].tolist()[1:])
    r = run_cli("sample", "--hf", folder, "--prompt", "Hello world", "--max-new-tokens", 8, "--temperature", 0,
                "--no-eos-stop")
    assert r.returncode == 0, r.stderr
    assert r.stdout == want + "\n"
    r = run_cli("sample", "--hf", tmp_path / "nowhere")
    assert r.returncode == 2 and r.stderr.startswith("error: --hf") and r.stderr.count("\n") == 1


def test_chat_layouts_of_llama3_and_chatml(tmp_path):
    import datetime
    llama = with_tokenizer("llama_untied", tmp_path)
    tok = hf_folder.load_tokenizer(str(llama))
    with pytest.raises(ValueError, match="no chat template"):
        chat_format(str(llama), tok)
    (llama / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": "{{ bos_token }}...<|start_header_id|>...<|eot_id|>...Cutting Knowledge Date..."}))
    fmt = chat_format(str(llama), tok)
    messages = [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi\n"}]
    text = fmt.render(messages, today=datetime.date(2024, 7, 26))
    assert text == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                    "December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user"
                    "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert fmt.stop_ids == [709] and fmt.encode(messages)[:2] == [704, 707]
    qwen = with_tokenizer("qwen3_tied", tmp_path)
    qtok = hf_folder.load_tokenizer(str(qwen))
    (qwen / "chat_template.jinja").write_text("<|im_start|>...<|im_end|>... enable_thinking ...")
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "<think>x</think>\n\nb"},
               {"role": "user", "content": "c"}]
    assert chat_format(str(qwen), qtok).render(history) == \
        "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n" \
        "<|im_start|>assistant\n"
    assert chat_format(str(qwen), qtok, thinking=False).render(history).endswith("assistant\n<think>\n\n</think>\n\n")
    (qwen / "chat_template.jinja").write_text("{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}")
    with pytest.raises(ValueError, match="neither Llama 3's nor ChatML"):
        chat_format(str(qwen), qtok)


def test_reply_answers_until_the_end_of_turn(tmp_path):
    from gpt.generation.chat_format import reply
    folder = with_tokenizer("qwen3_tied", tmp_path)
    (folder / "chat_template.jinja").write_text("<|im_start|>...<|im_end|>")
    model, tok, _, _ = hf_folder.load_folder(str(folder))
    fmt = chat_format(str(folder), tok)
    messages = [{"role": "user", "content": "Hello"}]
    free = gpt.generate(model, [fmt.encode(messages)], max_new_tokens=6)[0, len(fmt.encode(messages)):].tolist()
    pieces = []
    answer = reply(model, fmt, messages, max_new_tokens=6, on_text=pieces.append)
    end = free.index(fmt.stop_ids[0]) if fmt.stop_ids[0] in free else len(free)
    assert answer == tok.decode(free[:end]) and "".join(pieces) == answer
    fmt.stop_ids = [free[0]]                                       # an answer that ends at once is empty
    assert reply(model, fmt, messages, max_new_tokens=6) == ""
    with pytest.raises(ValueError, match="start a new one"):
        reply(model, fmt, [{"role": "user", "content": "word " * 600}])
