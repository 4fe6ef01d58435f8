"""A run's folder (``--out``): claimed for a new run, refused while it holds another, cleared by --overwrite,
and locked while a run writes it.

Pretraining and both fine-tunings share these rules: an --out that holds a run (checkpoint.json, or a
fine-tuning's metrics.json) is refused unless --overwrite, which replaces that run's files and leaves
the folder's other files alone; an --out that is a file is refused.

One run per folder: an exclusive lock that a training or fine-tuning run holds on its ``--out``.

Two runs writing one folder destroy each other's checkpoint (each deletes the other's staged files),
so a run takes ``DIR/run.lock`` with ``fcntl.flock`` before it touches anything there and holds it until
it ends. The operating system drops the lock when the process exits, however it exits (even SIGKILL),
so a stale lock never needs cleaning up. A second run on the folder refuses at once, naming the
process that holds it:

    @run_folder.locks_out                  # the run's settings object carries the folder as .out
    def train(a, ...): ...

    with run_folder.hold("runs/tiny"):     # or directly
        ...

Notes. ``flock`` locks an open file, not a process's name for it: a second ``hold`` in the same
process is refused too. It works on local file systems on Linux and macOS; over NFS, Linux maps it
to an NFS lock, macOS may not lock at all. Without ``fcntl`` (Windows) the folder is not locked.
The lock file stays in the folder after the run (deleting it could let two runs lock two files);
while a run holds it, it names that run's process id and host. ``hold`` also checks at once that the
folder can be written, rather than at the first save, minutes later.
"""
import contextlib
import errno
import functools
import os
import socket
import tempfile
import warnings

from ..errors import TrainingError
from ..files import oserror
from . import checkpoint as ckpt

try:
    import fcntl
except ImportError:                                   # Windows: no locking
    fcntl = None

LOCK_NAME = "run.lock"


class FolderInUse(OSError):
    """Another process holds the run lock of this folder."""


def _holder(path):
    """"process 1234 on host" from a lock file, or a plain "another process" when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(200).split()
    except OSError:
        text = []
    if text and text[0].isdigit():
        return f"process {text[0]}" + (f" on {text[1]}" if len(text) > 1 and text[1] != socket.gethostname() else "")
    return "another process"


def _missing_parents(folder):
    """The folders ``os.makedirs(folder)`` would create, deepest first."""
    made, path = [], os.path.abspath(folder)
    while not os.path.exists(path):
        made.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return made


def _check_writable(folder):
    """Create and remove a file in ``folder``: a read-only folder or disk is noticed now, not at the first save."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    except OSError as e:
        raise oserror(PermissionError, e.errno, f"cannot write in {folder} ({e.strerror or e}): "
                                              "choose another folder") from None
    os.close(fd)
    os.remove(probe)


def _lock(folder):
    """Open and lock DIR/run.lock; returns its file descriptor. Raises FolderInUse when another run holds it."""
    path = os.path.join(folder, LOCK_NAME)
    for _ in range(10):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as e:
            raise oserror(PermissionError, e.errno, f"cannot create the lock file {path} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise oserror(FolderInUse, errno.EBUSY, f"{folder} is in use by another run ({_holder(path)}): "
                                                       "wait for it to end, or choose another folder") from None
            warnings.warn(f"cannot lock {path} ({e.strerror or e}: a file system without locks?); a second run "
                          "on this folder would not be stopped", stacklevel=4)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except OSError:
            same = False
        if same:                                  # else the file was replaced after we opened it: lock the new one
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            return fd
        os.close(fd)
    raise oserror(FolderInUse, errno.EBUSY, f"cannot lock {path}: it keeps being replaced")


def _release(fd, folder, made):
    """Drop the lock. When this run made the folder and wrote nothing there but the lock, remove the lock
    file (while still holding it, so no other run can be holding it) and the folders it made."""
    try:
        empty = bool(made) and set(os.listdir(folder)) <= {LOCK_NAME}
    except OSError:
        empty = False
    if fd is not None:
        with contextlib.suppress(OSError):
            if empty:
                os.remove(os.path.join(folder, LOCK_NAME))
            else:
                os.ftruncate(fd, 0)
        os.close(fd)                              # closing the file releases the lock
    if empty:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, LOCK_NAME))
        for path in made:                         # deepest first; stops at the first folder that is not empty
            try:
                os.rmdir(path)
            except OSError:
                return


def mpi_rank():
    """This process's rank when started by mpiexec (MPICH or Open MPI), else 0."""
    return _launcher_number(("PMI_RANK", "OMPI_COMM_WORLD_RANK"), 0)


def mpi_size():
    """How many processes mpiexec started (MPICH or Open MPI), else 1; known before MPI starts."""
    return _launcher_number(("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"), 1)


def _launcher_number(names, default):
    for name in names:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def one_process_only(what, error):
    """Refuse ``what`` under mpiexec with several processes: every rank raises ``error`` (a UserError class)
    saying so, and the first to report it ends the job (``end_job``). Nothing of MPI is started for this."""
    if mpi_size() < 2:
        return
    raise error(f"{what} runs on one process: start it without mpiexec (python -m gpt train is the command "
                "that trains on several)")


@contextlib.contextmanager
def hold(folder):
    """Create ``folder`` if needed, check it can be written, and hold its run lock for the ``with`` block.

    Raises FolderInUse (an OSError) naming the holder's process id when another run holds it. A run that
    fails before writing anything leaves no folder behind: folders made here are removed again when
    nothing but the lock file is in them. Under ``mpiexec`` ranks other than 0 neither lock nor create.
    """
    folder = os.fspath(folder)
    if mpi_rank() != 0:                          # under mpiexec only rank 0 writes the run folder
        yield folder
        return
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise oserror(NotADirectoryError, errno.ENOTDIR, f"{folder} exists and is not a folder")
    made = _missing_parents(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise oserror(PermissionError, e.errno, f"cannot create the folder {folder} ({e.strerror or e})") from None
    fd, mine = None, fcntl is None                # mine: no other run can hold this folder now
    try:
        _check_writable(folder)
        if fcntl is not None:
            fd = _lock(folder)
            mine = True
        yield folder
    finally:
        _release(fd, folder, made if mine else [])


def locks_out(run):
    """Decorator: ``run(a, ...)`` holds the run lock of ``a.out`` while it runs."""
    @functools.wraps(run)
    def locked(a, *args, **kwargs):
        with hold(a.out):
            return run(a, *args, **kwargs)
    return locked


# ----- claiming the folder for a new run -----

RUN_FILES = (ckpt.META, ckpt.MODEL, ckpt.OPTIMIZER, ckpt.TOKENIZER, "loss.png", "loss.svg", "metrics.csv",
             "metrics.json", "responses.jsonl", "samples.jsonl")


def check_out(out, overwrite, hint="pass --resume to continue it, ", error=TrainingError):
    """Refuse (raising ``error``) an --out that is a file, or that holds a run unless ``overwrite``;
    changes nothing. Shared by pretraining and fine-tuning."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise error(f"--out {out} exists and is not a folder")
    if not overwrite and (ckpt.exists(out) or os.path.exists(os.path.join(out, "metrics.json"))):
        raise error(f"{out} already holds a checkpoint: {hint}--overwrite to start again there, "
                    "or choose another --out")


def clear_run(out):
    """Remove the files of the run in ``out`` (what --overwrite replaces); other files stay."""
    for name in RUN_FILES:
        path = os.path.join(out, name)
        if os.path.isfile(path) or os.path.islink(path):
            os.remove(path)


def claim_out(out, overwrite):
    """Make ``out`` ready for a new pretraining run (checked, created, an old run's files removed)."""
    check_out(out, overwrite)
    os.makedirs(out, exist_ok=True)
    if overwrite:
        clear_run(out)
