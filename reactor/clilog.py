"""``reactor serve``'s logging: handlers on reactor's own loggers, never the root logger.

Owns ``setup_logging`` ("reactor" on stderr at --log-level, "reactor.access" on stdout or a
file, neither propagating: the root logger is the application's to configure, so no line is
printed twice) and ``AccessFormatter`` (Common and Combined Log Format). Used by
reactor/cli.py, which re-exports AccessFormatter. Tests: tests/integration/test_cli.py,
test_serve_footguns.py.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["AccessFormatter", "setup_logging"]


class AccessFormatter(logging.Formatter):
    """The access line as the server logs it (Common Log Format); ``combined`` appends the
    quoted Referer and User-Agent, taken from the record's ``referer`` and ``user_agent``
    attributes ("-" when the record has none)."""

    def __init__(self, combined: bool = False) -> None:
        super().__init__("%(message)s")
        self.combined = combined

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if not self.combined:
            return line
        referer = _clf_quote(getattr(record, "referer", None))
        agent = _clf_quote(getattr(record, "user_agent", None))
        return f'{line} "{referer}" "{agent}"'


def _clf_quote(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "-"
    return value.replace("\\", "\\\\").replace('"', '\\"')


#: The name of the handlers reactor serve adds, so a second ``main()`` in one process (the
#: tests) replaces them instead of adding more.
_HANDLER_NAME = "reactor-serve"


def setup_logging(level: str, access_log: str | None, access_format: str) -> None:
    """Handlers on reactor's loggers only ("reactor" on stderr, "reactor.access" to its
    file), which do not propagate: the root logger is the application's to configure, and a
    line is never printed twice because both configured it."""
    reactor_log = logging.getLogger("reactor")
    reactor_log.setLevel(level.upper())
    reactor_log.propagate = False
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _replace_handler(reactor_log, handler)
    if access_log is not None:
        access = logging.getLogger("reactor.access")
        access.setLevel(logging.INFO)
        access.propagate = False
        if access_log == "-":
            handler = logging.StreamHandler(sys.stdout)
        else:
            from logging.handlers import WatchedFileHandler

            handler = WatchedFileHandler(access_log)
        handler.setFormatter(AccessFormatter(combined=access_format == "combined"))
        _replace_handler(access, handler)


def _replace_handler(logger: logging.Logger, handler: logging.Handler) -> None:
    for old in list(logger.handlers):
        if old.name == _HANDLER_NAME:
            logger.removeHandler(old)
            old.close()
    handler.set_name(_HANDLER_NAME)
    logger.addHandler(handler)
