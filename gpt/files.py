"""Reading files we did not just write: plain names, regular files, bounded sizes.

A checkpoint folder, a GPT-2 folder or a data file may come from anyone, so every reader goes
through here:

* a file name found inside a file (checkpoint.json's "tokenizer", its "files" map) must be a plain
  name of a file in that folder: no folder part, no "..", no absolute path, and (in a checkpoint folder)
  no symbolic link that leads out of the folder (``member``);
* what is read must be a regular file: a FIFO would hang the reader, ``/dev/zero`` would fill the
  memory (``check_regular``, ``read_bytes``: the file is opened without blocking and checked again
  through the open descriptor, so nothing swapped in between can hang it);
* and no larger than a cap that fits what the file holds (the ``MAX_*`` below).

Errors are one line naming the file and what is wrong with it.
"""
import os
import stat

MiB = 1 << 20
MAX_JSON = 64 * MiB              # checkpoint.json, config.json, metrics: settings and history, never data
MAX_TOKENIZER = 64 * MiB         # GPT-2's tokenizer is about 1 MB in bpe's format
MAX_TEXT = 1024 * MiB            # --data of `train`: tokenising even this much takes hours
MAX_FINETUNE_DATA = 256 * MiB    # a TSV/CSV of labelled text or a JSON list of instructions

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def oserror(cls, code, message):
    """An OSError of class ``cls`` whose text is ``message`` alone (no "[Errno N]") and whose errno is ``code``."""
    e = cls(message)
    e.errno = code
    return e


def plain_name(name, where):
    """``name`` when it is a plain file name; ValueError naming ``where`` (the file it came from) otherwise."""
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if not isinstance(name, str) or name in ("", ".", "..") or "\0" in name or any(s in name for s in seps):
        raise ValueError(f"{where}: {name!r} is not a plain file name (a file in the same folder, "
                         "no folder part)")
    return name


def check_regular(path, limit=None, what="the file", st=None):
    """Raise unless ``path`` (symbolic links followed) is a regular file of at most ``limit`` bytes."""
    if st is None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise ValueError(f"{path} is {kind}, not a regular file: {what} must be a plain file")
    if limit is not None and st.st_size > limit:
        raise ValueError(f"{path} holds {st.st_size:,} bytes, more than {limit:,}, the most {what} may hold")
    return st


def member(folder, name, where, limit=None, what="the file", links_out=False):
    """The path of the file called ``name`` in ``folder``, a name read from the untrusted file ``where``.

    It must be a plain name of a regular file of at most ``limit`` bytes; a symbolic link is followed
    only when it stays inside ``folder``, or anywhere with ``links_out`` (a Hugging Face model folder,
    whose cache keeps every file as a link into ``../../blobs/``: there every file, named in a file or
    not, is followed alike).
    """
    plain_name(name, where)
    folder = os.fspath(folder)
    path = os.path.join(folder, name)
    if os.path.islink(path) and not links_out:
        inside, target = os.path.realpath(folder), os.path.realpath(path)
        if os.path.commonpath([inside, target]) != inside:
            raise ValueError(f"{where}: {name} is a link that leads out of {folder}")
    if not os.path.lexists(path):
        raise FileNotFoundError(f"{folder} holds no {name} (named in {where})")
    check_regular(path, limit, what)
    return path


def read_bytes(path, limit, what="the file"):
    """The bytes of the regular file ``path``, refused when it holds more than ``limit``."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except IsADirectoryError:                                 # where a folder cannot be opened (Windows)
        raise ValueError(f"{path} is a folder, not a regular file: {what} must be a plain file") from None
    try:
        check_regular(path, limit, what, st=os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:                                     # it grew while we read it
        raise ValueError(f"{path} holds more than {limit:,} bytes, the most {what} may hold")
    return data


def read_text(path, limit, what="the file"):
    """``read_bytes`` decoded as UTF-8; a decoding error names the file and the byte."""
    raw = read_bytes(path, limit, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None
