"""``python -m gpt sample``: continue a prompt with a checkpoint of ours, GPT-2's weights or a Hugging Face folder."""
import os
import sys

from ..errors import TrainingError
from ..training.settings import check_device_available
from ..training.pretrain import SAMPLE_TEMPERATURE, SAMPLE_TOP_K
from .args import add_debug_flag, add_sampling_flags


def add_parser(sub):
    """Register ``sample`` on the subparsers of ``python -m gpt``."""
    p = sub.add_parser("sample", help="generate text from a checkpoint or from GPT-2's weights",
                       description="Generate text. Tokens are printed as they come.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="DIR", help="a folder written by `python -m gpt train`")
    src.add_argument("--gpt2", metavar="DIR", help="a folder with Hugging Face's GPT-2 model.safetensors "
                                                   "(+ config.json) and OpenAI's encoder.json and vocab.bpe")
    src.add_argument("--hf", metavar="DIR", help="a Hugging Face folder of a GPT-2, Llama 3 or Qwen3 model "
                                                 "(config.json, model.safetensors or its shards, tokenizer.json)")
    p.add_argument("--prompt", action="append", help="text to continue (repeat for a batch; default: the "
                                                     "end-of-text token)")
    add_sampling_flags(p, temperature=SAMPLE_TEMPERATURE, max_new_tokens=100, top_k=SAMPLE_TOP_K)   # as train samples
    p.add_argument("--no-eos-stop", action="store_true",
                   help="keep going after <|endoftext|> (--hf: the folder's end ids) (default: off, stop there)")
    p.add_argument("--no-cache", action="store_true",
                   help="recompute the whole context each step, slower (default: off, keys and values cached)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    add_debug_flag(p)
    p.set_defaults(func=cmd_sample)
    return p


def cmd_sample(ns):
    import bpe

    from ..generation.chat import classifier_hint
    from ..generation.generate import TextStreamer, generate, prompt_ids
    from ..generation.printable import PrintableStream
    from ..training import checkpoint as ckpt
    if ns.device not in ("cpu", "cuda"):
        raise TrainingError(f"--device must be cpu or cuda, got {ns.device!r}")
    check_device_available(ns.device)
    prefix, stops = [], None                    # ids put before a prompt; the ids that end a text
    if ns.hf:
        from ..weights.hf import load_folder
        model, tok, prefix, stops = load_folder(ns.hf, device=ns.device)
    elif ns.gpt2:
        from ..weights.gpt2 import load_gpt2
        enc, merges = os.path.join(ns.gpt2, "encoder.json"), os.path.join(ns.gpt2, "vocab.bpe")
        if not (os.path.isfile(enc) and os.path.isfile(merges)):
            raise TrainingError(f"{ns.gpt2} needs GPT-2's encoder.json and vocab.bpe beside model.safetensors "
                                "(python -c \"import bpe; bpe.download_gpt2('DIR')\" fetches them)")
        model = load_gpt2(ns.gpt2, device=ns.device)
        tok = bpe.gpt2(enc, merges)
    else:
        meta = ckpt.read_meta(ns.checkpoint)
        if meta.get("task") == "classify":
            raise TrainingError(classifier_hint(ns.checkpoint))
        model, meta = ckpt.load_model(ns.checkpoint, meta, device=ns.device)
        tok = bpe.Tokenizer.load(ckpt.tokenizer_path(ns.checkpoint, meta))
    eot = tok.special_tokens.get("<|endoftext|>")
    start = prefix or ([eot] if eot is not None else [])      # what a sample without a prompt starts from
    prompts = ns.prompt or [None]
    encoded = []
    for text in prompts:
        if text is None:
            if not start:
                raise TrainingError("this tokenizer has no <|endoftext|> token: pass --prompt")
            ids = start
        else:
            ids = prompt_ids(lambda t: tok.encode(t, allowed_special="all"), text, prefix, model.cfg.context_length)
            if len(ids) == len(prefix):
                raise TrainingError("the prompt is empty: pass --prompt with some text")
        encoded.append(ids)
    stops = stops if stops is not None else [eot] if eot is not None else []
    eos = None if ns.no_eos_stop or not stops else stops
    kw = dict(max_new_tokens=ns.max_new_tokens, temperature=ns.temperature, top_k=ns.top_k, top_p=ns.top_p,
              eos_id=eos, seed=ns.seed, use_cache=not ns.no_cache, vocab_size=tok.n_vocab)
    out = PrintableStream(sys.stdout)           # text as text, control characters escaped (gpt/generation/printable.py)
    if len(encoded) == 1:                       # one prompt: print tokens as they come
        shown = [] if encoded[0] == start else encoded[0][len(prefix):]
        out.write(tok.decode(shown))
        out.flush()
        streamer = TextStreamer(tok, shown, out)

        def on_token(new):
            if eos is None or new[0] not in eos:
                streamer(new)
        generate(model, [encoded[0]], on_token=on_token, **kw)
        streamer.finish()
        return 0
    same = len({len(ids) for ids in encoded}) == 1
    results = generate(model, encoded, **kw).tolist() if same else \
        [generate(model, [ids], **kw)[0].tolist() for ids in encoded]
    for i, (ids, row) in enumerate(zip(encoded, results)):
        ends = [k for k, t in enumerate(row[len(ids):]) if eos is not None and t in eos]
        if ends:
            row = row[:len(ids) + ends[0]]
        row = row[len(start):] if ids == start else row[len(prefix):]
        out.write(f"--- sample {i + 1} ---\n{tok.decode(row)}\n")
    out.flush()
    return 0
