"""Command line: python -m bpe {train, encode, decode, show, stats} (each has --help)."""
import argparse
import os
import sys
import traceback
import warnings

from .files import read_text
from .gpt2_files import gpt2
from .hf_json import from_hf
from .patterns import GPT2_PATTERN, GPT4_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN, Splitter
from .show import bytes_per_token, format_steps, show_tokens
from .tokenizer import SpecialTokenError, Tokenizer
from .train import Progress, train

PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN, "llama3": LLAMA3_PATTERN, "qwen2": QWEN2_PATTERN}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (with a pointer to --help), not a usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_args(self, args=None, namespace=None):
        """A flag the command does not know is reported by that command ("python -m bpe encode: ...")."""
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            commands = next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})
            commands.get(getattr(ns, "command", None), self).error(f"unrecognized arguments: {' '.join(extra)}")
        return ns


def load_tokenizer(args):
    if args.gpt2:
        return gpt2(args.gpt2)
    if args.tokenizer:
        return Tokenizer.load(args.tokenizer)
    if args.hf:
        return from_hf(args.hf)
    raise ValueError("say which tokenizer: --tokenizer FILE (from 'train'), --gpt2 DIR "
                     "(a folder with GPT-2's encoder.json and vocab.bpe) or --hf FILE (a tokenizer.json)")


def input_text(args):
    if args.input is not None:
        return read_text(args.input)
    if args.text is not None:
        return args.text
    return read_text(None)


def cmd_train(args):
    if os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is a folder; give the tokenizer file's path, e.g. {args.out}/tok.bpe")
    for i, name in enumerate(args.special):
        if not name:
            raise ValueError("--special '': a special token needs a name, e.g. --special '<|endoftext|>'")
        if name in args.special[:i]:
            raise ValueError(f"--special {name!r} is given twice")
    smallest = 256 + len(args.special)
    if args.vocab_size < smallest:
        raise ValueError(f"--vocab-size {args.vocab_size} is too small: the 256 byte tokens and "
                         f"{len(args.special)} --special token(s) already need {smallest}")
    pattern = PATTERNS.get(args.pattern, args.pattern)
    try:
        Splitter(pattern)
    except ValueError as e:
        raise ValueError(f"--pattern: {e}") from None
    text = read_text(args.input)
    tok = train(text, args.vocab_size, pattern, args.special, algorithm=args.algorithm,
                progress=Progress(sys.stderr))
    tok.save(args.out)
    print(f"saved {tok} to {args.out}", file=sys.stderr)


def cmd_encode(args):
    tok = load_tokenizer(args)
    allowed = "all" if args.allow_special else ()
    try:
        ids = tok.encode(input_text(args), allowed_special=allowed)
    except SpecialTokenError as e:
        raise ValueError(f"the text contains the special token {e.name!r}; pass --allow-special to encode it "
                         f"as its id {tok.special_tokens[e.name]}") from None
    print(" ".join(map(str, ids)))


def cmd_decode(args):
    tok = load_tokenizer(args)
    words = args.ids if args.ids else read_text(None).split()
    ids = []
    for w in words:
        if not (w.isascii() and w.removeprefix("-").isdigit()):      # int() also takes '١٢', '1_0', '+5'
            raise ValueError(f"{w!r} is not a token id (expected integers such as 42)")
        ids.append(int(w))
    sys.stdout.write(tok.decode(ids) + ("" if args.no_newline else "\n"))


def cmd_show(args):
    tok = load_tokenizer(args)
    text = input_text(args)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(show_tokens(tok, text, color=color))
    n = len(tok.encode(text, allowed_special="all"))
    print(f"{n} tokens, {len(text.encode('utf-8'))} bytes, "
          f"{len(text.encode('utf-8')) / max(n, 1):.2f} bytes/token")
    if args.steps:
        print(format_steps(tok, text))


def cmd_stats(args):
    tok = load_tokenizer(args)
    text = input_text(args)
    print(f"{bytes_per_token(tok, text):.3f} bytes/token ({tok})")


DEBUG_HELP = ("on an unexpected error, show the full traceback instead of one line "
              "(default: off; TINYTENSOR_DEBUG=1 in the environment does the same)")


def build_parser():
    parser = _Parser(prog="python -m bpe", description="A byte-level BPE tokenizer: train one on any UTF-8 "
                     "text, encode and decode with it, and watch its merges. Each command has --help.")
    parser.add_argument("--debug", action="store_true", default=False, help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add_command(name, help, description=None):
        p = sub.add_parser(name, help=help, description=description or help[0].upper() + help[1:] + ".")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        return p

    p = add_command("train", "learn merges from a UTF-8 text file",
                    "Learn byte-pair merges from a UTF-8 text file and write the tokenizer to --out.")
    p.add_argument("--input", required=True, help="UTF-8 text file to learn from")
    p.add_argument("--vocab-size", type=int, required=True, help="ids in all: 256 + merges + specials")
    p.add_argument("--out", required=True, help="tokenizer file to write")
    p.add_argument("--pattern", default="gpt2", help="gpt2, gpt4, llama3, qwen2, or a regex that matches "
                   "every character (default: gpt2)")
    p.add_argument("--special", action="append", default=[], metavar="NAME",
                   help="a special token, e.g. '<|endoftext|>' (repeatable; default: none)")
    p.add_argument("--algorithm", choices=["incremental", "naive"], default="incremental",
                   help="incremental: updates pair counts after each merge (fast); naive: recounts every pair "
                   "for every merge, the loop to read first (bpe/train.py; same merges, slow on big texts) "
                   "(default: incremental)")
    p.set_defaults(run=cmd_train)

    def tokenizer_args(p, text=True):
        p.add_argument("--tokenizer", metavar="FILE", help="a file written by 'train'")
        p.add_argument("--gpt2", metavar="DIR", help="a folder with GPT-2's encoder.json and vocab.bpe")
        p.add_argument("--hf", metavar="FILE", help="a Hugging Face tokenizer.json of the byte-level BPE kind "
                       "(GPT-2, Llama 3, Qwen2/3)")
        if text:
            p.add_argument("text", nargs="?", help="text (default: --input FILE, else stdin)")
            p.add_argument("--input", metavar="FILE", help="read the text from this UTF-8 file")

    p = add_command("encode", "print the ids of a text")
    tokenizer_args(p)
    p.add_argument("--allow-special", action="store_true",
                   help="let special-token text become its id (default: off, refused)")
    p.set_defaults(run=cmd_encode)

    p = add_command("decode", "print the text of ids")
    tokenizer_args(p, text=False)
    p.add_argument("ids", nargs="*", help="token ids (default: read from stdin)")
    p.add_argument("-n", "--no-newline", action="store_true",
                   help="print the text exactly, without the newline that ends it (default: a newline, as echo)")
    p.set_defaults(run=cmd_decode)

    p = add_command("show", "show token boundaries (and, with --steps, each merge)")
    tokenizer_args(p)
    p.add_argument("--steps", action="store_true", help="print every merge of every chunk (default: off)")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="coloured tokens, or '|' between them (default: colour on a terminal)")
    p.set_defaults(run=cmd_show)

    p = add_command("stats", "print the bytes per token of a corpus")
    tokenizer_args(p)
    p.set_defaults(run=cmd_stats)
    return parser


def main(argv=None):
    """Run the CLI; errors print one line and exit with status 1 (an unexpected one too: ``--debug`` or
    TINYTENSOR_DEBUG=1 shows its traceback). No arguments: the help (status 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 2
    args = parser.parse_args(argv)
    with warnings.catch_warnings():                 # a warning is one line, as python -m gpt prints it
        warnings.showwarning = lambda message, *rest, **kw: print(f"warning: {message}", file=sys.stderr)
        debug = args.debug or os.environ.get("TINYTENSOR_DEBUG", "") not in ("", "0")
        try:
            args.run(args)
        except (ValueError, TypeError, OSError) as e:
            if debug:
                traceback.print_exception(e)
            print(f"error: {e}", file=sys.stderr)
            return 1
        except Exception as e:                      # a bug: one line, the traceback only when asked
            if debug:
                traceback.print_exception(e)
            where = "" if debug else "; rerun with --debug (or TINYTENSOR_DEBUG=1) for the traceback"
            print(f"error: unexpected {type(e).__name__}: {e}{where}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
