"""``reactor leakcheck``'s command line: the options, the usage errors, the output.

Owns ``add_arguments`` (also used by ``reactor leakcheck`` in reactor/cli.py and by
tools/leakcheck.py), ``build_parser``, ``run_from_args`` (APP or ``--wsgi`` loaded with
reactor.apploader, the scenarios chosen, the progress lines, the table or JSON, ``--summary``)
and ``main``. Exit status: 0 clean, 1 leak, 2 usage. Tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, NoReturn

from ..apploader import AppLoadError, load_app
from .client import Target
from .measure import Options, ScenarioResult
from .report import format_details, format_line, format_table, run
from .scenarios import SCENARIOS
from .userapp import APP_SCENARIOS

__all__ = ["add_arguments", "build_parser", "main", "run_from_args"]


def _epilog() -> str:
    lines = ["built-in scenarios (reactor's own handlers):"]
    lines.extend(f"  {s.name:<20} {s.help}" for s in SCENARIOS.values())
    lines.append("")
    lines.append("APP scenarios (with APP or --wsgi):")
    lines.extend(f"  {s.name:<20} {s.help}" for s in APP_SCENARIOS.values())
    lines.append("")
    lines.append(
        "Each scenario runs with the cyclic GC disabled. It leaks when reactor's per-connection\n"
        "objects (Connection, Request, ResponseWriter, Task, armed timers, buffers, sockets...)\n"
        "do not return to their baseline, when a selector registration, an armed timer or a\n"
        "tracked connection is left, when gc.collect() finds reference cycles afterwards, or\n"
        "when some type grew by one object per request or more. A leak prints the chain of\n"
        "references that holds one leaked object. Exit status: 0 clean, 1 leak, 2 usage."
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The leakcheck options, for ``reactor leakcheck`` and for this module's own parser."""
    parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help="your handler as module:callable (handler(w, r)); without it, the built-in suite",
    )
    parser.add_argument("--wsgi", metavar="MODULE:APP", help="a WSGI application instead")
    parser.add_argument("--path", default="/", help="APP mode: request target (default /)")
    parser.add_argument("--method", default="GET", help="APP mode: request method (default GET)")
    parser.add_argument("--body-file", metavar="F", help="APP mode: send the bytes of F as body")
    parser.add_argument(
        "--requests",
        type=_positive,
        default=200,
        metavar="N",
        help="requests per scenario (default 200; `make leakcheck` runs 100000)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="run only this scenario (repeatable); see the list below",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    parser.add_argument(
        "--graph",
        metavar="FILE",
        help="render the back-references of the first leaked object (FILE.png/.svg with "
        "Graphviz's dot, else FILE.dot)",
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


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(prog: str = "reactor leakcheck") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Prove, with objgraph and tracemalloc, that reactor frees every connection, "
        "request and response (hijacked ones included), or find what your handler leaks.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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


def run_from_args(args: argparse.Namespace) -> int:
    """Run what parsed ``args`` ask for; print the report; return the exit status."""
    options = Options(graph=args.graph, max_bytes_per_connection=args.max_bytes_per_conn)
    if args.app and args.wsgi:
        return _usage_error("give APP or --wsgi, not both")
    if args.app or args.wsgi:
        try:
            loaded = _load(args.app or args.wsgi)
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
        body = b""
        if args.body_file:
            try:
                with open(args.body_file, "rb") as f:
                    body = f.read()
            except OSError as exc:
                return _usage_error(f"cannot read --body-file: {exc}")
        path = args.path if args.path.startswith("/") else "/" + args.path
        options.handler = loaded
        options.target = Target(args.method.upper(), path, body)
        catalogue = APP_SCENARIOS
    else:
        catalogue = SCENARIOS
    names = args.scenario or list(catalogue)
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        return _usage_error(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(catalogue)}"
        )
    scenarios = [catalogue[n] for n in dict.fromkeys(names)]
    lines_to = sys.stderr if args.json else sys.stdout

    def progress(result: ScenarioResult) -> None:
        print(format_line(result), file=lines_to, flush=True)
        for line in format_details(result):
            print(line, file=lines_to, flush=True)

    report = run(scenarios, args.requests, options, progress)
    table = format_table(report)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print()
        print("\n".join(table))
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
