"""What reactor and the application log while a ``reactor leakcheck`` scenario runs.

Owns AppLog, a context manager that takes over every configured logging handler (reactor's,
the application's, the root logger's) for the length of a scenario: each warning or error is
kept once, formatted at once (a record's arguments and exception would otherwise keep the
request alive and show up as growth), without leakcheck's own frames, and counted when it
repeats. Django's "Internal Server Error" and ``DisallowedHost`` records, and reactor's "the
handler raised" ones, come out as one traceback each with a count instead of one per request.
Tests: tests/leaks/test_leakcheck.py, tests/leaks/test_leakcheck_apps.py.
"""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass
from types import TracebackType

__all__ = ["AppLog", "LoggedProblem"]

_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass
class LoggedProblem:
    """One distinct warning or error: the first one's text, how many times it came."""

    logger: str
    level: str
    text: str
    count: int = 1


def _own(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_OWN_DIR)


def _trim(te: traceback.TracebackException) -> None:
    """Drop leakcheck's frames from ``te`` and its chain; a chained exception that was only
    leakcheck's goes."""
    seen: set[int] = set()
    part: traceback.TracebackException | None = te
    while part is not None and id(part) not in seen:
        seen.add(id(part))
        part.stack = traceback.StackSummary.from_list(
            [f for f in part.stack if not _own(f.filename)]
        )
        for link in ("__cause__", "__context__"):
            chained = getattr(part, link)
            own = chained is not None and all(_own(f.filename) for f in chained.stack)
            if own and chained.stack:
                setattr(part, link, None)
                if link == "__context__":
                    part.__suppress_context__ = True
        part = part.__cause__ or (None if part.__suppress_context__ else part.__context__)


def _key(record: logging.LogRecord) -> tuple[object, ...]:
    frames: tuple[object, ...] = ()
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None:
        tb = exc.__traceback__
        collected = []
        while tb is not None:
            collected.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
            tb = tb.tb_next
        frames = (type(exc).__qualname__, *collected)
    return (record.name, record.levelno, str(record.msg), frames)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.problems: dict[tuple[object, ...], LoggedProblem] = {}
        self.errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            return
        if record.levelno >= logging.ERROR:
            self.errors += 1
        key = _key(record)
        seen = self.problems.get(key)
        if seen is not None:
            seen.count += 1
            return
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            te = traceback.TracebackException.from_exception(exc)
            _trim(te)
            text += "\n" + "".join(te.format()).rstrip()
        self.problems[key] = LoggedProblem(record.name, record.levelname, text)


class AppLog:
    """``with AppLog() as log:`` every logger's records come to ``log`` (``problems``,
    ``errors``), and nowhere else, until the block ends."""

    def __init__(self) -> None:
        self.collector = _Collector()
        self._saved: list[tuple[logging.Logger, list[logging.Handler], int, bool]] = []

    def __enter__(self) -> AppLog:
        root = logging.getLogger()
        loggers = [root]
        for logger in list(logging.Logger.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger) and (logger.handlers or not logger.propagate):
                loggers.append(logger)
        reactor = logging.getLogger("reactor")
        if reactor not in loggers:
            loggers.append(reactor)
        for logger in loggers:
            self._saved.append((logger, list(logger.handlers), logger.level, logger.propagate))
            logger.handlers = [self.collector]
            # A record stops at the first logger that has the collector: counted once.
            logger.propagate = logger is root
        reactor.setLevel(logging.INFO)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for logger, handlers, level, propagate in self._saved:
            logger.handlers = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        self._saved.clear()

    @property
    def problems(self) -> list[LoggedProblem]:
        return list(self.collector.problems.values())

    @property
    def errors(self) -> int:
        return self.collector.errors
