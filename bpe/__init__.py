"""bpe: a byte-level BPE tokenizer in pure Python (standard library + `regex`)."""
from .gpt2_files import bytes_to_unicode, download_gpt2, gpt2
from .patterns import GPT2_PATTERN, GPT4_PATTERN
from .tokenizer import Tokenizer
from .train import count_chunks, learn_merges, learn_merges_naive, train
