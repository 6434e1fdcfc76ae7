"""WSGIHandler: PEP 3333 apps (each wrapped in ``wsgiref.validate.validator``, whose warnings
are errors here) served in-process with ``serve_in_thread`` and driven by ``requests`` and raw
sockets; and a real Flask app served by ``reactor serve --wsgi`` as a subprocess."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
import requests

from reactor.testing import RunningServer, serve_in_thread
from reactor.wsgi import WSGIHandler
from reactor.wsgi_threaded import ThreadedWSGIHandler
from tests.integration.test_cli import reactor_serve, run_cli

Environ = dict[str, Any]

SHOWN = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "HTTP_X_ONE",
    "HTTP_X_MULTI",
    "HTTP_X_UNDER",
    "HTTP_COOKIE",
    "wsgi.url_scheme",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
)


def echo_environ(environ: Environ, start_response: Any) -> Iterable[bytes]:
    shown = {k: environ[k] for k in SHOWN if k in environ}
    length = environ.get("CONTENT_LENGTH")
    # wsgi.input_terminated: without a CONTENT_LENGTH (a chunked body), read to the end.
    if length:
        body = environ["wsgi.input"].read(int(length))
    else:  # wsgiref's validator allows read(n) only
        body = b"".join(iter(lambda: environ["wsgi.input"].read(65536), b""))
    shown["body"] = body.decode("latin-1")
    shown["SERVER_SOFTWARE"] = environ["SERVER_SOFTWARE"]
    shown["keys"] = sorted(k for k in environ if k.startswith("reactor."))
    shown["version"] = list(environ["wsgi.version"])
    shown["has_hijack"] = callable(environ["reactor.hijack"])
    data = json.dumps(shown).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("X-A", "1"), ("X-A", "2")])
    return [data]


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # loopback only, never a proxy
    return s


@pytest.fixture(params=["loop", "threads"])
def mode(request: pytest.FixtureRequest) -> str:
    """Each test runs on both paths: the app on the loop (--threads 0) and on worker threads."""
    return str(request.param)


@contextmanager
def served(mode: str, app: Any, validate: bool = True, **kwargs: Any) -> Iterator[RunningServer]:
    """A server for ``app`` on the path ``mode`` names; a threaded handler's workers must all
    have returned when the test ends."""
    if validate:
        app = validator(app)
    handler: Any
    if mode == "threads":
        handler = ThreadedWSGIHandler(app, threads=2, **kwargs)
    else:
        handler = WSGIHandler(app, **kwargs)
    try:
        with serve_in_thread(handler) as server:
            yield server
    finally:
        if mode == "threads":
            assert handler.close(5) == 0


def raw(server: RunningServer, data: bytes) -> bytes:
    with server.connect() as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


# -- environ -------------------------------------------------------------------------------------


def test_environ_from_a_request(mode: str) -> None:
    with served(mode, echo_environ) as server, session() as s:
        response = s.post(
            server.url + "/caf%C3%A9/a%20b?x=1&y=%20",
            data=b"name=value",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-One": "1",
                "X_Under": "spoofed",
                "Cookie": "a=1",
            },
            timeout=5,
        )
        assert response.status_code == 200
        assert response.headers["X-A"] == "1, 2"  # both header lines were sent
        env = response.json()
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    # PEP 3333: PATH_INFO is percent-decoded and carried as latin-1 (bytes as code points).
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/a b"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9/a b"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == "10"
    assert env["body"] == "name=value"
    assert env["HTTP_X_ONE"] == "1"
    assert "HTTP_X_UNDER" not in env  # a name with "_" could spoof a proxy's header
    assert env["HTTP_COOKIE"] == "a=1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["version"] == [1, 0]
    assert env["wsgi.multithread"] is (mode == "threads")
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["has_hijack"] is True
    assert env["SERVER_SOFTWARE"].startswith("reactor/")
    # Nothing of reactor's request objects: an app's cycles through environ pin none of them.
    assert env["keys"] == ["reactor.hijack"]


def test_content_length_is_the_parsed_number(mode: str) -> None:
    with served(mode, echo_environ) as server:
        out = raw(
            server,
            b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length:  003 \r\nConnection: close\r\n\r\nabc",
        )
        env = json.loads(out.partition(b"\r\n\r\n")[2])
        assert (env["CONTENT_LENGTH"], env["body"]) == ("3", "abc")
        out = raw(server, b"GET /p HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert "CONTENT_LENGTH" not in json.loads(out.partition(b"\r\n\r\n")[2])


def test_repeated_headers_are_joined_and_a_chunked_body_is_whole(mode: str) -> None:
    with served(mode, echo_environ) as server:
        out = raw(
            server,
            b"POST /p HTTP/1.1\r\nHost: t\r\nX-Multi: a\r\nX-Multi: b\r\nCookie: a=1\r\n"
            b"Cookie: b=2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    env = json.loads(body)
    assert env["HTTP_X_MULTI"] == "a, b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["body"] == "abcde"
    # On the loop the body is whole before the app runs; on threads it streams (no length).
    assert env.get("CONTENT_LENGTH") == ("5" if mode == "loop" else None)
    assert "CONTENT_TYPE" not in env


def test_script_name_mounts_the_app(mode: str) -> None:
    with served(mode, echo_environ, script_name="/app/") as server, session() as s:
        env = s.get(server.url + "/app/x/y", timeout=5).json()
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/x/y")
        env = s.get(server.url + "/app", timeout=5).json()
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "")
        assert s.get(server.url + "/application", timeout=5).status_code == 404


# -- responses -----------------------------------------------------------------------------------


def test_head_request_gets_headers_only(mode: str) -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]

    with served(mode, app) as server:
        out = raw(server, b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 5\r\n" in out
    assert out.endswith(b"\r\n\r\n")


def test_write_callable_and_iterable_both_reach_the_client(mode: str) -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        write = start_response("201 Created", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and ", b"", b"returned"]

    with served(mode, app) as server, session() as s:
        response = s.get(server.url, timeout=5)
    assert response.status_code == 201
    assert response.content == b"written and returned"


def test_large_streamed_response_with_backpressure(mode: str) -> None:
    piece = bytes(range(256)) * 256  # 64 KiB
    count = 512  # 32 MiB: more than the kernel buffers of a loopback connection hold

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (piece for _ in range(count))

    with served(mode, app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        time.sleep(0.3)  # not reading: the server must wait for us, not buffer 32 MiB
        held = server.call(lambda: [c._writer.buffered() for c in server.server._connections])
        assert held and max(held) < 1024 * 1024
        raw = bytearray()
        while chunk := sock.recv(1 << 20):
            raw += chunk
    head, _, body = bytes(raw).partition(b"\r\n\r\n")
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head
    decoded = bytearray()
    pos = 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol], 16)
        if not size:
            break
        decoded += body[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
    assert len(decoded) == len(piece) * count
    assert decoded == piece * count


def test_file_wrapper_sends_the_file(tmp_path: Path, mode: str) -> None:
    data = bytes(range(256)) * 1000
    (tmp_path / "f.bin").write_bytes(data)
    closed: list[bool] = []

    class Tracked:
        def __init__(self) -> None:
            self.f = open(tmp_path / "f.bin", "rb")  # noqa: SIM115

        def read(self, n: int) -> bytes:
            return self.f.read(n)

        def close(self) -> None:
            closed.append(True)
            self.f.close()

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](Tracked(), 8192)

    with served(mode, app) as server, session() as s:
        response = s.get(server.url, timeout=5)
    assert response.content == data
    assert closed == [True]


@pytest.mark.parametrize("declared", [None, 100_000])
def test_file_wrapper_of_a_real_file_uses_sendfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, declared: int | None
) -> None:
    """A wrapped regular file goes out by os.sendfile, from its current position, no more
    than the declared Content-Length (PEP 3333, "Optional Platform-Specific File Handling")."""
    import os

    data = os.urandom(1 << 20)
    (tmp_path / "f.bin").write_bytes(data)
    calls: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        calls.append(count)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", counting)

    def app(environ: Environ, start_response: Any) -> Any:
        headers = [("Content-Type", "application/octet-stream")]
        if declared is not None:
            headers.append(("Content-Length", str(declared)))
        start_response("200 OK", headers)
        f = open(tmp_path / "f.bin", "rb")  # noqa: SIM115
        f.seek(10)
        return environ["wsgi.file_wrapper"](f)

    # Not wrapped in wsgiref's validator: it would hide the FileWrapper behind an iterator.
    with serve_in_thread(WSGIHandler(app)) as server, session() as s:
        response = s.get(server.url, timeout=10)
    expected = data[10:] if declared is None else data[10 : 10 + declared]
    assert response.content == expected
    assert response.headers["Content-Length"] == str(len(expected))
    assert calls


# -- errors and close() --------------------------------------------------------------------------


class ClosingIterable:
    """A response iterable that records its close(); optionally fails or is endless."""

    log: list[str]

    def __init__(self, log: list[str], fail_at: int = -1, endless: bool = False) -> None:
        self.log = log
        self.fail_at = fail_at
        self.endless = endless
        self.n = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        self.n += 1
        if self.n == self.fail_at:
            raise RuntimeError("boom in the iterable")
        if self.n > 3 and not self.endless:
            raise StopIteration
        return b"x" * 65536

    def close(self) -> None:
        self.log.append("closed")


@pytest.mark.parametrize("case", ["normal", "fails", "client gone"])
def test_close_is_always_called(case: str, caplog: pytest.LogCaptureFixture, mode: str) -> None:
    log: list[str] = []
    done = threading.Event()

    def app(environ: Environ, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        iterable = ClosingIterable(
            log, fail_at=2 if case == "fails" else -1, endless=case == "client gone"
        )
        original = iterable.close

        def close() -> None:
            original()
            done.set()

        iterable.close = close  # type: ignore[method-assign]
        return iterable

    with served(mode, app, validate=False) as server:
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            if case == "client gone":
                sock.recv(1000)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            else:
                while sock.recv(65536):
                    pass
        assert done.wait(5)
    assert log == ["closed"]
    if case == "fails":
        assert "boom in the iterable" in caplog.text


def test_exception_before_the_head_gives_500(caplog: pytest.LogCaptureFixture, mode: str) -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        raise ValueError("app failed")

    with served(mode, app) as server, session() as s:
        assert s.get(server.url, timeout=5).status_code == 500
    assert "app failed" in caplog.text


def test_start_response_with_exc_info_replaces_an_unsent_response(mode: str) -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
        try:
            raise KeyError("missing")
        except KeyError:
            start_response("503 Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"sorry"]

    with served(mode, app) as server, session() as s:
        response = s.get(server.url, timeout=5)
    assert response.status_code == 503
    assert "X-First" not in response.headers
    assert response.content == b"sorry"


def test_start_response_with_exc_info_after_the_head_reraises(mode: str) -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            yield b"partial "
            yield b"more "  # the first piece is sent before this one is asked for
            try:
                raise KeyError("late")
            except KeyError:
                start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
            yield b"never"

        return body()

    with served(mode, app, validate=False) as server:
        out = raw(server, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    # The head went out; the error ends the response without its last chunk.
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"partial " in out
    assert not out.endswith(b"0\r\n\r\n")
    assert b"never" not in out


def test_second_start_response_without_exc_info_is_an_error(mode: str) -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x"]

    with served(mode, app, validate=False) as server, session() as s:
        assert s.get(server.url, timeout=5).status_code == 500


# -- hijack --------------------------------------------------------------------------------------


def test_hijack_hands_over_the_socket_and_the_pair(mode: str) -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        sock, pair = environ["reactor.hijack"]()
        sock.setblocking(True)
        sock.settimeout(5)
        pair.writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\n")
        pair.writer.flush()
        line = pair.reader.readline()
        pair.writer.write(b"echo: " + line)
        pair.writer.flush()
        sock.close()
        return []

    with served(mode, app, validate=False) as server, server.connect() as sock:
        # The line after the head arrives with it: the pair's reader must have it.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\n\r\nhello\n")
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    assert out == b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\necho: hello\n"


# -- Flask over `reactor serve --wsgi` ------------------------------------------------------------

FLASK_APP = """
from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)


class Teapot(Exception):
    pass


@app.errorhandler(Teapot)
def teapot(exc):
    return jsonify(error="teapot", detail=str(exc)), 418


@app.errorhandler(404)
def not_found(exc):
    return jsonify(error="not found", path=request.path), 404


@app.get("/")
def index():
    return "hello from flask"


@app.get("/users/<int:uid>")
def user(uid):
    return jsonify(id=uid, q=request.args.get("q"))


@app.post("/json")
def echo_json():
    data = request.get_json()
    return jsonify(got=data, length=request.content_length), 201


@app.post("/form")
def form():
    return f"{request.form['name']} is {request.form['age']}"


@app.get("/stream")
def stream():
    n = int(request.args.get("n", "3"))

    def generate():
        for i in range(n):
            yield f"line {i} of {request.args['n']}\\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/teapot")
def brew():
    raise Teapot("short and stout")
"""


def test_flask_app_over_the_cli(tmp_path: Path) -> None:
    (tmp_path / "flaskapp.py").write_text(FLASK_APP)
    with reactor_serve("--wsgi", "flaskapp:app", cwd=tmp_path) as srv, session() as s:
        assert b"serving flaskapp:app (WSGI, 4 threads)" in srv.banner
        url = srv.url
        response = s.get(url + "/", timeout=5)
        assert (response.status_code, response.text) == (200, "hello from flask")
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"

        assert s.get(url + "/users/42?q=a%20b", timeout=5).json() == {"id": 42, "q": "a b"}

        response = s.post(url + "/json", json={"a": [1, 2]}, timeout=5)
        assert response.status_code == 201
        assert response.json() == {"got": {"a": [1, 2]}, "length": 13}

        response = s.post(url + "/form", data={"name": "Ada", "age": "36"}, timeout=5)
        assert response.text == "Ada is 36"

        response = s.get(url + "/stream?n=500", stream=True, timeout=5)
        assert response.headers["Transfer-Encoding"] == "chunked"
        lines = list(response.iter_lines())
        assert len(lines) == 500
        assert lines[499] == b"line 499 of 500"

        response = s.get(url + "/teapot", timeout=5)
        assert response.status_code == 418
        assert response.json() == {"error": "teapot", "detail": "short and stout"}

        response = s.get(url + "/nowhere", timeout=5)
        assert response.status_code == 404
        assert response.json() == {"error": "not found", "path": "/nowhere"}

        # Interleaved streams on one loop keep their own request contexts.
        a = s.get(url + "/stream?n=2000", stream=True, timeout=5)
        b = session().get(url + "/stream?n=1000", stream=True, timeout=5)
        assert len(list(b.iter_lines())) == 1000
        assert len(list(a.iter_lines())) == 2000

        status, _ = srv.stop()
        assert status == 0


def test_wsgi_and_app_together_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("def app(w, r):\n    pass\n")
    result = run_cli("serve", "--wsgi", "m:app", "m:app", cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
