"""gpt: a GPT-2 style language model on tinytensor, with pretraining, generation and GPT-2's weights.

    import gpt
    cfg = gpt.GPTConfig.preset("tiny")
    model = gpt.GPT(cfg)
    logits = model(ids)                                   # (B, T) -> (B, T, vocab)
    out = gpt.generate(model, ids, max_new_tokens=50)     # greedy; temperature/top_k/top_p to sample
    model = gpt.load_gpt2("gpt2-folder")                  # Hugging Face's GPT-2 layout
    model = gpt.Llama(gpt.LlamaConfig.preset("tiny"))     # Llama 3 and Qwen3 on the same engine (gpt/llama.py)
    model = gpt.load_hf("qwen3-0.6b")                     # any of the three families from a Hugging Face folder

Command line: ``python -m gpt train`` and ``python -m gpt sample`` (see ``--help``).
"""
from .config import GPTConfig
from .family_config import LlamaConfig, Qwen3Config
from .model import GPT, Block, CausalSelfAttention, FeedForward, KVCache, LanguageModel
from .llama import Llama, Qwen3
from .families import build_model
from .generate import generate, sample_next
from .pretrained import load_gpt2, save_gpt2
from .hf import load_hf, save_hf
from .data import SlidingWindowDataset, BatchSampler, default_corpus, train_val_split
from .checkpoint import load_model as load_checkpoint
from .train import TrainConfig, train

__all__ = ["GPTConfig", "GPT", "Block", "CausalSelfAttention", "FeedForward", "KVCache", "generate", "sample_next",
           "load_gpt2", "save_gpt2", "SlidingWindowDataset", "BatchSampler", "default_corpus", "train_val_split",
           "load_checkpoint", "TrainConfig", "train", "LlamaConfig", "Qwen3Config", "Llama", "Qwen3", "LanguageModel",
           "build_model", "load_hf", "save_hf"]
