"""Let freed array memory be reused instead of handed back to the kernel (Linux with glibc).

Every NumPy array larger than glibc's mmap threshold (128 KB at first) is mapped fresh from the kernel
and unmapped when it is freed, and the kernel zeroes each new page on first touch. A training step
makes and drops hundreds of such temporaries: on the tiny GPT that was 26,000 page faults, about a
third of the step. ``tune()`` raises the threshold to 32 MB (the most glibc itself would raise it to)
and keeps up to 1 GB of freed memory at the top of the heap, so a step reuses the memory the last one
freed. The peak memory of a run does not change; memory freed after the peak stays with the process.

Importing tinytensor leaves malloc alone: these are settings of the whole process, so a program asks
for them, ``tt.tune_heap()`` (``python -m gpt train`` does). TINYTENSOR_HEAP_TUNING=0 in the
environment makes that call a no-op. Whether it was applied: ``tinytensor.config.heap_tuned``.
"""
import ctypes
import os
import platform

from . import config

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3      # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20


def tune():
    """Apply the settings above; True when glibc accepted them (False elsewhere, or when turned off)."""
    if config.heap_tuned:
        return True
    if os.environ.get("TINYTENSOR_HEAP_TUNING", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    config.heap_tuned = all(libc.mallopt(param, value) == 1 for param, value in
                            ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                             (M_TOP_PAD, TOP_PAD)))
    return config.heap_tuned


def __getattr__(name):
    if name == "tuned":                 # the old name of config.heap_tuned, still readable
        return config.heap_tuned
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
