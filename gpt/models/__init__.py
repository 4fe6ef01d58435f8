"""The models (the book's chapter 4): GPT-2, and Llama 3 / Qwen3 on the same engine; the three families by name.

    gpt2.py          GPT: embeddings, pre-LayerNorm blocks of attention and MLP, output head
    gpt2_config.py   GPTConfig: its sizes, presets and checks
    llama.py         Llama and Qwen3: GPT-2's decoder with RMSNorm, RoPE, SwiGLU and grouped-query attention
    llama_config.py  LlamaConfig, Qwen3Config
    kv_cache.py      the keys and values generation keeps
    lora.py          low-rank adapters for fine-tuning

Which config and which model class each family uses:

    arch     config                   model                 published shapes (presets)
    gpt2     gpt.GPTConfig            gpt.GPT               gpt2-small .. gpt2-xl
    llama    gpt.LlamaConfig          gpt.Llama             llama3.2-1b, llama3.2-3b, llama3-8b
    qwen3    gpt.Qwen3Config          gpt.Qwen3             qwen3-0.6b, qwen3-1.7b, qwen3-4b, qwen3-8b

Each also has a "tiny" preset that trains on a laptop CPU in minutes. Everything that stores or builds
a model whatever its family (checkpoints, `train --arch`, fine-tuning) goes through here.
"""
from .gpt2 import GPT, Block, CausalSelfAttention, FeedForward, LanguageModel
from .gpt2_config import GPTConfig
from .kv_cache import KVCache
from .llama import Llama, Qwen3
from .llama_config import LlamaConfig, Qwen3Config

__all__ = ["GPT", "Block", "CausalSelfAttention", "FeedForward", "LanguageModel", "GPTConfig", "KVCache", "Llama",
           "Qwen3", "LlamaConfig", "Qwen3Config", "ARCHS", "config_class", "arch_of", "config_from_dict",
           "model_class", "build_model"]

ARCHS = ("gpt2", "llama", "qwen3")
_CONFIGS = {"gpt2": GPTConfig, "llama": LlamaConfig, "qwen3": Qwen3Config}


TITLES = {"gpt2": "GPT-2", "llama": "Llama 3", "qwen3": "Qwen3"}     # each family as a reader names it


def describe(cfg, n_params=None):
    """A model in a few words for titles and logs: "GPT-2, 4 layers x 128 wide, 939,264 parameters"."""
    size = f", {n_params:,} parameters" if n_params is not None else ""
    return f"{TITLES[arch_of(cfg)]}, {cfg.n_layers} layers x {cfg.emb_dim} wide{size}"


def config_class(arch):
    """The config class of ``arch`` ("gpt2", "llama" or "qwen3"), or a ValueError listing them."""
    if arch not in _CONFIGS:
        raise ValueError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
    return _CONFIGS[arch]


def arch_of(cfg):
    """The family name of a config object."""
    return cfg.ARCH


def config_from_dict(d):
    """The config whose ``to_dict()`` is ``d``: its "arch" picks the class (absent: GPT-2, whose dict
    has none, as in older checkpoints)."""
    if not isinstance(d, dict):
        raise ValueError(f"a model config must be a JSON object, got {type(d).__name__}")
    arch = d.get("arch", "gpt2")
    if arch == "gpt2":
        return GPTConfig.from_dict({k: v for k, v in d.items() if k != "arch"})
    if not isinstance(arch, str) or arch not in _CONFIGS:
        raise ValueError(f"unknown arch {str(arch)[:40]!r} in the model config (this code builds "
                         f"{', '.join(ARCHS)})")
    return _CONFIGS[arch].from_dict(d)


def model_class(cfg):
    """The model class that runs ``cfg``."""
    return {"gpt2": GPT, "llama": Llama, "qwen3": Qwen3}[arch_of(cfg)]


def build_model(cfg, init=True):
    """The model of ``cfg``'s family: ``GPT(cfg)``, ``Llama(cfg)`` or ``Qwen3(cfg)``."""
    return model_class(cfg)(cfg, init=init)

