"""Instruction fine-tuning: the Alpaca prompt, the padding/masking collate, the synthetic tasks."""
import collections
import json

import numpy as np
import pytest

import bpe
import tinytensor as tt

from gpt.models.gpt2_config import GPTConfig
from gpt.finetune import data_instruct, instruct, make_data
from gpt.models.gpt2 import GPT

EOT = 9
IGN = -100


def test_alpaca_prompt_exact_text():
    e = {"instruction": "Add the two numbers.", "input": "2 + 3", "output": "5"}
    assert data_instruct.format_input(e) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nAdd the two numbers.\n\n### Input:\n2 + 3")
    assert data_instruct.format_prompt(e).endswith("2 + 3\n\n### Response:\n")
    no_input = data_instruct.format_input({"instruction": "Say hi.", "input": "", "output": "hi"})
    assert "### Input" not in no_input and no_input.endswith("### Instruction:\nSay hi.")


def test_collate_pads_with_eot_and_ignores_all_but_the_first():
    items = [([1, 2, 3], 2), ([4], 1), ([5, 6], 1)]
    inputs, targets = data_instruct.collate(items, EOT)
    np.testing.assert_array_equal(inputs, [[1, 2, 3], [4, EOT, EOT], [5, 6, EOT]])
    np.testing.assert_array_equal(targets, [[2, 3, EOT], [EOT, IGN, IGN], [6, EOT, IGN]])
    assert inputs.dtype == targets.dtype == np.int64


def test_collate_mask_prompt_keeps_the_first_response_token():
    # prompt [1, 2] then response [3, 4]: target position 1 predicts token 3, the first of the response
    # row 2 is all prompt: only its end-of-text is learned
    items = [([1, 2, 3, 4], 2), ([7, 8, 19], 3)]
    _, targets = data_instruct.collate(items, EOT, mask_prompt=True)
    np.testing.assert_array_equal(targets, [[IGN, 3, 4, EOT], [IGN, IGN, EOT, IGN]])
    _, unmasked = data_instruct.collate(items, EOT, mask_prompt=False)
    np.testing.assert_array_equal(unmasked, [[2, 3, 4, EOT], [8, 19, EOT, IGN]])


def test_collate_max_length_cuts_inputs_and_targets():
    inputs, targets = data_instruct.collate([([1, 2, 3, 4, 5], 1), ([6], 1)], EOT, max_length=3)
    np.testing.assert_array_equal(inputs, [[1, 2, 3], [6, EOT, EOT]])
    np.testing.assert_array_equal(targets, [[2, 3, 4], [EOT, IGN, IGN]])


def test_encode_entry_splits_prompt_and_response():
    tok = bpe.Tokenizer(bpe.GPT2_PATTERN, [], {"<|endoftext|>": 256})
    e = {"instruction": "Copy.", "input": "ab", "output": "ab"}
    ids, n_prompt = data_instruct.encode_entry(e, tok)
    assert ids[:n_prompt] == tok.encode(data_instruct.format_prompt(e))
    assert tok.decode(ids[n_prompt:]) == "ab"
    assert 256 not in ids                                   # collate adds the end-of-text


def test_load_entries_and_split(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"instruction": "i", "output": str(k)} for k in range(40)]), encoding="utf-8")
    entries = data_instruct.load_entries(path)
    assert entries[0]["input"] == ""
    train, val, test = data_instruct.split(entries, seed=0)
    assert (len(train), len(val), len(test)) == (34, 2, 4)
    assert sorted(e["output"] for e in train + val + test) == sorted(str(k) for k in range(40))
    path.write_text(json.dumps([{"input": "x"}]), encoding="utf-8")
    with pytest.raises(ValueError, match="entry 0"):
        data_instruct.load_entries(path)


def test_make_instruct_answers_are_right():
    entries = make_data.make_instruct(200, seed=0)
    assert collections.Counter(e["kind"] for e in entries) == {k: 50 for k in make_data.KINDS}
    assert len({(e["instruction"], e["input"]) for e in entries}) == 200
    for e in entries:
        k, x, y = e["kind"], e["input"], e["output"]
        if k == "add":
            a, b = x.split("+")
            assert 10 <= int(a) <= 99 and 1 <= int(b) <= 9 and y == str(int(a) + int(b))
        elif k == "reverse":
            items = x.split(",")
            assert 2 <= len(items) <= 4 and len(set(items)) == len(items) and y.split(",") == items[::-1]
        elif k == "field":
            field = e["instruction"].split('"')[1]
            record = dict(p.split("=") for p in x.split(","))
            assert len(record) == 3 and field in record and record[field] == y
        else:
            word = e["instruction"].split('"')[1]
            assert y == ("yes" if word in x.split(",") else "no")
    yes = sum(e["output"] == "yes" for e in entries if e["kind"] == "yesno")
    assert 15 <= yes <= 35                                  # both answers are common
    assert make_data.make_instruct(200, seed=0) == entries
    assert make_data.make_instruct(200, seed=1) != entries


def test_make_instruct_lists_use_only_the_word_lists_and_no_spaces():
    # a word is then the same token wherever it sits in a list, a record or the answer
    words = set(make_data.WORDS) | set(make_data.KEYS)
    assert not set(make_data.WORDS) & set(make_data.KEYS)   # a value never looks like a key
    for e in make_data.make_instruct(100, seed=2):
        if e["kind"] != "add":
            tokens = e["input"].replace("=", ",").split(",")
            assert set(tokens) <= words and " " not in e["input"]


def test_exact_match_report():
    rows = [{"kind": "a", "correct": True}, {"kind": "a", "correct": False}, {"kind": "b", "correct": True}]
    r = instruct.exact_match_report(rows)
    assert r["exact_match"] == pytest.approx(2 / 3)
    assert r["exact_match_by_kind"] == {"a": 0.5, "b": 1.0}
    assert instruct.is_correct(" 85\n", "85") and not instruct.is_correct("850", "85")


def test_lr_schedule_is_the_shared_one():
    """Instruction tuning warms up, then follows pretraining's cosine down to lr / 10 (gpt/training/schedule.py)."""
    from gpt.training.schedule import lr_at
    assert instruct.lr_at is lr_at
    assert lr_at(0, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert lr_at(55, 100, 1.0, warmup=10) == pytest.approx(0.55)         # half-way down the cosine
    assert lr_at(55, 100, 1.0, warmup=10) > lr_at(55.5, 100, 1.0, warmup=10) > 0.1   # a fractional step


def test_short_instruct_training_lowers_the_loss_and_masking_changes_it():
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, context_length=32, emb_dim=16, n_layers=1, n_heads=2))
    items = [([1, 2, 3, 40 + k, 50 + k], 3) for k in range(8)]
    full = instruct.evaluate_loss(model, items, 4, 256)
    masked = instruct.evaluate_loss(model, items, 4, 256, mask_prompt=True)
    assert full != pytest.approx(masked)
    out = instruct.train(model, items, items, 256, epochs=30, lr=1e-2, batch_size=4, warmup=2, log=lambda s: None)
    assert out["val_loss"] < 0.5 * full and out["steps"] == 60


def test_the_chance_baseline_always_gives_the_commonest_training_answer():
    train = [{"kind": "yesno", "output": "yes"}] * 3 + [{"kind": "yesno", "output": "no"}] + \
            [{"kind": "add", "output": "12"}, {"kind": "add", "output": "13"}]
    test = [{"kind": "yesno", "output": "yes"}, {"kind": "yesno", "output": "no"}, {"kind": "add", "output": "12"},
            {"kind": "add", "output": "40"}, {"kind": "reverse", "output": "a,b"}]
    chance = instruct.chance_baseline(train, test)
    assert chance["by_kind"] == {"add": 0.5, "reverse": 0.0, "yesno": 0.5}      # add: ties go to the smallest text
    assert chance["exact_match"] == pytest.approx(2 / 5)
    from gpt.finetune.pipeline import exact_match_line
    line = exact_match_line(instruct.exact_match_report([{**t, "correct": t["kind"] == "yesno"} for t in test]), chance)
    assert "exact match 0.400 on 5 held-out (chance 0.400" in line and "yesno 1.000 (chance 0.500)" in line


def test_progress_lines_give_every_loss_with_four_decimals():
    import re
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, context_length=32, emb_dim=16, n_layers=1, n_heads=2))
    items = [([1, 2, 3, 40 + k, 50 + k], 3) for k in range(8)]
    lines = []
    instruct.train(model, items, items, 256, epochs=2, lr=1e-2, batch_size=4, warmup=1, eval_every=1, log=lines.append)
    losses = [m for line in lines for m in re.findall(r"loss (\S+)", line)]
    assert losses and all(re.fullmatch(r"\d+\.\d{4}", m) for m in losses), lines
    assert instruct._loss(0.52) == "0.5200" and instruct._loss(None) == "n/a"    # 0.52 once printed as "0.52"
