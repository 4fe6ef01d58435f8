"""Shared by examples 09-11: the small GPT they start from, trained once and cached.

Not an example itself. 08_train_tiny_gpt.py shows the training loop (gpt.train_simple) on a model it
keeps to itself; 09-11 need a model that already knows some English, so the first of them to run
trains RECIPE quietly with the full run of `python -m gpt train` (gpt.train, under a minute on a 2-core
CPU) into the cache folder (gpt/data/cache.py, e.g. ~/.cache/tinytensor/examples/), and every later run
reuses it. A run stopped early (Ctrl-C saves) is finished by the next one, which says so. The
folder's name holds a digest of the recipe and of the corpus, so a change to either trains a new one.
Pass --checkpoint DIR to 09-11 to start from another model instead; with --quick (CI) they train a
throwaway model for a few steps in a temporary folder.
"""
import io
import json
import sys
import time
from pathlib import Path

import gpt
from gpt.data import cache
from gpt.data import default_corpus, text_digest

# the shared base model: 2 blocks of width 64 over windows of 160 tokens (room for the instruction
# prompts of example 11), a 1,024-token BPE vocabulary trained on the same text, 800 steps of 8 windows.
# For the same time a narrower model that takes more steps learns more than a wider one with fewer.
RECIPE = dict(preset="tiny", vocab_size=1024, context_length=160, emb_dim=64, n_layers=2, n_heads=4,
              max_steps=800, batch_size=8, lr=3e-3, warmup_steps=40, eval_every=200, eval_batches=4,
              save_every=800, sample_prompt="The", sample_tokens=40, seed=1234)
QUICK = dict(RECIPE, vocab_size=384, emb_dim=32, n_layers=1, max_steps=3, batch_size=4, eval_every=3,
             eval_batches=1, save_every=3, sample_tokens=4)


def cached_folder():
    """Where the base model of RECIPE on this Python's corpus lives in the cache."""
    key = cache.digest((json.dumps(RECIPE, sort_keys=True) + text_digest(default_corpus())).encode())
    return Path(cache.cache_dir("examples", f"tiny-base-{key}"))


def trained_steps(folder):
    """The step a checkpoint folder holds (0 when it holds none)."""
    try:
        return json.loads((Path(folder) / "checkpoint.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


def train_recipe(folder, recipe=RECIPE, stream=None):
    """Train (or finish training) ``recipe`` into ``folder``; returns gpt.train's summary."""
    resume = 0 < trained_steps(folder) < recipe["max_steps"]
    config = gpt.TrainConfig(out=str(folder), **recipe)
    return gpt.train(config, resume=resume, overwrite=not resume, given=tuple(recipe) if resume else (),
                     stream=stream)


def base_checkpoint(checkpoint=None, quick=False, scratch=None):
    """The folder of the model an example starts from: ``checkpoint`` when given; with ``quick`` a model
    trained for 3 steps into ``scratch``; else the cached base model, trained first when missing."""
    if checkpoint is not None:
        if not (Path(checkpoint) / "checkpoint.json").exists():
            sys.exit(f"error: --checkpoint {checkpoint} holds no checkpoint.json (a folder from `python -m gpt train`)")
        print(f"base model: {checkpoint}")
        return Path(checkpoint)
    if quick:
        folder = Path(scratch) / "base"
        train_recipe(folder, QUICK, stream=io.StringIO())
        print(f"base model: a throwaway one trained for {QUICK['max_steps']} steps (--quick)")
        return folder
    folder = cached_folder()
    done, total = trained_steps(folder), RECIPE["max_steps"]
    if done < total:
        steps = f"steps {done + 1}-{total} of {total}; an earlier run stopped at {done}" if done else f"{total} steps"
        print(f"training the shared base model once ({steps}, under a minute on 2 cores);\n"
              f"  cached in {folder} for the next runs")
        t0 = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "train.log", "a" if done else "w", encoding="utf-8") as log:
            summary = train_recipe(folder, RECIPE, stream=log)
        history = summary["history"]
        print(f"  {summary['step'] - done} steps in {time.perf_counter() - t0:.0f}s: validation loss "
              f"{history[0]['val_loss']:.2f} at step 0 -> {history[-1]['val_loss']:.2f} at step {history[-1]['step']}")
    else:
        print(f"base model: the shared one in {folder}")
    return folder
