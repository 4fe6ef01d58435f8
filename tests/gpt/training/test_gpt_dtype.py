"""``python -m gpt train --dtype``: float16 autocast with loss scaling trains like float32 and resumes exactly;
bfloat16 on the CPU is one line before any work; the shared step skips a float16 overflow."""
import io
import json
import os

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from gpt.__main__ import main
from gpt.training.step import train_step
from gpt.training.settings import TrainConfig
from gpt.training.pretrain import train
from tinytensor import optim

from gpt_helpers import small_model

SMALL = dict(vocab_size=300, context_length=16, emb_dim=32, n_layers=2, n_heads=2, batch_size=4,
             eval_every=100, eval_batches=2, sample_tokens=5, lr=3e-3)


def _cfg(tmp_path, data, name, **over):
    return TrainConfig(data=str(data), out=str(tmp_path / name), **{**SMALL, **over})


def test_float16_training_follows_float32_and_keeps_float32_weights(tmp_path, small_text):
    losses = {}
    for dtype in ("float32", "float16"):
        rows = []
        train(_cfg(tmp_path, small_text, dtype, max_steps=24, dtype=dtype), stream=io.StringIO(),
              on_step=lambda row: rows.append(row["train_loss"]))
        losses[dtype] = rows
    assert losses["float32"][-1] < losses["float32"][0] - 0.5
    np.testing.assert_allclose(losses["float16"], losses["float32"], rtol=0.02)
    weights = tt.load(tmp_path / "float16" / "model.safetensors")
    assert {w.dtype for w in weights.values()} == {np.dtype(np.float32)}
    meta = json.load(open(tmp_path / "float16" / "checkpoint.json"))
    assert meta["args"]["dtype"] == "float16" and meta["grad_scaler"]["scale"] > 0


def test_float16_resume_continues_bit_for_bit(tmp_path, small_text):
    kw = dict(max_steps=6, save_every=100, dtype="float16")
    train(_cfg(tmp_path, small_text, "full", **kw), stream=io.StringIO())
    train(_cfg(tmp_path, small_text, "split", **kw), stream=io.StringIO(), stop_at=3)
    assert json.load(open(tmp_path / "split" / "checkpoint.json"))["grad_scaler"]["good_steps"] == 3
    r = train(_cfg(tmp_path, small_text, "split", **kw), resume=True, stream=io.StringIO())
    assert r["step"] == 6
    a, b = (tt.load(os.path.join(tmp_path, n, "model.safetensors")) for n in ("full", "split"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (json.load(open(tmp_path / "full" / "checkpoint.json"))["grad_scaler"]
            == json.load(open(tmp_path / "split" / "checkpoint.json"))["grad_scaler"])


def test_bfloat16_on_the_cpu_is_one_line_before_any_work(tmp_path, capsys):
    out = tmp_path / "never"
    status = main(["train", "--dtype", "bfloat16", "--out", str(out), "--max-steps", "1"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert "--dtype bfloat16 needs --device cuda" in err and "float16" in err
    assert not out.exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--dtype", "float8"])
    assert exit_info.value.code == 2 and "--dtype" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
def test_the_step_skips_a_float16_overflow_and_lowers_the_scale():
    model = small_model()
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    scaler = tt.GradScaler(init_scale=2.0 ** 32)          # the largest scale: certain to overflow float16
    ids = np.random.default_rng(0).integers(0, 97, (2, 16))
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}

    def loss_fn(batch):
        with tt.autocast(dtype="float16"):
            return F.cross_entropy(model(batch), batch)
    result = train_step(opt, loss_fn, [ids], lr=1e-3, scaler=scaler)
    assert result.skipped and scaler.get_scale() == 2.0 ** 31
    assert all(np.array_equal(p.numpy(), before[n]) for n, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())
    scaler = tt.GradScaler(init_scale=2.0 ** 8)
    result = train_step(opt, loss_fn, [ids, ids], lr=1e-3, scaler=scaler)
    assert not result.skipped and np.isfinite(result.grad_norm)
    assert not all(np.array_equal(p.numpy(), before[n]) for n, p in model.named_parameters())
