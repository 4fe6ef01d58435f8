"""Stopping a run cleanly: a signal, or a reader that went away, asks the loop to stop; it saves, then exits.

    with StopFlag() as stop:
        while step < max_steps and not stop:
            ...                                 # evaluation and sampling check ``stop`` as they go
        save()
    sys.exit(stop.exit_code)

What asks, and the exit status the command then gives (a shell's 128 + signal number):
    Ctrl-C (SIGINT) 130, SIGTERM 143, SIGHUP 129 (the terminal closed), a closed output pipe 141
    (``python -m gpt train | head``: what follows is not printed; see progress.SafeOutput).
A second Ctrl-C quits at once, without saving.
"""
import signal
import sys

SIGPIPE_STATUS = 128 + 13          # what a shell reports for a process whose output pipe was closed


class StopFlag:
    """True once a stop was requested; ``reason`` says by what, ``exit_code`` how the command should end."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

    def __init__(self, quiet=False):
        self.reason, self.exit_code, self._previous = None, 0, {}
        self.quiet = quiet           # say nothing on a signal (ranks 1..N-1 under mpiexec: rank 0 says it)

    def __bool__(self):
        return self.reason is not None

    @property
    def requested(self):
        return self.reason is not None

    def request(self, reason, exit_code=130):
        """Ask the loop to stop at its next safe point (the first request's reason and status are kept)."""
        if self.reason is None:
            self.reason, self.exit_code = reason, exit_code

    def output_closed(self):
        """The reader of the run's output went away (``| head``): stop as for a signal."""
        self.request("closed output", SIGPIPE_STATUS)

    def _handle(self, signum, frame):
        if self and signum == signal.SIGINT:
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        self.request(name, 128 + signum)
        if self.quiet:
            return
        again = " (Ctrl-C again quits without saving)" if signum == signal.SIGINT else ""
        try:
            sys.stderr.write(f"\nstopping ({name}): saving a checkpoint at the end of this step{again}\n")
            sys.stderr.flush()
        except (OSError, ValueError):        # no terminal left (SIGHUP): stop all the same
            pass

    def __enter__(self):
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:               # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
