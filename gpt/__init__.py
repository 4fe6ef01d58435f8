"""gpt: GPT-2, Llama 3 and Qwen3 on tinytensor, in the order of the book "Build a Large Language Model
(From Scratch)": data (ch. 2), models (ch. 3-4), training (ch. 5), weights (ch. 5), finetune (ch. 6-7).

    import gpt
    cfg = gpt.GPTConfig.preset("tiny")
    model = gpt.GPT(cfg)
    logits = model(ids)                                   # (B, T) -> (B, T, vocab)
    out = gpt.generate(model, ids, max_new_tokens=50)     # greedy; temperature/top_k/top_p to sample
    history = gpt.train_simple(model, train_loader, val_loader, optimizer, max_steps=100)   # the book's loop
    gpt.train(gpt.TrainConfig(max_steps=600))            # the full run of `python -m gpt train`
    model = gpt.load_gpt2("gpt2-folder")                  # Hugging Face's GPT-2 layout
    model = gpt.Llama(gpt.LlamaConfig.preset("tiny"))     # Llama 3 and Qwen3 on the same engine
    model = gpt.load_hf("qwen3-0.6b")                     # any of the three families from a Hugging Face folder

The parts: data/ (text, tokens, windows, batches), models/ (GPT-2, Llama/Qwen3, configs, LoRA, KV cache),
training/ (train_simple, the full run, step, schedule, metrics, checkpoints), weights/ (GPT-2 and Hugging
Face folders, the tokenizer loader), generation/ (generate, chat), finetune/ (classification,
instructions), cli/ (every command). Command line: ``python -m gpt train|sample|chat|finetune ...``.
"""
from .data import BatchSampler, DataLoader, SlidingWindowDataset, default_corpus, train_val_split
from .generation.generate import generate, sample_next
from .models import (GPT, Block, CausalSelfAttention, FeedForward, GPTConfig, KVCache, LanguageModel, Llama,
                     LlamaConfig, Qwen3, Qwen3Config, build_model)
from .training.checkpoint import load_model as load_checkpoint
from .training.launch import train
from .training.settings import TrainConfig, TrainSettings
from .training.simple import train_simple
from .weights.gpt2 import load_gpt2, save_gpt2
from .weights.hf import load_hf, save_hf

__all__ = ["GPTConfig", "GPT", "Block", "CausalSelfAttention", "FeedForward", "KVCache", "generate", "sample_next",
           "load_gpt2", "save_gpt2", "SlidingWindowDataset", "BatchSampler", "DataLoader", "default_corpus",
           "train_val_split", "load_checkpoint", "TrainConfig", "TrainSettings", "train", "train_simple",
           "LlamaConfig", "Qwen3Config", "Llama", "Qwen3", "LanguageModel", "build_model", "load_hf", "save_hf"]
