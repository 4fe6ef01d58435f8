"""``show`` (serve the graph page) and ``export`` (write it as one self-contained HTML file).

The page is plain files in ``static/``: graph.html, graph.js, common.js and style.css, no build step
and nothing fetched from elsewhere. ``export`` writes the same page with its scripts, style and data
inlined (the data in ``<script type="application/json">``), so the file opens from disk with no server.
"""
import os
import re
import webbrowser

from ..atomic import replacing
from .graph import graph_payload
from .jsondata import dumps, for_script_tag
from .server import PageServer, read_static

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_CSS = re.compile(r'<link rel="stylesheet" href="static/([\w.-]+)">')
_JS = re.compile(r'<script src="static/([\w.-]+)"></script>')


class Page:
    """A page being served: ``.url``, ``.stop()``; also a context manager that stops on exit."""

    def __init__(self, server):
        self.server, self.url = server, server.url

    def stop(self):
        """Stop the server and free its port."""
        self.server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return f"<tinytensor.viz page at {self.url}>"


def show(tensor, open_browser=True, fn=None, check=None, names=None, max_nodes=200, port=0):
    """Serve the graph of the computation that made ``tensor`` on http://127.0.0.1:PORT/ and return a
    ``Page`` (``.url``, ``.stop()``). ``open_browser`` opens it in the default browser. ``fn``, ``check``,
    ``names``, ``max_nodes``: see ``graph_payload``. Call before ``backward()`` (which frees the graph);
    the page's own backward pass leaves every ``.grad`` as it was."""
    payload = graph_payload(tensor, fn=fn, check=check, names=names, max_nodes=max_nodes)
    server = PageServer([STATIC], pages={"/": "graph.html"}, data={"graph": payload}, port=port).start()
    if open_browser:
        webbrowser.open(server.url)
    return Page(server)


def export(tensor, path, fn=None, check=None, names=None, max_nodes=200):
    """Write the graph page of ``tensor`` as one HTML file at ``path`` (opens from file://, no server);
    returns the path. Arguments as for ``show``."""
    payload = graph_payload(tensor, fn=fn, check=check, names=names, max_nodes=max_nodes)
    html = page_html([STATIC], "graph.html", {"graph": payload})
    with replacing(os.fspath(path), "w", encoding="utf-8") as f:
        f.write(html)
    return path


def page_html(static_dirs, page, data):
    """The page ``page`` with its style sheets and scripts from ``static_dirs`` inlined and ``data``
    (name -> JSON-able) in ``<script type="application/json" id="tt-data-NAME">`` tags."""
    files = read_static(static_dirs)

    def text(name):
        if name not in files:
            raise ValueError(f"page {page} refers to static/{name}, which is not in {static_dirs}")
        return files[name].decode("utf-8")

    html = text(page)
    html = _CSS.sub(lambda m: "<style>\n" + text(m.group(1)) + "\n</style>", html)
    html = _JS.sub(lambda m: "<script>\n" + text(m.group(1)).replace("</script", "<\\/script") + "\n</script>", html)
    tags = "".join(f'<script type="application/json" id="tt-data-{name}">{for_script_tag(dumps(value))}</script>\n'
                   for name, value in data.items())
    return html.replace("</head>", tags + "</head>", 1)
