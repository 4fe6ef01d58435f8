"""04 - An MLP trained from scratch on a generated 2-D dataset, and the boundary it learned.

The data: two interleaved half-moons (made with NumPy, with noise), 2 features, 2 classes.
The model: 2 -> 32 -> 32 -> 2 with tanh, written as an nn.Module; cross-entropy loss; AdamW;
full-batch training.

What to look at:
  * The loss falling and the accuracy rising in the log. No straight line separates the two moons,
    so an accuracy near 100% means the hidden layers learned to bend the boundary.
  * One training step's bookkeeping: how many ops the forward pass ran, what its graph kept alive
    (tt.graph_stats) and that backward freed it.
  * The decision boundary: a PNG when matplotlib is installed, otherwise a text map where '.' and ':'
    are the regions the model gives to class 0 and 1, and 'o' / 'x' are training points of class 0 / 1.
    Points sitting in the wrong region are the mistakes.

Run:  python examples/04_mlp_from_scratch.py [--quick] [--out DIR]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402
import tinytensor.functional as F  # noqa: E402
from tinytensor import nn, optim  # noqa: E402


def make_moons(n, noise, rng):
    """Two half circles that interlock; label 0 for the upper one, 1 for the lower one."""
    t = rng.uniform(0, np.pi, n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    labels = rng.integers(0, 2, n)
    points = np.where(labels[:, None] == 0, upper, lower) + rng.normal(0, noise, (n, 2))
    return points.astype(np.float32), labels


class MLP(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 2)

    def forward(self, x):                     # x: (N, 2) -> logits (N, 2)
        h = self.fc1(x).tanh()
        h = self.fc2(h).tanh()
        return self.out(h)


def accuracy(model, x, y):
    with tt.no_grad():
        return float((model(tt.tensor(x)).numpy().argmax(axis=1) == y).mean())


def text_boundary(model, x, y, width=64, height=24):
    lo, hi = x.min(axis=0) - 0.3, x.max(axis=0) + 0.3
    gx = np.linspace(lo[0], hi[0], width)
    gy = np.linspace(hi[1], lo[1], height)                 # top row = largest y
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2).astype(np.float32)
    with tt.no_grad():
        region = model(tt.tensor(grid)).numpy().argmax(axis=1).reshape(height, width)
    canvas = np.where(region == 0, ".", ":").astype("<U1")
    col = np.clip(((x[:, 0] - lo[0]) / (hi[0] - lo[0]) * (width - 1)).round().astype(int), 0, width - 1)
    row = np.clip(((hi[1] - x[:, 1]) / (hi[1] - lo[1]) * (height - 1)).round().astype(int), 0, height - 1)
    canvas[row, col] = np.where(y == 0, "o", "x")
    return "\n".join("".join(r) for r in canvas)


def png_boundary(model, x, y, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path.parent.mkdir(parents=True, exist_ok=True)
    lo, hi = x.min(axis=0) - 0.3, x.max(axis=0) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = np.stack([gx, gy], axis=-1).reshape(-1, 2).astype(np.float32)
    with tt.no_grad():
        p1 = F.softmax(model(tt.tensor(grid)), axis=1).numpy()[:, 1].reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.contourf(gx, gy, p1, levels=20, cmap="RdBu_r", alpha=0.6)
    ax.contour(gx, gy, p1, levels=[0.5], colors="k")
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", edgecolors="k", s=12)
    ax.set_title("MLP decision boundary (black line: p = 0.5)")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (for CI)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/04"),
                        help="folder for boundary.png (default: runs/examples/04)")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    steps = args.steps or (60 if args.quick else 400)

    rng = np.random.default_rng(0)
    tt.manual_seed(0)
    x, y = make_moons(300, 0.1, rng)
    model = MLP()
    opt = optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.0)
    n_params = sum(p.size for p in model.parameters())
    print(f"data: {len(x)} points, 2 classes; model: {n_params} parameters; {steps} full-batch steps\n")

    xs = tt.tensor(x)
    for step in range(steps + 1):
        if step == 1:
            with tt.op_counter() as ops:
                loss = F.cross_entropy(model(xs), y)
            print(f"one step: {ops.total} ops in the forward pass ({', '.join(f'{k} {v}' for k, v in sorted(ops.counts.items()))})")
            print("  before backward:", tt.graph_stats(loss))
        else:
            loss = F.cross_entropy(model(xs), y)
        opt.zero_grad()
        loss.backward()
        if step == 1:
            print("  after backward: ", tt.graph_stats(loss), "\n")
        if step % max(steps // 8, 1) == 0 or step == steps:   # loss and accuracy of the model this step used
            print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {accuracy(model, x, y):.1%}")
        opt.step()

    final = accuracy(model, x, y)
    print(f"\nfinal training accuracy: {final:.1%}")
    out_dir = args.out
    try:
        png_boundary(model, x, y, out_dir / "boundary.png")
        print(f"decision boundary drawn to {out_dir / 'boundary.png'}")
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib for a PNG); the boundary as text,")
        print("'.' = region of class 0, ':' = region of class 1, 'o'/'x' = points of class 0/1:\n")
        print(text_boundary(model, x, y))


if __name__ == "__main__":
    main()
