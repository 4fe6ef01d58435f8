"""gpt.viz's data: live events from a real run, the replay of its metrics, the tokenizer's steps and the
model's next token and attention, on our GPT and the Hugging Face family fixtures."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import bpe
import tinytensor as tt
import tinytensor.functional as F
from gpt.generation.generate import sample_next
from gpt.viz import model_view, tokenizer_view
from gpt.viz.app import build_server
from gpt.viz.live import LivePage
from gpt.viz.replay import run_events
from gpt_helpers import REPO, run_cli, small_model
from viz_helpers import SMALL, train_run

FAMILIES = REPO / "tests" / "fixtures" / "families"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    from gpt.data.corpus import help_text
    root = tmp_path_factory.mktemp("vizrun")
    data = root / "small.txt"
    data.write_text(help_text()[:20000], encoding="utf-8")
    page = LivePage("run")
    events = []
    page.channel.publish = lambda kind, d: events.append((kind, d))      # what the loop hands the page
    train_run(root / "run", data, on_step=page.on_step, on_eval=page.on_eval)
    page.stop()
    return root / "run", events


def test_live_events_carry_every_step_and_sample(run_folder):
    folder, events = run_folder
    steps = [d for k, d in events if k == "step"]
    evals = [d for k, d in events if k == "eval"]
    assert [d["step"] for d in steps] == list(range(1, SMALL["max_steps"] + 1))
    assert {"train_loss", "lr", "grad_norm", "tokens_per_s", "tokens", "run"} <= set(steps[0])
    assert all(d["tokens_per_s"] > 0 and np.isfinite(d["grad_norm"]) for d in steps)
    assert [d["step"] for d in evals] == [0, 3, 6] and all(isinstance(d["sample"], str) and d["sample"] for d in evals)


def test_replay_gives_the_same_numbers_as_the_live_run(run_folder):
    folder, events = run_folder
    replayed = run_events(str(folder))
    assert replayed[0] == ("run", {"run": "run", "live": False}) and replayed[-1][0] == "done"
    live = [d["train_loss"] for k, d in events if k == "step"]
    again = [d["train_loss"] for k, d in replayed if k == "step"]
    np.testing.assert_allclose(again, live, rtol=1e-5)      # metrics.csv keeps 6 significant digits
    assert [d["step"] for k, d in replayed if k == "eval"] == [0, 3, 6]
    np.testing.assert_allclose([d["grad_norm"] for k, d in replayed if k == "step"],
                               [d["grad_norm"] for k, d in events if k == "step"], rtol=1e-5)
    assert [d["sample"] for k, d in replayed if k == "eval"] == [d["sample"] for k, d in events if k == "eval"]
    with pytest.raises(ValueError, match="no metrics.csv"):
        run_events(str(folder.parent))


def test_an_older_run_folder_replays_what_it_has(run_folder, tmp_path):
    """A folder from before grad_norm and samples.jsonl: its curves replay, without a norm or a sample."""
    folder, _ = run_folder
    old = tmp_path / "old"
    old.mkdir()
    lines = (folder / "metrics.csv").read_text(encoding="utf-8").splitlines()
    at = lines[0].split(",").index("grad_norm")
    old.joinpath("metrics.csv").write_text("".join(",".join(c for i, c in enumerate(line.split(",")) if i != at) + "\n"
                                                   for line in lines), encoding="utf-8")
    replayed = run_events(str(old))
    assert [d["step"] for k, d in replayed if k == "step"] == list(range(1, SMALL["max_steps"] + 1))
    assert [d["step"] for k, d in replayed if k == "eval"] == [0, 3, 6]
    assert not any("grad_norm" in d or "sample" in d for k, d in replayed)
    old.joinpath("samples.jsonl").write_text("not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match="samples.jsonl"):
        run_events(str(old))


def test_publish_does_not_wait_for_a_reader():
    page = LivePage("x").start()
    try:
        for i in range(20000):                # nobody reads the stream; nothing blocks
            page.on_step({"step": i, "train_loss": 1.0})
        assert page.channel.flush()
        assert len(page.channel.since(0, timeout=0)) == 20001
    finally:
        page.stop()


def test_train_viz_prints_an_address_and_finishes(tmp_path, small_text):
    r = run_cli("train", "--data", str(small_text), "--out", str(tmp_path / "r"), "--max-steps", "2",
                "--vocab-size", "300", "--context-length", "16", "--emb-dim", "32", "--n-layers", "1",
                "--n-heads", "2", "--batch-size", "2", "--eval-every", "2", "--eval-batches", "1", "--viz")
    assert r.returncode == 0, r.stderr
    assert "live page: http://127.0.0.1:" in r.stdout and "python -m gpt viz" in r.stdout


def test_nothing_of_the_pages_is_imported_without_viz(tmp_path, small_text):
    code = ("import sys; from gpt.__main__ import main; "
            f"main(['train', '--data', {str(small_text)!r}, '--out', {str(tmp_path / 'r')!r}, '--max-steps', '1', "
            "'--vocab-size', '300', '--context-length', '16', '--emb-dim', '32', '--n-layers', '1', '--n-heads', "
            "'2', '--batch-size', '2', '--eval-batches', '1']); "
            "print(sorted(m for m in sys.modules if m.startswith(('tinytensor.viz', 'http.server', 'gpt.viz.'))))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "['gpt.viz.cli']"      # the flag's definition, nothing else


def test_encode_steps_end_where_the_tokenizer_ends():
    tok, _ = tokenizer_view.train_steps("the low lower lowest; the newer newest. " * 4, 25)
    text = "the lowest newer, 123!"
    out = tokenizer_view.encode_steps(tok, text)
    assert [c["text"] for c in out["chunks"]] == tok.split(text)
    assert sum((c["states"][-1]["tokens"] for c in out["chunks"]), []) == [
        [i, bpe.show.token_text(tok.token_bytes(i))] for i in tok.encode_ordinary(text)]
    for c in out["chunks"]:
        for before, after in zip(c["states"], c["states"][1:]):
            assert len(after["tokens"]) == len(before["tokens"]) - 1       # one merge per step
            assert tok.merges[after["merged"]["rank"]][1] == after["merged"]["id"]


def test_train_steps_report_the_best_pair_and_its_count():
    text = "aaa ab ab"
    _, steps = tokenizer_view.train_steps(text, 2)
    # chunks "aaa", " ab", " ab": (a, a) twice, (" ", a) twice, (a, b) twice: a tie, the smallest pair wins
    assert steps[0]["pair"] == [[32, " "], [97, "a"]] and steps[0]["count"] == 2
    assert tokenizer_view.train_steps("aaaa", 1)[1][0]["count"] == 3
    with pytest.raises(ValueError):
        tokenizer_view.train_steps(text, 0)


def test_filtered_probabilities_are_what_generate_samples_from():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=50) * 3
    for t, k, p in [(1.0, None, None), (0.7, 5, None), (1.3, None, 0.8), (0.5, 10, 0.5)]:
        probs = model_view.filtered(logits, t, k, p)
        assert probs.sum() == pytest.approx(1.0)
        for seed in range(20):
            u = np.random.default_rng(seed).random(1)
            cdf = np.cumsum(probs)
            mine = min(int((cdf <= u[0] * cdf[-1]).sum()), 49)
            theirs = int(sample_next(logits[None], t, k, p, rng=np.random.default_rng(seed))[0])
            assert mine == theirs
    assert model_view.filtered(logits, 0, None, None).argmax() == logits.argmax()


def test_recorded_attention_is_the_one_the_model_used(monkeypatch):
    model = small_model()
    ids = np.array([[1, 5, 9, 2, 7]])
    with tt.no_grad():
        plain = model(ids).data.copy()
    seen, original = [], F.scaled_dot_product_attention

    def spy(q, k, v, causal=True, *a, **kw):
        out = original(q, k, v, causal, *a, **kw)
        seen.append((model_view._weights(q, k, causal)[0] @ v.data[0].astype(np.float64), out.data[0]))
        return out
    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    maps = []
    with tt.no_grad(), model_view.attention_recorded(maps):
        again = model(ids).data
    np.testing.assert_array_equal(again, plain)
    assert len(maps) == len(seen) == 2 and maps[0].shape == (4, 5, 5)
    for weights_times_v, out in seen:
        np.testing.assert_allclose(weights_times_v, out, rtol=1e-4, atol=1e-5)
    for m in maps:
        np.testing.assert_allclose(m.sum(-1), 1.0)
        assert np.all(np.triu(m, 1) == 0)
    assert F.scaled_dot_product_attention is spy          # put back


def _hf_folder(tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(FAMILIES / name, folder)
    return folder


@pytest.mark.parametrize("which", ["run", "gpt2", "llama_untied", "qwen3_tied"])
def test_next_token_on_every_family(run_folder, tmp_path, which):
    if which == "run":
        folder = run_folder[0]
    elif which == "gpt2":
        import gpt
        folder = tmp_path / "gpt2"
        gpt.save_gpt2(small_model(), str(folder))
    else:
        folder = _hf_folder(tmp_path, which)
    model, tok, _ = model_view.load_folder(str(folder))
    request = {"temperature": 0.8, "top_k": 5, "seed": 3}
    request.update({"text": "The for"} if tok is not None else {"ids": [1, 2, 3, 4]})
    out = model_view.next_token(model, tok, request)
    assert out["kept"] == 5 and len(out["top"]) == min(model_view.TOP, model.cfg.vocab_size)
    assert sum(t["p"] for t in out["top"]) == pytest.approx(1.0)
    assert out["sampled"] in [t["id"] for t in out["top"][:5]]
    n_layers = model.cfg.n_layers
    assert len(out["attention"]) == n_layers and out["attention"][0].shape[1:] == (len(out["ids"]),) * 2
    with tt.no_grad():
        logits = model(np.array([out["ids"]])).data[0, -1].astype(np.float64)
    raw = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert out["top"][0]["p_raw"] == pytest.approx(raw[out["top"][0]["id"]])


def test_api_errors_are_one_line(run_folder):
    server = build_server([str(run_folder[0])])
    try:
        for bad in ({"text": "x", "temperature": -1}, {"text": "x", "top_p": 2}, {"text": ""},
                    {"ids": [10 ** 9]}, {"text": "x", "top_k": "many"}):
            with pytest.raises(ValueError):
                server.api["next"](bad)
        with pytest.raises(ValueError, match="train a tokenizer"):
            server.api["tokenize"]({"text": "x"})
    finally:
        server.stop()
    with pytest.raises(ValueError, match="no such folder"):
        build_server([str(run_folder[0] / "nope")])


def test_viz_command_refuses_a_missing_folder(tmp_path):
    r = run_cli("viz", str(tmp_path / "nope"), "--no-browser")
    assert r.returncode == 2 and "no such folder" in r.stderr and "Traceback" not in r.stderr


def test_a_folder_without_a_tokenizer_takes_ids(tmp_path):
    folder = _hf_folder(tmp_path, "qwen3_tied")
    model, tok, _ = model_view.load_folder(str(folder))
    assert tok is None
    out = model_view.next_token(model, tok, {"text": "1 2, 3", "temperature": 0})
    assert out["ids"] == [1, 2, 3] and out["tokens"] == ["<1>", "<2>", "<3>"] and out["kept"] == 1
    with pytest.raises(ValueError, match="token ids"):
        model_view.next_token(model, tok, {"text": "hello"})


def test_viz_command_serves_until_ctrl_c(tmp_path):
    import signal
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "gpt", "viz", "--no-browser"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        url = line.split(" at ", 1)[1].split()[0]
        import urllib.request
        assert urllib.request.urlopen(url + "tokenizer", timeout=10).status == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "stopped" in out and "Traceback" not in err


def test_finetune_viz_streams_every_row(tmp_path, monkeypatch, capsys):
    import csv
    from gpt.training import checkpoint as ckpt
    from gpt.models.gpt2_config import GPTConfig
    from gpt.cli import finetune as cli
    from gpt.models.gpt2 import GPT
    from gpt.viz import live
    base = tmp_path / "base"
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, context_length=64, emb_dim=16, n_layers=1, n_heads=2, tie_weights=True))
    ckpt.save(str(base), model, None, {"step": 5, "config": model.cfg.to_dict()})
    bpe.Tokenizer(bpe.GPT2_PATTERN, [], {"<|endoftext|>": 256}).save(base / ckpt.TOKENIZER)
    seen = []
    monkeypatch.setattr(live.LivePage, "on_row", lambda self, row: seen.append(dict(row)))
    data, out = tmp_path / "d.tsv", tmp_path / "cls"
    assert cli.main(["make-data", "classify", "--out", str(data), "--n-per-class", "20"]) == 0
    assert cli.main(["finetune", "classify", "--data", str(data), "--init", str(base), "--out", str(out),
                     "--epochs", "1", "--batch-size", "8", "--max-length", "24", "--viz"]) == 0
    said = capsys.readouterr().out
    assert "live page: http://127.0.0.1:" in said and f"python -m gpt viz {out}" in said
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["kind"] for r in seen] == [r["kind"] for r in rows] and len(rows) == 5


def test_overlapping_recordings_put_the_real_attention_back(monkeypatch):
    """Two model-page requests at once: the second waits for the first, and afterwards attention is the
    engine's own again (it once kept a recording wrapper for the rest of the process)."""
    import threading

    from gpt.viz import model_view
    real = F.scaled_dot_product_attention
    waiting = threading.Event()

    class SignallingLock:                       # tells when the second request has reached the lock
        def __init__(self):
            self.inner = threading.Lock()

        def __enter__(self):
            if self.inner.locked():
                waiting.set()
            self.inner.acquire()

        def __exit__(self, *exc):
            self.inner.release()

    monkeypatch.setattr(model_view, "_lock", SignallingLock())
    monkeypatch.setattr(F, "scaled_dot_product_attention", real)      # put back after the test, whatever happens
    with model_view.attention_recorded([]):
        def enter_and_leave():
            with model_view.attention_recorded([]):
                pass
        second = threading.Thread(target=enter_and_leave)
        second.start()
        assert waiting.wait(10)
    second.join(10)
    assert F.scaled_dot_product_attention is real
