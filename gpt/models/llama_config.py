"""LlamaConfig and Qwen3Config: the shapes of the two families beyond GPT-2, with their published sizes.

The fields keep GPTConfig's names where the idea is the same (vocab_size, context_length, emb_dim,
n_layers, n_heads, drop_rate, norm_eps, tie_weights) and add what is new:

    n_kv_heads     heads of keys and values (grouped-query attention: n_heads / n_kv_heads query heads
                   share each one; the KV cache stores only these)
    head_dim       width of one head; None: emb_dim // n_heads (Qwen3 sets it apart: 0.6B has emb_dim 1024,
                   16 heads of 128)
    hidden_dim     width of the SwiGLU feed-forward (GPT-2's MLP is always 4 * emb_dim)
    rope_theta     the base of the rotary angles (positions are rotations, not a learned table)
    rope_scaling   None, or Llama 3's {"factor", "low_freq_factor", "high_freq_factor",
                   "original_context_length"} (tinytensor.ops.rope.llama3_frequencies)
    qk_norm        RMSNorm on each head's queries and keys (Qwen3)

A Qwen3Config is a LlamaConfig with qk_norm on and Qwen3's sizes: the two families differ in that one
idea (and in their numbers), which is why one model class (gpt/models/llama.py) runs both.
"""
import math
from dataclasses import asdict, dataclass, fields

from .gpt2_config import check_rate_eps_flags, check_sizes

SCALING_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_context_length")

# Llama 3.1 / 3.2's rope scaling; the 3.2 models stretch 8k tokens 32 times
_LLAMA32_SCALING = {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_context_length": 8192}


@dataclass
class LlamaConfig:
    """The shape of a Llama-3-style model (defaults: Llama 3.2 1B). See the module docstring for the fields."""
    vocab_size: int = 128256
    context_length: int = 131072
    emb_dim: int = 2048
    n_layers: int = 16
    n_heads: int = 32
    n_kv_heads: int = 8
    head_dim: int = None
    hidden_dim: int = 8192
    rope_theta: float = 500000.0
    rope_scaling: dict = None
    norm_eps: float = 1e-5
    tie_weights: bool = True
    drop_rate: float = 0.0
    qk_norm: bool = False

    ARCH = "llama"
    LIMITS = {"vocab_size": 2 ** 24, "context_length": 2 ** 24, "emb_dim": 2 ** 16, "n_layers": 2 ** 10,
              "n_heads": 2 ** 12, "n_kv_heads": 2 ** 12, "head_dim": 2 ** 12, "hidden_dim": 2 ** 18}
    # name -> the fields that differ from the class defaults; "tiny" trains here in minutes (the width of
    # GPTConfig's tiny, with a SwiGLU as wide in parameters as its 4x MLP: 3 * 352 ~ 2 * 512)
    SHAPES = {
        "tiny": dict(vocab_size=1024, context_length=128, emb_dim=128, n_layers=4, n_heads=4, n_kv_heads=2,
                     hidden_dim=352, rope_theta=10000.0, rope_scaling=None, norm_eps=1e-5, tie_weights=True),
        "llama3.2-1b": dict(rope_scaling=_LLAMA32_SCALING),
        "llama3.2-3b": dict(emb_dim=3072, n_layers=28, n_heads=24, n_kv_heads=8, head_dim=128, hidden_dim=8192,
                            rope_scaling=_LLAMA32_SCALING),
        "llama3-8b": dict(context_length=8192, emb_dim=4096, n_layers=32, n_heads=32, n_kv_heads=8,
                          hidden_dim=14336, tie_weights=False),
    }

    PRESETS = tuple(SHAPES)

    def __post_init__(self):
        if self.head_dim is None:
            check_sizes(self, ("emb_dim", "n_heads"))
            if self.emb_dim % self.n_heads:
                raise ValueError(f"{type(self).__name__}: emb_dim ({self.emb_dim}) must be divisible by n_heads "
                                 f"({self.n_heads}), or give head_dim")
            self.head_dim = self.emb_dim // self.n_heads
        self.validate()

    def validate(self):
        """Raise ValueError naming the first field that makes no sense."""
        owner = type(self).__name__
        check_sizes(self, ("vocab_size", "context_length", "emb_dim", "n_layers", "n_heads", "n_kv_heads",
                           "head_dim", "hidden_dim"))
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"{owner}: n_heads ({self.n_heads}) must be a multiple of n_kv_heads "
                             f"({self.n_kv_heads}): each key/value head serves a whole group of query heads")
        if self.head_dim % 2:
            raise ValueError(f"{owner}: head_dim must be even (RoPE turns pairs of features), got {self.head_dim}")
        theta = self.rope_theta
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not (math.isfinite(theta) and theta > 1):
            raise ValueError(f"{owner}: rope_theta must be a finite number above 1, got {theta!r}")
        self.rope_theta = float(theta)
        self.rope_scaling = _checked_scaling(self.rope_scaling, owner)
        check_rate_eps_flags(self, ("tie_weights", "qk_norm"))
        return self

    @classmethod
    def preset(cls, name, **overrides):
        """A named shape (``cls.SHAPES``): "tiny", or a published model's; keyword arguments override
        fields: ``LlamaConfig.preset("tiny", n_layers=2)``."""
        if name not in cls.SHAPES:
            raise ValueError(f"unknown preset {name!r} for {cls.ARCH}: choose one of {', '.join(cls.SHAPES)}")
        return cls(**{**cls.SHAPES[name], **overrides})

    def to_dict(self):
        """The fields, and "arch" (which family: checkpoint.json keeps it beside the sizes)."""
        return {"arch": self.ARCH, **asdict(self)}

    @classmethod
    def from_dict(cls, d):
        """Build from a dict (parsed JSON); unknown keys are an error, missing ones take the defaults."""
        if not isinstance(d, dict):
            raise ValueError(f"{cls.__name__}.from_dict: expected a dict, got {type(d).__name__}")
        d = dict(d)
        arch = d.pop("arch", cls.ARCH)
        if arch != cls.ARCH:
            raise ValueError(f"{cls.__name__}.from_dict: arch is {arch!r}, not {cls.ARCH!r}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{cls.__name__}.from_dict: unknown field(s) {', '.join(unknown)}")
        return cls(**d)

    @property
    def q_dim(self):
        """Width of all query heads side by side (n_heads * head_dim; emb_dim unless head_dim is set apart)."""
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self):
        return self.n_kv_heads * self.head_dim

    def num_parameters(self):
        """Parameter count of a model with this config (tied weights counted once)."""
        E, V, L, D = self.emb_dim, self.vocab_size, self.n_layers, self.head_dim
        per_block = 2 * E + E * (self.q_dim + 2 * self.kv_dim) + self.q_dim * E + 3 * E * self.hidden_dim \
            + (2 * D if self.qk_norm else 0)
        return V * E + L * per_block + E + (0 if self.tie_weights else V * E)


@dataclass
class Qwen3Config(LlamaConfig):
    """The shape of a Qwen3 model (defaults: Qwen3 0.6B): a LlamaConfig with qk_norm on."""
    vocab_size: int = 151936
    context_length: int = 40960
    emb_dim: int = 1024
    n_layers: int = 28
    n_heads: int = 16
    n_kv_heads: int = 8
    head_dim: int = 128
    hidden_dim: int = 3072
    rope_theta: float = 1000000.0
    rope_scaling: dict = None
    norm_eps: float = 1e-6
    tie_weights: bool = True
    drop_rate: float = 0.0
    qk_norm: bool = True

    ARCH = "qwen3"
    SHAPES = {
        "tiny": dict(vocab_size=1024, context_length=128, emb_dim=128, n_layers=4, n_heads=4, n_kv_heads=2,
                     head_dim=32, hidden_dim=352, rope_theta=10000.0, tie_weights=True),
        "qwen3-0.6b": dict(),
        "qwen3-1.7b": dict(emb_dim=2048, hidden_dim=6144),
        "qwen3-4b": dict(emb_dim=2560, n_layers=36, n_heads=32, hidden_dim=9728),
        "qwen3-8b": dict(emb_dim=4096, n_layers=36, n_heads=32, hidden_dim=12288, tie_weights=False),
    }
    PRESETS = tuple(SHAPES)


def _checked_scaling(scaling, owner):
    """None, or Llama 3's scaling as a dict of floats (original_context_length an int), checked."""
    if scaling is None:
        return None
    if not isinstance(scaling, dict) or set(scaling) != set(SCALING_KEYS):
        raise ValueError(f"{owner}: rope_scaling must be null or an object with exactly the keys "
                         f"{', '.join(SCALING_KEYS)} (Llama 3's scaling), got {str(scaling)[:80]}")
    values = {}
    for key in SCALING_KEYS:
        v = scaling[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{owner}: rope_scaling.{key} must be a positive number, got {v!r}")
        values[key] = float(v)
    if values["original_context_length"] != int(values["original_context_length"]):
        raise ValueError(f"{owner}: rope_scaling.original_context_length must be a whole number")
    values["original_context_length"] = int(values["original_context_length"])
    if values["factor"] < 1 or values["low_freq_factor"] >= values["high_freq_factor"]:
        raise ValueError(f"{owner}: rope_scaling needs factor >= 1 and low_freq_factor < high_freq_factor, got "
                         f"{values['factor']}, {values['low_freq_factor']}, {values['high_freq_factor']}")
    return values
