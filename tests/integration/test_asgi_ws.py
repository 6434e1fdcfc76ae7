"""ASGI WebSockets on the wire (reactor/asgi_ws.py): Starlette and raw ASGI apps driven by
the ``websockets`` client: echo of text and bytes (a large message too), subprotocols, close
codes both ways, a disconnect without a close frame, a close before the accept (403), an app
that never accepts, and the hijacked connection leaving the server and being closed when the
app returns."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from reactor.asgi import ASGIHandler
from reactor.testing import RunningServer, serve_in_thread

Scope = dict[str, Any]


@contextmanager
def asgi_served(app: Any, backend: str = "asyncio") -> Iterator[RunningServer]:
    with serve_in_thread(ASGIHandler(app), backend=backend) as server:
        yield server


def ws_url(server: RunningServer, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def starlette_app(events: list[Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def echo(websocket: WebSocket) -> None:
        offered = websocket.scope["subprotocols"]
        await websocket.accept(subprotocol="chat" if "chat" in offered else None)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    events.append(("disconnect", message.get("code")))
                    return
                if message.get("text") == "close please":
                    await websocket.close(code=4001, reason="as asked")
                    events.append("closed by the app")
                    return
                if message.get("text") is not None:
                    await websocket.send_text(message["text"])
                else:
                    await websocket.send_bytes(message["bytes"])
        except WebSocketDisconnect as exc:
            events.append(("disconnect", exc.code))

    return Starlette(routes=[WebSocketRoute("/ws", echo)])


@pytest.mark.parametrize("backend", ["asyncio", "uvloop"])
def test_a_starlette_websocket_echoes_text_and_bytes(backend: str) -> None:
    events: list[Any] = []
    with asgi_served(starlette_app(events), backend) as server:
        with connect(ws_url(server), subprotocols=["chat"], max_size=None) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "chat"
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
            big = os.urandom(2 * 1024 * 1024)
            ws.send(big)
            assert ws.recv(timeout=10) == big
            # The hijacked connection left the server's table.
            assert server.call(lambda: server.server.connection_count) == 0
        # The client's close (1000) reaches the app as websocket.disconnect.
        for _ in range(100):
            if events:
                break
            threading.Event().wait(0.02)
    assert events == [("disconnect", 1000)]


def test_the_app_closes_with_a_code_and_reason() -> None:
    events: list[Any] = []
    with asgi_served(starlette_app(events)) as server, connect(ws_url(server)) as ws:
        ws.send("close please")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "as asked")
    assert events == ["closed by the app"]


def test_tcp_closing_without_a_close_frame_is_code_1006() -> None:
    seen: list[Any] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        seen.append(await receive())
        seen.append(await receive())
        done.set()

    with asgi_served(app) as server, connect(ws_url(server)) as ws:
        ws.send("one")
        ws.socket.shutdown(socket.SHUT_RDWR)  # gone, without a close frame
        assert done.wait(5)
    assert seen == [
        {"type": "websocket.receive", "text": "one"},
        {"type": "websocket.disconnect", "code": 1006},
    ]


def test_a_close_before_the_accept_is_http_403() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        await receive()
        await send({"type": "websocket.close", "code": 1008})

    with asgi_served(app) as server:
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(server), open_timeout=5)
        assert info.value.response.status_code == 403
        assert server.call(lambda: server.server.connection_count) <= 1  # not hijacked


def test_an_app_that_never_accepts_gets_403_and_one_that_raises_gets_500() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/raise":
            raise ValueError("no websocket for you")

    with asgi_served(app) as server:
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(server, "/quiet"), open_timeout=5)
        assert info.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(server, "/raise"), open_timeout=5)
        assert info.value.response.status_code == 500


def test_the_socket_is_closed_when_the_app_returns() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "bye " + message["text"]})
        # returns without a close: the server sends one (1000) and closes TCP

    with asgi_served(app) as server, connect(ws_url(server), open_timeout=5) as ws:
        ws.send("now")
        assert ws.recv(timeout=5) == "bye now"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000


def test_a_message_over_the_limit_closes_with_1009() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            seen.append(message.get("text", message.get("code")))
            if message["type"] == "websocket.disconnect":
                return

    handler = ASGIHandler(app, max_message=1000)
    with serve_in_thread(handler, backend="asyncio") as server, connect(ws_url(server)) as ws:
        ws.send("a" * 1000)  # at the limit: delivered
        ws.send("b" * 1001)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert seen == ["a" * 1000, 1009]
