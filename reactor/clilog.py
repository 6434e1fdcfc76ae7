"""``reactor serve``'s logging: handlers on reactor's own loggers, never the root logger.

Owns ``setup_logging`` ("reactor" on stderr at --log-level, "reactor.access" on stdout or a
file, neither propagating: the root logger is the application's to configure, so no line is
printed twice) and ``AccessFormatter`` (Common and Combined Log Format). Used by
reactor/cli.py, which re-exports AccessFormatter. Tests: tests/integration/test_cli.py,
test_serve_footguns.py.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
from typing import Any

__all__ = [
    "ACCESS_FORMATS",
    "ATOMS",
    "AccessFormatter",
    "check_access_format",
    "load_log_config",
    "setup_logging",
    "uses_request_time",
]


#: ``--access-log-format`` names; anything else with ``%(`` in it is a template of atoms.
ACCESS_FORMATS = ("common", "combined", "json")


class AccessFormatter(logging.Formatter):
    """The access line as the server logs it (Common Log Format); ``combined`` appends the
    quoted Referer and User-Agent, taken from the record's ``referer`` and ``user_agent``
    attributes ("-" when the record has none). ``template``: gunicorn's access-log atoms
    (``%(h)s %(t)s "%(r)s" %(s)s %(D)s``, ``%({x-request-id}i)s``, see ATOMS);
    ``json_lines``: one JSON object per line."""

    def __init__(
        self, combined: bool = False, *, template: str | None = None, json_lines: bool = False
    ) -> None:
        super().__init__("%(message)s")
        self.combined = combined
        self.template = template
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        if self.template is not None:
            return self.template % Atoms(record)
        if self.json_lines:
            return json_line(record)
        line = super().format(record)
        if not self.combined:
            return line
        referer = _clf_quote(getattr(record, "referer", None))
        agent = _clf_quote(getattr(record, "user_agent", None))
        return f'{line} "{referer}" "{agent}"'


#: The atoms of an access-log template (gunicorn's names).
ATOMS = {
    "h": "remote address",
    "l": "'-'",
    "u": "user name ('-')",
    "t": "date and time, [01/Dec/2026:10:00:00 +0000]",
    "r": "request line, GET /path?q HTTP/1.1",
    "m": "method",
    "U": "path without the query",
    "q": "query string",
    "H": "protocol",
    "s": "status",
    "B": "response body bytes",
    "b": "response body bytes, '-' for none",
    "f": "Referer",
    "a": "User-Agent",
    "T": "request time in whole seconds",
    "M": "request time in milliseconds",
    "D": "request time in microseconds",
    "L": "request time in seconds, with decimals",
    "p": "process id",
    "{header}i": "a request header",
}


class Atoms(dict[str, Any]):
    """The atoms of one access-log record, computed when a template asks for them."""

    def __init__(self, record: logging.LogRecord) -> None:
        super().__init__()
        self.record = record

    def __missing__(self, key: str) -> Any:
        record = self.record
        request = getattr(record, "request", None)
        seconds = getattr(record, "request_time", None)
        if key.startswith("{") and key.endswith("}i"):
            value = request.headers.get(key[1:-2]) if request is not None else None
            return value or "-"
        if key in ("T", "M", "D", "L"):
            if seconds is None:
                return "-"
            return {
                "T": int(seconds),
                "M": int(seconds * 1e3),
                "D": int(seconds * 1e6),
                "L": f"{seconds:.6f}",
            }[key]
        if key == "h":
            addr = (
                request.remote_addr if request is not None else getattr(record, "remote_addr", None)
            )
            return _host(addr)
        if key in ("l", "u"):
            return "-"
        if key == "t":
            return f"[{getattr(record, 'when', '-')}]"
        if key == "s":
            return getattr(record, "status", "-")
        if key in ("B", "b"):
            size = getattr(record, "body_bytes", 0) or 0
            return size if key == "B" or size else "-"
        if key == "f":
            return getattr(record, "referer", None) or "-"
        if key == "a":
            return getattr(record, "user_agent", None) or "-"
        if key == "p":
            return os.getpid()
        if request is None:
            if key in ("r", "m", "U", "q", "H"):
                return "-"
        else:
            line = {
                "r": f"{request.method} {request.target} {request.version}",
                "m": request.method,
                "U": request.path,
                "q": request.query,
                "H": request.version,
            }.get(key)
            if line is not None:
                return line
        raise KeyError(f"unknown access-log atom {key!r}")


def _host(addr: Any) -> str:
    return str(addr[0]) if isinstance(addr, tuple) else (addr or "-")


def json_line(record: logging.LogRecord) -> str:
    """One request as a JSON object (``--access-log-format json``)."""
    atoms = Atoms(record)
    seconds = getattr(record, "request_time", None)
    request = getattr(record, "request", None)
    data = {
        "time": getattr(record, "when", None),
        "remote_addr": atoms["h"],
        "method": request.method if request is not None else None,
        "path": request.path if request is not None else None,
        "query": request.query if request is not None else None,
        "protocol": request.version if request is not None else None,
        "status": getattr(record, "status", None),
        "bytes": getattr(record, "body_bytes", 0),
        "referer": getattr(record, "referer", None),
        "user_agent": getattr(record, "user_agent", None),
        "request_time_us": None if seconds is None else int(seconds * 1e6),
        "pid": os.getpid(),
    }
    return json.dumps(data, separators=(",", ":"))


def check_access_format(text: str) -> None:
    """Raises ValueError for an --access-log-format that is neither a name nor a template
    of known atoms."""
    if text in ACCESS_FORMATS:
        return
    if "%(" not in text:
        raise ValueError(
            f"--access-log-format {text!r}: give common, combined, json, or a template of "
            "atoms like '%(h)s \"%(r)s\" %(s)s %(D)s'"
        )
    record = logging.LogRecord("reactor.access", logging.INFO, "", 0, "", (), None)
    try:
        text % Atoms(record)
    except KeyError as exc:
        raise ValueError(f"--access-log-format: {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--access-log-format {text!r}: {exc}") from None


def formatter_for(access_format: str) -> AccessFormatter:
    if access_format == "json":
        return AccessFormatter(json_lines=True)
    if access_format in ("common", "combined"):
        return AccessFormatter(combined=access_format == "combined")
    return AccessFormatter(template=access_format)


def uses_request_time(access_format: str) -> bool:
    """Whether the format logs the request time (then handlers are timed)."""
    if access_format == "json":
        return True
    return any(f"%({atom})" in access_format for atom in "TMDL")


def _clf_quote(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "-"
    return value.replace("\\", "\\\\").replace('"', '\\"')


#: The name of the handlers reactor serve adds, so a second ``main()`` in one process (the
#: tests) replaces them instead of adding more.
_HANDLER_NAME = "reactor-serve"


def load_log_config(path: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary from a JSON or TOML file (by its
    extension; else JSON, then TOML); raises ValueError naming the file and the problem."""
    import tomllib

    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise ValueError(f"--log-config {path!r}: cannot read it: {exc.strerror or exc}") from None
    data: Any = None
    errors = []
    readers = [("JSON", json.loads), ("TOML", tomllib.loads)]
    if path.endswith(".toml"):
        readers.reverse()
    for name, read in readers:
        try:
            data = read(raw.decode("utf-8"))
            break
        except (ValueError, UnicodeDecodeError) as exc:
            errors.append(f"not {name} ({' '.join(str(exc).split())})")
    else:
        raise ValueError(f"--log-config {path!r}: " + "; ".join(errors))
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ValueError(
            f"--log-config {path!r}: a logging.config.dictConfig dictionary needs version = 1"
        )
    # Loggers made before (reactor's, the app's) stay enabled unless the file says otherwise.
    data.setdefault("disable_existing_loggers", False)
    return data


def setup_logging(
    level: str,
    access_log: str | None,
    access_format: str,
    log_config: dict[str, Any] | None = None,
) -> None:
    """Handlers on reactor's loggers only ("reactor" on stderr, "reactor.access" to its
    file), which do not propagate: the root logger is the application's to configure, and a
    line is never printed twice because both configured it. ``log_config`` (--log-config) is
    applied last with ``logging.config.dictConfig``: what it says of a logger wins. Raises
    ValueError when dictConfig refuses it."""
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
        handler.setFormatter(formatter_for(access_format))
        _replace_handler(access, handler)
    if log_config is not None:
        try:
            logging.config.dictConfig(log_config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise ValueError(f"--log-config: {' '.join(str(exc).split())}") from None


def _replace_handler(logger: logging.Logger, handler: logging.Handler) -> None:
    for old in list(logger.handlers):
        if old.name == _HANDLER_NAME:
            logger.removeHandler(old)
            old.close()
    handler.set_name(_HANDLER_NAME)
    logger.addHandler(handler)
