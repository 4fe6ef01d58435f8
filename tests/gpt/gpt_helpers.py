"""Helpers for the gpt tests: small configs and a way to run ``python -m gpt`` in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import tinytensor as tt
from gpt import GPT, GPTConfig

REPO = Path(__file__).resolve().parents[2]


def small_cfg(**over):
    base = dict(vocab_size=97, context_length=16, emb_dim=32, n_layers=2, n_heads=4, drop_rate=0.0,
                qkv_bias=True, tie_weights=False)
    base.update(over)
    return GPTConfig(**base)


def small_model(seed=0, **over):
    tt.manual_seed(seed)
    return GPT(small_cfg(**over))


def run_cli(*args, cwd=None, timeout=120, **kw):
    """``python -m gpt ARGS`` with the repository first on the path; returns CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "gpt", *map(str, args)], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, **kw)


def cli_env():
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                PYTHONUNBUFFERED="1")


_ = np
