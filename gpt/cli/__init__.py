"""The command line: ``python -m gpt train|sample|chat|finetune ...`` (each with --help).

    python -m gpt train                                  # tiny GPT on CPython's help text, a few minutes
    python -m gpt train --data book.txt --out runs/book --max-steps 2000
    python -m gpt train --resume --out runs/tiny         # continue exactly where it stopped
    mpiexec -n 4 python -m gpt train --batch-size 32     # 4 processes, data-parallel (gpt/training/parallel.py)
    python -m gpt sample --checkpoint runs/tiny --prompt "The for statement"
    python -m gpt sample --gpt2 gpt2-folder --prompt "Hello, I am"   # OpenAI's weights (see gpt/weights/gpt2.py)
    python -m gpt train --arch llama                     # a tiny Llama 3 (or --arch qwen3) on the same text
    python -m gpt sample --hf qwen3-0.6b --prompt "Hi"   # a Hugging Face folder of any family (gpt/weights/hf.py)
    python -m gpt chat --checkpoint runs/sft "Reverse the list." --input "time,class,read"   # instruction-tuned

Errors a user can fix are printed as one line ("error: ...") with exit status 2; a run whose loss or
gradient became NaN exits 1, and so does an unexpected error (one line too; ``--debug`` or
TINYTENSOR_DEBUG=1 shows its traceback). A training run stopped by Ctrl-C, SIGTERM, SIGHUP or a closed
output pipe saves first and exits 130, 143, 129 or 141 (gpt/training/stopping.py).
"""
from ..viz.cli import add_parser as add_viz_parser
from . import chat, finetune, sample, train
from .args import Parser, add_debug_flag
from .report import run_command


def build_parser():
    """The parser of ``python -m gpt`` with every command."""
    parser = Parser(prog="python -m gpt", description="Train and sample GPT models built on tinytensor.")
    add_debug_flag(parser, top=True)
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    train.add_parser(sub)
    sample.add_parser(sub)
    chat.add_parser(sub)
    finetune.register(sub)          # finetune, classify, make-data (gpt/cli/finetune.py)
    add_viz_parser(sub)             # viz: the pages of finished runs and models (gpt/viz/)
    return parser


def main(argv=None):
    """Parse ``argv`` (default: the process's arguments), run the command, return its exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 2
    return run_command(lambda: ns.func(ns), debug=ns.debug)
