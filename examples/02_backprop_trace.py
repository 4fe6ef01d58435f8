"""02 - Backpropagation, step by step: the graph, the trace, and what backward frees.

Part 1 builds z = x * y + x with x = 2, y = 3 and shows
  * the graph as Graphviz DOT text (and graph.png when Graphviz is installed, else graph.dot):
    ops in ellipses, inputs in boxes, blue where a gradient is needed;
  * the backward trace: each step names a node, the gradient that reached it (dz/d node) and what it
    passed to each input. Check every number by hand: add passes its gradient through unchanged;
    mul passes g * (the other input); x gets 1 (from add) + 3 (from mul) = 4 = y + 1.
Part 2 traces one neuron, tanh(w . x + b), where the gradients are vectors: look at how `tanh` scales
the gradient by 1 - tanh^2, how `sum` copies its scalar gradient to every element, and how `mul`
then scales each copy by the matching x.
The same graph as a page: runs/examples/02/graph.html (open it in a browser, no server needed) steps
through backward node by node with the arrow keys, finite differences beside autograd's gradients;
tinytensor.viz.show(z) serves it instead.
Part 3 counts what the forward pass keeps alive (tt.graph_stats) before and after backward: backward
frees the graph, so the saved arrays can be reclaimed; retain_graph=True keeps them.

Run:  python examples/02_backprop_trace.py [--out DIR]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402


def part1(out_dir):
    print("=== Part 1: z = x * y + x, with x = 2, y = 3 ===\n")
    x = tt.tensor(2.0, requires_grad=True)
    y = tt.tensor(3.0, requires_grad=True)
    x.name, y.name = "x", "y"          # names show up in the trace and the picture
    z = x * y + x

    print("The graph (Graphviz DOT; #n numbers the tensors in the order the forward pass made them):")
    print(tt.to_dot(z))
    written = tt.draw(z, out_dir / "graph.png")
    print(f"drawn to {written}")
    import tinytensor.viz as viz        # the same graph as a page, stepped through backward in a browser
    page = viz.export(z, out_dir / "graph.html", fn=lambda: x * y + x)
    print(f"as a page: open {page} in a browser (arrow keys step through backward)\n")

    print("The backward trace, in the order backward runs:")
    z.backward(trace=True)
    print(f"\nResult: x.grad = {x.grad} (y + 1 = 4), y.grad = {y.grad} (x = 2)\n")


def part2():
    print("=== Part 2: one neuron, out = tanh(w . x + b) ===\n")
    w = tt.tensor([0.5, -1.0, 0.25], requires_grad=True)
    b = tt.tensor(0.1, requires_grad=True)
    x = tt.tensor([1.0, 2.0, 3.0])                     # data: needs no gradient
    with tt.trace(names={"w": w, "b": b, "x": x}):    # the context-manager form of trace=True
        out = ((w * x).sum() + b).tanh()
        out.backward()
    t = float(out.item())
    print(f"\nCheck by hand: out = {t:.4f}; dout/db = 1 - out^2 = {1 - t * t:.4f};"
          f" dout/dw = (1 - out^2) * x = {np.round((1 - t * t) * x.numpy(), 4)}\n")


def part3():
    print("=== Part 3: what the forward pass keeps alive ===\n")
    tt.manual_seed(0)
    W1 = tt.randn(2, 64, requires_grad=True)
    W2 = tt.randn(64, 1, requires_grad=True)
    x = tt.randn(256, 2)
    loss = ((x @ W1).tanh() @ W2).mean()
    print("loss = mean(tanh(x @ W1) @ W2), x (256, 2), W1 (2, 64), W2 (64, 1): two matmuls, a tanh, a mean")
    print("after forward :", tt.graph_stats(loss))
    print("   each op keeps its output, and what its backward needs (tanh keeps its output for 1 - t^2)")
    loss.backward()
    print("after backward:", tt.graph_stats(loss))
    print("   backward freed the graph: those arrays can be reclaimed; the parameters keep their .grad\n")
    loss = ((x @ W1).tanh() @ W2).mean()
    loss.backward(retain_graph=True)
    print("retain_graph  :", tt.graph_stats(loss), "(kept for a second backward)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same thing (this example is already quick)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/02"),
                        help="folder for graph.png/graph.dot (default: runs/examples/02)")
    args = parser.parse_args()
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    part1(out_dir)
    part2()
    part3()


if __name__ == "__main__":
    main()
