"""The NCCL engine: GPU (CuPy) arrays between ranks, one GPU per rank, through ``cupy.cuda.nccl``.

NCCL needs every rank to hold the same unique id before it can connect them; rank 0 makes it and MPI (the
host engine, which also runs barrier and abort) carries it to the others, as llm.c does. NCCL's calls are
queued on the current CUDA stream, the one every tinytensor kernel runs on, so later work on that stream
sees their results without waiting on the host: a "non-blocking" call here returns nothing to wait for.
"""
import numpy as np

from ..backend import cupy_module

_ID_BYTES = 128          # NCCL_UNIQUE_ID_BYTES


class NcclEngine:
    """Selects this rank's GPU (local rank modulo the GPUs on its machine) and joins the NCCL communicator."""

    def __init__(self, host):
        cp = cupy_module()
        from cupy.cuda import nccl
        self.cp, self.nccl, self.host = cp, nccl, host
        self.rank, self.size, self.local_rank = host.rank, host.size, host.local_rank
        cp.cuda.Device(host.local_rank % cp.cuda.runtime.getDeviceCount()).use()
        self.comm = nccl.NcclCommunicator(host.size, self._shared_id(), host.rank)
        self._ops = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}
        self._types = {np.dtype(name): getattr(nccl, code) for name, code in (
            ("float16", "NCCL_FLOAT16"), ("float32", "NCCL_FLOAT32"), ("float64", "NCCL_FLOAT64"),
            ("int8", "NCCL_INT8"), ("uint8", "NCCL_UINT8"), ("int32", "NCCL_INT32"), ("uint32", "NCCL_UINT32"),
            ("int64", "NCCL_INT64"), ("uint64", "NCCL_UINT64"))}

    def _shared_id(self):
        """Rank 0's ``nccl.get_unique_id()`` on every rank. CuPy gives it as bytes (a tuple of small ints in
        older versions); it travels as 128 bytes plus one saying which of the two to rebuild."""
        raw = np.zeros(_ID_BYTES + 1, dtype=np.int8)
        if self.host.rank == 0:
            uid = self.nccl.get_unique_id()
            is_bytes = isinstance(uid, (bytes, bytearray))
            raw[:_ID_BYTES] = np.frombuffer(bytes(uid), np.int8) if is_bytes else np.array(uid, dtype=np.int8)
            raw[_ID_BYTES] = is_bytes
        self.host.broadcast(raw, 0, blocking=True)
        return raw[:_ID_BYTES].tobytes() if raw[_ID_BYTES] else tuple(int(v) for v in raw[:_ID_BYTES])

    def _type(self, buf):
        if buf.dtype not in self._types:
            raise TypeError(f"NCCL cannot move {buf.dtype} arrays; use one of "
                            f"{', '.join(sorted(str(t) for t in self._types))}")
        return self._types[buf.dtype]

    def _stream(self):
        return self.cp.cuda.get_current_stream().ptr

    def all_reduce(self, buf, op, blocking):
        self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._type(buf), self._ops[op], self._stream())

    def broadcast(self, buf, src, blocking):
        self.comm.bcast(buf.data.ptr, buf.size, self._type(buf), src, self._stream())

    def all_gather(self, send, recv, blocking):
        self.comm.allGather(send.data.ptr, recv.data.ptr, send.size, self._type(send), self._stream())

    def reduce_scatter(self, send, recv, op, blocking):
        self.comm.reduceScatter(send.data.ptr, recv.data.ptr, recv.size, self._type(send), self._ops[op],
                                self._stream())

    def barrier(self):
        self.cp.cuda.get_current_stream().synchronize()
        self.host.barrier()

    def abort(self, exit_code):
        try:
            self.comm.abort()          # free NCCL's kernels on this GPU before MPI ends the process
        finally:
            self.host.abort(exit_code)
