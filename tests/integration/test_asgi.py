"""ASGIHandler on the wire: raw ASGI apps for the scope and the edge cases uvicorn's own tests
cover (body pieces, disconnect during the body and after it, sends after the response,
exceptions before and after the head, an app that answers nothing, HTTP/1.0 and 1.1
framing, backpressure, pathsend, work after the response), Starlette and FastAPI driven by
httpx, and ``reactor serve`` with lifespan. Servers run on the asyncio backend (and uvloop
where it matters): ASGI frameworks need an asyncio loop."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from reactor.asgi import ASGIHandler
from reactor.testing import RunningServer, serve_in_thread
from tests.integration.test_cli import reactor_serve, run_cli
from tests.integration.wire import ResponseReader

Scope = dict[str, Any]


@contextmanager
def asgi_served(app: Any, backend: str = "asyncio") -> Iterator[RunningServer]:
    with serve_in_thread(ASGIHandler(app), backend=backend) as server:
        yield server


def client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, trust_env=False, timeout=5)


def read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


async def text(send: Any, body: bytes, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- the scope and receive ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "uvloop"])
def test_the_scope_of_a_request(backend: str) -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(scope)
        await text(send, b"ok")

    with asgi_served(app, backend) as server, client(server) as c:
        response = c.get("/caf%C3%A9/a%20b?x=1&y=%20", headers={"X-One": "1"})
        assert response.text == "ok"
        assert response.headers["content-length"] == "2"
    scope = seen[0]
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/café/a b"
    assert scope["raw_path"] == b"/caf%C3%A9/a%20b"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == ""
    assert (b"x-one", b"1") in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ("127.0.0.1", server.port)
    assert scope["state"] == {}
    assert "http.response.pathsend" in scope["extensions"]


def test_receive_gives_the_body_in_pieces_with_more_body() -> None:
    messages: list[tuple[int, bool]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            assert message["type"] == "http.request"
            messages.append((len(message["body"]), message["more_body"]))
            total += len(message["body"])
            if not message["more_body"]:
                break
        await text(send, str(total).encode())

    body = os.urandom(1 << 20)
    with asgi_served(app) as server, client(server) as c:
        assert c.post("/", content=body).text == str(len(body))
        first = list(messages)
        messages.clear()
        assert c.get("/").text == "0"
    # The 1 MiB body came in several pieces, each but the last with more_body.
    assert len(first) > 2
    assert all(more for _, more in first[:-1]) and not first[-1][1]
    assert sum(n for n, _ in first) == len(body)
    assert messages == [(0, False)]  # a bodiless GET: one empty message


def test_disconnect_during_the_body_is_http_disconnect() -> None:
    got: list[str] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect" or not message["more_body"]:
                got.append(message["type"])
                done.set()
                return

    with asgi_served(app) as server:
        with server.connect() as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc")
            time.sleep(0.2)
        assert done.wait(5)
    assert got == ["http.disconnect"]


def test_disconnect_after_the_body_wakes_a_waiting_receive() -> None:
    got: list[str] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        got.append((await receive())["type"])  # a long poll: waits for the client to leave
        done.set()

    with asgi_served(app) as server:
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(0.2)
            assert not done.is_set()
        assert done.wait(5)
    assert got == ["http.disconnect"]


# -- send -----------------------------------------------------------------------------------------


def test_send_after_the_response_is_complete_raises_and_receive_says_disconnect() -> None:
    after: list[str] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await text(send, b"done")
        after.append((await receive())["type"])
        try:
            await send({"type": "http.response.body", "body": b"more"})
        except RuntimeError as exc:
            after.append(str(exc))
        done.set()

    with asgi_served(app) as server, client(server) as c:
        assert c.get("/").text == "done"
        assert c.get("/").text == "done"  # the connection went on to the next request
        assert done.wait(5)
    assert after[0] == "http.disconnect"
    assert "after the response was complete" in after[1]


def test_an_exception_before_the_head_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        raise ValueError("app failed early")

    with asgi_served(app) as server, client(server) as c:
        assert c.get("/").status_code == 500
    assert "app failed early" in caplog.text


def test_an_exception_after_the_head_aborts_the_response(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("app failed late")

    with asgi_served(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        out = read_all(sock)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and b"partial" in out
    assert not out.endswith(b"0\r\n\r\n")  # no last chunk: the client sees a broken body
    assert "app failed late" in caplog.text


def test_an_app_that_answers_nothing_gets_a_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        return None

    with asgi_served(app) as server, client(server) as c:
        assert c.get("/").status_code == 500
    assert "without completing a response" in caplog.text


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_framing_of_a_streamed_body_on_http_1_0_and_1_1(version: str) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with asgi_served(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/%s\r\nHost: t\r\nConnection: close\r\n\r\n" % version.encode())
        out = read_all(sock)
    head, _, body = out.partition(b"\r\n\r\n")
    if version == "1.1":
        assert b"Transfer-Encoding: chunked" in head
        assert body == b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"
    else:  # no chunked framing on 1.0: the end of the body is the end of the connection
        assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
        assert body == b"one two three"


def test_send_waits_while_the_client_does_not_read() -> None:
    piece = os.urandom(64 * 1024)
    count = 512  # 32 MiB
    sent: list[int] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(count):
            sent.append(i)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with asgi_served(app) as server, server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.5)
        assert len(sent) < 128, len(sent)
        response = ResponseReader(sock).read(timeout=30)
    assert response.body == piece * count


def test_pathsend_sends_the_file(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(path)})

    with asgi_served(app) as server, client(server) as c:
        response = c.get("/")
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))


def test_the_response_does_not_wait_for_work_after_it() -> None:
    release = threading.Event()
    finished = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await text(send, b"answered")
        while not release.is_set():  # a background task after the response
            await asyncio.sleep(0.01)
        finished.set()

    with asgi_served(app) as server, client(server) as c:
        assert c.get("/").text == "answered"
        assert not finished.is_set()
        release.set()
        assert finished.wait(5)


class Item(BaseModel):
    name: str
    price: float


# -- frameworks -----------------------------------------------------------------------------------


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"hello {request.query_params.get('name', 'world')}")

    async def upload(request: Request) -> JSONResponse:
        total = 0
        async for piece in request.stream():
            total += len(piece)
        return JSONResponse({"total": total}, background=BackgroundTask(lambda: None))

    async def numbers(request: Request) -> StreamingResponse:
        async def gen() -> Any:
            for i in range(1000):
                yield f"{i}\n"

        return StreamingResponse(gen(), media_type="text/plain")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/upload", upload, methods=["POST"]),
            Route("/numbers", numbers),
        ]
    )


@pytest.mark.parametrize("backend", ["asyncio", "uvloop"])
def test_a_starlette_app(backend: str) -> None:
    with asgi_served(starlette_app(), backend) as server, client(server) as c:
        assert c.get("/", params={"name": "ada"}).text == "hello ada"
        assert c.post("/upload", content=os.urandom(3_000_000)).json() == {"total": 3_000_000}
        response = c.get("/numbers")
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.text.splitlines()[-1] == "999"
        assert c.get("/missing").status_code == 404


def test_a_fastapi_app() -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.post("/items")
    async def create(item: Item) -> dict[str, Any]:
        return {"name": item.name, "total": item.price * 2}

    with asgi_served(app) as server, client(server) as c:
        assert c.get("/items/5", params={"q": "x"}).json() == {"item_id": 5, "q": "x"}
        assert c.post("/items", json={"name": "a", "price": 1.5}).json() == {
            "name": "a",
            "total": 3.0,
        }
        assert c.post("/items", json={"name": "a"}).status_code == 422
        assert c.get("/openapi.json").json()["info"]["title"] == "FastAPI"


# -- reactor serve ---------------------------------------------------------------------------------

LIFESPAN_APP = """
import contextlib, os
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

@contextlib.asynccontextmanager
async def lifespan(app):
    if os.path.exists("fail-startup"):
        raise RuntimeError("no database")
    yield {"greeting": "hello from startup"}
    with open("shutdown.txt", "w") as f:
        f.write("shut down")

async def home(request):
    return PlainTextResponse(request.state.greeting)

app = Starlette(routes=[Route("/", home)], lifespan=lifespan)
"""


def test_reactor_serve_runs_an_asgi_app_with_its_lifespan(tmp_path: Path) -> None:
    (tmp_path / "sapp.py").write_text(LIFESPAN_APP)
    with reactor_serve("sapp:app", cwd=tmp_path) as srv:
        assert b"serving sapp:app (ASGI) on" in srv.banner
        assert b"(uvloop loop," in srv.banner  # --loop auto: uvloop is installed
        with httpx.Client(trust_env=False, timeout=5) as c:
            assert c.get(srv.url + "/").text == "hello from startup"
        status, _ = srv.stop()
    assert status == 0
    assert (tmp_path / "shutdown.txt").read_text() == "shut down"


def test_a_failing_startup_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "sapp.py").write_text(LIFESPAN_APP)
    (tmp_path / "fail-startup").write_text("")
    result = run_cli("serve", "--port", "0", "--lifespan", "on", "sapp:app", cwd=tmp_path)
    assert result.returncode == 3
    assert "reactor: ASGI lifespan startup failed: RuntimeError: no database" in result.stderr


def test_an_exception_after_the_response_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await text(send, b"complete")
        raise ValueError("after the fact")

    with asgi_served(app) as server, server.connect() as sock:
        reader = ResponseReader(sock)
        for _ in range(2):  # the same connection serves the next request
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            response = reader.read()
            assert (response.status, response.body) == (200, b"complete")
            assert response.header("content-length") == "8"
    assert "after the fact" in caplog.text


def test_head_and_100_continue_and_a_bad_status() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/bad":
            await send({"type": "http.response.start", "status": "200"})
            return
        message = await receive()
        await text(send, b"got %d" % len(message["body"]))

    with asgi_served(app) as server:
        with server.connect() as sock:
            sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
            response = ResponseReader(sock, "HEAD").read()
            assert (response.status, response.body) == (200, b"")
            assert response.header("content-length") == "5"
        with server.connect() as sock:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
            )
            sock.settimeout(5)
            assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")
            sock.sendall(b"abc")
            response = ResponseReader(sock, "POST").read()
            assert response.body == b"got 3"
        with client(server) as c:
            assert c.get("/bad").status_code == 500


def test_an_asgi_request_leaves_no_reference_cycle() -> None:
    import gc
    import weakref

    from reactor import Request, ResponseWriter

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await text(send, b"ok")

    inner = ASGIHandler(app)
    refs: list[weakref.ref[Any]] = []

    async def handler(w: ResponseWriter, r: Request) -> None:
        refs.append(weakref.ref(r))
        refs.append(weakref.ref(w))
        await inner(w, r)

    handler.reactor_streaming = True  # type: ignore[attr-defined]
    gc.disable()
    try:
        with serve_in_thread(handler, backend="asyncio") as server, client(server) as c:
            for _ in range(3):
                assert c.post("/", content=b"x" * 1000).text == "ok"
        assert len(refs) == 6
        assert [ref() for ref in refs] == [None] * 6  # freed by reference counting alone
    finally:
        gc.enable()


# -- the last body message: framed and sent as a handler's return would be ------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "want_length"),
    [
        (200, [], b"hello", "5"),  # one piece: its length is given
        (200, [(b"content-length", b"5")], b"hello", "5"),  # the app's own, kept once
        (204, [], b"", None),  # no body, and no Content-Length for it (RFC 9110 8.6)
        (304, [(b"etag", b'"x"')], b"", None),
        (404, [], b"", "0"),  # an empty body that is one: Content-Length 0
    ],
)
def test_the_last_body_message_is_framed_like_a_returned_handler(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, want_length: str | None
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    with asgi_served(app) as server, server.connect() as sock:
        for _ in range(2):  # and the connection is reused after it
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            response = ResponseReader(sock, "GET").read()
            assert (response.status, response.body) == (status, body)
            assert response.header("content-length") == want_length
            assert response.header("transfer-encoding") is None
            assert len([n for n, _ in response.headers if n.lower() == "content-length"]) == (
                want_length is not None
            )


def test_a_body_shorter_than_its_content_length_aborts(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"9")]}
        )
        await send({"type": "http.response.body", "body": b"short"})

    with asgi_served(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        out = read_all(sock)  # the server closes: the client sees a truncated body
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nshort")
    assert "shorter than the declared Content-Length 9" in caplog.text


# -- the http.response.trailers extension ---------------------------------------------------------


def trailer_app(*, length: bool = False, pieces: int = 2) -> Any:
    """Announces trailers, streams ``pieces`` body messages, then sends two trailer messages
    (``more_trailers``), the way a gRPC-style app sends its status last."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert "http.response.trailers" in scope["extensions"]
        headers = [(b"content-type", b"text/plain")]
        if length:
            headers.append((b"content-length", b"%d" % (3 * pieces)))
        await send(
            {"type": "http.response.start", "status": 200, "headers": headers, "trailers": True}
        )
        for i in range(pieces):
            await send(
                {"type": "http.response.body", "body": b"ab%d" % i, "more_body": i < pieces - 1}
            )
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"c0ffee")],
                "more_trailers": True,
            }
        )
        await send({"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")]})

    return app


@pytest.mark.parametrize("pieces", [1, 3])
def test_trailers_follow_the_body_in_the_last_chunk(pieces: int) -> None:
    with asgi_served(trailer_app(pieces=pieces)) as server, server.connect() as sock:
        reader = ResponseReader(sock, "GET")
        for _ in range(2):  # and the connection is reused after a trailered response
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            response = reader.read()
            assert response.status == 200
            assert response.body == b"".join(b"ab%d" % i for i in range(pieces))
            assert response.header("transfer-encoding") == "chunked"
            assert response.trailers == [("x-checksum", "c0ffee"), ("grpc-status", "0")]


def test_trailers_are_dropped_where_the_response_is_not_chunked() -> None:
    with asgi_served(trailer_app(length=True)) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        response = ResponseReader(sock, "GET").read()  # the app's Content-Length: no chunks
        assert (response.body, response.trailers) == (b"ab0ab1", [])
        assert response.header("content-length") == "6"
    with asgi_served(trailer_app()) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")  # HTTP/1.0: close-delimited
        out = read_all(sock)
    head, _, body = out.partition(b"\r\n\r\n")
    assert body == b"ab0ab1" and b"Transfer-Encoding" not in head and b"c0ffee" not in out


@pytest.mark.parametrize(
    ("announced", "error"),
    [(False, "sent without 'trailers': True"), (True, "before the last body message")],
)
def test_misplaced_trailers_are_the_apps_error(
    announced: bool, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    refused: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [], "trailers": announced}
        )
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        try:
            await send({"type": "http.response.trailers", "headers": [(b"x-a", b"1")]})
        except RuntimeError as exc:
            refused.append(str(exc))
        await send({"type": "http.response.body", "body": b"y"})  # the app goes on
        if announced:
            await send({"type": "http.response.trailers", "headers": []})

    with asgi_served(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        response = ResponseReader(sock, "GET").read()
    assert (response.status, response.body, response.trailers) == (200, b"xy", [])
    assert len(refused) == 1 and error in refused[0]


def test_a_forbidden_trailer_or_none_sent_aborts(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"partial"})
        if scope["path"] == "/forbidden":
            await send({"type": "http.response.trailers", "headers": [(b"content-length", b"1")]})
        # else: returns without the trailers it announced

    for path, logged in (
        ("/forbidden", "'content-length' is not allowed in a trailer section"),
        ("/none", "without sending the trailers it announced"),
    ):
        with asgi_served(app) as server, server.connect() as sock:
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
            out = read_all(sock)
        assert b"7\r\npartial\r\n" in out and not out.endswith(b"0\r\n\r\n")  # cut short
        assert logged in caplog.text
