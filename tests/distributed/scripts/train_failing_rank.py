"""``python -m gpt ARGS`` whose rank 1 raises at its third training step (tests/distributed/test_gpt_train_mpi.py).

    mpiexec -n 2 python tests/distributed/scripts/train_failing_rank.py train --max-steps 1000 ...

Rank 0 is then waiting in the step's all-reduce; the job must end with rank 1's one-line error.
"""
import importlib
import os
import sys

from gpt.__main__ import main

training = importlib.import_module("gpt.training.pretrain")      # the module of the full run
if os.environ.get("PMI_RANK") == "1":
    losses = training.calc_loss_batch
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("rank 1 failed on purpose at step 3")
        return losses(*args, **kwargs)
    training.calc_loss_batch = failing

sys.exit(main(sys.argv[1:]))
