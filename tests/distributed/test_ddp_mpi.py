"""Two ranks with a global batch of B rows train a GPT exactly as one process with B rows does.

scripts/check_ddp.py trains a small GPT (dropout 0, AdamW, 20 steps) under mpiexec -n 2 with
DistributedDataParallel, each rank on half of every batch, once without and once with gradient
accumulation (no_sync on the first of two micro-batches), starting from different weights on each rank
(construction broadcasts rank 0's). Here one process trains the same model on the whole batches; losses
and final weights must agree to float32 rounding. The script also checks, on both ranks, that buckets hold
every trainable parameter once and no frozen one, that unused and rank-0-only parameters get the
gradient of the global batch's mean, and that ZeroRedundancyOptimizer (AdamW's state split over the ranks)
ends bit for bit where plain AdamW does, with a gathered state_dict equal to AdamW's.
"""
import sys

import numpy as np

from mpi_helpers import SCRIPTS, run_mpi


def test_two_ranks_match_one_process(tmp_path):
    out = tmp_path / "ddp.npz"
    code, stdout, stderr = run_mpi("check_ddp.py", out)
    assert code == 0, f"exit {code}\n{stdout[-2000:]}\n{stderr[-4000:]}"
    assert "ok rank 0" in stdout and "ok rank 1" in stdout, stdout
    sys.path.insert(0, str(SCRIPTS))
    try:
        import check_ddp
    finally:
        sys.path.remove(str(SCRIPTS))
    import gpt
    import tinytensor as tt
    tt.manual_seed(0)
    model = gpt.GPT(check_ddp.config())
    losses, _ = check_ddp.train(model)                    # one process, the whole batch, no DDP
    with np.load(out, allow_pickle=False) as got:
        for accum in (1, 2):
            np.testing.assert_allclose(got[f"losses_{accum}"], losses, rtol=1e-5, err_msg=f"losses, accum {accum}")
            for name, want in model.state_dict().items():
                have = got[f"w{accum}.{name}"]
                rel = np.linalg.norm(have - want) / np.linalg.norm(want)
                assert rel < 1e-5, f"{name} (accum {accum}): relative difference {rel:.2e}"
