"""The settings of the two fine-tuning runs: one dataclass each, built once from the command line
(gpt/cli/finetune.py, whose flags and defaults they mirror) or by a caller of ``run_classify`` /
``run_instruct``."""
from dataclasses import dataclass, fields


@dataclass
class FinetuneSettings:
    """What both fine-tuning runs take (see ``python -m gpt finetune classify --help``)."""
    data: str                        # the training data file
    init: str                        # the pretrained model's folder (never written to)
    out: str                         # where the fine-tuned model goes
    overwrite: bool = False          # replace a run already in --out
    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 8
    weight_decay: float = 0.1
    seed: int = 123
    train: str = "all"               # what trains: last, all or lora
    lora_rank: int = 8
    lora_alpha: float = 16.0
    max_length: int = None           # cut sequences to this many tokens (None: the model's context length)

    @classmethod
    def from_flags(cls, ns):
        """The settings from parsed command-line flags (an argparse namespace holding every field)."""
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls)})


@dataclass
class ClassifySettings(FinetuneSettings):
    """``finetune classify``: a num_classes head on labelled text."""
    epochs: int = 5
    lr: float = 5e-4
    batch_size: int = 8
    train: str = "last"
    download: bool = False           # fetch the SMS Spam Collection to --data first when it is missing
    balance: bool = True             # undersample every class to the smallest one
    max_examples: int = None


@dataclass
class InstructSettings(FinetuneSettings):
    """``finetune instruct``: Alpaca-style instructions, answered on the held-out split afterwards."""
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 16
    train: str = "all"
    mask_prompt: bool = False        # the loss on the response tokens only
    max_new_tokens: int = 32
    max_minutes: float = None        # stop training after this long; the evaluation still runs
    max_test: int = None             # answer at most this many held-out examples
