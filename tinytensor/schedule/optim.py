"""The schedule of AdamW's update (optim.py): each parameter cut into cache-sized pieces, and every piece of
every parameter a job that the threads share."""
from . import parallel


def pieces(arrays, constants):
    """Jobs (arrays, constants) updating matching pieces of ``arrays`` of about CACHE_BLOCK elements: the
    14 passes of the update then find a piece in the core's cache (one read of p, g, m, v from memory, not
    14), and the threads take the pieces as each is free."""
    flat = tuple(a.reshape(-1) for a in arrays)
    n = len(flat[0])
    return [(tuple(a[lo:lo + parallel.CACHE_BLOCK] for a in flat), constants)
            for lo in range(0, n, parallel.CACHE_BLOCK)]


def run(update, jobs):
    """``update(*arrays, *constants)`` for every job of ``pieces``, as one thread region."""
    parallel.run(lambda job: update(*job[0], *job[1]), jobs)
