"""A small trained run folder for the page tests (shared by tests/gpt and tests/browser)."""
import io

from gpt.training.settings import TrainConfig

from gpt.training.pretrain import train

SMALL = dict(vocab_size=300, context_length=16, emb_dim=32, n_layers=2, n_heads=2, batch_size=4,
             eval_every=3, eval_batches=1, sample_tokens=5, lr=3e-3, max_steps=6)


def train_run(folder, data, on_step=None, on_eval=None, **over):
    """Train SMALL (6 steps, evaluations at 0, 3, 6) into ``folder``; returns train()'s summary."""
    cfg = TrainConfig(data=str(data), out=str(folder), **{**SMALL, **over})
    return train(cfg, stream=io.StringIO(), on_step=on_step, on_eval=on_eval)
