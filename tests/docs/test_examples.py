"""Every example runs (in --quick mode: the same code paths, fewer steps) and prints its key line.

Each runs in a fresh interpreter, in an empty folder, with --out pointing into it where the example
takes one, and with its own empty TMPDIR: what is left in either afterwards the example forgot to
clean up (examples leave no temporary folders). --quick never reads or fills the cache folder.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
    "13_newton_second_derivative.py": "the second derivative from autograd equals the analytic one: True",
    "14_hessian_vector_product.py": "Look: they agree: True",
    "15_gradient_penalty.py": "Look: the double backward is right: True",
}


def run_example(name, tmp_path):
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", TMPDIR=str(tmp))
    args = [sys.executable, str(EXAMPLES / name), "--quick"]
    takes_out = '"--out"' in (EXAMPLES / name).read_text()
    if takes_out:
        args += ["--out", str(work / "out")]
    result = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert list(tmp.iterdir()) == [], f"{name} left temporary files: {list(tmp.iterdir())}"
    assert [p.name for p in work.iterdir()] == (["out"] if takes_out and (work / "out").exists() else []), \
        f"{name} wrote outside --out: {list(work.iterdir())}"
    return result.stdout


def test_every_example_is_listed():
    found = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))
    assert found == sorted(KEY_LINES), "add new examples to KEY_LINES"


@pytest.mark.parametrize("name", sorted(KEY_LINES))
def test_example_runs(name, tmp_path):
    out = run_example(name, tmp_path)
    assert KEY_LINES[name] in out, f"{name}: expected {KEY_LINES[name]!r} in its output:\n{out[-3000:]}"
    if name == "08_train_tiny_gpt.py":          # the loop stops by its own step count: no signal, no stop message
        assert "SIGTERM" not in out and "stopping" not in out and "def train_simple" not in out, out[-2000:]
        assert "optimizer.step()" in out                      # the loop it runs is printed
    if name == "04_mlp_from_scratch.py":        # the quick run must still learn the moons
        accuracy = float(out.split("final training accuracy:")[1].split("%")[0])
        assert accuracy >= 90.0, out[-2000:]


def test_example_05_runs_without_hypothesis(tmp_path):
    """After Quickstart line 1 (no test extra) example 05 runs its first parts and says in one line what
    to install for the rest."""
    fake = tmp_path / "no_hypothesis" / "hypothesis"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('hypothesis is not installed here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), str(ROOT)]))
    result = subprocess.run([sys.executable, str(EXAMPLES / "05_new_op_property_test.py"), "--quick"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "shapes (1, 3) and (2, 1): True" in result.stdout
    assert [line for line in result.stdout.splitlines() if "pip install hypothesis" in line], result.stdout


def test_the_shared_base_model_says_how_many_steps_it_trained_when_it_finishes_an_earlier_run(tmp_path, monkeypatch,
                                                                                                  capsys):
    """A base model an earlier run left at step 2 of 4 is finished by the next example, which says it trained
    steps 3-4 (not "done in 1s" as if it had trained all of them)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import _tiny_base
    finally:
        sys.path.remove(str(EXAMPLES))
    recipe = dict(_tiny_base.QUICK, max_steps=4, eval_every=2, save_every=2)
    folder = tmp_path / "base"
    monkeypatch.setattr(_tiny_base, "RECIPE", recipe)
    monkeypatch.setattr(_tiny_base, "cached_folder", lambda: folder)
    _tiny_base.train_recipe(folder, dict(recipe, max_steps=2), stream=open(os.devnull, "w"))
    assert _tiny_base.trained_steps(folder) == 2
    _tiny_base.base_checkpoint()
    out = capsys.readouterr().out
    assert "steps 3-4 of 4; an earlier run stopped at 2" in out and "  2 steps in " in out, out
    assert _tiny_base.trained_steps(folder) == 4
