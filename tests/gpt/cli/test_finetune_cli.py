"""The fine-tuning commands end to end on a tiny model saved as a pretraining checkpoint."""
import csv
import json
import shutil

import numpy as np
import pytest

import bpe
import tinytensor as tt

from gpt.training import checkpoint as ckpt
from gpt.models.gpt2_config import GPTConfig
from gpt.cli import finetune as cli
from gpt.finetune import make_data, pipeline
from gpt.models.gpt2 import GPT


@pytest.fixture
def base(tmp_path):
    """A tiny "pretrained" checkpoint folder: random weights, a byte-level tokenizer."""
    folder = tmp_path / "base"
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, context_length=256, emb_dim=16, n_layers=2, n_heads=2, tie_weights=True))
    ckpt.save(str(folder), model, None, {"step": 5, "config": model.cfg.to_dict()})
    bpe.Tokenizer(bpe.GPT2_PATTERN, [], {"<|endoftext|>": 256}).save(folder / ckpt.TOKENIZER)
    return folder


def test_classify_end_to_end(tmp_path, base, capsys):
    data = tmp_path / "d.tsv"
    assert cli.main(["make-data", "classify", "--out", str(data), "--n-per-class", "20"]) == 0
    out = tmp_path / "cls"
    rc = cli.main(["finetune", "classify", "--data", str(data), "--init", str(base), "--out", str(out),
                   "--epochs", "1", "--batch-size", "8", "--train", "lora", "--max-length", "24"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert {"train_accuracy", "val_accuracy", "test_accuracy"} <= set(m)
    assert (m["n_train"], m["n_val"], m["n_test"]) == (28, 4, 8)
    assert m["labels"] == ["code", "doc"] and 0 < m["trainable_parameters"] < m["total_parameters"]
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["task"] == "classify" and meta["labels"] == ["code", "doc"]
    rows = list(csv.DictReader(open(out / "metrics.csv")))                 # the curve: a row per step and per epoch
    assert [r["kind"] for r in rows] == ["train"] * 4 + ["eval"] and rows[-1]["test_accuracy"] != ""
    assert [int(r["examples"]) for r in rows[:4]] == [8, 16, 24, 28] and (out / "loss.svg").exists()
    assert all(float(r["grad_norm"]) > 0 for r in rows[:4]) and rows[-1]["grad_norm"] == ""
    said = capsys.readouterr().out
    assert f"next: python -m gpt classify --checkpoint {out}" in said and "(chance: " in said
    assert cli.main(["classify", "--checkpoint", str(out), "Return the value.", "x = f(y)"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(l.split("\t")[0] in ("code", "doc") for l in lines)
    # the saved classifier gives the same answers as the one in memory would: reload twice, compare
    model, tok, meta = pipeline.load_classifier(str(out))
    assert model.out_head.weight.shape == (2, 16)
    assert cli.main(["classify", "--checkpoint", str(base), "x"]) == 2      # not a classifier


def test_instruct_end_to_end(tmp_path, base):
    data = tmp_path / "i.json"
    assert cli.main(["make-data", "instruct", "--out", str(data), "--n", "40"]) == 0
    out = tmp_path / "sft"
    rc = cli.main(["finetune", "instruct", "--data", str(data), "--init", str(base), "--out", str(out),
                   "--epochs", "1", "--batch-size", "8", "--mask-prompt", "--max-new-tokens", "4", "--train", "lora"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(m["val_loss"]) and 0 <= m["exact_match"] <= 1 and m["n"] == 4
    assert set(m["exact_match_by_kind"]) <= set(make_data.KINDS)
    assert set(m["chance_exact_match_by_kind"]) == set(m["exact_match_by_kind"]) and 0 <= m["chance_exact_match"] <= 1
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert {r["kind"] for r in rows} == {"train", "eval"} and (out / "loss.svg").exists()
    assert all(float(r["grad_norm"]) > 0 for r in rows if r["kind"] == "train")
    rows = [json.loads(l) for l in (out / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all({"instruction", "input", "output", "response", "correct"} <= set(r) for r in rows)
    model, meta = ckpt.load_model(str(out))                  # merged: a plain GPT checkpoint again
    assert meta["task"] == "instruct" and model.cfg.context_length == 256


def test_cli_errors(tmp_path, base, capsys):
    rc = cli.main(["finetune", "instruct", "--data", str(tmp_path / "none.json"), "--init", str(base),
                   "--out", str(tmp_path / "o")])
    assert rc == 2 and "make-data instruct" in capsys.readouterr().err
    data = tmp_path / "d.tsv"
    data.write_text("a\tx\n", encoding="utf-8")
    rc = cli.main(["finetune", "classify", "--data", str(data), "--init", str(tmp_path / "nowhere"),
                   "--out", str(tmp_path / "o")])
    assert rc == 2
    with pytest.raises(SystemExit):
        cli.main(["finetune", "classify", "--data", str(data), "--init", str(base), "--out", "o", "--train", "head"])
    capsys.readouterr()
    tiny = tmp_path / "two.tsv"                          # too little to split into train / val / test
    tiny.write_text("doc\thello there\ncomment\tx = 1\n", encoding="utf-8")
    rc = cli.main(["finetune", "classify", "--data", str(tiny), "--init", str(base), "--out", str(tmp_path / "o2")])
    assert rc == 2 and "every part needs at least one" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
    rc = cli.main(["finetune", "instruct", "--data", str(tiny), "--init", str(base), "--out", str(tmp_path / "o3")])
    err = capsys.readouterr().err
    assert rc == 2 and "is not a JSON file of instruction entries" in err and "make-data instruct" in err


def test_wired_into_python_m_gpt(tmp_path, capsys):
    from gpt.__main__ import main
    out = tmp_path / "i.json"
    assert main(["make-data", "instruct", "--out", str(out), "--n", "8"]) == 0
    assert len(json.loads(out.read_text())) == 8
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    assert "classify" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["make-data", "instruct"], ["make-data", "classify"], ["finetune", "instruct"],
                                     ["finetune", "classify"], ["classify"]])
def test_every_command_help_has_a_description(command, capsys):
    from gpt.__main__ import main
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]                   # usage, then the description before the options
    assert not description.startswith(("options:", "positional arguments:")), out[:300]


def _classify(tmp_path, base, out, *extra):
    data = tmp_path / "d.tsv"
    if not data.exists():
        assert cli.main(["make-data", "classify", "--out", str(data), "--n-per-class", "20"]) == 0
    return cli.main(["finetune", "classify", "--data", str(data), "--init", str(base), "--out", str(out),
                     "--epochs", "1", "--batch-size", "8", "--max-length", "24", *map(str, extra)])


@pytest.mark.parametrize("flag,value,expected", [("--lr", "nan", "expected a number in (0, inf]"),
                                                 ("--lr", "inf", "expected a number"),
                                                 ("--epochs", "x", "expected a positive integer"),
                                                 ("--seed", "-5", "expected an integer >= 0"),
                                                 ("--weight-decay", "-1", "expected a number in [0, inf]")])
def test_bad_numbers_are_refused_naming_the_flag(tmp_path, base, capsys, flag, value, expected):
    with pytest.raises(SystemExit) as e:
        _classify(tmp_path, base, tmp_path / "o", flag, value)
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}: {expected}" in err and "_positive" not in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("task", ["classify", "instruct"])
def test_a_diverging_fine_tune_stops_saving_nothing(tmp_path, base, capsys, task):
    """The loss guard of pretraining (gpt/training/step.py) guards fine-tuning too: exit 1, no NaN model saved."""
    out = tmp_path / "nan"
    if task == "classify":
        rc = _classify(tmp_path, base, out, "--lr", "1e30", "--train", "all")
    else:
        data = tmp_path / "i.json"
        assert cli.main(["make-data", "instruct", "--out", str(data), "--n", "40"]) == 0
        rc = cli.main(["finetune", "instruct", "--data", str(data), "--init", str(base), "--out", str(out),
                       "--epochs", "2", "--batch-size", "8", "--lr", "1e30", "--max-test", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("error: the ") and "became" in err[-1] and str(out) in err[-1], err
    assert all(line.startswith(("warning: ", "error: ")) for line in err)
    assert not out.exists()


def test_out_holding_a_run_is_refused_and_init_is_never_written(tmp_path, base, capsys):
    out = tmp_path / "cls"
    assert _classify(tmp_path, base, out) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert _classify(tmp_path, base, out, "--seed", 7) == 2
    err = capsys.readouterr().err
    assert "already holds a checkpoint" in err and "--overwrite" in err
    assert (out / "model.safetensors").read_bytes() == before
    assert _classify(tmp_path, base, out, "--seed", 7, "--overwrite") == 0
    assert (out / "model.safetensors").read_bytes() != before
    base_files = {p.name: p.read_bytes() for p in base.iterdir()}
    for extra in ([], ["--overwrite"]):
        capsys.readouterr()
        assert _classify(tmp_path, base, base, *extra) == 2
        assert "is the --init folder" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in base.iterdir()} == base_files
    other = tmp_path / "pretrained"                     # a pretraining run's folder is a run too
    shutil.copytree(base, other)
    assert _classify(tmp_path, base, other) == 2 and "already holds" in capsys.readouterr().err


def test_fine_tuning_tunes_the_heap_and_has_a_last_resort(tmp_path, base, capsys, monkeypatch):
    from tinytensor.schedule import heap
    calls = []
    monkeypatch.setattr(heap, "tune", lambda: calls.append(1) or True)
    assert _classify(tmp_path, base, tmp_path / "h") == 0 and calls == [1]

    def broken(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(make_data, "write_instruct", broken)
    capsys.readouterr()
    assert cli.main(["make-data", "instruct", "--out", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: unexpected RuntimeError: boom; rerun with --debug (or TINYTENSOR_DEBUG=1) "
                                "for the traceback"]
    assert cli.main(["make-data", "instruct", "--out", str(tmp_path / "x.json"), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["classify", "instruct"])
def test_each_fine_tuning_s_settings_are_one_dataclass_with_the_command_line_s_defaults(task):
    """The flags build the run's settings once (gpt/finetune/settings.py): every flag is a field (but --viz and
    --debug, which show the run rather than set it), and a field left out has the dataclass's own default."""
    import dataclasses

    from gpt.cli import build_parser
    from gpt.finetune.settings import ClassifySettings, InstructSettings
    cls = ClassifySettings if task == "classify" else InstructSettings
    ns = build_parser().parse_args(["finetune", task, "--data", "d", "--init", "i", "--out", "o"])
    assert cls.from_flags(ns) == cls(data="d", init="i", out="o")
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["finetune"]._subparsers
             ._group_actions[0].choices[task]._actions} - {"help", "debug", "viz"}
    assert flags == {f.name for f in dataclasses.fields(cls)}
