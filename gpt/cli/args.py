"""What every command line of gpt shares: the parser, the argument types and the --debug switch.

Each type turns the text of one flag into a value or says what it expected, in words:
``--seed -5`` gives ``argument --seed: expected an integer >= 0, got '-5'`` (argparse names the flag).
"""
import argparse
import math

DEBUG_HELP = ("on an unexpected error, show the full traceback instead of one line "
              "(default: off; TINYTENSOR_DEBUG=1 in the environment does the same)")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors end by pointing to --help (under mpiexec, with the rank, ending the job)."""

    def error(self, message):
        from ..training.parallel import end_job
        end_job(f"{self.prog}: {message} (see --help)", 2)      # under mpiexec -n N: says it, ends every rank
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_args(self, args=None, namespace=None):
        """argparse's, but a flag no command knows is reported by the command it was given to
        ("python -m gpt train: error: ..."), not by the top level."""
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            command_parser(self, ns).error(f"unrecognized arguments: {' '.join(extra)}")
        return ns


def command_parser(parser, ns):
    """The innermost (sub)command parser that ``ns`` was parsed by, following each chosen subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(ns, action.dest, None) in action.choices:
            return command_parser(action.choices[getattr(ns, action.dest)], ns)
    return parser


def add_debug_flag(parser, top=False):
    """``--debug`` on ``parser``; on a subcommand it is recorded only when given (the top level's default stays)."""
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS, help=DEBUG_HELP)


def positive_int(text):
    """1, 2, 3, ..."""
    v = _int(text, "a positive integer")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def nonneg_int(text):
    """0, 1, 2, ..."""
    v = _int(text, "an integer >= 0")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def _int(text, what):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def number(low=None, high=None, low_open=False):
    """A type for a finite number in [low, high] (``low_open``: (low, high]); nan and inf are refused."""
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(v) or (low is not None and (v < low or (low_open and v == low))) \
                or (high is not None and v > high):
            lo = "-inf" if low is None else low
            hi = "inf" if high is None else high
            raise argparse.ArgumentTypeError(f"expected a number in {'(' if low_open else '['}{lo}, {hi}], got {text!r}")
        return v
    parse.__name__ = "number"
    return parse


positive_number = number(0, low_open=True)


def boolean(text):
    """true/false, yes/no, on/off, 1/0."""
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_sampling_flags(p, temperature, max_new_tokens, what="tokens to add", top_k=None):
    """The flags of how to pick each next token, shared by ``sample`` and ``chat``."""
    p.add_argument("--max-new-tokens", type=nonneg_int, default=max_new_tokens,
                   help=f"{what} (default: {max_new_tokens})")
    p.add_argument("--temperature", type=number(0), default=temperature, help=f"0 is greedy (default: {temperature})")
    p.add_argument("--top-k", type=positive_int, default=top_k,
                   help="sample among the k likeliest tokens only (default: "
                        f"{'off, every token' if top_k is None else top_k})")
    p.add_argument("--top-p", type=number(0, 1, low_open=True), default=None,
                   help="sample among the likeliest tokens whose probabilities sum to p (default: off)")
    p.add_argument("--seed", type=nonneg_int, default=None,
                   help="an integer >= 0 for a repeatable sample (default: none, a new sample each run)")
