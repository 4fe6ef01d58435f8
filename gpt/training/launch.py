"""``gpt.train``, the full pretraining run: on this one process (pretrain.py), or, when mpiexec started
it, on many (parallel.py). The choice is made here, once, before anything else."""
from . import parallel, pretrain


def train(settings, resume=False, overwrite=False, given=(), stream=None, stop_at=None, on_step=None, on_eval=None):
    """Run (or resume) pretraining as ``settings`` (a TrainSettings, alias TrainConfig) says; returns a
    summary dict (see pretrain.train). Under ``mpiexec -n N`` every rank calls it; rank 0 leads."""
    team = parallel.join(settings.device)            # None unless mpiexec started several processes
    if team is None:
        return pretrain.train(settings, resume, overwrite, given, stream, stop_at, on_step, on_eval)
    return parallel.train(team, settings, resume, overwrite, given, stream, stop_at, on_step, on_eval)
