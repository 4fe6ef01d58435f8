"""tinytensor.atomic: a file is either its old self or wholly new, never half written, never a stray."""
import os

import pytest

from tinytensor.atomic import replacing, write_text


def _strays(folder):
    return [name for name in os.listdir(folder) if ".tmp-" in name]


def test_write_and_replace(tmp_path):
    path = tmp_path / "a.txt"
    write_text(path, "one\n")
    write_text(path, "two\nlines\n")
    assert path.read_bytes() == b"two\nlines\n" and _strays(tmp_path) == []


def test_a_failure_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with replacing(path, "wb") as f:
            f.write(b"half of the new")
            raise RuntimeError("disk on fire")
    assert path.read_bytes() == b"old" and _strays(tmp_path) == []


def test_a_folder_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        write_text(tmp_path, "x")
    assert _strays(tmp_path.parent) == [] and os.listdir(tmp_path) == []


def test_make_data_into_a_folder_says_so_and_leaves_nothing(tmp_path, capsys):
    from gpt.finetune import cli
    folder = tmp_path / "out"
    folder.mkdir()
    assert cli.main(["make-data", "instruct", "--out", str(folder), "--n", "4"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert _strays(tmp_path) == [] and os.listdir(folder) == []


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder .*nowhere"):
        write_text(tmp_path / "nowhere" / "a.txt", "x")
