"""Take the README's screenshots of the learning pages with headless Chromium (Debian's chromium and
Playwright, as the browser tests use them):

    python docs/images/make_viz_screenshots.py          # trains two small runs into runs/screenshots first

Writes viz_graph.png, viz_training.png, viz_tokenizer.png and viz_model.png beside this file.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
import tinytensor as tt  # noqa: E402
import tinytensor.viz as viz  # noqa: E402
from gpt.viz.app import build_server  # noqa: E402


def train(out, *flags):
    if not (out / "metrics.csv").is_file():
        subprocess.run([sys.executable, "-m", "gpt", "train", "--out", str(out), "--overwrite", *flags], check=True,
                       cwd=REPO)


def main():
    from playwright.sync_api import sync_playwright
    runs = REPO / "runs" / "screenshots"
    train(runs / "lr2e-3", "--max-steps", "120", "--eval-every", "30", "--batch-size", "8", "--eval-batches", "2")
    train(runs / "lr5e-4", "--max-steps", "120", "--eval-every", "30", "--batch-size", "8", "--eval-batches", "2",
          "--lr", "5e-4")
    rng = np.random.default_rng(1)
    w = tt.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    b = tt.tensor(np.zeros(3), requires_grad=True)
    x = tt.tensor(rng.normal(size=(4, 2)))
    w.name, b.name = "w", "b"

    def fn():
        return ((x @ w + b).tanh() ** 2).mean()
    graph = runs / "graph.html"
    viz.export(fn(), graph, fn=fn)
    server = build_server([str(runs / "lr2e-3"), str(runs / "lr5e-4")]).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(graph.as_uri())
            page.wait_for_selector("body[data-ready='1']")
            for _ in range(4):
                page.keyboard.press("ArrowRight")
            page.click('.box[data-name="w"]')
            page.screenshot(path=str(HERE / "viz_graph.png"))
            page.goto(server.url)
            page.wait_for_function("document.querySelectorAll('#legend .run').length === 2")
            page.wait_for_timeout(500)
            page.screenshot(path=str(HERE / "viz_training.png"))
            page.goto(server.url + "tokenizer")
            page.wait_for_selector("body[data-ready='1']")
            page.screenshot(path=str(HERE / "viz_tokenizer.png"))
            page.goto(server.url + "model")
            page.wait_for_selector("body[data-ready='1']")
            page.fill("#prompt", "The for statement")
            page.click("#run")
            page.wait_for_timeout(800)
            page.screenshot(path=str(HERE / "viz_model.png"))
            browser.close()
    finally:
        server.stop()
    print("wrote", ", ".join(sorted(os.path.basename(p) for p in map(str, HERE.glob("viz_*.png")))))


if __name__ == "__main__":
    main()
