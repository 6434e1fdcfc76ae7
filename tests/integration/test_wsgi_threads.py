"""ThreadedWSGIHandler on the wire: applications on worker threads while the loop keeps
serving, output sent as it is produced, backpressure both ways, streaming ``wsgi.input``,
client disconnects, hijack from a worker (a WebSocket echo over wsproto, driven by the
``websockets`` client), nothing of reactor pinned by environ, and ``reactor serve`` choosing
the path (--threads, --interface) and waiting for workers at shutdown."""

from __future__ import annotations

import gc
import hashlib
import os
import signal
import socket
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import wsproto
import wsproto.events as ws_events
from websockets.sync.client import connect as ws_connect

from reactor import Request, ResponseWriter
from reactor.config import Limits, ServerConfig
from reactor.testing import RunningServer, serve_in_thread
from reactor.wsgi_threaded import ClientDisconnected, ThreadedWSGIHandler
from tests.integration.test_cli import reactor_serve, run_cli
from tests.integration.wire import ResponseReader

Environ = dict[str, Any]


@contextmanager
def threaded(
    app: Any, threads: int = 4, backend: str = "selectors", **kwargs: Any
) -> Iterator[RunningServer]:
    handler = ThreadedWSGIHandler(app, threads=threads, **kwargs)
    try:
        with serve_in_thread(handler, backend=backend) as server:
            yield server
    finally:
        assert handler.close(5) == 0  # every application call returned


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while marker not in out:
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


# -- the loop goes on while applications run ---------------------------------------------------


@pytest.mark.parametrize("backend", ["selectors", "asyncio", "uvloop"])
def test_four_requests_run_at_once_on_four_threads(backend: str) -> None:
    # Each call waits until all four are inside the application: only concurrent calls pass.
    barrier = threading.Barrier(4, timeout=5)

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        barrier.wait()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [threading.current_thread().name.encode()]

    with threaded(app, backend=backend) as server:
        socks = [server.connect() for _ in range(4)]
        try:
            for sock in socks:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            names = {ResponseReader(sock).read().body for sock in socks}
        finally:
            for sock in socks:
                sock.close()
    assert len(names) == 4 and all(n.startswith(b"reactor-wsgi-") for n in names)


def test_a_blocked_application_does_not_stop_other_connections() -> None:
    release = threading.Event()

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            assert release.wait(5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    with threaded(app, threads=2) as server, server.connect() as slow, session() as s:
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        assert s.get(server.url + "/fast", timeout=5).text == "/fast"
        release.set()
        assert ResponseReader(slow).read().body == b"/slow"


def test_pieces_are_sent_as_the_application_produces_them() -> None:
    go_on = threading.Event()

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first piece;"
        yield b"second piece;"  # one piece is held back to see whether it is the last
        assert go_on.wait(5)
        yield b"last piece"

    with threaded(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        early = recv_until(sock, b"first piece;")
        assert b"first piece;" in early and b"last piece" not in early
        go_on.set()
        rest = recv_until(sock, b"0\r\n\r\n")
    assert b"last piece" in rest


# -- backpressure ---------------------------------------------------------------------------------


def test_a_worker_waits_while_the_client_does_not_read() -> None:
    piece = os.urandom(64 * 1024)
    count = 512  # 32 MiB
    produced: list[int] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for i in range(count):
            produced.append(i)
            yield piece

    with threaded(app) as server, server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)  # not reading
        # The kernel's buffers, the connection's high-water mark and the worker's send
        # window hold a few MiB at most; the worker waits for the rest.
        assert len(produced) < 128, len(produced)
        digest = hashlib.sha256()
        reader = ResponseReader(sock)
        response = reader.read(timeout=30)
        digest.update(response.body)
    assert len(response.body) == len(piece) * count
    assert digest.digest() == hashlib.sha256(piece * count).digest()
    assert len(produced) == count


def test_the_loop_stops_reading_a_body_the_worker_does_not_consume() -> None:
    total = 32 * 1024 * 1024
    start_reading = threading.Event()
    got: list[str] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        first = environ["wsgi.input"].read(1)  # the body is asked for: reading starts
        assert start_reading.wait(10)
        digest = hashlib.sha256(first)
        while data := environ["wsgi.input"].read(65536):
            digest.update(data)
        got.append(digest.hexdigest())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    body = os.urandom(1 << 20) * 32
    config = ServerConfig(limits=Limits(max_body_size=0))  # a 32 MiB body may come
    handler = ThreadedWSGIHandler(app, threads=2)
    try:
        with serve_in_thread(handler, config=config) as server, server.connect() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n" % total
            )
            sock.setblocking(False)
            sent = 0
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    sent += sock.send(body[sent : sent + 65536])
                except BlockingIOError:
                    time.sleep(0.01)
            # The worker read 1 byte: the server holds its read-ahead and the kernel's
            # buffers, then stops reading; the client cannot push the 32 MiB.
            assert sent < 8 * 1024 * 1024, sent
            start_reading.set()
            sock.setblocking(True)
            sock.sendall(body[sent:])
            response = ResponseReader(sock).read(timeout=30)
    finally:
        assert handler.close(5) == 0
    assert response.body == b"ok"
    assert got == [hashlib.sha256(body).hexdigest()]


# -- wsgi.input ------------------------------------------------------------------------------------


def input_app(environ: Environ, start_response: Any) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    mode = environ["QUERY_STRING"]
    if mode == "lines":
        first = stream.readline()
        limited = stream.readline(3)
        rest = list(stream)
        out = repr([first, limited, *rest]).encode()
    elif mode == "pieces":
        out = b"|".join(iter(lambda: stream.read(5), b""))
    else:
        out = stream.read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [out]


@pytest.mark.parametrize("backend", ["selectors", "asyncio"])
@pytest.mark.parametrize("chunked", [False, True])
def test_wsgi_input_reads_lines_pieces_and_all(chunked: bool, backend: str) -> None:
    body = b"one\ntwo-long\nthree\n\nlast"

    def post(server: RunningServer, query: str) -> bytes:
        if chunked:
            framed = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in (body[:5], body[5:])) + (
                b"0\r\n\r\n"
            )
            head = b"Transfer-Encoding: chunked"
        else:
            framed, head = body, b"Content-Length: %d" % len(body)
        with server.connect() as sock:
            sock.sendall(
                b"POST /?%s HTTP/1.1\r\nHost: t\r\n%s\r\n\r\n%s" % (query.encode(), head, framed)
            )
            return ResponseReader(sock, "POST").read().body

    with threaded(input_app, backend=backend) as server:
        assert post(server, "all") == body
        assert post(server, "pieces") == b"one\nt|wo-lo|ng\nth|ree\n\n|last"
        lines = post(server, "lines")
    assert lines == repr([b"one\n", b"two", b"-long\n", b"three\n", b"\n", b"last"]).encode()


def test_a_client_that_leaves_mid_body_is_an_oserror_in_the_application() -> None:
    seen: list[BaseException] = []
    done = threading.Event()

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        try:
            while environ["wsgi.input"].read(65536):
                pass
        except OSError as exc:
            seen.append(exc)
        finally:
            done.set()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"never seen"]

    with threaded(app) as server:
        with server.connect() as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
            sock.sendall(b"x" * 300_000)
            time.sleep(0.2)
        assert done.wait(5)
    assert len(seen) == 1 and isinstance(seen[0], ClientDisconnected)


# -- hijack from a worker thread -------------------------------------------------------------------


def websocket_echo(environ: Environ, start_response: Any) -> Iterable[bytes]:
    """A WebSocket echo written as a WSGI app: hijack, answer the handshake, echo with
    wsproto over the connection's own buffer pair, on the worker thread."""
    from wsproto.connection import Connection, ConnectionType
    from wsproto.utilities import generate_accept_token

    sock, pair = environ["reactor.hijack"]()
    assert sock.gettimeout() is None  # blocking, as code on a thread expects
    key = environ["HTTP_SEC_WEBSOCKET_KEY"].encode()
    pair.writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + generate_accept_token(key) + b"\r\n\r\n"
    )
    pair.writer.flush()
    ws = Connection(ConnectionType.SERVER)
    try:
        while data := pair.reader.read(65536):
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, ws_events.Message):
                    reply = type(event)(data=event.data, message_finished=event.message_finished)
                    pair.writer.write(ws.send(reply))
                elif isinstance(event, ws_events.Ping):
                    pair.writer.write(ws.send(event.response()))
                elif isinstance(event, ws_events.CloseConnection):
                    pair.writer.write(ws.send(event.response()))
                    pair.writer.flush()
                    return []
            pair.writer.flush()
    finally:
        sock.close()
    return []


def test_websocket_echo_from_a_wsgi_app_on_a_worker_thread() -> None:
    assert wsproto.__version__
    with threaded(websocket_echo) as server:
        with ws_connect(f"ws://127.0.0.1:{server.port}/echo", open_timeout=5) as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
            big = os.urandom(300_000)
            ws.send(big)
            assert ws.recv(timeout=5) == big
        # The hijacked connection left the server's table; the server still serves.
        assert server.call(lambda: server.server.connection_count) == 0


# -- nothing of reactor is pinned by environ ----------------------------------------------------


def test_an_application_keeping_environ_pins_no_request() -> None:
    kept: list[Environ] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        kept.append(environ)  # as an app's reference cycles would
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    inner = ThreadedWSGIHandler(app, threads=2)
    refs: list[weakref.ref[Any]] = []

    async def handler(w: ResponseWriter, r: Request) -> None:
        refs.append(weakref.ref(r))
        refs.append(weakref.ref(w))
        await inner(w, r)

    handler.reactor_streaming = True  # type: ignore[attr-defined]
    gc.disable()
    try:
        with serve_in_thread(handler) as server, session() as s:
            for _ in range(3):
                assert s.post(server.url + "/", data=b"x" * 1000, timeout=5).text == "ok"
        assert len(kept) == 3 and len(refs) == 6
        assert [ref() for ref in refs] == [None] * 6  # freed by reference counting alone
    finally:
        gc.enable()
        assert inner.close(5) == 0


# -- reactor serve ---------------------------------------------------------------------------------

APPS = """
import threading, time

def wsgi_app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1.0)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s on %s" % (environ["PATH_INFO"], threading.current_thread().name)).encode()]

def handler(w, r):
    w.write(b"native")

async def asgi_app(scope, receive, send):
    pass

def odd(a, b, c):
    pass

def ambiguous(x, y):
    start_response = y
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"told"]
"""

FLASK = """
from flask import Flask, request
app = Flask(__name__)

@app.post("/upload")
def upload():
    total = 0
    while data := request.stream.read(65536):
        total += len(data)
    return {"total": total}
"""


def test_a_flask_app_without_wsgi_is_detected_and_runs_on_threads(tmp_path: Path) -> None:
    (tmp_path / "fl.py").write_text(FLASK)
    with reactor_serve("fl:app", cwd=tmp_path) as srv, session() as s:
        assert b"serving fl:app (WSGI, 4 threads) on" in srv.banner
        response = s.post(srv.url + "/upload", data=b"y" * 3_000_000, timeout=10)
        assert response.json() == {"total": 3_000_000}
        assert srv.stop()[0] == 0


def test_threads_zero_runs_the_app_on_the_loop(tmp_path: Path) -> None:
    (tmp_path / "apps.py").write_text(APPS)
    with reactor_serve("apps:wsgi_app", "--threads", "0", cwd=tmp_path) as srv, session() as s:
        assert b"serving apps:wsgi_app (WSGI, on the loop thread) on" in srv.banner
        assert s.get(srv.url + "/x", timeout=5).text == "/x on MainThread"
        assert srv.stop()[0] == 0


def test_interface_wsgi_serves_a_callable_whose_names_say_nothing(tmp_path: Path) -> None:
    (tmp_path / "apps.py").write_text(APPS)
    with reactor_serve("apps:ambiguous", "--interface", "wsgi", cwd=tmp_path) as srv:
        assert b"(WSGI, 4 threads)" in srv.banner
        assert session().get(srv.url + "/", timeout=5).text == "told"
        assert srv.stop()[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["apps:wsgi_app", "--interface", "native"], "looks like a wsgi app"),
        (["apps:handler", "--interface", "asgi"], "looks like a native app"),
        (["apps:asgi_app", "--interface", "wsgi"], "looks like a asgi app"),
        (["apps:asgi_app", "--threads", "2"], "--threads is for WSGI apps"),
        (["apps:asgi_app", "--loop", "selectors"], "an ASGI app needs an asyncio loop"),
        (["apps:odd"], "not a handler(w, r), a WSGI app"),
        (["apps:handler", "--threads", "2"], "--threads is for WSGI apps"),
        (["--threads", "2"], "--threads and --interface need an APP"),
        (["--wsgi", "apps:wsgi_app", "--interface", "asgi"], "--wsgi serves a WSGI app"),
    ],
)
def test_an_app_of_the_wrong_kind_is_a_one_line_usage_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "apps.py").write_text(APPS)
    result = run_cli("serve", "--port", "0", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("reactor serve: error:")


def test_pre_forked_workers_each_start_their_own_threads(tmp_path: Path) -> None:
    (tmp_path / "apps.py").write_text(APPS)
    with reactor_serve("apps:wsgi_app", "--workers", "2", cwd=tmp_path) as srv, session() as s:
        assert b"(WSGI, 4 threads)" in srv.banner and b"2 workers" in srv.banner
        for _ in range(4):
            text = s.get(srv.url + "/w", headers={"Connection": "close"}, timeout=10).text
            assert text.startswith("/w on reactor-wsgi-")
        assert srv.stop(timeout=10)[0] == 0


def test_shutdown_waits_for_a_running_worker(tmp_path: Path) -> None:
    (tmp_path / "apps.py").write_text(APPS)
    with reactor_serve("apps:wsgi_app", "--threads", "2", cwd=tmp_path) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(0.3)  # the worker sleeps 1 s
            srv.proc.send_signal(signal.SIGTERM)
            response = ResponseReader(sock).read(timeout=5)
        assert response.body.startswith(b"/slow on reactor-wsgi-")
        assert response.header("connection") == "close"
        # The one SIGTERM is enough: the server exits once the request is answered (a
        # second signal would race with the end of the process).
        out, _ = srv.proc.communicate(timeout=10)
        status = srv.proc.returncode
    assert status == 0
    assert b"1 connection(s) drained, 0 closed unfinished" in out


# -- a Django project ------------------------------------------------------------------------------

DJANGO_WSGI = """
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application
application = StaticFilesHandler(get_wsgi_application())
"""


def test_a_django_project_admin_login_with_csrf_and_static_files(tmp_path: Path) -> None:
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)],
        check=True,
        timeout=60,
    )
    settings = tmp_path / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + '\nALLOWED_HOSTS = ["127.0.0.1"]\n')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=tmp_path, check=True, timeout=120
    )
    (tmp_path / "served.py").write_text(DJANGO_WSGI)
    with reactor_serve("served:application", "--threads", "4", cwd=tmp_path) as srv:
        assert b"serving served:application (WSGI, 4 threads)" in srv.banner
        s = session()
        response = s.get(srv.url + "/admin/", allow_redirects=False, timeout=10)
        assert response.status_code == 302
        assert response.headers["Location"] == "/admin/login/?next=/admin/"
        login = s.get(srv.url + "/admin/login/?next=/admin/", timeout=10)
        assert login.status_code == 200
        assert "csrftoken" in s.cookies
        marker = 'name="csrfmiddlewaretoken" value="'
        token = login.text.split(marker, 1)[1].split('"', 1)[0]
        css = s.get(srv.url + "/static/admin/css/base.css", timeout=10)
        assert css.status_code == 200
        assert css.headers["Content-Type"].startswith("text/css")
        assert b"body" in css.content
        form = {"username": "nobody", "password": "wrong", "next": "/admin/"}
        no_token = session().post(srv.url + "/admin/login/", data=form, timeout=10)
        assert no_token.status_code == 403  # CSRF verification failed
        headers = {"Referer": srv.url + "/admin/login/"}
        wrong = s.post(
            srv.url + "/admin/login/",
            data={**form, "csrfmiddlewaretoken": token},
            headers=headers,
            timeout=10,
        )
        assert wrong.status_code == 200
        assert "Please enter the correct username and password" in wrong.text
        assert srv.stop()[0] == 0
