"""Skipped float16 steps are bounded, counted and said (issue 26, 8).

A scale of 1e300 in checkpoint.json passed the schema and every resumed step was skipped in silence
("finished 60 steps", exit 0, weights unchanged); gradients that stayed non-finite halved the scale to
0.0 after ~1,100 skips and a ZeroDivisionError followed.
"""
import json

import numpy as np
import pytest

import tinytensor as tt
from gpt.__main__ import main
from gpt.data import default_corpus

SMALL = ["--vocab-size", "300", "--context-length", "32", "--emb-dim", "32", "--n-layers", "2", "--n-heads", "4",
         "--batch-size", "8", "--eval-batches", "1", "--sample-tokens", "4", "--eval-every", "100",
         "--dtype", "float16"]


class _Opt:
    def __init__(self):
        self.param_groups = [{"params": [tt.tensor([1.0, 2.0], requires_grad=True)]}]

    def step(self):
        pass


@pytest.mark.parametrize("scale", [1e300, 0.0, 1e-300, float("inf")])
def test_an_unusable_scale_is_refused_when_loaded(scale):
    with pytest.raises(ValueError, match="scale"):
        tt.GradScaler().load_state_dict({"scale": scale})


def test_gradients_that_stay_non_finite_stop_with_one_error_not_a_zero_scale():
    scaler, opt = tt.GradScaler(), _Opt()
    with pytest.raises(FloatingPointError, match="no step can succeed"):
        for _ in range(2000):
            opt.param_groups[0]["params"][0].grad = np.array([np.inf, 1.0], dtype=np.float32)
            scaler.unscale_(opt)
            scaler.update()
            assert scaler.get_scale() > 0.0
    assert scaler.get_scale() >= tt.GradScaler.MIN_SCALE


def test_the_scale_never_grows_past_its_bound():
    scaler, opt = tt.GradScaler(init_scale=tt.GradScaler.MAX_SCALE, growth_interval=1), _Opt()
    for _ in range(5):
        opt.param_groups[0]["params"][0].grad = np.array([1.0, 1.0], dtype=np.float32)
        scaler.unscale_(opt)
        scaler.update()
    assert scaler.get_scale() == tt.GradScaler.MAX_SCALE


@pytest.fixture
def run_folder(tmp_path):
    text = tmp_path / "small.txt"
    text.write_text(default_corpus()[:20000], encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--data", str(text), *SMALL, "--max-steps", "4", "--out", str(out)]) == 0
    return text, out


def _set_scale(out, scale):
    meta = json.loads((out / "checkpoint.json").read_text())
    meta["grad_scaler"]["scale"] = scale
    (out / "checkpoint.json").write_text(json.dumps(meta))


def test_resuming_with_a_huge_scale_is_refused_in_one_line(run_folder, capsys):
    text, out = run_folder
    _set_scale(out, 1e300)
    capsys.readouterr()
    status = main(["train", "--resume", "--out", str(out), "--max-steps", "24"])
    err = capsys.readouterr().err
    assert status == 2 and "scale" in err and len(err.strip().splitlines()) == 1, err


def test_skipped_steps_are_counted_and_said(run_folder, capsys):
    text, out = run_folder
    _set_scale(out, tt.GradScaler.MAX_SCALE)           # float16 gradients overflow until it has come down
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--max-steps", "30"]) == 0
    said = capsys.readouterr()
    assert "float16 steps in a row were skipped" in said.out + said.err, said
    assert "skipped" in [line for line in said.out.splitlines() if line.startswith("finished")][0], said.out
