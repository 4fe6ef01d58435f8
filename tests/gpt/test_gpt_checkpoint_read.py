"""Reading a checkpoint never changes its folder: a run may be saving into it at that moment."""
import os

import numpy as np

import gpt
import tinytensor as tt
from gpt import checkpoint as ckpt
from tinytensor import optim


def _saved(folder, step=3):
    tt.manual_seed(0)
    cfg = gpt.GPTConfig(vocab_size=40, context_length=8, emb_dim=8, n_layers=1, n_heads=2)
    model = gpt.GPT(cfg)
    ckpt.save(folder, model, optim.AdamW(model.parameters()), {"step": step, "config": cfg.to_dict()})
    return model


def _interrupt_after_commit(folder, step=3):
    """What a kill between checkpoint.json's rename and the weights' rename leaves behind."""
    for name in (ckpt.MODEL, ckpt.OPTIMIZER):
        os.replace(os.path.join(folder, name), os.path.join(folder, f"{name}.step-{step}"))


def test_reader_uses_staged_files_without_moving_them(tmp_path):
    model = _saved(tmp_path)
    _interrupt_after_commit(tmp_path)
    before = sorted(os.listdir(tmp_path))
    loaded, meta = ckpt.load_model(tmp_path)
    assert sorted(os.listdir(tmp_path)) == before
    for (name, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


def test_owner_repairs_an_interrupted_save(tmp_path):
    _saved(tmp_path)
    _interrupt_after_commit(tmp_path)
    ckpt.read_meta(tmp_path, repair=True)
    names = set(os.listdir(tmp_path))
    assert {ckpt.MODEL, ckpt.OPTIMIZER} <= names
    assert not any(".step-" in n for n in names)
