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

from .. import config

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3      # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20


def tune():
    """Let this process reuse freed array memory (this module's note explains how). Call it once at the
    start of a training program of your own, as ``python -m gpt train`` does: without it every large
    temporary is fresh memory the kernel zeroes page by page, a third of the tiny GPT's step, and one
    causal attention call on its shapes takes 10.5 ms instead of 6.9 (benchmarks/RESULTS.md). True when
    glibc accepted the settings (False elsewhere, or when TINYTENSOR_HEAP_TUNING=0)."""
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
