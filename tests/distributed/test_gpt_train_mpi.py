"""``mpiexec -n 2 python -m gpt train`` through the command line (gpt/training/parallel.py).

- Two ranks with a global batch of B windows train as one process with B does: the same losses and,
  after 20 steps, weights within 1e-5 (relative), with and without --grad-accum (dropout 0).
- A job killed with SIGKILL, resumed, stopped with SIGINT (rank 0 saves once, every rank stops, exit
  130) and resumed again ends bit for bit where an uninterrupted 2-rank run ends, dropout on: each rank's
  own dropout stream is in the checkpoint. The resumed parts run with --zero (ZeRO-1), whose steps and
  saved state are those of plain AdamW.
- A rank that raises in the middle of training ends the job with its one-line error, nothing left waiting.
"""
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mpi_helpers import ROOT, clean_env, mpiexec, require_mpi, SCRIPTS

import tinytensor as tt

SMALL = ("--vocab-size", 300, "--context-length", 32, "--emb-dim", 32, "--n-layers", 2, "--n-heads", 4,
         "--batch-size", 8, "--eval-batches", 1, "--sample-tokens", 4)


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    from gpt.data import default_corpus
    path = tmp_path_factory.mktemp("text") / "small.txt"
    path.write_text(default_corpus()[:20000], encoding="utf-8")
    return path


def command(ranks, *args, script=None):
    """``python -m gpt ARGS`` (or a script), under ``mpiexec -n ranks`` when ranks > 0, else alone."""
    python = [sys.executable, str(script)] if script else [sys.executable, "-m", "gpt"]
    return ([mpiexec(), "-n", str(ranks)] if ranks else []) + python + [str(a) for a in args]


def run(ranks, *args, timeout=120, script=None):
    """Run to its end; (exit status, stdout, stderr). A job still running at ``timeout`` is killed and fails."""
    if ranks:
        require_mpi()
    proc = subprocess.Popen(command(ranks, *args, script=script), cwd=ROOT, env=clean_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"still running after {timeout} s (a rank left waiting?)\n{out[-2000:]}\n{err[-2000:]}")
    return proc.returncode, out, err


def weights(folder):
    return tt.load(str(folder / "model.safetensors"))


def history(folder):
    return json.loads((folder / "checkpoint.json").read_text())["history"]


def last_loss(stdout):
    """The loss of the last step, from the progress line that ends the run."""
    return float(re.findall(r"\] \d+/\d+ loss (\S+)", stdout)[-1])


@pytest.mark.parametrize("accum", [1, 2])
def test_two_ranks_train_as_one_process(tmp_path, text, accum):
    require_mpi()
    flags = ("--data", text, *SMALL, "--drop-rate", 0, "--max-steps", 20, "--eval-every", 20, "--save-every", 20,
             "--grad-accum", accum)
    results = {}
    for ranks in (0, 2):
        out = tmp_path / f"ranks{ranks}"
        status, stdout, stderr = run(ranks, "train", *flags, "--out", out)
        assert status == 0, f"{ranks} ranks: exit {status}\n{stdout[-2000:]}\n{stderr[-3000:]}"
        results[ranks] = out, stdout
    (alone, alone_out), (team, team_out) = results[0], results[2]
    assert "data parallel: 2 processes" in team_out and team_out.count("finished 20 steps") == 1   # rank 0 prints
    np.testing.assert_allclose(last_loss(team_out), last_loss(alone_out), rtol=1e-5)
    for ours, theirs in zip(history(team), history(alone), strict=True):
        assert ours["step"] == theirs["step"]
        np.testing.assert_allclose([ours["train_loss"], ours["val_loss"]], [theirs["train_loss"], theirs["val_loss"]],
                                   rtol=1e-5)
    want, got = weights(alone), weights(team)
    assert want.keys() == got.keys()
    for name in want:
        rel = np.linalg.norm(got[name] - want[name]) / np.linalg.norm(want[name])
        assert rel < 1e-5, f"{name}: relative difference {rel:.2e} after 20 steps (accum {accum})"


def start(*args):
    require_mpi()
    return subprocess.Popen(command(2, "train", *args), cwd=ROOT, env=clean_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_checkpoint(proc, folder, step, timeout=60):
    """Wait until ``folder`` holds a checkpoint of ``step`` or later; returns that step."""
    meta, deadline = folder / "checkpoint.json", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before step {step}\n{out[-2000:]}\n{err[-2000:]}")
        try:
            saved = json.loads(meta.read_text())["step"]
        except (OSError, ValueError, KeyError):
            saved = -1
        if saved >= step:
            return saved
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"no checkpoint of step {step} after {timeout} s")


def test_killed_and_interrupted_jobs_resume_exactly(tmp_path, text):
    # a constant learning rate without warmup: the run's steps do not depend on --max-steps, which the
    # stopped runs set far beyond the end so that they are still running when they are stopped
    flags = ("--data", text, *SMALL, "--drop-rate", 0.1, "--schedule", "constant", "--warmup-steps", 0,
             "--eval-every", 1000, "--save-every", 2)
    whole, part = tmp_path / "whole", tmp_path / "part"
    status, stdout, stderr = run(2, "train", *flags, "--max-steps", 30, "--out", whole)
    assert status == 0, stderr[-3000:]

    job = start(*flags, "--max-steps", 1000, "--out", part)
    wait_for_checkpoint(job, part, 4)
    os.killpg(job.pid, signal.SIGKILL)                  # mpiexec and both ranks, at once
    job.communicate()

    job = start(*flags, "--max-steps", 1000, "--resume", "--zero", "--out", part)      # ZeRO-1 from here on
    resumed = json.loads((part / "checkpoint.json").read_text())["step"]
    wait_for_checkpoint(job, part, resumed + 2)
    job.send_signal(signal.SIGINT)                      # Ctrl-C: mpiexec passes it on to every rank
    stdout, stderr = job.communicate(timeout=60)
    assert job.returncode == 130, f"exit {job.returncode}\n{stdout[-2000:]}\n{stderr[-2000:]}"
    saved = re.findall(r"interrupted: saved step (\d+)", stdout)
    assert len(saved) == 1 and stderr.count("stopping (SIGINT)") == 1, (stdout[-2000:], stderr[-2000:])
    # the command it gives is the one that continues the run: with mpiexec, with its -n and its folder
    assert f"continue with: mpiexec -n 2 python -m gpt train --resume --out {part}\n" in stdout, stdout[-2000:]
    assert json.loads((part / "checkpoint.json").read_text())["step"] == int(saved[0]) < 30

    status, stdout, stderr = run(2, "train", *flags, "--max-steps", 30, "--resume", "--out", part)
    assert status == 0, stderr[-3000:]
    for name in ("model.safetensors", "optimizer.safetensors"):
        want, got = tt.load(str(whole / name)), tt.load(str(part / name))
        assert want.keys() == got.keys()
        for key in want:
            assert np.array_equal(want[key], got[key]), f"{name}: {key} differs from the uninterrupted run"
    states = [json.loads((folder / "checkpoint.json").read_text())["parallel"] for folder in (whole, part)]
    assert states[0] == states[1] and states[0]["world_size"] == 2
    assert states[0]["rng"][0] != states[0]["rng"][1]                      # each rank its own dropout stream


def test_a_rank_that_raises_ends_the_job_with_its_message(tmp_path, text):
    out = tmp_path / "run"
    status, stdout, stderr = run(2, "train", "--data", text, *SMALL, "--max-steps", 1000, "--out", out,
                                 script=SCRIPTS / "train_failing_rank.py", timeout=60)
    assert status == 1, f"exit {status}\n{stdout[-2000:]}\n{stderr[-2000:]}"
    line = "error: rank 1 of 2: unexpected RuntimeError: rank 1 failed on purpose at step 3"
    assert re.search(f"^{re.escape(line)}", stderr, re.MULTILINE), stderr[-3000:]
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 0      # rank 0's step-0 checkpoint, whole


@pytest.mark.parametrize("case", ["odd batch", "folder in use"])
def test_rank_zero_refusing_to_start_ends_the_job_with_one_line(tmp_path, text, case):
    # before the run lock was taken after joining the job, a locked folder left rank 1 waiting forever
    out = tmp_path / "run"
    out.mkdir()
    with open(out / "run.lock", "w") as lock:
        if case == "folder in use":
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        status, stdout, stderr = run(2, "train", "--data", text, *SMALL, "--out", out,
                                     *(["--batch-size", 7] if case == "odd batch" else []), timeout=60)
    assert status == 2, f"exit {status}\n{stdout[-2000:]}\n{stderr[-2000:]}"
    said = "does not split over the 2 processes" if case == "odd batch" else "is in use by another run"
    assert stderr.count("error:") == 1 and said in stderr and "Abort" not in stderr, stderr[-2000:]
