"""Ending a job from a rank that has not started MPI (its launcher's environment is all it has).

A rank that fails before ``init()`` cannot call MPI's abort, and ending quietly is not enough: the other
ranks may already wait in MPI's start-up for it, for ever. This tells the launcher instead: Hydra (MPICH's
mpiexec) takes an ``abort`` command on the process's PMI socket (``PMI_FD``) and ends every rank with the
given status; where there is no such socket (Open MPI, Slurm), the process ends itself with SIGTERM, which
every launcher answers by ending the whole job.
"""
import os
import signal
import time

_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_NTASKS")


def launched_rank():
    """This process's rank as its launcher's environment says, before MPI starts (0 when it says nothing)."""
    return _number(_RANK_VARS, 0)


def launched_size():
    """How many processes the launcher started, before MPI starts (1 when it says nothing)."""
    return _number(_SIZE_VARS, 1)


def end_job(exit_code):
    """End every process of this job with ``exit_code`` (this one included); does not return."""
    fd = os.environ.get("PMI_FD", "")
    if fd.isdigit():
        time.sleep(0.5)                          # let the launcher pass on this rank's error line first: the
        #                                          line and the abort travel apart, and the abort can win
        try:
            os.write(int(fd), f"cmd=abort exitcode={int(exit_code)}\n".encode())
            time.sleep(5.0)                      # the launcher ends us in a few milliseconds
        except OSError:
            pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5.0)
    os._exit(exit_code)


def _number(names, default):
    for name in names:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default
