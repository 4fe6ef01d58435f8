"""The command line: ``python -m gpt train|sample|chat|finetune ...`` (each with --help).

    python -m gpt train                                  # tiny GPT on CPython's help text, a few minutes
    python -m gpt train --data book.txt --out runs/book --max-steps 2000
    python -m gpt train --resume --out runs/tiny         # continue exactly where it stopped
    mpiexec -n 4 python -m gpt train --batch-size 32     # 4 processes, data-parallel (gpt/parallel_run.py)
    python -m gpt sample --checkpoint runs/tiny --prompt "The for statement"
    python -m gpt sample --gpt2 gpt2-folder --prompt "Hello, I am"   # OpenAI's weights (see gpt/pretrained.py)
    python -m gpt train --arch llama                     # a tiny Llama 3 (or --arch qwen3) on the same text
    python -m gpt sample --hf qwen3-0.6b --prompt "Hi"   # a Hugging Face folder of any family (gpt/hf.py)
    python -m gpt chat --checkpoint runs/sft "Reverse the list." --input "time,class,read"   # instruction-tuned

Errors a user can fix are printed as one line ("error: ...") with exit status 2; a run whose loss or
gradient became NaN exits 1, and so does an unexpected error (one line too; ``--debug`` or
TINYTENSOR_DEBUG=1 shows its traceback). A training run stopped by Ctrl-C, SIGTERM, SIGHUP or a closed
output pipe saves first and exits 130, 143, 129 or 141 (gpt/stopping.py).
"""
import argparse
import os
import sys

from .cli_args import (Parser, add_debug_flag, add_sampling_flags, boolean, nonneg_int, number, positive_int,
                       positive_number)
from .config import GPTConfig
from .errors import TrainingError, run_command
from .families import ARCHS, config_class
from .train import TrainConfig, check_device_available
from .viz.cli import add_parser as add_viz_parser, add_viz_flag, finish as finish_viz, live_page

PRESETS = tuple(dict.fromkeys(name for arch in ARCHS for name in config_class(arch).PRESETS))


def _train_parser(sub):
    p = sub.add_parser("train", help="pretrain a GPT on a text file (default: tiny GPT on CPython's help text)",
                       description="Pretrain a GPT. With no flags: the tiny preset on CPython's help topics, "
                                   "a BPE tokenizer trained first and saved beside the checkpoint. Ctrl-C, "
                                   "SIGTERM or SIGHUP saves a checkpoint and stops (exit 130, 143, 129).")
    d = TrainConfig()

    def flag(group, name, text, shown=None, **kw):
        """A flag whose default lives in TrainConfig (argparse records only what was passed); the help
        ends with that default, or with ``shown`` where it depends on other settings."""
        value = shown if shown is not None else getattr(d, name[2:].replace("-", "_"))
        group.add_argument(name, default=argparse.SUPPRESS, help=f"{text} (default: {value})", **kw)

    preset = "the preset's; tiny {}".format
    lrs = ", ".join(f"{name} {lr:g}" for name, lr in TrainConfig.PRESET_LR.items())
    g = p.add_argument_group("data")
    flag(g, "--data", "UTF-8 text to train on", "CPython's help topics", metavar="FILE")
    flag(g, "--tokenizer", "a bpe tokenizer file, or a folder with GPT-2's encoder.json and vocab.bpe",
         "train a BPE tokenizer of --vocab-size on the data", metavar="PATH")
    flag(g, "--vocab-size", "size of the tokenizer trained here", preset(1024), type=positive_int)
    flag(g, "--stride", "tokens between window starts", "the context length", type=positive_int)
    flag(g, "--val-fraction", "share of tokens held out", type=number(0, 0.99))
    g = p.add_argument_group("model")
    flag(g, "--arch", "model family: GPT-2, Llama 3 or Qwen3 (gpt/families.py)", choices=ARCHS)
    flag(g, "--preset", "model shape of the family: tiny, or a published size (gpt2-small, llama3.2-1b, "
         "qwen3-0.6b, ...)", choices=PRESETS, metavar="NAME")
    flag(g, "--context-length", "tokens per window", preset(128), type=positive_int)
    flag(g, "--emb-dim", "width of every hidden state", preset(128), type=positive_int)
    flag(g, "--n-layers", "transformer blocks", preset(4), type=positive_int)
    flag(g, "--n-heads", "attention heads, dividing --emb-dim", preset(4), type=positive_int)
    flag(g, "--n-kv-heads", "key/value heads, dividing --n-heads (llama, qwen3: grouped-query attention)",
         preset(2), type=positive_int)
    flag(g, "--drop-rate", "dropout probability", "the preset's, 0", type=number(0, 0.99))
    flag(g, "--qkv-bias", "a bias on the query/key/value projection (gpt2 only)",
         "the preset's; tiny false, GPT-2 true",
         type=boolean, metavar="BOOL")
    flag(g, "--tie-weights", "the output head shares the token embedding", "the preset's; tiny true, GPT-2 false",
         type=boolean, metavar="BOOL")
    flag(g, "--init", "weight init: GPT-2's N(0, 0.02), or PyTorch's layer defaults as in the book",
         choices=["gpt2", "torch"])
    g = p.add_argument_group("optimisation")
    flag(g, "--max-steps", "optimizer steps", type=positive_int)
    flag(g, "--epochs", "passes over the data, instead of --max-steps", "off, --max-steps counts", type=positive_number)
    flag(g, "--batch-size", "windows per micro-batch; under mpiexec the global one, split over the processes",
         type=positive_int)
    flag(g, "--grad-accum", "micro-batches per step", type=positive_int)
    flag(g, "--lr", "peak learning rate: larger models need smaller steps; the GPT-2 sizes take the rates the "
         "GPT-3 paper used for models of their size", f"the preset's: {lrs}", type=positive_number)
    flag(g, "--min-lr", "final learning rate of the cosine", "lr / 10", type=number(0))
    flag(g, "--warmup-steps", "linear warmup steps", "5%% of the steps, at most 100", type=nonneg_int)
    flag(g, "--schedule", "the learning rate after warmup", choices=["cosine", "constant"])
    flag(g, "--weight-decay", "AdamW weight decay on the weight matrices", type=number(0))
    flag(g, "--decay-all", "decay biases, norms and embeddings too", "off, weight matrices only", action="store_true")
    flag(g, "--beta2", "AdamW beta2", type=number(0, 0.9999))
    flag(g, "--grad-clip", "max gradient norm, 0 for none", type=number(0))
    flag(g, "--seed", "random seed, an integer >= 0", type=nonneg_int)
    flag(g, "--zero", "under mpiexec -n N: each process keeps only its 1/N of AdamW's moments (ZeRO-1), same "
         "numbers", "off", action="store_true")
    g = p.add_argument_group("run")
    flag(g, "--out", "checkpoint folder", metavar="DIR")
    g.add_argument("--resume", action="store_true", help="continue the checkpoint in --out exactly (default: off)")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh even if --out holds a checkpoint (default: off, refuse)")
    flag(g, "--eval-every", "steps between evaluations", type=positive_int)
    flag(g, "--eval-batches", "batches per evaluation", type=positive_int)
    flag(g, "--save-every", "steps between checkpoints", type=positive_int)
    flag(g, "--sample-prompt", "prompt of the sample shown at each evaluation", repr(d.sample_prompt))
    flag(g, "--sample-tokens", "the sample's length in tokens", type=nonneg_int)
    flag(g, "--device", "cpu or cuda")
    flag(g, "--dtype", "precision of the products: bfloat16 or float16 run them under tt.autocast with float32 "
         "master weights (float16 with loss scaling; bfloat16 needs --device cuda)", choices=["float32", "bfloat16",
                                                                                              "float16"])
    g.add_argument("--reference-ops", action="store_true",
                   help="run on the readable twin ops (tt.use_reference_ops(True)) instead of the fused ones: "
                        "slower, the same numbers to rounding (default: off)")
    add_viz_flag(g)
    add_debug_flag(p)
    p.set_defaults(func=cmd_train)
    return p


def _sample_parser(sub):
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
    add_sampling_flags(p, temperature=0.8, max_new_tokens=100)
    p.add_argument("--no-eos-stop", action="store_true",
                   help="keep going after <|endoftext|> (--hf: the folder's end ids) (default: off, stop there)")
    p.add_argument("--no-cache", action="store_true",
                   help="recompute the whole context each step, slower (default: off, keys and values cached)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    add_debug_flag(p)
    p.set_defaults(func=cmd_sample)
    return p


def build_parser():
    parser = Parser(prog="python -m gpt", description="Train and sample GPT models built on tinytensor.")
    add_debug_flag(parser, top=True)
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    _train_parser(sub)
    _sample_parser(sub)
    from .chat import add_parser as add_chat_parser
    add_chat_parser(sub)
    from .finetune.cli import register          # fine-tuning commands live in gpt/finetune (finetune, classify, ...)
    register(sub)
    add_viz_parser(sub)
    return parser


def cmd_train(ns):
    import tinytensor as tt
    from tinytensor.schedule import heap

    from .train import train
    given = {k: v for k, v in vars(ns).items() if k in TrainConfig.__dataclass_fields__}
    if ns.reference_ops:
        use = getattr(tt, "use_reference_ops", None)
        if use is None:
            raise TrainingError("--reference-ops: this tinytensor has no reference ops (tt.use_reference_ops)")
        use(True)
    heap.tune()                                # training's temporaries reuse freed memory (tinytensor/heap.py)
    out = given.get("out", TrainConfig.out)
    page = live_page(ns, out)                  # --viz: the live page (gpt/viz), else None and nothing imported
    hooks = {"on_step": page.on_step, "on_eval": page.on_eval} if page else {}
    try:
        result = train(TrainConfig(**given), resume=ns.resume, overwrite=ns.overwrite, given=tuple(given), **hooks)
    finally:
        finish_viz(page, out)
    return result["exit_code"]


def cmd_sample(ns):
    import bpe

    from . import checkpoint as ckpt
    from .chat import classifier_hint
    from .generate import TextStreamer, generate, prompt_ids
    from .textout import PrintableStream
    if ns.device not in ("cpu", "cuda"):
        raise TrainingError(f"--device must be cpu or cuda, got {ns.device!r}")
    check_device_available(ns.device)
    prefix, stops = [], None                    # ids put before a prompt; the ids that end a text
    if ns.hf:
        from .hf_folder import load_folder
        model, tok, prefix, stops = load_folder(ns.hf, device=ns.device)
    elif ns.gpt2:
        from .pretrained import load_gpt2
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
    out = PrintableStream(sys.stdout)           # text as text, control characters escaped (gpt/textout.py)
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


def main(argv=None):
    """Parse ``argv`` (default: the process's arguments), run the command, return its exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 2
    return run_command(lambda: ns.func(ns), debug=ns.debug)


if __name__ == "__main__":
    sys.exit(main())
