"""benchmarks/families_bench.py still runs (its shape only: speed lives in benchmarks/RESULTS.md)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_families_bench_runs_every_family_once(tmp_path, capsys):
    import families_bench
    out = tmp_path / "r.json"
    assert families_bench.main(["--rounds", "1", "--steps", "1", "--batch", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"gpt2", "llama", "qwen3"} and result["gpt2"]["vs_gpt2"] == 1.0
    assert all(r["tokens_per_s"] > 0 and r["parameters"] > 0 for r in result.values())
    assert capsys.readouterr().out.count("x\n") == 3
