"""The MPI engine: host (NumPy) arrays between the processes ``mpiexec`` started, through mpi4py.

Imported only by ``init()`` under an MPI launcher, so ``import tinytensor`` never needs mpi4py. Arrays
reach it contiguous and 1-D (the caller made sure); mpi4py reads their dtype and passes their memory to MPI
without copies. Non-blocking calls return MPI requests; the caller waits on them.
"""
import os
import sys
import time


class MpiEngine:
    """COMM_WORLD's processes, on a communicator of our own so a user's own MPI messages never mix with ours."""

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise RuntimeError("tinytensor.distributed: this process was started by an MPI launcher but mpi4py "
                               f"cannot be imported ({exc}); pip install 'tinytensor[mpi]'") from None
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD.Dup()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)     # the ranks on this machine
        self.local_rank = node.Get_rank()
        node.Free()
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def all_reduce(self, buf, op, blocking):
        if blocking:
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, self._ops[op])
            return None
        return self.comm.Iallreduce(self.MPI.IN_PLACE, buf, self._ops[op])

    def broadcast(self, buf, src, blocking):
        if blocking:
            self.comm.Bcast(buf, root=src)
            return None
        return self.comm.Ibcast(buf, root=src)

    def all_gather(self, send, recv, blocking):
        self.comm.Allgather(send, recv)

    def reduce_scatter(self, send, recv, op, blocking):
        self.comm.Reduce_scatter_block(send, recv, self._ops[op])

    def barrier(self):
        self.comm.Barrier()

    def abort(self, exit_code):
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.2)     # the launcher stops forwarding output once it hears of the abort: let it catch up
        self.MPI.COMM_WORLD.Abort(exit_code)    # tells the launcher to end every process of the job...
        os._exit(exit_code)                     # ...but MPICH may return before it has: never go on
