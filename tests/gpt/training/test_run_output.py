"""What a run shows and leaves behind: the metrics log and its plot, samples printed as text, a steady
ETA, the elapsed time across resumes, the warning when validation loss rises, the next command."""
import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest

from gpt.generation.printable import indented, printable
from gpt.training import metrics as curves, progress
from gpt.training.metrics import PRETRAIN_COLUMNS, MetricsLog, SamplesLog, read_samples
from gpt.training.pretrain import evaluate_run, prepare, train
from gpt.training.settings import TrainConfig

SMALL = dict(vocab_size=300, context_length=16, emb_dim=32, n_layers=2, n_heads=2, batch_size=4,
             eval_every=3, eval_batches=2, sample_tokens=5, lr=3e-3, save_every=100)


def _cfg(tmp_path, data, name="run", **over):
    return TrainConfig(data=str(data), out=str(tmp_path / name), **{**SMALL, **over})


def _rows(folder):
    with open(folder / "metrics.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _samples(folder):
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


def test_a_run_writes_a_metrics_log_and_a_loss_plot_and_names_them(tmp_path, small_text):
    out = io.StringIO()
    train(_cfg(tmp_path, small_text, max_steps=6), stream=out)
    folder = tmp_path / "run"
    rows = _rows(folder)
    assert list(rows[0]) == list(PRETRAIN_COLUMNS)
    assert [(r["kind"], int(r["step"])) for r in rows] == [("eval", 0), ("train", 1), ("train", 2), ("train", 3),
                                                           ("eval", 3), ("train", 4), ("train", 5), ("train", 6),
                                                           ("eval", 6)]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [int(r["tokens"]) for r in train_rows] == [4 * 16 * s for s in range(1, 7)]
    assert all(float(r["train_loss"]) > 0 and float(r["lr"]) > 0 and float(r["tokens_per_s"]) > 0 and not r["val_loss"]
               for r in train_rows)
    assert all(float(r["val_loss"]) > 0 for r in rows if r["kind"] == "eval")
    assert all(float(r["grad_norm"]) > 0 for r in train_rows)                  # the norm clipping measured
    assert all(r["grad_norm"] == "" for r in rows if r["kind"] == "eval")
    samples = _samples(folder)                                                 # each evaluation's sample
    assert [s["step"] for s in samples] == [0, 3, 6] and all(isinstance(s["sample"], str) and s["sample"] for s in samples)
    assert samples == read_samples(folder / "samples.jsonl")
    svg = ET.parse(folder / "loss.svg").getroot()                     # well-formed SVG with three curves
    assert svg.tag.endswith("svg") and len(svg.findall(".//{http://www.w3.org/2000/svg}polyline")) == 3
    assert "GPT-2, 2 layers x 32 wide" in (folder / "loss.svg").read_text()      # the title names the model
    text = out.getvalue()
    assert f"loss curve: {folder / 'loss.svg'}" in text and f"every step: {folder / 'metrics.csv'}" in text
    assert f"next: python -m gpt sample --checkpoint {folder}" in text


def test_resume_appends_to_the_log_without_duplicates(tmp_path, small_text):
    """A run stopped at step 4 and resumed ends with the log of a run never stopped: rows written after
    the checkpoint (a crash between a step and its save) are dropped, none is repeated."""
    train(_cfg(tmp_path, small_text, "whole", max_steps=8), stream=io.StringIO())
    train(_cfg(tmp_path, small_text, "split", max_steps=8), stream=io.StringIO(), stop_at=4)
    with open(tmp_path / "split" / "metrics.csv", "a", encoding="utf-8") as f:
        f.write("train,5,320,9.99,,0.001,2.5,100,1.0\n")              # a row past the checkpoint
    with open(tmp_path / "split" / "samples.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 6, "sample": "from a crash"}\n')            # a sample past the checkpoint
    train(_cfg(tmp_path, small_text, "split", max_steps=8), resume=True, stream=io.StringIO())
    whole, split = _rows(tmp_path / "whole"), _rows(tmp_path / "split")
    key = lambda rows: [(r["kind"], r["step"], r["tokens"], r["train_loss"], r["val_loss"], r["lr"], r["grad_norm"])
                        for r in rows]
    assert key(split) == key(whole)
    assert _samples(tmp_path / "split") == _samples(tmp_path / "whole")
    assert [s["step"] for s in _samples(tmp_path / "split")] == [0, 3, 6, 8]


def test_a_run_folder_from_before_grad_norm_and_samples_still_resumes(tmp_path, small_text):
    """An older metrics.csv (no grad_norm column) and no samples.jsonl: the run resumes without a note,
    its old rows keep an empty grad_norm and the samples start at the resumed run's evaluations."""
    train(_cfg(tmp_path, small_text, max_steps=8), stream=io.StringIO(), stop_at=4)
    folder = tmp_path / "run"
    old = [{k: v for k, v in r.items() if k != "grad_norm"} for r in _rows(folder)]
    with open(folder / "metrics.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, [c for c in PRETRAIN_COLUMNS if c != "grad_norm"])
        writer.writeheader()
        writer.writerows(old)
    (folder / "samples.jsonl").unlink()
    out = io.StringIO()
    train(_cfg(tmp_path, small_text, max_steps=8), resume=True, stream=out)
    assert "note:" not in out.getvalue()
    rows = _rows(folder)
    assert list(rows[0]) == list(PRETRAIN_COLUMNS)
    assert [r["step"] for r in rows if r["kind"] == "train"] == [str(s) for s in range(1, 9)]
    assert [r["grad_norm"] == "" for r in rows if r["kind"] == "train"] == [True] * 4 + [False] * 4
    assert [s["step"] for s in _samples(folder)] == [6, 8]


def test_the_elapsed_time_carries_across_a_resume(tmp_path, small_text):
    train(_cfg(tmp_path, small_text, max_steps=6), stream=io.StringIO(), stop_at=2)
    meta_path = tmp_path / "run" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    assert meta["elapsed"] > 0
    meta["elapsed"] = 1000.0                       # as if the first part had trained for 1000 s
    meta_path.write_text(json.dumps(meta))
    out = io.StringIO()
    r = train(_cfg(tmp_path, small_text, max_steps=6), resume=True, stream=out)
    assert r["history"][-1]["elapsed"] > 1000
    assert "finished 6 steps in 16m" in out.getvalue() and "in this session" in out.getvalue()
    assert float(_rows(tmp_path / "run")[-1]["elapsed_s"]) > 1000


def test_the_eta_comes_from_steady_steps(monkeypatch):
    """A slow start (tokenizer, first evaluation, first step) does not inflate the ETA: after it, 0.1 s
    steps give 0.1 s per remaining step."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    out = io.StringIO()
    bar = progress.ProgressBar(100, stream=out, tty=False, every=0.0)
    clock[0] = 10.0                                 # ten seconds before the first step is done
    bar.update(1, tokens=1000)
    assert out.getvalue() == ""                     # nothing to estimate from yet
    for step in range(2, 12):
        clock[0] += 0.1
        bar.update(step, tokens=1000)
    line = out.getvalue().splitlines()[-1]
    assert "11/100" in line and "ETA 9s" in line and "10,000 tok/s" in line and "11s elapsed" in line, line


def test_samples_print_as_text_with_control_bytes_escaped(tmp_path, small_text, monkeypatch):
    assert printable("a\x07b\nc\td\x1b[2J\r\x7f\x85é") == "a\\x07b\nc\td\\x1b[2J\\r\\x7f\\x85é"
    assert indented("one\ntwo\n\nthree", "  sample: ") == "  sample: one\n          two\n\n          three"
    import importlib
    train_module = importlib.import_module("gpt.training.pretrain")
    monkeypatch.setattr(train_module, "sample_text", lambda run, should_stop=None: "The\x07 end\nof a line")
    run = prepare(_cfg(tmp_path, small_text).resolved(), say=lambda s: None)
    shown = []
    evaluate_run(run, shown.append)
    assert shown[1] == "  sample: The\\x07 end\n          of a line"


def test_a_rising_validation_loss_is_warned_about_once():
    assert curves.overfitting_warning([5.0, 4.0, 3.9]) is None
    assert curves.overfitting_warning([5.0, 4.0, 4.1]) is None                    # one rise: noise
    line = curves.overfitting_warning([5.0, 4.0, 4.1, 4.2])
    assert line.startswith("warning: validation loss has risen") and "4.000 -> 4.100 -> 4.200" in line
    assert "\n" not in line
    assert curves.overfitting_warning([5.0, 4.0, 4.1, 4.2, 4.3]) is None          # said once per rise
    assert curves.overfitting_warning([5.0, 4.0, 4.1, None, 4.2]) is not None     # gaps are skipped


def test_evaluate_run_warns_when_validation_loss_keeps_rising(tmp_path, small_text):
    run = prepare(_cfg(tmp_path, small_text).resolved(), say=lambda s: None)
    run.history = [{"step": 0, "val_loss": 1.0}, {"step": 1, "val_loss": 2.0}]    # the model is only getting worse
    shown = []
    evaluate_run(run, shown.append)
    assert any(line.startswith("warning: validation loss has risen") for line in shown), shown


def test_a_damaged_metrics_log_is_started_again_with_a_note(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_bytes(b"\xff\xfe not csv")
    log = MetricsLog(path, PRETRAIN_COLUMNS, keep_until=3)
    assert log.note and "could not be read" in log.note and log.rows() == []
    log.write(kind="train", step=4, train_loss=1.5)
    log.close()
    assert path.read_text() == ",".join(PRETRAIN_COLUMNS) + "\ntrain,4,,1.5,,,,,\n"


@pytest.mark.parametrize("damage", [b"\xff\xfe not json\n", b'{"step": 1}\n', b'{"step": true, "sample": "x"}\n',
                                    b'{"step": 1, "sample": NaN}\n', b"[1, 2]\n"])
def test_a_damaged_samples_log_is_started_again_with_a_note(tmp_path, damage):
    path = tmp_path / "samples.jsonl"
    path.write_bytes(b'{"step": 0, "sample": "ok"}\n' + damage)
    with pytest.raises(ValueError):
        read_samples(path)
    log = SamplesLog(path, keep_until=3)
    assert log.note and "could not be read" in log.note
    log.write(4, "a \"quoted\"\nline")
    log.close()
    assert read_samples(path) == [{"step": 4, "sample": 'a "quoted"\nline'}]


def test_the_samples_log_keeps_the_samples_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "samples.jsonl"
    with SamplesLog(path) as log:
        for step in (0, 3, 6):
            log.write(step, f"text {step}")
    assert [s["step"] for s in read_samples(path)] == [0, 3, 6]
    SamplesLog(path, keep_until=3).close()
    assert read_samples(path) == [{"step": 0, "sample": "text 0"}, {"step": 3, "sample": "text 3"}]
    assert read_samples(tmp_path / "absent.jsonl") == []


def test_the_plot_writer_handles_gaps_and_many_points(tmp_path):
    from gpt.training.svg_chart import Chart, nice_ticks, write_svg
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0] and nice_ticks(3.1, 6.9) == [3, 4, 5, 6, 7]
    assert nice_ticks(0.012, 0.7) == [0, 0.2, 0.4, 0.6, 0.8] and nice_ticks(5, 5) == [4, 4.5, 5, 5.5, 6]
    chart = Chart("x", "y <&>").add("a", range(5000), [float(i % 7) for i in range(5000)], thin=True)
    chart.add("b", [0, 1, 2, 3], [1.0, float("nan"), 2.0, float("inf")], points=True)
    root = ET.parse(write_svg(tmp_path / "p.svg", [chart, Chart("x", "y")], title="t")).getroot()
    lines = root.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 3 and len(lines[0].get("points").split()) <= 1000       # thinned; b split by its NaN


def test_the_classifier_plot_keeps_legends_off_the_curves_one_colour_per_split_and_a_fitted_accuracy_axis(tmp_path):
    from gpt.training import metrics as curves, svg_chart as plot
    from gpt.training.metrics import CLASSIFY_COLUMNS, MetricsRows
    log = MetricsRows(CLASSIFY_COLUMNS)
    for step in (1, 2, 3, 4):
        log.add({"kind": "train", "step": step, "epoch": 1 + step // 3, "examples": 8 * step, "train_loss": 1 / step})
    for epoch, (tr, va, te) in enumerate([(0.97, 0.975, 0.972), (0.985, 0.98, 0.99)], 1):
        log.add({"kind": "eval", "step": 2 * epoch, "epoch": epoch, "examples": 16 * epoch, "train_loss": 0.5 / epoch,
                 "train_accuracy": tr, "val_loss": 0.6 / epoch, "val_accuracy": va, "test_accuracy": te})
    path = curves.plot_classification(log, tmp_path, "GPT-2 classifier")
    ns = "{http://www.w3.org/2000/svg}"
    plot_bottom = plot.H - plot.BOTTOM
    legend, last_stroke, acc_ticks = {}, None, []
    for el in ET.parse(path).getroot().iter():
        if el.tag == ns + "line" and el.get("stroke") in plot.COLORS:
            last_stroke = el.get("stroke")
        elif el.tag == ns + "text" and ("loss" in el.text or "accuracy" in el.text) and el.get("y"):
            if float(el.get("y")) > plot_bottom + 30:                         # a legend entry: below the axis
                legend[el.text] = last_stroke
        elif el.tag == ns + "text" and el.get("x") == str(plot.W + plot.LEFT - 6):
            acc_ticks.append(float(el.text))                                  # the accuracy axis's ticks
    assert {"validation loss", "train accuracy", "val accuracy", "test accuracy"} <= set(legend), legend
    assert legend["validation loss"] == legend["val accuracy"] and legend["train loss, each step"] == legend["train accuracy"]
    assert len({legend["train accuracy"], legend["val accuracy"], legend["test accuracy"]}) == 3
    assert acc_ticks and 0.9 <= min(acc_ticks) and max(acc_ticks) <= 1.0, acc_ticks   # fitted, not 0-1


@pytest.mark.parametrize("name", ["metrics.csv", "loss.svg"])
def test_overwrite_replaces_the_log_and_the_plot(tmp_path, small_text, name):
    train(_cfg(tmp_path, small_text, max_steps=2), stream=io.StringIO())
    (tmp_path / "run" / name).write_text("old")
    train(_cfg(tmp_path, small_text, max_steps=1), overwrite=True, stream=io.StringIO())
    assert (tmp_path / "run" / name).read_text() != "old"


def test_overwrite_removes_an_old_runs_samples(tmp_path):
    """--overwrite clears the run's files, samples.jsonl included: a fine-tuning written over a pretraining
    run must not replay the pretraining's samples as its own."""
    from gpt.training.run_folder import clear_run
    (tmp_path / "samples.jsonl").write_text('{"step": 0, "sample": "old"}\n')
    (tmp_path / "notes.txt").write_text("mine")
    clear_run(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_resuming_a_finished_run_says_how_to_train_further(tmp_path, small_text):
    train(_cfg(tmp_path, small_text, max_steps=2), stream=io.StringIO())
    out = io.StringIO()
    train(_cfg(tmp_path, small_text, max_steps=2), resume=True, stream=out)
    assert "nothing left to do: the run has taken its 2 steps (pass --max-steps N" in out.getvalue()
