"""Classification fine-tuning: a pretrained GPT whose output head becomes a ``num_classes`` head.

The class is read from the hidden state of the last real token of each text: in a causal model that
position has attended to the whole text, and (with padding on the right) to none of the padding.

What trains (``mode``):
    "last"  the new head + the last transformer block + the final LayerNorm (the book's default)
    "all"   every parameter
    "lora"  low-rank adapters on every Linear inside the blocks + the new head (gpt/models/lora.py)
"""
import time

import numpy as np

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import backend, nn, optim

from ..models import lora
from ..training.schedule import lr_at
from ..training.step import evaluating, train_step
from . import data_classify

MODES = ("last", "all", "lora")


def replace_head(model, num_classes):
    """Swap ``model.out_head`` for a fresh ``nn.Linear(emb_dim, num_classes)`` (with bias). A tied
    output head stops sharing the token embedding. Returns the model."""
    if num_classes < 2:
        raise ValueError(f"classification needs at least 2 classes, got {num_classes}")
    w = model.tok_emb.weight
    head = nn.Linear(model.cfg.emb_dim, num_classes, dtype=w.dtype)
    model.out_head = head.to(w.device) if w.device != "cpu" else head
    return model


def pool_last(hidden, lengths):
    """hidden (B, T, E), lengths (B,) -> the hidden state of each row's last real token (B, E)."""
    lengths = np.asarray(lengths)
    if lengths.min() < 1 or lengths.max() > hidden.shape[1]:
        raise ValueError(f"pool_last: lengths must be in 1..{hidden.shape[1]}, got {lengths.tolist()}")
    xp = backend.xp_of(hidden.data)
    rows = xp.arange(hidden.shape[0])
    return hidden[rows, xp.asarray(lengths - 1)]


def class_logits(model, ids, lengths):
    """Class scores (B, C) from the last real token of each padded row."""
    return model.out_head(pool_last(model.features(ids), lengths))


def set_trainable(model, mode, rank=8, alpha=16.0):
    """Freeze what ``mode`` does not train (and add LoRA adapters for "lora"). Returns trainable names."""
    if mode not in MODES:
        raise ValueError(f"--train must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "lora":
        lora.apply_lora(model, rank=rank, alpha=alpha)
        return lora.mark_trainable(model, ["out_head"])
    last = f"blocks.{len(model.blocks) - 1}"
    names = []
    for name, p in model.named_parameters():
        keep = mode == "all" or any(name.startswith(prefix + ".") for prefix in ("out_head", last, "final_norm"))
        p.requires_grad = keep
        if keep:
            names.append(name)
    return names


def batch_loss(model, ids, lengths, labels):
    """Mean cross-entropy of the class scores of one padded batch (the book's calc_loss_batch)."""
    return F.cross_entropy(class_logits(model, ids, lengths), labels)


def chance(encoded, n_labels):
    """(accuracy of always answering the commonest label of ``encoded`` [(ids, label_id)], that label_id):
    the score a classifier must beat to have learnt anything."""
    counts = np.bincount([y for _, y in encoded], minlength=n_labels)
    best = int(counts.argmax())
    return float(counts[best] / max(1, counts.sum())), best


def evaluate(model, encoded, batch_size, pad_id):
    """(accuracy, mean loss) over a list of (ids, label) pairs, in eval mode."""
    correct, total, loss_sum = 0, 0, 0.0
    with evaluating(model):
        for ids, lengths, labels in data_classify.batches(encoded, batch_size, pad_id):
            logits = class_logits(model, ids, lengths)
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum").item())
            correct += int((logits.numpy().argmax(axis=1) == labels).sum())
            total += len(labels)
    return correct / max(total, 1), loss_sum / max(total, 1)


@tt.no_grad()
def predict(model, tokenizer, texts, labels, max_length, pad_id, batch_size=16):
    """[(label, probabilities)] for each text."""
    model.eval()
    out = []
    seqs = [data_classify.encode_text(tokenizer, t, max_length, pad_id) for t in texts]
    for start in range(0, len(seqs), batch_size):
        ids, lengths = data_classify.collate(seqs[start:start + batch_size], pad_id)
        probs = F.softmax(class_logits(model, ids, lengths), axis=-1).numpy()
        if not np.isfinite(probs).all():
            row = start + int(np.flatnonzero(~np.isfinite(probs).all(axis=-1))[0])
            raise ValueError(f"classify: the model's probabilities hold NaN or inf (text {row + 1}): its weights "
                             "are probably damaged (a NaN or inf in the checkpoint?); no label can be chosen")
        out += [(labels[int(p.argmax())], p.tolist()) for p in probs]
    return out


def train(model, train_set, val_set, test_set, pad_id, epochs=3, lr=5e-5, batch_size=8, weight_decay=0.1,
          seed=0, log=print, max_grad_norm=1.0, on_row=None):
    """Fine-tune for ``epochs`` at a constant learning rate (as the book's classifier); accuracy on
    train/val/test after each epoch. Returns the per-epoch history.

    ``on_row(row)``: called after every step (kind "train": the batch's loss and accuracy) and every
    epoch's evaluation (kind "eval"), with the columns of ``gpt.training.metrics.CLASSIFY_COLUMNS``.
    Each step is ``gpt.training.step.train_step``: a NaN or Inf loss or gradient raises NonFiniteError before
    it reaches the weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    total = epochs * -(-len(train_set) // batch_size)
    history, start, step, examples = [], time.perf_counter(), 0, 0
    on_row = on_row or (lambda row: None)
    correct = [0]

    def loss_fn(batch):
        ids, lengths, labels = batch
        logits = class_logits(model, ids, lengths)
        correct[0] = int((backend.to_numpy(logits.data).argmax(axis=1) == labels).sum())
        return F.cross_entropy(logits, labels)

    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for batch in data_classify.batches(train_set, batch_size, pad_id, shuffle=True, rng=rng):
            result = train_step(opt, loss_fn, [batch], lr_at(step, total, lr, schedule="constant"),
                                grad_clip=max_grad_norm, step=step + 1, params=params)
            step += 1
            examples += len(batch[2])
            losses.append(result.loss)
            on_row({"kind": "train", "step": step, "epoch": epoch, "examples": examples, "train_loss": result.loss,
                    "train_accuracy": correct[0] / len(batch[2]), "lr": result.lr,
                    "grad_norm": result.grad_norm, "elapsed_s": round(time.perf_counter() - start, 2)})
        row = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        for name, part in (("train", train_set), ("val", val_set), ("test", test_set)):
            if part:
                row[f"{name}_accuracy"], row[f"{name}_eval_loss"] = evaluate(model, part, batch_size * 4, pad_id)
        row["seconds"] = round(time.perf_counter() - start, 1)
        history.append(row)
        on_row({"kind": "eval", "step": step, "epoch": epoch, "examples": examples,
                "train_loss": row.get("train_eval_loss"), "train_accuracy": row.get("train_accuracy"),
                "val_loss": row.get("val_eval_loss"), "val_accuracy": row.get("val_accuracy"),
                "test_accuracy": row.get("test_accuracy"), "elapsed_s": row["seconds"]})
        log(f"epoch {epoch}: loss {row['train_loss']:.4f}  accuracy train {row.get('train_accuracy', 0):.3f}  "
            f"val {row.get('val_accuracy', float('nan')):.3f}  test {row.get('test_accuracy', float('nan')):.3f}  "
            f"({row['seconds']:.0f} s)")
    return history
