"""What a handler sees of a request: Request and its body.

Owns Request (line, headers, remote address, body, client-disconnect notification) and the two
body readers: Body (a buffering handler's, read synchronously) and StreamingBody (a streaming
async handler's, awaited). Both read the body straight from the connection's Reader, so what
the handler leaves unread is exactly what a hijack hands over. They reach the connection only
through the Channel interface (reactor/channel.py); at the end of the request the connection
detaches them (``detach()``): nothing here outlives its request by holding the connection.
Tests: tests/integration/test_server.py, test_body.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .buffers import Reader
from .channel import Channel
from .errors import ConnectionClosedError, HijackedError, ProtocolError
from .http.parser import BODY_CHUNKED, BODY_LENGTH, ChunkedDecoder, RequestHead
from .loop.base import Loop
from .loop.futures import Future

__all__ = ["Body", "Request", "StreamingBody"]


class Body:
    """A buffering handler's body: every byte has arrived before the handler is called.

    ``read(n=-1)`` returns up to ``n`` bytes of what has arrived (all of it with ``n < 0``),
    and ``b""`` at the end.
    """

    __slots__ = ("__weakref__", "_channel", "_decoder", "_remaining", "complete", "trailers")

    def __init__(self, channel: Channel | None, framing: int, length: int) -> None:
        self._remaining = length if framing == BODY_LENGTH else 0
        #: Whether the whole body has been read (an attribute, kept current by the reads:
        #: the connection looks at it after every request).
        self.complete = complete = framing != BODY_CHUNKED and self._remaining == 0
        # Only a body still to be read needs the connection; it is let go once complete.
        self._channel = None if complete else channel
        self._decoder: ChunkedDecoder | None = (
            ChunkedDecoder(channel.config.limits)
            if channel is not None and framing == BODY_CHUNKED
            else None
        )
        # Filled when a chunked body's trailer section is read; shared empty until then.
        self.trailers: Sequence[tuple[str, str]] = ()

    def _reader(self) -> Reader:
        channel = self._channel
        if channel is None:
            raise ConnectionClosedError("the request is over; its body can no longer be read")
        if channel.hijacked:
            raise HijackedError(
                "the connection was hijacked: read the rest of the body from pair.reader"
            )
        return channel.reader

    def _read_now(self, n: int) -> bytes:
        if self._channel is None and self.complete:
            return b""
        reader = self._reader()
        decoder = self._decoder
        if decoder is None:
            if self._remaining == 0:
                return b""
            take = self._remaining if n < 0 else min(n, self._remaining)
            data = reader.take(take)
            self._remaining -= len(data)
            if not self._remaining:
                self.complete = True
                self._channel = None
            return data
        if decoder.done:
            return b""
        out: list[bytes | bytearray] = []
        pos = reader.pos
        new_pos = decoder.feed(reader.buf, pos, len(reader.buf), out, n)
        reader.consume(new_pos - pos)
        if decoder.done:
            self.trailers = decoder.trailers
            self.complete = True
            self._channel = None
        return b"".join(out)

    def read(self, n: int = -1) -> bytes:
        return self._read_now(n)

    def detach(self) -> None:
        self._channel = None

    def skip_rest(self) -> bool:
        """Discard the unread rest if it is all here; return whether the body is complete
        (the connection calls it when the handler returned without reading all of it).
        Nothing is copied: held bytes are consumed, a chunked body is only scanned."""
        if self.complete:
            return True
        reader = self._reader()
        decoder = self._decoder
        pos = reader.pos
        if decoder is None:
            skip = min(self._remaining, len(reader.buf) - pos)
            self._remaining -= skip
        else:
            skip = decoder.feed(reader.buf, pos, len(reader.buf)) - pos
            if decoder.done:
                self.trailers = decoder.trailers
        reader.consume(skip)
        if self._remaining or (decoder is not None and not decoder.done):
            return False
        self.complete = True
        self._channel = None
        return True


class StreamingBody(Body):
    """A streaming handler's body: ``await r.body.read(n)`` waits for at least one byte (or
    the end). The first read sends ``100 Continue`` if the client asked for it."""

    __slots__ = ()

    async def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        if n < 0:
            parts: list[bytes] = []
            while True:
                data = await self.read(1 << 20)
                if not data:
                    return b"".join(parts)
                parts.append(data)
        while True:
            data = self._read_now(n)
            if data or self.complete:
                return data
            channel = self._channel
            if channel is None:
                raise ConnectionClosedError("the request is over")
            await channel.wait_for_body()


class Request(RequestHead):
    """One request: ``method``, ``target``, ``path``, ``query``, ``host`` (the authority of an
    absolute-form target, else the Host header; RFC 9112 section 3.2.2), ``version``,
    ``headers`` (case-insensitive multi-map in received order), ``remote_addr`` and
    ``body``, plus the rest of the parsed head (``keep_alive``, ``body_framing``...).

    The parser makes the request itself (it is the parsed head: nothing is copied); the
    connection then ``attach``es its body and itself."""

    __slots__ = (
        "__weakref__",
        "_body",
        "_channel",
        "_disconnect_callbacks",
        "_disconnected",
        "_remote_addr",
        "_scheme",
        "_streaming",
    )

    # Annotated here for readers and the type checker; set by attach().
    _body: Body | None
    _channel: Channel | None

    def attach(self, body: Body | None, channel: Channel | None, streaming: bool = False) -> None:
        """Give the parsed request its body (None: it has none, and an empty one is made if
        asked for: a StreamingBody for a ``streaming`` handler, else a Body) and its
        connection (called by the connection)."""
        self._body = body
        self._streaming = streaming
        self._channel = channel
        self._remote_addr = None
        self._disconnected = False
        self._disconnect_callbacks: list[Callable[[], object]] | None = None

    @property
    def body(self) -> Body:
        """The request body (read it with ``read()``; ``await`` it in a streaming handler)."""
        body = self._body
        if body is None:  # a request without a body: made only for a handler that looks
            body = self._body = (StreamingBody if self._streaming else Body)(None, BODY_LENGTH, 0)
        return body

    @property
    def body_complete(self) -> bool:
        """Whether the whole body has been read (True for a request without one)."""
        body = self._body
        return body is None or body.complete

    def end(self) -> bool:
        """The request is over (called by the connection): discard an unread body if all of
        it is held, let go of the connection, and say whether the body was complete (if not,
        the connection cannot be reused)."""
        self._channel = None
        self._disconnect_callbacks = None
        body = self._body
        if body is None or body.complete:
            return True
        try:
            return body.skip_rest()
        except ProtocolError:
            return False
        finally:
            body.detach()

    @property
    def remote_addr(self) -> Any:
        """The client's address (``(host, port)``, or ``"unix"``), asked of the socket once."""
        addr = self._remote_addr
        if addr is None:
            channel = self._channel
            if channel is not None:
                addr = self._remote_addr = channel.remote_addr
        return addr

    @property
    def scheme(self) -> str | None:
        """The scheme the client used as a trusted proxy reported it ("https", "http"), or
        None when no proxy said (then it is this connection's: https under TLS, else http).
        Not set by attach(): a request no proxy speaks for pays nothing for it."""
        try:
            return self._scheme
        except AttributeError:
            return None

    def set_client(self, addr: Any, scheme: str | None, host: str | None) -> None:
        """What a trusted proxy said of the client (reactor.proxy.ProxyHeaders calls it):
        its address (``remote_addr``; None keeps the peer's), the scheme it used (None: the
        connection's) and the host it asked for (None: the Host header's)."""
        if addr is not None:
            self._remote_addr = addr
        if scheme is not None:
            self._scheme = scheme
        if host is not None:
            self.host = host

    @property
    def loop(self) -> Loop | None:
        """The loop the request's connection runs on (None once the request is over): what
        code on another thread hands results back through (``call_soon_threadsafe``)."""
        channel = self._channel
        return channel.loop if channel is not None else None

    @property
    def local_addr(self) -> Any:
        """The address the connection was accepted on (None once the request is over)."""
        channel = self._channel
        return channel.local_addr if channel is not None else None

    # -- client-disconnect notification (HIJACK-SPEC B13) -----------------------------------

    @property
    def disconnected(self) -> bool:
        """Whether the server saw the client go away while this request was handled."""
        return self._disconnected

    def on_disconnect(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once if the client goes away while the handler runs (EOF or an
        error on the server's read once the body has been read). Never for a pipelined next
        request, never after a hijack, never after the handler returned."""
        if self._disconnected:
            callback()
            return
        if self._channel is None:
            return
        if self._disconnect_callbacks is None:
            self._disconnect_callbacks = [callback]
        else:
            self._disconnect_callbacks.append(callback)

    def wait_disconnected(self) -> Future[None]:
        """A future that completes when the client goes away (see ``on_disconnect``)."""
        channel = self._channel
        if channel is None:
            raise ConnectionClosedError("the request is over")
        fut: Future[None] = channel.loop.create_future()
        if self._disconnected:
            fut.set_result(None)
            return fut
        self.on_disconnect(lambda: None if fut.done() else fut.set_result(None))
        return fut

    def notify_disconnect(self) -> None:
        """The client went away (called by the connection): run the callbacks once."""
        if self._disconnected:
            return
        self._disconnected = True
        callbacks = self._disconnect_callbacks
        self._disconnect_callbacks = None
        for cb in callbacks or ():
            cb()

    def detach(self) -> None:
        """The request is over: let go of the connection (called by the connection)."""
        self._channel = None
        self._disconnect_callbacks = None
        body = self._body
        if body is not None and not body.complete:  # a complete one let go already
            body.detach()

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} {self.version}>"
