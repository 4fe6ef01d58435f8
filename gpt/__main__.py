"""The command line: ``python -m gpt train|sample|finetune ...`` (each with --help).

    python -m gpt train                                  # tiny GPT on CPython's help text, a few minutes
    python -m gpt train --data book.txt --out runs/book --max-steps 2000
    python -m gpt train --resume --out runs/tiny         # continue exactly where it stopped
    python -m gpt sample --checkpoint runs/tiny --prompt "The for statement"
    python -m gpt sample --gpt2 gpt2-folder --prompt "Hello, I am"   # OpenAI's weights (see gpt/pretrained.py)

Errors a user can fix are printed as one line ("error: ...") with exit status 2 (1 for a failed run).
"""
import argparse
import os
import sys

import numpy as np

from .train import TrainConfig, TrainingError, check_device_available


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _nonneg_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def _number(low=None, high=None, low_open=False):
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if v != v or v in (float("inf"), float("-inf")) or (low is not None and (v < low or (low_open and v == low))) \
                or (high is not None and v > high):
            rng = f"{'(' if low_open else '['}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
            raise argparse.ArgumentTypeError(f"expected a number in {rng}, got {text!r}")
        return v
    return parse


def _bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _train_parser(sub):
    p = sub.add_parser("train", help="pretrain a GPT on a text file (default: tiny GPT on CPython's help text)",
                       description="Pretrain a GPT. With no flags: the tiny preset on CPython's help topics, "
                                   "a BPE tokenizer trained first and saved beside the checkpoint.")
    d = TrainConfig()
    S = argparse.SUPPRESS     # defaults live in TrainConfig; argparse only records what was passed
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="FILE", default=S, help="UTF-8 text to train on (default: CPython's help topics)")
    g.add_argument("--tokenizer", metavar="PATH", default=S,
                   help="a bpe tokenizer file, or a folder with GPT-2's encoder.json and vocab.bpe "
                        "(default: train a BPE tokenizer of --vocab-size on the data)")
    g.add_argument("--vocab-size", type=_positive_int, default=S, help="size of the tokenizer trained here (default: the preset's)")
    g.add_argument("--stride", type=_positive_int, default=S, help="tokens between window starts (default: context length)")
    g.add_argument("--val-fraction", type=_number(0, 0.99), default=S, help=f"share of tokens held out (default {d.val_fraction})")
    g = p.add_argument_group("model")
    g.add_argument("--preset", choices=["tiny", "gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"], default=S,
                   help=f"model shape (default {d.preset})")
    g.add_argument("--context-length", type=_positive_int, default=S, help="tokens per window (default: the preset's)")
    g.add_argument("--emb-dim", type=_positive_int, default=S)
    g.add_argument("--n-layers", type=_positive_int, default=S)
    g.add_argument("--n-heads", type=_positive_int, default=S)
    g.add_argument("--drop-rate", type=_number(0, 0.99), default=S)
    g.add_argument("--qkv-bias", type=_bool, metavar="BOOL", default=S)
    g.add_argument("--tie-weights", type=_bool, metavar="BOOL", default=S)
    g.add_argument("--init", choices=["gpt2", "torch"], default=S,
                   help="weight init: GPT-2's N(0, 0.02) (default) or PyTorch's layer defaults, as in the book")
    g = p.add_argument_group("optimisation")
    g.add_argument("--max-steps", type=_positive_int, default=S, help=f"optimizer steps (default {d.max_steps})")
    g.add_argument("--epochs", type=_number(0, low_open=True), default=S, help="passes over the data (overrides --max-steps)")
    g.add_argument("--batch-size", type=_positive_int, default=S, help=f"windows per micro-batch (default {d.batch_size})")
    g.add_argument("--grad-accum", type=_positive_int, default=S, help="micro-batches per step (default 1)")
    g.add_argument("--lr", type=_number(0, low_open=True), default=S, help=f"peak learning rate (default {d.lr})")
    g.add_argument("--min-lr", type=_number(0), default=S, help="final learning rate of the cosine (default lr/10)")
    g.add_argument("--warmup-steps", type=_nonneg_int, default=S, help="linear warmup steps (default 5%% of steps, at most 100)")
    g.add_argument("--schedule", choices=["cosine", "constant"], default=S, help="after warmup (default cosine)")
    g.add_argument("--weight-decay", type=_number(0), default=S, help=f"AdamW weight decay (default {d.weight_decay})")
    g.add_argument("--decay-all", action="store_true", default=S, help="decay biases, norms and embeddings too")
    g.add_argument("--beta2", type=_number(0, 0.9999), default=S, help=f"AdamW beta2 (default {d.beta2})")
    g.add_argument("--grad-clip", type=_number(0), default=S, help=f"max gradient norm, 0 for none (default {d.grad_clip})")
    g.add_argument("--seed", type=int, default=S, help=f"random seed (default {d.seed})")
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", default=S, help=f"checkpoint folder (default {d.out})")
    g.add_argument("--resume", action="store_true", help="continue the checkpoint in --out exactly")
    g.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a checkpoint")
    g.add_argument("--eval-every", type=_positive_int, default=S, help=f"steps between evaluations (default {d.eval_every})")
    g.add_argument("--eval-batches", type=_positive_int, default=S, help=f"batches per evaluation (default {d.eval_batches})")
    g.add_argument("--save-every", type=_positive_int, default=S, help=f"steps between checkpoints (default {d.save_every})")
    g.add_argument("--sample-prompt", default=S, help=f"prompt of the sample shown at each evaluation (default {d.sample_prompt!r})")
    g.add_argument("--sample-tokens", type=_nonneg_int, default=S, help=f"its length in tokens (default {d.sample_tokens})")
    g.add_argument("--device", default=S, help="cpu (default) or cuda")
    return p


def _sample_parser(sub):
    p = sub.add_parser("sample", help="generate text from a checkpoint or from GPT-2's weights",
                       description="Generate text. Tokens are printed as they come.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="DIR", help="a folder written by `python -m gpt train`")
    src.add_argument("--gpt2", metavar="DIR", help="a folder with Hugging Face's GPT-2 model.safetensors "
                                                   "(+ config.json) and OpenAI's encoder.json and vocab.bpe")
    p.add_argument("--prompt", action="append", help="text to continue (repeat for a batch; default: the "
                                                     "end-of-text token)")
    p.add_argument("--max-new-tokens", type=_nonneg_int, default=100)
    p.add_argument("--temperature", type=_number(0), default=0.8, help="0 is greedy (default 0.8)")
    p.add_argument("--top-k", type=_positive_int, default=None)
    p.add_argument("--top-p", type=_number(0, 1, low_open=True), default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-eos-stop", action="store_true", help="keep going after <|endoftext|>")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context each step (slower)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    return p


def build_parser():
    parser = _Parser(prog="python -m gpt", description="Train and sample GPT models built on tinytensor.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _train_parser(sub)
    _sample_parser(sub)
    try:                                  # fine-tuning commands live in gpt/finetune (finetune, classify, ...)
        from .finetune.cli import register
    except ImportError:
        register = None
    if register is not None:
        register(sub)
    return parser


def cmd_train(ns):
    given = {k: v for k, v in vars(ns).items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**given)
    from .train import train
    result = train(config, resume=ns.resume, overwrite=ns.overwrite, given=tuple(given))
    return 0 if result["status"] == "done" else 130


def cmd_sample(ns):
    import bpe

    from . import checkpoint as ckpt
    from .generate import TextStreamer, generate
    if ns.device not in ("cpu", "cuda"):
        raise TrainingError(f"--device must be cpu or cuda, got {ns.device!r}")
    check_device_available(ns.device)
    if ns.gpt2:
        from .pretrained import load_gpt2
        enc, merges = os.path.join(ns.gpt2, "encoder.json"), os.path.join(ns.gpt2, "vocab.bpe")
        if not (os.path.isfile(enc) and os.path.isfile(merges)):
            raise TrainingError(f"{ns.gpt2} needs GPT-2's encoder.json and vocab.bpe beside model.safetensors "
                                "(python -c \"import bpe; bpe.download_gpt2('DIR')\" fetches them)")
        model = load_gpt2(ns.gpt2, device=ns.device)
        tok = bpe.gpt2(enc, merges)
    else:
        model, meta = ckpt.load_model(ns.checkpoint, device=ns.device)
        tok = bpe.Tokenizer.load(ckpt.tokenizer_path(ns.checkpoint, meta))
    eot = tok.special_tokens.get("<|endoftext|>")
    prompts = ns.prompt or [None]
    encoded = []
    for text in prompts:
        if text is None:
            if eot is None:
                raise TrainingError("this tokenizer has no <|endoftext|> token: pass --prompt")
            ids = [eot]
        else:
            ids = tok.encode(text, allowed_special="all")
            if not ids:
                raise TrainingError("the prompt is empty: pass --prompt with some text")
        if len(ids) >= model.cfg.context_length:
            ids = ids[-(model.cfg.context_length - 1):]
        encoded.append(ids)
    eos = None if ns.no_eos_stop else eot
    kw = dict(max_new_tokens=ns.max_new_tokens, temperature=ns.temperature, top_k=ns.top_k, top_p=ns.top_p,
              eos_id=eos, seed=ns.seed, use_cache=not ns.no_cache)
    out = sys.stdout
    if len(encoded) == 1:                       # one prompt: print tokens as they come
        shown = [] if encoded[0] == [eot] else encoded[0]
        out.write(tok.decode(shown))
        out.flush()
        streamer = TextStreamer(tok, shown, out)

        def on_token(new):
            if eos is None or new[0] != eos:
                streamer(new)
        generate(model, [encoded[0]], on_token=on_token, **kw)
        streamer.finish()
        return 0
    same = len({len(ids) for ids in encoded}) == 1
    results = generate(model, encoded, **kw).tolist() if same else \
        [generate(model, [ids], **kw)[0].tolist() for ids in encoded]
    for i, (ids, row) in enumerate(zip(encoded, results)):
        if eos is not None and eos in row[len(ids):]:
            row = row[:len(ids) + row[len(ids):].index(eos)]
        if ids == [eot]:
            row = row[1:]
        out.write(f"--- sample {i + 1} ---\n{tok.decode(row)}\n")
    out.flush()
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 2
    try:
        if ns.command == "train":
            return cmd_train(ns)
        if ns.command == "sample":
            return cmd_sample(ns)
        return ns.func(ns) or 0               # a fine-tuning command (gpt/finetune/cli.py)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1 if "loss became" in str(e) or "gradient norm" in str(e) else 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(0)


_ = np
