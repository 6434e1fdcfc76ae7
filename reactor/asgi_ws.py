"""ASGI WebSocket sessions: an ASGI app's ``websocket`` scope on a hijacked connection.

Owns one WebSocket session: ``websocket.connect`` first, then on ``websocket.accept`` the 101
answer through the ordinary ResponseWriter and ``w.hijack()`` (the connection leaves HTTP
parsing and the server's table exactly as a native hijack does), and from there the frames,
done by wsproto (sans-IO) over a ``reactor.stream.Stream`` on the same loop and buffer pair:
``websocket.receive`` (whole messages, text or bytes; pings answered), ``websocket.send``
(with ``drain`` backpressure), ``websocket.close`` with its code and reason, and
``websocket.disconnect`` with the peer's code (1006 when TCP ended without a close frame). A
``websocket.close`` before the accept is answered with HTTP 403, as uvicorn does. The socket
is closed, and everything freed, when the application returns. It must not parse HTTP: the
upgrade request was parsed by the server, and ``is_upgrade`` only reads its headers.
Tests: tests/integration/test_asgi_ws.py.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import MutableMapping
from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

from .errors import ReactorError
from .loop.base import Loop
from .request import Request
from .response import ResponseWriter
from .stream import Stream

__all__ = ["WebSocketDisconnected", "WebSocketSession", "is_upgrade"]

log = logging.getLogger("reactor.asgi")

#: Bytes read from the socket per receive.
READ_PIECE = 64 * 1024

#: Largest message a client may send by default (bytes, all fragments); over it: close 1009.
#: ``reactor serve`` passes --max-body-size.
MAX_MESSAGE = 16 * 1024 * 1024


class WebSocketDisconnected(OSError):
    """``send`` on a WebSocket whose peer is gone (an OSError, as uvicorn's)."""


def is_upgrade(r: Request) -> bool:
    """RFC 6455 4.2.1: a GET with ``Upgrade: websocket``, ``Connection: upgrade``, version 13
    and a key."""
    if r.method != "GET":
        return False
    headers = r.headers
    if (headers.get("upgrade") or "").lower() != "websocket":
        return False
    tokens = {t.strip().lower() for t in (headers.get("connection") or "").split(",")}
    return (
        "upgrade" in tokens
        and headers.get("sec-websocket-version") == "13"
        and bool(headers.get("sec-websocket-key"))
    )


class WebSocketSession:
    """``receive`` and ``send`` of one websocket scope (see the module docstring)."""

    def __init__(
        self, w: ResponseWriter, r: Request, loop: Loop, max_message: int = MAX_MESSAGE
    ) -> None:
        self._w: ResponseWriter | None = w
        self._max_message = max_message  # 0: no limit
        self._key = (r.headers.get("sec-websocket-key") or "").encode("latin-1")
        self._loop = loop
        self._stream: Stream | None = None
        self._ws = Connection(ConnectionType.SERVER)
        self._connected = False  # websocket.connect was received
        self._accepted = False
        self._closed = False  # we sent a close (or the peer's close was answered)
        self._gone = False  # disconnect delivered or the stream is broken
        self._inbox: deque[dict[str, Any]] = deque()
        self._fragments: list[Any] = []
        self._size = 0

    # -- receive -------------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        while not self._inbox:
            stream = self._stream
            if stream is None or self._gone:
                return {"type": "websocket.disconnect", "code": 1006}
            try:
                data = await stream.read(READ_PIECE)
            except ReactorError:
                data = b""
            if not data:
                self._gone = True
                return {"type": "websocket.disconnect", "code": 1006}
            self._ws.receive_data(data)
            try:
                for event in self._ws.events():
                    self._event(stream, event)
            except RemoteProtocolError as exc:
                log.info("WebSocket protocol error from the client: %s", exc)
                if exc.event_hint is not None:
                    self._write(stream, exc.event_hint)
                self._inbox.append({"type": "websocket.disconnect", "code": 1002})
            await self._drain(stream)
        message = self._inbox.popleft()
        if message["type"] == "websocket.disconnect":
            self._gone = True
        return message

    def _event(self, stream: Stream, event: Event) -> None:
        if isinstance(event, Message):
            self._size += len(event.data)
            if self._max_message and self._size > self._max_message:
                self._write(stream, CloseConnection(1009, "message too big"))
                self._closed = True
                self._inbox.append({"type": "websocket.disconnect", "code": 1009})
                return
            self._fragments.append(event.data)
            if not event.message_finished:
                return
            parts, self._fragments, self._size = self._fragments, [], 0
            if isinstance(event, TextMessage):
                self._inbox.append({"type": "websocket.receive", "text": "".join(parts)})
            else:
                self._inbox.append({"type": "websocket.receive", "bytes": b"".join(parts)})
        elif isinstance(event, Ping):
            self._write(stream, event.response())
        elif isinstance(event, CloseConnection):
            if self._ws.state is ConnectionState.REMOTE_CLOSING:
                self._write(stream, event.response())
            self._closed = True
            message: dict[str, Any] = {"type": "websocket.disconnect", "code": event.code}
            if event.reason:
                message["reason"] = event.reason
            self._inbox.append(message)

    # -- send ------------------------------------------------------------------------------------

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message.get("type")
        if not self._accepted:
            if kind == "websocket.accept":
                self._accept(message)
                return
            if kind == "websocket.close":
                self._deny()
                return
            raise RuntimeError(f"ASGI message {kind!r} sent before 'websocket.accept'")
        if self._closed or self._gone:
            if kind in ("websocket.send", "websocket.close"):
                raise WebSocketDisconnected(f"{kind!r} on a closed WebSocket")
            raise RuntimeError(f"unexpected ASGI message type {kind!r} on a WebSocket")
        stream = self._stream
        assert stream is not None
        if kind == "websocket.send":
            data, text = message.get("bytes"), message.get("text")
            if data is not None:
                event: Event = BytesMessage(data=bytes(data))
            elif text is not None:
                event = TextMessage(data=str(text))
            else:
                raise TypeError("websocket.send needs 'bytes' or 'text'")
            self._write(stream, event)
            await self._drain(stream)
        elif kind == "websocket.close":
            code = int(message.get("code") or 1000)
            self._write(stream, CloseConnection(code, message.get("reason") or ""))
            self._closed = True
            await self._drain(stream)
        elif kind == "websocket.accept":
            raise RuntimeError("'websocket.accept' sent twice")
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} on a WebSocket")

    def _accept(self, message: MutableMapping[str, Any]) -> None:
        w = self._w
        assert w is not None
        w.headers.set("Upgrade", "websocket")
        w.headers.set("Connection", "Upgrade")
        w.headers.set("Sec-WebSocket-Accept", generate_accept_token(self._key).decode())
        subprotocol = message.get("subprotocol")
        if subprotocol:
            w.headers.set("Sec-WebSocket-Protocol", subprotocol)
        for name, value in message.get("headers", ()):
            w.headers.add(name.decode("latin-1"), value.decode("latin-1"))
        w.write_header(101)
        sock, pair = w.hijack()  # the 101 goes out first; the pair may hold early frames
        self._w = None
        self._stream = Stream(self._loop, sock, pair)
        self._accepted = True

    def _deny(self) -> None:
        """A close before the accept: HTTP 403 (the handler's response ends the request)."""
        w = self._w
        assert w is not None
        body = b"403 Forbidden\n"
        w.headers.set("Content-Type", "text/plain; charset=utf-8")
        w.headers.set("Content-Length", str(len(body)))
        w.write_header(403)
        w.write(body)
        self._w = None
        self._accepted = True
        self._closed = True
        self._gone = True

    def _write(self, stream: Stream, event: Event) -> None:
        try:
            data = self._ws.send(event)
        except LocalProtocolError as exc:  # e.g. sending after the close handshake
            raise WebSocketDisconnected(str(exc)) from None
        try:
            stream.write(data)
        except ReactorError:
            self._gone = True

    async def _drain(self, stream: Stream) -> None:
        try:
            await stream.drain()
        except ReactorError:
            self._gone = True
            raise WebSocketDisconnected("the client is gone") from None

    # -- the end ---------------------------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        """Whether the app answered the handshake (accepted, or denied with 403)."""
        return self._accepted

    async def finish(self) -> None:
        """The app returned: a close frame if none went out, then close the socket."""
        stream = self._stream
        self._stream = None
        if stream is None:
            return
        try:
            if not self._closed and not self._gone:
                self._write(stream, CloseConnection(1000))
            await stream.aclose()
        except (ReactorError, WebSocketDisconnected):
            stream.close()
