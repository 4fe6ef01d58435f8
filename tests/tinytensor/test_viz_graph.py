"""tinytensor.viz's graph data: the stepper's gradients are autograd's, finite differences agree, big
graphs fold, and nothing the user holds is changed."""
import json
import os

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor.viz import export
from tinytensor.viz.formulas import source_of
from tinytensor.viz.graph import graph_payload
from tinytensor.viz.jsondata import dumps, for_script_tag, plain
from tinytensor.viz.layout import find_repeat
from tinytensor.viz.summary import summarize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _net(dtype="float64"):
    rng = np.random.default_rng(0)
    w = tt.tensor(rng.normal(size=(3, 4)), requires_grad=True, dtype=dtype)
    b = tt.tensor(rng.normal(size=(4,)), requires_grad=True, dtype=dtype)
    x = tt.tensor(rng.normal(size=(5, 3)), dtype=dtype)

    def fn():
        h = (x @ w + b).tanh()
        return (h * h + h).mean()          # h is used twice: its gradient is a sum (+=)
    return w, b, x, fn


def _final_totals(payload):
    """Each tensor's gradient after the last step that reached it, read from the steps alone."""
    totals = {}
    for step in payload["steps"]:
        for t in step["to"]:
            totals[t["parent"]] = np.array(t["total"]["values"]).reshape(t["total"]["shape"])
    return totals


def test_stepper_sums_equal_autograd_and_leave_grads_alone():
    w, b, x, fn = _net()
    loss = fn()
    payload = graph_payload(loss, names={"w": w, "b": b})
    assert w.grad is None and b.grad is None            # the page's backward left .grad as it was
    totals = _final_totals(payload)
    loss.backward()                                     # the graph is still whole
    by_name = {n["name"]: n["id"] for n in payload["nodes"] if n["name"]}
    np.testing.assert_array_equal(totals[by_name["w"]], w.grad)
    np.testing.assert_array_equal(totals[by_name["b"]], b.grad)
    after = payload["nodes"][by_name["w"]]["grad_after"]
    np.testing.assert_array_equal(np.array(after["values"]).reshape(after["shape"]), w.grad)


def test_reuse_is_marked_accumulated_once():
    w, b, x, fn = _net()
    payload = graph_payload(fn())
    tanh = [n["id"] for n in payload["nodes"] if n["op"] == "tanh"][0]
    marks = [t["accumulated"] for s in payload["steps"] for t in s["to"] if t["parent"] == tanh]
    assert sorted(marks) == [False, True, True]         # h * h + h: three uses, the later two add on (+=)
    ops = [payload["nodes"][s["node"]]["op"] for s in payload["steps"]]
    assert ops[0] == "mean" and len(ops) == len(set(s["node"] for s in payload["steps"]))


def test_grad_before_is_kept_and_after_adds_this_pass():
    w, b, x, fn = _net()
    fn().backward()
    first = w.grad.copy()
    payload = graph_payload(fn(), names={"w": w})
    node = [n for n in payload["nodes"] if n["name"] == "w"][0]
    np.testing.assert_array_equal(np.array(node["grad_before"]["values"]).reshape(3, 4), first)
    np.testing.assert_allclose(np.array(node["grad_after"]["values"]).reshape(3, 4), 2 * first)
    np.testing.assert_array_equal(w.grad, first)


def test_finite_differences_agree_and_values_are_restored():
    w, b, x, fn = _net()
    keep = w.data.copy()
    payload = graph_payload(fn(), fn=fn, check=[w, b])
    assert len(payload["checks"]) == 8
    for c in payload["checks"]:
        assert c["rel_error"] < 1e-7, c
    np.testing.assert_array_equal(w.data, keep)


def test_finite_differences_notice_a_wrong_gradient():
    """A check that can fail: a function whose backward lies shows a large error."""
    class Bad(tt.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3
    a = tt.tensor([1.0, 2.0], requires_grad=True, dtype="float64")
    fn = lambda: Bad.apply(a).sum()  # noqa: E731
    payload = graph_payload(fn(), fn=fn)
    assert all(c["rel_error"] > 0.1 for c in payload["checks"])


def test_freed_graph_and_no_grad_are_refused():
    w, b, x, fn = _net()
    loss = fn()
    loss.backward()
    with pytest.raises(ValueError, match="freed"):
        graph_payload(loss)
    with pytest.raises(ValueError, match="require grad"):
        graph_payload(tt.tensor([1.0]) * 2)


def test_non_scalar_output_is_seeded_with_ones():
    a = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    payload = graph_payload(a * a)
    assert payload["steps"][0]["to"][-1]["total"]["values"] == [2.0, 4.0, 6.0]   # a * a: a, then += a
    assert payload["seed"].startswith("ones")


def test_tiny_gpt_folds_its_blocks_and_caps_the_boxes():
    import gpt
    tt.manual_seed(0)
    cfg = gpt.GPTConfig.preset("tiny")
    model = gpt.GPT(cfg)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (1, 9))
    loss = F.cross_entropy(model(ids[:, :-1]), ids[:, 1:])
    payload = graph_payload(loss)
    labels = [g["label"] for g in payload["groups"]]
    assert labels == [f"repeat {k} of {cfg.n_layers} " + labels[0].split(" ", 4)[4] for k in range(2, cfg.n_layers + 1)]
    boxes = len(payload["layout"]["boxes"])
    assert boxes < len(payload["nodes"]) / 2
    capped = graph_payload(F.cross_entropy(model(ids[:, :-1]), ids[:, 1:]), max_nodes=20)
    assert len(capped["layout"]["boxes"]) <= 20
    assert capped["groups"][-1]["label"].endswith("earlier tensors")
    json.loads(dumps(payload))


def test_find_repeat_finds_the_shortest_period():
    seq = list("xy") + list("abcde") * 4 + list("z")
    assert find_repeat(seq) == (2, 5, 4)
    assert find_repeat(list("abcdefgh")) is None


def test_source_points_at_the_backward():
    payload = graph_payload(tt.tensor([1.0], requires_grad=True).tanh().sum())
    src = [n["source"] for n in payload["nodes"] if n["op"] == "tanh"][0]
    path, line = src.rsplit(":", 1)
    with open(os.path.join(ROOT, path)) as f:
        assert "def" in f.read().splitlines()[int(line) - 1]
    assert source_of(len) is None or ":" in source_of(len)


def test_summaries_small_in_full_large_as_stats():
    assert summarize(np.arange(6.0).reshape(2, 3))["values"] == [0, 1, 2, 3, 4, 5]
    big = summarize(np.arange(10000.0).reshape(100, 100))
    assert big["stats"]["max"] == 9999 and len(big["heat"]) == 16 and len(big["heat"][0]) == 16
    odd = summarize(np.array([np.nan, np.inf] + [1.0] * 100))
    assert odd["stats"]["nonfinite"] == 2 and odd["stats"]["max"] == 1


def test_json_spells_nan_and_infinity_and_is_safe_in_a_script_tag():
    text = dumps({"a": [float("nan"), float("inf"), -np.inf, np.float32(1.5)], "s": "</script><!--"})
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["a"] == [{"$float": "nan"}, {"$float": "inf"}, {"$float": "-inf"}, 1.5]
    safe = for_script_tag(text)
    assert "</script" not in safe and "<!--" not in safe and json.loads(safe) == json.loads(text)
    assert plain(np.arange(2)) == [0, 1]


def test_export_is_one_file_with_nothing_from_elsewhere(tmp_path):
    a = tt.tensor([1.0, -2.0], requires_grad=True)
    path = export((a * a).sum(), tmp_path / "g.html")
    html = open(path, encoding="utf-8").read()
    assert '<script src=' not in html and 'rel="stylesheet"' not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    assert 'id="tt-data-graph"' in html
    assert [p.name for p in tmp_path.iterdir()] == ["g.html"]      # no temporary left behind


def test_the_pages_cost_nothing_unless_imported_and_know_nothing_of_gpt_or_bpe():
    import ast
    import subprocess
    import sys
    code = "import sys, tinytensor; print([m for m in sys.modules if m.startswith(('tinytensor.viz', 'http.server'))])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.stdout.strip() == "[]", r.stderr
    folder = os.path.join(ROOT, "tinytensor", "viz")
    for name in os.listdir(folder):
        if name.endswith(".py"):
            tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read())
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
                assert not any(n.split(".")[0] in ("gpt", "bpe") for n in names), (name, names)


def test_static_files_are_plain_and_local():
    folder = os.path.join(ROOT, "tinytensor", "viz", "static")
    for name in os.listdir(folder):
        text = open(os.path.join(folder, name), encoding="utf-8").read()
        assert "https://" not in text and "cdn" not in text.lower(), name
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), name
