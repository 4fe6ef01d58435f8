"""A progress bar for training that behaves in a terminal and in a log file (CI) alike.

In a terminal it redraws one line in place (``\\r``) at most ten times a second; when the output is
a file or a pipe it prints a whole line every ``every`` seconds instead, so logs stay readable.
``SafeOutput`` wraps the stream of a long run so that a reader going away (``train | head``) stops the
run cleanly instead of killing it.
"""
import os
import sys
import time


def format_seconds(s):
    """12s, 3m05s, 1h02m."""
    if s is None or s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class ProgressBar:
    """``bar.update(step, loss=..., tokens=...)`` after each step; ``bar.write(text)`` prints above it.

    Speed and ETA come from the steady steps: timing starts at the first update, so the time spent
    before it (the tokenizer, the first evaluation, the slow first step while memory is set up) does
    not count, and later evaluations count as the share of the run they are. ``elapsed_before``: the
    seconds of a run's earlier sessions (a resumed run), included in the elapsed time shown.
    """

    def __init__(self, total, initial=0, stream=None, width=24, every=10.0, tty=None, elapsed_before=0.0):
        self.stream = stream if stream is not None else sys.stdout
        self.total, self.start_step, self.width, self.every = total, initial, width, every
        self.tty = self.stream.isatty() if tty is None and hasattr(self.stream, "isatty") else bool(tty)
        self.t0 = time.perf_counter()
        self.elapsed_before = elapsed_before
        self.tokens = 0
        self.mark = None                    # (time, step, tokens) at the first update: the steady part starts
        self.last_draw = -1e9
        self.line = ""
        self.step = initial

    def steady(self, now=None):
        """(tokens per second, seconds per step) over the steps after the first; (None, None) before two."""
        now = time.perf_counter() if now is None else now
        if self.mark is None or self.step - self.mark[1] < 2 or now <= self.mark[0]:
            return None, None
        seconds = now - self.mark[0]
        return (self.tokens - self.mark[2]) / seconds, seconds / (self.step - self.mark[1])

    def update(self, step, loss=None, tokens=0, force=False):
        self.step = step
        self.tokens += tokens
        now = time.perf_counter()
        if self.mark is None:
            self.mark = (now, step, self.tokens)
        interval = 0.1 if self.tty else self.every
        rate, per_step = self.steady(now)
        if not force and step < self.total and (now - self.last_draw < interval or per_step is None):
            return
        self.last_draw = now
        elapsed = self.elapsed_before + now - self.t0
        eta = (self.total - step) * per_step if per_step is not None else None
        frac = step / self.total if self.total else 1.0
        filled = int(round(self.width * frac))
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"[{bar}] {step}/{self.total}"
        if loss is not None:
            text += f" loss {loss:.4f}"
        speed = f"{rate:,.0f} tok/s" if rate is not None else "? tok/s"
        text += f" | {speed} | {format_seconds(elapsed)} elapsed | ETA {format_seconds(eta)}"
        if self.tty:
            pad = max(0, len(self.line) - len(text))
            self.stream.write("\r" + text + " " * pad)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.line = text

    def write(self, text):
        """Print a line without breaking the bar."""
        if self.tty and self.line:
            self.stream.write("\r" + " " * len(self.line) + "\r")
        self.stream.write(text + "\n")
        if self.tty and self.line:
            self.stream.write(self.line)
        self.stream.flush()

    def close(self):
        if self.tty and self.line:
            self.stream.write("\n")
            self.stream.flush()
        self.line = ""


class SafeOutput:
    """A text stream for a long run's output whose reader may go away (``python -m gpt train | head``).

    The first write that fails (a closed pipe, a hung-up terminal) calls ``on_failure(error)``, which
    may ask the run to stop; that write and every later one are dropped, so the run can still save.
    """

    def __init__(self, stream, on_failure=None):
        self.stream, self.on_failure, self.failed = stream, on_failure, None

    def write(self, text):
        if self.failed is None:
            try:
                self.stream.write(text)
            except OSError as e:
                self._fail(e)
        return len(text)

    def flush(self):
        if self.failed is None:
            try:
                self.stream.flush()
            except OSError as e:
                self._fail(e)

    def isatty(self):
        return hasattr(self.stream, "isatty") and self.stream.isatty()

    def _fail(self, error):
        self.failed = error
        silence(self.stream)
        if self.on_failure is not None:
            self.on_failure(error)


def silence(stream):
    """Point ``stream``'s file descriptor at /dev/null, so that no later flush of it (the interpreter's
    own at exit included) fails again. A stream without one (a StringIO) is left alone."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass
