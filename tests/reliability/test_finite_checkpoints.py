"""No non-finite checkpoint is ever written, and none replaces a finite one (issue 26, 3).

A learning rate of 1e39 once made step 1's weights inf/NaN; the loss only showed it at step 2, after step
1's checkpoint had replaced the finite step-0 one, and the message called that one "the last good
checkpoint". ``classify`` printed ``nan`` and exited 0 from such a model.
"""
import json

import numpy as np
import pytest

import tinytensor as tt
from gpt.training import checkpoint as ckpt
from gpt.__main__ import main
from gpt.data import default_corpus

SMALL = ["--vocab-size", "300", "--context-length", "32", "--emb-dim", "32", "--n-layers", "2", "--n-heads", "4",
         "--batch-size", "8", "--eval-batches", "1", "--sample-tokens", "4", "--eval-every", "100"]


def all_finite(folder):
    weights = tt.load(str(folder / ckpt.MODEL))
    return all(np.isfinite(np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64)).all()
               for v in weights.values())


def small_model(vocab_size=97):
    from gpt import GPT, GPTConfig
    tt.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, context_length=16, emb_dim=32, n_layers=2, n_heads=4,
                         drop_rate=0.0, qkv_bias=True, tie_weights=False))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_diverging_run_keeps_its_last_finite_checkpoint(tmp_path, capsys, dtype):
    text = tmp_path / "small.txt"
    text.write_text(default_corpus()[:20000], encoding="utf-8")
    out = tmp_path / "run"
    status = main(["train", "--data", str(text), *SMALL, "--max-steps", "4", "--lr", "1e39", "--save-every", "1",
                   "--warmup-steps", "0", "--schedule", "constant", "--dtype", dtype, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 1, err
    step = json.loads((out / ckpt.META).read_text())["step"]
    assert f"last good checkpoint (step {step})" in err, err
    assert all_finite(out), f"the step-{step} checkpoint holds inf or NaN"


def test_saving_non_finite_weights_is_refused_and_the_old_checkpoint_stays(tmp_path):
    model = small_model()
    ckpt.save(tmp_path, model, None, {"step": 0, "config": model.cfg.to_dict()})
    before = (tmp_path / ckpt.MODEL).read_bytes()
    model.parameters()[3].data[...] = np.inf
    with pytest.raises(Exception, match="inf"):
        ckpt.save(tmp_path, model, None, {"step": 1, "config": model.cfg.to_dict()})
    assert (tmp_path / ckpt.MODEL).read_bytes() == before
    assert json.loads((tmp_path / ckpt.META).read_text())["step"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ckpt.MODEL, ckpt.META])


def test_classify_refuses_non_finite_probabilities():
    from gpt.finetune import classify
    import bpe
    tok = bpe.train("some text to label, and more text " * 20, vocab_size=270)
    model = classify.replace_head(small_model(vocab_size=270), 2)
    for p in model.parameters():
        p.data[...] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        classify.predict(model, tok, ["some text"], ["ham", "spam"], max_length=8, pad_id=0)



def test_a_fine_tuned_model_with_non_finite_weights_is_not_saved(tmp_path):
    # finetune classify --lr 1e20 once exited 0 with 15 non-finite tensors saved: its last step made the
    # weights inf after the loss and gradient norm had been checked
    import bpe
    from gpt.errors import RunFailed
    from gpt.finetune import pipeline
    model = small_model()
    model.parameters()[-1].data[...] = np.inf
    tok = bpe.Tokenizer(bpe.GPT2_PATTERN, [], {"<|endoftext|>": 256})
    with pytest.raises(RunFailed, match="inf.*stopped without saving"):
        pipeline.save_model(str(tmp_path / "out"), model, tok, {"step": 3})
    assert not (tmp_path / "out" / ckpt.MODEL).exists()
