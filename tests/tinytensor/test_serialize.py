"""tt.save / tt.load: the safetensors format by hand, round trips, and damaged or foreign files."""
import json
import os
import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as tt
from tinytensor import serialize

ARRAYS = {
    "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 3,
    "f64": np.linspace(-1, 1, 5),
    "f16": np.array([0.5, -2.0, 65504.0], dtype=np.float16),
    "i64": np.array([[-(2 ** 40), 7]], dtype=np.int64),
    "i32": np.array([-3, 2 ** 30], dtype=np.int32),
    "u8": np.array([0, 255, 17], dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(3.25, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
}
CODES = {"f32": "F32", "f64": "F64", "f16": "F16", "i64": "I64", "i32": "I32", "u8": "U8", "bool": "BOOL",
         "scalar": "F32", "empty": "F32"}


def test_round_trip_of_every_dtype_and_shape(tmp_path):
    path = tmp_path / "all.safetensors"
    tt.save(ARRAYS, path)
    for mmap in (False, True):
        loaded = tt.load(path, mmap=mmap)
        assert list(loaded) == list(ARRAYS)
        for name, array in ARRAYS.items():
            assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
            np.testing.assert_array_equal(loaded[name], array)


def test_byte_layout_parsed_by_hand(tmp_path):
    path = tmp_path / "layout.safetensors"
    tt.save(ARRAYS, path, metadata={"format": "pt", "step": 3})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])                  # 8-byte little-endian header length
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    assert header["__metadata__"] == {"format": "pt", "step": "3"}
    assert (8 + n) % 8 == 0                              # data starts aligned
    end = 0
    for name, array in ARRAYS.items():
        info = header[name]
        assert info["dtype"] == CODES[name] and info["shape"] == list(array.shape)
        begin, stop = info["data_offsets"]
        assert begin == end and stop - begin == array.nbytes
        end = stop
        little = array.astype(array.dtype.newbyteorder("<"))
        assert data[begin:stop] == little.tobytes(), name
    assert end == len(data)
    assert serialize.load_metadata(path) == {"format": "pt", "step": "3"}


def test_saves_tensors_and_reads_files_written_by_hand(tmp_path):
    path = tmp_path / "t.safetensors"
    tt.save({"w": tt.tensor([[1.0, 2.0]], requires_grad=True)}, path)
    np.testing.assert_array_equal(tt.load(path)["w"], np.array([[1.0, 2.0]], dtype=np.float32))
    # a file another writer made: no padding, no metadata, tensors listed out of order
    body = np.array([1, 2], dtype="<i4").tobytes() + np.array([0.5], dtype="<f8").tobytes()
    header = json.dumps({"b": {"dtype": "F64", "shape": [1], "data_offsets": [8, 16]},
                         "a": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    other = tmp_path / "other.safetensors"
    other.write_bytes(struct.pack("<Q", len(header)) + header + body)
    loaded = tt.load(other)
    np.testing.assert_array_equal(loaded["a"], [1, 2])
    np.testing.assert_array_equal(loaded["b"], [0.5])


def good_file(tmp_path):
    path = tmp_path / "good.safetensors"
    tt.save({"a": np.arange(4, dtype=np.float32), "b": np.ones((2, 2), dtype=np.float64)}, path)
    return path


@pytest.mark.parametrize("keep", [0, 5, 8, 20])
def test_a_truncated_file_is_a_value_error(tmp_path, keep):
    raw = good_file(tmp_path).read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[:keep] if keep < 20 else raw[:-3])
    with pytest.raises(ValueError, match="cut.safetensors"):
        tt.load(cut)


def test_a_lying_header_length_is_a_value_error(tmp_path):
    raw = good_file(tmp_path).read_bytes()
    liar = tmp_path / "liar.safetensors"
    liar.write_bytes(struct.pack("<Q", 10 ** 6) + raw[8:])
    with pytest.raises(ValueError, match="header length"):
        tt.load(liar)
    (n,) = struct.unpack("<Q", raw[:8])
    liar.write_bytes(struct.pack("<Q", n - 5) + raw[8:])            # cuts the JSON short
    with pytest.raises(ValueError, match="JSON"):
        tt.load(liar)


def rewrite_header(path, out, edit):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    edit(header)
    blob = json.dumps(header).encode()
    out.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n:])
    return out


@pytest.mark.parametrize("edit", [
    lambda h: h["b"].update(data_offsets=[16, 16 + 32 + 8]),      # runs past the end
    lambda h: h["a"].update(data_offsets=[-8, 8]),                # negative
    lambda h: h["a"].update(data_offsets=[8, 4]),                 # backwards
    lambda h: h["a"].update(shape=[5]),                           # shape disagrees with the byte count
    lambda h: h["a"].update(dtype="F99"),                         # unknown dtype
    lambda h: h.update(a=[1, 2]),                                 # not an entry at all
], ids=["past-end", "negative", "backwards", "shape", "dtype", "malformed"])
def test_bad_offsets_and_entries_are_value_errors_naming_the_tensor(tmp_path, edit):
    bad = rewrite_header(good_file(tmp_path), tmp_path / "bad.safetensors", edit)
    with pytest.raises(ValueError, match="tensor '[ab]'"):
        tt.load(bad)


def test_a_pickle_renamed_to_safetensors_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / f"model{protocol}.safetensors"
        path.write_bytes(pickle.dumps({"w": np.ones(3), "x": Boom()}, protocol=protocol))
        with pytest.raises(ValueError, match="not a safetensors file"):
            tt.load(path)
    assert not marker.exists()


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        tt.load(tmp_path / "nope.safetensors")
    with pytest.raises(IsADirectoryError, match=str(tmp_path.name)):
        tt.load(tmp_path)


def test_save_refuses_unsupported_dtypes_and_leaves_no_file(tmp_path):
    path = tmp_path / "c.safetensors"
    with pytest.raises(TypeError, match="'z'.*complex"):
        tt.save({"z": np.ones(2, dtype=np.complex64)}, path)
    assert not path.exists()


def test_save_replaces_an_existing_file_atomically(tmp_path):
    path = good_file(tmp_path)
    tt.save({"only": np.zeros(1, dtype=np.float32)}, path)
    assert list(tt.load(path)) == ["only"]
    assert [p.name for p in tmp_path.iterdir()] == ["good.safetensors"]


def test_model_state_round_trips_through_a_file(tmp_path):
    from tinytensor import nn
    tt.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    tt.save(model.state_dict(), tmp_path / "m.safetensors")
    tt.manual_seed(1)
    other = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    other.load_state_dict(tt.load(tmp_path / "m.safetensors"))
    x = tt.randn(2, 3)
    np.testing.assert_array_equal(model(x).data, other(x).data)


def _bf16_file(path, bits, shape, extra=None):
    """A safetensors file holding one BF16 tensor with these raw 16-bit patterns (as published checkpoints do)."""
    data = np.asarray(bits, dtype="<u2").tobytes()
    header = {"w": {"dtype": "BF16", "shape": list(shape), "data_offsets": [0, len(data)]}}
    header.update(extra or {})
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


@pytest.mark.parametrize("mmap", [False, True])
def test_bf16_tensors_load_as_float32(tmp_path, mmap):
    # 1.0, -2.0, 0.15625, the bf16 nearest 1/3 (0x3EAB = 0.333984375), +inf, the largest finite bf16
    bits = [0x3F80, 0xC000, 0x3E20, 0x3EAB, 0x7F80, 0x7F7F]
    expected = np.array([1.0, -2.0, 0.15625, 0.333984375, np.inf, 3.3895313892515355e38], dtype=np.float32)
    loaded = tt.load(_bf16_file(tmp_path / "bf16.safetensors", bits, (2, 3)), mmap=mmap)["w"]
    assert loaded.dtype == np.float32 and loaded.shape == (2, 3)
    np.testing.assert_array_equal(loaded.ravel(), expected)
    # every bf16 pattern is the top half of the float32 it stands for
    np.testing.assert_array_equal(loaded.ravel().view(np.uint32) >> 16, np.array(bits, dtype=np.uint32))


def test_bf16_byte_count_is_checked_and_unknown_dtypes_are_named(tmp_path):
    short = _bf16_file(tmp_path / "short.safetensors", [0x3F80, 0x3F80], (3,))
    with pytest.raises(ValueError, match="tensor 'w'.*BF16"):
        tt.load(short)
    bad = rewrite_header(good_file(tmp_path), tmp_path / "f8.safetensors", lambda h: h["a"].update(dtype="F8_E4M3"))
    with pytest.raises(ValueError, match="tensor 'a' has dtype 'F8_E4M3'.*cannot read"):
        tt.load(bad)


# ---- hostile headers (issue 15 item 5): one ValueError naming the file (and the tensor), never a traceback ----

def _raw_file(path, header_text, data=b""):
    blob = header_text.encode("utf-8") if isinstance(header_text, str) else header_text
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


A16 = np.arange(4, dtype="<f4").tobytes()                    # 16 data bytes: tensor "a" of shape [4]


def _entry(dtype='"F32"', shape="[4]", offsets="[0, 16]"):
    return f'{{"dtype": {dtype}, "shape": {shape}, "data_offsets": {offsets}}}'


HOSTILE = {
    'deep nesting': ('{"a":' * 50_000 + "1" + "}" * 50_000, b"", "nested too deeply"),
    'Infinity': ('{"a": %s}' % _entry(offsets="[0, Infinity]"), A16, "Infinity"),
    'NaN': ('{"a": %s}' % _entry(offsets="[NaN, 16]"), A16, "NaN"),
    'list dtype': ('{"a": %s}' % _entry(dtype='["F32"]'), A16, "tensor 'a'.*dtype"),
    'null dtype': ('{"a": %s}' % _entry(dtype="null"), A16, "tensor 'a'.*dtype"),
    'float dim': ('{"a": %s}' % _entry(shape="[4.0]"), A16, "tensor 'a'.*shape"),
    'fractional dim': ('{"a": %s}' % _entry(shape="[2, 1.5]"), A16, "tensor 'a'.*shape"),
    'bool dim': ('{"a": %s}' % _entry(shape="[true, 4]"), A16, "tensor 'a'.*shape"),
    'string shape': ('{"a": %s}' % _entry(shape='"4"'), A16, "tensor 'a'.*shape"),
    'negative dim': ('{"a": %s}' % _entry(shape="[-4]"), A16, "tensor 'a'.*shape"),
    'huge dim beside 0': ('{"a": %s}' % _entry(shape="[0, 100000000000000000000000]"), b"", "tensor 'a'.*shape"),
    '70 dims': ('{"a": %s}' % _entry(shape="[" + ",".join(["1"] * 70) + "]"), A16, "tensor 'a'.*shape"),
    'string offsets': ('{"a": %s}' % _entry(offsets='["0", "16"]'), A16, "tensor 'a'.*data_offsets"),
    'float offset': ('{"a": %s}' % _entry(offsets="[0.0, 16]"), A16, "tensor 'a'.*data_offsets"),
    'bool offset': ('{"a": %s}' % _entry(offsets="[false, 16]"), A16, "tensor 'a'.*data_offsets"),
    'three offsets': ('{"a": %s}' % _entry(offsets="[0, 16, 32]"), A16, "tensor 'a'.*data_offsets"),
    '1e400 offset': ('{"a": %s}' % _entry(offsets="[0, 1e400]"), A16, "tensor 'a'"),
    'no offsets': ('{"a": {"dtype": "F32", "shape": [4]}}', A16, "tensor 'a'.*data_offsets"),
    'unknown key': ('{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "extra": 1}}', A16,
                    "tensor 'a'.*extra"),
    'duplicate key': ('{"a": %s, "a": %s}' % (_entry(), _entry()), A16, "'a' twice"),
    'same bytes': ('{"a": %s, "b": %s}' % (_entry(), _entry()), A16, "tensor '[ab]'.*overlap"),
    'overlap': ('{"a": %s, "b": %s}' % (_entry(), _entry(shape="[2]", offsets="[8, 16]")), A16,
                "tensor '[ab]'.*overlap"),
    'gap': ('{"a": %s, "b": %s}' % (_entry(shape="[2]", offsets="[0, 8]"), _entry(shape="[1]", offsets="[12, 16]")),
     A16, "tensor 'b'.*gap"),
    'trailing bytes': ('{"a": %s}' % _entry(shape="[2]", offsets="[0, 8]"), A16, "8 bytes after the last tensor"),
    'past the end': ('{"a": %s}' % _entry(offsets="[0, 24]", shape="[6]"), A16, "tensor 'a'.*past the end"),
    'unknown dtype': ('{"a": %s}' % _entry(dtype='"F8"'), A16, "tensor 'a'.*dtype 'F8'"),
    'metadata value': ('{"__metadata__": {"k": 1}, "a": %s}' % _entry(), A16, "__metadata__"),
    'metadata list': ('{"__metadata__": [1], "a": %s}' % _entry(), A16, "__metadata__"),
    'entry not an object': ('{"a": 5}', A16, "tensor 'a'"),
    'header a list': ('[1, 2]', b"", "not a JSON object"),
    'truncated data': ('{"a": %s}' % _entry(), A16[:8], "tensor 'a'"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_malformed_headers_are_one_value_error(tmp_path, case):
    header, data, message = HOSTILE[case]
    path = _raw_file(tmp_path / "hostile.safetensors", header, data)
    for mmap in (False, True):
        with pytest.raises(ValueError, match=message) as info:
            tt.load(path, mmap=mmap)
        assert "hostile.safetensors" in str(info.value) and "\n" not in str(info.value)


def test_a_header_length_beyond_the_cap_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(serialize, "MAX_HEADER", 64)
    path = tmp_path / "a.safetensors"
    tt.save({f"name{i}": np.zeros(1, np.float32) for i in range(5)}, path)       # a header of ~200 bytes
    with pytest.raises(ValueError, match="header length .* more than"):
        tt.load(path)


def test_a_device_or_pipe_is_refused_without_reading(tmp_path):
    with pytest.raises(ValueError, match="/dev/zero.*not a regular file"):
        tt.load("/dev/zero")
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe.safetensors.*not a regular file"):    # would block on open
        tt.load(fifo)


def test_the_values_checked_are_the_values_used(tmp_path):
    # a header whose entries were checked once must not be parsed again differently: read_header gives
    # plain ints and lists, whatever the JSON spelled (here 16 written as 1.6e1 would be refused)
    path = good_file(tmp_path)
    header, start = serialize.read_header(path)
    for name in ("a", "b"):
        info = header[name]
        assert type(info["data_offsets"][0]) is int and all(type(s) is int for s in info["shape"])
    assert start % 8 == 0


def test_save_refuses_the_reserved_name_and_non_string_names(tmp_path):
    path = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match="__metadata__.*reserved"):
        tt.save({"__metadata__": np.ones(2, np.float32)}, path)
    with pytest.raises(TypeError, match="names must be strings"):
        tt.save({3: np.ones(2, np.float32)}, path)
    assert not path.exists()


_JSON_ATOMS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=False),
                        st.text(max_size=6))
_JSON = st.recursive(_JSON_ATOMS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fuzzed_headers_load_cleanly_or_raise_one_value_error(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    arrays = {"a": np.arange(4, dtype=np.float32), "b": np.ones((2, 3), dtype=np.int16),
              "c": np.zeros((0, 2), dtype=np.float64)}
    path = folder / "f.safetensors"
    tt.save(arrays, path, metadata={"k": "v"})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    for _ in range(data.draw(st.integers(0, 3))):
        name = data.draw(st.sampled_from(sorted(header)))
        where = data.draw(st.sampled_from(["entry", "dtype", "shape", "data_offsets", "offset", "dim",
                                           "reshape", "retype"]))
        value = data.draw(_JSON)
        entry = header[name]
        if where in ("reshape", "retype") and name != "__metadata__" and isinstance(entry, dict):
            if where == "reshape":          # still valid: the same element count in another shape
                entry["shape"] = data.draw(st.sampled_from([[4], [2, 2], [1, 4, 1], [6], [3, 2], [0, 2], [0]]))
            else:                           # still valid when the item size stays the same
                entry["dtype"] = data.draw(st.sampled_from(["F32", "I32", "I16", "F16", "BF16", "F64", "I64"]))
        elif where == "entry" or not isinstance(entry, dict):
            header[name] = value
        elif where in ("dtype", "shape", "data_offsets"):
            entry[where] = value
        elif where == "offset" and isinstance(entry.get("data_offsets"), list) and entry["data_offsets"]:
            entry["data_offsets"][data.draw(st.integers(0, len(entry["data_offsets"]) - 1))] = \
                data.draw(st.integers(-4, 80))
        elif where == "dim" and isinstance(entry.get("shape"), list) and entry["shape"]:
            entry["shape"][data.draw(st.integers(0, len(entry["shape"]) - 1))] = data.draw(st.integers(-1, 7))
    text = json.dumps(header)
    if data.draw(st.integers(0, 3)) == 0:            # and sometimes a raw byte flipped in the JSON text
        at = data.draw(st.integers(0, len(text) - 1))
        text = text[:at] + data.draw(st.sampled_from(list('{}[],:"0-9.e tfnNI\\'))) + text[at + 1:]
    path.write_bytes(struct.pack("<Q", len(text.encode())) + text.encode() + body[:data.draw(
        st.sampled_from([len(body), len(body) - 1, 0]))])
    for mmap in (False, True):
        try:
            loaded = tt.load(path, mmap=mmap)
        except ValueError as e:
            assert "f.safetensors" in str(e)
            continue
        checked, _ = serialize.read_header(path)
        for name, array in loaded.items():       # a clean load: every array is what its entry says
            info = checked[name]
            assert list(array.shape) == list(info["shape"])
            begin, end = info["data_offsets"]
            assert array.nbytes == end - begin or info["dtype"] == "BF16"


def test_bfloat16_arrays_are_saved_as_bf16_and_load_as_float32(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 arrays need ml_dtypes (as on a GPU with CuPy 14)")
    values = np.array([[1.0, -2.5, 3.140625], [0.0, 1e30, -1e-30]], dtype=np.float32)
    path = tmp_path / "bf16.safetensors"
    tt.save({"w": values.astype(ml_dtypes.bfloat16), "f": values}, path)
    header, _ = serialize.read_header(path)
    assert header["w"]["dtype"] == "BF16" and header["w"]["shape"] == [2, 3]
    loaded = tt.load(path)
    assert loaded["w"].dtype == np.float32
    np.testing.assert_array_equal(loaded["w"], values.astype(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(loaded["f"], values)
