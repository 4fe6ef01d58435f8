"""``python -m gpt``: the command line (gpt/cli/: one module per command)."""
import sys

from .cli import build_parser, main  # noqa: F401 (build_parser: as before, gpt.__main__.build_parser)

if __name__ == "__main__":
    sys.exit(main())
