"""``reactor.serve``: the blocking convenience that runs one server until a signal.

Owns creating the loop and the server for a process, listening (or adopting listening sockets
made by the caller: the CLI binds before it forks workers), installing the signal handlers
(before anyone is told the address, so a signal that follows the announcement is always
graceful), the graceful shutdown on SIGINT/SIGTERM, the immediate close on SIGQUIT or a second
signal, SIGUSR1 (reopen log files) and SIGHUP (refused, with a log line: a single process
cannot re-import its app in place; the supervisor's HUP does), a worker's watch on its
supervisor, and the log lines and report that say what was
drained. It also owns ``parse_bind`` and ``bind_socket``, which turn a ``--bind`` address into
a listening socket. It prints nothing (the CLI does) and never calls ``sys.exit``.
Tests: tests/integration/test_cli.py, test_workers.py (through ``reactor serve``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .accesslog import reopen_log_files
from .config import ServerConfig
from .loop.selector import SelectorLoop
from .loop.stall import StallWatch
from .server import Handler, Server, listening_socket

if TYPE_CHECKING:
    import ssl

__all__ = ["Bind", "StopReport", "bind_socket", "format_url", "parse_bind", "serve"]

log = logging.getLogger("reactor.server")

#: ``ready(server, urls)``: called once the server listens, with one URL per listener.
ReadyCallback = Callable[[Server, list[str]], object]

#: How often a worker checks that its supervisor is still alive.
PARENT_CHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Bind:
    """A parsed ``--bind`` address: ``host``/``port`` for TCP, or ``path`` for a Unix socket."""

    host: str = ""
    port: int = 0
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class StopReport:
    """What a graceful stop did: connections drained, closed unfinished, seconds it took."""

    signal: str
    drained: int
    unfinished: int
    seconds: float


def parse_bind(text: str) -> Bind:
    """``HOST:PORT``, ``[IPV6]:PORT``, ``:PORT`` (all IPv4 interfaces) or ``unix:PATH``;
    raises ValueError with the reason."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ValueError(f"unix: needs a path, got {text!r}")
        return Bind(path=path)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":") or ":" not in host:
            raise ValueError(f"not an address like [::1]:8080: {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"not an address like HOST:PORT, [::1]:PORT or unix:PATH: {text!r}")
        if ":" in host:
            raise ValueError(f"an IPv6 address goes in brackets, like [::1]:8080: {text!r}")
        host = host or "0.0.0.0"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"not a TCP port (0-65535) in {text!r}")
    if not host:
        raise ValueError(f"no host in {text!r}")
    return Bind(host=host, port=int(port_text))


def bind_socket(bind: Bind, backlog: int) -> socket.socket:
    """A listening, non-blocking socket for ``bind``: Server's own ``listening_socket``."""
    return listening_socket(bind.host, bind.port, path=bind.path, backlog=backlog)


def socket_url(sock: socket.socket, scheme: str = "http") -> str:
    """The URL a listening socket serves: ``http://host:port/`` or ``unix:/path``."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name if isinstance(name, str) else name.decode()}"
    return format_url(name[0], name[1], scheme)


def serve(
    handler: Handler,
    host: str | None = "127.0.0.1",
    port: int = 8080,
    *,
    config: ServerConfig | None = None,
    unix: str | None = None,
    ready: ReadyCallback | None = None,
    sockets: Sequence[socket.socket] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    loop: Any = None,
    parent_pid: int | None = None,
) -> StopReport | None:
    """Serve ``handler`` on ``host:port`` (and/or a Unix socket at ``unix``), or on the
    listening ``sockets`` given (then ``host``/``port``/``unix`` are ignored), until a signal.

    SIGINT or SIGTERM: shut down gracefully: stop accepting, close idle connections, let
    in-flight requests finish for up to ``config.shutdown_grace`` seconds, close the rest.
    SIGQUIT, or a second signal: close everything at once. ``ssl_context``: serve TLS.
    ``loop``: the loop to run (default: a new SelectorLoop; it is closed at the end).
    ``parent_pid``: stop gracefully when that process (a supervisor) is gone.
    Logs on "reactor.server"; raises OSError when it cannot listen; returns what the stop did
    (None if the loop stopped without a signal)."""
    loop = loop if loop is not None else SelectorLoop()
    server = Server(handler, loop=loop, config=config, ssl_context=ssl_context)
    watch: StallWatch | None = None
    scheme = "https" if ssl_context is not None else "http"
    try:
        urls: list[str] = []
        if sockets is not None:
            for sock in sockets:
                server.add_listener(sock)
                urls.append(socket_url(sock, scheme))
        else:
            if unix is not None:
                urls.append(f"unix:{server.listen_unix(unix)}")
            if host is not None and (unix is None or port):
                bound_host, bound_port = server.listen(host, port)
                urls.append(format_url(bound_host, bound_port, scheme))

        shutdown = _Shutdown(server, loop)
        # Installed before ``ready`` announces the address: a test (or a supervisor) that
        # signals as soon as it reads the address gets the graceful path, never the default
        # action of SIGTERM (which would kill the process with status -15).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            loop.add_signal_handler(sig, shutdown.on_signal, sig)
        # USR1 and HUP would kill the process by default: USR1 reopens the log files (after
        # logrotate moved them); HUP is a supervisor's (it replaces its workers).
        loop.add_signal_handler(signal.SIGUSR1, _reopen_logs)
        loop.add_signal_handler(signal.SIGHUP, _refuse_hup, parent_pid is not None)
        # TTIN/TTOU add and remove workers in a supervisor; their default action would
        # suspend this process.
        for sig in (signal.SIGTTIN, signal.SIGTTOU):
            loop.add_signal_handler(sig, _ignore, sig, parent_pid is not None)
        if parent_pid is not None:
            shutdown.watch_parent(parent_pid)
        for url in urls:
            log.info("listening on %s", url)
        if ready is not None:
            ready(server, urls)
        if server.config.stall_warning:
            watch = StallWatch(loop, server.config.stall_warning).start()
        loop.run()
        return shutdown.report()
    finally:
        if watch is not None:
            watch.stop()
        server.close()
        loop.close()


def _reopen_logs() -> None:
    count = reopen_log_files()
    log.info("SIGUSR1: reopened %d log file(s)", count)


def _refuse_hup(worker: bool) -> None:
    if worker:
        log.debug("SIGHUP: reloading is the supervisor's; ignored")
        return
    log.warning(
        "SIGHUP: a single process cannot reload its application in place; ignored (run with "
        "--workers N, where SIGHUP starts new workers with the new code, or restart it)"
    )


def _ignore(signum: int, worker: bool) -> None:
    name = signal.Signals(signum).name
    if worker:
        log.debug("%s is the supervisor's; ignored", name)
    else:
        log.info("%s: adding or removing workers needs --workers N; ignored", name)


def format_url(host: str, port: int, scheme: str = "http") -> str:
    """``http://host:port/`` with an IPv6 host in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/"


class _Shutdown:
    """The signal side of ``serve``: graceful on the first signal, immediate on the second
    (or on SIGQUIT), and the counts for the closing report."""

    def __init__(self, server: Server, loop: Any) -> None:
        self.server = server
        self.loop = loop
        self.signals = 0
        self.signal_name = ""
        self.started = 0.0
        self.in_flight = 0
        self.forced = 0
        self.parent_pid = 0

    def on_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        server = self.server
        if self.signals > 1 or signum == signal.SIGQUIT:
            if self.signals == 1:
                self.signal_name = name
                self.started = self.loop.time()
            self.forced += server.connection_count
            log.warning("%s: closing %d connection(s) now", name, server.connection_count)
            server.close()
            self.loop.stop()
            return
        self.signal_name = name
        self.started = self.loop.time()
        # Server.shutdown stops accepting and spares connections that have not had their
        # first request yet (it may be in flight), so it can start at once.
        self._begin(name, server.config.shutdown_grace)

    def _begin(self, name: str, grace: float) -> None:
        server = self.server
        self.in_flight = server.connection_count
        log.info(
            "%s: shutting down; draining %d connection(s) for up to %.1fs (signal again to force)",
            name,
            self.in_flight,
            grace,
        )
        # Scheduled before the server's own grace timer, for the same moment or earlier, so
        # it runs first and counts what the server is about to close.
        self.loop.call_at(self.loop.time() + grace, self._count_forced)
        server.shutdown(grace).add_done_callback(lambda _f: self.loop.stop())

    def _count_forced(self) -> None:
        if self.signals == 1:
            self.forced += self.server.connection_count

    def watch_parent(self, pid: int) -> None:
        self.parent_pid = pid
        self.loop.call_later(PARENT_CHECK_SECONDS, self._check_parent)

    def _check_parent(self) -> None:
        if self.signals:
            return
        if os.getppid() != self.parent_pid:
            log.warning("the supervisor (pid %d) is gone; stopping", self.parent_pid)
            self.on_signal(signal.SIGTERM)
            return
        self.loop.call_later(PARENT_CHECK_SECONDS, self._check_parent)

    def report(self) -> StopReport | None:
        if not self.signals:
            return None
        seconds = self.loop.time() - self.started
        drained = max(0, self.in_flight - self.forced)
        log.info(
            "stopped after %.2fs: %d connection(s) drained, %d closed unfinished",
            seconds,
            drained,
            self.forced,
        )
        return StopReport(self.signal_name, drained, self.forced, seconds)
