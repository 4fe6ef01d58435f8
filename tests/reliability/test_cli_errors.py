"""Bad input to the command lines ends in one clear line on stderr and a non-zero exit, never a traceback.

Covered: every command of ``python -m bpe`` (train, encode, decode, show, stats), ``python -m gpt train``
and ``python -m gpt sample``, and the fine-tuning commands (``python -m gpt finetune ...``, which is also
``python -m gpt.finetune``).

Each case runs ``python -m bpe ...`` (or ``python -m gpt ...``) in a subprocess, the way a user does.
For argument syntax errors (``--vocab-size abc``) argparse prints its usage block first and exits 2; the
rule is then checked on what follows the usage block.

Most cases call the command's ``main(argv)`` in-process (an exception that escapes ``main`` fails the test,
as a traceback would); ``test_end_to_end`` runs a sample of them as real subprocesses.
"""
import contextlib
import importlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_subprocess(module, *args, cwd, stdin=b""):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, input=stdin,
                          capture_output=True, timeout=120, env=env)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def run_cli(module, *args, cwd, stdin=b""):
    """``python -m module args`` in-process: (exit status, stdout, stderr)."""
    main = importlib.import_module(f"{module}.__main__").main
    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_stdin = os.getcwd(), sys.stdin
    os.chdir(cwd)
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([str(a) for a in args])
            except SystemExit as e:                       # argparse: --help, or an argument error
                rc = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(old_cwd)
        sys.stdin = old_stdin
    return rc, out.getvalue(), err.getvalue()


def error_lines(stderr):
    """stderr's lines without argparse's usage block (``usage: ...`` and its indented continuation)."""
    lines, in_usage = [], False
    for line in stderr.splitlines():
        if line.startswith("usage: "):
            in_usage = True
            continue
        if in_usage and line.startswith(" "):
            continue
        in_usage = False
        if line.strip():
            lines.append(line)
    return lines


def assert_one_clear_line(rc, stderr, *expected):
    """Non-zero exit, no traceback, exactly one error line, containing each of ``expected``."""
    lines = error_lines(stderr)
    assert rc != 0, f"exit status 0 for bad input; stderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{stderr}"
    assert "error" in lines[0].lower(), lines[0]
    for part in expected:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"


# ----- files that are wrong in every way a user manages -----

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    import pydoc_data.topics
    topics = pydoc_data.topics.topics
    (d / "good.txt").write_text("".join(topics[k] for k in sorted(topics))[:6000], encoding="utf-8")
    (d / "latin1.txt").write_bytes("café olé, naïve façade\n".encode("latin-1"))
    (d / "empty.txt").write_bytes(b"")
    (d / "folder").mkdir()
    rc, _, err = run_subprocess("bpe", "train", "--input", d / "good.txt", "--vocab-size", 300, "--out", d / "tok.bpe",
                         "--special", "<|endoftext|>", cwd=d)
    assert rc == 0, err
    good = (d / "tok.bpe").read_text(encoding="utf-8")
    lines = good.splitlines()
    damaged = {
        "truncated.bpe": good[: len(good) // 2],
        "magic.bpe": "not-a-tokenizer 1\n" + "\n".join(lines[1:]) + "\n",
        "version.bpe": "bpe-tokenizer 99\n" + "\n".join(lines[1:]) + "\n",
        "badmerge.bpe": "\n".join(lines[:-1] + ["5 99999"]) + "\n",
        "garbage.bpe": "\x00\x01 hello\n",
    }
    for name, text in damaged.items():
        (d / name).write_text(text, encoding="utf-8")
    (d / "binary.bpe").write_bytes(bytes(range(256)))
    (d / "empty.bpe").write_bytes(b"")
    gpt2_bad = d / "gpt2_bad"
    gpt2_bad.mkdir()
    (gpt2_bad / "encoder.json").write_text("{not json", encoding="utf-8")
    (gpt2_bad / "vocab.bpe").write_text("#version: 0.2\n", encoding="utf-8")
    return d


# ----- python -m bpe -----

def test_bpe_lists_the_commands_tested_here():
    rc, out, _ = run_subprocess("bpe", "--help", cwd=ROOT)
    assert rc == 0
    assert "{train,encode,decode,show,stats}" in out, "a new command: add its bad-input cases below"


TRAIN_CASES = {
    "missing input": (["--input", "missing.txt", "--vocab-size", 300], ["missing.txt"]),
    "input is a folder": (["--input", "folder", "--vocab-size", 300], ["folder"]),
    "input not UTF-8": (["--input", "latin1.txt", "--vocab-size", 300], ["latin1.txt", "UTF-8"]),
    "empty input": (["--input", "empty.txt", "--vocab-size", 300], ["empty"]),
    "vocab size not a number": (["--input", "good.txt", "--vocab-size", "abc"], ["--vocab-size", "abc"]),
    "vocab size too small": (["--input", "good.txt", "--vocab-size", 10], ["10"]),
    "vocab size negative": (["--input", "good.txt", "--vocab-size", -5], ["-5"]),
    "vocab size a float": (["--input", "good.txt", "--vocab-size", "3.5"], ["--vocab-size"]),
    "bad pattern": (["--input", "good.txt", "--vocab-size", 300, "--pattern", "(["], ["pattern"]),
}


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_bpe_train_bad_input(files, case):
    args, expected = TRAIN_CASES[case]
    out = files / "out.bpe"
    rc, _, err = run_cli("bpe", "train", *args, "--out", out, cwd=files)
    assert_one_clear_line(rc, err, *expected)
    assert not out.exists()


@pytest.mark.parametrize("where", ["missing_folder/tok.bpe", "folder"])
def test_bpe_train_output_that_cannot_be_written(files, where):
    before = sorted(p.name for p in files.rglob("*"))
    rc, _, err = run_cli("bpe", "train", "--input", "good.txt", "--vocab-size", 300, "--out", where, cwd=files)
    assert_one_clear_line(rc, err)
    assert sorted(p.name for p in files.rglob("*")) == before, "a temporary file was left behind"


TOKENIZER_CASES = {
    "missing tokenizer": (["--tokenizer", "missing.bpe"], ["missing.bpe"]),
    "tokenizer is a folder": (["--tokenizer", "folder"], ["folder"]),
    "tokenizer not UTF-8": (["--tokenizer", "binary.bpe"], ["binary.bpe"]),
    "tokenizer is a text file": (["--tokenizer", "good.txt"], ["good.txt", "not a bpe tokenizer"]),
    "tokenizer truncated": (["--tokenizer", "truncated.bpe"], ["truncated.bpe"]),
    "tokenizer wrong magic": (["--tokenizer", "magic.bpe"], ["magic.bpe"]),
    "tokenizer other version": (["--tokenizer", "version.bpe"], ["version.bpe", "version"]),
    "tokenizer bad merge": (["--tokenizer", "badmerge.bpe"], ["badmerge.bpe"]),
    "tokenizer garbage": (["--tokenizer", "garbage.bpe"], ["garbage.bpe"]),
    "tokenizer empty": (["--tokenizer", "empty.bpe"], ["empty.bpe"]),
    "no tokenizer": ([], ["--tokenizer"]),
    "gpt2 folder missing": (["--gpt2", "missing_dir"], ["missing_dir"]),
    "gpt2 folder is a file": (["--gpt2", "good.txt"], ["good.txt"]),
    "gpt2 files damaged": (["--gpt2", "gpt2_bad"], ["encoder.json"]),
}


# every case through encode; the other commands share the loader, so a few cases each keep the suite fast
TOKENIZER_RUNS = [("encode", case) for case in TOKENIZER_CASES] + [
    (command, case) for command in ("decode", "show", "stats")
    for case in ("missing tokenizer", "tokenizer is a folder", "tokenizer other version", "gpt2 files damaged")]


@pytest.mark.parametrize("command,case", TOKENIZER_RUNS)
def test_bpe_bad_tokenizer(files, command, case):
    args, expected = TOKENIZER_CASES[case]
    text = ["1", "2"] if command == "decode" else ["some text"]
    rc, _, err = run_cli("bpe", command, *args, *text, cwd=files)
    assert_one_clear_line(rc, err, *expected)


TEXT_CASES = {
    "missing input": (["--input", "missing.txt"], ["missing.txt"]),
    "input is a folder": (["--input", "folder"], ["folder"]),
    "input not UTF-8": (["--input", "latin1.txt"], ["latin1.txt", "UTF-8"]),
}


@pytest.mark.parametrize("command", ["encode", "show", "stats"])
@pytest.mark.parametrize("case", TEXT_CASES)
def test_bpe_bad_text_file(files, command, case):
    args, expected = TEXT_CASES[case]
    rc, _, err = run_cli("bpe", command, "--tokenizer", "tok.bpe", *args, cwd=files)
    assert_one_clear_line(rc, err, *expected)


@pytest.mark.parametrize("ids,expected", [(["12", "abc"], ["'abc'"]), (["1.5"], ["'1.5'"]),
                                           (["99999"], ["99999"]), (["--", "-1"], ["-1"])])
def test_bpe_decode_bad_ids(files, ids, expected):
    rc, _, err = run_cli("bpe", "decode", "--tokenizer", "tok.bpe", *ids, cwd=files)
    assert_one_clear_line(rc, err, *expected)


def test_bpe_decode_bad_ids_on_stdin(files):
    rc, _, err = run_cli("bpe", "decode", "--tokenizer", "tok.bpe", cwd=files, stdin=b"1 2 x7")
    assert_one_clear_line(rc, err, "'x7'")


def test_bpe_special_token_text_is_refused(files):
    rc, _, err = run_cli("bpe", "encode", "--tokenizer", "tok.bpe", "a<|endoftext|>", cwd=files)
    assert_one_clear_line(rc, err, "special token")


def test_bpe_unknown_command_and_bad_choice(files):
    rc, _, err = run_cli("bpe", "tokenize", cwd=files)
    assert_one_clear_line(rc, err, "tokenize")
    rc, _, err = run_cli("bpe", "show", "--tokenizer", "tok.bpe", "--color", "pink", "x", cwd=files)
    assert_one_clear_line(rc, err, "pink")


# ----- python -m gpt -----

GPT_TINY = ["--vocab-size", "260", "--context-length", "16", "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2",
            "--batch-size", "2", "--eval-batches", "1", "--sample-tokens", "2", "--max-steps", "1"]


@pytest.fixture(scope="module")
def runs(files):
    """A finished 1-step run, and copies of it damaged in the ways a checkpoint folder gets damaged."""
    import json
    import shutil
    d = files
    (d / "small.txt").write_text((d / "good.txt").read_text(encoding="utf-8")[:3000], encoding="utf-8")
    rc, _, err = run_cli("gpt", "train", "--data", "small.txt", "--out", "run", *GPT_TINY, cwd=d)
    assert rc == 0, err

    def damaged(name, edit_meta=None, files_edit=None):
        shutil.copytree(d / "run", d / name)
        if edit_meta:
            path = d / name / "checkpoint.json"
            meta = json.loads(path.read_text(encoding="utf-8"))
            edit_meta(meta)
            path.write_text(json.dumps(meta), encoding="utf-8")
        if files_edit:
            files_edit(d / name)

    damaged("other_version", lambda m: m.update(version=99))
    damaged("other_shape", lambda m: m["config"].update(emb_dim=32))      # weights of emb 16, config of 32
    damaged("other_format", lambda m: m.update(format="something-else"))
    damaged("other_step", lambda m: m.update(step=7))                     # weights of step 1, meta of step 7
    damaged("no_meta", files_edit=lambda p: (p / "checkpoint.json").unlink())
    damaged("bad_json", files_edit=lambda p: (p / "checkpoint.json").write_text('{"format": ', encoding="utf-8"))
    damaged("truncated_model", files_edit=lambda p: (p / "model.safetensors").write_bytes(
        (p / "model.safetensors").read_bytes()[:1000]))
    damaged("no_model", files_edit=lambda p: (p / "model.safetensors").unlink())
    damaged("bad_tokenizer", files_edit=lambda p: (p / "tokenizer.bpe").write_text("junk\n", encoding="utf-8"))
    damaged("version_text", lambda m: m.update(version="abc"))
    damaged("no_config", lambda m: m.pop("config"))
    (d / "labels.tsv").write_text("".join(f"{'ab'[i % 2]}\ttext number {i}\n" for i in range(20)), encoding="utf-8")
    return d


def test_gpt_lists_the_commands_tested_here():
    rc, out, _ = run_subprocess("gpt", "--help", cwd=ROOT)
    assert rc == 0
    assert "{train,sample," in out.replace(" ", ""), out


GPT_TRAIN_CASES = {
    "missing data": (["--data", "missing.txt", "--out", "new"], ["missing.txt"]),
    "data is a folder": (["--data", "folder", "--out", "new"], ["folder"]),
    "data not UTF-8": (["--data", "latin1.txt", "--out", "new"], ["latin1.txt", "UTF-8"]),
    "data empty": (["--data", "empty.txt", "--out", "new"], ["empty.txt"]),
    "steps not a number": (["--data", "small.txt", "--out", "new", "--max-steps", "abc"], ["--max-steps", "abc"]),
    "steps zero": (["--data", "small.txt", "--out", "new", "--max-steps", "0"], ["--max-steps"]),
    "batch a float": (["--data", "small.txt", "--out", "new", "--batch-size", "1.5"], ["--batch-size"]),
    "lr negative": (["--data", "small.txt", "--out", "new", "--lr", "-1"], ["--lr"]),
    "lr nan": (["--data", "small.txt", "--out", "new", "--lr", "nan"], ["--lr"]),
    "vocab too small": (["--data", "small.txt", "--out", "new", "--vocab-size", "10"], ["--vocab-size"]),
    "heads do not divide": (["--data", "small.txt", "--out", "new", "--n-heads", "3"], ["--n-heads", "--emb-dim"]),
    "context longer than the text": (["--data", "small.txt", "--out", "new", "--context-length", "100000"],
                                     ["--context-length"]),
    "missing tokenizer": (["--data", "small.txt", "--out", "new", "--tokenizer", "missing.bpe"], ["missing.bpe"]),
    "damaged tokenizer": (["--data", "small.txt", "--out", "new", "--tokenizer", "truncated.bpe"],
                          ["truncated.bpe"]),
    "out is a file": (["--data", "small.txt", "--out", "small.txt"], ["small.txt"]),
    "out holds a run": (["--data", "small.txt", "--out", "run"], ["already holds a checkpoint", "--overwrite"]),
    "resume nothing": (["--data", "small.txt", "--out", "nothing_here", "--resume"], ["nothing_here"]),
    "resume other version": (["--data", "small.txt", "--out", "other_version", "--resume"], ["version"]),
    "resume other shape": (["--data", "small.txt", "--out", "other_shape", "--resume"], ["shape"]),
    "resume other format": (["--data", "small.txt", "--out", "other_format", "--resume"], ["other_format"]),
    "resume inconsistent": (["--data", "small.txt", "--out", "other_step", "--resume"], ["other_step"]),
    "resume bad json": (["--data", "small.txt", "--out", "bad_json", "--resume"], ["checkpoint.json"]),
    "resume truncated model": (["--data", "small.txt", "--out", "truncated_model", "--resume"],
                               ["model.safetensors"]),
    "resume changed setting": (["--data", "small.txt", "--out", "run", "--resume", "--emb-dim", "32"],
                               ["--emb-dim"]),
    "resume other data": (["--data", "good.txt", "--out", "run", "--resume"], ["good.txt"]),
    "resume and overwrite": (["--out", "run", "--resume", "--overwrite"], ["--resume", "--overwrite"]),
    "seed negative": (["--data", "small.txt", "--out", "new", "--seed", "-5"], ["--seed", "-5"]),
    "seed not a number": (["--data", "small.txt", "--out", "new", "--seed", "x"], ["--seed", "'x'"]),
}


@pytest.mark.parametrize("case", GPT_TRAIN_CASES)
def test_gpt_train_bad_input(runs, case):
    args, expected = GPT_TRAIN_CASES[case]
    tiny = GPT_TINY if "--resume" not in args else []
    rc, _, err = run_cli("gpt", "train", *tiny, *args, cwd=runs)
    assert_one_clear_line(rc, err, *expected)


GPT_SAMPLE_CASES = {
    "missing checkpoint": (["--checkpoint", "missing_dir"], ["missing_dir"]),
    "checkpoint is a file": (["--checkpoint", "small.txt"], ["small.txt"]),
    "folder without checkpoint": (["--checkpoint", "folder"], ["folder"]),
    "no checkpoint.json": (["--checkpoint", "no_meta"], ["no_meta"]),
    "other version": (["--checkpoint", "other_version"], ["version"]),
    "other shape": (["--checkpoint", "other_shape"], ["shape"]),
    "other format": (["--checkpoint", "other_format"], ["other_format"]),
    "inconsistent": (["--checkpoint", "other_step"], ["other_step"]),
    "bad json": (["--checkpoint", "bad_json"], ["checkpoint.json"]),
    "truncated model": (["--checkpoint", "truncated_model"], ["model.safetensors"]),
    "missing model": (["--checkpoint", "no_model"], ["model.safetensors"]),
    "damaged tokenizer": (["--checkpoint", "bad_tokenizer"], ["tokenizer.bpe"]),
    "gpt2 folder missing": (["--gpt2", "missing_dir"], ["missing_dir"]),
    "gpt2 folder empty": (["--gpt2", "folder"], ["folder"]),
    "tokens not a number": (["--checkpoint", "run", "--max-new-tokens", "abc"], ["--max-new-tokens", "abc"]),
    "tokens negative": (["--checkpoint", "run", "--max-new-tokens", "-1"], ["--max-new-tokens"]),
    "temperature negative": (["--checkpoint", "run", "--temperature", "-1"], ["--temperature"]),
    "top-p above 1": (["--checkpoint", "run", "--top-p", "2"], ["--top-p"]),
    "top-k zero": (["--checkpoint", "run", "--top-k", "0"], ["--top-k"]),
    "seed not a number": (["--checkpoint", "run", "--seed", "x"], ["--seed"]),
    "no source": ([], ["--checkpoint"]),
}


@pytest.mark.parametrize("case", GPT_SAMPLE_CASES)
def test_gpt_sample_bad_input(runs, case):
    args, expected = GPT_SAMPLE_CASES[case]
    rc, _, err = run_cli("gpt", "sample", "--max-new-tokens", "2", *args, cwd=runs)
    assert_one_clear_line(rc, err, *expected)


@pytest.mark.parametrize("folder", ["no_config", "version_text"])
def test_gpt_sample_damaged_checkpoint_json_names_the_file(runs, folder):
    rc, _, err = run_cli("gpt", "sample", "--checkpoint", folder, "--max-new-tokens", "2", cwd=runs)
    assert_one_clear_line(rc, err, folder)


FINETUNE_CASES = {
    "missing data": (["classify", "--data", "missing.tsv", "--init", "run", "--out", "ft"], ["missing.tsv"]),
    "missing init": (["classify", "--data", "labels.tsv", "--init", "missing_dir", "--out", "ft"], ["missing_dir"]),
    "lr nan": (["classify", "--data", "good.txt", "--init", "run", "--out", "ft", "--lr", "nan"], ["--lr", "nan"]),
    "epochs a word": (["instruct", "--data", "good.txt", "--init", "run", "--out", "ft", "--epochs", "x"],
                      ["--epochs", "positive integer"]),
    "seed negative": (["instruct", "--data", "good.txt", "--init", "run", "--out", "ft", "--seed", "-1"], ["--seed"]),
    "out is the init": (["classify", "--data", "good.txt", "--init", "run", "--out", "run", "--overwrite"],
                        ["--init folder"]),
    "out holds a run": (["classify", "--data", "good.txt", "--init", "run", "--out", "other_step"],
                        ["already holds", "--overwrite"]),
    "out is a file": (["instruct", "--data", "good.txt", "--init", "run", "--out", "small.txt"], ["small.txt"]),
    "data not instructions": (["instruct", "--data", "good.txt", "--init", "run", "--out", "ft"], ["good.txt"]),
}


@pytest.mark.parametrize("case", FINETUNE_CASES)
def test_gpt_finetune_bad_input(runs, case):
    args, expected = FINETUNE_CASES[case]
    rc, _, err = run_cli("gpt", "finetune", *args, cwd=runs)
    assert_one_clear_line(rc, err, *expected)
    assert not (runs / "ft").exists()


END_TO_END = [
    ("bpe", ["train", "--input", "missing.txt", "--vocab-size", "300", "--out", "x.bpe"], ["missing.txt"]),
    ("bpe", ["train", "--input", "good.txt", "--vocab-size", "abc", "--out", "x.bpe"], ["abc"]),
    ("bpe", ["encode", "--tokenizer", "truncated.bpe", "hi"], ["truncated.bpe"]),
    ("bpe", ["encode", "--tokenizer", "tok.bpe", "--input", "latin1.txt"], ["latin1.txt"]),
    ("gpt", ["train", "--data", "latin1.txt", "--out", "new", *GPT_TINY], ["latin1.txt"]),
    ("gpt", ["train", "--data", "small.txt", "--out", "new", "--max-steps", "abc"], ["abc"]),
    ("gpt", ["train", "--data", "small.txt", "--out", "other_shape", "--resume"], ["shape"]),
    ("gpt", ["sample", "--checkpoint", "other_version"], ["version"]),
    ("gpt.finetune", ["finetune", "classify", "--data", "missing.tsv", "--init", "run", "--out", "ft"],
     ["missing.tsv"]),
]


@pytest.mark.parametrize("module,args,expected", END_TO_END, ids=[" ".join(a[:3]) for _, a, _ in END_TO_END])
def test_end_to_end(runs, module, args, expected):
    rc, _, err = run_subprocess(module, *args, cwd=runs)
    assert_one_clear_line(rc, err, *expected)
