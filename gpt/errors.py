"""The errors a command line reports as one line, and the exit status each one gives.

    UserError               a problem the user can fix: a bad flag, a missing or damaged file   exit 2
      TrainingError         ... found by pretraining (gpt/training/)
        RunFailed           the run itself went wrong: its loss or gradient became NaN or Inf    exit 1
      FinetuneError         ... found by fine-tuning (gpt/finetune/)

A command never picks its exit status from an error's wording: each type carries its ``exit_code``.
``run_command`` (gpt/cli/report.py) is the one place that turns an exception into that line and status.
"""


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
