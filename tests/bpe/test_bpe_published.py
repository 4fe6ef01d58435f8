"""Other libraries' tokenizer files (issue 18): Hugging Face's tokenizer.json (Llama 3 and Qwen3 style, GPT-2's own)
and tiktoken's rank files, giving exactly the ids those libraries give.

The fixtures under tests/fixtures/tokenizers/ and the ids in cases.json were made with `tokenizers`,
`tiktoken` and `transformers` by tests/fixtures/make_tokenizer_fixtures.py (its docstring has the command);
this suite never imports those libraries.
"""
import copy
import json
import os
from pathlib import Path

import pytest

import bpe
from bpe import patterns
from bpe.__main__ import main
from bpe.show import merge_steps

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tokenizers"
CASES = json.loads((FIXTURES / "cases.json").read_text(encoding="utf-8"))
LLAMA_JSON, QWEN_JSON = FIXTURES / "llama3" / "tokenizer.json", FIXTURES / "qwen3" / "tokenizer.json"
LLAMA_RANKS = FIXTURES / "llama3" / "tokenizer.model"


def llama_tiktoken():
    return bpe.from_tiktoken(LLAMA_RANKS, pattern=bpe.LLAMA3_PATTERN, special_tokens=CASES["llama3_special_tokens"])


@pytest.mark.parametrize("name, path", [("llama3_hf", LLAMA_JSON), ("qwen3_hf", QWEN_JSON)])
def test_tokenizer_json_gives_the_ids_of_tokenizers(name, path):
    tok = bpe.from_hf(path)
    prefix, suffix = tok.template
    for case in CASES[name]:
        ids = tok.encode(case["text"], allowed_special="all")
        assert ids == case["ids"], case["text"]
        assert prefix + ids + suffix == case["ids_with_template"], case["text"]
        assert tok.decode(ids) == case["decoded"], case["text"]


def test_tiktoken_rank_file_gives_the_ids_of_tiktoken():
    tok = llama_tiktoken()
    for case in CASES["llama3_tiktoken"]:
        ids = tok.encode(case["text"], allowed_special="all")
        assert ids == case["ids"], case["text"]
        assert tok.decode(ids) == case["decoded"]
    # specials as a list of names are numbered after the ranks, as Llama 3 numbers them
    listed = bpe.from_tiktoken(LLAMA_RANKS, bpe.LLAMA3_PATTERN, list(CASES["llama3_special_tokens"]))
    assert listed.special_tokens == tok.special_tokens


def test_the_parts_that_make_the_fixtures_differ_are_honoured():
    llama, qwen = bpe.from_hf(LLAMA_JSON), bpe.from_hf(QWEN_JSON)
    assert llama.ignore_merges and not qwen.ignore_merges
    assert qwen.normalizer == "NFC" and llama.normalizer is None
    assert llama.template == ([CASES["llama3_special_tokens"]["<|begin_of_text|>"]], [])
    # a word the vocabulary holds whole but no merge builds: one token only thanks to ignore_merges
    assert len(llama.encode(" xyzzy")) == 1
    # NFC: the decomposed and the composed spelling are one text
    assert qwen.encode("Cafe\u0301") == qwen.encode("Caf\u00e9")
    # Qwen splits digits one by one, Llama 3 in groups of three
    assert [qwen.decode([i]) for i in qwen.encode("12345")] == list("12345")
    assert all(len(llama.decode([i])) <= 3 for i in llama.encode("12345678"))


def test_special_and_ordinary_added_tokens():
    qwen = bpe.from_hf(QWEN_JSON)
    with pytest.raises(ValueError, match="special token '<\\|im_start\\|>'"):
        qwen.encode("hi <|im_start|>")                  # special: refused unless allowed, as tiktoken does
    think = qwen.special_tokens["<think>"]
    assert think in qwen.encode("a<think>b")            # special=false in the file: ordinary text holds it
    assert think in qwen.encode_ordinary("a<think>b") and "<think>" in qwen.ordinary_added
    assert qwen.encode("x<|im_end|>", disallowed_special=()) == qwen.encode_ordinary("x<|im_end|>")


def test_merges_written_as_strings_give_the_same_ids(tmp_path):
    spec = json.loads(QWEN_JSON.read_text(encoding="utf-8"))
    spec["model"]["merges"] = [" ".join(pair) for pair in spec["model"]["merges"]]   # the older "a b" form
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    tok = bpe.from_hf(tmp_path)                          # a folder holding tokenizer.json works too
    for case in CASES["qwen3_hf"]:
        assert tok.encode(case["text"], allowed_special="all") == case["ids"]


def test_gpt2_tokenizer_json_gives_tiktokens_ids(shared_data, tmp_path):
    # the skeleton is what `tokenizers` writes for GPT-2; vocab and merges come from GPT-2's own files
    spec = json.loads((FIXTURES / "gpt2_skeleton.json").read_text(encoding="utf-8"))
    spec["model"]["vocab"] = json.loads((shared_data / "gpt2" / "encoder.json").read_text(encoding="utf-8"))
    lines = (shared_data / "gpt2" / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:]
    spec["model"]["merges"] = [line.split(" ") for line in lines if line]
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    tok = bpe.from_hf(path)
    assert tok.eot_id == 50256
    reference = (shared_data / "gpt2_reference.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in reference.splitlines()]
    for row in rows:
        assert tok.encode(row["text"], allowed_special="all") == row["ids"], row["text"][:40]


def test_merge_steps_end_where_encode_ends():
    for tok in (bpe.from_hf(LLAMA_JSON), bpe.from_hf(QWEN_JSON), llama_tiktoken()):
        text = "Hello wörld, xyzzy 12345 don't"
        last = [tok.token_bytes(i) for i in tok.encode(text)]
        assert [t for _, states in merge_steps(tok, text) for t in states[-1]] == last


def test_cli_encodes_with_a_tokenizer_json(capsys):
    assert main(["encode", "--hf", str(LLAMA_JSON), "Hello, world!"]) == 0
    ids = [int(w) for w in capsys.readouterr().out.split()]
    assert ids == next(c["ids"] for c in CASES["llama3_hf"] if c["text"] == "Hello, world!")


@pytest.mark.parametrize("name", ["llama3_hf", "qwen3_hf", "llama3_tiktoken"])
def test_save_and_load_keep_every_id(tmp_path, name):
    tok = llama_tiktoken() if name == "llama3_tiktoken" else bpe.from_hf(LLAMA_JSON if "llama" in name else QWEN_JSON)
    tok.save(tmp_path / "t.bpe")
    assert (tmp_path / "t.bpe").read_text(encoding="utf-8").startswith("bpe-tokenizer 2\n")
    loaded = bpe.Tokenizer.load(tmp_path / "t.bpe")
    for attr in ("pattern", "merges", "special_tokens", "byte_ids", "normalizer", "ignore_merges", "ordinary_added",
                 "template", "n_vocab", "vocab"):
        assert getattr(loaded, attr) == getattr(tok, attr), attr
    for case in CASES[name]:
        assert loaded.encode(case["text"], allowed_special="all") == case["ids"], case["text"]
    assert os.listdir(tmp_path) == ["t.bpe"]


def _first_byte_line(lines):
    return next(x for x in lines[7:] if len(x.split(" ")[-1]) == 2)


@pytest.mark.parametrize("edit, message", [
    (lambda l: l[:2] + ["chunks gaps"] + l[3:], "line 3: expected 'chunks'"),
    (lambda l: l[:3] + ["normalizer Lowercase"] + l[4:], "line 4: expected 'normalizer'"),
    (lambda l: l[:5] + ["rank-by chance"] + l[6:], "line 6"),
    (lambda l: l[:7] + ["0 2"] + l[8:], "line 8: expected an id and the token's bytes in hex"),
    (lambda l: l[:7] + ["0 2 1"] + l[8:], "line 8"),
    (lambda l: l[:7] + ["\u0660 21"] + l[8:], "line 8"),
    (lambda l: l[:8] + [l[7]] + l[9:], "line 9: id .* is given twice"),
    (lambda l: [x if not x.startswith("template") else "template 1 2" for x in l], "expected 'template"),
    (lambda l: l[:-1] + ["1 2"], "expected three ids"),
    (lambda l: l[:-1] + ["1 2 3"], "merge .* joins"),
    (lambda l: l[:6] + [f"tokens {int(l[6].split()[1]) - 1}"]
     + [x for x in l[7:] if len(x.split(" ")[-1]) != 2 or x != _first_byte_line(l)], "no token for 1 of the 256 bytes"),
])
def test_a_damaged_version_2_file_says_what_is_wrong(tmp_path, edit, message):
    bpe.from_hf(QWEN_JSON).save(tmp_path / "t.bpe")
    lines = (tmp_path / "t.bpe").read_text(encoding="utf-8").split("\n")[:-1]
    (tmp_path / "t.bpe").write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        bpe.Tokenizer.load(tmp_path / "t.bpe")
    assert "t.bpe" in str(info.value)


# ---- what is not implemented is refused, in one line naming the field ------------------------------------

def _set(path, value):
    def edit(spec):
        *head, last = path
        node = spec
        for key in head:
            node = node[key]
        node[last] = value
    return edit


REFUSED = {
    "model type": (_set(["model", "type"], "WordPiece"), "model.type"),
    "dropout": (_set(["model", "dropout"], 0.1), "model.dropout"),
    "subword prefix": (_set(["model", "continuing_subword_prefix"], "##"), "model.continuing_subword_prefix"),
    "byte fallback": (_set(["model", "byte_fallback"], True), "model.byte_fallback"),
    "normalizer": (_set(["normalizer"], {"type": "Lowercase"}), "normalizer"),
    "two normalizers": (_set(["normalizer"], {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "NFKC"}]}),
                        "normalizer"),
    "metaspace": (_set(["pre_tokenizer"], {"type": "Metaspace", "replacement": "_"}), "pre_tokenizer"),
    "no pre-tokenizer": (_set(["pre_tokenizer"], None), "pre_tokenizer"),
    "prefix space": (_set(["pre_tokenizer", "pretokenizers", 1, "add_prefix_space"], True), "add_prefix_space"),
    "split removed": (_set(["pre_tokenizer", "pretokenizers", 0, "behavior"], "Removed"), "behavior"),
    "split inverted": (_set(["pre_tokenizer", "pretokenizers", 0, "invert"], True), "invert"),
    "split string": (_set(["pre_tokenizer", "pretokenizers", 0, "pattern"], {"String": " "}), "pattern"),
    "decoder": (_set(["decoder"], {"type": "WordPiece", "prefix": "##"}), "decoder"),
    "no decoder": (_set(["decoder"], None), "decoder"),
    "post processor": (_set(["post_processor"], {"type": "RobertaProcessing"}), "post_processor"),
    "truncation": (_set(["truncation"], {"max_length": 8}), "truncation"),
    "padding": (_set(["padding"], {"strategy": "BatchLongest"}), "padding"),
    "lstrip": (_set(["added_tokens", 0, "lstrip"], True), "lstrip"),
    "merge of unknown": (_set(["model", "merges", 0], ["Ġ", "nope"]), "model.merges\\[0\\]"),
    "malformed merge": (_set(["model", "merges", 0], "a b c"), "model.merges\\[0\\]"),
    "token outside the byte alphabet": (_set(["model", "vocab", "a b"], 5000), "byte-level alphabet"),
    "id not an int": (_set(["model", "vocab", "Ġ"], "1"), "model.vocab"),
    "not an object": (lambda spec: spec.clear(), "model"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_is_not_implemented_is_refused_naming_the_field(tmp_path, case):
    edit, field = REFUSED[case]
    spec = json.loads(LLAMA_JSON.read_text(encoding="utf-8"))
    edit(spec)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match=f"tokenizer.json: .*{field}") as info:
        bpe.from_hf(path)
    assert "\n" not in str(info.value)


def test_a_missing_byte_and_a_normalized_added_token_with_a_normalizer_are_refused(tmp_path):
    spec = json.loads(QWEN_JSON.read_text(encoding="utf-8"))
    for variant, message in ((lambda s: s["added_tokens"][0].update(normalized=True), "normalized true"),
                             (lambda s: s["model"]["vocab"].pop("Ā"), "no token for 1 of the 256 bytes")):
        changed = copy.deepcopy(spec)
        variant(changed)
        path = tmp_path / "tokenizer.json"
        path.write_text(json.dumps(changed), encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            bpe.from_hf(path)


@pytest.mark.parametrize("content, message", [
    (b"not json", "not a tokenizer.json"),
    (b"[" * 100_000 + b"]" * 100_000, "not a tokenizer.json"),
    (b"[1, 2]", "no 'model' object"),
    (b'{"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}, '
     b'"decoder": {"type": "ByteLevel"}}', "no token for 256 of the 256 bytes"),
])
def test_hostile_tokenizer_json_is_one_value_error(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"tokenizer.json: .*{message}"):
        bpe.from_hf(path)
    with pytest.raises(ValueError, match="not a regular file"):
        bpe.from_hf("/dev/zero")


def test_a_slow_split_regex_is_bounded_and_names_the_file(tmp_path, monkeypatch):
    spec = json.loads(LLAMA_JSON.read_text(encoding="utf-8"))
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"(?:(?:a|a)+)+b|\s|."
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setattr(patterns, "TIMEOUT", 0.2)
    monkeypatch.setattr(patterns, "TIMEOUT_PER_CHAR", 0.0)
    tok = bpe.from_hf(path)
    with pytest.raises(ValueError, match="tokenizer.json: the tokenizer's pattern took more than"):
        tok.encode("a" * 300)


@pytest.mark.parametrize("lines, message", [
    (["!!!! 0"], "line 1: .* is not base64"),
    (["IQ== \u0661"], "line 1: expected"),
    (["IQ== 0", "Ig== 0"], "line 2: .*appears twice"),
    (["IQ== 0"], "no token for 255 of the 256 bytes"),
    ([], "no tokens"),
])
def test_hostile_rank_files_are_one_value_error(tmp_path, lines, message):
    path = tmp_path / "tokenizer.model"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"tokenizer.model: .*{message}"):
        bpe.from_tiktoken(path, pattern=bpe.LLAMA3_PATTERN)
