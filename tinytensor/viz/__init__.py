"""See it happen: the graph behind a tensor as a local web page, stepped through backward.

    import tinytensor.viz as viz
    page = viz.show(loss)              # serves the page on 127.0.0.1 and opens the browser
    print(page.url); ...; page.stop()
    viz.export(loss, "graph.html")     # the same page as one file that opens from disk

Click a box to see its op, shape, dtype, value and gradient, the op's formula and where its backward
is written. The stepper (buttons, or the arrow keys) walks backward one node at a time, from the state
before backward to the state after it. Pass ``fn=lambda: compute_loss()`` to see central finite
differences beside autograd's gradients. Nothing here is imported by ``import tinytensor``.

The server (``PageServer``), the event stream (``EventChannel``) and the JSON helpers are for other
pages too: ``gpt.viz`` builds its training, tokenizer and model pages on them.
"""
from .events import EventChannel
from .page import STATIC, Page, export, page_html, show
from .server import PageServer

__all__ = ["show", "export", "Page", "PageServer", "EventChannel", "STATIC", "page_html"]
