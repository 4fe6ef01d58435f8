"""Fine-tuning a pretrained GPT (the book's chapters 6 and 7): classification (classify.py), instruction
following (instruct.py), their data (data_classify.py, data_instruct.py, make_data.py, splits.py), their
settings (settings.py) and the runs end to end (pipeline.py). The command line is gpt/cli/finetune.py;
low-rank adapters live in gpt/models/lora.py."""
