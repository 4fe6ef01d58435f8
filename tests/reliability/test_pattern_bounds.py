"""A pattern with a huge repetition is refused before it is compiled, saying what is wrong (issue 26, 7).

``a{100000000}|[\\s\\S]`` in a tokenizer.json took ~6 GB while compiling, before any time limit, and the
error then blamed "out of memory (a smaller batch, context or model needs less)". The counts here are
big enough to be refused, small enough that compiling them would not hurt.
"""
import json

import pytest

import bpe
from bpe.patterns import Splitter

HUGE = [r"a{200000}|[\s\S]", r"(?:a{1000}){1000}|[\s\S]", r"(?:x{20,}){20000}|[\s\S]"]


@pytest.mark.parametrize("pattern", HUGE)
def test_a_huge_repetition_is_refused_before_compiling(pattern):
    with pytest.raises(ValueError, match="repeat"):
        Splitter(pattern)


def test_from_hf_names_the_repetition(tmp_path):
    byte_chars = bpe.bytes_to_unicode()
    spec = {
        "model": {"type": "BPE", "vocab": {byte_chars[b]: b for b in range(256)}, "merges": []},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": HUGE[0]}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "decoder": {"type": "ByteLevel"},
    }
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"a\{200000\}.*repeat"):
        bpe.from_hf(path)


@pytest.mark.parametrize("pattern", [bpe.GPT2_PATTERN, bpe.GPT4_PATTERN, bpe.LLAMA3_PATTERN, bpe.QWEN2_PATTERN,
                                     r"\p{L}{1,3}|[{}]{2}|\d{4}-\d{2}|x{,5}|\s+|[^\s]", r"a{1000}|\s+|[^\s]"])
def test_ordinary_counts_still_compile(pattern):
    Splitter(pattern)
