"""benchmarks/long_context_bench.py's options for comparing code: two checkouts alternating, sharper scores."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_checkouts_alternate_with_sharpened_scores():
    proc = subprocess.run([sys.executable, "benchmarks/long_context_bench.py", "--checkouts", f"{ROOT},{ROOT}",
                           "--contexts", "64", "--rounds", "1", "--steps", "1", "--sharpen", "50"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "scores x50" in proc.stdout and proc.stdout.count("round 1 T=   64") == 2
    assert f"T=64: {ROOT} " in proc.stdout and "x)" in proc.stdout
    bad = subprocess.run([sys.executable, "benchmarks/long_context_bench.py", "--checkouts", f"{ROOT},/nowhere"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "/nowhere is not a tinytensor checkout" in bad.stderr
