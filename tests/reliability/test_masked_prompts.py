"""``finetune instruct --mask-prompt`` refuses a context that cuts away every answer (issue 26, 9).

With a base whose context ends before any answer begins, every step was skipped, the validation loss was
nan, metrics.json held a bare ``NaN`` (not JSON), and the command exited 0.
"""
import json
import math

import bpe
import tinytensor as tt
from gpt import GPT, GPTConfig
from gpt.training import checkpoint as ckpt
from gpt.cli import finetune as cli


def base_with_context(folder, context_length):
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, context_length=context_length, emb_dim=16, n_layers=1, n_heads=2,
                          tie_weights=True))
    ckpt.save(str(folder), model, None, {"step": 5, "config": model.cfg.to_dict()})
    bpe.Tokenizer(bpe.GPT2_PATTERN, [], {"<|endoftext|>": 256}).save(folder / ckpt.TOKENIZER)
    return folder


def test_a_context_that_cuts_every_answer_is_refused(tmp_path, capsys):
    base = base_with_context(tmp_path / "base", 32)
    data, out = tmp_path / "i.json", tmp_path / "out"
    assert cli.main(["make-data", "instruct", "--out", str(data), "--n", "40"]) == 0
    capsys.readouterr()
    status = cli.main(["finetune", "instruct", "--data", str(data), "--init", str(base), "--out", str(out),
                       "--epochs", "1", "--batch-size", "8", "--max-test", "1", "--mask-prompt"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "--mask-prompt" in err and "every" in err and "context of at least" in err, err
    assert not (out / "metrics.json").exists()


def test_json_never_holds_nan(tmp_path):
    path = tmp_path / "m.json"
    ckpt.write_json({"val_loss": float("nan"), "rows": [1.0, float("inf")], "ok": 2.5}, str(path))
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"val_loss": None, "rows": [1.0, None], "ok": 2.5}
    _ = math
