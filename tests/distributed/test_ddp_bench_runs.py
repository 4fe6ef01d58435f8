"""benchmarks/ddp_bench.py still runs (its numbers are not checked: speed lives in benchmarks/RESULTS.md)."""
import json
import platform
import subprocess
import sys

from mpi_helpers import ROOT, clean_env, require_mpi


def test_ddp_bench_runs_two_ranks_on_the_tiny_shape(tmp_path):
    require_mpi()
    out = tmp_path / "ddp.json"
    proc = subprocess.run([sys.executable, "benchmarks/ddp_bench.py", "--shapes", "tiny", "--ranks", "2", "--steps", "1",
                           "--no-threads", "--json", out], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(out.read_text())
    ddp = row["ddp"]
    assert ddp["ranks"] == 2 and ddp["tokens_per_s"] > 0 and len(ddp["ddp_wait_s"]) == 1
    assert "2 ranks x 1 thread" in proc.stdout
    # timed as `python -m gpt train` runs: freed memory reused (tt.tune_heap()), not a page fault per temporary
    assert ddp["heap_tuned"] == (platform.libc_ver()[0] == "glibc")
