"""The command line's part of the pages: the ``--viz`` flag, the ``viz`` command, and starting a live
page. Importing this imports nothing else of the pages; they load only when asked for."""
import os


def add_viz_flag(parser, pretraining=True):
    """``--viz``: serve the run's live page while training (pretraining's page also shows speed and samples)."""
    shown = ("loss, learning rate, gradient norm, tokens/s and each evaluation's sample" if pretraining else
             "each step's loss, learning rate and gradient norm, and each evaluation's losses")
    parser.add_argument("--viz", action="store_true",
                        help=f"serve a live page on 127.0.0.1 (its address is printed): {shown} as they happen "
                             "(default: off)")


def add_parser(subparsers):
    """``python -m gpt viz FOLDER...``."""
    from ..cli.args import add_debug_flag, nonneg_int
    p = subparsers.add_parser("viz", help="serve the pages of finished runs or models on 127.0.0.1",
                              description="Serve local pages: the runs' curves and samples (replayed from "
                                          "metrics.csv and samples.jsonl, several runs overlaid), the tokenizer step by step, and a model's "
                                          "next-token probabilities and attention (a run folder, a Hugging "
                                          "Face folder or a GPT-2 folder). Ctrl-C stops.")
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="run folders or model folders (default: none, "
                                                                "the tokenizer page only)")
    p.add_argument("--port", type=nonneg_int, default=0, help="port on 127.0.0.1 (default: 0, a free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser (default: off, open one)")
    add_debug_flag(p)
    p.set_defaults(func=_cmd_viz)
    return p


def _cmd_viz(ns):
    from ..errors import TrainingError
    from .app import serve
    try:
        return serve(ns.folders, open_browser=not ns.no_browser, port=ns.port)
    except (ValueError, OSError) as exc:
        raise TrainingError(str(exc)) from None


def _rank_zero():
    """True except in the processes 1..N-1 of ``mpiexec -n N`` (only rank 0 serves the page)."""
    return os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")) == "0"


def live_page(ns, out, say=print):
    """A started ``LivePage`` for a run writing to ``out`` when ``--viz`` was given (on rank 0), else None."""
    if not getattr(ns, "viz", False) or not _rank_zero():
        return None
    from .live import start_live
    return start_live(os.path.basename(os.path.normpath(out)) or "run", folder=None, say=say)


def finish(page, out, say=print):
    """After training: say how to see the run again, and stop the page."""
    if page is None:
        return
    page.done()
    say(f"the page stops with training; see this run again with: python -m gpt viz {out}")
    page.stop()
