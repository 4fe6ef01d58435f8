"""benchmarks/attention_bench.py runs (its numbers are not asserted: speed lives in benchmarks/RESULTS.md)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_attention_bench_compares_two_checkouts():
    proc = subprocess.run([sys.executable, "benchmarks/attention_bench.py", "--checkouts", f"{ROOT},{ROOT}",
                           "--shapes", "1x2x8x4", "--rounds", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("round 1") == 2 and "| 1x2x8x4 |" in proc.stdout
