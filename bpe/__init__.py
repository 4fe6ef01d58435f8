"""bpe: a byte-level BPE tokenizer in pure Python (standard library + `regex`).

    import bpe
    tok = bpe.train(text, vocab_size=1000, pattern=bpe.GPT2_PATTERN, special_tokens=("<|endoftext|>",))
    ids = tok.encode("some text")                  # list[int]
    tok.encode(text, allowed_special="all")        # or a set of names; default: none allowed
    tok.decode(ids)                                # invalid UTF-8 -> U+FFFD; unknown id -> ValueError
    tok.save(path); tok = bpe.Tokenizer.load(path)
    tok.n_vocab, tok.merges                        # merges: [((left_id, right_id), new_id), ...]
    g = bpe.gpt2(encoder_json, vocab_bpe)          # GPT-2's files -> tiktoken's "gpt2" ids
    t = bpe.from_hf("tokenizer.json")              # Hugging Face byte-level BPE (GPT-2, Llama 3, Qwen2/3)
    t = bpe.from_tiktoken("tokenizer.model", pattern=bpe.LLAMA3_PATTERN,
                          special_tokens=["<|begin_of_text|>", ...])   # tiktoken's rank files

Both build on `bpe.Tokenizer.from_vocab` (free ids, a merge's rank apart from its id, ignore_merges, a
normalizer, added tokens); `tok.split(text)` shows the chunks any tokenizer cuts a text into.
`from_hf` gives exactly the ids of the `tokenizers` library (`encode(text, add_special_tokens=False)`,
with `allowed_special="all"` since that library always matches added tokens; `tok.template` holds what it
adds with add_special_tokens=True, such as Llama 3's <|begin_of_text|>); `from_tiktoken` those of
`tiktoken`. Both refuse, in one line naming the field, what they do not implement.

Special tokens: `tok.special_tokens` is a dict name -> id (e.g. {"<|endoftext|>": 4095}), and
`tok.eot_id` is the id of "<|endoftext|>" (None when the tokenizer has no such token). Special-token
text in user text raises ValueError unless allowed; `tok.encode_ordinary(text)` treats it as text.

Patterns: a pattern must match every character (one that would drop text is refused); one we do not
ship gets a time bound on each text (bpe/patterns.py). Files read are regular files under a size cap,
files written are replaced atomically (bpe/files.py).

Where things are: tokenizer.py (Tokenizer), merging.py (encoding one chunk), train.py (the naive and
incremental trainers), gpt2_files.py (GPT-2's files, byte table, download_gpt2), hf_json.py (Hugging
Face's tokenizer.json), tiktoken_file.py (tiktoken's rank files), fileformat.py (the saved file),
files.py (safe reading and writing), patterns.py, show.py (learner tools), __main__.py
(`python -m bpe --help`).
"""
from .gpt2_files import bytes_to_unicode, download_gpt2, gpt2
from .hf_json import from_hf
from .patterns import GPT2_PATTERN, GPT4_PATTERN, HF_BYTELEVEL_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN
from .tiktoken_file import from_tiktoken
from .tokenizer import Tokenizer
from .train import count_chunks, learn_merges, learn_merges_naive, train

__all__ = ["GPT2_PATTERN", "GPT4_PATTERN", "HF_BYTELEVEL_PATTERN", "LLAMA3_PATTERN", "QWEN2_PATTERN", "Tokenizer",
           "bytes_to_unicode", "count_chunks", "download_gpt2", "from_hf", "from_tiktoken", "gpt2", "learn_merges",
           "learn_merges_naive", "train"]
