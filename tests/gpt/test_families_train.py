"""`train --arch llama|qwen3`: the same loop, checkpoints and resume as GPT-2, and flags said in flags."""
import io
import json
import os

import numpy as np
import pytest

import gpt
from gpt import __main__ as gpt_main
from gpt import checkpoint as ckpt
from gpt.train import TrainConfig, TrainingError, train

SMALL = dict(vocab_size=300, context_length=16, emb_dim=32, n_layers=2, n_heads=4, batch_size=4, eval_every=20,
             eval_batches=2, sample_tokens=5, lr=3e-3, save_every=20)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_a_tiny_family_model_trains_resumes_and_samples(arch, tmp_path, small_text):
    a = TrainConfig(data=str(small_text), out=str(tmp_path / arch), arch=arch, max_steps=40, n_kv_heads=2, **SMALL)
    out = io.StringIO()
    r = train(a, stream=out)
    hist = r["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.7 and hist[-1]["val_loss"] < hist[0]["val_loss"] - 0.4
    assert f"model: {arch}, 2 layers, 4 heads (2 kv)" in out.getvalue()
    meta = json.load(open(os.path.join(r["out"], "checkpoint.json")))
    assert meta["config"]["arch"] == arch and meta["args"]["arch"] == arch
    model, _ = ckpt.load_model(r["out"])
    assert type(model) is (gpt.Qwen3 if arch == "qwen3" else gpt.Llama) and model.cfg.n_kv_heads == 2
    more = train(TrainConfig(out=a.out, max_steps=42), resume=True, given=("out", "max_steps"), stream=io.StringIO())
    assert more["step"] == 42 and np.isfinite(more["loss"])
    with pytest.raises(TrainingError, match=f"--arch gpt2 differs from the checkpoint's {arch}"):
        train(TrainConfig(out=a.out, arch="gpt2"), resume=True, given=("out", "arch"), stream=io.StringIO())


@pytest.mark.parametrize("argv,message", [
    (["--arch", "llama", "--qkv-bias", "true"], "--qkv-bias does not apply to --arch llama"),
    (["--arch", "qwen3", "--preset", "gpt2-small"], "unknown preset 'gpt2-small' for --arch qwen3"),
    (["--arch", "llama", "--n-kv-heads", "3"], "--n-heads (4) must be a multiple of --n-kv-heads (3)"),
    (["--n-kv-heads", "2"], "--n-kv-heads does not apply to --arch gpt2"),
])
def test_flags_that_do_not_fit_the_family_are_one_line(argv, message, tmp_path, capsys):
    rc = gpt_main.main(["train", "--out", str(tmp_path / "x"), "--max-steps", "1", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()                   # said before any work
