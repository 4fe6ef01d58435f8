"""Fine-tuning a pretrained GPT: classification (classify.py), instruction following (instruct.py),
their data (data_classify.py, data_instruct.py, make_data.py), the runs end to end (pipeline.py) and
the command line (cli.py). Low-rank adapters live in gpt/lora.py."""
