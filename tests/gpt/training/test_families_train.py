"""`train --arch llama|qwen3`: the same loop, checkpoints and resume as GPT-2, and flags said in flags."""
import io
import json
import os

import numpy as np
import pytest

import gpt
from gpt import __main__ as gpt_main
from gpt.training import checkpoint as ckpt
from gpt.training.settings import TrainConfig
from gpt.errors import TrainingError
from gpt.training.pretrain import train

SMALL = dict(vocab_size=300, context_length=16, emb_dim=32, n_layers=2, n_heads=4, batch_size=4, eval_every=12,
             eval_batches=2, sample_tokens=5, lr=5e-3, save_every=12)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_a_tiny_family_model_trains_resumes_and_samples(arch, tmp_path, small_text):
    a = TrainConfig(data=str(small_text), out=str(tmp_path / arch), arch=arch, max_steps=24, n_kv_heads=2, **SMALL)
    out = io.StringIO()
    r = train(a, stream=out)
    hist = r["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.7 and hist[-1]["val_loss"] < hist[0]["val_loss"] - 0.4
    assert f"model: {arch}, 2 layers, 4 heads (2 kv)" in out.getvalue()
    meta = json.load(open(os.path.join(r["out"], "checkpoint.json")))
    assert meta["config"]["arch"] == arch and meta["args"]["arch"] == arch
    model, _ = ckpt.load_model(r["out"])
    assert type(model) is (gpt.Qwen3 if arch == "qwen3" else gpt.Llama) and model.cfg.n_kv_heads == 2
    more = train(TrainConfig(out=a.out, max_steps=26), resume=True, given=("out", "max_steps"), stream=io.StringIO())
    assert more["step"] == 26 and np.isfinite(more["loss"])
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


def test_fine_tuning_starts_from_a_llama_checkpoint_or_a_qwen3_hugging_face_folder(tmp_path, capsys):
    import shutil
    from pathlib import Path

    import bpe
    import tinytensor as tt
    from gpt.cli import finetune as cli
    from gpt.finetune import pipeline
    fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    hf_folder = tmp_path / "qwen3"
    shutil.copytree(fixtures / "families" / "qwen3_tied", hf_folder)
    shutil.copy(fixtures / "tokenizers" / "qwen3" / "tokenizer.json", hf_folder)
    ours = tmp_path / "llama"
    tt.manual_seed(0)
    model = gpt.Llama(gpt.LlamaConfig.preset("tiny", vocab_size=257, context_length=64, emb_dim=16, n_layers=2,
                                              n_heads=2, n_kv_heads=1, hidden_dim=32))
    ckpt.save(str(ours), model, None, {"step": 1, "config": model.cfg.to_dict()})
    bpe.Tokenizer(bpe.GPT2_PATTERN, [], {"<|endoftext|>": 256}).save(ours / ckpt.TOKENIZER)
    data = tmp_path / "d.tsv"
    assert cli.main(["make-data", "classify", "--out", str(data), "--n-per-class", "10"]) == 0
    for base, kind in ((ours, gpt.Llama), (hf_folder, gpt.Qwen3)):
        out = tmp_path / f"cls-{base.name}"
        rc = cli.main(["finetune", "classify", "--data", str(data), "--init", str(base), "--out", str(out),
                       "--epochs", "1", "--batch-size", "8", "--train", "lora", "--max-length", "24"])
        assert rc == 0, capsys.readouterr().err
        classifier, _, meta = pipeline.load_classifier(str(out))
        assert type(classifier) is kind and meta["labels"] == ["code", "doc"]
    assert "Qwen3 weights from" in capsys.readouterr().out
