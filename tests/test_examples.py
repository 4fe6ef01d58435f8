"""Every example runs (in --quick mode: the same code paths, fewer steps) and prints its key line.

Each runs in a fresh interpreter from the repository root with a temporary --out folder where the
example writes files, so nothing lands in the repository.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# file -> a line (or part of one) its output must contain
KEY_LINES = {
    "01_derivatives.py": "the engine in float64 equals the hand derivation: True",
    "02_backprop_trace.py": "#0 x .grad += () norm 4 [4]",
    "03_broadcasting.py": "each entry is a column sum of dL/dy: True",
    "04_mlp_from_scratch.py": "final training accuracy:",
    "05_new_op_property_test.py": "hypothesis found a failure: GradcheckError",
    "06_bpe_merges.py": "decode(ids) gives the text back: True",
    "07_attention_by_hand.py": "rows sum to 1: True | above the diagonal exactly 0: True",
    "08_train_tiny_gpt.py": "evaluated loss: 5.9",
    "09_sampling.py": "tokens outside the top 10 drawn: 0",
    "10_finetune_classifier.py": "after fine-tuning",
    "11_instruction_tuning.py": "exact match on 4 held-out prompts:",
    "12_attention_in_tiles.py": "tiled forward and backward equal the fused op: True",
}
# extra arguments: 09-11 look for 08's checkpoint in the system temp folder; point them at an empty
# place so CI always runs the same path (train a small base model, then use it), whatever ran before
EXTRA_ARGS = {name: ["--checkpoint", "{tmp}/no-checkpoint"]
              for name in ("09_sampling.py", "10_finetune_classifier.py", "11_instruction_tuning.py")}


def run_example(name, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    args = [sys.executable, str(EXAMPLES / name), "--quick"]
    if '"--out"' in (EXAMPLES / name).read_text():
        args += ["--out", str(tmp_path)]
    args += [a.format(tmp=tmp_path) for a in EXTRA_ARGS.get(name, [])]
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_every_example_is_listed():
    found = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))
    assert found == sorted(KEY_LINES), "add new examples to KEY_LINES"


@pytest.mark.parametrize("name", sorted(KEY_LINES))
def test_example_runs(name, tmp_path):
    out = run_example(name, tmp_path)
    assert KEY_LINES[name] in out, f"{name}: expected {KEY_LINES[name]!r} in its output:\n{out[-3000:]}"
    if name == "04_mlp_from_scratch.py":        # the quick run must still learn the moons
        accuracy = float(out.split("final training accuracy:")[1].split("%")[0])
        assert accuracy >= 90.0, out[-2000:]
    assert list(tmp_path.iterdir()) == [] or '"--out"' in (EXAMPLES / name).read_text()
