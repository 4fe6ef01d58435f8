"""Build a CUDA source for the CPU with tests/gpu/cuda_on_cpu.h and call its kernels through ctypes.

``build(code, folder)`` compiles ``code`` (kernels declared ``extern "C" __global__ void name(...) {``) with a
launcher ``launch_NAME(grid_x, grid_y, threads, args...)`` for each, and returns {name: callable}: pass
pointers as ints (``array.ctypes.data``), ints, floats and long longs as they are.
"""
import ctypes
import re
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
TYPES = {"const ELEM*": ctypes.c_void_p, "ELEM*": ctypes.c_void_p, "const float*": ctypes.c_void_p,
         "float*": ctypes.c_void_p, "int": ctypes.c_int, "float": ctypes.c_float, "long long": ctypes.c_longlong}


def available():
    return shutil.which("g++") is not None


def launchers(code):
    """C++ wrappers ``launch_NAME(gx, gy, threads, args...)`` for every kernel in ``code``, and the ctypes
    types of each kernel's parameters."""
    wrappers, signatures = [], {}
    for name, params in re.findall(r'extern "C" __global__ void (\w+)\((.*?)\) \{', code, re.S):
        parts = [p.strip() for p in params.replace("\n", " ").split(",")]
        types = [p.rsplit(" ", 1)[0].strip() for p in parts]
        names = [p.rsplit(" ", 1)[1].strip() for p in parts]
        signatures[name] = [TYPES[t] for t in types]
        wrappers.append(f'extern "C" void launch_{name}(unsigned gx, unsigned gy, unsigned threads, {", ".join(parts)}) '
                        f'{{ tt_launch(dim3{{gx, gy, 1}}, dim3{{threads, 1, 1}}, [&] {{ {name}({", ".join(names)}); }}); }}\n')
    return "".join(wrappers), signatures


def build(code, folder, name):
    """Compile ``code`` for the CPU in ``folder`` as ``name``.so; {kernel name: launcher}."""
    wrappers, signatures = launchers(code)
    cpp = Path(folder) / f"{name}.cpp"
    cpp.write_text(f'#include "cuda_on_cpu.h"\n{code}\n{wrappers}')
    lib = cpp.with_suffix(".so")
    out = subprocess.run(["g++", "-std=c++20", "-O1", "-pthread", "-shared", "-fPIC", "-Wno-unknown-pragmas",
                          f"-I{HERE}", str(cpp), "-o", str(lib)], capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise AssertionError(f"g++ failed on {cpp}:\n{out.stderr[-3000:]}")
    dll = ctypes.CDLL(str(lib))
    kernels = {}
    for kernel, types in signatures.items():
        fn = getattr(dll, f"launch_{kernel}")
        fn.argtypes = [ctypes.c_uint] * 3 + types
        kernels[kernel] = fn
    return kernels
