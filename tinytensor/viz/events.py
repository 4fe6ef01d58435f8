"""Server-sent events: a channel that a producer publishes into without waiting, and the wire format.

    channel = EventChannel()
    channel.publish("step", {"step": 1, "loss": 6.9})     # from the training loop: a queue put, no lock

Each event gets an increasing ``id``. The server keeps the last ``keep`` events, so a page that
reconnects (the browser sends ``Last-Event-ID``) or opens late is sent what it missed. ``frame`` writes
one event as the ``text/event-stream`` format wants it: ``id:``, ``event:`` and one ``data:`` line per
line of the JSON, then a blank line.
"""
import collections
import queue
import threading

from .jsondata import dumps

RETRY_MS = 2000          # how long the browser waits before reconnecting (the stream's "retry:" field)
PING_SECONDS = 5.0       # a ": ping" comment this often keeps idle connections open


def frame(event_id, kind, data):
    """One event in the wire format, as bytes (``data`` is any JSON-able value)."""
    lines = [f"id: {event_id}", f"event: {kind}"]
    lines += [f"data: {line}" for line in dumps(data).split("\n")]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def preamble():
    """What a stream starts with: the reconnection delay."""
    return f"retry: {RETRY_MS}\n\n".encode("ascii")


def ping():
    """A comment line: the browser ignores it, the connection stays open."""
    return b": ping\n\n"


class EventChannel:
    """Events for the page's one stream. ``publish`` never blocks: it puts the event on a queue that a
    daemon thread moves into a ring buffer of the last ``keep`` events, waking the open streams."""

    def __init__(self, keep=10000):
        self._inbox = queue.SimpleQueue()
        self._events = collections.deque(maxlen=keep)
        self._next_id = 1
        self._changed = threading.Condition()
        self._closed = False
        self._mover = threading.Thread(target=self._move, name="tt-viz-events", daemon=True)
        self._mover.start()

    def publish(self, kind, data):
        """Queue one event of type ``kind`` (a word: "step", "eval", ...) carrying ``data``."""
        self._inbox.put((kind, data))

    def _move(self):
        while True:
            item = self._inbox.get()
            if item is None:
                return
            if item[0] == "__flush__":
                item[1].set()
                continue
            with self._changed:
                self._events.append((self._next_id, item[0], item[1]))
                self._next_id += 1
                self._changed.notify_all()

    def since(self, last_id, timeout=PING_SECONDS):
        """Events with an id above ``last_id`` (waiting up to ``timeout`` seconds for one); [] on timeout."""
        with self._changed:
            if not self._closed and (not self._events or self._events[-1][0] <= last_id):
                self._changed.wait(timeout)
            return [e for e in self._events if e[0] > last_id]

    @property
    def closed(self):
        return self._closed

    def flush(self, timeout=5.0):
        """Wait until everything published so far is in the ring buffer (tests, and before replying)."""
        done = threading.Event()
        self._inbox.put(("__flush__", done))
        return done.wait(timeout)

    def close(self):
        """Stop the mover thread and wake every stream so it can end."""
        self._inbox.put(None)
        with self._changed:
            self._closed = True
            self._changed.notify_all()
