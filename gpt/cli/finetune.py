"""Command line for fine-tuning, added to ``python -m gpt`` by ``register(subparsers)``:

    python -m gpt make-data classify --out data/doc_vs_code.tsv
    python -m gpt finetune classify --data data/doc_vs_code.tsv --init runs/tiny --out runs/cls --train last
    python -m gpt classify --checkpoint runs/cls "Return the number of items." "return len(self._items)"
    python -m gpt make-data instruct --out data/instruct.json
    python -m gpt finetune instruct --data data/instruct.json --init runs/tiny --out runs/sft --mask-prompt

Also runnable on its own: ``python -m gpt.finetune ...`` takes the same commands.
"""
import argparse
import sys

from ..finetune import make_data
from ..viz.cli import add_viz_flag, finish as finish_viz, live_page
from .args import Parser, add_debug_flag, nonneg_int, number, positive_int, positive_number
from .report import run_command


def _common(p, epochs, lr, batch_size, modes, default_mode, data_help):
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--init", required=True, metavar="DIR",
                   help="the pretrained model: a folder from `python -m gpt train`, or a GPT-2 folder "
                        "(model.safetensors [+ config.json] with encoder.json and vocab.bpe); never written to")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="where the fine-tuned model and metrics.json go: a new folder, or one holding a run "
                        "with --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (default: off, refuse a folder that holds one)")
    p.add_argument("--epochs", type=positive_int, default=epochs,
                   help=f"passes over the training set (default: {epochs})")
    p.add_argument("--lr", type=positive_number, default=lr, help=f"AdamW learning rate (default: {lr})")
    p.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"examples per step (default: {batch_size})")
    p.add_argument("--weight-decay", type=number(0), default=0.1, help="AdamW weight decay (default: 0.1)")
    p.add_argument("--seed", type=nonneg_int, default=123,
                   help="seeds the split, the new weights and the batch order, an integer >= 0 (default: 123)")
    p.add_argument("--train", choices=modes, default=default_mode,
                   help="what trains: last = head + last block + final norm; all = every layer; "
                        f"lora = low-rank adapters (default: {default_mode})")
    p.add_argument("--lora-rank", type=positive_int, default=8, help="LoRA rank (default: 8)")
    p.add_argument("--lora-alpha", type=positive_number, default=16.0,
                   help="LoRA alpha; scale = alpha / rank (default: 16.0)")
    p.add_argument("--max-length", type=positive_int, default=None,
                   help="cut sequences to this many tokens (default: the model's context length)")
    add_viz_flag(p, pretraining=False)
    add_debug_flag(p)


def register(subparsers):
    """Add ``finetune {classify,instruct}``, ``classify`` and ``make-data {instruct,classify}``."""
    ft = subparsers.add_parser("finetune", help="fine-tune a pretrained GPT (classification or instructions)",
                               description="Fine-tune a pretrained GPT for classification or instruction following.")
    ft_sub = ft.add_subparsers(dest="finetune_command", metavar="{classify,instruct}")
    ft_sub.required = True

    c = ft_sub.add_parser("classify", help="train a classifier on labelled text",
                          description="Replace the output head by a num_classes head read at the last real token, "
                                      "train, and report accuracy on a 70/10/20 train/val/test split.")
    _common(c, epochs=5, lr=5e-4, batch_size=8, modes=("last", "all", "lora"), default_mode="last",
            data_help="labelled texts: a TSV of label<TAB>text lines or a CSV with label and text columns "
                      "(make one: python -m gpt make-data classify)")
    c.add_argument("--download", action="store_true",
                   help="first download the SMS Spam Collection (UCI, needs internet) to --data if it is missing "
                        "(default: off)")
    c.add_argument("--balance", action=argparse.BooleanOptionalAction, default=True,
                   help="undersample every class to the smallest one (default: on)")
    c.add_argument("--max-examples", type=positive_int, default=None,
                   help="use at most this many examples (default: all)")
    c.set_defaults(func=_cmd_finetune_classify)

    i = ft_sub.add_parser("instruct", help="instruction fine-tuning on Alpaca-style JSON",
                          description="Fine-tune on a JSON list of {instruction, input, output} entries in the "
                                      "Alpaca prompt, then answer the held-out split into DIR/responses.jsonl.")
    _common(i, epochs=3, lr=1e-3, batch_size=16, modes=("all", "last", "lora"), default_mode="all",
            data_help="a JSON list of {instruction, input, output} entries, Alpaca's format "
                      "(make one: python -m gpt make-data instruct)")
    i.add_argument("--mask-prompt", action="store_true",
                   help="compute the loss on the response tokens only (default: off, on every token)")
    i.add_argument("--max-new-tokens", type=positive_int, default=32, help="answer length limit (default: 32)")
    i.add_argument("--max-minutes", type=positive_number, default=None,
                   help="stop training after this many minutes; the evaluation still runs (default: no limit)")
    i.add_argument("--max-test", type=positive_int, default=None,
                   help="answer at most this many held-out examples (default: all)")
    i.set_defaults(func=_cmd_finetune_instruct)

    k = subparsers.add_parser("classify", help="label text with a fine-tuned classifier",
                              description="Print the predicted label, its probability and the text, one per line.")
    k.add_argument("--checkpoint", required=True, metavar="DIR", help="a folder from `finetune classify`")
    k.add_argument("text", nargs="+", help="the texts to label ('-' reads one text per line from stdin)")
    add_debug_flag(k)
    k.set_defaults(func=_cmd_classify)

    m = subparsers.add_parser("make-data", help="write an offline fine-tuning data set",
                              description="Write synthetic or built-in data sets that need no download.")
    m_sub = m.add_subparsers(dest="make_data_command", metavar="{instruct,classify}")
    m_sub.required = True
    mi = m_sub.add_parser("instruct", help=f"synthetic checkable instruction tasks ({', '.join(make_data.KINDS)})",
                          description="Write an Alpaca-style JSON list of instructions whose answers a program "
                                      f"can check: {', '.join(make_data.KINDS)} (sums of small numbers, reversing "
                                      "or searching a list, copying one field of a record), over a list of "
                                      f"{len(make_data.WORDS)} words that are one token each for the tiny model. "
                                      "A model tuned on it knows those tasks and words only.")
    mi.add_argument("--out", required=True, metavar="FILE", help="the JSON file to write")
    mi.add_argument("--n", type=positive_int, default=2000, help="number of entries (default: 2000)")
    mi.add_argument("--seed", type=nonneg_int, default=0, help="seeds the entries, an integer >= 0 (default: 0)")
    add_debug_flag(mi)
    mi.set_defaults(func=_cmd_make_instruct)
    mc = m_sub.add_parser("classify", help="two-class TSV: CPython doc prose (doc) vs stdlib code (code) or comments",
                          description="Write a two-class TSV made from this Python install: sentences of the help "
                                      "topics' prose (doc) against lines of the standard library's code (code) or "
                                      "its comments (comment, a harder task: many comments read like the docs).")
    mc.add_argument("--out", required=True, metavar="FILE", help="the TSV file to write")
    mc.add_argument("--task", choices=list(make_data.TASKS), default="doc-vs-code",
                    help="which two classes (default: doc-vs-code)")
    mc.add_argument("--n-per-class", type=positive_int, default=1000, help="examples per class (default: 1000)")
    mc.add_argument("--seed", type=nonneg_int, default=0, help="seeds the choice of lines, an integer >= 0 (default: 0)")
    add_debug_flag(mc)
    mc.set_defaults(func=_cmd_make_classify)
    return subparsers


def _say(msg):
    print(msg, flush=True)


def _cmd_finetune_classify(a):
    from ..finetune.pipeline import run_classify
    from ..finetune.settings import ClassifySettings
    return _finetune(a, run_classify, ClassifySettings)


def _cmd_finetune_instruct(a):
    from ..finetune.pipeline import run_instruct
    from ..finetune.settings import InstructSettings
    return _finetune(a, run_instruct, InstructSettings)


def _finetune(a, run, settings_class):
    """Run a fine-tuning recipe on the settings built from the flags, with its live page under --viz."""
    from tinytensor.schedule import heap
    heap.tune()                                # training's temporaries reuse freed memory (tinytensor/schedule/heap.py)
    page = live_page(a, a.out, _say)           # --viz: the live page (gpt/viz), else None
    try:
        run(settings_class.from_flags(a), _say, on_row=page and page.on_row)
    finally:
        finish_viz(page, a.out, _say)
    return 0


def _cmd_classify(a):
    from ..finetune.pipeline import run_predict
    texts = [line.rstrip("\n") for line in sys.stdin if line.strip()] if a.text == ["-"] else a.text
    for label, p, text in run_predict(a.checkpoint, texts):
        print(f"{label}\t{p:.3f}\t{text}")
    return 0


def _cmd_make_instruct(a):
    entries = make_data.write_instruct(a.out, a.n, a.seed)
    print(f"wrote {len(entries)} instruction entries ({', '.join(make_data.KINDS)}) to {a.out}")
    return 0


def _cmd_make_classify(a):
    rows = make_data.write_classify(a.out, a.n_per_class, a.seed, a.task)
    counts = {}
    for label, _ in rows:
        counts[label] = counts.get(label, 0) + 1
    print(f"wrote {len(rows)} labelled lines ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}) "
          f"to {a.out}")
    return 0


def main(argv=None, prog="python -m gpt"):
    """Parse and run one fine-tuning command line (argv starts with finetune, classify or make-data)."""
    parser = Parser(prog=prog, description="Fine-tuning commands of python -m gpt.")
    add_debug_flag(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="{finetune,classify,make-data}", parser_class=Parser)
    sub.required = True
    register(sub)
    a = parser.parse_args(argv)
    return run_command(lambda: a.func(a), debug=a.debug)


if __name__ == "__main__":
    sys.exit(main())
