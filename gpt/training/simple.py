"""The training loop of the book's chapter 5 on one screen: ``train_simple``, and the two losses it uses.

    calc_loss_batch(model, batch)        mean next-token cross-entropy of one (inputs, targets) batch
    calc_loss_loader(model, batches)     the mean over some batches, in eval mode and without a graph
    train_simple(model, train_loader, val_loader, optimizer, ...)
                                         for each batch: zero the gradients, loss, backward, optimizer step;
                                         every eval_every steps both losses, printed and kept in a history;
                                         after each epoch a sample; until the epochs or max_steps are done

The full run (``python -m gpt train``, pretrain.py) is this loop plus exact resume, clean stopping,
metrics and many processes; it computes its losses with the two functions here.
"""
import tinytensor as tt
import tinytensor.functional as F

from ..generation.generate import generate


def calc_loss_batch(model, batch, device="cpu", dtype="float32"):
    """Mean next-token cross-entropy of one (inputs, targets) batch: the loss each step minimises
    (``dtype`` bfloat16 or float16: under ``tt.autocast``; the loss itself is float32 either way)."""
    x, y = batch
    with tt.autocast(dtype=dtype if dtype != "float32" else "float16", enabled=dtype != "float32"):
        return F.cross_entropy(model(tt.tensor(x, device=device)), y)


def calc_loss_loader(model, batches, device="cpu", should_stop=None):
    """Mean cross-entropy per token over ``batches`` (an iterable of (inputs, targets)), in eval mode (no
    dropout) and without recording a graph; the model's mode is restored after. None when
    ``should_stop()`` turned true between two batches."""
    was_training, total, count = model.training, 0.0, 0
    model.eval()
    try:
        with tt.no_grad():
            for x, y in batches:
                if should_stop is not None and should_stop():
                    return None
                total += F.cross_entropy(model(tt.tensor(x, device=device)), y, reduction="sum").item()
                count += y.size
    finally:
        model.train(was_training)
    return total / count


def train_simple(model, train_loader, val_loader, optimizer, epochs=1, max_steps=None, eval_every=50,
                 eval_batches=5, tokenizer=None, start_text="The", sample_tokens=30, device="cpu", show=print):
    """Train ``model`` on ``train_loader``'s (inputs, targets) batches with ``optimizer``: the book's
    ``train_model_simple``. Every ``eval_every`` steps the mean loss over ``eval_batches`` batches of
    each loader is shown and recorded; after every epoch, with a ``tokenizer``, a greedy sample of
    ``sample_tokens`` tokens continuing ``start_text``. Stops after ``epochs`` passes or ``max_steps``
    steps, whichever comes first. Returns the history: lists "step", "tokens", "train_loss", "val_loss"."""
    history = {"step": [], "tokens": [], "train_loss": [], "val_loss": []}
    step, tokens = 0, 0
    for epoch in range(epochs):
        model.train()                                        # dropout on (if the model has any)
        for x, y in train_loader:
            optimizer.zero_grad()                            # the gradients of the last step are spent
            loss = calc_loss_batch(model, (x, y), device)
            loss.backward()                                  # d loss / d every parameter
            optimizer.step()                                 # AdamW moves each parameter against its gradient
            step, tokens = step + 1, tokens + x.size
            if step % eval_every == 0:
                train_loss = calc_loss_loader(model, _first(train_loader, eval_batches), device)
                val_loss = calc_loss_loader(model, _first(val_loader, eval_batches), device)
                for key, value in zip(history, (step, tokens, train_loss, val_loss)):
                    history[key].append(value)
                show(f"epoch {epoch + 1} step {step:>5}: train loss {train_loss:.3f}, val loss {val_loss:.3f}")
            if step == max_steps:
                break
        if tokenizer is not None:
            show(f"  sample: {generate_sample(model, tokenizer, start_text, sample_tokens)!r}")
        if step == max_steps:
            break
    return history


def _first(loader, n):
    """The first ``n`` batches of one pass over ``loader``."""
    for i, batch in enumerate(loader):
        if i == n:
            return
        yield batch


def generate_sample(model, tokenizer, start_text, max_new_tokens):
    """``start_text`` continued greedily by ``max_new_tokens`` tokens (the book's generate_and_print_sample;
    ``generate`` switches the model to eval mode meanwhile)."""
    ids = tokenizer.encode(start_text, allowed_special="all")[-(model.cfg.context_length // 2):] or [0]
    return tokenizer.decode(generate(model, [ids], max_new_tokens=max_new_tokens)[0].tolist())
