"""Work split over a few threads, the way PyTorch splits its CPU ops over its own thread pool.

NumPy releases the GIL inside its loops and inside BLAS, so Python threads really do compute at once.
Ops hand this module independent pieces of work: row blocks of a large elementwise pass
(``for_row_blocks``), or whole sub-problems such as the attention of one group of heads (product,
softmax, product: ``run``). The calling thread takes a share itself.

While such a parallel region runs, BLAS is held to one thread: each of our threads calls it on its own
share, and a BLAS that also split every call would put four busy threads on two cores. Outside the
regions BLAS threads itself as usual. Holding BLAS is done for the OpenBLAS that NumPy ships (found in
the process, ``blas_controlled()``); with another BLAS, regions that call BLAS run in one thread.
"""
import contextlib
import ctypes
import glob
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import config

MIN_ELEMENTS = 1 << 18        # below about a megabyte the thread hand-off costs more than it saves
BLAS_MIN_WORK = 1 << 21       # multiply-adds below which a matrix product stays in one call
CACHE_BLOCK = 1 << 16         # elements per block of for_row_blocks: a few such arrays fit a core's L2 cache
_pool = None
_region = threading.Lock()    # one parallel region at a time; others (and nested ones) run inline
_inside = threading.local()


def _after_fork_in_child():
    """A forked child has none of the parent's threads: start a fresh pool (and region lock) on demand."""
    global _pool, _region
    _pool, _region = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_workers(n):
    """Use ``n`` threads for tinytensor's CPU work (1 turns the splitting off): ``config.threads``."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True)
    config.threads, _pool = max(1, int(n)), None


def __getattr__(name):
    if name == "WORKERS":               # the old name of config.threads, still readable
        return config.threads
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----- holding BLAS to one thread -----

def _openblas_libraries():
    """Paths of the OpenBLAS libraries loaded in this process (NumPy's own first)."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:            # Linux: what is actually loaded
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    if not paths:                                        # elsewhere: the copy shipped beside NumPy
        root = os.path.dirname(os.path.dirname(np.__file__))
        for pattern in ("numpy.libs/*openblas*", "numpy/.dylibs/*openblas*", "numpy.libs/*openblas*.dll"):
            paths += glob.glob(os.path.join(root, pattern))
    return paths


def _find_blas_control():
    """(get, set) of OpenBLAS's thread count, or None when no OpenBLAS we can drive is loaded."""
    for path in _openblas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        # NumPy 2 ships OpenBLAS with prefixed 64-bit-integer names; system builds use the plain ones
        for prefix in ("scipy_", ""):
            for suffix in ("64_", "_64", ""):
                get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, put.restype = ctypes.c_int, None
                    put.argtypes = [ctypes.c_int]
                    return get, put
    return None


_blas = _find_blas_control()


def blas_controlled():
    """True when tinytensor can hold BLAS to one thread during its parallel regions."""
    return _blas is not None


@contextlib.contextmanager
def blas_threads(n):
    """Run the block with BLAS limited to ``n`` threads (a no-op when BLAS cannot be driven)."""
    if _blas is None:
        yield
        return
    get, put = _blas
    before = get()
    put(n)
    try:
        yield
    finally:
        put(before)


# ----- running work in parallel -----

def _split(n, parts):
    """Cut range(n) into at most ``parts`` contiguous (lo, hi) pieces of nearly equal size."""
    parts = max(1, min(parts, n))
    edges = [n * i // parts for i in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]


class _Region:
    """One parallel region: its jobs are taken one at a time, by whichever thread is free, so a helper
    thread that wakes late simply takes fewer of them and the caller never waits for it to wake."""

    def __init__(self, fn, jobs):
        self.fn, self.jobs = fn, jobs
        self.next_job = itertools.count()       # next() on a count is atomic under the GIL
        self.count_lock = threading.Lock()
        self.finished = 0
        self.all_done = threading.Lock()        # held until the last job has finished
        self.all_done.acquire()
        self.error = None

    def work(self):
        """Take jobs until none are left (run by the caller and by each helper thread)."""
        _inside.active = True
        try:
            while (i := next(self.next_job)) < len(self.jobs):
                try:
                    self.fn(self.jobs[i])
                except BaseException as exc:   # noqa: B036 (re-raised in the calling thread)
                    self.error = self.error or exc
                with self.count_lock:
                    self.finished += 1
                    if self.finished == len(self.jobs):
                        self.all_done.release()
        finally:
            _inside.active = False


def run(fn, jobs, uses_blas=False):
    """Call ``fn(job)`` for every job, the jobs taken by the calling thread and the helper threads as
    each becomes free. Jobs must be independent: they run at the same time. ``uses_blas=True`` when
    ``fn`` calls BLAS (matrix products): BLAS is then held to one thread for the region, or, when that
    is not possible, everything runs in the calling thread.
    """
    jobs = list(jobs)
    if getattr(_inside, "active", False) or not _region.acquire(blocking=False):
        for job in jobs:                # nested in a region, or another thread's region is running
            fn(job)
        return
    global _pool
    try:
        # BLAS is held to one thread even when this region runs serially: a BLAS call that spreads
        # itself over the cores leaves its helper threads spinning for a while afterwards, and they
        # would then compete with the threads of the next region
        with blas_threads(1) if uses_blas else contextlib.nullcontext():
            if config.threads == 1 or len(jobs) < 2 or (uses_blas and _blas is None):
                for job in jobs:
                    fn(job)
                return
            if _pool is None:
                _pool = ThreadPoolExecutor(config.threads - 1, thread_name_prefix="tinytensor")
            region = _Region(fn, jobs)
            for _ in range(min(config.threads - 1, len(jobs) - 1)):
                _pool.submit(region.work)
            region.work()
            region.all_done.acquire()           # wait for jobs still running in helper threads
            if region.error is not None:
                raise region.error
    finally:
        _region.release()


def on_one_thread(fn):
    """Call ``fn()`` in the calling thread with BLAS held to one thread, and return its result: for ops
    whose matrix products are too small for threads. It is a region of one job, so it never changes the
    BLAS setting while another thread's region runs (then it simply runs as it is)."""
    result = []
    run(lambda _: result.append(fn()), [None], uses_blas=True)
    return result[0]


def for_row_blocks(fn, *arrays, uses_blas=False):
    """Call ``fn(*blocks)`` on matching row blocks of ``arrays`` (same leading dimension) of about
    CACHE_BLOCK elements each, taken by the threads as each is free, when the arrays are large NumPy
    arrays. An op that makes several passes then reads each block from memory once: its later passes
    find the block in the core's cache (GELU: 8 passes forward, 11 backward)."""
    first = arrays[0]
    if type(first) is not np.ndarray or not first.ndim or first.size < MIN_ELEMENTS:
        fn(*arrays)
        return
    n = first.shape[0]
    rows = max(1, CACHE_BLOCK * n // first.size)
    blocks = [(lo, min(n, lo + rows)) for lo in range(0, n, rows)]
    run(lambda span: fn(*(a[span[0]:span[1]] for a in arrays)), blocks, uses_blas=uses_blas)


def split_leading(shape, parts):
    """Index tuples that cut the leading axes of an array of ``shape`` into about ``parts`` pieces.

    The first axis long enough is cut into ranges; shorter axes before it are walked one index at a
    time. For example (8, 6) in 2 parts: rows 0-3 and 4-7; (1, 12) in 2 parts: (0, heads 0-5), (0, 6-11).
    """
    if not shape:
        return [()]
    n = shape[0]
    if n >= parts or len(shape) == 1:
        return [(slice(lo, hi),) for lo, hi in _split(n, parts)]
    return [(i,) + rest for i in range(n) for rest in split_leading(shape[1:], -(-parts // n))]


def spans(n, work, minimum=None):
    """Row ranges (lo, hi) that share ``n`` rows out over the threads, one range each, when ``work``
    (multiply-adds of a matrix product, or elements of a pass) reaches ``minimum`` (BLAS_MIN_WORK by
    default); else the one range (0, n). One job per thread measured faster than several smaller ones."""
    minimum = BLAS_MIN_WORK if minimum is None else minimum
    if config.threads == 1 or n < config.threads or work < minimum:
        return [(0, n)]
    return _split(n, config.threads)
