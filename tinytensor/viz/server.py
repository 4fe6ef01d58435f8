"""The page's web server: Python's threaded ``http.server`` on 127.0.0.1, a free port, nothing else.

    server = PageServer([STATIC], pages={"/": "graph.html"}, data={"graph": payload})
    server.start()                # a daemon thread; server.url is http://127.0.0.1:PORT/
    ...
    server.stop()

What it answers, and nothing more:
  GET  /  (and each path in ``pages``)   that page, from the static folders
  GET  /static/NAME                      a file of the static folders, read once at start (a fixed list
                                         of names: no path from the request ever reaches the disk)
  GET  /data/NAME.json                   ``data[NAME]`` as JSON (a callable is called per request)
  GET  /events                           the ``channel``'s server-sent events (one stream per page)
  POST /api/NAME                         ``api[NAME](request_json)``'s result as JSON; a ValueError is
                                         answered 400 with its message
Anything else is 404; a request whose Host is not this address is refused (DNS rebinding).
"""
import http.server
import json
import os
import threading
import urllib.parse

from . import events
from .jsondata import dumps

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".json": "application/json", ".png": "image/png",
         ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}
MAX_BODY = 1 << 20       # a POST body larger than this is refused


def read_static(folders):
    """name -> bytes for every plain file (of a known type) directly inside ``folders``; a name found in
    two folders is an error (which one the page gets would be a surprise)."""
    files = {}
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.splitext(name)[1] not in TYPES or not os.path.isfile(path) or os.path.islink(path):
                continue
            if name in files:
                raise ValueError(f"static file {name} is in two of the folders {folders}")
            with open(path, "rb") as f:
                files[name] = f.read()
    return files


class PageServer:
    """Serves one page's static files, data, events and controls on 127.0.0.1 (see the module doc)."""

    def __init__(self, static_dirs, pages, data=None, api=None, channel=None, port=0):
        self.files = read_static(static_dirs)
        for path, name in pages.items():
            if name not in self.files:
                raise ValueError(f"page {path} -> {name}: no such file in {static_dirs}")
        self.pages, self.data, self.api = dict(pages), dict(data or {}), dict(api or {})
        self.channel = channel
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = None

    def start(self):
        """Serve from a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="tt-viz-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        """Serve in this thread until Ctrl-C, then stop cleanly."""
        try:
            self._httpd.serve_forever()
        except KeyboardInterrupt:
            print("\nstopped")
        finally:
            self.stop()

    def stop(self):
        """Stop serving and close the port (open event streams end too)."""
        if self.channel is not None:
            self.channel.close()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()


def _handler(server):

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):     # quiet: the terminal belongs to the user's program
            pass

        def _host_ok(self):
            allowed = {f"127.0.0.1:{server.port}", f"localhost:{server.port}"}
            if self.headers.get("Host") in allowed:
                return True
            self._send(403, b"wrong host\n", "text/plain; charset=utf-8")
            return False

        def _send(self, code, body, kind):
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, code, value):
            self._send(code, dumps(value).encode("utf-8"), TYPES[".json"])

        def do_GET(self):
            if not self._host_ok():
                return
            path = urllib.parse.urlsplit(self.path).path
            if path in server.pages:
                name = server.pages[path]
                return self._send(200, server.files[name], TYPES[os.path.splitext(name)[1]])
            if path.startswith("/static/") and path[8:] in server.files:
                name = path[8:]
                return self._send(200, server.files[name], TYPES[os.path.splitext(name)[1]])
            if path.startswith("/data/") and path.endswith(".json") and path[6:-5] in server.data:
                value = server.data[path[6:-5]]
                try:
                    return self._json(200, value() if callable(value) else value)
                except ValueError as exc:
                    return self._json(400, {"error": str(exc)})
            if path == "/events" and server.channel is not None:
                return self._stream()
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

        do_HEAD = do_GET

        def do_POST(self):
            if not self._host_ok():
                return
            path = urllib.parse.urlsplit(self.path).path
            name = path[5:] if path.startswith("/api/") else None
            if name not in server.api:
                return self._send(404, b"not found\n", "text/plain; charset=utf-8")
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 <= length <= MAX_BODY:
                    raise ValueError(f"request body of {length} bytes (at most {MAX_BODY})")
                request = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(request, dict):
                    raise ValueError("the request must be a JSON object")
                self._json(200, server.api[name](request))
            except (ValueError, TypeError, KeyError) as exc:
                self._json(400, {"error": str(exc) or type(exc).__name__})

        def _stream(self):
            channel = server.channel
            try:
                last = int(self.headers.get("Last-Event-ID") or 0)
            except ValueError:
                last = 0
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command == "HEAD":
                return
            try:
                self.wfile.write(events.preamble())
                while not channel.closed:
                    batch = channel.since(last, events.PING_SECONDS)
                    for event_id, kind, data in batch:
                        self.wfile.write(events.frame(event_id, kind, data))
                        last = event_id
                    if not batch:
                        self.wfile.write(events.ping())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler
