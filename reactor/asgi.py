"""ASGIHandler: an ASGI 3 application (HTTP and lifespan) served as a reactor handler.

Owns the translation between one reactor request and one ASGI ``http`` cycle: the scope built
from the parsed head, ``receive`` over the request's streaming body (``http.request`` pieces
with ``more_body``, then ``http.disconnect`` when the client goes away or the response is
complete), ``send`` onto the ResponseWriter (``http.response.start``, ``http.response.body``
with ``more_body``, the ``http.response.pathsend`` extension with ``w.sendfile``, the
``http.response.trailers`` extension with ``w.trailers`` (sent in the last chunk; a response
that is not chunked drops them, as for any handler); a body piece
followed by more is flushed at once and ``send`` waits while output is above the high-water
mark), and the ``lifespan`` protocol (``Lifespan``, run by ``reactor serve`` around the
server). It must not parse HTTP or touch a socket: it speaks the handler API (``w``, ``r``).

A response's last body message is sent at once (a one-piece body with a Content-Length),
so work the app does after it (a Starlette background task) does not keep the client
waiting; the app's later ``receive`` says ``http.disconnect`` and a later ``send`` raises. An
exception before the response starts is a 500; after the head went out, the connection is
aborted; after the response is complete, it is only logged.
ASGI applications (Starlette, FastAPI, anyio) need an asyncio loop: serve them on the asyncio
or uvloop backend (``reactor serve`` picks one). Tests: tests/integration/test_asgi.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from .errors import BrokenConnectionError, ConnectionClosedError
from .loop.base import Loop
from .loop.futures import Future
from .request import Request, StreamingBody
from .response import ResponseWriter

__all__ = ["ASGIApp", "ASGIHandler", "Lifespan", "LifespanFailure"]

log = logging.getLogger("reactor.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The ``asgi`` key of every scope.
ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}

#: Body bytes per ``http.request`` message.
RECEIVE_PIECE = 64 * 1024

_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}

# _HTTPCycle.trailers: none announced; announced, the body still coming; the body is sent.
_NO_TRAILERS = 0
_TRAILERS_DUE = 1
_BODY_SENT = 2


def _decode_fields(message: Message, what: str) -> list[tuple[str, str]]:
    """The ``headers`` of a message as latin-1 text; TypeError for a name or value that is
    not bytes (``what``: "header" or "trailer", for the message)."""
    fields: list[tuple[str, str]] = []
    for item in message.get("headers", ()):
        name, value = item
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise TypeError(f"ASGI {what} names and values must be bytes, got {item!r}")
        fields.append((name.decode("latin-1"), value.decode("latin-1")))
    return fields


def _settle(fut: Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


class _HTTPCycle:
    """One request's ``receive`` and ``send``: the state they share with the handler."""

    __slots__ = (
        "body_done",
        "disconnected",
        "head_sent",
        "headers",
        "request",
        "response",
        "response_complete",
        "started",
        "status",
        "trailers",
        "waiter",
    )

    def __init__(self, w: ResponseWriter, r: Request) -> None:
        self.response: ResponseWriter | None = w
        self.request: Request | None = r
        self.body_done = False
        self.disconnected = False
        self.started = False
        self.head_sent = False
        self.response_complete = False
        # status and headers: set by http.response.start (nothing reads them before)
        self.status: int
        self.headers: list[tuple[str, str]]
        # Trailers: _NO_TRAILERS, or the app said it sends them (_TRAILERS_DUE: the body
        # is still coming; _BODY_SENT: its last message came, the trailers end the response).
        self.trailers = _NO_TRAILERS
        self.waiter: Future[None] | None = None  # receive() waiting for a disconnect

    def client_gone(self) -> None:
        self.disconnected = True
        _settle(self.waiter)

    def complete(self) -> None:
        """The response is complete: w and r are no longer the app's to use."""
        self.response_complete = True
        self.response = None
        self.request = None
        _settle(self.waiter)

    async def receive(self) -> Message:
        r = self.request
        if r is None or self.disconnected:
            return dict(_DISCONNECT)
        if not self.body_done:
            try:
                body = r.body
                assert isinstance(body, StreamingBody)  # a streaming handler's
                data = await body.read(RECEIVE_PIECE)
            except (BrokenConnectionError, ConnectionClosedError):
                self.client_gone()
                return dict(_DISCONNECT)
            self.body_done = r.body_complete
            return {"type": "http.request", "body": data, "more_body": not self.body_done}
        # The body is read: the next message is the end of the exchange.
        loop = r.loop
        if loop is None:  # the request is over
            return dict(_DISCONNECT)
        fut: Future[None] = loop.create_future()
        self.waiter = fut
        r.on_disconnect(self.client_gone)
        await fut
        return dict(_DISCONNECT)

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if self.response_complete:
            raise RuntimeError(f"ASGI message {kind!r} sent after the response was complete")
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("ASGI 'http.response.start' sent twice")
            status = message.get("status")
            if type(status) is not int or not 100 <= status <= 999:
                raise TypeError(f"ASGI status must be an int 100-999, got {status!r}")
            headers = _decode_fields(message, "header")
            self.started = True
            self.status = status
            self.headers = headers
            if message.get("trailers"):
                self.trailers = _TRAILERS_DUE
            return
        if not self.started:
            raise RuntimeError(f"ASGI message {kind!r} sent before 'http.response.start'")
        w = self.response
        if kind == "http.response.body":
            body = message.get("body", b"")
            if type(body) is not bytes and not isinstance(body, bytearray | memoryview):
                raise TypeError(f"ASGI body must be bytes, got {type(body).__name__}")
            more = message.get("more_body", False)
            if self.trailers:
                if self.trailers == _BODY_SENT:
                    raise RuntimeError("ASGI 'http.response.body' sent after the last one")
                if not more:
                    self.trailers = _BODY_SENT
            if self.disconnected or w is None:
                if not more and not self.trailers:
                    self.complete()
                return  # the client is gone: output is dropped, as uvicorn does
            try:
                self._send_head(w)
                if body:
                    w.write(body)
                if not more:
                    if self.trailers:
                        # The trailers end the response: the head goes now, framed as a
                        # streamed body (chunked on HTTP/1.1, unless the app gave a length).
                        w.flush()
                        return
                    # The whole response is known: out now, as when a handler returns (a
                    # body in one piece gets its Content-Length), so that work the app does
                    # after it (Starlette's background tasks) does not keep the client
                    # waiting for it.
                    w.end()
                    self.complete()
                    return
                drained = w.drain()  # sends now; waits while output is above the high-water
                if not drained.done():
                    await drained
            except (BrokenConnectionError, ConnectionClosedError):
                self.client_gone()
                if not more and not self.trailers:
                    self.complete()
            return
        if kind == "http.response.trailers":
            self._send_trailers(message, w)
            return
        if kind == "http.response.pathsend":
            path = message.get("path")
            if not isinstance(path, str) or not os.path.isabs(path):
                raise TypeError(f"ASGI pathsend needs an absolute path, got {path!r}")
            if self.disconnected or w is None:
                self.complete()
                return
            fd = os.open(path, os.O_RDONLY)
            try:
                self._send_head(w)
                sent = w.sendfile(fd, close=True)
            except BaseException:
                os.close(fd)
                raise
            try:
                await sent
            except (BrokenConnectionError, ConnectionClosedError):
                self.client_gone()
            self.complete()
            return
        raise RuntimeError(f"unexpected ASGI message type {kind!r} in an http cycle")

    def _send_trailers(self, message: Message, w: ResponseWriter | None) -> None:
        """The ``http.response.trailers`` extension: fields for the last chunk, which the
        message with ``more_trailers`` false sends. A response that is not chunked (HTTP/1.0,
        the app's Content-Length, HEAD) drops them, as for any handler."""
        if not self.trailers:
            raise RuntimeError(
                "ASGI 'http.response.trailers' sent without 'trailers': True in "
                "'http.response.start'"
            )
        if self.trailers != _BODY_SENT:
            raise RuntimeError("ASGI 'http.response.trailers' sent before the last body message")
        fields = _decode_fields(message, "trailer")
        more = message.get("more_trailers", False)
        if self.disconnected or w is None:
            if not more:
                self.complete()
            return
        try:
            if fields:
                w.trailers.extend(fields)  # ValueError for a field no trailer may carry
            if not more:
                w.end()
                self.complete()
        except (BrokenConnectionError, ConnectionClosedError):
            self.client_gone()
            if not more:
                self.complete()

    def _send_head(self, w: ResponseWriter) -> None:
        """Hand the head to the writer (it goes out with the first body bytes sent)."""
        if self.head_sent:
            return
        self.head_sent = True
        w.headers.extend(self.headers)
        w.write_header(self.status)


class ASGIHandler:
    """``ASGIHandler(app)`` is a reactor handler ``(w, r)`` that serves an ASGI 3 app's
    ``http`` scopes. ``lifespan`` ("auto", "on", "off") is the mode of ``self.lifespan``, the
    Lifespan to run around the server (``reactor serve`` does); the state the app fills in it
    is shallow-copied into each request's scope. ``root_path`` and ``url_scheme`` go into the
    scope as they are. ``max_message``: the largest WebSocket message a client may send
    (0: no limit; ``reactor serve`` passes --max-body-size)."""

    # A streaming handler: called at the head; receive() reads the body as it arrives.
    reactor_streaming = True

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str = "",
        url_scheme: str = "http",
        lifespan: str = "auto",
        max_message: int = 16 * 1024 * 1024,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be an ASGI callable, got {app!r}")
        self.app = app
        self.root_path = root_path.rstrip("/")
        self.url_scheme = url_scheme
        self.state: dict[str, Any] = {}
        self.lifespan = Lifespan(app, lifespan, self.state)
        self.max_message = max_message

    def __repr__(self) -> str:
        return f"ASGIHandler({self.app!r})"

    def scope(self, r: Request, kind: str = "http") -> dict[str, Any]:
        """The scope of one request (``kind``: "http" or "websocket")."""
        path = r.path
        raw_path = path.encode("latin-1")
        if "%" in path and path[:1] == "/":
            path = unquote(path, "utf-8", "surrogateescape")
        client = r.remote_addr
        server = r.local_addr
        scope: dict[str, Any] = {
            "type": kind,
            "asgi": {"version": "3.0", "spec_version": "2.4"},  # ASGI_VERSION, one per scope
            "http_version": r.version[5:],
            "scheme": self.url_scheme if kind == "http" else _ws_scheme(self.url_scheme),
            "path": path,
            "raw_path": raw_path,
            "query_string": r.query.encode("latin-1"),
            "root_path": self.root_path,
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in r.headers.fields
            ],
            "client": client[:2] if isinstance(client, tuple) else None,
            "server": server[:2] if isinstance(server, tuple) else None,
            "state": self.state.copy() if self.state else {},
        }
        if kind == "http":
            scope["method"] = r.method
            scope["extensions"] = {"http.response.pathsend": {}, "http.response.trailers": {}}
        return scope

    async def __call__(self, w: ResponseWriter, r: Request) -> None:
        if r.upgrade and r.method == "GET":
            from .asgi_ws import is_upgrade

            loop = r.loop
            assert loop is not None  # the request runs
            if is_upgrade(r):
                await self._websocket(w, r, loop)
                return
        cycle = _HTTPCycle(w, r)
        try:
            await self.app(self.scope(r), cycle.receive, cycle.send)
        except Exception:
            if not cycle.response_complete:
                raise  # a 500, or an abort once the head is out (the connection's)
            # The client has the whole response: the failure is the app's own business.
            log.exception("the ASGI app raised after its response was complete")
            return
        if cycle.response_complete:
            return
        if not cycle.head_sent:
            log.error("the ASGI app returned without completing a response; answering 500")
            w.headers.set("Content-Type", "text/plain; charset=utf-8")
            w.write_header(500)
            w.write(b"500 Internal Server Error\n")
            return
        if cycle.trailers == _BODY_SENT:
            raise RuntimeError("the ASGI app returned without sending the trailers it announced")
        raise RuntimeError("the ASGI app returned without completing its response")

    async def _websocket(self, w: ResponseWriter, r: Request, loop: Loop) -> None:
        """A ``websocket`` scope: reactor/asgi_ws.py's session, on a hijack once accepted."""
        from .asgi_ws import WebSocketSession

        scope = self.scope(r, "websocket")
        offered = r.headers.get("sec-websocket-protocol") or ""
        scope["subprotocols"] = [p.strip() for p in offered.split(",") if p.strip()]
        session = WebSocketSession(w, r, loop, self.max_message)
        try:
            await self.app(scope, session.receive, session.send)
        except Exception:
            if not session.accepted:
                raise  # nothing answered yet: the connection's 500
            log.exception("the ASGI app raised during a WebSocket session")
        finally:
            await session.finish()
        if not session.accepted:
            log.info("the ASGI app returned without accepting the WebSocket; answering 403")
            w.headers.set("Content-Type", "text/plain; charset=utf-8")
            w.write_header(403)
            w.write(b"403 Forbidden\n")


def _ws_scheme(scheme: str) -> str:
    return "wss" if scheme == "https" else "ws"


# -- lifespan -------------------------------------------------------------------------------------


class LifespanFailure(Exception):
    """The application's startup (or shutdown) failed; the message says how."""


class Lifespan:
    """The ``lifespan`` protocol around a server: ``await startup()`` before serving,
    ``await shutdown()`` after. ``mode``: "auto" (an app that raises before answering the
    startup does not speak lifespan: logged, and serving goes on), "on" (that is an error) or
    "off" (never called). ``state`` is the dict the app fills, shared into request scopes.
    Runs on an asyncio loop."""

    def __init__(self, app: ASGIApp, mode: str = "auto", state: dict[str, Any] | None = None):
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan mode must be auto, on or off, got {mode!r}")
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = state if state is not None else {}
        self.supported = mode != "off"
        self._inbox: asyncio.Queue[Message] | None = None
        self._answer: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer; LifespanFailure if it failed."""
        if not self.supported:
            return
        loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue()
        self._answer = loop.create_future()
        self._task = loop.create_task(self._main())
        await self._exchange({"type": "lifespan.startup"}, "startup")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer; LifespanFailure if it failed."""
        if not self.supported or self._task is None:
            return
        self._answer = asyncio.get_running_loop().create_future()
        try:
            await self._exchange({"type": "lifespan.shutdown"}, "shutdown")
        finally:
            if not self._task.done():
                await asyncio.wait([self._task], timeout=1.0)

    async def _exchange(self, message: Message, phase: str) -> None:
        assert self._inbox is not None and self._answer is not None
        self._inbox.put_nowait(message)
        answer = await self._answer
        kind = answer.get("type")
        if kind == f"lifespan.{phase}.complete":
            log.info("ASGI lifespan: %s complete", phase)
            return
        if kind == "unsupported":
            return
        # Starlette sends the whole traceback as the message: its last line says what failed.
        lines = str(answer.get("message") or kind).strip().splitlines() or [str(kind)]
        raise LifespanFailure(f"{phase} failed: {lines[-1]}")

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            started = self._answer is not None and self._answer.done()
            if self.mode == "auto" and not started:
                log.info(
                    "ASGI lifespan: the app does not support it (%s: %s)", type(exc).__name__, exc
                )
                self.supported = False
                self._reply({"type": "unsupported"})
            else:
                log.error("ASGI lifespan: the app raised", exc_info=True)
                self._reply({"type": "failed", "message": f"{type(exc).__name__}: {exc}"})
            if not isinstance(exc, Exception):
                raise
        else:
            # Returning at once is how many apps say "no lifespan here" (uvicorn agrees).
            if self.mode == "on":
                self._reply({"type": "failed", "message": "the app returned from lifespan"})
            else:
                self.supported = False
                self._reply({"type": "unsupported"})

    async def _receive(self) -> Message:
        assert self._inbox is not None
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type", "")
        if kind not in (
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        ):
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")
        self._reply(dict(message))

    def _reply(self, message: Message) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result(message)
