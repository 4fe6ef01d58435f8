"""The learner's instruments: backward trace, DOT graph, memory counters; exact text on a small graph."""
import io

import numpy as np
import pytest

import tinytensor as tt
from tinytensor.trace import fmt_array, number_tensors


def small_graph():
    """x = 2, y = 3, z = x * y + x: dz/dx = y + 1 = 4, dz/dy = x = 2."""
    x = tt.tensor(2.0, requires_grad=True)
    y = tt.tensor(3.0, requires_grad=True)
    return x, y, x * y + x


EXPECTED_TRACE = """\
backward from #3 add, shape (): 4 tensors, numbered inputs-first (#0 was made first)
[1] #3 add -> ()
      grad in  () norm 1 [1]
      to #2 mul: () norm 1 [1]
      to #0 x: () norm 1 [1]
[2] #2 mul -> ()
      grad in  () norm 1 [1]
      to #0 x: () norm 3 [3]
      to #1 y: () norm 2 [2]
[3] #0 x .grad += () norm 4 [4]
[4] #1 y .grad += () norm 2 [2]
"""

EXPECTED_DOT = """\
digraph tinytensor {
  rankdir=LR;
  node [fontname="Helvetica", fontsize=11];
  t0 [label="#0 x\\n()\\nrequires_grad", shape=box, style=filled, fillcolor=lightblue];
  t1 [label="#1 y\\n()\\nrequires_grad", shape=box, style=filled, fillcolor=lightblue];
  t2 [label="#2 mul\\n()", shape=ellipse];
  t3 [label="#3 add\\n()", shape=ellipse, peripheries=2];
  t0 -> t2 [label="0"];
  t1 -> t2 [label="1"];
  t2 -> t3 [label="0"];
  t0 -> t3 [label="1"];
}
"""


def test_trace_exact_text_via_backward_flag(capsys):
    x, y, z = small_graph()
    x.name, y.name = "x", "y"
    z.backward(trace=True)
    assert capsys.readouterr().out == EXPECTED_TRACE
    assert x.grad == 4.0 and y.grad == 2.0


def test_trace_context_manager_with_names_and_file():
    x, y, z = small_graph()
    buf = io.StringIO()
    with tt.trace(file=buf, names={"x": x, "y": y}):
        z.backward()
    assert buf.getvalue() == EXPECTED_TRACE
    assert x.grad == 4.0 and y.grad == 2.0


def test_trace_context_manager_restores_backward(capsys):
    before = tt.Tensor.backward
    with tt.trace():
        pass
    assert tt.Tensor.backward is before
    x, y, z = small_graph()
    z.backward()
    assert capsys.readouterr().out == ""


def test_trace_without_names_labels_leaves_and_constants(capsys):
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    ((x * 3.0).sum()).backward(trace=True)
    assert capsys.readouterr().out == """\
backward from #3 sum, shape (): 4 tensors, numbered inputs-first (#0 was made first)
[1] #3 sum -> ()
      grad in  () norm 1 [1]
      to #2 mul: (2,) norm 1.414 [1, 1]
[2] #2 mul -> (2,)
      grad in  (2,) norm 1.414 [1, 1]
      to #0 leaf: (2,) norm 4.243 [3, 3]
      to #1 const: nothing (needs no gradient)
[3] #0 leaf .grad += (2,) norm 4.243 [3, 3]
"""


def test_trace_shows_a_few_values_of_big_gradients():
    a = np.arange(10, dtype=np.float32).reshape(2, 5) / 4
    assert fmt_array(a) == "(2, 5) norm 4.22 [0, 0.25, 0.5, 0.75, 1, 1.25, ...]"
    assert fmt_array(a, max_values=2) == "(2, 5) norm 4.22 [0, 0.25, ...]"
    assert fmt_array(np.array(-2.5e-5)) == "() norm 2.5e-05 [-2.5e-05]"


def test_trace_of_a_leaf_output(capsys):
    x = tt.tensor(5.0, requires_grad=True)
    x.backward(trace=True)
    assert capsys.readouterr().out == ("backward from #0 leaf, shape (): 1 tensors, numbered inputs-first "
                                       "(#0 was made first)\n[1] #0 leaf .grad += () norm 1 [1]\n")


def test_trace_is_still_readable_on_an_mlp():
    tt.manual_seed(0)
    mlp = tt.nn.Sequential(tt.nn.Linear(3, 4), tt.nn.Linear(4, 2))
    x = tt.tensor(np.ones((5, 3)))
    buf = io.StringIO()
    with tt.trace(file=buf):
        loss = (mlp(x).tanh() ** 2).mean()
        loss.backward()
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("backward from #")
    steps = [ln for ln in lines if ln.startswith("[")]
    assert len(steps) >= 6                     # every op and every parameter appears
    assert sum(".grad +=" in ln for ln in steps) == 4
    assert all(len(ln) < 120 for ln in lines)  # a few values, not whole matrices


def test_numbering_is_inputs_first_and_left_to_right():
    x, y, z = small_graph()
    order = number_tensors(z)
    assert order[0] is x and order[1] is y and order[-1] is z
    assert [t._op for t in order] == [None, None, "mul", "add"]


def test_to_dot_exact_text():
    x, y, z = small_graph()
    assert tt.to_dot(z, names={"x": x, "y": y}) == EXPECTED_DOT
    x.name, y.name = "x", "y"
    assert tt.to_dot(z) == EXPECTED_DOT


def test_to_dot_constants_dtypes_and_single_input_ops():
    x = tt.tensor([1.0, 2.0], requires_grad=True, dtype="float64")
    out = (x * 2.0).exp()
    assert tt.to_dot(out) == """\
digraph tinytensor {
  rankdir=LR;
  node [fontname="Helvetica", fontsize=11];
  t0 [label="#0 leaf\\n(2,) float64\\nrequires_grad", shape=box, style=filled, fillcolor=lightblue];
  t1 [label="#1 const\\n() float64", shape=box, style=filled, fillcolor=lightgrey];
  t2 [label="#2 mul\\n(2,) float64", shape=ellipse];
  t3 [label="#3 exp\\n(2,) float64", shape=ellipse, peripheries=2];
  t0 -> t2 [label="0"];
  t1 -> t2 [label="1"];
  t2 -> t3;
}
"""


def test_to_dot_after_backward_shows_the_freed_graph():
    x, y, z = small_graph()
    z.backward()
    assert '#0 add (graph freed by backward)' in tt.to_dot(z)
    assert tt.to_dot(z).count("->") == 0


def test_draw_without_graphviz_writes_dot_and_says_how_to_install(tmp_path, monkeypatch, capsys):
    import tinytensor.graphviz as gv
    monkeypatch.setattr(gv.shutil, "which", lambda name: None)
    x, y, z = small_graph()
    written = tt.draw(z, tmp_path / "graph.png", names={"x": x, "y": y})
    assert written == tmp_path / "graph.dot"
    assert written.read_text() == EXPECTED_DOT
    message = capsys.readouterr().out
    assert "apt install graphviz" in message and "dot -Tpng" in message


def test_draw_to_a_dot_file(tmp_path):
    x, y, z = small_graph()
    written = tt.draw(z, tmp_path / "g.dot", names={"x": x, "y": y})
    assert written.read_text() == EXPECTED_DOT


def test_draw_png_when_graphviz_is_installed(tmp_path):
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed")
    x, y, z = small_graph()
    written = tt.draw(z, tmp_path / "g.png")
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_graph_stats_before_and_after_backward():
    x, y, z = small_graph()
    before = tt.graph_stats(z)
    assert (before.nodes, before.arrays, before.bytes, before.ops) == (2, 2, 8, {"add": 1, "mul": 1})
    assert str(before) == "graph: 2 op nodes holding 2 arrays, 8 B (add 1, mul 1)"
    z.backward()
    after = tt.graph_stats(z)
    assert (after.nodes, after.arrays, after.bytes) == (0, 0, 0)
    assert str(after) == "graph: 0 op nodes holding 0 arrays, 0 B"


def test_graph_stats_counts_each_buffer_once():
    x = tt.tensor(np.ones((4, 8)), requires_grad=True)     # float32: 128 bytes, a leaf: not counted
    h = x * 2.0                                             # 128 bytes
    r = h.reshape(8, 4)                                     # a view of h's output: not counted again
    loss = (r * r).sum()                                    # 128 bytes + 4 bytes
    stats = tt.graph_stats(loss)
    assert stats.nodes == 4
    assert stats.ops == {"mul": 2, "reshape": 1, "sum": 1}
    assert stats.bytes == 128 + 128 + 4     # the constant 2.0 is an input of the graph: not counted
    assert stats.arrays == 3


def test_graph_stats_retain_graph_keeps_it():
    x, y, z = small_graph()
    z.backward(retain_graph=True)
    assert tt.graph_stats(z).nodes == 2


def test_op_counter_counts_ops_and_alive_results():
    x = tt.tensor(np.ones(4), requires_grad=True)
    with tt.op_counter() as ops:
        h = x * 3.0
        loss = (h + x).sum()
    _ = x * 2.0                             # outside the block: not counted
    assert ops.counts == {"mul": 1, "add": 1, "sum": 1}
    assert ops.total == 3
    assert ops.alive() == (3, 16 + 16 + 4)
    del h
    assert ops.alive()[0] == 3              # the graph still holds h
    loss.backward()
    assert ops.alive() == (1, 4)            # backward freed the graph: only the loss is left
    assert str(ops) == "3 ops ran (add 1, mul 1, sum 1); still alive: 1 results, 4 B"
    from tinytensor.tensor import _hooks
    assert ops._hook not in _hooks
