"""Faults during training: a checkpoint write that fails halfway, a second run on the same --out, Ctrl-C, SIGKILL.

The run is a 7,680-parameter GPT on 3 KB of CPython's help text, so each run takes well under a second.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinytensor as tt
from gpt.training import checkpoint as ckpt
from gpt.__main__ import main as gpt_main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--vocab-size", "260", "--context-length", "16", "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2",
        "--batch-size", "2", "--eval-batches", "1", "--sample-tokens", "2", "--eval-every", "1000"]


@pytest.fixture
def data(tmp_path):
    import pydoc_data.topics
    topics = pydoc_data.topics.topics
    path = tmp_path / "small.txt"
    path.write_text("".join(topics[k] for k in sorted(topics))[:3000], encoding="utf-8")
    return path


def run_main(capsys, *args):
    """python -m gpt in-process: (exit status, stderr)."""
    capsys.readouterr()
    rc = gpt_main([str(a) for a in args])
    return rc, capsys.readouterr().err


def weights(folder):
    return {k: v.copy() for k, v in tt.load(os.path.join(folder, ckpt.MODEL)).items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("where", ["model file", "checkpoint.json"])
def test_a_failed_checkpoint_write_keeps_the_previous_one_and_the_run_resumable(tmp_path, data, capsys,
                                                                                monkeypatch, where):
    out = tmp_path / "run"
    common = ["train", "--data", data, "--out", out, "--save-every", "2", *TINY]
    assert run_main(capsys, *common, "--max-steps", "2")[0] == 0
    before = weights(out)
    assert ckpt.read_meta(out)["step"] == 2

    def full_disk(path, data_bytes):
        with open(path, "wb") as f:                    # half of the bytes reach the disk, then it is full
            f.write(data_bytes[: len(data_bytes) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    if where == "model file":
        real_save = tt.save

        def save(tensors, path, metadata=None):                 # half a file lands under the name asked for
            scratch = tmp_path / "scratch.safetensors"
            real_save(tensors, scratch, metadata=metadata)
            full_disk(path, scratch.read_bytes())
        monkeypatch.setattr(tt, "save", save)
    else:
        def dump(obj, f, **kw):
            full_disk(f.name, json.dumps(obj, **kw).encode())
        monkeypatch.setattr(ckpt.json, "dump", dump)

    rc, err = run_main(capsys, *common, "--max-steps", "4", "--resume")
    monkeypatch.undo()
    assert rc != 0 and "No space left on device" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    # the previous checkpoint is intact and loadable
    assert ckpt.read_meta(out)["step"] == 2
    assert_same(weights(out), before)
    ckpt.load_model(out)
    # and the run resumes to the same weights as the same run (2 steps, then resumed to 4) that never failed
    assert run_main(capsys, *common, "--max-steps", "4", "--resume")[0] == 0
    assert ckpt.read_meta(out)["step"] == 4
    clean = tmp_path / "clean"
    clean_args = ["train", "--data", data, "--out", clean, "--save-every", "2", *TINY]
    assert run_main(capsys, *clean_args, "--max-steps", "2")[0] == 0
    assert run_main(capsys, *clean_args, "--max-steps", "4", "--resume")[0] == 0
    assert_same(weights(out), weights(clean))
    assert not [p for p in os.listdir(out) if ".tmp-" in p or ".step-" in p], "stray files left behind"


def test_a_nan_loss_stops_with_step_and_loss_and_keeps_the_last_good_checkpoint(tmp_path, data, capsys,
                                                                                monkeypatch):
    import tinytensor.functional as F
    out = tmp_path / "run"
    real = F.cross_entropy
    calls = []

    def poisoned(logits, targets, *args, **kwargs):           # the third training step's loss is NaN
        loss = real(logits, targets, *args, **kwargs)
        if kwargs.get("reduction", "mean") == "mean":
            calls.append(1)
            if len(calls) == 3:
                return loss * float("nan")
        return loss
    monkeypatch.setattr(F, "cross_entropy", poisoned)
    args = ["train", "--data", data, "--out", out, "--save-every", "2", *TINY]
    rc, err = run_main(capsys, *args, "--max-steps", "4")
    monkeypatch.undo()
    assert rc != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "loss became nan at step 3" in err and "step 2" in err, err
    assert ckpt.read_meta(out)["step"] == 2
    assert run_main(capsys, *args, "--max-steps", "4", "--resume")[0] == 0


def test_a_second_run_on_the_same_out_refuses_unless_overwrite(tmp_path, data, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", data, "--out", out, *TINY, "--max-steps", "1"]
    assert run_main(capsys, *args)[0] == 0
    saved = {name: (out / name).read_bytes() for name in (ckpt.META, ckpt.MODEL, ckpt.OPTIMIZER)}
    rc, err = run_main(capsys, *args[:-1], "3")
    assert rc != 0 and "already holds a checkpoint" in err and "--overwrite" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1, err
    assert {name: (out / name).read_bytes() for name in saved} == saved      # untouched
    assert run_main(capsys, *args[:-1], "3", "--overwrite")[0] == 0
    assert ckpt.read_meta(out)["step"] == 3


def _start_long_run(out, data, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "gpt", "train", "--data", str(data), "--out", str(out), *TINY,
                             "--max-steps", "1000000", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _saved_step(out):
    """The step in checkpoint.json, read without touching the folder (``ckpt.read_meta`` would finish a save
    in progress, racing the live run), or -1."""
    try:
        return json.loads((out / ckpt.META).read_text(encoding="utf-8"))["step"]
    except (OSError, ValueError, KeyError):
        return -1


def _wait_for_steps(proc, out, at_least, timeout=60):
    """Wait until the running training has committed a checkpoint of step ``at_least`` or later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if _saved_step(out) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError("the run did not get going")


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path, data, capsys):
    out = tmp_path / "run"
    proc = _start_long_run(out, data, "--save-every", "1000000")
    _wait_for_steps(proc, out, 0)                     # the step-0 checkpoint exists: training has started
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    stdout, stderr = stdout.decode(), stderr.decode()
    assert proc.returncode in (0, 130), stderr
    assert "Traceback" not in stderr, stderr
    step = ckpt.read_meta(out)["step"]
    assert step > 0 and f"saved step {step}" in stdout
    ckpt.load_model(out)
    rc, err = run_main(capsys, "train", "--data", data, "--out", out, "--resume", "--max-steps", step + 1)
    assert rc == 0, err
    assert ckpt.read_meta(out)["step"] == step + 1


def test_sigkill_loses_at_most_the_steps_since_the_last_save(tmp_path, data, capsys):
    out = tmp_path / "run"
    proc = _start_long_run(out, data, "--save-every", "1")     # a checkpoint after every step
    _wait_for_steps(proc, out, 3)
    proc.kill()
    proc.communicate(timeout=60)
    meta = ckpt.read_meta(out)                                    # finishes a save cut after its commit point
    assert meta["step"] >= 3
    ckpt.load_model(out)
    rc, err = run_main(capsys, "train", "--data", data, "--out", out, "--resume", "--max-steps", meta["step"] + 1)
    assert rc == 0, err


# ----- one run per folder (issue 15, item 1) -----
def test_a_second_run_on_a_busy_folder_refuses_naming_the_first(tmp_path, data, capsys):
    out = tmp_path / "run"
    first = _start_long_run(out, data, "--save-every", "1")          # a real second process holds the folder
    try:
        _wait_for_steps(first, out, 2)
        for args in (["train", "--data", data, "--out", out, "--resume", "--max-steps", 3],
                     ["train", "--data", data, "--out", out, "--overwrite", *TINY, "--max-steps", 3],
                     ["finetune", "classify", "--data", data, "--init", tmp_path, "--out", out]):
            rc, err = run_main(capsys, *args)
            assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert "in use by another run" in err and f"process {first.pid}" in err, err
        assert first.poll() is None                                 # the first run goes on, undisturbed
        step = _saved_step(out)
        _wait_for_steps(first, out, step + 2)
    finally:
        first.kill()                                                # the lock dies with its process
        first.communicate(timeout=60)
    rc, err = run_main(capsys, "train", "--data", data, "--out", out, "--resume", "--max-steps", _saved_step(out) + 1)
    assert rc == 0, err


def test_a_read_only_out_is_refused_before_any_training(tmp_path, data, capsys, monkeypatch):
    import builtins
    import gpt.models.gpt2
    out = tmp_path / "run"
    common = ["train", "--data", data, "--out", out, *TINY]
    assert run_main(capsys, *common, "--max-steps", "1")[0] == 0
    inside = str(out) + os.sep
    real_os_open, real_open = os.open, builtins.open

    def read_only(path):
        return OSError(errno.EROFS, "Read-only file system", str(path))

    def os_open(path, flags, *args, **kwargs):                  # the folder now sits on a read-only disk
        if str(path).startswith(inside) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise read_only(path)
        return real_os_open(path, flags, *args, **kwargs)

    def builtin_open(path, mode="r", *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and str(path).startswith(inside) and set(mode) & set("wax+"):
            raise read_only(path)
        return real_open(path, mode, *args, **kwargs)
    forwards = []
    real_forward = gpt.models.gpt2.GPT.forward
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", builtin_open)
    monkeypatch.setattr(gpt.models.gpt2.GPT, "forward", lambda self, *a, **k: forwards.append(1) or real_forward(self, *a, **k))
    rc, err = run_main(capsys, *common, "--max-steps", "50", "--save-every", "50", "--resume")
    monkeypatch.undo()
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(out) in err and "Read-only" in err, err
    assert not forwards, "it trained before noticing that nothing can be saved"
