"""How a command line reports what went wrong: one line on stderr, and the exit status of the error's type.

    error: --data book.txt: no such file                      UserError and its kinds      exit 2
    error: the loss became nan at step 41; ...               RunFailed                    exit 1
    error: unexpected KeyError: ...; rerun with --debug       a bug                        exit 1

``--debug`` (or TINYTENSOR_DEBUG=1) prints the traceback first. Under ``mpiexec -n N`` an error on one
process ends every process of the job (``end_job``, gpt/training/parallel.py).
"""
import os
import sys
import traceback
import warnings

from ..errors import UserError
from ..training.parallel import end_job
from ..training.progress import silence
from ..training.stopping import SIGPIPE_STATUS


def debug_requested(flag=False):
    """--debug was given, or TINYTENSOR_DEBUG is set to something other than 0."""
    return bool(flag) or os.environ.get("TINYTENSOR_DEBUG", "0") not in ("", "0")


def run_command(command, debug=False):
    """Run ``command()`` and return its exit status; every exception becomes one line on stderr.

    UserError and RunFailed: their message and ``exit_code``. A missing file, a permission, a bad value
    (OSError, ValueError): the message, exit 2. Ctrl-C outside a training loop: 130. A closed output pipe
    (``... | head``): silence, 141 (128 + SIGPIPE, what a shell reports for a process a pipe closed on).
    Anything else is a bug: one line naming it, exit 1, and with ``debug`` the traceback first.
    Warnings print as one line each (``warning: ...``), not with Python's source echo. On one process of
    several (``mpiexec -n N``) the error ends every process of the job (``end_job``).
    """
    debug = debug_requested(debug)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            status = command() or 0
            sys.stdout.flush()                       # a closed pipe shows here, not at interpreter exit
            return status
        except KeyboardInterrupt:
            end_job("interrupted", 130)
            _say("\ninterrupted")
            return 130
        except BrokenPipeError:                      # before OSError: it is one
            end_job("the output was closed", SIGPIPE_STATUS)
            silence(sys.stdout)
            return SIGPIPE_STATUS
        except UserError as e:
            return _report(e, str(e), e.exit_code, debug)
        except (OSError, ValueError) as e:
            return _report(e, str(e), 2, debug)
        except MemoryError as e:
            return _report(e, "out of memory" + (f": {e}" if str(e) else "") +
                           " (a smaller batch, context or model needs less)", 1, debug)
        except Exception as e:                       # the last resort: a bug, said in one line
            where = "" if debug else "; rerun with --debug (or TINYTENSOR_DEBUG=1) for the traceback"
            return _report(e, f"unexpected {type(e).__name__}: {e}{where}", 1, debug)


def _report(exc, message, status, debug):
    if debug:
        traceback.print_exception(exc)
    end_job(message, status)
    _say(f"error: {message}")
    return status


def _say(line):
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):                    # stderr gone as well: nothing left to tell
        pass


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    _say(f"warning: {message}")
