"""bpe: a byte-level BPE tokenizer in pure Python (standard library + `regex`).

    import bpe
    tok = bpe.train(text, vocab_size=1000, pattern=bpe.GPT2_PATTERN, special_tokens=("<|endoftext|>",))
    ids = tok.encode("some text")                  # list[int]
    tok.encode(text, allowed_special="all")        # or a set of names; default: none allowed
    tok.decode(ids)                                # invalid UTF-8 -> U+FFFD; unknown id -> ValueError
    tok.save(path); tok = bpe.Tokenizer.load(path)
    tok.n_vocab, tok.merges                        # merges: [((left_id, right_id), new_id), ...]
    g = bpe.gpt2(encoder_json, vocab_bpe)          # GPT-2's files -> tiktoken's "gpt2" ids

Special tokens: `tok.special_tokens` is a dict name -> id (e.g. {"<|endoftext|>": 4095}), and
`tok.eot_id` is the id of "<|endoftext|>" (None when the tokenizer has no such token). Special-token
text in user text raises ValueError unless allowed; `tok.encode_ordinary(text)` treats it as text.

Where things are: tokenizer.py (Tokenizer), merging.py (encoding one chunk), train.py (the naive and
incremental trainers), gpt2_files.py (GPT-2's files, byte table, download_gpt2), fileformat.py (the
saved file), patterns.py, show.py (learner tools), __main__.py (`python -m bpe --help`).
"""
from .gpt2_files import bytes_to_unicode, download_gpt2, gpt2
from .patterns import GPT2_PATTERN, GPT4_PATTERN
from .tokenizer import Tokenizer
from .train import count_chunks, learn_merges, learn_merges_naive, train

__all__ = ["GPT2_PATTERN", "GPT4_PATTERN", "Tokenizer", "bytes_to_unicode", "count_chunks",
           "download_gpt2", "gpt2", "learn_merges", "learn_merges_naive", "train"]
