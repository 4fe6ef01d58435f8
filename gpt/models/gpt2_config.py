"""GPTConfig: every size and switch of the model in one dataclass, with presets and JSON round trips."""
import math
from dataclasses import asdict, dataclass, fields

# name -> (emb_dim, n_layers, n_heads) of the four published GPT-2 sizes
_GPT2_SIZES = {"gpt2-small": (768, 12, 12), "gpt2-medium": (1024, 24, 16),
               "gpt2-large": (1280, 36, 20), "gpt2-xl": (1600, 48, 25)}


@dataclass
class GPTConfig:
    """The shape of a GPT.

    vocab_size: number of token ids; context_length: the longest input (positions learned);
    emb_dim: width of every hidden state; n_layers: transformer blocks; n_heads: attention heads
    (emb_dim must divide evenly); drop_rate: dropout probability in training; qkv_bias: whether the
    fused query/key/value projection has a bias (GPT-2: yes); tie_weights: the output head shares
    the token embedding matrix; norm_eps: the epsilon inside every LayerNorm (GPT-2: 1e-5).

    Sizes are bounded (``LIMITS``) far above any published GPT so that a damaged or hostile config
    file cannot ask for a model that fills the memory before anything else is checked.
    """
    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_layers: int = 12
    n_heads: int = 12
    drop_rate: float = 0.0
    qkv_bias: bool = True
    tie_weights: bool = False
    norm_eps: float = 1e-5

    LIMITS = {"vocab_size": 2 ** 24, "context_length": 2 ** 20, "emb_dim": 2 ** 16, "n_layers": 2 ** 10,
              "n_heads": 2 ** 12}
    ARCH = "gpt2"                    # the family (gpt/models/__init__.py); Llama and Qwen3 have their own configs

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ValueError naming the first field that makes no sense."""
        check_sizes(self, ("vocab_size", "context_length", "emb_dim", "n_layers", "n_heads"))
        if self.emb_dim % self.n_heads:
            raise ValueError(f"GPTConfig: emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads})")
        check_rate_eps_flags(self, ("qkv_bias", "tie_weights"))
        return self

    @property
    def head_dim(self):
        return self.emb_dim // self.n_heads

    @property
    def n_kv_heads(self):
        """Heads of keys and values: every query head has its own in GPT-2 (the KV cache reads this)."""
        return self.n_heads

    PRESETS = ("tiny", "gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl")

    @classmethod
    def preset(cls, name, **overrides):
        """A named configuration: "tiny" (trains in minutes on a laptop CPU) or a GPT-2 size
        ("gpt2-small" 124M, "gpt2-medium" 355M, "gpt2-large" 774M, "gpt2-xl" 1558M).

        GPT-2 presets match the published weights (vocabulary 50257, 1024 positions, biased QKV,
        no dropout); keyword arguments override fields: ``preset("gpt2-small", drop_rate=0.1)``.
        """
        if name == "tiny":
            base = dict(vocab_size=1024, context_length=128, emb_dim=128, n_layers=4, n_heads=4,
                        drop_rate=0.0, qkv_bias=False, tie_weights=True)
        elif name in _GPT2_SIZES:
            emb, layers, heads = _GPT2_SIZES[name]
            base = dict(vocab_size=50257, context_length=1024, emb_dim=emb, n_layers=layers, n_heads=heads,
                        drop_rate=0.0, qkv_bias=True, tie_weights=False)
        else:
            raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(cls.PRESETS)}")
        base.update(overrides)
        return cls(**base)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Build from a dict (e.g. parsed JSON); unknown keys are an error, missing ones take defaults."""
        if not isinstance(d, dict):
            raise ValueError(f"GPTConfig.from_dict: expected a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"GPTConfig.from_dict: unknown field(s) {', '.join(unknown)}")
        return cls(**d)

    def num_parameters(self):
        """Parameter count of a GPT with this config (tied weights counted once)."""
        E, V, L = self.emb_dim, self.vocab_size, self.n_layers
        per_block = 2 * 2 * E + (3 * E * E + (3 * E if self.qkv_bias else 0)) + E * E + E \
            + 4 * E * E + 4 * E + 4 * E * E + E
        return V * E + self.context_length * E + L * per_block + 2 * E + (0 if self.tie_weights else V * E)


# ----- checks every model config shares (GPTConfig here, LlamaConfig and Qwen3Config in llama_config.py) -----

def check_sizes(cfg, names):
    """Each named field a positive integer within ``cfg.LIMITS``, or a ValueError naming it."""
    owner = type(cfg).__name__
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
        if value > cfg.LIMITS[name]:
            raise ValueError(f"{owner}: {name} is {value:,}, more than the {cfg.LIMITS[name]:,} this code "
                             "builds (a damaged config?)")


def check_rate_eps_flags(cfg, flags):
    """drop_rate in [0, 1), norm_eps small and positive (both made floats), and the named fields booleans."""
    owner = type(cfg).__name__
    if isinstance(cfg.drop_rate, bool) or not isinstance(cfg.drop_rate, (int, float)) \
            or not 0.0 <= cfg.drop_rate < 1.0:
        raise ValueError(f"{owner}: drop_rate must be in [0, 1), got {cfg.drop_rate!r}")
    cfg.drop_rate = float(cfg.drop_rate)
    if isinstance(cfg.norm_eps, bool) or not isinstance(cfg.norm_eps, (int, float)) \
            or not (0.0 < cfg.norm_eps < 1.0 and math.isfinite(cfg.norm_eps)):
        raise ValueError(f"{owner}: norm_eps must be a small positive number, got {cfg.norm_eps!r}")
    cfg.norm_eps = float(cfg.norm_eps)
    for name in flags:
        if not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"{owner}: {name} must be True or False, got {getattr(cfg, name)!r}")
