"""The cache folder: what is slow to make and safe to make again (the default corpus, token ids).

    $TINYTENSOR_CACHE                      when set
    $XDG_CACHE_HOME/tinytensor             else, when XDG_CACHE_HOME is set
    ~/.cache/tinytensor                    else

Everything in it can be deleted at any time: it is rebuilt on the next run. Each file's name ends with
a digest of its own contents, so a damaged or swapped file is noticed when it is read (and ignored).
A cache that cannot be written (a read-only home, a full disk) only costs time: the run goes on.
"""
import contextlib
import hashlib
import os

ENV = "TINYTENSOR_CACHE"


def cache_dir(*parts):
    """The cache folder (or a subfolder of it, ``parts`` joined); not created here."""
    root = os.environ.get(ENV)
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "tinytensor")
    return os.path.join(root, *parts)


def digest(data):
    """A short SHA-256 (16 hex digits) of ``data`` (bytes)."""
    return hashlib.sha256(data).hexdigest()[:16]


def remove_quietly(path):
    """Delete a cache file that turned out stale or damaged; a failure to do so is ignored."""
    with contextlib.suppress(OSError):
        os.remove(path)


def try_write(write, path):
    """``write(path)`` into the cache, creating its folder first; False (and nothing raised) when the cache
    cannot be written."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write(path)
        return True
    except OSError:
        return False
