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
    plausible places, then word-like pieces. A minute of CPU buys structure, not sense; more steps
    (--steps), a larger model (--emb-dim, --layers) and `python -m gpt train` buy more.

The checkpoint goes to --out (default: a folder in the system's temp directory that examples
09-11 look for). The context of 160 tokens leaves room for the instruction prompts of example 11.

Training stops after --steps (default 150) or --budget seconds (default 40), whichever comes first.

Run:  python examples/08_train_tiny_gpt.py [--quick] [--steps N] [--budget S] [--out DIR]
"""
import argparse
import math
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import gpt  # noqa: E402

DEFAULT_OUT = Path(tempfile.gettempdir()) / "tinytensor-examples" / "08_tiny_gpt"
VOCAB = 384


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a handful of steps (for CI)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 150; --quick: 4)")
    parser.add_argument("--emb-dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--budget", type=float, default=40.0,
                        help="seconds of training at most: then stop as Ctrl-C would, saving (default 40)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"checkpoint folder (default {DEFAULT_OUT})")
    args = parser.parse_args()
    steps = args.steps or (4 if args.quick else 150)

    config = gpt.TrainConfig(
        out=str(args.out), preset="tiny",
        vocab_size=VOCAB, context_length=160, emb_dim=args.emb_dim, n_layers=args.layers, n_heads=4,
        max_steps=steps, batch_size=4, lr=3e-3, warmup_steps=max(steps // 20, 1),
        eval_every=2 if args.quick else 25, eval_batches=4, save_every=steps,
        sample_prompt="The", sample_tokens=12 if args.quick else 40, seed=1234)
    print(f"untrained, a model's loss is about ln({VOCAB}) = {math.log(VOCAB):.2f}: a uniform guess\n")
    # The time budget: gpt.train treats SIGTERM like a first Ctrl-C (finish the step, save, stop).
    previous = signal.signal(signal.SIGTERM, lambda *_: None)   # ignore it should it come outside the loop
    timer = threading.Timer(args.budget, os.kill, (os.getpid(), signal.SIGTERM))
    timer.daemon = True
    t0 = time.perf_counter()
    timer.start()
    try:
        summary = gpt.train(config, overwrite=True)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    wall = time.perf_counter() - t0
    first, last = summary["history"][0], summary["history"][-1]
    print(f"\n{summary['step']} steps in {wall:.0f}s" + (f" (stopped by the {args.budget:.0f}s time budget)"
                                                        if summary["status"] == "interrupted" else ""))
    print(f"evaluated loss: {first['train_loss']:.2f} at step 0 -> {last['train_loss']:.2f} train / "
          f"{last['val_loss']:.2f} validation at step {last['step']}; last training batch {summary['loss']:.2f}")
    print(f"checkpoint: {summary['out']}  (examples 09-11 start from it)")


if __name__ == "__main__":
    main()
