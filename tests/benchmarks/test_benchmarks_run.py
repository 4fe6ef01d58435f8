"""The benchmark scripts still run (no timing is asserted: speed lives in benchmarks/RESULTS.md).

A GPU session has minutes of device time; a benchmark that broke on the CPU side would waste them. These
run the scripts on the CPU with the smallest settings and check their output's shape, not their numbers.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_gpu_bench_harness_on_the_cpu(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run("benchmarks/gpu_bench.py", "--device", "cpu", "--shape", "tiny", "--steps", "1", "--warmup", "1",
                "--frameworks", "ours", "--modes", "fp32", "--profile", "--json", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    run = result["runs"]["ours_fp32"]
    assert run["tokens_per_s"] > 0 and len(run["losses"]) == 2
    assert result["profile"]["rows"] and "per-op profile" in proc.stdout


def test_ab_bench_compares_two_checkouts():
    proc = _run("benchmarks/ab_bench.py", ROOT, ROOT, "--steps", "1", "--rounds", "2", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("median of medians") == 2
    bad = _run("benchmarks/ab_bench.py", ROOT, "/nonexistent", "--rounds", "1")
    assert bad.returncode == 2 and "not a tinytensor checkout" in bad.stderr


def test_every_benchmark_has_help():
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if script.name in ("torch_gpt.py",):                 # a module the others import, not a command
            continue
        proc = _run(script, "--help", timeout=60)
        assert proc.returncode == 0 and "usage" in proc.stdout, (script.name, proc.stderr)


def test_gpu_bench_harness_times_16_bit_autocast_and_new_kernels(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run("benchmarks/gpu_bench.py", "--device", "cpu", "--shape", "tiny", "--batch", "1", "--tokens", "16",
                "--steps", "1", "--warmup", "1", "--frameworks", "ours", "--modes", "fp32,fp16",
                "--new-kernels", "flash_attention", "--json", out)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(out.read_text())["runs"]
    assert set(runs) == {"ours_fp32", "ours+new_fp32", "ours_fp16", "ours+new_fp16"}
    assert all(r["tokens_per_s"] > 0 and len(r["losses"]) == 2 for r in runs.values())
    bad = _run("benchmarks/gpu_bench.py", "--device", "cpu", "--modes", "fp8", timeout=60)
    assert bad.returncode == 2 and "unknown mode 'fp8'" in bad.stderr


def test_gpu_check_dry_run_lists_every_stage(tmp_path):
    import os
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stage in ("gpu_tests", "gpu_bench", "full_suite"):
        assert f"=== {stage} (limit" in proc.stdout, stage
    for stage in ("nccl_gpt2", "mpi_scaling"):                  # run, or skipped saying why
        assert f"=== {stage} (limit" in proc.stdout or f"=== {stage}: skipped: " in proc.stdout, stage
    assert "--modes fp32,tf32,bf16" in proc.stdout and "--new-kernels flash_attention" in proc.stdout
    assert "the benchmark scripts start" in proc.stdout


def test_long_context_bench_runs_ours_alone():
    proc = _run("benchmarks/long_context_bench.py", "--frameworks", "ours", "--contexts", "64,128", "--rounds", "1",
                "--steps", "1")
    assert proc.returncode == 0, proc.stderr
    assert "| 64 |" in proc.stdout and "| 128 |" in proc.stdout and "ours peak MB" in proc.stdout
    bad = _run("benchmarks/long_context_bench.py", "--frameworks", "neither")
    assert bad.returncode == 2 and "--frameworks" in bad.stderr


def test_sample_words_bench_scores_the_last_sample(tmp_path):
    from gpt.data.corpus import help_text
    text = tmp_path / "t.txt"
    text.write_text(help_text()[:40_000], encoding="utf-8")
    proc = _run("benchmarks/sample_words_bench.py", "--seeds", "1", "--set", f"data={text}", "--set", "vocab_size=300",
                "--set", "max_steps=2", "--set", "eval_batches=1", "--set", "context_length=16", "--set", "batch_size=4",
                "--samplers", "0.6:40,0:0", "--draws", "2")
    assert proc.returncode == 0, proc.stderr
    assert "seed 1: " in proc.stdout and "real words" in proc.stdout and "sampler T:K 0.0:0" in proc.stdout
    bad = _run("benchmarks/sample_words_bench.py", "--set", "no_such_field=1", timeout=60)
    assert bad.returncode != 0 and "TrainConfig field" in bad.stderr
