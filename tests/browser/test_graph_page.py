"""The graph page in headless Chromium: from a server and from an exported file, stepped with the keys,
its numbers checked against the engine's."""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.viz as viz


def _shown(page, selector):
    """The numbers a value table shows, as floats (4 significant digits)."""
    return [float(v) for v in page.locator(f"{selector} td").all_inner_texts()]


def _neuron():
    rng = np.random.default_rng(1)
    w = tt.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    x = tt.tensor(rng.normal(size=(4, 2)))
    w.name = "w"
    fn = lambda: ((x @ w).tanh() * (x @ w).tanh()).mean()  # noqa: E731
    return w, fn


@pytest.mark.parametrize("how", ["served", "exported"])
def test_step_through_backward_and_check_numbers(open_page, tmp_path, how):
    w, fn = _neuron()
    loss = fn()
    if how == "served":
        served = viz.show(loss, open_browser=False, fn=fn)
        url = served.url
    else:
        url = (tmp_path / "g.html").resolve().as_uri()
        viz.export(loss, tmp_path / "g.html", fn=fn)
    try:
        page = open_page(url)
        n_steps = int(page.inner_text("#step-label").split(" of ")[1].rstrip(")"))
        assert "before backward" in page.inner_text("#step-label")
        page.click('.box[data-name="w"]')                   # w: no gradient yet
        assert page.inner_text("#grad-now").strip() == "None"
        assert "null" not in page.inner_text("#node-detail") + page.inner_text("#step-detail")
        seen_acc = False
        for k in range(1, n_steps + 1):
            page.keyboard.press("ArrowRight")
            assert f"step {k} of {n_steps}" in page.inner_text("#step-label")
            seen_acc = seen_acc or page.locator("#step-detail .acc").count() > 0
        assert seen_acc                                     # w is used twice: a += appears on the way
        assert "after backward" in page.inner_text("#step-label")
        loss.backward()
        np.testing.assert_allclose(_shown(page, "#grad-after"), w.grad.reshape(-1), rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(_shown(page, "#grad-now"), w.grad.reshape(-1), rtol=1e-3, atol=1e-6)
        autograd = [float(t) for t in page.locator("tr.check td.autograd").all_inner_texts()]
        numeric = [float(t) for t in page.locator("tr.check td.numeric").all_inner_texts()]
        assert len(autograd) == 4 and np.allclose(autograd, numeric, rtol=2e-2, atol=1e-4)
        page.keyboard.press("Home")
        assert "before backward" in page.inner_text("#step-label")
        page.keyboard.press("ArrowLeft")                    # never below step 0
        assert "before backward" in page.inner_text("#step-label")
    finally:
        if how == "served":
            served.stop()


def test_tiny_gpt_graph_stays_usable(open_page, tmp_path):
    import gpt
    import tinytensor.functional as F
    tt.manual_seed(0)
    cfg = gpt.GPTConfig.preset("tiny")
    model = gpt.GPT(cfg)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (1, 9))
    loss = F.cross_entropy(model(ids[:, :-1]), ids[:, 1:])
    viz.export(loss, tmp_path / "gpt.html")
    page = open_page((tmp_path / "gpt.html").resolve().as_uri())
    assert page.locator(".box.group").count() == cfg.n_layers - 1
    page.click('.box[data-ref="g0"]')
    assert "folded" in page.inner_text("#node-detail")
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")
    assert page.locator(".box.current").count() == 1
    page.locator("#node-detail a").first.click()
    assert page.locator("#grad-after").count() == 1


def test_infinities_and_nan_reach_the_page_as_numbers(open_page, tmp_path):
    x = tt.tensor([1.0, 0.0], requires_grad=True)
    x.name = "x"
    with np.errstate(divide="ignore", invalid="ignore"):
        y = x.log() * x                          # log(0) = -inf; -inf * 0 = nan
        viz.export(y.sum(), tmp_path / "inf.html")
        y.sum().backward()
    want = {"nan" if np.isnan(g) else ("inf" if g > 0 else "-inf") if np.isinf(g) else None for g in x.grad[1:]}
    page = open_page((tmp_path / "inf.html").resolve().as_uri())
    page.click('.box[data-name="x"]')
    page.keyboard.press("End")
    grads = page.locator("#grad-after td").all_inner_texts()
    assert float(grads[0]) == x.grad[0] and {grads[1]} == want and None not in want
    log_box = page.locator('.box[data-ref="n1"]')
    log_box.click()
    assert page.locator("#node-detail td").all_inner_texts()[:2] == ["0", "-inf"]
