"""Classification fine-tuning: reading, balancing, splitting, padding, last-token pooling, training."""
import collections

import numpy as np
import pytest

import bpe
import tinytensor as tt

from gpt.models.gpt2_config import GPTConfig
from gpt.finetune import classify, data_classify, make_data
from gpt.models.gpt2 import GPT

PAD = 256


def byte_tokenizer():
    return bpe.Tokenizer(bpe.GPT2_PATTERN, [], {"<|endoftext|>": PAD})


def tiny_gpt(seed=0, **kw):
    tt.manual_seed(seed)
    cfg = dict(vocab_size=257, context_length=24, emb_dim=16, n_layers=2, n_heads=2, drop_rate=0.0)
    return GPT(GPTConfig(**{**cfg, **kw}))


def test_read_tsv_and_csv(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("ham\tGo until jurong point, crazy..\nspam\tFree entry\tin 2 a wkly comp\n\nham\tOk lar...\n",
                   encoding="utf-8")
    rows = data_classify.read_labeled(tsv)
    assert rows == [("ham", "Go until jurong point, crazy.."), ("spam", "Free entry\tin 2 a wkly comp"),
                    ("ham", "Ok lar...")]
    csv = tmp_path / "d.csv"
    csv.write_text('text,label\n"hello, world",b\nbye,a\n', encoding="utf-8")
    assert data_classify.read_labeled(csv) == [("b", "hello, world"), ("a", "bye")]
    assert data_classify.label_ids(rows) == ["ham", "spam"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.tsv:1"):
        data_classify.read_labeled(bad)


def test_balance_and_split():
    rows = [("a", f"a{i}") for i in range(30)] + [("b", f"b{i}") for i in range(10)]
    bal = data_classify.balance(rows, seed=1)
    assert collections.Counter(l for l, _ in bal) == {"a": 10, "b": 10}
    assert all(r in rows for r in bal)
    assert data_classify.balance(rows, seed=1) == bal
    train, val, test = data_classify.split(bal, seed=2)
    assert (len(train), len(val), len(test)) == (14, 2, 4)
    assert sorted(train + val + test) == sorted(bal)
    assert data_classify.split(bal, seed=2) == (train, val, test)
    assert data_classify.split(bal, seed=3) != (train, val, test)


def test_collate_pads_right_and_keeps_lengths():
    ids, lengths = data_classify.collate([[5, 6, 7], [8], [9, 10]], pad_id=0)
    np.testing.assert_array_equal(ids, [[5, 6, 7], [8, 0, 0], [9, 10, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 2])
    assert ids.dtype == np.int64
    with pytest.raises(ValueError):
        data_classify.collate([[1], []], pad_id=0)


def test_encode_truncates_and_maps_labels():
    tok = byte_tokenizer()
    enc = data_classify.encode([("spam", "abcdef"), ("ham", ""), ("ham", "<|endoftext|>")], tok, ["ham", "spam"], 4)
    assert enc[0] == ([97, 98, 99, 100], 1)
    assert enc[1] == ([PAD], 0)                        # an empty text still has a last token
    assert enc[2][0] == list(b"<|en")                  # special-token text in data is plain text


def test_pool_last_picks_the_last_real_token():
    hidden = tt.tensor(np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2), requires_grad=True)
    pooled = classify.pool_last(hidden, np.array([4, 1, 2]))
    np.testing.assert_array_equal(pooled.numpy(), [hidden.numpy()[0, 3], hidden.numpy()[1, 0], hidden.numpy()[2, 1]])
    pooled.sum().backward()
    expected = np.zeros((3, 4, 2), np.float32)
    expected[0, 3] = expected[1, 0] = expected[2, 1] = 1
    np.testing.assert_array_equal(hidden.grad, expected)
    with pytest.raises(ValueError):
        classify.pool_last(hidden, np.array([0, 1, 1]))


def test_padded_batch_gives_the_same_class_logits_as_each_text_alone():
    model = classify.replace_head(tiny_gpt(), 3).eval()
    seqs = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    ids, lengths = data_classify.collate(seqs, PAD)
    batched = classify.class_logits(model, ids, lengths).numpy()
    assert batched.shape == (3, 3)
    for b, s in enumerate(seqs):
        alone = classify.class_logits(model, np.array([s]), np.array([len(s)])).numpy()[0]
        np.testing.assert_allclose(batched[b], alone, rtol=1e-5, atol=1e-6)


def test_replace_head_unties_and_set_trainable_modes():
    model = tiny_gpt(tie_weights=True)
    classify.replace_head(model, 2)
    assert model.out_head.weight.shape == (2, 16) and model.out_head.bias is not None
    assert model.out_head.weight is not model.tok_emb.weight
    last = set(classify.set_trainable(model, "last"))
    assert last == {n for n, _ in model.named_parameters() if n.startswith(("out_head.", "blocks.1.", "final_norm."))}
    assert not model.blocks[0].attn.qkv.weight.requires_grad and not model.tok_emb.weight.requires_grad
    assert len(classify.set_trainable(model, "all")) == len(model.parameters())
    names = classify.set_trainable(tiny_gpt(), "lora", rank=2)
    assert {n for n in names if not n.endswith(("lora_A", "lora_B"))} == {"out_head.weight"}  # tiny_gpt head: no bias
    with pytest.raises(ValueError, match="--train"):
        classify.set_trainable(model, "head")


def test_short_training_learns_a_separable_task():
    # class 1 texts end in "z", class 0 texts in "a": only the last real token tells them apart
    rng = np.random.default_rng(0)
    rows = []
    for i in range(64):
        body = "".join(rng.choice(list("bcdefgh"), size=int(rng.integers(1, 8))))
        rows.append(("one", body + "z") if i % 2 else ("zero", body + "a"))
    tok = byte_tokenizer()
    enc = data_classify.encode(rows, tok, ["one", "zero"], 24)
    model = classify.replace_head(tiny_gpt(), 2)
    classify.set_trainable(model, "all")
    before, _ = classify.evaluate(model, enc, 16, PAD)
    hist = classify.train(model, enc, enc[:8], enc[:8], PAD, epochs=6, lr=3e-3, batch_size=8, log=lambda s: None)
    assert hist[-1]["train_accuracy"] >= 0.95 > before
    assert set(hist[-1]) >= {"train_accuracy", "val_accuracy", "test_accuracy", "train_loss"}
    preds = classify.predict(model, tok, ["bcdz", "hga"], ["one", "zero"], 24, PAD)
    assert [p for p, _ in preds] == ["one", "zero"]


def test_make_classify_data_is_two_balanced_registers():
    rows = make_data.make_classify(50, seed=0)
    assert collections.Counter(l for l, _ in rows) == {"doc": 50, "code": 50}
    assert all("\t" not in t and "\n" not in t and len(t) >= 30 for _, t in rows)
    assert make_data.make_classify(50, seed=0) == rows
    rows = make_data.make_classify(50, seed=0, task="doc-vs-comment")
    assert collections.Counter(l for l, _ in rows) == {"doc": 50, "comment": 50}
    assert not [t for label, t in rows if label == "comment" and t.startswith("#")]
    with pytest.raises(ValueError, match="unknown task"):
        make_data.make_classify(5, task="spam")


def test_make_classify_texts_are_whole_sentences_not_wrapped_line_fragments():
    """The cause of the README recipe's 0.78: its texts were single lines of wrapped paragraphs, cut
    mid-sentence, which a reader cannot tell apart either. The doc texts are now whole sentences (up to
    240 characters), the code texts whole lines of code outside docstrings."""
    docs = make_data._doc_lines()
    assert all(len(t) <= 240 and "\n" not in t for t in docs)
    assert sum(t.rstrip()[-1] in ".:;!?)]\"" for t in docs) > 0.85 * len(docs)     # they end where a sentence ends
    whole = ("Objects whose value can change are said to be *mutable*; objects whose value is unchangeable once "
             "they are created are called *immutable*.")                           # wrapped over two lines there
    assert any(whole in t for t in docs)
    code = make_data._code_lines()
    assert not [t for t in code if t.startswith(("#", '"""'))] and all(30 <= len(t) <= 120 for t in code)


def test_the_readme_recipe_scaled_down_clearly_beats_chance(tmp_path):
    """make-data classify, then finetune classify with its default flags (--train last, its lr and batch
    size; 2 epochs instead of 5), on 100 texts a class and a small random-weight base: the labels are
    in the text, so even this reaches well above chance (0.5). The README's full recipe on runs/tiny
    reaches about 0.98."""
    import json

    from gpt.training import checkpoint as ckpt
    from gpt.data.corpus import help_text
    from gpt.cli import finetune as cli
    tok = bpe.train(help_text()[:40000], 300, special_tokens=("<|endoftext|>",))
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.n_vocab, context_length=64, emb_dim=32, n_layers=2, n_heads=2,
                          tie_weights=True))
    ckpt.save(str(tmp_path / "base"), model, None, {"step": 0, "config": model.cfg.to_dict()})
    tok.save(tmp_path / "base" / ckpt.TOKENIZER)
    data = str(tmp_path / "d.tsv")
    assert cli.main(["make-data", "classify", "--out", data, "--n-per-class", "100"]) == 0
    assert cli.main(["finetune", "classify", "--data", data, "--init", str(tmp_path / "base"),
                     "--out", str(tmp_path / "cls"), "--epochs", "2"]) == 0
    metrics = json.loads((tmp_path / "cls" / "metrics.json").read_text())
    assert metrics["train"] == "last" and metrics["n_test"] == 40
    assert metrics["test_accuracy"] >= 0.8, metrics["history"]


def test_chance_is_the_commonest_labels_share():
    encoded = [([1], 1), ([2], 0), ([3], 1), ([4], 1)]
    assert classify.chance(encoded, 3) == (0.75, 1)
    assert classify.chance([([1], 2)], 3) == (1.0, 2)
