"""The command line, run in-process through bpe.__main__.main."""
import subprocess
import sys

import pytest

from bpe.__main__ import main


@pytest.fixture
def trained_file(tmp_path, shared_data):
    out = tmp_path / "verdict.bpe"
    assert main(["train", "--input", str(shared_data / "the-verdict.txt"), "--vocab-size", "400",
                 "--out", str(out), "--special", "<|endoftext|>"]) == 0
    return out


def test_train_encode_decode(trained_file, capsys):
    capsys.readouterr()
    assert main(["encode", "--tokenizer", str(trained_file), "I had always thought"]) == 0
    ids = capsys.readouterr().out.split()
    assert all(w.isdigit() for w in ids)
    assert main(["decode", "--tokenizer", str(trained_file), *ids]) == 0
    assert capsys.readouterr().out == "I had always thought\n"


def test_show_and_stats(trained_file, capsys, shared_data):
    assert main(["show", "--tokenizer", str(trained_file), "--color", "never", "--steps",
                 "the picture"]) == 0
    out = capsys.readouterr().out
    assert "|" in out and "bytes/token" in out and "chunk ' picture'" in out
    assert main(["stats", "--tokenizer", str(trained_file), "--input",
                 str(shared_data / "the-verdict.txt")]) == 0
    assert "bytes/token" in capsys.readouterr().out


def test_encode_with_gpt2(shared_data, capsys):
    assert main(["encode", "--gpt2", str(shared_data / "gpt2"), "Hello, I am"]) == 0
    assert capsys.readouterr().out.split() == ["15496", "11", "314", "716"]


@pytest.mark.parametrize("command", ["train", "encode", "decode", "show", "stats"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path, trained_file, capsys):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café".encode("latin-1"))
    assert main(["train", "--input", str(latin), "--vocab-size", "300", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "latin1.txt is not UTF-8" in err and "Traceback" not in err
    assert main(["decode", "--tokenizer", str(trained_file), "5", "123456"]) == 1
    assert "unknown token id 123456" in capsys.readouterr().err
    assert main(["encode", "--tokenizer", str(trained_file), "a<|endoftext|>"]) == 1
    assert "special token" in capsys.readouterr().err
    assert main(["encode", "--tokenizer", str(latin), "hi"]) == 1
    assert "not a bpe tokenizer file" in capsys.readouterr().err
    good = tmp_path / "ok.txt"
    good.write_text("hello")
    assert main(["train", "--input", str(good), "--vocab-size", "100", "--out", str(tmp_path / "x")]) == 1
    assert "too small" in capsys.readouterr().err
    assert main(["encode", "hi"]) == 1
    assert "--tokenizer" in capsys.readouterr().err


def test_python_dash_m_and_no_forbidden_imports():
    # `python -m bpe` runs, and importing bpe loads neither tinytensor, gpt nor the benchmark tools
    code = ("import sys, bpe, bpe.__main__; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('tinytensor', 'gpt', 'tiktoken', 'tokenizers', 'numpy', 'pickle')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    run = subprocess.run([sys.executable, "-m", "bpe", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "train" in run.stdout


def test_decode_ends_with_a_newline_unless_told_not_to(tmp_path, capsys):
    import bpe
    path = tmp_path / "bytes.bpe"
    bpe.Tokenizer(bpe.GPT2_PATTERN, [], {}).save(path)            # byte-level: id b is byte b
    capsys.readouterr()
    assert main(["decode", "--tokenizer", str(path), "104", "105"]) == 0
    assert capsys.readouterr().out == "hi\n"
    assert main(["decode", "--tokenizer", str(path), "-n", "104", "105"]) == 0
    assert capsys.readouterr().out == "hi"


def test_help_says_what_every_flag_does_and_debug_shows_a_traceback(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--algorithm" in text and "(default: incremental)" in text and "--debug" in text
    import bpe.__main__ as cli
    monkeypatch.setattr(cli, "cmd_stats", lambda args: 1 / 0)
    path = tmp_path / "bytes.bpe"
    import bpe
    bpe.Tokenizer(bpe.GPT2_PATTERN, [], {}).save(path)
    for argv, traced in ((["stats", "--tokenizer", str(path), "x"], False),
                         (["--debug", "stats", "--tokenizer", str(path), "x"], True),
                         (["stats", "--debug", "--tokenizer", str(path), "x"], True)):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert "unexpected ZeroDivisionError" in err and ("Traceback" in err) == traced, (argv, err)


def test_a_mistyped_flag_names_the_command_it_was_given_to(capsys):
    with pytest.raises(SystemExit) as ended:
        main(["encode", "--bogus", "hi"])
    assert ended.value.code == 2
    assert capsys.readouterr().err == "python -m bpe encode: error: unrecognized arguments: --bogus (see --help)\n"
