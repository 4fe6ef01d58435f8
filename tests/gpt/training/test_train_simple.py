"""gpt.train_simple, the book's loop: it learns, records its history, stops by its own step count, and is the
loss the full run minimises."""
import inspect

import numpy as np

import gpt
import tinytensor as tt
from gpt.training import pretrain
from gpt.training.simple import calc_loss_batch, calc_loss_loader, train_simple
from tinytensor import optim

from gpt_helpers import small_model


def _loaders(n_tokens=400, context=16, batch=4, vocab=97):
    ids = np.random.default_rng(0).integers(0, vocab // 4, n_tokens) * 2 % vocab      # a small, learnable text
    train_ids, val_ids = gpt.train_val_split(ids, 0.2)
    return (gpt.DataLoader(gpt.SlidingWindowDataset(train_ids, context, 4), batch, shuffle=True, drop_last=True),
            gpt.DataLoader(gpt.SlidingWindowDataset(val_ids, context, 4), batch))


class _Tok:
    """The least a tokenizer needs for the sample: ids in, text out."""
    def encode(self, text, allowed_special=None):
        return [ord(c) % 97 for c in text]

    def decode(self, ids):
        return " ".join(map(str, ids))


def test_the_loop_learns_keeps_a_history_and_stops_at_max_steps():
    model = small_model(seed=1)
    train_loader, val_loader = _loaders()
    shown = []
    history = train_simple(model, train_loader, val_loader, optim.AdamW(model.parameters(), lr=3e-3), epochs=50,
                           max_steps=40, eval_every=10, eval_batches=2, tokenizer=_Tok(), start_text="ab",
                           sample_tokens=3, show=shown.append)
    assert history["step"] == [10, 20, 30, 40] and history["tokens"] == [640, 1280, 1920, 2560]
    assert history["train_loss"][-1] < history["train_loss"][0] - 0.5            # it learned
    evals = [line for line in shown if line.startswith("epoch")]
    samples = [line for line in shown if line.startswith("  sample: '")]
    assert len(train_loader) == 19 and evals[0].startswith("epoch 1 step    10: train loss")
    assert evals[-1].startswith("epoch 3 step    40:") and len(evals) == 4
    assert len(samples) == 3 and all(len(line.split("'")[1].split()) == 5 for line in samples)   # after each epoch
    assert model.training                                                             # left in training mode


def test_its_losses_are_those_of_the_full_run():
    model = small_model(seed=2)
    x = np.random.default_rng(3).integers(0, 97, (2, 16))
    batch = (x, np.roll(x, -1, axis=1))
    ce = calc_loss_batch(model, batch)
    with tt.no_grad():
        direct = tt.functional.cross_entropy(model(x), batch[1])
    assert ce.item() == direct.item()
    assert pretrain.calc_loss_batch is calc_loss_batch                    # the full run's step minimises this loss
    assert abs(calc_loss_loader(model, [batch, batch]) - ce.item()) < 1e-6


def test_it_fits_on_one_screen_as_the_book_s_loop_does():
    lines = inspect.getsource(train_simple).splitlines()
    assert len(lines) <= 60, len(lines)
    body = inspect.getsource(train_simple)
    for step in ("optimizer.zero_grad()", "calc_loss_batch(", ".backward()", "optimizer.step()", "calc_loss_loader("):
        assert step in body
