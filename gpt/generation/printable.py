"""Model-made text, printed as text: newlines and tabs as they are, every other control character escaped.

A language model can emit any byte. Printed raw, a BEL (``\\x07``) rings the terminal's bell, an
ESC starts a terminal command, a carriage return overwrites the line. ``printable`` shows each of them
as its escape instead (``\\x07``, ``\\x1b``, ``\\r``) and keeps the rest of the text readable, line
breaks included. Training samples, ``python -m gpt sample`` and ``python -m gpt chat`` all print
through it.
"""

# C0 controls except tab and newline, DEL, and the C1 controls: each shown as Python writes it
_ESCAPES = {c: repr(chr(c))[1:-1] for c in [*range(0x00, 0x20), *range(0x7f, 0xa0)] if c not in (0x09, 0x0a)}


def printable(text):
    """``text`` with control characters (other than tab and newline) replaced by their escapes."""
    return text.translate(_ESCAPES)


def indented(text, first, rest=None):
    """``printable(text)`` with ``first`` before its first line and ``rest`` (default: as many spaces)
    before each later one that is not empty, so that a multi-line sample stays one block under its
    heading."""
    rest = " " * len(first) if rest is None else rest
    lines = printable(text).split("\n")
    return "\n".join([first + lines[0]] + [rest + line if line else "" for line in lines[1:]])


class PrintableStream:
    """A text stream that writes ``printable(text)`` to ``stream``: for text printed as it is generated."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        return self.stream.write(printable(text))

    def flush(self):
        self.stream.flush()
