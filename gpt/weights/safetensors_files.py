"""The weight files of a Hugging Face model folder, one file or many, read lazily and trusted for nothing.

    model.safetensors                     every tensor in one file, or
    model.safetensors.index.json          {"weight_map": {tensor name: shard file name}, "metadata": ...}
    model-00001-of-00002.safetensors ...  the shards it names

Every header is read and checked first (tinytensor.serialize.read_header), so names and shapes can be
compared with the model's config before any tensor is read or any memory is taken. A shard name read
from the index is untrusted: it must be a plain file name in the folder (gpt/files.py), and each shard
must hold exactly the tensors the index gives it. Data is then memory-mapped copy-on-write: float32
tensors are used where they lie, BF16 and F16 ones are widened to float32 (a copy).
"""
import json
import os

import numpy as np

from tinytensor import serialize

from .. import files

SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"
_FLOATS = ("F32", "BF16", "F16", "F64")


def check_float(path, name, info):
    """Refuse tensor ``name`` of ``path`` (its safetensors header entry ``info``) unless it is floating point:
    an integer or boolean weight would be cast in silence (every loader of a model folder calls this)."""
    if info["dtype"] not in _FLOATS:
        raise ValueError(f"{path}: tensor {name} is {info['dtype']}; model weights must be floating point "
                         f"({', '.join(_FLOATS)})")


def as_float32(array, path, name):
    """``array`` as float32 (itself when it is); an F64 value beyond float32's range is refused, not made inf."""
    if array.dtype == np.float32:
        return array
    with np.errstate(over="ignore"):
        out = array.astype(np.float32)
    if array.dtype == np.float64 and not np.isfinite(out).all():
        lost = np.isinf(out) & np.isfinite(array)
        if lost.any():
            raise ValueError(f"{path}: tensor {name} holds {array[lost].flat[0]:g} (F64), beyond float32's range "
                             "(about 3.4e38): it would become inf")
    return out


class WeightFiles:
    """The tensors of ``folder``: ``shapes`` ({name: shape}) known at once, ``array(name)`` read on demand."""

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self._where = {}                      # name -> (path, header entry, data start)
        self._maps = {}                       # path -> the file's memory map, made on first use
        single, index = os.path.join(self.folder, SINGLE), os.path.join(self.folder, INDEX)
        if os.path.lexists(single):           # as transformers does: the single file first
            files.check_regular(single, what=SINGLE)
            self._add(single)
            self.description = single
        elif os.path.lexists(index):
            self._read_index(index)
            self.description = index
        else:
            raise FileNotFoundError(f"{self.folder} holds neither {SINGLE} nor {INDEX} (a Hugging Face model "
                                    "folder has one of them)")
        self.shapes = {name: tuple(info["shape"]) for name, (_, info, _) in self._where.items()}

    def _add(self, path, only=None):
        """Every tensor of the safetensors file ``path`` (``only``: the names it must hold, exactly)."""
        header, start = serialize.read_header(path)
        names = [k for k in header if k != "__metadata__"]
        if only is not None:
            missing = sorted(set(only) - set(names))
            extra = sorted(set(names) - set(only))
            if missing or extra:
                what = f"lacks {missing[0]}" if missing else f"holds {extra[0]}, which the index does not give it"
                raise ValueError(f"{path} does not match {INDEX}: it {what}")
        for name in names:
            if name in self._where:
                raise ValueError(f"{path}: tensor {name} is also in {self._where[name][0]}")
            info = header[name]
            check_float(path, name, info)
            self._where[name] = (path, info, start)

    def _read_index(self, index):
        raw = files.read_bytes(index, files.MAX_JSON, INDEX)
        try:
            spec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ValueError(f"{index} is not valid JSON ({str(e)[:100]})") from None
        weight_map = spec.get("weight_map") if isinstance(spec, dict) else None
        if not isinstance(weight_map, dict) or not weight_map \
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
            raise ValueError(f"{index}: expected an object with a \"weight_map\" of tensor name -> file name")
        by_shard = {}
        for name, shard in weight_map.items():
            by_shard.setdefault(shard, []).append(name)
        paths = {shard: files.member(self.folder, shard, index, what="a weight shard", links_out=True)
                 for shard in by_shard}          # plain names in the folder, all checked first; links followed
        #                                          as for config.json (the hub cache links into ../../blobs/)
        for shard, names in by_shard.items():
            self._add(paths[shard], only=names)

    def array(self, name):
        """Tensor ``name`` as a float32 array: a copy-on-write memory map of the file where it is float32."""
        path, info, start = self._where[name]
        begin, end = info["data_offsets"]
        if path not in self._maps:
            self._maps[path] = np.memmap(path, dtype=np.uint8, mode="c")
        source = self._maps[path]
        return as_float32(serialize.tensor_from_bytes(source[start + begin:start + end], info), path, name)
