"""Save and load dicts of arrays in the safetensors format, by our own code (never pickle).

A file is: 8 bytes little-endian header length N, N bytes of JSON header mapping each name to
{"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data that follows), then the raw
little-endian bytes. An optional "__metadata__" entry holds string pairs.
"""
import json
import os
import struct

import numpy as np

from . import backend
from .atomic import replacing

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
# read only: NumPy has no bfloat16, so BF16 tensors (common in published checkpoints) load as float32
STORED = {**DTYPES, "BF16": np.uint16}
MAX_HEADER = 100 * 1024 * 1024


def save(tensors, path, metadata=None):
    """Write ``{name: array or Tensor}`` to ``path`` as safetensors (via a temporary file, then renamed)."""
    header, arrays, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        array = backend.to_numpy(value.data if hasattr(value, "requires_grad") else value)
        array = np.asarray(array, order="C")     # (not ascontiguousarray: it turns 0-d into shape (1,))
        if array.dtype not in NAMES:
            raise TypeError(f"save: tensor {name!r} has dtype {array.dtype}, which safetensors cannot hold here")
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        header[name] = {"dtype": NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array)
        offset += array.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)            # pad so the data starts 8-byte aligned
    with replacing(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for array in arrays:
            f.write(array.tobytes())


def read_header(path):
    """The parsed JSON header and where the data starts; ValueError when the file is not safetensors."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        first = f.read(8)
        if len(first) < 8:
            raise ValueError(f"{path}: not a safetensors file (only {len(first)} bytes)")
        (n,) = struct.unpack("<Q", first)
        if n > min(size - 8, MAX_HEADER):
            raise ValueError(f"{path}: not a safetensors file (header length {n} does not fit in {size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file (header is not a JSON object)")
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            kind = info["dtype"]
            shape = [int(s) for s in info["shape"]]
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry {info!r}") from None
        if kind not in STORED:
            raise ValueError(f"{path}: tensor {name!r} has dtype {kind!r}, which tinytensor cannot read "
                             f"(it reads {', '.join(STORED)})")
        dtype = np.dtype(STORED[kind])
        if any(s < 0 for s in shape) or not 0 <= begin <= end <= data_size \
                or end - begin != dtype.itemsize * int(np.prod(shape)):
            raise ValueError(f"{path}: tensor {name!r} claims bytes {begin}..{end} for shape {shape} of "
                             f"{info['dtype']}, but the file holds {data_size} data bytes (truncated or damaged?)")
    return header, 8 + n


def load(path, device="cpu", mmap=False):
    """Read a safetensors file into ``{name: array}``. With ``mmap=True`` the arrays are read-only views
    of the file (no copy in memory until used); nothing in the file is ever executed. BF16 tensors come
    back as float32 (always a copy: NumPy has no bfloat16); ``save`` never writes BF16."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a safetensors file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    header, start = read_header(path)
    out = {}
    source = np.memmap(path, dtype=np.uint8, mode="r") if mmap else None
    with open(path, "rb") as f:
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            if source is not None:
                raw = source[start + begin:start + end]
            else:
                raw = bytearray(end - begin)            # a writable buffer: the arrays made on it are too
                f.seek(start + begin)
                f.readinto(raw)
                raw = np.frombuffer(raw, dtype=np.uint8)
            array = tensor_from_bytes(raw, info)
            out[name] = backend.to_device(array, device) if device != "cpu" else array
    return out


def tensor_from_bytes(raw, info):
    """One tensor from its raw little-endian bytes ``raw`` (a uint8 array) and its checked header entry:
    a view of ``raw`` where NumPy has the dtype (on a little-endian machine), a new float32 array for BF16."""
    array = raw.view(np.dtype(STORED[info["dtype"]]).newbyteorder("<")).reshape(info["shape"])
    if info["dtype"] == "BF16":         # bfloat16 is the top half of a float32: widen by 16 zero bits
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def load_metadata(path):
    """The ``__metadata__`` string dict of a safetensors file (empty when there is none)."""
    header, _ = read_header(path)
    return dict(header.get("__metadata__", {}))
