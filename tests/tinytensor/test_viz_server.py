"""tinytensor.viz's server: its routes, nothing outside its own files, Host checks, and server-sent events."""
import http.client
import json
import socket

import pytest

from tinytensor.viz import STATIC, EventChannel, PageServer
from tinytensor.viz import events


@pytest.fixture
def server():
    def echo(request):
        if "fail" in request:
            raise ValueError("you asked for it")
        return {"got": request, "nan": float("nan")}
    channel = EventChannel()
    s = PageServer([STATIC], pages={"/": "graph.html"}, data={"d": {"x": [1, float("inf")]}},
                   api={"echo": echo}, channel=channel).start()
    yield s
    s.stop()


def _get(server, path, host=None, method="GET", body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    c.putrequest(method, path, skip_host=True)
    c.putheader("Host", host or f"127.0.0.1:{server.port}")
    for k, v in (headers or {}).items():
        c.putheader(k, v)
    if body is not None:
        c.putheader("Content-Length", str(len(body)))
    c.endheaders(body)
    r = c.getresponse()
    out = r.status, r.getheader("Content-Type"), r.read()
    c.close()
    return out


def test_routes(server):
    status, kind, body = _get(server, "/")
    assert status == 200 and kind.startswith("text/html") and b"graph.js" in body
    status, kind, body = _get(server, "/static/common.js")
    assert status == 200 and kind.startswith("text/javascript") and b"window.TT" in body
    status, kind, body = _get(server, "/data/d.json")
    assert status == 200 and json.loads(body) == {"x": [1, {"$float": "inf"}]}
    assert _get(server, "/nothing")[0] == 404
    assert _get(server, "/data/nothing.json")[0] == 404


@pytest.mark.parametrize("path", ["/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py",
                                  "/static/../../tensor.py", "/../../etc/passwd", "//etc/passwd",
                                  "/static//etc/passwd", "/static/./common.js/..", "/data/../server.py.json",
                                  "/static/graph.html/../../page.py", "/static/%2Fetc%2Fpasswd"])
def test_nothing_outside_its_own_files(server, path):
    status, _, body = _get(server, path)
    assert status == 404 and b"import" not in body and b"root:" not in body


def test_other_hosts_are_refused(server):
    assert _get(server, "/", host="evil.example:80")[0] == 403
    assert _get(server, "/", host=f"localhost:{server.port}")[0] == 200


def test_api_answers_json_and_one_line_errors(server):
    status, _, body = _get(server, "/api/echo", method="POST", body=b'{"a": 1}')
    assert status == 200 and json.loads(body) == {"got": {"a": 1}, "nan": {"$float": "nan"}}
    status, _, body = _get(server, "/api/echo", method="POST", body=b'{"fail": 1}')
    assert status == 400 and json.loads(body) == {"error": "you asked for it"}
    assert _get(server, "/api/echo", method="POST", body=b"[1]")[0] == 400
    assert _get(server, "/api/echo", method="POST", body=b"{nope")[0] == 400
    assert _get(server, "/api/other", method="POST", body=b"{}")[0] == 404


def test_frame_format():
    text = events.frame(7, "step", {"loss": float("nan"), "s": "a\nb"}).decode()
    assert text == 'id: 7\nevent: step\ndata: {"loss":{"$float":"nan"},"s":"a\\nb"}\n\n'
    assert events.preamble() == b"retry: 2000\n\n" and events.ping() == b": ping\n\n"


def _read_events(port, last_id=None, want=1, timeout=10):
    """Read the raw stream until ``want`` events (or pings, counted as None) arrived."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    extra = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
    sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode())
    data = b""
    try:
        while data.count(b"\n\n") < want + 2:       # the headers' blank line, retry:, then the events
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), body.decode()


def test_stream_sends_events_and_resumes_after_last_event_id(server):
    for i in range(3):
        server.channel.publish("step", {"step": i})
    assert server.channel.flush()
    head, body = _read_events(server.port, want=3)
    assert "text/event-stream" in head
    assert body.startswith("retry: 2000\n\n")
    assert "id: 1\nevent: step\ndata: {\"step\":0}\n\n" in body and "id: 3\n" in body
    head, body = _read_events(server.port, last_id=2, want=1)
    assert "id: 1\n" not in body and "id: 2\n" not in body and 'id: 3\nevent: step\ndata: {"step":2}' in body


def test_stream_pings_when_idle(server, monkeypatch):
    monkeypatch.setattr(events, "PING_SECONDS", 0.05)
    head, body = _read_events(server.port, want=2)
    assert ": ping\n\n" in body


def test_publish_never_waits_and_stop_closes_the_port():
    channel = EventChannel(keep=5)
    s = PageServer([STATIC], pages={"/": "graph.html"}, channel=channel).start()
    for i in range(1000):
        channel.publish("x", i)
    assert channel.flush()
    assert [e[2] for e in channel.since(0, timeout=0)] == [995, 996, 997, 998, 999]
    port = s.port
    s.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_a_page_missing_from_the_folders_is_an_error():
    with pytest.raises(ValueError, match="no such file"):
        PageServer([STATIC], pages={"/": "nope.html"})
