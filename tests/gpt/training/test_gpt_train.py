"""Training and checkpoints: loss falls, resume is exact (also after SIGKILL), the schedule, the shared step,
crash-safe saves, and stopping (signals, a closed pipe) that saves first."""
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tinytensor as tt
from gpt.training import checkpoint as ckpt
from gpt.errors import RunFailed
from gpt.training.schedule import lr_at
from gpt.training.step import NonFiniteError, train_step
from gpt.training.settings import TrainConfig
from gpt.errors import TrainingError
from gpt.training.pretrain import evaluate_run, param_groups, prepare, train

from gpt_helpers import REPO, cli_env, small_model

SMALL = dict(vocab_size=300, context_length=16, emb_dim=32, n_layers=2, n_heads=2, batch_size=4,
             eval_every=5, eval_batches=2, sample_tokens=5, lr=3e-3)


def _cfg(tmp_path, data, name="run", **over):
    return TrainConfig(data=str(data), out=str(tmp_path / name), **{**SMALL, **over})


def _weights(folder):
    return tt.load(os.path.join(folder, "model.safetensors"))


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_short_run_loss_falls_and_writes_a_checkpoint(tmp_path, small_text):
    out = io.StringIO()
    r = train(_cfg(tmp_path, small_text, max_steps=40, eval_every=20, save_every=20), stream=out)
    hist = r["history"]
    assert [h["step"] for h in hist] == [0, 20, 40]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.7
    assert hist[-1]["val_loss"] < hist[0]["val_loss"] - 0.4
    folder = r["out"]
    names = set(os.listdir(folder))
    assert {"model.safetensors", "optimizer.safetensors", "tokenizer.bpe", "checkpoint.json"} <= names
    assert not [n for n in names if ".tmp-" in n or ".step-" in n]
    meta = json.load(open(os.path.join(folder, "checkpoint.json")))
    assert meta["step"] == 40 and meta["version"] == 1 and meta["config"]["emb_dim"] == 32
    assert {"epoch", "position"} <= set(meta["data"]["sampler"]) and "state" in meta["rng"]
    text = out.getvalue()
    assert "sample:" in text and "tok/s" in text and "ETA" in text
    model, _ = ckpt.load_model(folder)
    assert _same(model.state_dict(), _weights(folder))


@pytest.mark.parametrize("drop_rate,accum", [(0.0, 1), (0.2, 2)])
def test_resume_continues_bit_for_bit(tmp_path, small_text, drop_rate, accum):
    kw = dict(max_steps=8, save_every=100, drop_rate=drop_rate, grad_accum=accum)
    train(_cfg(tmp_path, small_text, "full", **kw), stream=io.StringIO())
    r = train(_cfg(tmp_path, small_text, "split", **kw), stream=io.StringIO(), stop_at=3)
    assert r["status"] == "interrupted" and json.load(open(tmp_path / "split" / "checkpoint.json"))["step"] == 3
    r = train(_cfg(tmp_path, small_text, "split", **kw), resume=True, stream=io.StringIO())
    assert r["status"] == "done" and r["step"] == 8
    assert _same(_weights(tmp_path / "full"), _weights(tmp_path / "split"))
    opt_a = tt.load(tmp_path / "full" / "optimizer.safetensors")
    assert _same(opt_a, tt.load(tmp_path / "split" / "optimizer.safetensors"))


def _step_of(folder):
    try:
        return json.load(open(os.path.join(folder, "checkpoint.json")))["step"]
    except (OSError, ValueError):
        return -1


def test_sigkill_at_any_moment_then_resume_is_exact(tmp_path, small_text):
    """Kill a CLI run with SIGKILL twice (once soon after a save began), resume each time; the final
    weights equal those of a run never interrupted."""
    args = ["--data", small_text, "--vocab-size", 300, "--context-length", 16, "--emb-dim", 32, "--n-layers", 2,
            "--n-heads", 2, "--batch-size", 4, "--max-steps", 24, "--save-every", 1, "--eval-every", 8,
            "--eval-batches", 1, "--sample-tokens", 3, "--lr", 3e-3, "--drop-rate", 0.1]
    ref = tmp_path / "ref"              # the uninterrupted run, also a fresh process
    done = subprocess.run([sys.executable, "-m", "gpt", "train", "--out", str(ref)] + [str(a) for a in args],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "gpt", "train", "--out", str(out)] + [str(a) for a in args]
    rng = np.random.default_rng(0)
    kills = 0
    for target in (3, 11):
        proc = subprocess.Popen(cmd + (["--resume"] if kills else []), cwd=REPO, env=cli_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while _step_of(out) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        time.sleep(float(rng.uniform(0, 0.02)))          # somewhere inside the next step or save
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr.read().decode()
    assert kills >= 1
    done = subprocess.run(cmd + ["--resume"], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _step_of(out) == 24
    assert _same(_weights(ref), _weights(out))


def test_a_save_interrupted_after_its_commit_point_is_finished_on_load(tmp_path):
    model = small_model()
    opt = tt.optim.AdamW(model.parameters(), lr=1e-3)
    folder = tmp_path / "ck"
    meta = {"step": 1, "config": model.cfg.to_dict()}
    ckpt.save(folder, model, opt, meta)
    old = model.state_dict()
    for p in model.parameters():
        p.data = p.data + 1
    # simulate a kill after checkpoint.json (step 2) was committed but before the renames
    tt.save(model.state_dict(), folder / "model.safetensors.step-2", metadata={"format": ckpt.FORMAT, "step": "2"})
    arrays, ometa = ckpt.optimizer_arrays(opt)
    tt.save(arrays, folder / "optimizer.safetensors.step-2", metadata={"format": ckpt.FORMAT, "step": "2", **ometa})
    ckpt.write_json({"format": ckpt.FORMAT, "version": 1, "step": 2, "config": model.cfg.to_dict(),
                     "files": {"model.safetensors": "x", "optimizer.safetensors": "y"}}, folder / "checkpoint.json")
    loaded, _ = ckpt.load_model(folder)
    assert _same(loaded.state_dict(), model.state_dict()) and not _same(loaded.state_dict(), old)
    # a kill before the commit point leaves a stray staged file that loading ignores
    tt.save(old, folder / "model.safetensors.step-3", metadata={"format": ckpt.FORMAT, "step": "3"})
    loaded, meta = ckpt.load_model(folder)
    assert meta["step"] == 2 and _same(loaded.state_dict(), model.state_dict())


def test_mismatched_files_are_reported(tmp_path):
    model = small_model()
    folder = tmp_path / "ck"
    ckpt.save(folder, model, None, {"step": 5, "config": model.cfg.to_dict()})
    tt.save(small_model(emb_dim=16).state_dict(), folder / "model.safetensors", metadata={"format": ckpt.FORMAT, "step": "5"})
    with pytest.raises(ValueError, match="shape"):
        ckpt.load_model(folder)
    tt.save(model.state_dict(), folder / "model.safetensors", metadata={"format": ckpt.FORMAT, "step": "4"})
    with pytest.raises(ValueError, match="inconsistent"):
        ckpt.load_model(folder)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ckpt.read_meta(tmp_path)


def test_schedule_and_parameter_groups():
    lrs = [lr_at(s, 100, 1.0, 0.1, 10, "cosine") for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert lr_at(50, 100, 1.0, 0.1, 0, "constant") == 1.0
    model = small_model(tie_weights=True)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {n for n, p in model.named_parameters()
                                                       if p.ndim == 2 and "emb" not in n}
    assert no_decay["weight_decay"] == 0.0 and any("norm" in names[id(p)] for p in no_decay["params"])


# the diverging run overflows on purpose: NumPy's warnings about it are expected here, not news
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_refuses_to_overwrite_and_stops_on_nan(tmp_path, small_text):
    cfg = _cfg(tmp_path, small_text, max_steps=2)
    train(cfg, stream=io.StringIO())
    with pytest.raises(TrainingError, match="already holds a checkpoint"):
        train(cfg, stream=io.StringIO())
    train(cfg, overwrite=True, stream=io.StringIO())
    with pytest.raises(TrainingError, match=r"(loss|gradient norm) became (nan|inf).*step 0"):
        train(_cfg(tmp_path, small_text, "nan", max_steps=20, lr=1e30, grad_clip=0.0), stream=io.StringIO())
    assert _step_of(tmp_path / "nan") == 0


def _cli_train_cmd(out, small_text, *extra):
    return [sys.executable, "-m", "gpt", "train", "--out", str(out), "--data", str(small_text), "--vocab-size", "300",
            "--context-length", "16", "--emb-dim", "32", "--n-layers", "2", "--n-heads", "2", "--batch-size", "4",
            "--max-steps", "100000", "--save-every", "1", *map(str, extra)]


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_saves_and_exits_with_its_status(tmp_path, small_text, sig, status):
    """Ctrl-C, SIGTERM (a scheduler's time limit) and SIGHUP (the terminal closed) each save the step,
    then exit with 128 + the signal's number."""
    out = tmp_path / "int"
    proc = subprocess.Popen(_cli_train_cmd(out, small_text, "--eval-every", 100000), cwd=REPO, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while _step_of(out) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    step = _step_of(out)
    assert f"interrupted: saved step {step} to {out}" in stdout and step >= 2


def test_a_closed_output_pipe_saves_and_stops(tmp_path, small_text):
    """``python -m gpt train | head -2``: the run saves and exits 141 (128 + SIGPIPE), no traceback."""
    out = tmp_path / "piped"
    proc = subprocess.Popen(_cli_train_cmd(out, small_text, "--eval-every", 1, "--eval-batches", 1, "--sample-tokens", 2),
                            cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(6):                           # what head reads before it exits
        proc.stdout.readline()
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    stderr = stderr.decode()
    assert proc.returncode == 141, stderr
    assert "Traceback" not in stderr and "Broken pipe" not in stderr, stderr
    meta = json.load(open(out / "checkpoint.json"))
    assert meta["step"] >= 1
    model, _ = ckpt.load_model(out)                # a complete checkpoint of the step it stopped at
    assert _same(model.state_dict(), _weights(out))


def test_a_stop_during_an_evaluation_does_not_wait_for_it(tmp_path, small_text):
    """SIGTERM arriving as an evaluation starts: the evaluation is abandoned, the step
    saved, the summary says SIGTERM and exit status 143."""
    def on_step(row):
        if row["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
    r = train(_cfg(tmp_path, small_text, max_steps=50, eval_every=2), stream=io.StringIO(),
              on_step=on_step)
    assert (r["status"], r["step"], r["stopped_by"], r["exit_code"]) == ("interrupted", 2, "SIGTERM", 143)
    assert [h["step"] for h in r["history"]] == [0]          # the step-2 evaluation never finished
    assert _step_of(tmp_path / "run") == 2


class _StopAfter:
    """A stop flag that turns true after it has been asked ``n`` times."""

    def __init__(self, n):
        self.n = n

    def __bool__(self):
        self.n -= 1
        return self.n < 0


def test_a_stop_request_abandons_the_sample_being_generated(tmp_path, small_text):
    run = prepare(_cfg(tmp_path, small_text, eval_batches=1, sample_tokens=400).resolved(), say=lambda s: None)
    shown = []
    assert evaluate_run(run, shown.append, stop=_StopAfter(1000)) is not None      # never stops: 2 lines shown
    assert len(shown) == 2 and len(run.history) == 1
    # asked twice by the loss passes, once before sampling, then once per token: stop inside the sample
    assert evaluate_run(run, shown.append, stop=_StopAfter(10)) is None
    assert len(shown) == 2 and len(run.history) == 1


def test_train_step_takes_the_mean_over_micro_batches_and_refuses_non_finite_values():
    model = small_model(drop_rate=0.0)
    x = np.random.default_rng(0).integers(0, 97, size=(4, 8))
    batches = [(x[:2], x[:2]), (x[2:], x[2:])]

    def loss_fn(b):
        return tt.functional.cross_entropy(model(b[0]), b[1])
    whole = tt.functional.cross_entropy(model(x), x)
    whole.backward()
    expected = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    opt = tt.optim.SGD(model.parameters(), lr=1.0)
    r = train_step(opt, loss_fn, batches, lr=0.0, grad_clip=0)
    assert r.loss == pytest.approx(whole.item(), rel=1e-5)
    norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in expected.values()))
    assert r.grad_norm == pytest.approx(norm, rel=1e-4)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    with pytest.raises(NonFiniteError, match="the loss became nan at step 7"):
        train_step(opt, lambda b: loss_fn(b) * float("nan"), batches, lr=1.0, step=7)
    w = model.tok_emb.weight
    with pytest.raises(NonFiniteError, match="the gradient norm became nan"), np.errstate(all="ignore"):
        train_step(opt, lambda b: loss_fn(b) + (w * 0.0).sqrt().sum(), batches, lr=1.0)   # d sqrt(0) = inf
    assert all(np.array_equal(p.data, before[n]) for n, p in model.named_parameters())    # nothing applied
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert issubclass(NonFiniteError, RunFailed) and issubclass(RunFailed, TrainingError)


def test_resume_with_overwrite_is_refused(tmp_path, small_text):
    cfg = _cfg(tmp_path, small_text, max_steps=1)
    train(cfg, stream=io.StringIO())
    with pytest.raises(TrainingError, match="--resume .* --overwrite"):
        train(cfg, resume=True, overwrite=True, stream=io.StringIO())
    assert _step_of(tmp_path / "run") == 1


def test_the_learning_rate_follows_the_preset_unless_given():
    assert TrainConfig().resolved().lr == 2e-3
    assert TrainConfig(preset="gpt2-small").resolved().lr == 6e-4
    assert TrainConfig(preset="gpt2-xl").resolved().lr < TrainConfig(preset="gpt2-medium").resolved().lr < 6e-4
    assert TrainConfig(preset="gpt2-small", lr=1e-3).resolved().lr == 1e-3


def test_on_step_and_on_eval_see_every_step(tmp_path, small_text):
    rows, evals = [], []
    train(_cfg(tmp_path, small_text, max_steps=4, eval_every=2), stream=io.StringIO(), on_step=rows.append,
          on_eval=evals.append)
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and [e["step"] for e in evals] == [0, 2, 4]
    assert {"tokens", "train_loss", "lr", "grad_norm", "elapsed"} <= set(rows[0])
    assert rows[1]["tokens"] == 2 * 4 * 16 and rows[0]["lr"] == pytest.approx(3e-3)
