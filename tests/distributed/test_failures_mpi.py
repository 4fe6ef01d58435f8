"""One rank failing ends the whole job, with that rank's message, instead of leaving the others waiting.

Rank 0 waits in an all-reduce that rank 1 never joins: rank 1 raises (the excepthook installed by init()
prints the traceback, then a one-line "error: rank 1 of 2: ..." and aborts MPI), calls dist.abort, or is
killed (mpiexec notices and ends the others). A job still running after the timeout fails the test.
"""
import re

import pytest

from mpi_helpers import run_mpi


@pytest.mark.parametrize("mode, code, line", [
    ("raise", 1, "error: rank 1 of 2: ValueError: rank one failed on purpose"),
    ("abort", 3, "error: rank 1 of 2: rank one gave up on purpose"),
    ("kill", None, None),
])
def test_a_failing_rank_takes_the_job_down(mode, code, line):
    status, out, err = run_mpi("check_failure.py", mode, timeout=60)
    assert status != 0 and "went on" not in out, (status, out, err)
    if code is not None:
        assert status == code, (status, err)
    if line is not None:
        assert re.search(f"^{re.escape(line)}$", err, re.MULTILINE), err      # the whole line, and only the first line
