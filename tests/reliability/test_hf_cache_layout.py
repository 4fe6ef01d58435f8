"""A sharded model in the Hugging Face cache layout loads (issue 26, 5).

In ``~/.cache/huggingface/hub/models--X/snapshots/<rev>/`` every file is a link into ``../../blobs/``.
Single-file models and linked config/tokenizer files loaded, while shards named by the index were refused
("... is a link that leads out of ..."): one rule for every file of a model folder now, names plain and
links followed.
"""
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

import gpt

FAMILIES = Path(__file__).resolve().parents[1] / "fixtures" / "families"


def cache_layout(source, root):
    """``source``'s files as the hub cache keeps them: blobs named by hash, a snapshot of relative links."""
    blobs, snapshot = root / "blobs", root / "snapshots" / "0123abcd"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copy(path, blobs / digest)
        os.symlink(os.path.join("..", "..", "blobs", digest), snapshot / path.name)
    return snapshot


def test_a_sharded_model_in_the_hub_cache_layout_loads(tmp_path):
    snapshot = cache_layout(FAMILIES / "qwen3_sharded", tmp_path / "models--tiny--qwen3")
    from_cache = gpt.load_hf(snapshot)
    direct = gpt.load_hf(FAMILIES / "qwen3_sharded")
    a, b = from_cache.state_dict(), direct.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
