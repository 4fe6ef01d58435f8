"""Training (the book's chapter 5): the simple loop, the full pretraining run built on it, and their parts.

    simple.py       train_simple: the book's train_model_simple on one screen; calc_loss_batch, calc_loss_loader
    pretrain.py     the full run of `python -m gpt train`: train_simple plus exact resume, clean stopping,
                    metrics and many processes; its loop on one screen
    settings.py     TrainSettings (gpt.TrainConfig): every flag of the run, checked once
    step.py         one optimizer step: micro-batches, clipping, AdamW, the NaN guard (fine-tuning uses it too)
    schedule.py     the learning rate: warmup, then cosine or constant
    metrics.py      metrics.csv, loss.svg (drawn by svg_chart.py) and the overfitting warning
    checkpoint.py   checkpoints a run can resume from exactly (checkpoint_schema.py: checkpoint.json's fields)
    run_folder.py   --out: claimed, locked while a run writes it, cleared by --overwrite
    stopping.py     Ctrl-C, SIGTERM, SIGHUP or a closed pipe: save, then stop
    progress.py     the progress bar
    parallel.py     the same run on many processes (mpiexec -n N); launch.py chooses it, pretrain.py never imports it
"""
