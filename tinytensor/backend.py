"""Where the arrays live: NumPy on "cpu", CuPy on "cuda".

Every op asks the data which array module to use (``xp_of``), never a bare ``np.``, so the same
code runs on both. Importing tinytensor never imports CuPy; it is looked up the first time a
"cuda" tensor is asked for.
"""
import numpy as np

from . import config

_cupy = None


def cupy_module():
    """The cupy module, importing it on first use; a clear error when it or a GPU is missing."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as exc:
            raise RuntimeError("device 'cuda' needs CuPy: pip install 'tinytensor[gpu]' "
                               "(and an NVIDIA GPU with its driver)") from exc
        _cupy = cupy
        if config.tf32:             # set_tf32(True) came first: the batched products follow it too
            _set_cublas_math_mode(True)
    return _cupy


def cuda_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        return cupy_module().cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def require_cuda():
    """Raise a RuntimeError saying why when device "cuda" cannot be used here (no CuPy, or no GPU it sees)."""
    cp = cupy_module()                      # names the missing package when CuPy is not installed
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:                # CuPy without a driver raises its own CUDA errors
        raise RuntimeError(f"CuPy cannot reach a GPU here ({type(exc).__name__}: {exc})") from None
    if count < 1:
        raise RuntimeError("CuPy sees no GPU on this machine")


def check_device(device):
    """Normalise a device name ("cpu", "cuda", "cuda:0") and reject anything else."""
    if device is None:
        return "cpu"
    device = str(device)
    if device == "cpu" or device == "cuda" or device.startswith("cuda:"):
        return "cpu" if device == "cpu" else "cuda"
    raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")


def xp_of(array):
    """The array module (numpy or cupy) that owns ``array``."""
    # ``type(...) is`` (not isinstance): a subclass of numpy.ndarray may be another library's device array
    if _cupy is None or type(array) is np.ndarray or np.isscalar(array):
        return np
    return _cupy.get_array_module(array)


def xp_for(device):
    """The array module that serves ``device``."""
    return np if check_device(device) == "cpu" else cupy_module()


def device_of(array):
    """"cpu" for NumPy data, "cuda" for CuPy data."""
    return "cpu" if xp_of(array) is np else "cuda"


def to_device(array, device):
    """Move ``array`` to ``device`` (a copy only when it really moves)."""
    device = check_device(device)
    if device_of(array) == device:
        return array
    if device == "cpu":
        return array.get()
    return cupy_module().asarray(array)


def to_numpy(array):
    """A host NumPy array for ``array`` wherever it lives."""
    return array if xp_of(array) is np else array.get()


def set_tf32(enabled=True):
    """Let float32 matrix products on "cuda" use TF32 tensor cores (faster, about 10 mantissa bits).

    A no-op on the CPU (NumPy has no TF32) and never imports CuPy. CuPy decides a matmul's compute type
    from the environment variable ``CUPY_TF32`` the first time it needs it (cupy/_core/_routines_linalg.pyx,
    ``get_compute_type``: ``int(os.getenv('CUPY_TF32', '0')) > 0`` selects ``COMPUTE_TYPE_TF32``), and
    ``set_compute_type(dtype, compute_type)`` in the same module changes it later; we set both, and the
    cuBLAS math mode that CuPy's batched products (attention's) follow (see ``_set_cublas_math_mode``).
    TF32 needs compute capability 8.0 or newer (Ampere, Hopper); CuPy warns and keeps float32 on older GPUs.
    """
    import os
    config.tf32 = bool(enabled)
    os.environ["CUPY_TF32"] = "1" if config.tf32 else "0"
    if _cupy is not None and getattr(_cupy, "__name__", "") == "cupy":
        try:
            from cupy._core import _routines_linalg as linalg
            kind = linalg.COMPUTE_TYPE_TF32 if config.tf32 else linalg.COMPUTE_TYPE_DEFAULT
        except (ImportError, AttributeError):   # another layout: the environment variable still applies
            return
        linalg.set_compute_type(np.float32, kind)
        _set_cublas_math_mode(config.tf32)


def _set_cublas_math_mode(tf32):
    """CuPy's batched products (cupy.matmul of 3-D and more: attention) pass cuBLAS a plain float32 compute
    type that ignores set_compute_type; cuBLAS lets those use TF32 when the handle's math mode is
    CUBLAS_TF32_TENSOR_OP_MATH (3), as PyTorch does for its allow_tf32. The handle is this thread's, on the
    current device."""
    try:
        from cupy_backends.cuda.libs import cublas
        handle = _cupy.cuda.device.get_cublas_handle()
        cublas.setMathMode(handle, 3 if tf32 else 0)     # CUBLAS_TF32_TENSOR_OP_MATH / CUBLAS_DEFAULT_MATH
    except Exception:                                     # no GPU or another CuPy layout: nothing to set
        pass


def tf32_enabled():
    """True after ``set_tf32(True)`` (``config.tf32``)."""
    return config.tf32
