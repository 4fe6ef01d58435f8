#!/usr/bin/env bash
# Everything a short GPU lease has to run (issues 7 and 19), in one go from the repository root, under
# 9 minutes on an H200 with CuPy and PyTorch:
#   1. gpu_tests   the GPU tests (tests/gpu/test_gpu.py: every fused kernel against the array path, the new
#                  ones too: flash attention, vectorised GELU, bf16/fp16 autocast), the fake-device seam,
#                  the emulated-cuBLAS and flash-attention CPU tests
#   2. gpu_bench   benchmarks/gpu_bench.py, GPT-2 small, batch 8 x 1024, full training steps: ours against
#                  PyTorch eager in fp32, TF32 and bf16 autocast (PyTorch: torch.autocast + its fused
#                  scaled_dot_product_attention), ours with the new kernels off and on ("ours+new"), and the
#                  GPU time of every kernel of both in fp32 and bf16 (PyTorch's profiler)
#   3. nccl_gpt2   benchmarks/ddp_bench.py --device cuda: GPT-2 small on one rank through the nccl backend
#                  of tinytensor.distributed (when both exist)
#   4. mpi_scaling benchmarks/ddp_bench.py: 1, 2, 4, 8 MPI ranks on the CPU cores, small shape, against
#                  one process with as many threads (when it exists)
#   5. full_suite  the rest of the tests (CI's profile) with whatever time is left
# Every stage has its own limit and all of them share one deadline (DEADLINE_S, 530 s), so the script ends
# in time; a failing stage is reported and the next still runs. Logs and JSON go to $OUT (or /tmp/gpu_check).
# No network is needed. bf16 needs CuPy 14+ and ml_dtypes on the machine (stage 0 says whether they are).
#
#   bash benchmarks/gpu_check.sh             # the whole run
#   bash benchmarks/gpu_check.sh --dry-run   # say what would run, check each script's --help; no GPU needed
set -u
cd "$(dirname "$0")/.."
LOGS="${OUT:-/tmp/gpu_check}"
mkdir -p "$LOGS"
PY="${PYTHON:-python}"
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
DEADLINE_S="${DEADLINE_S:-530}"
NEW_KERNELS="flash_attention,gelu_vectorized"       # config.UNTESTED_CUDA_KERNELS: tested and timed here (the
unset TINYTENSOR_CUDA_KERNELS                       # tests and gpu_bench switch them on and off themselves)
SUMMARY=()
START=$(date +%s)

left() { echo $(( DEADLINE_S - ($(date +%s) - START) )); }

stage() {   # stage NAME LIMIT_S COMMAND...: runs with min(LIMIT_S, time left before the deadline)
    local name=$1 limit=$2 t0 rc
    shift 2
    [ "$limit" -gt "$(left)" ] && limit=$(left)
    if [ "$DRY" = 1 ]; then
        echo "=== $name (limit ${limit}s): $* ==="
        SUMMARY+=("$name: dry run")
        return
    fi
    if [ "$limit" -lt 10 ]; then
        echo "=== $name: skipped, the deadline is reached ==="
        SUMMARY+=("$name: skipped (deadline)")
        return
    fi
    echo "=== $name: $* (limit ${limit}s) ==="
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 124 ] && echo "=== $name: TIMED OUT after ${limit}s ==="
    SUMMARY+=("$name: rc=$rc in $(( $(date +%s) - t0 ))s")
    echo "=== $name: rc=$rc in $(( $(date +%s) - t0 ))s (total $(( $(date +%s) - START ))s) ==="
}

skip() {    # skip NAME WHY
    echo "=== $1: skipped: $2 ==="
    SUMMARY+=("$1: skipped ($2)")
}

echo "=== machine ==="
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader 2>&1 || echo "nvidia-smi not found"
nproc 2>/dev/null | sed 's/^/cpu cores: /'
"$PY" - <<'PY'
import numpy
print("python", __import__("sys").version.split()[0], "numpy", numpy.__version__)
for name in ("cupy", "torch", "ml_dtypes", "mpi4py"):
    try:
        module = __import__(name)
        extra = ""
        if name == "cupy":
            n = module.cuda.runtime.getDeviceCount()
            extra = f" devices {n}"
        if name == "torch":
            extra = f" cuda {module.cuda.is_available()}"
        print(name, module.__version__, extra)
    except Exception as exc:
        print(f"{name} unusable: {type(exc).__name__}: {exc}")
PY
if [ "$DRY" = 0 ]; then
    "$PY" -m pip install -e . --no-deps --no-build-isolation -q 2>&1 | tail -3 \
        || echo "(pip install -e . failed; the tests and the benchmark find the packages from the repository root anyway)"
else   # the scripts this run calls must at least start
    for script in benchmarks/gpu_bench.py benchmarks/ddp_bench.py; do
        [ -f "$script" ] || continue
        "$PY" "$script" --help > /dev/null || { echo "$script --help failed"; exit 1; }
    done
    echo "the benchmark scripts start (--help)"
fi
DDP_HELP=$([ -f benchmarks/ddp_bench.py ] && "$PY" benchmarks/ddp_bench.py --help 2>/dev/null)

stage gpu_tests 130 "$PY" -m pytest tests/gpu/test_gpu.py tests/test_device_seam.py tests/gpu/test_cuda_blas_emulated.py \
    tests/gpu/test_flash_attention.py -rs -p no:cacheprovider
stage gpu_bench 240 "$PY" benchmarks/gpu_bench.py --shape gpt2 --steps 6 --warmup 2 --budget-s 20 \
    --modes fp32,tf32,bf16 --new-kernels "$NEW_KERNELS" --kernel-profile --profile-modes fp32,bf16
if echo "$DDP_HELP" | grep -q -- "--device" && "$PY" -c "import tinytensor.distributed" 2>/dev/null; then
    stage nccl_gpt2 75 "$PY" benchmarks/ddp_bench.py --device cuda --ranks 1 --shapes gpt2 --steps 3 \
        --json "$LOGS/ddp_nccl_gpt2.json"
else
    skip nccl_gpt2 "benchmarks/ddp_bench.py with --device, or tinytensor.distributed, is not here yet"
fi
if echo "$DDP_HELP" | grep -q -- "--ranks"; then
    stage mpi_scaling 100 "$PY" benchmarks/ddp_bench.py --ranks 1,2,4,8 --shapes small --bind --steps 3 \
        --json "$LOGS/ddp_scaling.json"
else
    skip mpi_scaling "benchmarks/ddp_bench.py (with --ranks) does not exist yet"
fi
stage full_suite 120 env CI=1 "$PY" -m pytest -p no:cacheprovider --ignore=tests/gpu/test_gpu.py \
    --ignore=tests/test_device_seam.py --ignore=tests/gpu/test_cuda_blas_emulated.py --ignore=tests/gpu/test_flash_attention.py

echo "=== summary (total $(( $(date +%s) - START ))s) ==="
printf '  %s\n' "${SUMMARY[@]}"
[ -n "${OUT:-}" ] && [ -f "$OUT/gpu_bench.json" ] && echo "  benchmark JSON: $OUT/gpu_bench.json"
exit 0
