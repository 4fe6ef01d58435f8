"""Text in, batches out (the book's chapter 2): the text, its token ids, windows and shuffled batches.

    corpus.py    the default corpus (English that ships with every CPython) and reading a --data file
    tokens.py    text -> token ids, cached, and the digests that recognise them again
    windows.py   ids -> sliding windows (input, target shifted by one) -> batches: a DataLoader
                 (one pass per loop, as the book's) or a BatchSampler (shuffled, resumable)
    cache.py     the cache folder the first two keep their work in
"""
from .corpus import EOT, default_corpus, read_text
from .tokens import data_digests, encode_cached, ids_digest, save_npy, text_digest, tokenizer_digest
from .windows import BatchSampler, DataLoader, SlidingWindowDataset, eval_batches, train_val_split

__all__ = ["EOT", "default_corpus", "read_text", "data_digests", "encode_cached", "ids_digest", "save_npy",
           "text_digest", "tokenizer_digest", "BatchSampler", "DataLoader", "SlidingWindowDataset", "eval_batches",
           "train_val_split"]
