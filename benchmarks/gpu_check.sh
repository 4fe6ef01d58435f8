#!/usr/bin/env bash
# Everything a short GPU lease has to run for issue 7, in one go, from the repository root:
#   1. the GPU tests and the fake-device seam tests,
#   2. benchmarks/gpu_bench.py: GPT-2 small, batch 8 x 1024, full training steps, ours vs PyTorch eager,
#      fp32 and TF32, ours once more without cuBLAS on strided views (cupy.matmul instead), and the GPU
#      time of every kernel of both (PyTorch's profiler) (JSON to $OUT/gpu_bench.json),
#   3. the rest of the test suite (CI's derandomized hypothesis profile) on that machine's packages.
# Each stage has its own time limit, so the whole script stays under about 8 minutes; a failing stage is
# reported and the next one still runs. Logs go to $OUT (or /tmp/gpu_check). No network is needed.
#
#   bash benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
LOGS="${OUT:-/tmp/gpu_check}"
mkdir -p "$LOGS"
PY="${PYTHON:-python}"
T_TESTS="${T_TESTS:-150}"     # seconds per stage
T_SUITE="${T_SUITE:-120}"
T_BENCH="${T_BENCH:-240}"
SUMMARY=()
START=$(date +%s)

stage() {   # stage NAME LIMIT_S COMMAND...
    local name=$1 limit=$2 t0 rc
    shift 2
    echo "=== $name: $* (limit ${limit}s) ==="
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 124 ] && echo "=== $name: TIMED OUT after ${limit}s ==="
    SUMMARY+=("$name: rc=$rc in $(( $(date +%s) - t0 ))s")
    echo "=== $name: rc=$rc in $(( $(date +%s) - t0 ))s (total $(( $(date +%s) - START ))s) ==="
}

echo "=== machine ==="
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader 2>&1 || echo "nvidia-smi not found"
"$PY" - <<'PY'
import numpy
print("python", __import__("sys").version.split()[0], "numpy", numpy.__version__)
try:
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"] if n else b"-"
    print("cupy", cupy.__version__, "devices", n, name.decode() if isinstance(name, bytes) else name)
except Exception as exc:
    print("cupy unusable:", type(exc).__name__, exc)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available())
except Exception as exc:
    print("torch unusable:", type(exc).__name__, exc)
PY
"$PY" -m pip install -e . --no-deps --no-build-isolation -q 2>&1 | tail -3 \
    || echo "(pip install -e . failed; the tests and the benchmark find the packages from the repository root anyway)"

stage gpu_tests "$T_TESTS" "$PY" -m pytest tests/test_gpu.py tests/test_device_seam.py tests/test_cuda_blas_emulated.py \
    -rs -p no:cacheprovider
stage gpu_bench "$T_BENCH" "$PY" benchmarks/gpu_bench.py --shape gpt2 --steps 8 --warmup 2 --budget-s 30 \
    --compare-kernel strided_matmul --kernel-profile
stage full_suite "$T_SUITE" env CI=1 "$PY" -m pytest -p no:cacheprovider \
    --ignore=tests/test_gpu.py --ignore=tests/test_device_seam.py --ignore=tests/test_cuda_blas_emulated.py

echo "=== summary (total $(( $(date +%s) - START ))s) ==="
printf '  %s\n' "${SUMMARY[@]}"
[ -n "${OUT:-}" ] && [ -f "$OUT/gpu_bench.json" ] && echo "  benchmark JSON: $OUT/gpu_bench.json"
exit 0
