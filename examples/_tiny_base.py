"""Shared by examples 09-11: the small GPT that 08_train_tiny_gpt.py trains, found or made.

Not an example itself. When 08 has run (its checkpoint sits in the system's temp folder, or pass
--checkpoint DIR), 09-11 start from that model. Otherwise they train the same shape of model for a
few seconds first, so they still run on their own, with rougher results.
"""
import tempfile
from pathlib import Path

import gpt

DEFAULT_CHECKPOINT = Path(tempfile.gettempdir()) / "tinytensor-examples" / "08_tiny_gpt"
# the model and data settings of 08_train_tiny_gpt.py (keep the two in step)
MODEL = dict(preset="tiny", vocab_size=384, context_length=160, emb_dim=64, n_layers=2, n_heads=4)


def base_checkpoint(checkpoint, scratch, steps):
    """``checkpoint`` when it holds a trained model; else train one for ``steps`` steps into ``scratch``."""
    checkpoint = Path(checkpoint)
    if (checkpoint / "checkpoint.json").exists():
        print(f"base model: the one trained by 08_train_tiny_gpt.py in {checkpoint}")
        return checkpoint
    folder = Path(scratch) / "base_model"
    print(f"no checkpoint in {checkpoint} (run 08_train_tiny_gpt.py first for a better base model);"
          f" training a small one for {steps} steps instead -> {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.log", "w") as log:
        gpt.train(gpt.TrainConfig(out=str(folder), **MODEL, max_steps=steps, batch_size=4, lr=3e-3,
                                  warmup_steps=1, eval_every=steps, eval_batches=2, save_every=steps,
                                  sample_tokens=8), overwrite=True, stream=log)
    return folder
