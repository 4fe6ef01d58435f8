"""The errors a command line reports as one line, and the exit status each one gives.

    UserError               a problem the user can fix: a bad flag, a missing or damaged file   exit 2
      TrainingError         ... found by pretraining (gpt/train.py)
        RunFailed           the run itself went wrong: its loss or gradient became NaN or Inf    exit 1
      FinetuneError         ... found by fine-tuning (gpt/finetune/)

A command never picks its exit status from an error's wording: each type carries its ``exit_code``.
``run_command`` is the one place that turns an exception into that line and status.
"""
import os
import sys
import traceback
import warnings

from .progress import silence
from .stopping import SIGPIPE_STATUS


class UserError(Exception):
    """A problem the user can fix (bad arguments, wrong files); the CLI prints it as one line."""
    exit_code = 2


class TrainingError(UserError):
    """A UserError found by pretraining."""


class FinetuneError(UserError):
    """A UserError found by fine-tuning."""


class RunFailed(TrainingError):
    """The run started and could not go on (a non-finite loss or gradient); the CLI exits 1.

    A TrainingError too, so code that catches TrainingError around ``gpt.train`` still catches it."""
    exit_code = 1


# ----- how a command line reports them -----

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


def end_job(message, status):
    """Under ``mpiexec -n N``: end every process of the job, not only this one (gpt/parallel_run.py)."""
    from .parallel_run import end_job as end_every_rank      # (it imports this module)
    end_every_rank(message, status)


def _say(line):
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):                    # stderr gone as well: nothing left to tell
        pass


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    _say(f"warning: {message}")
