"""Writing a file so that no reader, and no crash, ever sees half of it.

The bytes go to a temporary name beside the target (``<path>.tmp-<pid>``), are flushed to the disk, and
only then is the temporary renamed over the target in one step (``os.replace``). A failure on the way
removes the temporary and leaves the old file as it was.

    with replacing("metrics.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f)
"""
import contextlib
import os


@contextlib.contextmanager
def replacing(path, mode="w", **open_kwargs):
    """Open a temporary file for writing in place of ``path``; on success it replaces ``path``."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; give a file name to write")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: no folder {folder}")
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text(path, text, encoding="utf-8"):
    """``text`` to ``path`` (newlines written as "\\n" everywhere), atomically."""
    with replacing(path, "w", encoding=encoding, newline="\n") as f:
        f.write(text)
