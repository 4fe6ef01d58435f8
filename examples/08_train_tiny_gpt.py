"""08 - Train a tiny GPT from scratch with the book's training loop, on the English text that ships with Python.

Every step is here, in the order of the book's chapters 2 to 5:
  1. a BPE tokenizer trained on the text (bpe.train, chapter 2),
  2. the token ids split 90/10 into training and validation text, cut into windows of 64 tokens whose
     targets are the inputs shifted by one (gpt.SlidingWindowDataset), in batches (gpt.DataLoader),
  3. a small GPT (gpt.GPT, chapter 4) and the AdamW optimizer,
  4. gpt.train_simple (gpt/training/simple.py, chapter 5's train_model_simple), printed below before
     it runs: for each batch zero the gradients, compute the loss, backpropagate, step; every so often
     the mean loss on a few training and validation batches; after the last step a greedy sample.

It stops after --steps steps (default 900, under a minute on 2 cores): the loop counts them itself.

What to look at:
  * The loss before training is close to ln(vocab size): an untrained model spreads its guess evenly
    over the whole vocabulary. Every nat below that is something learned.
  * Train and validation loss fall together at first; later the validation loss stalls while the
    training loss goes on down. Not memorising: all the steps are in epoch 1, so the model sees each
    training window at most once. The validation text is the corpus's last tenth, not a sample from
    all of it, and each loss is the mean of only 4 batches, so it wobbles.
  * The sample: a minute of CPU buys common words, spaces and punctuation in plausible places, not sense.

`python -m gpt train` is this loop plus what a long run needs (gpt/training/pretrain.py): a learning-rate
warmup and decay, gradient clipping, checkpoints to resume exactly, Ctrl-C that saves, metrics.csv and a
loss plot, and many processes under mpiexec.

Run:  python examples/08_train_tiny_gpt.py [--quick] [--steps N]
"""
import argparse
import inspect
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import bpe  # noqa: E402
import gpt  # noqa: E402
import tinytensor as tt  # noqa: E402
from gpt.training.simple import calc_loss_loader  # noqa: E402
from tinytensor import optim  # noqa: E402

# (vocabulary, context, width, blocks, heads, batch, steps, evaluate every, characters of text)
FULL = dict(vocab=1024, context=64, emb=64, layers=2, heads=4, batch=8, steps=900, every=150, chars=None)
QUICK = dict(vocab=384, context=32, emb=32, layers=1, heads=2, batch=4, steps=4, every=2, chars=200_000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a handful of steps of a smaller model (for CI)")
    parser.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default {FULL['steps']})")
    args = parser.parse_args()
    r = dict(QUICK if args.quick else FULL)
    r["steps"] = args.steps or r["steps"]
    tt.manual_seed(1234)

    text = gpt.default_corpus()[:r["chars"]]                         # 1. text -> tokenizer -> token ids
    t0 = time.perf_counter()
    tok = bpe.train(text, r["vocab"], special_tokens=("<|endoftext|>",))
    ids = tok.encode(text, allowed_special="all")
    print(f"tokenizer: {tok.n_vocab} tokens, trained in {time.perf_counter() - t0:.0f}s; the text is {len(ids):,} "
          "tokens")

    train_ids, val_ids = gpt.train_val_split(ids, 0.1)                 # 2. windows and batches
    train_loader = gpt.DataLoader(gpt.SlidingWindowDataset(train_ids, r["context"]), r["batch"], shuffle=True,
                                  drop_last=True, seed=1234)
    val_loader = gpt.DataLoader(gpt.SlidingWindowDataset(val_ids, r["context"]), r["batch"])
    print(f"batches: {len(train_loader)} of {r['batch']} windows of {r['context']} tokens per epoch; "
          f"{len(val_loader)} validation batches")

    cfg = gpt.GPTConfig.preset("tiny", vocab_size=tok.n_vocab, context_length=r["context"], emb_dim=r["emb"],
                               n_layers=r["layers"], n_heads=r["heads"])
    model = gpt.GPT(cfg)                                              # 3. the model and its optimizer
    optimizer = optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1)
    print(f"model: {cfg.n_layers} blocks of width {cfg.emb_dim}, {model.num_parameters():,} parameters")

    before = calc_loss_loader(model, val_loader)
    print(f"untrained, its loss is about ln({tok.n_vocab}) = {math.log(tok.n_vocab):.2f}, a uniform guess: "
          f"{before:.2f}\n")
    source = inspect.getsource(gpt.train_simple)                      # 4. the loop: read it, then run it
    body = source.split('"""')[-1]
    print(f"the loop, gpt.train_simple (gpt/training/simple.py):{body}")

    t0 = time.perf_counter()
    history = gpt.train_simple(model, train_loader, val_loader, optimizer, max_steps=r["steps"],
                               eval_every=r["every"], eval_batches=4, tokenizer=tok, start_text="The",
                               sample_tokens=12 if args.quick else 40)
    print(f"\n{history['step'][-1]} steps in {time.perf_counter() - t0:.0f}s")
    print(f"evaluated loss: {before:.2f} before training -> {history['train_loss'][-1]:.2f} train / "
          f"{history['val_loss'][-1]:.2f} validation after step {history['step'][-1]}")


if __name__ == "__main__":
    main()
