"""The ``reactor`` command line: ``reactor serve [APP] [options]``.

Owns argument parsing (one flag per limit, timeout and switch of ServerConfig), loading an
APP given as ``module:callable``, logging setup, the startup line on stdout and the exit
statuses: 0 after a signal-driven shutdown, 1 when the server cannot listen (address in use),
2 for bad flags or an APP that cannot be loaded (one line on stderr, nothing else). It does
not serve anything itself: ``reactor.run.serve`` runs the server, ``reactor.static`` the
files. Tests: tests/integration/test_cli.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .config import Limits, ServerConfig
from .run import serve
from .server import Handler, Server

__all__ = ["AppLoadError", "build_parser", "load_app", "main"]

_DEFAULT_CONFIG = ServerConfig()
_DEFAULT_LIMITS = Limits()

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class AppLoadError(Exception):
    """APP could not be turned into a handler; the message says why, in one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``reactor serve: error: ... (see --help)``, status 2."""

    def error(self, message: str) -> NoReturn:
        one_line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {one_line} (see '{self.prog} --help')\n")


# -- value parsers ---------------------------------------------------------------------------

_SIZE_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _size(text: str) -> int:
    """A byte count: ``65536``, ``64K``, ``16M``, ``1G`` (binary multiples)."""
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    scale = 1
    if value[-1:] in _SIZE_SUFFIXES:
        scale = _SIZE_SUFFIXES[value[-1]]
        value = value[:-1]
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"not a size in bytes (like 65536, 64K, 16M): {text!r}")
    return int(value) * scale


def _count(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (0-65535): {text!r}")
    return int(text)


# -- the flags for ServerConfig ----------------------------------------------------------------

# (flag, dest, value parser, help). dest "limits.x" is a field of Limits, else of ServerConfig.
# Defaults are read from the dataclasses, so the help never disagrees with the code.
_TIMEOUT_FLAGS: list[tuple[str, str, Callable[[str], Any], str]] = [
    (
        "--read-header-timeout",
        "read_header_timeout",
        _seconds,
        "seconds from the first byte of a request head to its end",
    ),
    (
        "--body-timeout",
        "body_timeout",
        _seconds,
        "seconds without progress while waiting for a request body",
    ),
    (
        "--idle-timeout",
        "idle_timeout",
        _seconds,
        "seconds a keep-alive connection may wait for its next request",
    ),
    (
        "--write-timeout",
        "write_timeout",
        _seconds,
        "seconds without progress while the client does not read the response",
    ),
    (
        "--shutdown-grace",
        "shutdown_grace",
        _seconds,
        "seconds in-flight requests may finish after SIGINT/SIGTERM",
    ),
    (
        "--accept-backoff",
        "accept_backoff",
        _seconds,
        "seconds to stop accepting after running out of file descriptors",
    ),
]
_LIMIT_FLAGS: list[tuple[str, str, Callable[[str], Any], str]] = [
    (
        "--max-body-size",
        "limits.max_body_size",
        _size,
        "largest request body in bytes (413 above it; 0: no limit)",
    ),
    (
        "--max-head-bytes",
        "limits.max_head_bytes",
        _size,
        "largest request line plus headers in bytes (431 above it)",
    ),
    (
        "--max-request-line",
        "limits.max_request_line",
        _size,
        "longest request line in bytes (414 above it)",
    ),
    (
        "--max-header-count",
        "limits.max_header_count",
        _count,
        "most header fields in a request (431 above it)",
    ),
    (
        "--max-chunk-line",
        "limits.max_chunk_line",
        _size,
        "longest chunk-size line of a chunked body in bytes",
    ),
    (
        "--max-read-ahead",
        "limits.max_read_ahead",
        _size,
        "bytes read ahead of the request being handled (pipelining)",
    ),
    (
        "--max-connections",
        "max_connections",
        _count,
        "open connections at most (0: no limit)",
    ),
    ("--accept-batch", "accept_batch", _count, "connections accepted per wakeup of a listener"),
    ("--backlog", "backlog", _count, "listen() backlog"),
    (
        "--write-high-water",
        "write_high_water",
        _size,
        "output buffered per connection before a handler's drain() waits",
    ),
    (
        "--write-low-water",
        "write_low_water",
        _size,
        "output level drain() waits for",
    ),
    (
        "--response-buffer",
        "response_buffer",
        _size,
        "response bytes buffered before committing to chunked framing",
    ),
]


_METAVARS: dict[Callable[[str], Any], str] = {_seconds: "SECONDS", _size: "BYTES"}


def _default(dest: str) -> Any:
    if dest.startswith("limits."):
        return getattr(_DEFAULT_LIMITS, dest.removeprefix("limits."))
    return getattr(_DEFAULT_CONFIG, dest)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    groups = (
        ("timeouts", _TIMEOUT_FLAGS, "Seconds; fractions allowed."),
        ("limits", _LIMIT_FLAGS, "BYTES takes a K, M or G suffix (binary: 64K is 65536)."),
    )
    for title, flags, description in groups:
        group = parser.add_argument_group(title, description)
        for flag, dest, parse, text in flags:
            group.add_argument(
                flag,
                dest=dest,
                type=parse,
                default=None,
                metavar=_METAVARS.get(parse, "N"),
                help=f"{text} (default: {_default(dest)})",
            )
    group = parser.add_argument_group("responses and logging")
    group.add_argument(
        "--server-header",
        metavar="NAME",
        default=None,
        help=f"value of the Server header (default: {_DEFAULT_CONFIG.server_header})",
    )
    group.add_argument(
        "--no-server-header", action="store_true", help="send no Server header at all"
    )
    group.add_argument(
        "--access-log",
        action="store_true",
        help="log every request in Common Log Format (logger reactor.access, on stderr)",
    )
    group.add_argument(
        "--log-level",
        type=str.lower,
        choices=_LOG_LEVELS,
        default="info",
        help="level of reactor's log on stderr (default: info)",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig the flags describe; raises ValueError for inconsistent values."""
    limits_changes: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    for _flag, dest, _parse, _help in _TIMEOUT_FLAGS + _LIMIT_FLAGS:
        value = getattr(args, dest)
        if value is None:
            continue
        if dest.startswith("limits."):
            limits_changes[dest.removeprefix("limits.")] = value
        else:
            changes[dest] = value
    if args.no_server_header:
        changes["server_header"] = None
    elif args.server_header is not None:
        changes["server_header"] = args.server_header
    if args.access_log:
        changes["access_log"] = True
    if limits_changes:
        changes["limits"] = dataclasses.replace(_DEFAULT_LIMITS, **limits_changes)
    return dataclasses.replace(_DEFAULT_CONFIG, **changes)


def build_parser() -> argparse.ArgumentParser:
    from . import __name__ as package

    parser = _Parser(
        prog="reactor",
        description="reactor: a single-threaded HTTP/1.1 server with connection hijacking.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version(package)}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve_parser = commands.add_parser(
        "serve",
        help="serve static files, or an app given as module:callable",
        description=(
            "Serve APP (module:callable, a handler(w, r)) or, without APP, the files under "
            "--root. Stops gracefully on SIGINT or SIGTERM (a second signal forces it). "
            "Exit status: 0 after a signal, 1 when it cannot listen, 2 for bad arguments."
        ),
    )
    serve_parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help="module:callable to serve, imported with the current directory on sys.path",
    )
    serve_parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve_parser.add_argument(
        "--port", type=_port, default=8080, help="TCP port; 0 picks a free one (default: 8080)"
    )
    serve_parser.add_argument(
        "--root",
        metavar="DIR",
        default=None,
        help="directory of static files to serve when no APP is given (default: .)",
    )
    _add_config_flags(serve_parser)
    serve_parser.set_defaults(run=_serve_command, command_parser=serve_parser)
    return parser


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "(unknown version)"


# -- APP ----------------------------------------------------------------------------------------


def load_app(spec: str) -> Handler:
    """Import ``module:callable`` (the attribute may be dotted) with the current directory
    on ``sys.path``; raises AppLoadError with a one-line reason."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f"APP must look like module:callable, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise AppLoadError(
                f"cannot import {module_name!r}: no module named {missing!r}"
            ) from None
        raise AppLoadError(f"importing {module_name!r} failed: {_one_line(exc)}") from None
    except Exception as exc:
        raise AppLoadError(f"importing {module_name!r} failed: {_one_line(exc)}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise AppLoadError(f"{spec} is a {type(obj).__name__}, not a callable handler(w, r)")
    handler: Handler = obj
    return handler


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- main ---------------------------------------------------------------------------------------


def _setup_logging(level: str, access_log: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("reactor").setLevel(level.upper())
    if access_log:
        logging.getLogger("reactor.access").setLevel(logging.INFO)


def _serve_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    handler: Handler
    if args.app is not None:
        if args.root is not None:
            parser.error("--root serves static files and cannot be combined with APP")
        try:
            handler = load_app(args.app)
        except AppLoadError as exc:
            parser.error(str(exc))
        what = args.app
    else:
        from .static import StaticFiles

        root = args.root if args.root is not None else "."
        if not os.path.isdir(root):
            parser.error(f"--root {root!r} is not a directory")
        static = StaticFiles(root)
        handler = static
        what = static.root
    _setup_logging(args.log_level, args.access_log)

    announced = False

    def ready(_server: Server, urls: list[str]) -> None:
        nonlocal announced
        announced = True
        print(f"reactor: serving {what} on {', '.join(urls)} (Ctrl-C to stop)", flush=True)

    try:
        serve(handler, args.host, args.port, config=config, ready=ready)
    except OSError as exc:
        if announced:
            raise
        where = f"{args.host}:{args.port}"
        if exc.errno == errno.EADDRINUSE:
            reason = "address already in use"
        else:
            reason = exc.strerror or _one_line(exc)
        print(f"reactor: cannot listen on {where}: {reason}", file=sys.stderr, flush=True)
        return 1
    print("reactor: stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``reactor`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.ArgumentParser, argparse.Namespace], int] = args.run
    try:
        return command(args.command_parser, args)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
