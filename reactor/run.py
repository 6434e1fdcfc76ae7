"""``reactor.serve``: the blocking convenience that runs one server until SIGINT/SIGTERM.

Tests: tests/integration/test_cli.py (through ``reactor serve``).
"""

from __future__ import annotations

import logging
import signal

from .config import ServerConfig
from .loop.selector import SelectorLoop
from .server import Handler, Server

__all__ = ["serve"]

log = logging.getLogger("reactor.server")


def serve(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    config: ServerConfig | None = None,
    unix: str | None = None,
    ready: object = None,
) -> None:
    """Serve ``handler`` on ``host:port`` (and/or a Unix socket) until SIGINT or SIGTERM,
    then shut down gracefully. Prints nothing; logs on "reactor.server"."""
    loop = SelectorLoop()
    server = Server(handler, loop=loop, config=config)
    try:
        addresses = []
        if unix is not None:
            addresses.append(server.listen_unix(unix))
        if host is not None and (unix is None or port):
            bound = server.listen(host, port)
            addresses.append(f"http://{_fmt(bound[0])}:{bound[1]}/")
        for address in addresses:
            log.warning("listening on %s", address)
        if callable(ready):
            ready(server)

        def on_signal() -> None:
            log.warning("shutting down: %d connections in flight", server.connection_count)
            server.shutdown().add_done_callback(lambda _f: loop.stop())

        loop.add_signal_handler(signal.SIGINT, on_signal)
        loop.add_signal_handler(signal.SIGTERM, on_signal)
        loop.run()
        log.warning("stopped")
    finally:
        server.close()
        loop.close()


def _fmt(host: str) -> str:
    return f"[{host}]" if ":" in host else host
