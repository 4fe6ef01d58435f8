"""The model page's data: the next token's probabilities under temperature, top-k and top-p, and the
attention weights of every layer and head, for a prompt and a model of any of our families.

The attention weights are what ``F.scaled_dot_product_attention`` computes inside and never returns
(the fused op keeps only its output): while this page runs a forward pass, that function is wrapped
to also compute ``softmax(q k^T / sqrt(d) + causal mask)`` from its inputs, one (H, T, T) array per
layer, in call order (= layer order). The forward pass itself is the model's own, unchanged.
"""
import contextlib
import math
import os
import threading

import numpy as np

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import backend

MAX_TOKENS = 64        # attention maps for at most this many positions (the last ones)
TOP = 20               # probabilities sent for this many candidates
_lock = threading.Lock()


def load_folder(folder):
    """(model, tokenizer or None, description) from a run folder (checkpoint.json), a Hugging Face folder
    (config.json) or a GPT-2 folder (encoder.json, vocab.bpe and model.safetensors)."""
    import bpe
    if os.path.isfile(os.path.join(folder, "checkpoint.json")):
        from gpt.training import checkpoint as ckpt
        meta = ckpt.read_meta(folder)
        if meta.get("task") == "classify":
            raise ValueError(f"{folder} holds a classifier; the model page shows language models")
        model, meta = ckpt.load_model(folder, meta)
        return model, bpe.Tokenizer.load(ckpt.tokenizer_path(folder, meta)), "checkpoint"
    if os.path.isfile(os.path.join(folder, "encoder.json")) and not os.path.isfile(os.path.join(folder, "config.json")):
        from gpt.weights.gpt2 import load_gpt2
        return (load_gpt2(folder), bpe.gpt2(os.path.join(folder, "encoder.json"), os.path.join(folder, "vocab.bpe")),
                "GPT-2 folder")
    if os.path.isfile(os.path.join(folder, "config.json")):
        from gpt.weights.hf import load_hf
        model = load_hf(folder)
        tok = bpe.from_hf(os.path.join(folder, "tokenizer.json")) if os.path.isfile(
            os.path.join(folder, "tokenizer.json")) else None
        return model, tok, "Hugging Face folder"
    raise ValueError(f"{folder}: no checkpoint.json, config.json or GPT-2 files: not a model folder")


def _weights(q, k, causal):
    """softmax(q k^T / sqrt(d) (+ causal mask)) for q (B, H, T, D), k (B, H_kv, S, D) -> (B, H, T, S)."""
    qd, kd = backend.to_numpy(q.data).astype(np.float64), backend.to_numpy(k.data).astype(np.float64)
    if kd.shape[1] != qd.shape[1]:                           # grouped-query: each kv head serves H / H_kv
        kd = np.repeat(kd, qd.shape[1] // kd.shape[1], axis=1)
    s = qd @ kd.swapaxes(-1, -2) / math.sqrt(qd.shape[-1])
    if causal:
        T, S = s.shape[-2:]
        s = np.where(np.arange(S)[None, :] > np.arange(T)[:, None] + (S - T), -np.inf, s)
    s = np.exp(s - s.max(axis=-1, keepdims=True))
    return s / s.sum(axis=-1, keepdims=True)


@contextlib.contextmanager
def attention_recorded(maps):
    """While inside, every attention call appends its weights of batch row 0, (H, T, S), to ``maps``.
    One at a time: a second request waits, and reads the op to restore only once it holds the lock."""
    with _lock:
        original = F.scaled_dot_product_attention

        def recording(q, k, v, causal=True, *args, **kw):
            maps.append(_weights(q, k, causal)[0])
            return original(q, k, v, causal, *args, **kw)

        F.scaled_dot_product_attention = recording
        try:
            yield maps
        finally:
            F.scaled_dot_product_attention = original


def filtered(logits, temperature, top_k, top_p):
    """The probabilities ``gpt.generate`` samples from: logits / temperature, the top_k largest kept,
    then the smallest set of tokens whose mass reaches top_p; temperature 0 puts all mass on the argmax."""
    z = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        p = np.zeros_like(z)
        p[int(z.argmax())] = 1.0
        return p
    z = z / temperature
    if top_k is not None and top_k < z.size:
        z = np.where(z < np.partition(z, -top_k)[-top_k], -np.inf, z)
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]
        keep = np.zeros_like(p)
        keep[order] = np.where(before < top_p, p[order], 0.0)
        p = keep / keep.sum()
    return p


def _options(request):
    try:
        t = float(request.get("temperature", 1.0))
        k = request.get("top_k")
        k = None if k in (None, "", 0) else int(k)
        p = request.get("top_p")
        p = None if p in (None, "") else float(p)
    except (TypeError, ValueError):
        raise ValueError("temperature, top_k and top_p must be numbers") from None
    if not (t >= 0 and math.isfinite(t)):
        raise ValueError(f"temperature must be >= 0, got {t}")
    if k is not None and k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if p is not None and not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    return t, k, p


def next_token(model, tok, request):
    """The page's answer for {"ids" or "text", "temperature", "top_k", "top_p", "seed"}: the tokens, the
    TOP most likely next tokens before and after filtering, a sampled one, and the attention maps."""
    t, k, p = _options(request)
    if request.get("ids") is not None:
        ids = [int(i) for i in request["ids"]]
    elif tok is not None:
        ids = tok.encode(str(request.get("text", "")), allowed_special="all")
    else:                                   # a folder without a tokenizer: the prompt is token ids
        try:
            ids = [int(w) for w in str(request.get("text", "")).replace(",", " ").split()]
        except ValueError:
            raise ValueError("this model folder has no tokenizer: type token ids separated by spaces") from None
    vocab = model.cfg.vocab_size
    if not ids:
        raise ValueError("the prompt is empty: type some text")
    if any(not 0 <= i < vocab for i in ids):
        raise ValueError(f"token ids must be in 0..{vocab - 1}")
    ids = ids[-model.cfg.context_length:]
    maps = []
    model.eval()
    with tt.no_grad(), attention_recorded(maps):
        logits = backend.to_numpy(model(np.array([ids], dtype=np.int64)).data)[0, -1]
    raw = filtered(logits, 1.0, None, None)
    probs = filtered(logits, t, k, p)
    rng = np.random.default_rng(int(request.get("seed", 0)) + len(ids))
    sampled = int(rng.choice(probs.size, p=probs))
    top = np.argsort(-probs, kind="stable")[:TOP]
    text = (lambda i: tok.decode([int(i)])) if tok is not None else (lambda i: f"<{int(i)}>")
    shown = ids[-MAX_TOKENS:]
    return {"ids": ids, "tokens": [text(i) for i in ids], "sampled": sampled, "sampled_text": text(sampled),
            "top": [{"id": int(i), "text": text(i), "p": float(probs[i]), "p_raw": float(raw[i])} for i in top],
            "kept": int((probs > 0).sum()), "settings": {"temperature": t, "top_k": k, "top_p": p},
            "attention": [m[:, -len(shown):, -len(shown):].round(4) for m in maps],
            "attention_tokens": [text(i) for i in shown]}
