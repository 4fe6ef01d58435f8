"""``python -m gpt.finetune``, and the entry ``python -m gpt`` hands its fine-tuning commands to:
``main(argv)`` with argv starting at the command (``finetune ...``, ``classify ...``, ``make-data ...``)."""
import sys

from ..cli.finetune import main

if __name__ == "__main__":
    sys.exit(main())
