"""``reactor serve``'s flags for ServerConfig: one per limit, timeout and switch.

Owns the value parsers (sizes with K/M/G suffixes, counts, seconds, ports), the flag tables
(each flag's ServerConfig or Limits field and help; defaults are read from the dataclasses,
so the help never disagrees with the code), the argument groups that add them to a parser
and ``config_from_args``, which turns parsed flags back into a ServerConfig. Used by
reactor/cli.py (which re-exports ``config_from_args``). Tests: tests/integration/test_cli.py.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from .config import Limits, ServerConfig

__all__ = [
    "add_config_flags",
    "config_from_args",
    "parse_count",
    "parse_port",
    "parse_seconds",
    "parse_size",
]

_DEFAULT_CONFIG = ServerConfig()
_DEFAULT_LIMITS = Limits()

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


# -- value parsers ---------------------------------------------------------------------------

_SIZE_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """A byte count: ``65536``, ``64K``, ``16M``, ``1G`` (binary multiples)."""
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    scale = 1
    if value[-1:] in _SIZE_SUFFIXES:
        scale = _SIZE_SUFFIXES[value[-1]]
        value = value[:-1]
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"not a size in bytes (like 65536, 64K, 16M): {text!r}")
    return int(value) * scale


def parse_count(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {text!r}")
    return int(text)


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def parse_seconds_or_zero(text: str) -> float:
    """Seconds, or 0 for "off"."""
    if text.strip() in ("0", "0.0"):
        return 0.0
    return parse_seconds(text)


def parse_port(text: str) -> int:
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
        parse_seconds,
        "seconds from the first byte of a request head to its end",
    ),
    (
        "--body-timeout",
        "body_timeout",
        parse_seconds,
        "seconds without progress while waiting for a request body",
    ),
    (
        "--idle-timeout",
        "idle_timeout",
        parse_seconds,
        "seconds a keep-alive connection may wait for its next request",
    ),
    (
        "--write-timeout",
        "write_timeout",
        parse_seconds,
        "seconds without progress while the client does not read the response",
    ),
    (
        "--shutdown-grace",
        "shutdown_grace",
        parse_seconds,
        "seconds in-flight requests may finish after SIGINT/SIGTERM",
    ),
    (
        "--accept-backoff",
        "accept_backoff",
        parse_seconds,
        "seconds to stop accepting after running out of file descriptors",
    ),
    (
        "--stall-warning",
        "stall_warning",
        parse_seconds_or_zero,
        "warn, naming the code, when the loop runs no callback for this many seconds "
        "(a handler that blocks every connection); 0: off",
    ),
    (
        "--proxy-protocol-timeout",
        "proxy_protocol_timeout",
        parse_seconds,
        "seconds a connection gets to send its PROXY header (with --proxy-protocol)",
    ),
    (
        "--tls-handshake-timeout",
        "tls_handshake_timeout",
        parse_seconds,
        "seconds a connection gets to complete its TLS handshake (with --certfile)",
    ),
]
_LIMIT_FLAGS: list[tuple[str, str, Callable[[str], Any], str]] = [
    (
        "--max-body-size",
        "limits.max_body_size",
        parse_size,
        "largest request body in bytes (413 above it; 0: no limit)",
    ),
    (
        "--max-head-bytes",
        "limits.max_head_bytes",
        parse_size,
        "largest request line plus headers in bytes (431 above it)",
    ),
    (
        "--max-request-line",
        "limits.max_request_line",
        parse_size,
        "longest request line in bytes (414 above it)",
    ),
    (
        "--max-header-count",
        "limits.max_header_count",
        parse_count,
        "most header fields in a request (431 above it)",
    ),
    (
        "--max-chunk-line",
        "limits.max_chunk_line",
        parse_size,
        "longest chunk-size line of a chunked body in bytes",
    ),
    (
        "--max-chunk-count",
        "limits.max_chunk_count",
        parse_count,
        "most chunks in a chunked request body (400 above it; 0: no limit)",
    ),
    (
        "--max-chunk-overhead",
        "limits.max_chunk_overhead",
        parse_size,
        "most framing bytes (size lines, extensions, CRLFs, trailers) in a chunked request "
        "body (400 above it; 0: no limit)",
    ),
    (
        "--max-chunk-excess",
        "limits.max_chunk_excess",
        parse_size,
        "framing bytes of a chunked request body beyond 16 per chunk plus 2 per data byte "
        "(Go's rule; 400 above it; 0: no limit)",
    ),
    (
        "--max-read-ahead",
        "limits.max_read_ahead",
        parse_size,
        "bytes read ahead of the request being handled (pipelining)",
    ),
    (
        "--max-buffered-bytes",
        "max_buffered_bytes",
        parse_size,
        "request-body bytes all connections waiting for a body may hold together; past it "
        "reading pauses on those holding the most (0: no limit)",
    ),
    (
        "--max-connections",
        "max_connections",
        parse_count,
        "open connections at most (0: no limit)",
    ),
    (
        "--accept-batch",
        "accept_batch",
        parse_count,
        "connections accepted per wakeup of a listener",
    ),
    ("--backlog", "backlog", parse_count, "listen() backlog"),
    (
        "--write-high-water",
        "write_high_water",
        parse_size,
        "output buffered per connection before a handler's drain() waits",
    ),
    (
        "--write-low-water",
        "write_low_water",
        parse_size,
        "output level drain() waits for",
    ),
    (
        "--response-buffer",
        "response_buffer",
        parse_size,
        "response bytes buffered before committing to chunked framing",
    ),
]


_METAVARS: dict[Callable[[str], Any], str] = {parse_seconds: "SECONDS", parse_size: "BYTES"}


def _default(dest: str) -> Any:
    if dest.startswith("limits."):
        return getattr(_DEFAULT_LIMITS, dest.removeprefix("limits."))
    return getattr(_DEFAULT_CONFIG, dest)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
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
    group = parser.add_argument_group(
        "behind a proxy",
        "Who the client is when a proxy (nginx, HAProxy, a load balancer) connects for it.",
    )
    group.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        default=None,
        help="peers whose X-Forwarded-For/-Proto/-Host and Forwarded headers are believed: "
        "addresses and CIDR ranges separated by commas, '*' for any, 'unix' for Unix-socket "
        "peers, '' for none (default: $FORWARDED_ALLOW_IPS, else 127.0.0.1)",
    )
    group.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="every connection starts with HAProxy's PROXY protocol header (v1 or v2), "
        "which names the client; a connection without a valid one gets 400",
    )
    group.add_argument(
        "--root-path",
        metavar="PATH",
        default=None,
        help="with --wsgi: the prefix the app is mounted under (SCRIPT_NAME), like /app; "
        "the proxy passes the full path, and paths outside the prefix get 404",
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
        metavar="FILE",
        nargs="?",
        const="-",
        default=None,
        help="log every request to FILE, or to stdout without FILE or with '-' "
        "(a file is reopened when logrotate moves it)",
    )
    group.add_argument(
        "--access-log-format",
        metavar="FORMAT",
        default="common",
        help="common (Common Log Format), combined (adds Referer and User-Agent), json (one "
        "object per line, with the request time in microseconds), or a template of "
        "gunicorn's atoms: '%%(h)s \"%%(r)s\" %%(s)s %%(b)s %%(D)s %%({x-request-id}i)s' "
        "(h address, t time, r request line, m method, U path, q query, H protocol, s status, "
        "b/B bytes, f referer, a user agent, T/M/D/L request time in s/ms/us/decimal s, p pid) "
        "(default: common)",
    )
    group.add_argument(
        "--log-config",
        metavar="FILE",
        default=None,
        help="a logging.config.dictConfig dictionary in JSON or TOML, applied after reactor's "
        "own logging setup (what it says of the reactor loggers wins)",
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
    if args.access_log is not None:
        changes["access_log"] = True
    if args.proxy_protocol:
        changes["proxy_protocol"] = True
    if args.graceful_timeout is not None and args.shutdown_grace is None:
        changes["shutdown_grace"] = args.graceful_timeout
    if limits_changes:
        changes["limits"] = dataclasses.replace(_DEFAULT_LIMITS, **limits_changes)
    return dataclasses.replace(_DEFAULT_CONFIG, **changes)
