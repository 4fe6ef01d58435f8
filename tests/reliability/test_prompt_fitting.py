"""A prompt longer than the context is never cut in silence (issue 26, Low).

``sample`` kept the last context-1 tokens, dropping Llama's <|begin_of_text|> and then one token of the
echoed prompt; ``chat`` cut the template's header away; a 14 MB line was tokenized whole (462 MB) before
being cropped.
"""
import io

import pytest

import bpe
import tinytensor as tt
from gpt import GPT, GPTConfig
from gpt.generation.chat import answer
from gpt.generation.generate import encode_tail, prompt_ids

TOK = bpe.Tokenizer(bpe.GPT2_PATTERN, [], {"<|begin_of_text|>": 256, "<|endoftext|>": 257})
BOT = [256]


def encode(text):
    return TOK.encode(text, allowed_special="all")


def test_a_long_prompt_keeps_its_prefix_and_says_it_was_cut():
    with pytest.warns(UserWarning, match="only its last 11 tokens"):
        ids = prompt_ids(encode, "abcdefghijklmnopqrstuvwxyz", BOT, context_length=13)
    assert ids == BOT + encode("pqrstuvwxyz")


def test_a_prompt_that_fits_is_left_whole_without_a_word(recwarn):
    assert prompt_ids(encode, "hello", BOT, context_length=13) == BOT + encode("hello")
    assert not recwarn.list


def test_a_huge_line_is_not_tokenized_whole():
    seen = []

    def counting(text):
        seen.append(len(text))
        return encode(text)
    text = "word " * 2_000_000                                   # 10 MB
    ids, cut = encode_tail(counting, text, 100)
    assert cut and ids == encode(text[-500:])[-100:]
    assert max(seen) < 10_000, seen


def test_chat_refuses_an_instruction_that_does_not_fit_instead_of_cutting_its_template():
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=258, context_length=64, emb_dim=16, n_layers=1, n_heads=2))
    with pytest.raises(ValueError, match="do not fit the model's context of 64 tokens"):
        answer(model, TOK, "x" * 500, stream=io.StringIO(), max_new_tokens=2)
