"""A rank that fails while the others wait in a collective (run by tests/distributed/test_failures_mpi.py).

    mpiexec -n 2 python tests/distributed/scripts/check_failure.py raise|abort|kill

Rank 1 raises an exception nobody catches, calls dist.abort, or is killed by SIGKILL, while rank 0 waits
in an all-reduce that rank 1 never joins. The whole job must end, not hang, with rank 1's message.
"""
import os
import signal
import sys

import numpy as np

import tinytensor.distributed as dist

dist.init()
if dist.rank() == 1:
    mode = sys.argv[1]
    if mode == "raise":
        raise ValueError("rank one failed on purpose\nsecond line")
    if mode == "abort":
        dist.abort("rank one gave up on purpose", exit_code=3)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
dist.all_reduce(np.ones(3))
print(f"rank {dist.rank()} went on", flush=True)
