"""Reading a checkpoint never changes its folder: a run may be saving into it at that moment."""
import json
import os

import numpy as np
import pytest

import gpt
from gpt.__main__ import main as gpt_main
import tinytensor as tt
from gpt.training import checkpoint as ckpt
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


# ----- a checkpoint folder is untrusted: names, file kinds, sizes, types (issue 15, items 2, 4 and 6) -----




def _meta_path(folder):
    return os.path.join(folder, ckpt.META)


def _edit_meta(folder, edit):
    path = _meta_path(folder)
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    edit(meta)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(meta, f)


def _with_tokenizer(folder):
    import bpe
    bpe.train("hello world " * 20, 260).save(os.path.join(folder, ckpt.TOKENIZER))


def _sample(capsys, folder):
    capsys.readouterr()
    rc = gpt_main(["sample", "--checkpoint", str(folder), "--max-new-tokens", "1", "--prompt", "hello"])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("name", ["/etc/passwd", "../secret.bpe", "sub/tokenizer.bpe", 7, None, ".."])
def test_the_tokenizer_entry_must_be_a_plain_name_in_the_folder(tmp_path, capsys, name):
    folder = tmp_path / "ck"
    _saved(folder)
    _with_tokenizer(folder)
    (tmp_path / "secret.bpe").write_text("top secret line\n", encoding="utf-8")
    _edit_meta(folder, lambda m: m.update(tokenizer=name))
    rc, err = _sample(capsys, folder)
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "tokenizer" in err and "root:" not in err and "top secret" not in err, err


@pytest.mark.parametrize("kind", ["link out", "dev zero", "fifo", "too big"])
def test_the_tokenizer_file_must_be_a_small_regular_file_inside_the_folder(tmp_path, capsys, monkeypatch, kind):
    folder = tmp_path / "ck"
    _saved(folder)
    tok = folder / ckpt.TOKENIZER
    if kind == "link out":
        (tmp_path / "elsewhere.bpe").write_text("top secret line\n", encoding="utf-8")
        os.symlink(tmp_path / "elsewhere.bpe", tok)
    elif kind == "dev zero":
        os.symlink("/dev/zero", tok)
    elif kind == "fifo":
        os.mkfifo(tok)                                  # opening it for reading would wait for a writer forever
    else:
        from gpt import files
        _with_tokenizer(folder)
        monkeypatch.setattr(files, "MAX_TOKENIZER", 100)
    rc, err = _sample(capsys, folder)
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "tokenizer.bpe" in err and "top secret" not in err, err


def test_a_link_that_stays_inside_the_folder_is_followed(tmp_path, capsys):
    folder = tmp_path / "ck"
    _saved(folder)
    _with_tokenizer(folder)
    os.replace(folder / ckpt.TOKENIZER, folder / "real.bpe")
    os.symlink("real.bpe", folder / ckpt.TOKENIZER)
    assert ckpt.tokenizer_path(folder) == os.path.join(folder, ckpt.TOKENIZER)


TINY = ["--vocab-size", "260", "--context-length", "16", "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2",
        "--batch-size", "2", "--eval-batches", "1", "--sample-tokens", "2", "--max-steps", "1"]


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory):
    """A real 1-step training run on 3,000 characters (well under a second)."""
    from gpt.data.corpus import help_text
    folder = tmp_path_factory.mktemp("run")
    (folder / "small.txt").write_text(help_text()[:3000], encoding="utf-8")
    assert gpt_main(["train", "--data", str(folder / "small.txt"), "--out", str(folder / "run"), *TINY]) == 0
    return folder / "run"


@pytest.mark.parametrize("edit,field", [
    (lambda m: m.update(args=[1, 2]), "args"),
    (lambda m: m["args"].update(lr="fast"), "args.lr"),
    (lambda m: m["args"].update(batch_size=2.5), "args.batch_size"),
    (lambda m: m.update(rng=None), "rng"),
    (lambda m: m.update(step="3"), "step"),
    (lambda m: m.update(files=["model.safetensors"]), "files"),
    (lambda m: m.update(files={"model.safetensors": "../x"}), "files"),
    (lambda m: m["data"].update(sampler={"epoch": "0", "position": 1}), "data.sampler.epoch"),
    (lambda m: m.update(history=[{"step": 1, "elapsed": None}]), "history[0].elapsed"),
    (lambda m: m.pop("data"), "data"),
    (lambda m: m.update(config=[]), "config"),
    (lambda m: m["config"].update(n_layers="many"), "n_layers"),
])
def test_wrong_types_in_checkpoint_json_are_one_line_naming_the_field(tmp_path, capsys, one_step_run, edit, field):
    import shutil
    folder = tmp_path / "ck"
    shutil.copytree(one_step_run, folder)
    _edit_meta(folder, edit)
    capsys.readouterr()
    rc = gpt_main(["train", "--out", str(folder), "--resume", "--max-steps", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert field in err and ckpt.META in err, err


def test_a_huge_n_layers_is_refused_before_anything_is_built(tmp_path, monkeypatch):
    folder = tmp_path / "ck"
    _saved(folder)
    _edit_meta(folder, lambda m: m["config"].update(n_layers=1000))      # the file holds 1 block
    built = []
    import gpt.models.gpt2
    real_init = gpt.models.gpt2.GPT.__init__
    monkeypatch.setattr(gpt.models.gpt2.GPT, "__init__", lambda self, *a, **k: built.append(1) or real_init(self, *a, **k))
    with pytest.raises(ValueError, match="n_layers is 1000, the file holds blocks 0..0"):
        ckpt.load_model(folder)
    assert not built
    _edit_meta(folder, lambda m: m["config"].update(n_layers=1_000_000))
    with pytest.raises(ValueError, match="n_layers is 1,000,000, more than"):
        ckpt.load_model(folder)


def test_a_stray_block_tensor_is_refused(tmp_path):
    folder = tmp_path / "ck"
    model = _saved(folder)
    state = model.state_dict()
    state["blocks.99999999.norm1.weight"] = np.ones(8, np.float32)
    tt.save(state, folder / ckpt.MODEL, metadata={"format": ckpt.FORMAT, "step": "3"})
    with pytest.raises(ValueError, match="blocks.99999999|block indices"):
        ckpt.load_model(folder)


def test_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ck"
    _saved(folder)
    _with_tokenizer(folder)
    import gpt.models.gpt2

    def no_memory(self, *args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(gpt.models.gpt2.GPT, "__init__", no_memory)
    rc, err = _sample(capsys, folder)
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "not enough memory" in err and "parameters" in err, err


def test_param_shapes_match_the_model():
    from gpt.finetune.classify import replace_head
    for over in (dict(), dict(tie_weights=True), dict(qkv_bias=False, n_layers=3)):
        cfg = gpt.GPTConfig(**{**dict(vocab_size=40, context_length=8, emb_dim=8, n_layers=1, n_heads=2), **over})
        model = gpt.GPT(cfg, init=False)
        assert ckpt.param_shapes(cfg) == {n: p.shape for n, p in model.named_parameters()}
        replace_head(model, 3)
        assert ckpt.param_shapes(cfg, classes=3) == {n: p.shape for n, p in model.named_parameters()}


def test_a_failed_save_removes_what_it_staged_and_names_the_file(tmp_path, monkeypatch):
    import errno
    folder = tmp_path / "ck"
    model = _saved(folder)
    before = sorted(os.listdir(folder))
    real = tt.save

    def save(tensors, path, metadata=None):
        if str(path).startswith(str(folder / ckpt.OPTIMIZER)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, metadata=metadata)
    monkeypatch.setattr(tt, "save", save)
    with pytest.raises(OSError, match="No space left on device") as info:
        ckpt.save(folder, model, optim.AdamW(model.parameters()), {"step": 4, "config": model.cfg.to_dict()})
    assert ckpt.OPTIMIZER in str(info.value) and str(folder) in str(info.value)
    assert sorted(os.listdir(folder)) == before                  # no model.safetensors.step-4 left behind
    assert ckpt.read_meta(folder)["step"] == 3
