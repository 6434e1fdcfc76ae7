"""The access log: one Common Log Format line per request on the "reactor.access" logger.

Owns the line's format (the Combined Log Format's Referer and User-Agent ride along as
``extra`` fields for ``reactor serve --access-log-format combined``) and the line for a
request that was rejected before its request line could be trusted, logged as ``"-"`` the
way nginx logs a 400. The connection calls these when ``ServerConfig.access_log`` is on.
Also ``reopen_log_files``, what SIGUSR1 does in ``reactor serve`` (logrotate's postrotate).
Tests: tests/integration/test_cli.py (the access-log tests), test_worker_signals.py (USR1).
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

__all__ = ["log_rejected", "log_request", "reopen_log_files", "request_started", "timed"]

access_log = logging.getLogger("reactor.access")


def _host(addr: Any) -> str:
    return str(addr[0]) if isinstance(addr, tuple) else (addr or "-")


def log_request(when: str, request: Any, status: int, body_bytes: int) -> None:
    """``request`` is a reactor Request (its address, line and two headers are logged; the
    request itself, the status and the size ride along for formats that want more)."""
    headers = request.headers
    started = request_started.pop(request, None) if request_started else None
    access_log.info(
        '%s - - [%s] "%s %s %s" %d %s',
        _host(request.remote_addr),
        when,
        request.method,
        request.target,
        request.version,
        status,
        body_bytes or "-",
        extra={
            "referer": headers.get("referer"),
            "user_agent": headers.get("user-agent"),
            "request": request,
            "status": status,
            "body_bytes": body_bytes,
            "when": when,
            "request_time": None if started is None else time.monotonic() - started,
        },
    )


#: When each request reached its handler, for the formats that log the request time; filled
#: by ``timed`` only when such a format is in use (weak: a hijacked request is never logged).
request_started: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def timed(handler: Any) -> Any:
    """``handler``, noting when each request reaches it (for the request-time atoms)."""
    started = request_started
    clock = time.monotonic

    def timed_handler(w: Any, r: Any) -> Any:
        started[r] = clock()
        return handler(w, r)

    if getattr(handler, "reactor_streaming", False):
        timed_handler.reactor_streaming = True  # type: ignore[attr-defined]
    return timed_handler


def log_rejected(when: str, addr: Any, status: int) -> None:
    """A request answered with an error before its request line could be trusted."""
    access_log.info(
        '%s - - [%s] "-" %d -',
        _host(addr),
        when,
        status,
        extra={
            "referer": None,
            "user_agent": None,
            "request": None,
            "remote_addr": addr,
            "status": status,
            "body_bytes": 0,
            "when": when,
            "request_time": None,
        },
    )


def reopen_log_files() -> int:
    """Reopen the file of every ``logging.FileHandler`` (reactor's access log, and the app's
    own log files too), in append mode, so that lines go to a new file once logrotate has
    renamed the old one; returns how many were reopened. A handler that has not opened its
    file yet (``delay=True``) is left alone: it opens the right one when it first writes."""
    handlers: set[logging.Handler] = set(logging.getLogger().handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers.update(logger.handlers)
    reopened = 0
    for handler in handlers:
        if not isinstance(handler, logging.FileHandler) or handler.stream is None:
            continue
        try:
            stream = open(handler.baseFilename, "a", encoding=handler.encoding)  # noqa: SIM115
        except OSError as exc:
            logging.getLogger("reactor").error(
                "cannot reopen log file %s: %s", handler.baseFilename, exc
            )
            continue
        old = handler.setStream(stream)
        if old is not None:
            old.close()
        reopened += 1
    return reopened
