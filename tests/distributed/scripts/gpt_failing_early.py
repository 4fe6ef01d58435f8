"""``python -m gpt ARGS`` where one rank fails before MPI starts (tests/distributed/test_early_failures_mpi.py).

    mpiexec -n 2 python tests/distributed/scripts/gpt_failing_early.py RANK HOW train ...

HOW: "flag" (that rank's command line gets --bogus) or "no-mpi4py" (mpi4py cannot be imported there).
The other ranks start normally and wait in MPI's start-up for the failing one.
"""
import os
import sys

from gpt.__main__ import main

rank, how, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if os.environ.get("PMI_RANK") == rank:
    if how == "flag":
        argv = argv + ["--bogus"]
    elif how == "no-mpi4py":
        sys.modules["mpi4py"] = None                      # "import mpi4py" raises ImportError
sys.exit(main(argv))
