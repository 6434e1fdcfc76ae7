"""``reactor leakcheck``'s command line: the options, the usage errors, the output.

Owns ``add_arguments`` (also used by ``reactor leakcheck`` in reactor/cli.py and by
tools/leakcheck.py: the options, the description and the list of scenarios for ``--help``),
``build_parser``, ``run_from_args`` (APP or ``--wsgi`` loaded with reactor.apploader, the
requests of ``--path``/``--host``/``--header``/``--data``, the scenarios chosen, the progress
line on a terminal, a line per scenario, the logged errors once each, the verdict line or the
JSON, ``--summary``) and ``main``. Exit status: 0 clean or cycles, 1 leak or a failure (cycles
with ``--strict``), 2 usage. Tests: tests/leaks/test_leakcheck.py,
tests/leaks/test_leakcheck_apps.py.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any, NoReturn, TextIO

from ..apploader import AppLoadError, load_app
from .client import Step, Target
from .measure import Options, ScenarioResult
from .report import format_details, format_line, format_logged, format_table, run
from .scenarios import SCENARIOS
from .userapp import APP_SCENARIOS

__all__ = ["MAKE_REQUESTS", "add_arguments", "build_parser", "main", "run_from_args"]


#: What ``make leakcheck`` runs (the Makefile's LEAKCHECK_REQUESTS; a test keeps them equal).
MAKE_REQUESTS = 1000

_DESCRIPTION = (
    "Prove, with objgraph and tracemalloc, that reactor frees every connection, request and "
    "response (hijacked ones included) by reference counting, or find what your application "
    "leaks: without APP, reactor's built-in scenarios; with APP (a handler(w, r) as "
    "module:callable) or --wsgi module:app, your application under real requests."
)


def _epilog() -> str:
    lines = ["built-in scenarios (reactor's own handlers):"]
    lines.extend(f"  {s.name:<20} {s.help}" for s in SCENARIOS.values())
    lines.append("")
    lines.append("APP scenarios (with APP or --wsgi; the requests of --path/--method/--data...):")
    lines.extend(f"  {s.name:<20} {s.help}" for s in APP_SCENARIOS.values())
    lines.append("")
    lines.append(
        "Each scenario runs --warmup requests, then --requests in 3 rounds with the cyclic GC\n"
        "disabled; after each round gc.collect() runs and the objects and bytes still alive are\n"
        "counted. Verdicts, per scenario and for the run:\n"
        "  clean   reference counting freed everything;\n"
        "  cycles  nothing survived gc.collect(), but reference cycles needed it (their types,\n"
        "          how many per request, the shortest cycle and who made it; reactor's own\n"
        "          objects in a cycle always fail, --strict fails on any cycle);\n"
        "  leak    objects survive gc.collect() and grow with the requests (the chain that\n"
        "          holds one of each leaked type), or reactor's objects, fds, timers are left.\n"
        "Exit status: 0 clean or cycles, 1 leak (or a failure), 2 usage.\n"
        f"`make leakcheck` runs tools/leakcheck.py --requests {MAKE_REQUESTS}\n"
        "(LEAKCHECK_REQUESTS) on the built-in suite, with --max-bytes-per-conn 1024 and --summary\n"
        "leakcheck-summary.md; `make test` runs it at 20 requests per scenario."
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The leakcheck options, for ``reactor leakcheck`` and for this module's own parser (and
    the description and the scenarios for ``--help``)."""
    parser.description = _DESCRIPTION
    parser.epilog = _epilog()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help="your handler as module:callable (handler(w, r)); without it, the built-in suite",
    )
    parser.add_argument("--wsgi", metavar="MODULE:APP", help="a WSGI application instead")
    req = parser.add_argument_group("the requests (APP and --wsgi)")
    req.add_argument(
        "--path",
        action="append",
        metavar="[METHOD ]PATH",
        help="a request target, repeatable: the requests go through the list in turn "
        "(default /); 'POST /login' gives its own method",
    )
    req.add_argument("--method", default="GET", help="method of the --path without one (GET)")
    req.add_argument("--host", default="localhost", help="the Host header (default localhost)")
    req.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra request header, repeatable",
    )
    body = req.add_mutually_exclusive_group()
    body.add_argument("--data", metavar="TEXT", help="the body of POST/PUT/PATCH requests")
    body.add_argument(
        "--data-file", "--body-file", dest="data_file", metavar="F", help="the body, from F"
    )
    req.add_argument(
        "--expect-status",
        type=_status,
        metavar="N",
        help="stop a scenario (ERROR) at the first response with another status",
    )
    req.add_argument(
        "--no-cookies",
        dest="cookies",
        action="store_false",
        help="do not send back the cookies responses set (by default they are carried)",
    )
    parser.add_argument(
        "--requests",
        type=_positive,
        default=200,
        metavar="N",
        help=f"requests per scenario (default 200; `make leakcheck` runs {MAKE_REQUESTS})",
    )
    parser.add_argument(
        "--warmup",
        type=_count,
        default=10,
        metavar="N",
        help="requests per scenario before measuring (first-use caches; default 10)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="run only this scenario (repeatable); see the list below",
    )
    parser.add_argument(
        "--strict", action="store_true", help="reference cycles fail too (exit status 1)"
    )
    parser.add_argument(
        "--min-growth",
        type=float,
        default=0.25,
        metavar="R",
        help="a type is leaking when it grows by R objects per request or more in every "
        "round (default 0.25)",
    )
    parser.add_argument(
        "--max-bytes-growth",
        type=float,
        metavar="B",
        help="a leak too when the traced bytes grow in every round, by B per request or more "
        "(off by default: caches and allocator noise move the bytes too); catches what "
        "objects the collector does not track (str, bytes) keep",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="every cycle, chain and measurement"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    parser.add_argument(
        "--graph",
        metavar="DIR",
        help="write an objgraph back-reference picture of each leaked type into DIR "
        "(PNG with Graphviz's dot, else the .dot file)",
    )
    parser.add_argument(
        "--summary",
        metavar="FILE",
        help="also write the summary table (Markdown) to FILE",
    )
    parser.add_argument(
        "--max-bytes-per-conn",
        type=float,
        metavar="B",
        help="also fail when a scenario retains more than B tracemalloc bytes per connection",
    )


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return int(text)


def _status(text: str) -> int:
    if not text.isdigit() or not 100 <= int(text) <= 599:
        raise argparse.ArgumentTypeError(f"not an HTTP status: {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(prog: str = "reactor leakcheck") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog)
    add_arguments(parser)
    return parser


def _usage_error(message: str) -> int:
    print(f"reactor leakcheck: error: {message}", file=sys.stderr)
    return 2


def _load(spec: str) -> Any:
    """APP as ``reactor serve`` loads it (reactor.apploader.load_app); ValueError with its
    reason."""

    try:
        return load_app(spec)
    except AppLoadError as exc:
        raise ValueError(str(exc)) from None


def _steps(args: argparse.Namespace) -> list[Step]:
    """The --path list as requests; ValueError for one that is not a path."""
    steps = []
    method = args.method.upper()
    for text in args.path or ["/"]:
        parts = text.split()
        if len(parts) == 2 and parts[0].isalpha():
            step = Step(parts[0].upper(), parts[1])
        elif len(parts) == 1:
            step = Step(method, parts[0])
        else:
            raise ValueError(f"--path {text!r}: give PATH or 'METHOD PATH'")
        if not step.path.startswith("/"):
            step = Step(step.method, "/" + step.path)
        steps.append(step)
    return steps


def _headers(args: argparse.Namespace) -> list[tuple[str, str]]:
    headers = []
    for text in args.header:
        name, colon, value = text.partition(":")
        if not colon or not name.strip() or any(c in name for c in " \t\r\n"):
            raise ValueError(f"--header {text!r}: give it as 'Name: value'")
        if "\r" in value or "\n" in value:
            raise ValueError(f"--header {text!r}: a value cannot hold a line break")
        headers.append((name.strip(), value.strip()))
    return headers


def _target(args: argparse.Namespace) -> Target:
    body = b""
    if args.data is not None:
        body = args.data.encode("utf-8")
    elif args.data_file:
        try:
            with open(args.data_file, "rb") as f:
                body = f.read()
        except OSError as exc:
            raise ValueError(f"cannot read --data-file: {exc}") from None
    if any(c in args.host for c in " \t\r\n") or not args.host:
        raise ValueError(f"--host {args.host!r} is not a host")
    return Target(_steps(args), args.host, _headers(args), body, args.expect_status, args.cookies)


class _ProgressLine:
    """A line on a terminal that says where a scenario is (requests done, rate, time left);
    nothing when stderr is not a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.on = stream.isatty()
        self.started = time.monotonic()
        self.name = ""
        self.width = 0

    def __call__(self, name: str, done: int, total: int) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if name != self.name:
            self.name, self.started = name, now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 and done else 0.0
        left = f", {(total - done) / rate:.0f} s left" if rate else ""
        text = f"{name}: {done}/{total} requests, {rate:.0f}/s{left}"
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.on and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def run_from_args(args: argparse.Namespace) -> int:
    """Run what parsed ``args`` ask for; print the report; return the exit status."""
    options = Options(
        graph=args.graph,
        max_bytes_per_connection=args.max_bytes_per_conn,
        warmup=args.warmup,
        strict=args.strict,
        min_growth=args.min_growth,
        max_bytes_growth=args.max_bytes_growth,
    )
    if args.app and args.wsgi:
        return _usage_error("give APP or --wsgi, not both")
    if args.app or args.wsgi:
        try:
            loaded = _load(args.app or args.wsgi)
            options.target = _target(args)
        except ValueError as exc:
            return _usage_error(str(exc))
        if args.wsgi:
            try:
                wsgi = importlib.import_module("reactor.wsgi")
            except ImportError:
                return _usage_error("WSGI adapter not available yet (reactor.wsgi is missing)")
            adapter = getattr(wsgi, "WSGIHandler", None)
            if adapter is None:
                return _usage_error("WSGI adapter not available yet (no reactor.wsgi.WSGIHandler)")
            loaded = adapter(loaded)
        options.handler = loaded
        catalogue = APP_SCENARIOS
    else:
        catalogue = SCENARIOS
    names = args.scenario or list(catalogue)
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        return _usage_error(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(catalogue)}"
        )
    if args.graph:
        try:
            os.makedirs(args.graph, exist_ok=True)
        except OSError as exc:
            return _usage_error(f"cannot create --graph directory: {exc}")
    scenarios = [catalogue[n] for n in dict.fromkeys(names)]
    lines_to = sys.stderr if args.json else sys.stdout
    line = _ProgressLine(sys.stderr)
    options.progress = line

    def progress(result: ScenarioResult) -> None:
        line.clear()
        print(format_line(result), file=lines_to, flush=True)
        for text in format_details(result, args.verbose):
            print(text, file=lines_to, flush=True)

    report = run(scenarios, args.requests, options, progress)
    table = format_table(report)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for text in format_logged(report, args.verbose):
            print(text)
        print()
        print(table[-1])
    if args.summary:
        try:
            with open(args.summary, "w", encoding="utf-8") as out:
                out.write("\n".join(table) + "\n")
        except OSError as exc:
            print(f"reactor leakcheck: cannot write --summary: {exc}", file=sys.stderr)
            return 1
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    """``reactor leakcheck [APP] [options]``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    return run_from_args(args)
