"""tinytensor.atomic: a file is either its old self or wholly new, never half written, never a stray."""
import os
import stat

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
    from gpt.cli import finetune as cli
    folder = tmp_path / "out"
    folder.mkdir()
    assert cli.main(["make-data", "instruct", "--out", str(folder), "--n", "4"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert _strays(tmp_path) == [] and os.listdir(folder) == []


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder .*nowhere"):
        write_text(tmp_path / "nowhere" / "a.txt", "x")


# ---- hostile targets (issue 15 item 10 and its low items) ------------------------------------------

def test_a_planted_symlink_at_the_old_temporary_name_is_never_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "a.txt"
    for guess in (f"{path}.tmp-{os.getpid()}", f"{path}.tmp", f"{path}.tmp-0"):
        os.symlink(victim, guess)
    write_text(path, "new")
    assert path.read_text() == "new" and victim.read_text() == "precious"
    assert not path.is_symlink()


def test_temporaries_get_fresh_unguessable_names(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    for _ in range(2):
        write_text(tmp_path / "a.txt", "x")
    assert len(set(seen)) == 2 and all(name.startswith("a.txt.tmp-") for name in seen)


def test_a_symlink_target_is_refused_and_left_alone(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "link.txt"
    os.symlink(victim, link)
    with pytest.raises(ValueError, match="link.txt.*symbolic link"):
        write_text(link, "new")
    assert link.is_symlink() and victim.read_text() == "precious" and _strays(tmp_path) == []


def test_a_device_node_or_fifo_target_is_refused(tmp_path):
    # never aim this at a real /dev node: run as root before the fix, it would be replaced
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe.*not a regular file"):
        write_text(fifo, "x")
    assert fifo.is_fifo() and _strays(tmp_path) == []
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        pytest.skip("cannot make a device node here (not root)")
    with pytest.raises(ValueError, match="null.*not a regular file"):
        write_text(node, "x")
    assert node.is_char_device() and _strays(tmp_path) == []


def test_a_full_disk_names_the_target_and_leaves_no_temporary(tmp_path, monkeypatch):
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    path = tmp_path / "model.bin"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="model.bin.*No space left") as info:
        with replacing(path, "wb") as f:
            f.write(b"new")
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old" and _strays(tmp_path) == []


def test_new_files_get_the_usual_mode(tmp_path):
    write_text(tmp_path / "a.txt", "x")
    (tmp_path / "plain").write_text("x")                  # the mode any new file gets here (umask applied)
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == os.stat(tmp_path / "plain").st_mode & 0o777
