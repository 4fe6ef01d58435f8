"""The learning-rate schedule of every training loop here: linear warmup, then cosine decay or constant.

    lr
    |     ____
    |    /    ``--.__                cosine: from ``lr`` down to ``min_lr`` at ``total``
    |   /           ``--.__
    |  /                   ``--.__ min_lr
    +--+--------------------------+--> step
      warmup                    total

Pretraining (gpt/training/pretrain.py) and instruction tuning (gpt/finetune/instruct.py) use warmup + cosine;
classification uses a constant rate (no warmup). ``step`` may be fractional: instruction tuning with a
time limit places itself on the schedule by the share of its time budget used.
"""
import math


def lr_at(step, total, lr, min_lr=None, warmup=0, schedule="cosine"):
    """Learning rate of step ``step`` (0-based) of ``total``.

    Warmup: ``lr * (step + 1) / warmup`` for the first ``warmup`` steps (the first step already moves).
    Then "constant" keeps ``lr``; "cosine" goes from ``lr`` to ``min_lr`` (default ``lr / 10``) along
    half a cosine, reached at step ``total`` and kept after it.
    """
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    min_lr = lr / 10 if min_lr is None else min_lr
    progress = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))
