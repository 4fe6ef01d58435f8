"""Reading and writing files safely: every path bpe reads may be hostile, every write is atomic.

Reading: only a regular file is read (a FIFO would block, /dev/zero never ends), opened non-blocking so
that the check cannot hang, and only up to a size cap; errors are one line naming the path.
Writing (`replace_file`): the bytes go to a new temporary beside the target, created exclusively under a
random name (`tempfile.mkstemp`: never an existing file, never through a planted link), then renamed over
the target; a target that exists and is not a regular file (a link, a device, a pipe) is refused.
bpe stands alone, without tinytensor, so it keeps these small helpers of its own (tinytensor.atomic does
the same for the engine and gpt).
"""
import contextlib
import os
import stat
import sys
import tempfile
import urllib.error
import urllib.request

MAX_TOKENIZER_BYTES = 256 * 2 ** 20     # a tokenizer file (Llama 3's tokenizer.json is ~9 MB)
MAX_TEXT_BYTES = 2 ** 30                # a text to train on or encode, read whole


def download(url, instead):
    """The bytes at ``url`` (one minute's timeout). Without a network, or on an HTTP error, a
    ConnectionError of one line naming the URL, the reason and ``instead`` (what to do without it)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise ConnectionError(f"could not download {url}: {reason}; {instead}") from None


def read_bytes(path, limit=None, what="file"):
    """The bytes of the regular file `path`, at most `limit` of them (default: MAX_TOKENIZER_BYTES)."""
    limit = MAX_TOKENIZER_BYTES if limit is None else limit
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{path} is a folder; give a {what}")
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file (a device or a pipe?); give a {what}")
        if st.st_size > limit:
            raise ValueError(f"{path} is {st.st_size} bytes, more than the {limit} bytes bpe reads as a {what}")
    except BaseException:
        os.close(fd)
        raise
    with open(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:                                   # it grew while we read
        raise ValueError(f"{path} is more than the {limit} bytes bpe reads as a {what}")
    return data


def read_stdin(limit=None):
    """Standard input's bytes, at most `limit` (default: MAX_TEXT_BYTES)."""
    limit = MAX_TEXT_BYTES if limit is None else limit
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"standard input is more than the {limit} bytes bpe reads as a text; "
                         f"give a smaller text, or split it")
    return data


def decode_utf8(data, where):
    """`data` as text; a clear ValueError naming `where` when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where} is not UTF-8 text ({e.reason} at byte {e.start}); "
                         f"convert it first, e.g. with iconv") from None


def read_text(path):
    """A UTF-8 text file's text (or standard input's, for None), at most MAX_TEXT_BYTES."""
    if path is None:
        return decode_utf8(read_stdin(), "standard input")
    return decode_utf8(read_bytes(path, MAX_TEXT_BYTES, "text file"), path)


def replace_file(path, data):
    """Write the bytes `data` to `path` atomically: a crash never leaves half a file, a failure leaves
    no temporary and names `path`."""
    path = os.fspath(path)
    folder = _check_target(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-", dir=folder)
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())    # mkstemp makes owner-only files; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            raise type(e)(e.errno, f"cannot write {path}: {e.strerror}") from None
        raise


def _check_target(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path} is a folder; give a file name to write")
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{path} is a symbolic link; refusing to replace it (remove it, or write elsewhere)")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} exists and is not a regular file (a device or a pipe?); refusing to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: no folder {folder}")
    return folder


def _default_file_mode():
    """The mode open() would give a new file: 0o666 less this process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
