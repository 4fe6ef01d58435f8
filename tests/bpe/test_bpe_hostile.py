"""Hostile tokenizer files, patterns and inputs (issue 15 items 10 and 13 and its low items): one clear line each,
never a traceback, a hang or silently dropped text."""
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bpe
from bpe import files, patterns
from bpe.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
SLOW = r"(?:(?:a|a)+)+b|\s|."              # catastrophic backtracking on a run of "a"s without a "b"


def _file(tmp_path, pattern=r"\s+|\S+", specials=(), merges=(), name="t.bpe", newline="\n"):
    import json
    lines = ["bpe-tokenizer 1", f"pattern {json.dumps(pattern)}", "bytes identity", f"specials {len(specials)}"]
    lines += [f"{json.dumps(n)} {i}" for n, i in specials]
    lines += [f"merges {len(merges)}", *merges]
    path = tmp_path / name
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return path


# ---- patterns must tile the text (item 13) ---------------------------------------------------------------

def test_a_pattern_that_skips_characters_is_refused_at_construction_and_load(tmp_path):
    with pytest.raises(ValueError, match="does not cover every character"):
        bpe.Tokenizer(r"\w+", [])
    path = _file(tmp_path, pattern=r"[a-z]+|\s+")
    with pytest.raises(ValueError, match="t.bpe.*does not cover every character"):
        bpe.Tokenizer.load(path)
    with pytest.raises(ValueError, match="does not cover every character"):
        bpe.train("some text to learn", 260, pattern=r"\w+")


def test_text_the_pattern_skips_raises_instead_of_vanishing(tmp_path):
    # this pattern covers the probe text at load, but not the snowman: encode must not drop it
    tok = bpe.Tokenizer.load(_file(tmp_path, pattern=r"\s+|[^\s\u2603]+"))
    assert tok.decode(tok.encode("a b")) == "a b"
    with pytest.raises(ValueError, match=r"t.bpe.*skips '\\u2603'.* position 2"):
        tok.encode("a \u2603 b")


def test_a_pattern_with_capturing_groups_still_gives_whole_chunks():
    tok = bpe.Tokenizer(r"(\s+)|(\S+)", [])
    assert tok.decode(tok.encode("hello  world ")) == "hello  world "


def test_a_slow_pattern_stops_with_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(patterns, "TIMEOUT", 0.2)
    monkeypatch.setattr(patterns, "TIMEOUT_PER_CHAR", 0.0)
    tok = bpe.Tokenizer.load(_file(tmp_path, pattern=SLOW, name="slow.bpe"))
    assert tok.encode("ab a b") == list(b"ab a b")
    with pytest.raises(ValueError, match=r"slow.bpe: the tokenizer's pattern took more than 0.2 s .*300 characters"):
        tok.encode("a" * 300)


def test_a_pattern_too_slow_for_the_probe_is_refused_at_load(tmp_path, monkeypatch):
    monkeypatch.setattr(patterns, "PROBE", patterns.PROBE + "a" * 60)
    monkeypatch.setattr(patterns, "TIMEOUT", 0.2)
    with pytest.raises(ValueError, match=r"slow.bpe: .*pattern took more than 0.2 s"):
        bpe.Tokenizer.load(_file(tmp_path, pattern=SLOW, name="slow.bpe"))


def test_the_shipped_patterns_cover_the_probe():
    for pattern in (bpe.GPT2_PATTERN, bpe.GPT4_PATTERN, bpe.LLAMA3_PATTERN, bpe.QWEN2_PATTERN):
        assert "".join(patterns.Splitter(pattern)(patterns.PROBE)) == patterns.PROBE


# ---- tokenizer files (low items) -------------------------------------------------------------------------

def test_a_crlf_file_loads_as_the_same_tokenizer(tiny_tok, tmp_path):
    path = tmp_path / "lf.bpe"
    tiny_tok.save(path)
    crlf = tmp_path / "crlf.bpe"
    crlf.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    loaded = bpe.Tokenizer.load(crlf)
    assert loaded.merges == tiny_tok.merges and loaded.special_tokens == tiny_tok.special_tokens
    assert loaded.pattern == tiny_tok.pattern


@pytest.mark.parametrize("id_text", ["100000000000000000000", "2147483648"])
def test_a_huge_special_id_is_one_line(tmp_path, capsys, id_text):
    path = _file(tmp_path, specials=[("<|x|>", id_text)])
    with pytest.raises(ValueError, match=f"t.bpe: .*special token '<|x|>' has id {id_text}"):
        bpe.Tokenizer.load(path)
    assert main(["encode", "--tokenizer", str(path), "hi"]) == 1
    err = capsys.readouterr().err
    assert "special" in err and len(err.strip().splitlines()) == 1


def test_special_ids_must_be_plain_ints():
    for bad in (1e20, True, 2 ** 40, "300"):
        with pytest.raises(ValueError, match="special"):
            bpe.Tokenizer(r"\s+|\S+", [], {"<x>": bad})


@pytest.mark.parametrize("merge", ["\u0661\u0662 104", "104 \u00b2", "1\u0660 2", "+1 2", " 1 2"])
def test_merge_ids_are_ascii_digits_only(tmp_path, merge):
    path = _file(tmp_path, merges=[merge])
    with pytest.raises(ValueError, match="t.bpe: line 6: expected two ids"):
        bpe.Tokenizer.load(path)


@pytest.mark.parametrize("edit, line", [
    (lambda l: l[:3] + ["specials \u0661"] + l[4:], 4),
    (lambda l: l[:3] + ["specials 1", '"<x>" \u0663\u0660\u0660'] + l[4:], 5),
    (lambda l: l[:2] + ["bytes " + " ".join(["\u0661"] + [str(i) for i in range(1, 256)])] + l[3:], 3),
])
def test_other_counts_and_ids_are_ascii_digits_only(tmp_path, edit, line):
    path = _file(tmp_path)
    path.write_text("\n".join(edit(path.read_text(encoding="utf-8").split("\n"))), encoding="utf-8")
    with pytest.raises(ValueError, match=f"t.bpe: line {line}"):
        bpe.Tokenizer.load(path)


def test_a_tokenizer_path_that_is_not_a_regular_file(tmp_path):
    with pytest.raises(ValueError, match="/dev/zero.*not a regular file"):
        bpe.Tokenizer.load("/dev/zero")
    fifo = tmp_path / "pipe.bpe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe.bpe.*not a regular file"):
        bpe.Tokenizer.load(fifo)


def test_a_tokenizer_file_over_the_size_cap(tmp_path, monkeypatch, tiny_tok):
    tiny_tok.save(tmp_path / "t.bpe")
    monkeypatch.setattr(files, "MAX_TOKENIZER_BYTES", 100)
    with pytest.raises(ValueError, match="t.bpe is .* bytes, more than"):
        bpe.Tokenizer.load(tmp_path / "t.bpe")


# ---- writing (item 10 in bpe's own writer) ---------------------------------------------------------------

def test_save_never_follows_a_link_nor_replaces_one(tiny_tok, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "tok.bpe"
    os.symlink(victim, link)
    with pytest.raises(ValueError, match="tok.bpe is a symbolic link"):
        tiny_tok.save(link)
    fifo = tmp_path / "pipe.bpe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe.bpe exists and is not a regular file"):
        tiny_tok.save(fifo)
    assert link.is_symlink() and victim.read_text() == "precious" and fifo.is_fifo()
    assert sorted(os.listdir(tmp_path)) == ["pipe.bpe", "tok.bpe", "victim"]


def test_save_temporaries_have_fresh_names_beside_the_target(tiny_tok, tmp_path, monkeypatch):
    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(os.path.basename(a)), real(a, b)))
    tiny_tok.save(tmp_path / "t.bpe")
    tiny_tok.save(tmp_path / "t.bpe")
    assert len(set(seen)) == 2 and all(s.startswith("t.bpe.tmp-") for s in seen)


def test_a_full_disk_names_the_file_and_leaves_nothing(tiny_tok, tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="t.bpe.*No space left") as info:
        tiny_tok.save(tmp_path / "t.bpe")
    assert info.value.errno == errno.ENOSPC and os.listdir(tmp_path) == []


# ---- the command line (low items; issue 20 item 8) -------------------------------------------------------

def _cli(*args, stdin=None, timeout=60):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bpe", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, stdin=stdin, timeout=timeout)


def test_no_arguments_shows_the_help():
    run = _cli()
    assert run.returncode == 2 and "usage" in run.stdout and "train" in run.stdout and run.stderr == ""


def test_input_that_is_a_device_or_a_pipe_is_one_line(tmp_path, tiny_tok):
    tiny_tok.save(tmp_path / "t.bpe")
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    # in a subprocess: before the fix, /dev/zero filled the memory and the FIFO blocked for ever
    for source, args in (("/dev/zero", ["train", "--input", "/dev/zero", "--vocab-size", 300, "--out",
                                        tmp_path / "o.bpe"]),
                         (fifo, ["encode", "--tokenizer", tmp_path / "t.bpe", "--input", fifo])):
        run = _cli(*args, timeout=30)
        assert run.returncode == 1 and "not a regular file" in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and str(source) in run.stderr


def test_text_over_the_size_cap_is_one_line(tmp_path, monkeypatch, capsys, tiny_tok):
    tiny_tok.save(tmp_path / "t.bpe")
    (tmp_path / "big.txt").write_text("x" * 200)
    monkeypatch.setattr(files, "MAX_TEXT_BYTES", 100)
    assert main(["encode", "--tokenizer", str(tmp_path / "t.bpe"), "--input", str(tmp_path / "big.txt")]) == 1
    err = capsys.readouterr().err
    assert "big.txt is 200 bytes, more than" in err and len(err.strip().splitlines()) == 1


def test_standard_input_is_capped_too(tmp_path, monkeypatch, capsys, tiny_tok):
    import io
    tiny_tok.save(tmp_path / "t.bpe")
    monkeypatch.setattr(files, "MAX_TEXT_BYTES", 100)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x" * 200)))     # as `< /dev/zero` would be
    assert main(["encode", "--tokenizer", str(tmp_path / "t.bpe")]) == 1
    assert "standard input is more than the 100 bytes" in capsys.readouterr().err


@pytest.mark.parametrize("args, flag", [
    (["--vocab-size", "10"], "--vocab-size"),
    (["--vocab-size", "300", "--special", "<a>", "--special", "<a>"], "--special"),
    (["--vocab-size", "300", "--special", ""], "--special"),
    (["--vocab-size", "300", "--pattern", "(["], "--pattern"),
    (["--vocab-size", "300", "--pattern", r"\w+"], "--pattern"),
])
def test_train_messages_name_the_flag(tmp_path, capsys, args, flag):
    text = tmp_path / "in.txt"
    text.write_text("hello world, hello tokens")
    assert main(["train", "--input", str(text), "--out", str(tmp_path / "o.bpe"), *args]) == 1
    err = capsys.readouterr().err
    assert flag in err and "vocab_size" not in err and "special_tokens" not in err, err
    assert not (tmp_path / "o.bpe").exists()


def test_decode_ids_are_ascii_integers(tmp_path, capsys, tiny_tok):
    tiny_tok.save(tmp_path / "t.bpe")
    for word in ("\u0661\u0662", "\u00b2", "1_0", "+5", "0x10"):
        assert main(["decode", "--tokenizer", str(tmp_path / "t.bpe"), "104", word]) == 1
        assert "is not a token id" in capsys.readouterr().err


def test_a_special_token_in_the_text_points_to_the_flag(tmp_path, capsys, tiny_tok):
    tiny_tok.save(tmp_path / "t.bpe")
    assert main(["encode", "--tokenizer", str(tmp_path / "t.bpe"), "a <|endoftext|>"]) == 1
    err = capsys.readouterr().err
    assert "--allow-special" in err and "allowed_special" not in err
