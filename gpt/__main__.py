"""``python -m gpt``: the command line (gpt/cli/: one module per command)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
