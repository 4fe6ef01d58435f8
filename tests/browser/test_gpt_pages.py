"""The GPT's pages in headless Chromium: live training, runs replayed and overlaid, the tokenizer and
the model, with the numbers shown checked against gpt.viz's Python answers."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gpt"))
from viz_helpers import SMALL, train_run  # noqa: E402

from gpt.viz import model_view, tokenizer_view  # noqa: E402
from gpt.viz.app import build_server  # noqa: E402
from gpt.viz.live import LivePage  # noqa: E402
from gpt.viz.replay import run_events  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from gpt.data.corpus import help_text
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(help_text()[:20000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("runs")
    train_run(root / "a", data)
    train_run(root / "b", data, lr=1e-3)
    return root / "a", root / "b"


def test_live_training_streams_to_the_page(open_page, tmp_path, data):
    page = LivePage("live").start()
    try:
        view = open_page(page.url)
        rows, evals = [], []

        def on_step(row):
            rows.append(row)
            page.on_step(row)

        def on_eval(entry):
            evals.append(entry)
            page.on_eval(entry)
        train_run(tmp_path / "live", data, on_step=on_step, on_eval=on_eval)
        page.done()
        n = 1 + len(rows) + len(evals) + 1
        view.wait_for_function(f"document.body.getAttribute('data-events') === '{n}'", timeout=10000)
        legend = view.inner_text('#legend .run[data-run="live"]')
        assert f"{SMALL['max_steps']} steps, 3 evaluations (done)" in legend
        assert float(legend.rsplit("last loss ", 1)[1]) == pytest.approx(rows[-1]["train_loss"], rel=1e-3)
        samples = view.locator("#samples .sample").all_inner_texts()
        assert samples == [e["sample"] for e in reversed(evals)]
    finally:
        page.stop()


def test_finished_runs_overlay(open_page, two_runs):
    server = build_server([str(f) for f in two_runs]).start()
    try:
        view = open_page(server.url)
        view.wait_for_function("document.querySelectorAll('#legend .run').length === 2", timeout=10000)
        for name in ("a", "b"):
            view.wait_for_function(f"document.querySelector('#legend .run[data-run=\"{name}\"]').textContent.includes('(done)')")
            assert f"{SMALL['max_steps']} steps, 3 evaluations" in view.inner_text(f'#legend .run[data-run="{name}"]')
        samples = view.locator("#samples .sample").all_inner_texts()            # replayed from samples.jsonl
        replayed = [d["sample"] for f in two_runs for k, d in run_events(str(f)) if k == "eval"]
        assert len(samples) == 6 and sorted(samples) == sorted(replayed) and all(samples)
        grad = int(view.get_attribute("#chart-grad", "data-points"))            # grad_norm from metrics.csv
        assert grad == 2 * SMALL["max_steps"]
        view.screenshot(path=str(two_runs[0].parent / "train.png"))
    finally:
        server.stop()


def test_tokenizer_page(open_page, two_runs):
    server = build_server([str(two_runs[0])]).start()
    try:
        view = open_page(server.url + "tokenizer")
        text = view.input_value("#train-text")
        _, steps = tokenizer_view.train_steps(text, 30)
        counts = [int(c) for c in view.locator("#merge-table td.count").all_inner_texts()]
        assert counts == [s["count"] for s in steps]
        view.fill("#encode-text", " the lowest")
        view.click("#encode")
        view.wait_for_function("document.getElementById('chunks').textContent.includes('\"\u0020the\"')")
        label = view.inner_text("#enc-label")
        total = int(label.rsplit(" of ", 1)[1])
        view.click("#prev")
        assert view.inner_text("#enc-label") == f"merges shown: {total - 1} of {total}"
        view.select_option("#which", "run")
        view.click("#encode")
        view.wait_for_function("document.getElementById('ids').textContent.startsWith('ids:')")
        from bpe import Tokenizer
        tok = Tokenizer.load(str(two_runs[0] / "tokenizer.bpe"))
        assert view.inner_text("#ids") == "ids: " + str(tok.encode_ordinary(" the lowest")).replace(" ", "")
    finally:
        server.stop()


def test_model_page(open_page, two_runs):
    folder = str(two_runs[0])
    server = build_server([folder]).start()
    try:
        view = open_page(server.url + "model")
        model, tok, _ = model_view.load_folder(folder)
        want = model_view.next_token(model, tok, {"text": "The", "temperature": 1.0, "seed": 0})
        shown = [float(p) for p in view.locator("#probs .p").all_inner_texts()]
        np.testing.assert_allclose(shown, [t["p"] for t in want["top"]], rtol=1e-3)
        assert view.locator("#layer option").count() == SMALL["n_layers"]
        assert view.locator("#head option").count() == SMALL["n_heads"]
        view.fill("#top-k", "3")
        view.dispatch_event("#top-k", "change")
        view.wait_for_function("document.querySelectorAll('#probs .p').length && "
                               "[...document.querySelectorAll('#probs .p')].filter(e => e.textContent !== '0').length === 3")
        view.click("#greedy")
        view.wait_for_function("document.querySelectorAll('#tokens .tok').length >= 2")
        assert view.locator("#attention canvas").count() == 1
        view.select_option("#layer", "1")
        assert view.locator("#attention canvas").count() == 1
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["gpt2", "llama_untied", "qwen3_tied"])
def test_model_page_on_hugging_face_fixtures(open_page, tmp_path, name):
    import shutil
    folder = tmp_path / name
    if name == "gpt2":                      # GPT-2 in Hugging Face's layout, no tokenizer: ids are typed
        import gpt
        from gpt_helpers import small_model
        gpt.save_gpt2(small_model(), str(folder))
    else:
        shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "families" / name, folder)
    server = build_server([str(folder)]).start()
    try:
        view = open_page(server.url + "model")
        model, tok, _ = model_view.load_folder(str(folder))
        want = model_view.next_token(model, tok, {"text": "1 2 3", "temperature": 1.0})
        shown = [float(p) for p in view.locator("#probs .p").all_inner_texts()]
        np.testing.assert_allclose(shown, [t["p"] for t in want["top"]], rtol=1e-3)
        assert view.locator("#layer option").count() == model.cfg.n_layers
        assert view.locator("#head option").count() == model.cfg.n_heads
        assert ("has no tokenizer" in view.inner_text("body")) == (tok is None)
    finally:
        server.stop()
