"""Writing a file so that no reader, and no crash, ever sees half of it.

The bytes go to a new temporary file beside the target, created exclusively under a random name
(``<name>.tmp-<random>``, as ``tempfile.mkstemp`` makes it: never an existing file, never through a
planted symbolic link), are flushed to the disk, and only then is the temporary renamed over the target
in one step (``os.replace``). A failure on the way removes the temporary, leaves the old file as it was,
and names the target in its message. A target that exists and is not a regular file (a device, a pipe,
a symbolic link, a folder) is refused before anything is written.

    with replacing("metrics.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f)
"""
import contextlib
import os
import stat
import tempfile


def check_target(path):
    """Raise a one-line error unless ``path`` is absent or a regular file, in an existing folder."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path} is a folder; give a file name to write")
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{path} is a symbolic link; refusing to replace it (remove it, or write elsewhere)")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} exists and is not a regular file (a device or a pipe?); refusing to "
                         f"replace it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: no folder {folder}")
    return folder


def default_file_mode():
    """The mode ``open()`` would give a new file: 0o666 less this process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def replacing(path, mode="w", **open_kwargs):
    """Open a temporary file for writing in place of ``path``; on success it replaces ``path``."""
    path = os.fspath(path)
    folder = check_target(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-", dir=folder)
        # the descriptor mkstemp made, under the temporary's name (f.name is a path, as for open(path))
        with open(tmp, mode, opener=lambda *_: fd, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())      # mkstemp makes owner-only files; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            raise type(e)(e.errno, f"cannot write {path}: {e.strerror}") from None
        raise


def write_text(path, text, encoding="utf-8"):
    """``text`` to ``path`` (newlines written as "\\n" everywhere), atomically."""
    with replacing(path, "w", encoding=encoding, newline="\n") as f:
        f.write(text)
