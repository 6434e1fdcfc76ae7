"""``reactor.serve``: the blocking convenience that runs one server until SIGINT/SIGTERM.

Owns creating the loop and the server for a process, listening, installing the signal
handlers (before anyone is told the address, so a signal that follows the announcement is
always graceful), the graceful shutdown on the first signal and the immediate close on a
second one, and the log lines that say what was drained. It prints nothing (the CLI does)
and never calls ``sys.exit``. Tests: tests/integration/test_cli.py (through ``reactor serve``).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

from .config import ServerConfig
from .loop.selector import SelectorLoop
from .server import Handler, Server

__all__ = ["format_url", "serve"]

log = logging.getLogger("reactor.server")

#: ``ready(server, urls)``: called once the server listens, with one URL per listener.
ReadyCallback = Callable[[Server, list[str]], object]


def serve(
    handler: Handler,
    host: str | None = "127.0.0.1",
    port: int = 8080,
    *,
    config: ServerConfig | None = None,
    unix: str | None = None,
    ready: ReadyCallback | None = None,
) -> None:
    """Serve ``handler`` on ``host:port`` (and/or a Unix socket at ``unix``) until SIGINT or
    SIGTERM, then shut down gracefully: stop accepting, close idle connections, let in-flight
    requests finish for up to ``config.shutdown_grace`` seconds, close the rest. A second
    signal closes everything at once. Logs on "reactor.server"; raises OSError when it cannot
    listen (the address in use, a host that does not resolve)."""
    loop = SelectorLoop()
    server = Server(handler, loop=loop, config=config)
    try:
        urls: list[str] = []
        if unix is not None:
            urls.append(f"unix:{server.listen_unix(unix)}")
        if host is not None and (unix is None or port):
            bound_host, bound_port = server.listen(host, port)
            urls.append(format_url(bound_host, bound_port))

        shutdown = _Shutdown(server, loop)
        # Installed before ``ready`` announces the address: a test (or a supervisor) that
        # signals as soon as it reads the address gets the graceful path, never the default
        # action of SIGTERM (which would kill the process with status -15).
        loop.add_signal_handler(signal.SIGINT, shutdown.on_signal, signal.SIGINT)
        loop.add_signal_handler(signal.SIGTERM, shutdown.on_signal, signal.SIGTERM)
        for url in urls:
            log.info("listening on %s", url)
        if ready is not None:
            ready(server, urls)
        loop.run()
        shutdown.report()
    finally:
        server.close()
        loop.close()


def format_url(host: str, port: int) -> str:
    """``http://host:port/`` with an IPv6 host in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class _Shutdown:
    """The signal side of ``serve``: graceful on the first signal, immediate on the second,
    and the counts for the closing log line."""

    def __init__(self, server: Server, loop: SelectorLoop) -> None:
        self.server = server
        self.loop = loop
        self.signals = 0
        self.started = 0.0
        self.in_flight = 0
        self.forced = 0

    def on_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        server = self.server
        if self.signals > 1:
            self.forced += server.connection_count
            log.warning("%s again: closing %d connection(s) now", name, server.connection_count)
            server.close()
            self.loop.stop()
            return
        grace = server.config.shutdown_grace
        self.started = self.loop.time()
        self.in_flight = server.connection_count
        log.info(
            "%s: shutting down; draining %d connection(s) for up to %.1fs (signal again to force)",
            name,
            self.in_flight,
            grace,
        )
        # Scheduled before the server's own grace timer, for the same moment or earlier, so
        # it runs first and counts what the server is about to close.
        self.loop.call_at(self.started + grace, self._count_forced)
        server.shutdown(grace).add_done_callback(lambda _f: self.loop.stop())

    def _count_forced(self) -> None:
        self.forced += self.server.connection_count

    def report(self) -> None:
        if not self.signals:
            return
        log.info(
            "stopped after %.2fs: %d connection(s) drained, %d closed unfinished",
            self.loop.time() - self.started,
            self.in_flight - self.forced,
            self.forced,
        )
