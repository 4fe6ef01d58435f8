"""Every global setting of tinytensor in one place, as DeZero keeps its switches in one ``Config``.

Read them here. Change them through the call named beside each, which also does what a change needs
(restarting the thread pool, telling CuPy, calling malloc); a test may assign one for a while.

    threads         tt.set_num_threads(n)        threads for tinytensor's CPU work (1 = no splitting);
                                                 by default the usable cores, at most 4
    tf32            tt.set_tf32(flag)            TF32 matrix products on a GPU (no effect on the CPU)
    cuda_kernels    TINYTENSOR_CUDA_KERNELS      names of the fused CUDA kernels in use (cuda/kernels.py);
                                                 the untested ones only when named
    reference_ops   tt.use_reference_ops(flag)   every fused op, and AdamW, runs its readable twin
                                                 (tinytensor/reference.py); also ``with tt.reference_ops():``
    heap_tuned      tt.tune_heap()               malloc set to reuse freed memory (schedule/heap.py); never at import

They are process-wide (the threads of one process share them), as PyTorch's are.
"""
import os

CUDA_KERNEL_NAMES = ("gelu", "layer_norm", "cross_entropy", "adamw", "scatter_add", "attention_softmax",
                     "strided_matmul")
# kernels not yet passed tests/gpu/test_gpu.py on a real GPU: never in "all", only when named
# (TINYTENSOR_CUDA_KERNELS=all,flash_attention); benchmarks/gpu_check.sh names them to test and time them
UNTESTED_CUDA_KERNELS = ("flash_attention", "gelu_vectorized")


def _cuda_kernels_from_environment():
    """TINYTENSOR_CUDA_KERNELS: "all" (the default: every tested kernel), "none", or a comma list of names
    to keep, where "all" stands for the tested ones (``all,flash_attention`` adds an untested one)."""
    setting = os.environ.get("TINYTENSOR_CUDA_KERNELS", "all").strip().lower()
    if setting in ("", "all"):
        return set(CUDA_KERNEL_NAMES)
    if setting == "none":
        return set()
    names = {name.strip() for name in setting.split(",")}
    if "all" in names:
        names |= set(CUDA_KERNEL_NAMES)
    return names & set(CUDA_KERNEL_NAMES + UNTESTED_CUDA_KERNELS)


def usable_cpus():
    """The cores this process may run on: its CPU affinity (``taskset``, a container's CPU set) where the
    system tells it, else every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


threads = min(4, usable_cpus())
tf32 = False
cuda_kernels = _cuda_kernels_from_environment()
reference_ops = False
heap_tuned = False
