"""08 - Train a tiny GPT from scratch, on the English text that ships with Python, in under a minute.

This calls the same training loop as `python -m gpt train` (gpt/train.py: read it next to this):
a BPE tokenizer is trained on the text, the text becomes windows of token ids, and each step runs
the model on a batch, takes the cross-entropy of its next-token predictions, backpropagates, clips
the gradient norm and takes an AdamW step, with a warmup-then-cosine learning rate.

What to look at:
  * The first loss is close to ln(vocab size): an untrained model spreads its guess evenly over the
    whole vocabulary. Every nat below that is something learned.
  * Train and validation loss fall together: at this size and length the model is far from
    memorising (the two would separate if it were).
  * The samples (at each evaluation): random bytes first, then common tokens, spaces and newlines in
    plausible places, then words and short phrases. A minute of CPU buys structure, not sense;
    `python -m gpt train` (a bigger model, a few minutes) buys more.

The recipe is the one examples 09-11 start from (examples/_tiny_base.py): by default the checkpoint
goes to their cache folder, so after this example they start from the model you watched being
trained. The context of 160 tokens leaves room for the instruction prompts of example 11.

Training stops after the recipe's steps or --budget seconds (default 50), whichever comes first; a
run stopped by the budget is finished by the next example that needs the model.

Run:  python examples/08_train_tiny_gpt.py [--quick] [--budget S] [--out DIR]
"""
import argparse
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
from _tiny_base import QUICK, RECIPE, cached_folder, train_recipe  # noqa: E402  (examples/_tiny_base.py)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a handful of steps of a smaller model (for CI)")
    parser.add_argument("--budget", type=float, default=50.0,
                        help="seconds of training at most: then stop as Ctrl-C would, saving (default 50)")
    parser.add_argument("--out", type=Path, default=None,
                        help="checkpoint folder (default: the cache folder examples 09-11 read, see _tiny_base.py)")
    args = parser.parse_args()
    recipe = dict(QUICK, eval_every=2, sample_tokens=12) if args.quick else RECIPE
    out = args.out or cached_folder()
    vocab = recipe["vocab_size"]
    print(f"{recipe['n_layers']} blocks of width {recipe['emb_dim']}, windows of {recipe['context_length']} tokens, "
          f"{recipe['max_steps']} steps of {recipe['batch_size']} windows; checkpoint: {out}")
    print(f"untrained, a model's loss is about ln({vocab}) = {math.log(vocab):.2f}: a uniform guess\n")
    # The time budget: gpt.train treats SIGTERM like a first Ctrl-C (finish the step, save, stop).
    previous = signal.signal(signal.SIGTERM, lambda *_: None)   # ignore it should it come outside the loop
    timer = threading.Timer(args.budget, os.kill, (os.getpid(), signal.SIGTERM))
    timer.daemon = True
    t0 = time.perf_counter()
    timer.start()
    try:
        summary = train_recipe(out, recipe)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    wall = time.perf_counter() - t0
    first, last = summary["history"][0], summary["history"][-1]
    print(f"\n{summary['step']} steps in {wall:.0f}s" + (f" (stopped by the {args.budget:.0f}s time budget)"
                                                        if summary["status"] == "interrupted" else ""))
    print(f"evaluated loss: {first['train_loss']:.2f} at step 0 -> {last['train_loss']:.2f} train / "
          f"{last['val_loss']:.2f} validation at step {last['step']}; last training batch {summary['loss']:.2f}")
    if args.out is None and not args.quick:
        print(f"checkpoint: {summary['out']}  (examples 09-11 start from it)")


if __name__ == "__main__":
    main()
