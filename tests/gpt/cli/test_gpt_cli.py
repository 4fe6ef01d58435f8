"""The command line: train then sample, --gpt2, the progress bar, one-line errors for every mistake (the
last resort and --debug too), exit statuses by error type, and help that states every default."""
import argparse
import io
import json
import shutil
import warnings

import pytest

import gpt.__main__ as gpt_main
from gpt.errors import RunFailed, TrainingError, UserError
from gpt.training.progress import ProgressBar, SafeOutput

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
    from gpt.data.corpus import help_text
    data = folder / "text.txt"
    data.write_text(help_text()[:20000], encoding="utf-8")
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
    _one_line_error(run_cli("train", "--bogus"), "python -m gpt train: error: unrecognized arguments: --bogus")
    _one_line_error(run_cli("finetune", "classify", "--data", "d", "--init", "i", "--out", "o", "--bogus"),
                    "python -m gpt finetune classify: error: unrecognized arguments: --bogus")
    _one_line_error(run_cli("sample", "--checkpoint", tmp_path / "none"), "no checkpoint folder")
    _one_line_error(run_cli("sample", "--checkpoint", out / "model.safetensors"),
                    f"{out / 'model.safetensors'} is a file: give the folder that holds the checkpoint ({out})")
    _one_line_error(run_cli("chat", "--checkpoint", out / "model.safetensors", "hi"),
                    "is a file: give the folder that holds the checkpoint")
    _one_line_error(run_cli("sample", "--gpt2", tmp_path), "encoder.json")
    _one_line_error(run_cli("train", "--data", data, "--out", tmp_path / "y", "--context-length", 4000,
                            "--vocab-size", 300), "windows")
    # a checkpoint folder whose weights come from another model shape
    other = tmp_path / "other"
    shutil.copytree(out, other)
    from gpt.training import checkpoint as ckpt
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
    assert "\r" not in log.getvalue() and len(lines) == 9        # from step 3: two steps give a first estimate
    assert lines[-2].startswith("[########################] 10/10 loss 0.1000") and "ETA 0s" in lines[-2]
    tty = io.StringIO()
    bar = ProgressBar(5, stream=tty, tty=True)
    for step in range(1, 6):
        bar.update(step, loss=0.5, tokens=10, force=True)
    bar.write("hello")
    bar.close()
    assert tty.getvalue().count("\r") >= 5 and "hello\n" in tty.getvalue()


def test_cuda_without_a_gpu_is_one_line_before_any_work(tmp_path):
    from tinytensor import backend
    if backend.cuda_available():
        pytest.skip("this machine has a GPU: --device cuda would run")
    _one_line_error(run_cli("train", "--device", "cuda", "--out", tmp_path / "c"), "--device cuda")
    assert not (tmp_path / "c").exists()
    _one_line_error(run_cli("sample", "--checkpoint", tmp_path / "none", "--device", "cuda"), "--device cuda")


# ----- help -----

def _leaf_parsers(parser, path=()):
    """(command path, parser) for every parser under ``parser`` that has no subcommands."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaf_parsers(child, path + (name,))


def _effective_default(command, action):
    if action.default is argparse.SUPPRESS:       # train's defaults live in TrainConfig
        from gpt.training.settings import TrainConfig
        return getattr(TrainConfig(), action.dest, None) if command == ("train",) else None
    return action.default


def test_every_option_of_every_command_says_its_default():
    leaves = dict(_leaf_parsers(gpt_main.build_parser()))
    assert {("train",), ("sample",), ("finetune", "classify"), ("finetune", "instruct"), ("classify",),
            ("make-data", "instruct"), ("make-data", "classify")} <= set(leaves)
    for command, parser in leaves.items():
        required_groups = {id(a) for g in parser._mutually_exclusive_groups if g.required for a in g._group_actions}
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            flag = f"{' '.join(command)} {action.option_strings[-1]}"
            if action.required or id(action) in required_groups:
                assert action.help, flag
                continue
            text = (action.help or "").replace("%%", "%")
            assert "default" in text, f"{flag}: help does not state its default: {text!r}"
            default = _effective_default(command, action)
            if isinstance(default, (int, float, str)) and not isinstance(default, bool):
                assert str(default) in text or repr(default) in text, f"{flag}: default {default!r} not in {text!r}"
    assert "TINYTENSOR_DEBUG" in leaves[("train",)].format_help()


def test_the_preset_learning_rates_are_in_the_help():
    train = dict(_leaf_parsers(gpt_main.build_parser()))[("train",)]
    text = next(a.help for a in train._actions if a.dest == "lr")
    assert "gpt2-small 0.0006" in text and "tiny 0.002" in text


# ----- exit statuses, the last resort, --debug, warnings -----

def _run_main(monkeypatch, capsys, error, *argv, env_debug=None):
    """``python -m gpt train ARGV`` in-process with the training call replaced by one raising ``error``."""
    import importlib
    train_module = importlib.import_module("gpt.training.launch")     # what cmd_train calls

    def broken(*a, **k):
        if isinstance(error, Warning):
            warnings.warn(error)
            return {"exit_code": 0}
        raise error
    monkeypatch.setattr(train_module, "train", broken)
    if env_debug is not None:
        monkeypatch.setenv("TINYTENSOR_DEBUG", env_debug)
    else:
        monkeypatch.delenv("TINYTENSOR_DEBUG", raising=False)
    rc = gpt_main.main(["train", *argv])
    out, err = capsys.readouterr()
    return rc, err


@pytest.mark.parametrize("error,status", [(TrainingError("the loss became nan in the data folder"), 2),
                                          (UserError("x"), 2), (RunFailed("anything"), 1),
                                          (FileNotFoundError("no such file: x"), 2), (BrokenPipeError(), 141),
                                          (KeyboardInterrupt(), 130)])
def test_the_exit_status_comes_from_the_error_type_not_its_words(monkeypatch, capsys, error, status):
    rc, err = _run_main(monkeypatch, capsys, error)
    assert rc == status and "Traceback" not in err
    if isinstance(error, BrokenPipeError):
        assert err == ""                          # output to a closed pipe is dropped, not reported


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    rc, err = _run_main(monkeypatch, capsys, AttributeError("'list' object has no attribute 'items'"))
    assert rc == 1 and err.splitlines() == [
        "error: unexpected AttributeError: 'list' object has no attribute 'items'; rerun with --debug "
        "(or TINYTENSOR_DEBUG=1) for the traceback"]
    for argv, env in (((), "1"), (("--debug",), None)):
        rc, err = _run_main(monkeypatch, capsys, AttributeError("boom"), *argv, env_debug=env)
        assert rc == 1 and "Traceback (most recent call last)" in err and "in broken" in err
        assert err.splitlines()[-1] == "error: unexpected AttributeError: boom"
    monkeypatch.delenv("TINYTENSOR_DEBUG", raising=False)
    assert gpt_main.main(["--debug", "train"]) == 1                        # before the command works too
    assert "Traceback" in capsys.readouterr().err


def test_a_warning_is_one_line(monkeypatch, capsys):
    rc, err = _run_main(monkeypatch, capsys, UserWarning("the vocabulary is small"))
    assert rc == 0 and err == "warning: the vocabulary is small\n"


def test_a_diverging_run_exits_1_with_one_line_errors_and_warnings(tmp_path, trained, capsys):
    data, _, _ = trained
    rc = gpt_main.main(["train", "--data", str(data), "--out", str(tmp_path / "nan"), *map(str, TRAIN), "--lr", "1e30",
                        "--grad-clip", "0"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and all(line.startswith(("warning: ", "error: ")) for line in lines), lines
    assert lines[-1].startswith("error: the loss became") and "last good checkpoint (step 0)" in lines[-1]


def test_a_checkpoint_with_wrong_types_is_one_line_even_unforeseen(tmp_path, trained, capsys):
    """checkpoint.json's "args" a list: whatever check catches it, the user sees one line, no traceback."""
    _, out, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    meta = json.loads((bad / "checkpoint.json").read_text())
    meta["args"] = [1, 2]
    (bad / "checkpoint.json").write_text(json.dumps(meta))
    assert gpt_main.main(["train", "--out", str(bad), "--resume"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


def test_safe_output_drops_what_follows_a_closed_pipe():
    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")
    failures = []
    out = SafeOutput(Closed(), on_failure=failures.append)
    assert out.write("one\n") == 4 and out.write("two\n") == 4
    out.flush()
    assert len(failures) == 1 and isinstance(failures[0], BrokenPipeError)


# ----- flags -----

def test_resume_with_overwrite_is_refused_on_the_command_line(tmp_path, trained):
    _, out, _ = trained
    _one_line_error(run_cli("train", "--out", out, "--resume", "--overwrite"), "--resume", "--overwrite")


def test_a_negative_seed_names_the_flag():
    _one_line_error(run_cli("train", "--seed", "-5"), "--seed", "-5", ">= 0")
    _one_line_error(run_cli("sample", "--checkpoint", "x", "--seed", "-5"), "--seed")


def test_training_commands_tune_the_heap(monkeypatch, tmp_path, trained):
    """Importing tinytensor leaves malloc alone; `train` (and `finetune`, see test_finetune_cli) switch
    heap tuning on."""
    from tinytensor.schedule import heap
    calls = []
    monkeypatch.setattr(heap, "tune", lambda: calls.append(1) or True)
    data, _, _ = trained
    rc = gpt_main.main(["train", "--data", str(data), "--out", str(tmp_path / "h"), *map(str, TRAIN),
                        "--max-steps", "1"])
    assert rc == 0 and calls == [1]


def test_reference_ops_without_the_switch_is_one_line(monkeypatch, capsys):
    import tinytensor as tt
    monkeypatch.delattr(tt, "use_reference_ops", raising=False)
    assert gpt_main.main(["train", "--reference-ops", "--max-steps", "1"]) == 2
    assert capsys.readouterr().err.strip() == \
        "error: --reference-ops: this tinytensor has no reference ops (tt.use_reference_ops)"


def test_reference_ops_give_the_same_losses(tmp_path, trained):
    import tinytensor as tt
    if not hasattr(tt, "use_reference_ops"):
        pytest.skip("tinytensor has no tt.use_reference_ops yet (the reference-ops branch adds it)")
    data, _, _ = trained
    runs = {}
    for name, extra in (("fused", []), ("reference", ["--reference-ops"])):
        p = run_cli("train", "--data", data, "--out", tmp_path / name, *TRAIN, "--max-steps", 2, "--eval-every", 2,
                    *extra)
        assert p.returncode == 0, p.stderr
        runs[name] = [float(line.split("train loss ")[1].split()[0]) for line in p.stdout.splitlines()
                      if "| train loss" in line]
    assert len(runs["fused"]) == 2 and runs["fused"] == pytest.approx(runs["reference"], abs=2e-4)


def test_sample_draws_by_default_as_the_training_run_samples():
    # what `python -m gpt train` showed at each evaluation is what `sample` gives with no flags (walk, #27)
    from gpt.cli import build_parser
    from gpt.training.pretrain import SAMPLE_TEMPERATURE, SAMPLE_TOP_K
    ns = build_parser().parse_args(["sample", "--checkpoint", "runs/tiny"])
    assert (ns.temperature, ns.top_k) == (SAMPLE_TEMPERATURE, SAMPLE_TOP_K)
    chat = build_parser().parse_args(["chat", "--checkpoint", "runs/sft"])
    assert (chat.temperature, chat.top_k) == (0.0, None)                   # chat stays greedy, as evaluated
