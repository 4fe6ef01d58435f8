"""all_reduce, broadcast, all_gather and reduce_scatter between two processes started by mpiexec.

float32/float64/int32/int64/uint8 arrays of odd sizes and 0-d, every op, every source rank, Tensors,
strided views and Fortran-ordered arrays (results written back in place), on host arrays (MPI) and on
fake GPU arrays through the NCCL engine with a fake NCCL, plus DDP on that fake GPU. The checks live in
scripts/check_collectives.py (they need the ranks); this test runs it and reads its verdict.
"""
from mpi_helpers import run_mpi


def test_collectives_on_two_ranks_host_and_fake_gpu():
    code, out, err = run_mpi("check_collectives.py")
    assert code == 0, f"exit {code}\n{out[-2000:]}\n{err[-4000:]}"
    assert "ok rank 0" in out and "ok rank 1" in out, out
