"""``python -m gpt chat --checkpoint runs/sft [INSTRUCTION]``: talk to an instruction-tuned model.

With an instruction on the command line it answers once and exits (``--input`` adds the Alpaca
"Input" part). Without one it asks for instructions until Ctrl-D or ``exit``; each turn asks for the
instruction, then for its input (Enter for none). Every turn is independent: the model was tuned on
single instructions, so nothing is carried from one turn to the next. An interactive chat starts by
saying that the model knows only what it was tuned on, with held-out instructions it answered right
(from the run's responses.jsonl): a tiny model tuned by `make-data instruct` knows four tasks over a
list of 14 words, and other words get a guess. The model side is in gpt/generation/chat.py.
"""
import os
import sys

from ..errors import TrainingError
from ..generation.chat import answer, greeting, load_chat_model
from ..training.settings import check_device_available
from .args import add_debug_flag, add_sampling_flags

QUIT = ("exit", "quit")


def add_parser(sub):
    """Register ``chat`` on the subparsers of ``python -m gpt``."""
    p = sub.add_parser("chat", help="answer instructions with an instruction-tuned checkpoint",
                       description="Answer instructions with a model made by `python -m gpt finetune instruct`. "
                                   "With INSTRUCTION: answer it and exit. Without: ask for instructions until "
                                   "Ctrl-D or 'exit' (each turn: the instruction, then its input, Enter for none).")
    p.add_argument("instruction", nargs="?", metavar="INSTRUCTION",
                   help="the instruction to answer (default: none, ask for instructions one after another)")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="a folder from `finetune instruct`")
    p.add_argument("--input", default="", metavar="TEXT",
                   help="the Alpaca 'Input' part of a one-shot instruction (default: none)")
    add_sampling_flags(p, temperature=0.0, max_new_tokens=64, what="answer length limit in tokens")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    add_debug_flag(p)
    p.set_defaults(func=cmd_chat)
    return p


def _ask(prompt):
    """One line from the user (None at end of input); the prompt is shown only on a terminal."""
    try:
        return input(prompt if sys.stdin.isatty() else "")
    except EOFError:
        return None


def cmd_chat(ns):
    if ns.device not in ("cpu", "cuda"):
        raise TrainingError(f"--device must be cpu or cuda, got {ns.device!r}")
    check_device_available(ns.device)
    if os.path.isfile(ns.checkpoint):
        raise TrainingError(f"--checkpoint {ns.checkpoint} is a file: give the folder that holds the checkpoint "
                            f"({os.path.dirname(ns.checkpoint) or '.'})")
    if not os.path.isdir(ns.checkpoint):
        raise TrainingError(f"--checkpoint {ns.checkpoint}: no such folder (make one with "
                            "`python -m gpt finetune instruct ... --out DIR`)")
    model, tok = load_chat_model(ns.checkpoint, ns.device)
    sampling = dict(max_new_tokens=ns.max_new_tokens, temperature=ns.temperature, top_k=ns.top_k, top_p=ns.top_p,
                    seed=ns.seed)
    if ns.instruction is not None:
        if not ns.instruction.strip():
            raise TrainingError("the instruction is empty: pass some text")
        answer(model, tok, ns.instruction, ns.input, **sampling)
        return 0
    if sys.stdin.isatty():
        print(greeting(ns.checkpoint))
    while True:
        instruction = _ask("instruction> ")
        if instruction is None or instruction.strip().lower() in QUIT:
            break
        if not instruction.strip():
            continue
        input_text = _ask("input> ")
        if input_text is not None and input_text.strip().lower() in QUIT:
            break
        try:
            answer(model, tok, instruction.strip(), (input_text or "").strip(), **sampling)
        except KeyboardInterrupt:                   # Ctrl-C stops this answer, not the chat
            print("\n(stopped)")
        except ValueError as e:                     # too long for the context: say so, then the next one
            print(f"error: {e}", file=sys.stderr, flush=True)
        if input_text is None:
            break
    return 0
