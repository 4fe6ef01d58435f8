"""gpt: a GPT-2 style language model on tinytensor, with pretraining, generation and GPT-2's weights.

    import gpt
    cfg = gpt.GPTConfig.preset("tiny")
    model = gpt.GPT(cfg)
    logits = model(ids)                                   # (B, T) -> (B, T, vocab)
    out = gpt.generate(model, ids, max_new_tokens=50)     # greedy; temperature/top_k/top_p to sample
    model = gpt.load_gpt2("gpt2-folder")                  # Hugging Face's GPT-2 layout

Command line: ``python -m gpt train`` and ``python -m gpt sample`` (see ``--help``).
"""
from .config import GPTConfig
from .model import GPT, Block, CausalSelfAttention, FeedForward, KVCache
from .generate import generate, sample_next
from .pretrained import load_gpt2, save_gpt2
from .data import SlidingWindowDataset, BatchSampler, default_corpus, train_val_split
from .checkpoint import load_model as load_checkpoint
from .train import TrainConfig, train

__all__ = ["GPTConfig", "GPT", "Block", "CausalSelfAttention", "FeedForward", "KVCache", "generate", "sample_next",
           "load_gpt2", "save_gpt2", "SlidingWindowDataset", "BatchSampler", "default_corpus", "train_val_split",
           "load_checkpoint", "TrainConfig", "train"]
