"""tinytensor.config holds every global knob; the calls that set them write it, the old names still read it."""
import numpy as np

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import backend, config
from tinytensor.cuda import kernels as cuda_kernels
from tinytensor.schedule import heap, parallel


def test_the_setters_write_config_and_the_old_names_read_it():
    before = config.threads
    try:
        tt.set_num_threads(3)
        assert config.threads == 3 and parallel.WORKERS == 3
    finally:
        tt.set_num_threads(before)
    try:
        tt.set_tf32(True)
        assert config.tf32 and backend.tf32_enabled()
    finally:
        tt.set_tf32(False)
    assert not config.tf32
    assert cuda_kernels.enabled is config.cuda_kernels and heap.tuned == config.heap_tuned


def test_the_thread_count_in_config_is_the_one_ops_use(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(config, "threads", 1)
    assert parallel.spans(100, 10**9) == [(0, 100)]
    monkeypatch.setattr(config, "threads", 4)
    assert len(parallel.spans(100, 10**9)) == 4
    x = tt.tensor(np.linspace(-3, 3, 64).reshape(8, 8), requires_grad=True)
    F.gelu(x).sum().backward()              # a region on four threads' worth of pieces
    assert np.isfinite(x.grad).all()


def test_cuda_kernels_come_from_the_environment(monkeypatch):
    for setting, want in (("none", set()), ("gelu, adamw,bogus", {"adamw", "gelu"}),
                          ("all", set(config.CUDA_KERNEL_NAMES)), ("", set(config.CUDA_KERNEL_NAMES))):
        monkeypatch.setenv("TINYTENSOR_CUDA_KERNELS", setting)
        assert config._cuda_kernels_from_environment() == want


def test_threads_follow_the_cores_this_process_may_use():
    """Under `taskset -c 0` (or a container's CPU set) the process owns one core: one thread, not one per
    core of the machine (two threads on one core take turns and lose time)."""
    import os
    import shutil
    import subprocess
    import sys

    import pytest

    if not hasattr(os, "sched_getaffinity") or shutil.which("taskset") is None:
        pytest.skip("needs Linux's sched_getaffinity and taskset")
    assert config.usable_cpus() == len(os.sched_getaffinity(0))
    core = sorted(os.sched_getaffinity(0))[0]
    out = subprocess.run(["taskset", "-c", str(core), sys.executable, "-c",
                          "import tinytensor.config as c; print(c.threads)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
