"""OpenAI's GPT-2 weights in Hugging Face's layout: load them into our GPT, and write ours back.

Where to get them: the folder of https://huggingface.co/openai-community/gpt2 (or gpt2-medium,
gpt2-large, gpt2-xl) holds ``model.safetensors`` and ``config.json``; GPT-2's tokenizer files
``encoder.json`` and ``vocab.bpe`` come from OpenAI's release
(https://openaipublic.blob.core.windows.net/gpt-2/models/124M/encoder.json and .../vocab.bpe, also
fetched by ``bpe.download_gpt2(folder)``). Put all four in one folder and run
``python -m gpt sample --gpt2 FOLDER --prompt "Hello, I am"``.

The layout (names may carry a "transformer." prefix):

    wte.weight (V, E)   wpe.weight (P, E)   ln_f.{weight,bias}   lm_head.weight (V, E), often absent (tied)
    h.{i}.ln_1.{weight,bias}        h.{i}.ln_2.{weight,bias}
    h.{i}.attn.c_attn.{weight (E, 3E), bias}    h.{i}.attn.c_proj.{weight (E, E), bias}
    h.{i}.mlp.c_fc.{weight (E, 4E), bias}       h.{i}.mlp.c_proj.{weight (4E, E), bias}
    h.{i}.attn.bias, h.{i}.attn.masked_bias: causal-mask buffers, ignored

GPT-2's "Conv1D" layers store weights as (in, out), the transpose of a Linear's (out, in); we use the
transposed view, so nothing is copied. The file is memory-mapped copy-on-write: pages are read when
first used and a write (fine-tuning) makes a private copy, so even gpt2-xl (6 GB) loads without
holding the weights twice.
"""
import json
import os
import re

import numpy as np

from tinytensor import serialize

from .config import GPTConfig, _GPT2_SIZES
from .model import GPT

_IGNORED = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
_HEADS = {emb: heads for emb, _, heads in _GPT2_SIZES.values()}


def _files(path):
    path = os.fspath(path)
    if os.path.isdir(path):
        weights = os.path.join(path, "model.safetensors")
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"{path} holds no model.safetensors (download it from "
                                    "https://huggingface.co/openai-community/gpt2)")
        folder = path
    elif os.path.isfile(path):
        weights, folder = path, os.path.dirname(path)
    else:
        raise FileNotFoundError(f"no such file or folder: {path}")
    config = os.path.join(folder, "config.json")
    return weights, (config if os.path.isfile(config) else None)


def _mapped(path):
    """{name without "transformer.": array} as copy-on-write memory maps of the file (no data read yet)."""
    header, start = serialize.read_header(path)
    source = np.memmap(path, dtype=np.uint8, mode="c")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        short = name[len("transformer."):] if name.startswith("transformer.") else name
        if _IGNORED.match(short):
            continue
        begin, end = info["data_offsets"]
        array = serialize.tensor_from_bytes(source[start + begin:start + end], info)
        if array.dtype != np.float32:
            array = array.astype(np.float32)          # e.g. float16 files: this tensor is copied
        out[short] = array
    return out


def _config_from(arrays, config_path, path):
    if "wte.weight" not in arrays or "wpe.weight" not in arrays:
        missing = "wte.weight" if "wte.weight" not in arrays else "wpe.weight"
        raise ValueError(f"{path}: tensor {missing} is missing; is this a GPT-2 model.safetensors?")
    V, E = arrays["wte.weight"].shape
    P = arrays["wpe.weight"].shape[0]
    layers = sorted({int(m.group(1)) for m in (re.match(r"^h\.(\d+)\.", k) for k in arrays) if m})
    n_layers = layers[-1] + 1 if layers else 0
    n_heads = _HEADS.get(E, max(1, E // 64))
    if config_path:
        with open(config_path, encoding="utf-8") as f:
            try:
                c = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{config_path} is not valid JSON ({e})") from None
        V, P = c.get("vocab_size", V), c.get("n_positions", c.get("n_ctx", P))
        E, n_layers, n_heads = c.get("n_embd", E), c.get("n_layer", n_layers), c.get("n_head", n_heads)
        if c.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"{config_path}: activation {c['activation_function']!r} is not GPT-2's tanh GELU")
    tied = "lm_head.weight" not in arrays or np.array_equal(arrays["lm_head.weight"], arrays["wte.weight"])
    return GPTConfig(vocab_size=V, context_length=P, emb_dim=E, n_layers=n_layers, n_heads=n_heads,
                     drop_rate=0.0, qkv_bias=True, tie_weights=tied)


def _mapping(cfg):
    """(our name, their name, transpose?) for every parameter."""
    pairs = [("tok_emb.weight", "wte.weight", False), ("pos_emb.weight", "wpe.weight", False)]
    for i in range(cfg.n_layers):
        ours, theirs = f"blocks.{i}.", f"h.{i}."
        pairs += [(ours + "norm1.weight", theirs + "ln_1.weight", False),
                  (ours + "norm1.bias", theirs + "ln_1.bias", False),
                  (ours + "attn.qkv.weight", theirs + "attn.c_attn.weight", True),
                  (ours + "attn.qkv.bias", theirs + "attn.c_attn.bias", False),
                  (ours + "attn.proj.weight", theirs + "attn.c_proj.weight", True),
                  (ours + "attn.proj.bias", theirs + "attn.c_proj.bias", False),
                  (ours + "norm2.weight", theirs + "ln_2.weight", False),
                  (ours + "norm2.bias", theirs + "ln_2.bias", False),
                  (ours + "mlp.fc.weight", theirs + "mlp.c_fc.weight", True),
                  (ours + "mlp.fc.bias", theirs + "mlp.c_fc.bias", False),
                  (ours + "mlp.proj.weight", theirs + "mlp.c_proj.weight", True),
                  (ours + "mlp.proj.bias", theirs + "mlp.c_proj.bias", False)]
    pairs += [("final_norm.weight", "ln_f.weight", False), ("final_norm.bias", "ln_f.bias", False)]
    if not cfg.tie_weights:
        pairs.append(("out_head.weight", "lm_head.weight", False))
    return pairs


def load_gpt2(path, device="cpu"):
    """A GPT holding the weights of a Hugging Face GPT-2 checkpoint (a folder or its model.safetensors).

    The config comes from ``config.json`` beside the file when present, else from the tensor shapes.
    A missing or mis-shaped tensor raises ValueError naming it.
    """
    weights, config_path = _files(path)
    arrays = _mapped(weights)
    cfg = _config_from(arrays, config_path, weights)
    model = GPT(cfg, init=False)
    params = dict(model.named_parameters())
    for ours, theirs, transpose in _mapping(cfg):
        if theirs not in arrays:
            raise ValueError(f"{weights}: tensor {theirs} is missing (needed for {ours} of a "
                             f"{cfg.n_layers}-layer GPT-2 with emb_dim {cfg.emb_dim})")
        array = arrays[theirs].T if transpose else arrays[theirs]
        p = params[ours]
        if array.shape != p.shape:
            want = p.shape[::-1] if transpose else p.shape
            raise ValueError(f"{weights}: tensor {theirs} has shape {arrays[theirs].shape}, expected {want} "
                             f"(vocab {cfg.vocab_size}, context {cfg.context_length}, emb_dim {cfg.emb_dim})")
        p.data = array
    if device != "cpu":
        model.to(device)
    return model


def gpt2_state(model, prefix="transformer."):
    """Our model's parameters as {Hugging Face name: array}: the inverse of ``load_gpt2``."""
    cfg = model.cfg
    params = dict(model.named_parameters())
    out = {}
    for ours, theirs, transpose in _mapping(cfg):
        name = theirs if theirs.startswith("lm_head.") else prefix + theirs
        if ours not in params:                     # no QKV bias in our model: GPT-2 has one, all zeros
            out[name] = np.zeros(3 * cfg.emb_dim, np.float32)
            continue
        array = params[ours].numpy()
        out[name] = np.ascontiguousarray(array.T if transpose else array)
    return out


def save_gpt2(model, folder):
    """Write ``model`` as Hugging Face's GPT-2 layout: model.safetensors and config.json in ``folder``.

    ``transformers.GPT2LMHeadModel.from_pretrained(folder)`` loads it (and ``load_gpt2`` reads it back).
    """
    import tinytensor as tt
    from .checkpoint import write_json
    cfg = model.cfg
    os.makedirs(folder, exist_ok=True)
    tt.save(gpt2_state(model), os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    drop = cfg.drop_rate
    eot = 50256 if cfg.vocab_size > 50256 else None       # GPT-2's <|endoftext|>
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg.vocab_size,
              "n_positions": cfg.context_length, "n_ctx": cfg.context_length, "n_embd": cfg.emb_dim,
              "n_layer": cfg.n_layers, "n_head": cfg.n_heads, "n_inner": None, "activation_function": "gelu_new",
              "resid_pdrop": drop, "embd_pdrop": drop, "attn_pdrop": drop, "layer_norm_epsilon": 1e-5,
              "initializer_range": 0.02, "bos_token_id": eot, "eos_token_id": eot,
              "tie_word_embeddings": cfg.tie_weights, "torch_dtype": "float32"}
    write_json(config, os.path.join(folder, "config.json"))
    return folder
