"""The command line: train then sample, --gpt2, the progress bar, and one-line errors for every mistake."""
import io
import shutil

import numpy as np
import pytest

from gpt.progress import ProgressBar

from gpt_helpers import run_cli, small_model

TRAIN = ["--vocab-size", 300, "--context-length", 16, "--emb-dim", 32, "--n-layers", 2, "--n-heads", 2,
         "--batch-size", 4, "--max-steps", 6, "--eval-every", 3, "--eval-batches", 1, "--sample-tokens", 4]


def _one_line_error(proc, *fragments):
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, proc.stderr
    for f in fragments:
        assert f in err, err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    from gpt.data import default_corpus
    data = folder / "text.txt"
    data.write_text(default_corpus()[:20000], encoding="utf-8")
    out = folder / "run"
    proc = run_cli("train", "--data", data, "--out", out, *TRAIN)
    assert proc.returncode == 0, proc.stderr
    return data, out, proc.stdout


def test_train_prints_losses_samples_and_progress(trained):
    _, out, stdout = trained
    assert "step      0 | train loss" in stdout and "step      6 | train loss" in stdout
    assert stdout.count("sample:") == 3 and "tok/s" in stdout and "finished 6 steps" in stdout
    assert (out / "model.safetensors").exists() and (out / "tokenizer.bpe").exists()


def test_sample_from_a_checkpoint(trained):
    _, out, _ = trained
    a = run_cli("sample", "--checkpoint", out, "--prompt", "The", "--max-new-tokens", 8, "--seed", 1)
    assert a.returncode == 0, a.stderr
    assert a.stdout.startswith("The") and len(a.stdout) > 4
    b = run_cli("sample", "--checkpoint", out, "--prompt", "The", "--max-new-tokens", 8, "--seed", 1, "--no-cache")
    assert b.stdout == a.stdout
    g = run_cli("sample", "--checkpoint", out, "--prompt", "The", "--prompt", "A", "--temperature", 0,
                "--max-new-tokens", 5, "--no-eos-stop")
    assert g.returncode == 0 and "--- sample 1 ---\nThe" in g.stdout and "--- sample 2 ---\nA" in g.stdout


def test_resume_and_overwrite_rules(trained):
    data, out, _ = trained
    _one_line_error(run_cli("train", "--data", data, "--out", out, *TRAIN), "already holds a checkpoint", "--resume")
    r = run_cli("train", "--data", data, "--out", out, "--resume", "--max-steps", 7, "--vocab-size", 300)
    assert r.returncode == 0 and "resuming" in r.stdout and "finished 7 steps" in r.stdout, r.stderr
    _one_line_error(run_cli("train", "--data", data, "--out", out, "--resume", "--emb-dim", 64),
                    "--emb-dim 64 differs from the checkpoint's")


def test_cli_errors_are_one_line(tmp_path, trained):
    data, out, _ = trained
    _one_line_error(run_cli("train", "--data", tmp_path / "missing.txt", "--out", tmp_path / "x"), "missing.txt")
    assert not (tmp_path / "x").exists()                 # nothing made for a run that never started
    _one_line_error(run_cli("train", "--lr", "-1"), "--lr", "expected a number")
    _one_line_error(run_cli("train", "--batch-size", "0"), "--batch-size", "positive integer")
    _one_line_error(run_cli("train", "--preset", "huge"), "--preset")
    _one_line_error(run_cli("train", "--bogus"), "unrecognized arguments")
    _one_line_error(run_cli("sample", "--checkpoint", tmp_path / "none"), "no checkpoint folder")
    _one_line_error(run_cli("sample", "--gpt2", tmp_path), "encoder.json")
    _one_line_error(run_cli("train", "--data", data, "--out", tmp_path / "y", "--context-length", 4000,
                            "--vocab-size", 300), "windows")
    # a checkpoint folder whose weights come from another model shape
    other = tmp_path / "other"
    shutil.copytree(out, other)
    from gpt import checkpoint as ckpt
    import tinytensor as tt
    meta = ckpt.read_meta(other)
    tt.save(small_model(emb_dim=16, n_heads=2, qkv_bias=False, tie_weights=True, vocab_size=300).state_dict(),
            other / "model.safetensors",
            metadata={"format": ckpt.FORMAT, "step": str(meta["step"])})
    _one_line_error(run_cli("sample", "--checkpoint", other), "shape")
    _one_line_error(run_cli("train", "--data", data, "--out", other, "--resume"), "cannot resume", "shape")


def test_sample_with_gpt2_weights_and_tokenizer(tmp_path, shared_data):
    """A (randomly initialised) GPT-2-shaped model with the real vocabulary, through --gpt2."""
    from gpt import GPT, GPTConfig, save_gpt2
    import tinytensor as tt
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50257, context_length=32, emb_dim=16, n_layers=1, n_heads=2, tie_weights=True))
    save_gpt2(model, tmp_path)
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(shared_data / "gpt2" / name, tmp_path / name)
    r = run_cli("sample", "--gpt2", tmp_path, "--prompt", "Hello, I am", "--max-new-tokens", 5, "--temperature", 0)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Hello, I am")


def test_progress_bar_in_a_log_and_in_a_terminal():
    log = io.StringIO()
    bar = ProgressBar(10, stream=log, every=0.0)
    for step in range(1, 11):
        bar.update(step, loss=1.0 / step, tokens=100)
    bar.write("eval line")
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 11
    assert lines[-2].startswith("[########################] 10/10 loss 0.1000") and "ETA 0s" in lines[-2]
    tty = io.StringIO()
    bar = ProgressBar(5, stream=tty, tty=True)
    for step in range(1, 6):
        bar.update(step, loss=0.5, tokens=10, force=True)
    bar.write("hello")
    bar.close()
    assert tty.getvalue().count("\r") >= 5 and "hello\n" in tty.getvalue()


_ = np


def test_cuda_without_a_gpu_is_one_line_before_any_work(tmp_path):
    from tinytensor import backend
    if backend.cuda_available():
        pytest.skip("this machine has a GPU: --device cuda would run")
    _one_line_error(run_cli("train", "--device", "cuda", "--out", tmp_path / "c"), "--device cuda")
    assert not (tmp_path / "c").exists()
    _one_line_error(run_cli("sample", "--checkpoint", tmp_path / "none", "--device", "cuda"), "--device cuda")
