"""Hugging Face model folders of the three families: ``load_hf(folder)`` and ``save_hf(model, folder)``.

Where to get them (where there is internet): the folders of https://huggingface.co/meta-llama/Llama-3.2-1B
(gated: accept Meta's licence first) and https://huggingface.co/Qwen/Qwen3-0.6B, for example
``hf download Qwen/Qwen3-0.6B --local-dir qwen3-0.6b``. A folder holds config.json,
model.safetensors (or model.safetensors.index.json and its shards) and tokenizer.json;
``python -m gpt sample --hf qwen3-0.6b --prompt "..."`` then runs it. GPT-2 folders go to
gpt/weights/gpt2.py (``load_gpt2``).

Llama 3 and Qwen3 name their tensors (model_type "llama" or "qwen3" in config.json):

    model.embed_tokens.weight (V, E)       model.norm.weight (E)       lm_head.weight (V, E), absent when tied
    model.layers.{i}.input_layernorm.weight (E)            model.layers.{i}.post_attention_layernorm.weight (E)
    model.layers.{i}.self_attn.{q,k,v}_proj.weight         ((H D, E), (H_kv D, E), (H_kv D, E))
    model.layers.{i}.self_attn.o_proj.weight (E, H D)      model.layers.{i}.self_attn.{q,k}_norm.weight (D), Qwen3
    model.layers.{i}.mlp.{gate,up}_proj.weight (F, E)      model.layers.{i}.mlp.down_proj.weight (E, F)

Our model stacks q, k, v into ``attn.qkv`` and gate, up into ``mlp.fc`` (one product each); the rest maps
one to one. Their q and k rows are already in the half-split order our RoPE uses (transformers' conversion
of Meta's files permuted them), so nothing else moves.

config.json is read field by field, as for GPT-2: what changes the logits is honoured (sizes, rope_theta,
Llama 3's rope scaling, rms_norm_eps, tied head) or refused by name (another activation, attention or
MLP biases, sliding windows, another rope scaling, quantization, any unknown field); what cannot change
them (dropout, token ids, dtype, bookkeeping) is ignored. The folder's tensors are then compared with the
config, names and shapes, from the file headers alone, before any memory is taken for the model.
"""
import json
import os
import re

import numpy as np

import tinytensor as tt

from .. import files
from ..errors import TrainingError
from ..models.llama_config import LlamaConfig, Qwen3Config
from ..training.checkpoint import out_of_memory, param_shapes, write_json
from .gpt2 import HARMLESS, load_gpt2, read_config, read_json, save_gpt2
from .safetensors_files import INDEX, SINGLE, WeightFiles
from .tokenizer import load_tokenizer, prompt_prefix, stop_ids

FAMILIES = {"llama": LlamaConfig, "qwen3": Qwen3Config}
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}

# config.json fields. Honoured (read below, each checked); the rope fields and sliding windows in _rope
# and _windows. pretraining_tp > 1 only splits the same products into slices: the same logits.
HONOURED = frozenset("""
    vocab_size hidden_size num_hidden_layers num_attention_heads num_key_value_heads head_dim intermediate_size
    max_position_embeddings rms_norm_eps tie_word_embeddings rope_theta rope_scaling rope_parameters
    use_sliding_window sliding_window max_window_layers layer_types
    """.split())
ONLY = {"hidden_act": ("silu",), "attention_bias": (False,), "mlp_bias": (False,)}
HARMLESS_HERE = HARMLESS | {"attention_dropout", "pretraining_tp"}
REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
_IGNORED = re.compile(r"^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$")   # a buffer older files carry


# ----- config.json -----

def _rope(c, path):
    """(rope_theta, rope_scaling or None) from either layout: transformers 4's rope_theta + rope_scaling,
    or transformers 5's rope_parameters holding both."""
    params, scaling = c.get("rope_parameters"), c.get("rope_scaling")
    if params is not None and scaling is not None:
        raise ValueError(f"{path}: both rope_parameters and rope_scaling are set; give one")
    spec = params if params is not None else scaling
    if spec is not None and not isinstance(spec, dict):
        raise ValueError(f"{path}: rope_scaling must be an object or null")
    spec = dict(spec or {})
    if "rope_theta" in spec and "rope_theta" in c and spec["rope_theta"] != c["rope_theta"]:
        raise ValueError(f"{path}: rope_theta is given twice, {c['rope_theta']} and {spec['rope_theta']}")
    theta = spec.pop("rope_theta", c.get("rope_theta", 10000.0))
    kind = spec.pop("rope_type", spec.pop("type", "default"))
    if kind == "default":
        scaled = None
    elif kind == "llama3":
        names = {"factor": "factor", "low_freq_factor": "low_freq_factor", "high_freq_factor": "high_freq_factor",
                 "original_max_position_embeddings": "original_context_length"}
        missing = [k for k in names if k not in spec]
        if missing:
            raise ValueError(f"{path}: Llama 3 rope scaling without {missing[0]}")
        scaled = {ours: spec.pop(theirs) for theirs, ours in names.items()}
    else:
        raise ValueError(f"{path}: rope scaling of type {json.dumps(kind)[:30]} is not supported (this loader runs "
                         "\"llama3\" scaling or none); its positions would be computed differently")
    if spec:
        raise ValueError(f"{path}: rope setting {next(iter(spec))!r} is not supported")
    return theta, scaled


def _windows(c, path):
    """Refuse sliding-window attention: every layer here attends to all earlier tokens."""
    if c.get("use_sliding_window", False) is not False:
        raise ValueError(f"{path}: use_sliding_window = {json.dumps(c['use_sliding_window'])} is not supported "
                         "(sliding-window attention; this loader runs full attention in every layer)")
    layer_types = c.get("layer_types")
    if layer_types is not None and (not isinstance(layer_types, list)
                                    or any(t != "full_attention" for t in layer_types)):
        other = next((t for t in layer_types if t != "full_attention"), layer_types) \
            if isinstance(layer_types, list) else layer_types
        raise ValueError(f"{path}: layer_types holds {json.dumps(other)[:40]}; this loader runs "
                         "\"full_attention\" layers only")
    layers = c.get("num_hidden_layers")
    if layer_types is not None and isinstance(layers, int) and len(layer_types) != layers:
        raise ValueError(f"{path}: layer_types has {len(layer_types)} entries for {layers} layers "
                         "(num_hidden_layers); it needs one per layer")


def config_from_hf(c, family, path):
    """Our LlamaConfig or Qwen3Config of the config.json dict ``c`` (its fields checked as described above)."""
    read_config(path, HONOURED, {**ONLY, "model_type": (family,)}, HARMLESS_HERE, c=c)
    _windows(c, path)
    missing = [k for k in REQUIRED if k not in c]
    if missing:
        raise ValueError(f"{path}: field {missing[0]!r} is missing")
    theta, scaling = _rope(c, path)
    tied = c.get("tie_word_embeddings", False)
    if not isinstance(tied, bool):
        raise ValueError(f"{path}: tie_word_embeddings must be true or false")
    heads = c["num_attention_heads"]
    fields = dict(vocab_size=c["vocab_size"], emb_dim=c["hidden_size"], n_layers=c["num_hidden_layers"],
                  n_heads=heads, n_kv_heads=_or(c.get("num_key_value_heads"), heads), hidden_dim=c["intermediate_size"],
                  context_length=c.get("max_position_embeddings", 2048 if family == "llama" else 32768),
                  norm_eps=c.get("rms_norm_eps", 1e-6), rope_theta=theta, rope_scaling=scaling, tie_weights=tied,
                  head_dim=_or(c.get("head_dim"), None if family == "llama" else 128), drop_rate=0.0)
    try:
        return FAMILIES[family](**fields)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from None


def _or(value, default):
    return default if value is None else value


# ----- tensors -----

def _mapping(cfg):
    """(our name, [their names]) for every parameter; several names are stacked by rows into ours."""
    pairs = [("tok_emb.weight", ["model.embed_tokens.weight"])]
    for i in range(cfg.n_layers):
        ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
        pairs += [(ours + "norm1.weight", [theirs + "input_layernorm.weight"]),
                  (ours + "attn.qkv.weight", [theirs + f"self_attn.{p}_proj.weight" for p in "qkv"]),
                  (ours + "attn.proj.weight", [theirs + "self_attn.o_proj.weight"])]
        if cfg.qk_norm:
            pairs += [(ours + "attn.q_norm.weight", [theirs + "self_attn.q_norm.weight"]),
                      (ours + "attn.k_norm.weight", [theirs + "self_attn.k_norm.weight"])]
        pairs += [(ours + "norm2.weight", [theirs + "post_attention_layernorm.weight"]),
                  (ours + "mlp.fc.weight", [theirs + "mlp.gate_proj.weight", theirs + "mlp.up_proj.weight"]),
                  (ours + "mlp.proj.weight", [theirs + "mlp.down_proj.weight"])]
    pairs.append(("final_norm.weight", ["model.norm.weight"]))
    if not cfg.tie_weights:
        pairs.append(("out_head.weight", ["lm_head.weight"]))
    return pairs


def _their_shapes(cfg):
    """{their name: shape} the config needs: our shapes, stacked ones cut back into their parts."""
    ours = param_shapes(cfg)
    rows = {"attn.qkv.weight": [cfg.q_dim, cfg.kv_dim, cfg.kv_dim], "mlp.fc.weight": [cfg.hidden_dim] * 2}
    shapes = {}
    for mine, theirs in _mapping(cfg):
        if len(theirs) == 1:
            shapes[theirs[0]] = ours[mine]
        else:                                       # stacked by rows: q, k, v or gate, up
            for name, n in zip(theirs, rows[mine.split(".", 2)[-1]]):
                shapes[name] = (n,) + ours[mine][1:]
    return shapes


def _check_tensors(cfg, weights):
    """Every tensor the config needs is there with its shape, and nothing else is (a tied head may be
    stored too, when it equals the embedding)."""
    where, have = weights.description, weights.shapes
    need = _their_shapes(cfg)
    what = f"a {cfg.n_layers}-layer {cfg.ARCH} with emb_dim {cfg.emb_dim}"
    for name, shape in need.items():
        if name not in have:
            raise ValueError(f"{where}: tensor {name} is missing (needed by {what})")
        if have[name] != shape:
            raise ValueError(f"{where}: tensor {name} has shape {have[name]}, config.json asks for {shape}")
    extra = [k for k in have if k not in need and not _IGNORED.match(k)
             and not (k == "lm_head.weight" and cfg.tie_weights)]
    if extra:
        more = f" (and {len(extra) - 1} more)" if extra[1:] else ""
        raise ValueError(f"{where}: unexpected tensor {extra[0]}{more} for {what}")
    if cfg.tie_weights and "lm_head.weight" in have:
        if have["lm_head.weight"] != need["model.embed_tokens.weight"]:
            raise ValueError(f"{where}: config.json ties the output head to the embedding, but lm_head.weight "
                             f"has shape {have['lm_head.weight']} and model.embed_tokens.weight "
                             f"{need['model.embed_tokens.weight']}")
        if not np.array_equal(weights.array("lm_head.weight"), weights.array("model.embed_tokens.weight")):
            raise ValueError(f"{where}: config.json ties the output head to the embedding, but lm_head.weight "
                             "differs from model.embed_tokens.weight; set tie_word_embeddings to false")


# ----- load and save -----

def _folder(path):
    path = os.fspath(path)
    if os.path.isfile(path) and os.path.basename(path) in (SINGLE, INDEX):
        path = os.path.dirname(path) or "."
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no such folder: {path} (give a Hugging Face model folder)")
    return path


def read_family(folder):
    """(family, config.json dict or None) of a model folder: "gpt2", "llama" or "qwen3"."""
    path = os.path.join(folder, "config.json")
    if not os.path.lexists(path):
        if os.path.lexists(os.path.join(folder, SINGLE)):
            return "gpt2", None                # GPT-2 folders may come without one (gpt/weights/gpt2.py)
        raise FileNotFoundError(f"{folder} holds no config.json (a Llama or Qwen3 folder needs it)")
    files.check_regular(path, files.MAX_JSON, "config.json")
    c = read_json(path)
    family = c.get("model_type")
    if isinstance(family, str) and (family == "gpt2" or family in FAMILIES):
        return family, c
    raise ValueError(f"{path}: model_type {json.dumps(family)[:40]} is not one this code runs "
                     "(gpt2, llama, qwen3)")


def load_hf(folder, device="cpu"):
    """The model in a Hugging Face folder: a GPT (model_type gpt2), a Llama (llama) or a Qwen3 (qwen3),
    as float32 (BF16 and F16 files widened). config.json decides the family and shape; tensors are
    checked against it before the model is built. See the module docstring."""
    from ..models.llama import Llama, Qwen3
    folder = _folder(folder)
    family, c = read_family(folder)
    if family == "gpt2":
        return load_gpt2(folder, device=device)
    config_path = os.path.join(folder, "config.json")
    cfg = config_from_hf(c, family, config_path)
    weights = WeightFiles(folder)
    _check_tensors(cfg, weights)
    try:
        model = (Qwen3 if family == "qwen3" else Llama)(cfg, init=False)
        params = dict(model.named_parameters())
        for ours, theirs in _mapping(cfg):
            arrays = [weights.array(name) for name in theirs]
            params[ours].data = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    except MemoryError:
        raise out_of_memory(f"the weights in {folder}", cfg) from None
    return model.to(device) if device != "cpu" else model


def hf_state(model):
    """{their name: array} of a Llama or Qwen3: the inverse of the mapping ``load_hf`` reads."""
    cfg = model.cfg
    params = {name: p.numpy() for name, p in model.named_parameters()}
    shapes = _their_shapes(cfg)
    out = {}
    for ours, theirs in _mapping(cfg):
        rows = np.cumsum([shapes[name][0] for name in theirs])[:-1]
        for name, part in zip(theirs, np.split(params[ours], rows, axis=0)):
            out[name] = np.ascontiguousarray(part)
    return out


def hf_config(cfg):
    """config.json of a Llama or Qwen3 config, in transformers' field names."""
    c = {"architectures": [ARCHITECTURES[cfg.ARCH]], "model_type": cfg.ARCH, "vocab_size": cfg.vocab_size,
         "hidden_size": cfg.emb_dim, "intermediate_size": cfg.hidden_dim, "num_hidden_layers": cfg.n_layers,
         "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim,
         "max_position_embeddings": cfg.context_length, "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,
         "rope_scaling": None, "tie_word_embeddings": cfg.tie_weights, "hidden_act": "silu",
         "attention_bias": False, "attention_dropout": 0.0, "torch_dtype": "float32"}
    if cfg.rope_scaling:
        s = cfg.rope_scaling
        c["rope_scaling"] = {"rope_type": "llama3", "factor": s["factor"], "low_freq_factor": s["low_freq_factor"],
                             "high_freq_factor": s["high_freq_factor"],
                             "original_max_position_embeddings": s["original_context_length"]}
    if cfg.ARCH == "llama":
        c["mlp_bias"] = False
    else:
        c.update(use_sliding_window=False, sliding_window=None)
    return c


def save_hf(model, folder):
    """Write ``model`` in Hugging Face's layout (model.safetensors and config.json, float32) into ``folder``:
    transformers' ``AutoModelForCausalLM.from_pretrained(folder)`` loads it, and so does ``load_hf``.
    A GPT is written by ``save_gpt2``. A classifier (a replaced output head) has no such layout."""
    if model.cfg.ARCH == "gpt2":
        return save_gpt2(model, folder)
    if model.out_head.weight.shape[0] != model.cfg.vocab_size or getattr(model.out_head, "bias", None) is not None:
        raise ValueError("save_hf: this model's output head is not a language-model head (a classifier?); "
                         "Hugging Face's causal-LM layout cannot hold it")
    os.makedirs(folder, exist_ok=True)
    state = {name: array.astype(np.float32, copy=False) for name, array in hf_state(model).items()}
    tt.save(state, os.path.join(folder, SINGLE), metadata={"format": "pt"})
    write_json(hf_config(model.cfg), os.path.join(folder, "config.json"))
    return folder


def load_folder(folder, device="cpu"):
    """(model, tokenizer, prefix ids, stop ids) of a Hugging Face folder of any of the three families."""
    if not os.path.isdir(folder):
        raise TrainingError(f"--hf {folder}: no such folder (give a Hugging Face model folder)")
    model = load_hf(folder, device=device)
    tok = load_tokenizer(folder)
    if tok.n_vocab > model.cfg.vocab_size:
        raise TrainingError(f"{folder}: the tokenizer has {tok.n_vocab:,} ids but the model only "
                            f"{model.cfg.vocab_size:,}")
    return model, tok, prompt_prefix(tok), stop_ids(folder, tok)
