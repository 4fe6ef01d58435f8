"""One server for the GPT's pages: training curves (live or replayed), the tokenizer, the model.

    GET /            training curves: every run's events over one server-sent-events stream
    GET /tokenizer   BPE: train on some text (best pair and count per merge), encode step by step
    GET /model       a prompt's next-token probabilities and attention maps
    POST /api/tokenize, /api/bpe_train, /api/next     their data (tokenizer_view.py, model_view.py)

Several run folders overlay their curves; the tokenizer and model views use the first folder that
holds them. The model is loaded on the first request that needs it, then kept.
"""
import os
import threading

from tinytensor.viz import STATIC as TT_STATIC
from tinytensor.viz import EventChannel, PageServer

from . import model_view, tokenizer_view
from .replay import run_events

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
PAGES = {"/": "train.html", "/tokenizer": "tokenizer.html", "/model": "model.html"}
SAMPLE_TEXT = ("The tokenizer cuts text into chunks with a regular expression, then merges the most frequent "
               "pair of tokens again and again. The lower, the lowest; the newer, the newest.")


class Folders:
    """What the pages read from the folders given: runs' metrics, a tokenizer, a model (loaded lazily)."""

    def __init__(self, folders):
        self.folders = [os.fspath(f) for f in folders]
        for f in self.folders:
            if not os.path.isdir(f):
                raise ValueError(f"{f}: no such folder")
        self._model, self._lock, self.trained = None, threading.Lock(), None

    def model(self):
        """(model, tokenizer, folder) of the first folder holding a model; ValueError when none does."""
        with self._lock:
            if self._model is None:
                errors = []
                for f in self.folders:
                    try:
                        model, tok, _ = model_view.load_folder(f)
                    except Exception as exc:       # noqa: BLE001 (the next folder may hold one; say why not)
                        errors.append(f"{f}: {exc}")
                        continue
                    self._model = (model, tok, f)
                    break
                else:
                    raise ValueError("no model here: " + ("; ".join(errors) or "start with python -m gpt viz FOLDER"))
            return self._model

    def tokenizer(self, which):
        if which == "trained":
            if self.trained is None:
                raise ValueError("train a tokenizer on the left first")
            return self.trained
        return self.model()[1] or _refuse("the model folder has no tokenizer")

    def info(self):
        names = [os.path.basename(os.path.normpath(f)) for f in self.folders]
        return {"folders": names, "sample_text": SAMPLE_TEXT}


def _refuse(message):
    raise ValueError(message)


def build_server(folders, live=None, port=0):
    """A PageServer with the three pages; runs in ``folders`` are replayed into its event stream."""
    state = Folders(folders)
    channel = EventChannel(keep=1_000_000)
    for f in state.folders:
        if os.path.isfile(os.path.join(f, "metrics.csv")):
            for kind, data in run_events(f):
                channel.publish(kind, data)

    def bpe_train(request):
        tok, steps = tokenizer_view.train_steps(tokenizer_view._text(request), int(request.get("merges", 30)))
        state.trained = tok
        return {"merges": steps}

    def tokenize(request):
        return tokenizer_view.encode_steps(state.tokenizer(request.get("which", "trained")),
                                           tokenizer_view._text(request))

    def next_token(request):
        model, tok, folder = state.model()
        return dict(model_view.next_token(model, tok, request), folder=os.path.basename(os.path.normpath(folder)))

    def model_info():
        model, tok, folder = state.model()
        return {"folder": os.path.basename(os.path.normpath(folder)), "tokenizer": tok is not None,
                "family": type(model).__name__, "n_layers": model.cfg.n_layers, "vocab_size": model.cfg.vocab_size}

    info = dict(state.info(), live=live)
    return PageServer([TT_STATIC, STATIC], pages=PAGES, data={"info": info, "model": model_info},
                      api={"bpe_train": bpe_train, "tokenize": tokenize, "next": next_token},
                      channel=channel, port=port)


def serve(folders, open_browser=True, port=0, say=print):
    """``python -m gpt viz``: serve until Ctrl-C."""
    server = build_server(folders, port=port)
    say(f"serving {', '.join(folders) or 'the pages'} at {server.url}  (Ctrl-C stops)")
    if open_browser:
        import webbrowser
        webbrowser.open(server.url)
    server.serve_forever()
    return 0
