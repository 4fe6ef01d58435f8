"""A model whose vocabulary is padded past its tokenizer's never samples an id the tokenizer lacks (issue 26, 6).

Real Qwen3 has 151,936 embedding rows for 151,669 tokenizer ids; sampling picked a padded row and died
mid-answer with "unknown token id ...". Here every logit is equal (the head is zero), so 43 padded ids of
300 would be drawn about every seventh token.
"""
import io

import numpy as np

import bpe
import tinytensor as tt
from gpt import GPT, GPTConfig
from gpt.training import checkpoint as ckpt
from gpt.generation.chat import answer
from gpt.generation.chat_format import ChatFormat, reply
from gpt.generation.generate import generate

SAMPLING = dict(temperature=1.0, seed=0)


def padded(vocab_size=300):
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab_size, context_length=512, emb_dim=16, n_layers=1, n_heads=2,
                          tie_weights=False))
    model.out_head.weight.data[...] = 0.0
    return model


def tokenizer(specials=("<|endoftext|>",)):
    return bpe.Tokenizer(bpe.GPT2_PATTERN, [], {name: 256 + i for i, name in enumerate(specials)})


def test_generate_samples_only_below_vocab_size():
    out = generate(padded(), [[1, 2, 3]], max_new_tokens=200, vocab_size=257, **SAMPLING)
    assert out.max() < 257
    assert generate(padded(), [[1, 2, 3]], max_new_tokens=200, **SAMPLING).max() >= 257   # the rows are there


def test_answer_never_picks_a_padded_row():
    answer(padded(), tokenizer(), "say something", stream=io.StringIO(), max_new_tokens=100, **SAMPLING)


def test_chat_reply_never_picks_a_padded_row():
    tok = tokenizer(("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
    reply(padded(), ChatFormat("chatml", tok), [{"role": "user", "content": "hi"}], max_new_tokens=100,
          **SAMPLING)


def test_sample_never_picks_a_padded_row(tmp_path, capsys):
    from gpt.__main__ import main
    model = padded()
    ckpt.save(str(tmp_path), model, None, {"step": 1, "config": model.cfg.to_dict()})
    tokenizer().save(tmp_path / ckpt.TOKENIZER)
    status = main(["sample", "--checkpoint", str(tmp_path), "--prompt", "hello", "--max-new-tokens", "100",
                   "--temperature", "1", "--seed", "0", "--no-eos-stop"])
    assert status == 0, capsys.readouterr().err
    _ = np
