"""``python -m gpt.finetune``: the fine-tuning commands on their own (see cli.py)."""
import sys

from .cli import main

sys.exit(main())
