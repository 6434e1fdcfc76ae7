"""Server: listeners, bounded accept, the connection table, limits, hooks and shutdown.

Owns listening sockets (TCP over IPv4/IPv6, Unix), the accept path (at most
``accept_batch`` per readable event; on EMFILE/ENFILE it stops accepting for
``accept_backoff`` seconds instead of spinning), ``max_connections``, the set of live
connections (hijacked ones leave it), connection-state hooks, on-shutdown callbacks and
graceful ``shutdown``. Tests: tests/integration/test_server.py, test_shutdown.py, test_accept.py.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .config import ServerConfig
from .connection import Connection
from .http.protocol import ProtocolContext
from .http.serialize import http_date
from .http.state import HookState
from .loop.base import Loop
from .loop.futures import Future
from .loop.selector import SelectorLoop
from .request import Request
from .response import ResponseWriter

if TYPE_CHECKING:
    import ssl

__all__ = ["Handler", "Server", "listening_socket", "streaming"]

log = logging.getLogger("reactor.server")

Handler = Callable[[ResponseWriter, Request], Coroutine[Any, Any, None] | None]
StateHook = Callable[[socket.socket, HookState], object]

# Accept errors that mean "out of a resource, try later": the fd table (EMFILE per process,
# ENFILE system-wide) or kernel memory. Retrying at once would spin: the pending connection
# stays in the backlog and the listener stays readable.
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# Seconds between two log lines about them (with a count): nginx logs every one, which at
# accept_backoff's ten retries a second floods the log for as long as the shortage lasts.
_RESOURCE_LOG_EVERY = 10.0


def listening_socket(
    host: str = "", port: int = 0, *, path: str | None = None, backlog: int = 1024
) -> socket.socket:
    """A listening, non-blocking socket: TCP on ``host:port`` (IPv6 only on v6 addresses,
    SO_REUSEADDR so a restart can bind at once) or Unix at ``path`` (a stale socket file is
    replaced). Raises OSError (EADDRINUSE, a name that does not resolve...). Used by
    ``Server.listen`` and by ``reactor serve``, which binds before it forks workers."""
    if path is not None:
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)
        except OSError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = path
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if family == socket.AF_INET and not _is_ipv4(host):
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            family, _, _, _, target = infos[0]
        else:
            target = (host, port)
        sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(target)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _is_ipv4(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def streaming(handler: Handler) -> Handler:
    """Mark an ``async def`` handler as streaming: it is called once the head is parsed and
    reads the body as it arrives with ``await r.body.read(n)``."""
    handler.reactor_streaming = True  # type: ignore[attr-defined]
    return handler


class Server:
    """An HTTP/1.1 server on a loop. ``handler(w, r)`` is a plain function or an ``async def``.

    ``on_state(sock, state)`` is called on every connection state change (NEW, ACTIVE, IDLE,
    HIJACKED, CLOSED), synchronously.
    """

    def __init__(
        self,
        handler: Handler,
        loop: Loop | None = None,
        config: ServerConfig | None = None,
        *,
        on_state: StateHook | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        #: The handler every request is given to (read by connections).
        self.handler = handler
        self._loop: Loop = loop if loop is not None else SelectorLoop()
        self.config = config if config is not None else ServerConfig()
        #: ``on_state``: called with (socket, HookState) on connection state changes.
        self.state_hook = on_state
        # TLS: accepted sockets are handshaken by reactor.tls before they become connections.
        self._ssl_context = ssl_context
        self._listeners: list[socket.socket] = []
        self._accepting = False
        self._connections: set[Connection] = set()
        # The budget of buffered request bodies (ServerConfig.max_buffered_bytes): what each
        # connection waiting for a body holds, their total, and the ones paused for it.
        self._body_holders: dict[Connection, int] = {}
        self._body_paused: set[Connection] = set()
        self._body_total = 0
        self._body_turn: Connection | None = None  # the one that reads while over budget
        # Accept failures for want of fds or memory, logged at most every _RESOURCE_LOG_EVERY.
        self._resource_errors = 0
        self._resource_logged = float("-inf")
        # TLS handshakes in progress (reactor.tls.TLSHandshake): they hold an fd each, so
        # they count toward max_connections and are closed by shutdown()/close().
        self._handshakes: set[Any] = set()
        self._shutdown_callbacks: list[Callable[[], object]] = []
        self._shutting_down = False
        self._shutdown_future: Future[None] | None = None
        self._backoff_timer: Any = None
        self._grace_timer: Any = None
        #: The second ``date_lines`` were made for (connections read both directly: once
        #: per response, a method call would cost more than the look-up).
        self.date_second = -1
        self._clf_second = -1
        self._clf_text = ""
        self.date_lines: tuple[bytes, bytes] = (b"", b"")
        self._unix_paths: list[str] = []
        #: What the HTTP protocol of every connection shares: limits, whether the handler
        #: streams, the parser of complete heads, and whether connections may be reused.
        self.protocol_context = ProtocolContext(
            self.config.limits, bool(getattr(handler, "reactor_streaming", False)), Request
        )

    @property
    def loop(self) -> Loop:
        return self._loop

    # -- listening ------------------------------------------------------------------------

    def listen(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on TCP ``host:port`` (IPv4 or IPv6, or a name that resolves); returns the
        bound address (port 0 picks a free port)."""
        sock = listening_socket(host, port, backlog=self.config.backlog)
        self.add_listener(sock)
        bound = sock.getsockname()
        return bound[0], bound[1]

    def listen_unix(self, path: str) -> str:
        """Listen on a Unix socket at ``path`` (a stale socket file is replaced)."""
        sock = listening_socket(path=path, backlog=self.config.backlog)
        self._unix_paths.append(path)
        self.add_listener(sock)
        return path

    def add_listener(self, sock: socket.socket) -> None:
        """Serve connections accepted from an already listening socket."""
        sock.setblocking(False)
        self._listeners.append(sock)
        if not self._shutting_down:
            self._loop.add_reader(sock, self._on_acceptable, sock, sock.family != socket.AF_UNIX)
            self._accepting = True

    @property
    def addresses(self) -> list[Any]:
        return [s.getsockname() for s in self._listeners]

    def _pause_accepting(self) -> None:
        if self._accepting:
            for sock in self._listeners:
                self._loop.remove_reader(sock)
            self._accepting = False

    def _resume_accepting(self) -> None:
        if not self._accepting and not self._shutting_down and self._backoff_timer is None:
            for sock in self._listeners:
                self._loop.add_reader(
                    sock, self._on_acceptable, sock, sock.family != socket.AF_UNIX
                )
            self._accepting = True

    def _open(self) -> int:
        """Accepted sockets the server holds: connections and TLS handshakes."""
        return len(self._connections) + len(self._handshakes)

    def _below_limit(self) -> bool:
        limit = self.config.max_connections
        return not limit or self._open() < limit

    def _end_backoff(self) -> None:
        self._backoff_timer = None
        if self._below_limit():
            self._resume_accepting()

    def _on_acceptable(self, listener: socket.socket, tcp: bool) -> None:
        """Accept up to ``accept_batch`` connections. ``tcp``: the listener is not a Unix
        socket (read once, when it is registered: ``socket.family`` makes an enum member on
        every access)."""
        cfg = self.config
        for _ in range(cfg.accept_batch):
            if not self._below_limit():
                self._pause_accepting()
                return
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    self._log_resource_error(exc)
                    self._pause_accepting()
                    self._backoff_timer = self._loop.call_later(
                        cfg.accept_backoff, self._end_backoff
                    )
                    return
                # ECONNABORTED and friends: that one connection is gone; keep going.
                log.debug("accept failed: %s", exc)
                continue
            # Setting up one connection may fail because its client already left (a reset
            # in the listen queue: TCP_NODELAY gives EINVAL on some systems, the TLS wrap
            # ENOTCONN, ECONNRESET or an SSLError): that is the client's business, logged at
            # DEBUG, and the rest of the batch is still accepted.
            handshake = None
            try:
                sock.setblocking(False)
                if tcp:
                    # Responses are written whole; Nagle would only delay the last segment.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._ssl_context is not None and not cfg.proxy_protocol:
                    handshake = self._new_handshake(sock, addr)
            except OSError as exc:
                tls = " before the TLS handshake" if self._ssl_context is not None else ""
                log.debug("connection from %s gone%s: %s", addr, tls, exc)
                sock.close()
                continue
            if cfg.proxy_protocol:
                self._read_proxy_header(sock, addr)
            elif handshake is not None:
                self._handshakes.add(handshake)
                handshake.start()
            else:
                self._start_connection(sock, addr)

    def _log_resource_error(self, exc: OSError) -> None:
        """EMFILE and friends, rate-limited: one line at once, then at most one per
        _RESOURCE_LOG_EVERY seconds saying how many happened since (each one backs off
        accepting for accept_backoff seconds, so they come ten times a second)."""
        now = self._loop.time()
        self._resource_errors += 1
        since = now - self._resource_logged
        if since < _RESOURCE_LOG_EVERY:
            return
        count = self._resource_errors
        self._resource_errors = 0
        self._resource_logged = now
        again = f" ({count} times in the last {since:.0f}s)" if count > 1 and since < 1e9 else ""
        log.warning(
            "accept failed (%s)%s; not accepting for %.2fs at a time",
            os.strerror(exc.errno or 0),
            again,
            self.config.accept_backoff,
        )

    def _read_proxy_header(self, sock: socket.socket, addr: Any) -> None:
        """``ServerConfig.proxy_protocol``: the PROXY header is read (reactor.proxy) before
        the connection starts; the reader counts and is closed like a TLS handshake."""
        from .proxy import ProxyHeaderReader

        reader = ProxyHeaderReader(
            self._loop,
            sock,
            addr,
            timeout=self.config.proxy_protocol_timeout,
            on_done=self._proxy_header_done,
            on_end=self._handshake_ended,
        )
        self._handshakes.add(reader)
        reader.start()

    def _proxy_header_done(self, sock: socket.socket, addr: Any) -> None:
        if self._shutting_down:
            sock.close()
            return
        self._accepted(sock, addr)

    def _new_handshake(self, sock: socket.socket, addr: Any) -> Any:
        """A TLS handshake for an accepted socket (not started). OSError, ssl.SSLError
        included, if its client is already gone (the wrap needs a connected socket)."""
        from .tls import TLSHandshake

        assert self._ssl_context is not None
        return TLSHandshake(
            self._loop,
            self._ssl_context,
            sock,
            addr,
            on_done=self._handshake_done,
            on_end=self._handshake_ended,
            timeout=self.config.tls_handshake_timeout,
        )

    def _accepted(self, sock: socket.socket, addr: Any) -> None:
        """Start the TLS handshake, or the connection (after a PROXY header)."""
        if self._ssl_context is not None:
            try:
                handshake = self._new_handshake(sock, addr)
            except OSError as exc:
                log.debug("connection from %s gone before the TLS handshake: %s", addr, exc)
                sock.close()
                return
            self._handshakes.add(handshake)
            handshake.start()
            return
        self._start_connection(sock, addr)

    def _start_connection(self, sock: socket.socket, addr: Any) -> None:
        conn = Connection(self, sock)
        self._connections.add(conn)
        conn.start()

    # -- TLS handshakes report here (reactor.tls) ---------------------------------------------

    def _handshake_done(self, sock: socket.socket, addr: Any) -> None:
        if self._shutting_down:
            sock.close()
            return
        self._start_connection(sock, addr)

    def _handshake_ended(self, handshake: Any) -> None:
        if handshake in self._handshakes:
            self._handshakes.discard(handshake)
            self._below_limit_again()

    # -- the connection table ----------------------------------------------------------------

    def connection_ended(self, conn: Connection) -> None:
        """A connection closed or was hijacked: it leaves the table (called by it)."""
        self._connections.discard(conn)
        self._below_limit_again()

    def _below_limit_again(self) -> None:
        if not self._accepting and not self._shutting_down and self._below_limit():
            self._resume_accepting()
        if self._shutting_down and not self._connections:
            self._finish_shutdown()

    # -- the budget of buffered request bodies ---------------------------------------------

    @property
    def buffered_body_bytes(self) -> int:
        """Request-body bytes held by the connections waiting for a body, together."""
        return self._body_total

    def body_held(self, conn: Connection, held: int) -> None:
        """``conn`` waits for a request body and holds ``held`` bytes (0: it no longer
        waits; called by it). Past ``config.max_buffered_bytes`` in all, reading pauses on
        every waiting connection but one: the one that held the least when the budget ran
        out keeps its turn until its body is complete (so bodies keep completing, and the
        total stays within the budget plus one body); when the total is back under the
        budget, all read again."""
        holders = self._body_holders
        old = holders.pop(conn, 0)
        if held:
            holders[conn] = held
        else:
            self._body_paused.discard(conn)
            if conn is self._body_turn:
                self._body_turn = None
        self._body_total += held - old
        budget = self.config.max_buffered_bytes
        if budget and (self._body_total > budget or self._body_paused):
            self._balance_bodies(budget)

    def _balance_bodies(self, budget: int) -> None:
        holders = self._body_holders
        paused = self._body_paused
        if self._body_total <= budget or not holders:
            self._body_turn = None
            for conn in list(paused):
                paused.discard(conn)
                conn.resume_body_reading()
            return
        least = self._body_turn
        if least is None:
            least = self._body_turn = min(holders, key=holders.__getitem__)
        for conn in holders:
            if conn is least:
                if conn in paused:
                    paused.discard(conn)
                    conn.resume_body_reading()
            elif conn not in paused:
                paused.add(conn)
                conn.pause_body_reading()
        log.debug(
            "buffered request bodies: %d bytes over the budget of %d; %d connection(s) paused",
            self._body_total - budget,
            budget,
            len(paused),
        )

    @property
    def connection_count(self) -> int:
        """Connections the server tracks (hijacked ones are not)."""
        return len(self._connections)

    # -- headers shared by every response --------------------------------------------------

    def default_headers(self) -> tuple[bytes, bytes]:
        """The encoded ``Date`` and ``Server`` lines, rebuilt once a second."""
        now = int(time.time())
        if now != self.date_second:
            self.date_second = now
            server = self.config.server_header
            self.date_lines = (
                f"Date: {http_date(now)}\r\n".encode("ascii"),
                f"Server: {server}\r\n".encode("latin-1") if server else b"",
            )
        return self.date_lines

    def clf_time(self) -> str:
        """The access log's time, formatted at most once a second."""
        now = int(time.time())
        if now != self._clf_second:
            self._clf_second = now
            self._clf_text = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now))
        return self._clf_text

    # -- shutdown ----------------------------------------------------------------------------

    def add_shutdown_callback(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` when ``shutdown()`` starts (Go's RegisterOnShutdown): the way
        to tell hijacked connections, which the server no longer tracks, to wind down."""
        self._shutdown_callbacks.append(callback)

    def shutdown(self, grace: float | None = None) -> Future[None]:
        """Stop accepting, close idle connections, let in-flight requests finish (their
        responses say ``Connection: close``), and close what remains after ``grace`` seconds
        (default: ``config.shutdown_grace``). Hijacked connections are neither waited for
        nor closed. Returns a future done when every tracked connection is closed."""
        if self._shutdown_future is not None:
            return self._shutdown_future
        fut: Future[None] = self._loop.create_future()
        self._shutdown_future = fut
        self._shutting_down = True
        self.protocol_context.reuse = False  # in-flight responses say Connection: close
        self._close_listeners()
        for callback in self._shutdown_callbacks:
            try:
                callback()
            except Exception:
                log.exception("shutdown callback raised")
        for conn in list(self._connections):
            conn.close_if_idle()
        if not self._connections:
            self._finish_shutdown()
            return fut
        delay = self.config.shutdown_grace if grace is None else grace
        self._grace_timer = self._loop.call_later(delay, self._force_close)
        log.info("shutdown: waiting up to %.1fs for %d connections", delay, len(self._connections))
        return fut

    def _force_close(self) -> None:
        self._grace_timer = None
        if self._connections:
            log.info(
                "shutdown: closing %d connections after the grace period", len(self._connections)
            )
        for conn in list(self._connections):
            conn.close()
        self._finish_shutdown()

    def _finish_shutdown(self) -> None:
        # The grace timer holds this server: cancel it as soon as nothing is left to wait
        # for (found by reactor leakcheck's shutdown scenario).
        timer = self._grace_timer
        self._grace_timer = None
        if timer is not None:
            timer.cancel()
        fut = self._shutdown_future
        if fut is not None and not fut.done():
            fut.set_result(None)

    def close(self) -> None:
        """Close listeners and every tracked connection now (not hijacked ones)."""
        self._shutting_down = True
        self.protocol_context.reuse = False
        self._close_listeners()
        for conn in list(self._connections):
            conn.close()
        self._finish_shutdown()

    def _close_listeners(self) -> None:
        for handshake in list(self._handshakes):
            handshake.cancel()
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
            self._backoff_timer = None
        for sock in self._listeners:
            self._loop.remove_fd(sock)
            sock.close()
        self._listeners.clear()
        self._accepting = False
        for path in self._unix_paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        self._unix_paths.clear()
