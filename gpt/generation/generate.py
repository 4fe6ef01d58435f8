"""Text generation: feed the model its own predictions one token at a time.

Each step turns the logits of the last position into a choice: the most likely token (temperature 0,
"greedy"), or a draw from softmax(logits / temperature), optionally restricted to the k most likely
tokens (top-k) or to the smallest set whose probability reaches p (top-p, "nucleus").

With the KV cache (default) the prompt is run once and each later step feeds only the newest token:
its keys and values are appended to the ones kept from before, which gives the same logits as running
the whole sequence again, at a fraction of the cost. Past the context length the model sees only the
last ``context_length`` tokens; then each step runs that whole window, with or without the cache.
"""
import codecs
import warnings

import numpy as np

import tinytensor as tt
from tinytensor import backend, random


def _as_ids(ids):
    data = ids.numpy() if hasattr(ids, "numpy") and not isinstance(ids, np.ndarray) else ids
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], (list, tuple, np.ndarray)):
        lengths = {len(row) for row in data}
        if len(lengths) > 1:
            raise ValueError(f"generate: prompts of different lengths {sorted(lengths)} cannot share a batch; "
                             "generate them one at a time")
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.shape[1] == 0:
        raise ValueError(f"generate: ids must be (batch, tokens) with at least one token, got shape {data.shape}")
    if data.dtype.kind not in "iu":
        raise ValueError(f"generate: ids must be integers, got {data.dtype}")
    return data.astype(np.int64)


def _check(temperature, top_k, top_p, max_new_tokens):
    if max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"generate: temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k <= 0:
        raise ValueError(f"generate: top_k must be a positive integer, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"generate: top_p must be in (0, 1], got {top_p}")


def encode_tail(encode, text, keep):
    """(ids, cut): the last ``keep`` token ids of ``text`` (``encode(text)`` gives ids) and whether any
    came before them. Only as much of the end of ``text`` as holds them is tokenized (a few times
    ``keep`` characters, growing as needed), so a 14 MB line costs no more than its last tokens; the
    first ids of a piece cut mid-word are dropped with the margin."""
    size = 8 * (keep + 16)
    while True:
        piece = text[-size:] if size < len(text) else text
        ids = encode(piece)
        if piece is text or len(ids) >= keep + 16:
            return ids[-keep:] if keep else [], len(ids) > keep or piece is not text
        size *= 4


def prompt_ids(encode, text, prefix, context_length):
    """``prefix`` (a template's opening ids, such as Llama's <|begin_of_text|>) + the ids of ``text``,
    fitted to ``context_length`` with room for one new token: a longer text keeps its end, never the
    prefix, and a warning says how much was kept."""
    room = context_length - 1 - len(prefix)
    if room < 1:
        raise ValueError(f"the prompt's fixed opening is {len(prefix)} tokens, the model's context "
                         f"{context_length}: no room for the prompt")
    ids, cut = encode_tail(encode, text, room)
    if cut:
        warnings.warn(f"the prompt is longer than the model's context ({context_length} tokens, one left to "
                      f"generate): only its last {len(ids)} tokens are used", UserWarning, stacklevel=2)
    return list(prefix) + list(ids)


def check_logits(logits, step=None):
    """Raise ValueError when a row of ``logits`` (B, V) holds NaN or +inf, or nothing but -inf: no token
    can be chosen from it (argmax and the sampler would silently give token 0)."""
    bad = np.isnan(logits).any(axis=-1) | np.isposinf(logits).any(axis=-1) | np.isneginf(logits).all(axis=-1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = "NaN" if np.isnan(logits[row]).any() else "+inf" if np.isposinf(logits[row]).any() else "only -inf"
        at = f" at step {step}" if step is not None else ""
        raise ValueError(f"generate: the model's logits hold {what}{at} (row {row}): its weights are probably "
                         "damaged (a NaN or inf in the checkpoint?); no token can be chosen")


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, rng=None):
    """Choose one token per row from ``logits`` (B, V) (a NumPy float array); returns int64 (B,).

    One uniform number per row is drawn (when temperature > 0), so a seed gives one stream of tokens.
    Logits holding NaN or +inf are refused (``check_logits``).
    """
    logits = np.asarray(logits, dtype=np.float64)
    check_logits(logits)
    if temperature == 0:
        return logits.argmax(axis=-1)
    rng = rng if rng is not None else random.generator()
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]
        logits = np.where(logits < kth, -np.inf, logits)               # keep the k largest (and ties)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=-1)
        before = np.cumsum(sorted_p, axis=-1) - sorted_p                # mass of the tokens ranked above
        sorted_p = np.where(before < top_p, sorted_p, 0.0)              # the first token always stays
        probs = np.zeros_like(probs)
        np.put_along_axis(probs, order, sorted_p, axis=-1)
        probs /= probs.sum(axis=-1, keepdims=True)
    u = rng.random(probs.shape[0])
    cdf = np.cumsum(probs, axis=-1)
    choice = (cdf <= (u * cdf[:, -1])[:, None]).sum(axis=-1)   # first token whose cdf passes u
    return np.minimum(choice, probs.shape[-1] - 1).astype(np.int64)


def generate(model, ids, max_new_tokens=50, temperature=0.0, top_k=None, top_p=None, eos_id=None, seed=None,
             use_cache=True, on_token=None, vocab_size=None):
    """Continue each prompt in ``ids`` (B, T) by up to ``max_new_tokens`` tokens; returns int64 (B, T + n).

    temperature 0 is greedy; ``seed`` gives a private random stream (None: the library's, see
    ``tt.manual_seed``). With ``eos_id`` (an id, or several: Llama 3 and Qwen3 end a turn with one of
    a few) a row that produced it keeps producing it, and generation stops when every row has.
    ``on_token(new_ids)`` is called with each new column (B,) as it comes. ``vocab_size`` (the tokenizer's
    ``n_vocab``): only ids below it are chosen, for a model whose embedding table is padded past its
    tokenizer's ids (Qwen3: 151,936 rows for 151,669 ids); None: any row of the model's.
    """
    _check(temperature, top_k, top_p, max_new_tokens)
    if vocab_size is not None and (isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer))
                                   or vocab_size < 1):
        raise ValueError(f"generate: vocab_size must be a positive integer (the tokenizer's n_vocab), got {vocab_size!r}")
    prompt = _as_ids(ids)
    ctx = model.cfg.context_length
    rng = np.random.default_rng(seed) if seed is not None else None
    out = prompt
    done = np.zeros(len(prompt), dtype=bool)
    stops = None if eos_id is None else np.atleast_1d(np.asarray(eos_id, dtype=np.int64))
    ended = np.zeros(len(prompt), dtype=np.int64)       # the stop id each finished row produced
    was_training = model.training
    model.eval()
    cache = model.new_cache(len(prompt)) if use_cache else None
    try:
        with tt.no_grad():
            for step in range(1, max_new_tokens + 1):
                if cache is not None and cache.length and out.shape[1] <= ctx:
                    logits = model(out[:, cache.length:], cache=cache)   # only the new token(s)
                else:
                    window = out[:, -ctx:]
                    if cache is not None:
                        cache.reset()
                        if out.shape[1] > ctx:        # the window slides: cached positions no longer fit
                            cache = None
                    logits = model(window, cache=cache)
                last = backend.to_numpy(logits.data[:, -1, :])
                if vocab_size is not None and vocab_size < last.shape[-1]:
                    last = last.copy()
                    last[:, vocab_size:] = -np.inf            # padded rows: no token of the tokenizer's
                check_logits(last, step)
                nxt = sample_next(last, temperature, top_k, top_p, rng)
                if stops is not None:
                    nxt = np.where(done, ended, nxt)
                    ended = np.where(done, ended, nxt)
                    done |= np.isin(nxt, stops)
                out = np.concatenate([out, nxt[:, None]], axis=1)
                if on_token is not None:
                    on_token(nxt)
                if eos_id is not None and done.all():
                    break
    finally:
        model.train(was_training)
    return out


class TextStreamer:
    """Prints the decoded text of one sequence as tokens arrive (holding back half-finished characters).

    Each token's bytes (``tok.decode_bytes``) go through an incremental UTF-8 decoder, so each token
    costs the same however long the text is (decoding the whole text again at every token made a long
    generation quadratic); what is printed equals ``tok.decode`` of all the ids. A tokenizer with only
    ``decode`` gets the whole text decoded again at every token.
    """

    def __init__(self, tok, prompt_ids, stream, row=0):
        self.tok, self.ids, self.stream, self.row = tok, list(prompt_ids), stream, row
        if hasattr(tok, "decode_bytes"):
            self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            self.decoder.decode(tok.decode_bytes(self.ids))     # the caller has printed the prompt already
        else:
            self.decoder, self.printed = None, len(tok.decode(self.ids))

    def __call__(self, new_ids):
        new = int(new_ids[self.row])
        self.ids.append(new)
        if self.decoder is not None:
            self._write(self.decoder.decode(self.tok.decode_bytes([new])))
            return
        text = self.tok.decode(self.ids)
        end = len(text)
        while end > self.printed and text[end - 1] == "\ufffd":     # maybe an incomplete UTF-8 sequence
            end -= 1
        self._write(text[self.printed:end])
        self.printed = max(self.printed, end)

    def _write(self, text):
        if text:
            self.stream.write(text)
            self.stream.flush()

    def finish(self):
        rest = self.decoder.decode(b"", final=True) if self.decoder is not None \
            else self.tok.decode(self.ids)[self.printed:]
        self.stream.write(rest + "\n")
        self.stream.flush()
