"""A rank that fails before MPI starts ends the whole job within seconds, with its own line (issue 26, 2).

Once, ranks other than 0 ended quietly ("rank 0 will say it") while rank 0 waited in MPI's start-up for
them, at 100% CPU and without a word, until killed; rank 0 failing early left the others waiting alike.
"""
import re

import pytest

from mpi_helpers import SCRIPTS
from test_gpt_train_mpi import SMALL, run, text  # noqa: F401  (text: a fixture)


@pytest.mark.parametrize("rank, how", [("1", "flag"), ("0", "flag"), ("1", "no-mpi4py")])
def test_a_rank_failing_before_mpi_starts_ends_the_job(tmp_path, text, rank, how):  # noqa: F811
    status, stdout, stderr = run(2, rank, how, "train", "--data", text, *SMALL, "--max-steps", 3,
                                 "--out", tmp_path / "run", script=SCRIPTS / "gpt_failing_early.py", timeout=40)
    assert status != 0, f"exit {status}\n{stdout[-2000:]}\n{stderr[-2000:]}"
    said = "unrecognized arguments: --bogus" if how == "flag" else "mpi4py cannot be imported"
    line = re.compile(f"^error: rank {rank} of 2: .*{re.escape(said)}", re.MULTILINE)
    assert line.search(stderr), stderr[-3000:]
    assert status == 2 if how == "flag" else status != 0
