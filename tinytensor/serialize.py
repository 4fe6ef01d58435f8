"""Save and load dicts of arrays in the safetensors format, by our own code (never pickle).

A file is: 8 bytes little-endian header length N, N bytes of JSON header mapping each name to
{"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data that follows), then the raw
little-endian bytes. An optional "__metadata__" entry holds string pairs.

Reading trusts nothing in the file: only a regular file is opened, the header is parsed once, strictly
(no duplicate names, no NaN/Infinity, plain integers, known dtypes, tensors that tile the data exactly)
and the values checked are the values used; anything else is one ValueError naming the file and tensor.
"""
import json
import math
import os
import stat
import struct

import numpy as np

from . import backend
from .atomic import replacing

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
# NumPy has no bfloat16, so BF16 tensors (common in published checkpoints) load as float32; save writes
# BF16 for arrays of ml_dtypes' bfloat16 (what autocast computes in on CuPy)
STORED = {**DTYPES, "BF16": np.uint16}
MAX_HEADER = 100 * 1024 * 1024      # bytes of JSON header read at most
MAX_DIMS = 64                       # NumPy's limit on an array's dimensions
MAX_BYTES = 2 ** 62                 # no offset, dimension or array size beyond this


def save(tensors, path, metadata=None):
    """Write ``{name: array or Tensor}`` to ``path`` as safetensors (via a temporary file, then renamed)."""
    header, arrays, offset = {}, [], 0
    for name in tensors:
        if not isinstance(name, str):
            raise TypeError(f"save: tensor names must be strings, got {name!r}")
        if name == "__metadata__":
            raise ValueError("save: the name '__metadata__' is reserved by safetensors for the file's metadata; "
                             "rename that tensor (or pass metadata=...)")
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        array = backend.to_numpy(value.data if hasattr(value, "requires_grad") else value)
        array = np.asarray(array, order="C")     # (not ascontiguousarray: it turns 0-d into shape (1,))
        if str(array.dtype) == "bfloat16":       # ml_dtypes' bfloat16 (a CuPy bf16 array fetched to the host)
            header[name] = {"dtype": "BF16", "shape": list(array.shape),
                            "data_offsets": [offset, offset + array.nbytes]}
            arrays.append(array.view(np.uint16).astype("<u2", copy=False))
            offset += array.nbytes
            continue
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
    """The checked header of a safetensors file and where its data starts: ``(header, start)``.

    ``header`` maps each name to ``{"dtype": str, "shape": [int, ...], "data_offsets": [begin, end]}``
    (plus ``"__metadata__"``: a dict of strings, when the file has one), rebuilt from the values that were
    checked, so what is used is what was checked. Raises one ValueError line naming the file (and the
    tensor) for anything malformed: see ``_checked``.
    """
    path = os.fspath(path)
    with _open_regular(path) as f:
        return _read_header(f, path)


def _open_regular(path):
    """Open ``path`` for reading, refusing anything but a regular file before reading a byte (a FIFO
    would block, /dev/zero never ends); opened non-blocking so that the check itself cannot hang."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(f"{path} is a directory, not a safetensors file")
        raise ValueError(f"{path} is not a regular file (a device or a pipe?); give a safetensors file")
    return os.fdopen(fd, "rb")


def _read_header(f, path):
    size = os.fstat(f.fileno()).st_size
    first = f.read(8)
    if len(first) < 8:
        raise ValueError(f"{path}: not a safetensors file (only {len(first)} bytes)")
    (n,) = struct.unpack("<Q", first)
    if n > MAX_HEADER:
        raise ValueError(f"{path}: not a safetensors file (header length {n} is more than the "
                         f"{MAX_HEADER} bytes this reader accepts)")
    if n > size - 8:
        raise ValueError(f"{path}: not a safetensors file (header length {n} does not fit in {size} bytes)")
    return _checked(path, _strict_json(path, f.read(n)), size - 8 - n), 8 + n


class _Refused(ValueError):
    pass


def _strict_json(path, raw):
    """Parse the header: duplicate names and NaN/Infinity (not JSON) are refused, deep nesting too."""
    def unique(pairs):
        out = {}
        for key, value in pairs:
            if key in out:
                raise _Refused(f"the header gives {key!r} twice (two tensors or fields of one name)")
            out[key] = value
        return out

    def constant(name):
        raise _Refused(f"the header holds {name}, which is not JSON")
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=unique, parse_constant=constant)
    except _Refused as e:
        raise ValueError(f"{path}: not a valid safetensors file ({e})") from None
    except RecursionError:
        raise ValueError(f"{path}: not a safetensors file (its header is nested too deeply)") from None
    except ValueError:               # UnicodeDecodeError, JSONDecodeError, an int of thousands of digits
        raise ValueError(f"{path}: not a safetensors file (its header is not JSON)") from None


def _checked(path, header, data_size):
    """The header rebuilt from checked values: every entry an object of exactly dtype (a known name),
    shape (at most 64 non-negative ints) and data_offsets (two ints, begin <= end) whose byte count
    fits its shape; the tensors' bytes tile the data exactly (no overlap, no gap, nothing past the end
    or left over); ``__metadata__`` a dict of strings."""
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file (header is not a JSON object)")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise ValueError(f"{path}: __metadata__ must map names to strings, found {_short(info)}")
            out[name] = dict(info)
            continue
        where = f"{path}: tensor {name!r}"
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            fields = sorted(info) if isinstance(info, dict) else _short(info)
            raise ValueError(f"{where}: its entry must hold exactly dtype, shape and data_offsets, "
                             f"found {fields}")
        kind, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(kind, str) or kind not in STORED:
            raise ValueError(f"{where} has dtype {_short(kind)}, which tinytensor cannot read "
                             f"(it reads {', '.join(STORED)})")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_size(s) for s in shape):
            raise ValueError(f"{where}: shape {_short(shape)} is not a list of at most {MAX_DIMS} "
                             f"non-negative integers")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_size(o) for o in offsets) \
                or offsets[0] > offsets[1]:
            raise ValueError(f"{where}: data_offsets {_short(offsets)} is not [begin, end] with integers "
                             f"0 <= begin <= end")
        itemsize = np.dtype(STORED[kind]).itemsize
        if math.prod(max(s, 1) for s in shape) * itemsize > MAX_BYTES:
            raise ValueError(f"{where}: shape {shape} is too large for any array")
        begin, end = offsets
        if end - begin != itemsize * math.prod(shape):
            raise ValueError(f"{where} claims bytes {begin}..{end} ({end - begin} bytes) for shape {shape} "
                             f"of {kind} ({itemsize * math.prod(shape)} bytes; damaged?)")
        if end > data_size:
            raise ValueError(f"{where} claims bytes {begin}..{end}, past the end of the file's "
                             f"{data_size} data bytes (truncated or damaged?)")
        out[name] = {"dtype": kind, "shape": list(shape), "data_offsets": [begin, end]}
    cursor, last = 0, None
    for name, info in sorted(((k, v) for k, v in out.items() if k != "__metadata__"),
                             key=lambda item: item[1]["data_offsets"]):
        begin, end = info["data_offsets"]
        if begin < cursor:
            raise ValueError(f"{path}: tensor {name!r} (bytes {begin}..{end}) overlaps tensor {last!r} "
                             f"(which ends at byte {cursor})")
        if begin > cursor:
            after = f"after tensor {last!r}" if last is not None else "at the start of the data"
            raise ValueError(f"{path}: tensor {name!r} starts at byte {begin}, leaving a gap {after} "
                             f"(bytes {cursor}..{begin} belong to no tensor)")
        cursor, last = end, name
    if cursor != data_size:
        raise ValueError(f"{path}: {data_size - cursor} bytes after the last tensor belong to none "
                         f"(damaged, or not a safetensors file?)")
    return out


def _is_size(value):
    return type(value) is int and 0 <= value <= MAX_BYTES


def _short(value):
    text = repr(value) if isinstance(value, (str, float)) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load(path, device="cpu", mmap=False):
    """Read a safetensors file into ``{name: array}``. With ``mmap=True`` the arrays are read-only views
    of the file (no copy in memory until used); nothing in the file is ever executed. BF16 tensors come
    back as float32 (always a copy: NumPy has no bfloat16); ``save`` writes BF16 for bfloat16 arrays
    (ml_dtypes', as CuPy's bf16 arrays come to the host). A file that is not
    safetensors, or whose header is malformed in any way, raises one ValueError line naming the file."""
    path = os.fspath(path)
    out = {}
    with _open_regular(path) as f:
        header, start = _read_header(f, path)
        source = np.memmap(f, dtype=np.uint8, mode="r") if mmap else None
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
    """The ``__metadata__`` string dict of a safetensors file (empty when there is none); the whole header
    is checked as ``load`` checks it."""
    header, _ = read_header(path)
    return dict(header.get("__metadata__", {}))
