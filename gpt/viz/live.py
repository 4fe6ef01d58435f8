"""Live training on the page: the loop's callbacks publish events, the page draws them as they come.

    page = LivePage("tiny").start()      # prints nothing; page.url is the address
    train(a, on_step=page.on_step, on_eval=page.on_eval)

``publish`` puts an event on a queue and returns (tinytensor/viz/events.py): the training loop never
waits for the page, a slow or closed browser cannot slow a step.
"""
from .app import build_server


class LivePage:
    """A page for one run (``name``) fed by the training loop; ``folder`` adds the tokenizer and model
    views of that folder (read when the page asks, so once the run has saved a checkpoint)."""

    def __init__(self, name, folder=None, port=0):
        self.name = name
        self.server = build_server([folder] if folder else [], live=name, port=port)
        self.channel, self.url = self.server.channel, self.server.url

    def start(self):
        """Serve from a daemon thread; returns self."""
        self.server.start()
        self.channel.publish("run", {"run": self.name, "live": True})
        return self

    def on_step(self, row):
        """Pretraining's ``on_step``: step, tokens, train loss, lr, gradient norm, tokens/s, elapsed."""
        self.channel.publish("step", dict(row, run=self.name))

    def on_eval(self, entry):
        """Pretraining's ``on_eval``: train and validation loss, the sample."""
        self.channel.publish("eval", dict(entry, run=self.name))

    def on_row(self, row):
        """Fine-tuning's ``on_row``: a "train" row per step, an "eval" row per evaluation."""
        kind = "eval" if row.get("kind") == "eval" else "step"
        self.channel.publish(kind, dict(row, run=self.name))

    def done(self, summary=None):
        """Tell the page the run has ended."""
        self.channel.publish("done", {"run": self.name, **({} if summary is None else summary)})

    def stop(self):
        """Stop serving (the open page keeps what it has drawn)."""
        self.server.stop()


def start_live(name, folder=None, say=print):
    """Start a ``LivePage`` and print its address."""
    page = LivePage(name, folder).start()
    say(f"live page: {page.url}  (open it in a browser; it stops when training ends)")
    return page
