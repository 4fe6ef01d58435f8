"""The graph behind a tensor as a picture: Graphviz DOT text, and a PNG/SVG/PDF when ``dot`` is installed.

    dot_text = tt.to_dot(loss)         # paste into https://dreampuf.github.io/GraphvizOnline or save as .dot
    tt.draw(loss, "graph.png")          # runs Graphviz's `dot` program

Boxes are leaves: blue ones need a gradient (inputs, parameters), grey ones are constants. Ellipses are
ops, labelled with the op's name and the shape of what it produced; the output has a double border.
Arrows point the way the forward pass ran (input -> op); backward walks them the other way. An op
with several inputs numbers its arrows (0 = first argument), so ``a - b`` can be told from ``b - a``.
Tensors are numbered ``#n`` exactly as ``backward(trace=True)`` numbers them. Draw before calling
``backward()``: backward frees the graph (unless ``retain_graph=True``), leaving only the output.
"""
import shutil
import subprocess
from pathlib import Path

import numpy as np

from .tensor import _freed
from .trace import fmt_shape, is_op_node, number_tensors, tensor_name


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(tensor, names=None):
    """Graphviz DOT text for ``tensor`` and everything it was computed from.

    ``names`` optionally maps readable names to tensors (``{"x": x}``); a ``.name`` attribute works too.
    Only ``float32`` is left unsaid: other dtypes are written after the shape.
    """
    ids = {id(t): n for n, t in names.items()} if names else {}
    order = number_tensors(tensor)
    index = {id(t): i for i, t in enumerate(order)}
    lines = ["digraph tinytensor {",
             "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=11];']
    for i, t in enumerate(order):
        shape = fmt_shape(t.shape) + ("" if t.dtype == np.float32 else f" {t.dtype}")
        name = tensor_name(t, ids)
        if is_op_node(t) or t._backward is _freed:
            title = f"#{i} {t._op}" + (f" {name}" if name else "")
            if t._backward is _freed:
                title += " (graph freed by backward)"
            attrs = "shape=ellipse"
        else:
            title = f"#{i} " + (name or ("leaf" if t.requires_grad else "const"))
            shape += "\nrequires_grad" if t.requires_grad else ""
            attrs = "shape=box, style=filled, fillcolor=" + ("lightblue" if t.requires_grad else "lightgrey")
        if t is tensor:
            attrs += ", peripheries=2"
        label = _quote(title + "\n" + shape)
        lines.append(f"  t{i} [label={label}, {attrs}];")
    for t in order:
        many = len(t._parents) > 1
        for k, parent in enumerate(t._parents):
            edge = f"  t{index[id(parent)]} -> t{index[id(t)]}"
            lines.append(edge + (f' [label="{k}"];' if many else ";"))
    lines.append("}")
    return "\n".join(lines) + "\n"


INSTALL_HINT = ("Graphviz's `dot` program was not found. Install Graphviz (Debian/Ubuntu: sudo apt install "
                "graphviz; macOS: brew install graphviz; conda: conda install graphviz; others: "
                "https://graphviz.org/download/), then run: dot -Tpng {dot} -o {target}")


def draw(tensor, path="graph.png", names=None):
    """Render ``tensor``'s graph to ``path`` (format from the suffix: .png, .svg, .pdf, or .dot for text).

    Returns the path written. Without Graphviz installed it writes the DOT text next to ``path`` (same
    name, ``.dot`` suffix), prints how to install Graphviz and how to render that file, and returns the
    ``.dot`` path.
    """
    path = Path(path)
    text = to_dot(tensor, names=names)
    if path.suffix == ".dot":
        path.write_text(text)
        return path
    exe = shutil.which("dot")
    if exe is None:
        dot_path = path.with_suffix(".dot")
        dot_path.write_text(text)
        print(INSTALL_HINT.format(dot=dot_path, target=path))
        return dot_path
    fmt = path.suffix.lstrip(".") or "png"
    result = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=text, text=True, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"draw(): `dot -T{fmt}` failed: {result.stderr.strip()}")
    return path
