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

config.json is read field by field (``HONOURED``, ``ONLY``, ``HARMLESS``): a field that changes what the model computes is
honoured (sizes, ``layer_norm_epsilon``) or, when this GPT cannot compute it (``scale_attn_weights:
false``, another activation), refused by name; fields known not to change the logits (dropout rates,
generation defaults, bookkeeping) are ignored; an unknown field is refused, since it might change them.
Before anything is built the config is checked against the file's tensors (names, shapes, count).
"""
import json
import os
import re

import numpy as np

from tinytensor import serialize

from .. import files
from ..models.gpt2 import GPT
from ..models.gpt2_config import GPTConfig, _GPT2_SIZES
from ..training.checkpoint import out_of_memory, param_shapes
from . import safetensors_files as hf_files

_IGNORED = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
_PUBLISHED = {(emb, layers): heads for emb, layers, heads in _GPT2_SIZES.values()}   # heads of OpenAI's sizes

# config.json of a GPT-2 in Hugging Face's layout. Honoured: the sizes (checked against the tensors),
# layer_norm_epsilon (GPTConfig.norm_eps), tie_word_embeddings (false needs lm_head.weight).
HONOURED = ("vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head", "layer_norm_epsilon",
            "tie_word_embeddings", "n_inner")                # n_inner: the MLP width, None or 4 * n_embd
# fields whose other values change the computation in ways this GPT does not do: the values it can run
ONLY = {"activation_function": ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"),   # one tanh GELU, three names
        "scale_attn_weights": (True,),                  # false: attention scores not divided by sqrt(head size)
        "scale_attn_by_inverse_layer_idx": (False,),    # true: scores of layer i also divided by i + 1
        "add_cross_attention": (False,), "is_encoder_decoder": (False,),
        "model_type": ("gpt2",), "pruned_heads": ({},)}
# fields that do not change the logits of a loaded model: training-only dropout, generation defaults,
# bookkeeping, and reorder_and_upcast_attn (the same attention in float32, computed in another order)
HARMLESS = frozenset("""
    _name_or_path _commit_hash _attn_implementation _attn_implementation_autoset architectures dtype torch_dtype
    transformers_version use_bfloat16 torchscript tf_legacy_loss use_cache use_return_dict return_dict
    output_attentions output_hidden_states output_past output_scores return_dict_in_generate is_decoder
    chunk_size_feed_forward reorder_and_upcast_attn tie_encoder_decoder cross_attention_hidden_size
    resid_pdrop embd_pdrop attn_pdrop initializer_range gradient_checkpointing
    summary_type summary_use_proj summary_activation summary_proj_to_labels summary_first_dropout
    id2label label2id num_labels problem_type finetuning_task tokenizer_class prefix n_special
    predict_special_tokens task_specific_params bos_token_id eos_token_id pad_token_id sep_token_id
    decoder_start_token_id max_length min_length do_sample early_stopping num_beams num_beam_groups
    diversity_penalty temperature top_k top_p typical_p repetition_penalty length_penalty no_repeat_ngram_size
    encoder_no_repeat_ngram_size bad_words_ids num_return_sequences forced_bos_token_id forced_eos_token_id
    remove_invalid_values exponential_decay_length_penalty suppress_tokens begin_suppress_tokens
    """.split())


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
    files.check_regular(weights, what="model.safetensors")
    config = os.path.join(folder, "config.json")
    return weights, (config if os.path.lexists(config) else None)


def _mapped(path):
    """{name without "transformer.": array} as copy-on-write memory maps of the file (no data read yet)."""
    header, start = serialize.read_header(path)
    source = np.memmap(path, dtype=np.uint8, mode="c")
    out, full = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        short = name[len("transformer."):] if name.startswith("transformer.") else name
        if _IGNORED.match(short):
            continue
        if short in full:
            first, second = sorted((full[short], name), key=len, reverse=True)
            raise ValueError(f"{path}: holds both {first} and {second}, one tensor under two names; keep one")
        full[short] = name
        hf_files.check_float(path, name, info)
        begin, end = info["data_offsets"]
        array = serialize.tensor_from_bytes(source[start + begin:start + end], info)
        out[short] = hf_files.as_float32(array, path, name)          # e.g. float16 files: this tensor is copied
    return out


def read_json(config_path):
    """config.json (or another settings file of a model folder) as a dict, with no field checked yet
    (files.MAX_JSON bytes at most; one-line errors)."""
    raw = files.read_bytes(config_path, files.MAX_JSON, os.path.basename(config_path))
    try:
        c = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{config_path} is not valid JSON ({str(e)[:100]})") from None
    if not isinstance(c, dict):
        raise ValueError(f"{config_path}: expected a JSON object of model settings")
    return c


def read_config(config_path, honoured=HONOURED, only=ONLY, harmless=HARMLESS, c=None):
    """config.json (or its dict ``c``, already read) as a dict whose every field is honoured, harmless or
    refused (``HONOURED``, ``ONLY``, ``HARMLESS``: GPT-2's by default; gpt/weights/hf.py passes Llama's and Qwen3's)."""
    c = read_json(config_path) if c is None else c
    for key, value in c.items():
        if key in honoured or key in harmless:
            continue
        if key not in only:
            raise ValueError(f"{config_path}: field {key!r} is unknown to this loader and might change what the "
                             "model computes; remove it if you know it does not")
        if not any(value == v and type(value) is type(v) for v in only[key]):
            raise ValueError(f"{config_path}: {key} = {json.dumps(value)[:40]} is not supported (this loader "
                             f"runs {' or '.join(json.dumps(v) for v in only[key])} only)")
    return c


_THEIR_NAMES = {"vocab_size": "vocab_size", "context_length": "n_positions", "emb_dim": "n_embd",
                "n_layers": "n_layer", "n_heads": "n_head", "norm_eps": "layer_norm_epsilon"}


def _layer_count(arrays, path):
    """The number of blocks h.0 .. h.{n-1} the tensors hold; ValueError on a gap or a stray index."""
    layers = sorted({int(m.group(1)) for m in (re.match(r"^h\.(\d+)\.", k) for k in arrays) if m})
    if layers != list(range(len(layers))):
        stray = next(i for n, i in enumerate(layers) if i != n)
        name = next(k for k in arrays if k.startswith(f"h.{stray}."))
        raise ValueError(f"{path}: unexpected tensor {name} (the blocks are not numbered 0, 1, 2, ...)")
    return len(layers)


def _config_from(arrays, config_path, path):
    if "wte.weight" not in arrays or "wpe.weight" not in arrays:
        missing = "wte.weight" if "wte.weight" not in arrays else "wpe.weight"
        raise ValueError(f"{path}: tensor {missing} is missing; is this a GPT-2 model.safetensors?")
    V, E = arrays["wte.weight"].shape
    P = arrays["wpe.weight"].shape[0]
    n_layers = _layer_count(arrays, path)
    n_heads = _PUBLISHED.get((E, n_layers))
    if not config_path and n_heads is None:
        raise ValueError(f"{path}: no config.json beside it, and emb_dim {E} with {n_layers} layers is none of "
                         "OpenAI's GPT-2 sizes, so the number of attention heads is unknown; put the model's "
                         "config.json beside it")
    head = arrays.get("lm_head.weight")
    same = head is None or (head.shape == arrays["wte.weight"].shape and np.array_equal(head, arrays["wte.weight"]))
    eps, tied = 1e-5, same
    if config_path:
        c = read_config(config_path)
        V, P = c.get("vocab_size", V), c.get("n_positions", c.get("n_ctx", P))
        E, n_layers, n_heads = c.get("n_embd", E), c.get("n_layer", n_layers), c.get("n_head", n_heads)
        eps = c.get("layer_norm_epsilon", eps)
        if c.get("n_inner") is not None and c["n_inner"] != 4 * E:
            raise ValueError(f"{config_path}: n_inner = {c['n_inner']!r} is not supported (this GPT's MLP is "
                             "4 * n_embd wide)")
        tie = c.get("tie_word_embeddings", same)          # not given: tied when lm_head is absent or the same
        if not isinstance(tie, bool):
            raise ValueError(f"{config_path}: tie_word_embeddings must be true or false")
        if tie and not same:
            if head.shape != arrays["wte.weight"].shape:
                raise ValueError(f"{path}: config.json ties the output head to the embedding, but lm_head.weight "
                                 f"has shape {head.shape} and wte.weight {arrays['wte.weight'].shape}")
            raise ValueError(f"{path}: config.json ties the output head to the embedding, but lm_head.weight "
                             "differs from wte.weight; set tie_word_embeddings to false")
        tied = tie
    try:
        return GPTConfig(vocab_size=V, context_length=P, emb_dim=E, n_layers=n_layers, n_heads=n_heads,
                         drop_rate=0.0, qkv_bias=True, tie_weights=tied, norm_eps=eps)
    except ValueError as e:
        theirs = [hf for ours, hf in _THEIR_NAMES.items() if ours in str(e)] if config_path else []
        raise ValueError(f"{config_path or path}: {e}" + (f" (config.json's {theirs[0]})" if theirs else "")) from None


def _check_tensors(cfg, arrays, path):
    """Every tensor the config needs is in the file with its shape, and the file holds nothing else."""
    ours = param_shapes(cfg)
    needed = {}
    for mine, theirs, transpose in _mapping(cfg):
        needed[theirs] = (mine, ours[mine][::-1] if transpose else ours[mine])
    for theirs, (mine, shape) in needed.items():
        if theirs not in arrays:
            raise ValueError(f"{path}: tensor {theirs} is missing (needed for {mine} of a "
                             f"{cfg.n_layers}-layer GPT-2 with emb_dim {cfg.emb_dim})")
        if tuple(arrays[theirs].shape) != shape:
            raise ValueError(f"{path}: tensor {theirs} has shape {arrays[theirs].shape}, expected {shape} "
                             f"(vocab {cfg.vocab_size}, context {cfg.context_length}, emb_dim {cfg.emb_dim})")
    extra = [k for k in arrays if k not in needed and not (k == "lm_head.weight" and cfg.tie_weights)]
    if extra:
        raise ValueError(f"{path}: unexpected tensor {extra[0]}" + (f" (and {len(extra) - 1} more)" if extra[1:] else "")
                         + f" for a {cfg.n_layers}-layer GPT-2")


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

    The config comes from ``config.json`` beside the file when present, else from the tensor shapes for
    OpenAI's published sizes only (the head count is never guessed). Checked as strictly as ``load_hf``
    checks a Llama or Qwen3: a missing, mis-shaped, integer or twice-named tensor, an F64 value beyond
    float32, or a head that config.json ties but that differs, raises ValueError naming it.
    """
    weights, config_path = _files(path)
    arrays = _mapped(weights)
    cfg = _config_from(arrays, config_path, weights)
    _check_tensors(cfg, arrays, weights)
    try:
        model = GPT(cfg, init=False)
    except MemoryError:
        raise out_of_memory(f"the GPT-2 weights {weights}", cfg) from None
    params = dict(model.named_parameters())
    for ours, theirs, transpose in _mapping(cfg):
        params[ours].data = arrays[theirs].T if transpose else arrays[theirs]
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
    from ..training.checkpoint import write_json
    cfg = model.cfg
    os.makedirs(folder, exist_ok=True)
    tt.save(gpt2_state(model), os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    drop = cfg.drop_rate
    eot = 50256 if cfg.vocab_size > 50256 else None       # GPT-2's <|endoftext|>
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg.vocab_size,
              "n_positions": cfg.context_length, "n_ctx": cfg.context_length, "n_embd": cfg.emb_dim,
              "n_layer": cfg.n_layers, "n_head": cfg.n_heads, "n_inner": None, "activation_function": "gelu_new",
              "resid_pdrop": drop, "embd_pdrop": drop, "attn_pdrop": drop, "layer_norm_epsilon": cfg.norm_eps,
              "initializer_range": 0.02, "bos_token_id": eot, "eos_token_id": eot,
              "tie_word_embeddings": cfg.tie_weights, "torch_dtype": "float32"}
    write_json(config, os.path.join(folder, "config.json"))
    return folder
