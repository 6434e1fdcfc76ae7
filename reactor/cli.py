"""The ``reactor`` command line: ``reactor serve [APP] [options]``, ``reactor leakcheck``.

Owns the command's parser (the ServerConfig flags come from reactor/cliconfig.py), the
REACTOR_* environment variables, logging setup, the startup line on stdout and the exit
statuses: 0 after a signal-driven shutdown, 1 when the server cannot listen (address in use),
2 for bad flags or an APP that cannot be loaded (one line on stderr, nothing else). It does
not serve anything itself: ``reactor.run.serve`` runs the server, ``reactor.static`` the
files, ``reactor.apploader`` loads APP (``load_app`` and ``AppLoadError`` are re-exported
here), ``reactor.appserve`` picks the handler for the kind of app it is (and runs an ASGI
app's lifespan) and ``reactor.leakcheck`` runs ``reactor leakcheck``.
Tests: tests/integration/test_cli.py.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .apploader import INTERFACES, AppLoadError, load_app, one_line
from .appserve import app_handler, loop_backend, serve_asgi
from .cliconfig import add_config_flags, config_from_args, parse_count, parse_port, parse_seconds
from .run import Bind, bind_socket, parse_bind, serve, socket_url
from .server import Handler, Server

__all__ = ["AppLoadError", "build_parser", "config_from_args", "load_app", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``reactor serve: error: ... (see --help)``, status 2;
    ``subcommands`` (filled by build_parser) and ``flags()``, which argparse does not make
    public."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subcommands: dict[str, _Parser] = {}

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")

    def flags(self) -> list[argparse.Action]:
        """The optional arguments, in the order they were added (``--help`` included)."""
        return [action for action in self._actions if action.option_strings]


class _Append(argparse.Action):
    """``action="append"`` as a class of our own, so args_from_env can tell a repeatable
    flag (argparse's is private): each use adds its value to the list."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(values)
        setattr(namespace, self.dest, items)


def _bind(text: str) -> Bind:
    try:
        return parse_bind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(command: str | None = None) -> _Parser:
    """The ``reactor`` parser; ``command`` is the subcommand about to run, if known (the
    leakcheck module is imported only for it)."""
    from . import __name__ as package

    parser = _Parser(
        prog="reactor",
        description="reactor: a single-threaded HTTP/1.1 server with connection hijacking.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version(package)}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve_parser = commands.add_parser(
        "serve",
        help="serve static files, a handler given as module:callable, or a WSGI app",
        description=(
            "Serve APP (module:callable, a handler(w, r)), a WSGI app (--wsgi module:app) or, "
            "without either, the files under --root. Every flag can also be set by an "
            "environment variable: REACTOR_ and the flag's name in capitals with _ for - "
            "(REACTOR_PORT=8000, REACTOR_BIND='127.0.0.1:80 unix:/run/r.sock', "
            "REACTOR_ACCESS_LOG=-); a flag on the command line wins. SIGINT/SIGTERM stop "
            "gracefully (a second signal, or SIGQUIT, forces it); with --workers, SIGHUP "
            "replaces the workers one by one. Exit status: 0 after a signal, 1 when it cannot "
            "listen, 2 for bad arguments."
        ),
    )
    serve_parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help="module:callable to serve, imported with the current directory on sys.path",
    )
    what = serve_parser.add_argument_group("what to serve")
    what.add_argument(
        "--wsgi",
        metavar="MODULE:APP",
        default=None,
        help="serve a WSGI (PEP 3333) application (the same as APP --interface wsgi)",
    )
    what.add_argument(
        "--interface",
        choices=("auto", *INTERFACES),
        default="auto",
        help="what APP is: a handler(w, r) (native), a WSGI app(environ, start_response) or "
        "an ASGI async app(scope, receive, send); auto tells them apart by the call "
        "signature and says so at start-up (default: auto)",
    )
    what.add_argument(
        "--threads",
        type=parse_count,
        default=None,
        metavar="N",
        help="worker threads a WSGI app runs on (the loop keeps the sockets); 0 runs it on "
        "the loop, for apps that never block (default: 4)",
    )
    what.add_argument(
        "--root",
        metavar="DIR",
        default=None,
        help="directory of static files to serve when no APP is given (default: .)",
    )
    where = serve_parser.add_argument_group("where to listen")
    where.add_argument(
        "--bind",
        "-b",
        metavar="ADDRESS",
        type=_bind,
        action=_Append,
        default=None,
        help="HOST:PORT, [IPV6]:PORT or unix:PATH; repeat it to listen on several "
        "(default: --host:--port)",
    )
    where.add_argument(
        "--host", default=None, help="address to listen on, without --bind (default: 127.0.0.1)"
    )
    where.add_argument(
        "--port",
        type=parse_port,
        default=None,
        help="TCP port, without --bind; 0 picks a free one, printed at startup (default: 8080)",
    )
    where.add_argument("--certfile", metavar="FILE", help="serve HTTPS with this certificate")
    where.add_argument(
        "--keyfile", metavar="FILE", help="the certificate's private key (default: in certfile)"
    )
    proc = serve_parser.add_argument_group("processes and loop")
    proc.add_argument(
        "--workers",
        "-w",
        type=parse_count,
        default=None,
        metavar="N",
        help="pre-fork N worker processes under a supervisor that restarts them; 0: one per "
        "core (default: serve in this process)",
    )
    proc.add_argument(
        "--graceful-timeout",
        type=parse_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds workers get to finish in-flight requests on SIGTERM or SIGHUP "
        "(default: --shutdown-grace)",
    )
    proc.add_argument(
        "--loop",
        choices=("auto", "selectors", "asyncio", "uvloop"),
        default="auto",
        help="event loop: reactor's own (selectors), asyncio, or uvloop (pip install "
        "'reactor[uvloop]'); auto: selectors, or for an ASGI app uvloop if installed, else "
        "asyncio (default: auto)",
    )
    proc.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default="auto",
        help="ASGI lifespan events: on (a failing startup stops the server), off, or auto "
        "(on if the app speaks it) (default: auto)",
    )
    add_config_flags(serve_parser)
    serve_parser.set_defaults(run=_serve_command, command_parser=serve_parser)
    _add_leakcheck(commands, load=command == "leakcheck")
    parser.subcommands = commands.choices
    return parser


def _add_leakcheck(commands: Any, load: bool) -> None:
    """``reactor leakcheck``, run by reactor.leakcheck (``add_arguments``/``run_from_args``).
    The module is imported only when that command is the one asked for (``load``); otherwise
    a placeholder keeps the command in ``reactor --help``."""
    help_text = "check that connections and hijacks free their memory"
    if not load:
        commands.add_parser("leakcheck", help=help_text, add_help=False)
        return
    try:
        from . import leakcheck
    except ImportError as exc:
        sub = commands.add_parser("leakcheck", help=help_text)
        sub.set_defaults(run=_unavailable(f"reactor leakcheck is unavailable: {exc}"))
        sub.set_defaults(command_parser=sub)
        return
    sub = commands.add_parser("leakcheck", help=help_text)
    leakcheck.add_arguments(sub)
    sub.set_defaults(run=_leakcheck_command, command_parser=sub)


def _unavailable(message: str) -> Callable[[argparse.ArgumentParser, argparse.Namespace], int]:
    def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
        parser.error(message)

    return run


def _leakcheck_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from . import leakcheck

    status: int = leakcheck.run_from_args(args)
    return status


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "(unknown version)"


# -- environment variables ----------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def env_name(action: argparse.Action) -> str:
    """``--max-body-size`` -> ``REACTOR_MAX_BODY_SIZE``."""
    longest = max(action.option_strings, key=len)
    return "REACTOR_" + longest.lstrip("-").upper().replace("-", "_")


def args_from_env(parser: _Parser, argv: Sequence[str], environ: dict[str, str]) -> list[str]:
    """Flags for the REACTOR_* variables set in ``environ`` whose flag is not in ``argv``
    (the command line wins). A switch takes 1/true/yes/on or 0/false/no/off; --bind takes
    addresses separated by spaces or commas."""
    given = set()
    for arg in argv:
        if arg.startswith("-"):
            given.add(arg.partition("=")[0])
    extra: list[str] = []
    for action in parser.flags():
        if action.dest == "help":
            continue
        name = env_name(action)
        value = environ.get(name)
        if value is None or given.intersection(action.option_strings):
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # store_true
            lowered = value.strip().lower()
            if lowered in _TRUE:
                extra.append(flag)
            elif lowered not in _FALSE:
                parser.error(f"{name}={value!r}: expected 1/true/yes/on or 0/false/no/off")
        elif isinstance(action, _Append):
            for item in value.replace(",", " ").split():
                extra.append(f"{flag}={item}")
        else:
            extra.append(f"{flag}={value}")
    return extra


# -- logging ------------------------------------------------------------------------------------


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


def _setup_logging(level: str, access_log: str | None, access_format: str) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("reactor").setLevel(level.upper())
    if access_log is not None:
        access = logging.getLogger("reactor.access")
        access.setLevel(logging.INFO)
        access.propagate = False
        handler: logging.Handler
        if access_log == "-":
            handler = logging.StreamHandler(sys.stdout)
        else:
            from logging.handlers import WatchedFileHandler

            handler = WatchedFileHandler(access_log)
        handler.setFormatter(AccessFormatter(combined=access_format == "combined"))
        access.addHandler(handler)


# -- serve --------------------------------------------------------------------------------------


def _serve_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    binds: list[Bind] = list(args.bind or [])
    if binds and (args.host is not None or args.port is not None):
        parser.error("--host/--port are shorthands for one --bind; give one or the other")
    if not binds:
        host = args.host if args.host is not None else "127.0.0.1"
        port = args.port if args.port is not None else 8080
        binds = [Bind(host=host.strip("[]"), port=port)]
    if args.keyfile and not args.certfile:
        parser.error("--keyfile needs --certfile")

    handler: Handler
    lifespan: Any = None  # an ASGI app's reactor.asgi.Lifespan
    if args.app is not None and args.wsgi is not None:
        parser.error("give APP (a reactor handler) or --wsgi MODULE:APP, not both")
    if (args.app is not None or args.wsgi is not None) and args.root is not None:
        parser.error("--root serves static files and cannot be combined with an app")
    workers = args.workers
    if workers == 0:
        workers = os.cpu_count() or 1
    if args.app is not None or args.wsgi is not None:
        try:
            app = load_app(args.app or args.wsgi)
        except AppLoadError as exc:
            parser.error(str(exc))
        spec = args.app or args.wsgi
        handler, what = app_handler(parser, args, app, spec, workers)
        lifespan = getattr(handler, "lifespan", None)
    else:
        from .static import StaticFiles

        if args.threads is not None or args.interface != "auto":
            parser.error("--threads and --interface need an APP to serve")
        root = args.root if args.root is not None else "."
        if not os.path.isdir(root):
            parser.error(f"--root {root!r} is not a directory")
        static = StaticFiles(root)
        handler = static
        what = static.root

    ssl_context = None
    if args.certfile:
        from .tls import make_context

        try:
            ssl_context = make_context(args.certfile, args.keyfile)
        except (OSError, ValueError) as exc:
            parser.error(f"cannot load --certfile/--keyfile: {one_line(exc)}")

    loop_name = loop_backend(parser, args.loop, lifespan is not None)
    new_loop = _loop_factory(parser, loop_name)
    _setup_logging(args.log_level, args.access_log, args.access_log_format)

    sockets: list[socket.socket] = []
    try:
        for bind in binds:
            try:
                sockets.append(bind_socket(bind, config.backlog))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    reason = "address already in use"
                else:
                    reason = exc.strerror or one_line(exc)
                print(f"reactor: cannot listen on {bind}: {reason}", file=sys.stderr, flush=True)
                return 1
        scheme = "https" if ssl_context is not None else "http"
        urls = [socket_url(sock, scheme) for sock in sockets]
        count = f"{workers} workers" if workers is not None else "1 process"
        banner = (
            f"reactor: serving {what} on {', '.join(urls)} "
            f"({loop_name} loop, {count}; Ctrl-C to stop)"
        )

        def run_here(parent_pid: int | None, ready: Callable[[Server, list[str]], object]) -> Any:
            try:
                if lifespan is not None:
                    return serve_asgi(
                        lifespan,
                        loop_name,
                        handler,
                        config=config,
                        sockets=sockets,
                        ssl_context=ssl_context,
                        parent_pid=parent_pid,
                        ready=ready,
                    )
                return serve(
                    handler,
                    config=config,
                    sockets=sockets,
                    ssl_context=ssl_context,
                    loop=new_loop(),
                    parent_pid=parent_pid,
                    ready=ready,
                )
            finally:
                # The WSGI worker threads: the graceful stop waited for their requests
                # already; what still runs after it is an application that did not return.
                close = getattr(handler, "close", None)
                if callable(close):
                    close(1.0)

        if workers is None:

            def announce(_server: Server, _urls: list[str]) -> None:
                print(banner, flush=True)

            report = run_here(None, announce)
            if report is not None:
                print(
                    f"reactor: stopped ({report.drained} connection(s) drained, "
                    f"{report.unfinished} closed unfinished)",
                    flush=True,
                )
            else:
                print("reactor: stopped", flush=True)
            return 0

        from .workers import Supervisor

        grace = args.graceful_timeout or config.shutdown_grace
        supervisor = Supervisor(workers, run_here, graceful_timeout=grace)
        status = supervisor.run(lambda: print(banner, flush=True))
        print(f"reactor: stopped ({supervisor.summary()})", flush=True)
        return status
    finally:
        for sock in sockets:
            sock.close()
        if workers is None or os.getpid() == _MAIN_PID:
            for bind in binds:
                if bind.path is not None:
                    try:
                        os.unlink(bind.path)
                    except OSError:
                        pass


_MAIN_PID = os.getpid()


def _loop_factory(parser: argparse.ArgumentParser, name: str) -> Callable[[], Any]:
    """A function making the loop named by --loop (checked now, so a missing uvloop is a
    usage error before anything listens)."""
    if name == "selectors":
        from .loop.selector import SelectorLoop

        return SelectorLoop
    from . import loop as loop_package

    new_loop = getattr(loop_package, "new_loop", None)
    if new_loop is None:
        parser.error(f"--loop {name} is not available in this version of reactor")
    if name == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            parser.error(
                "--loop uvloop needs uvloop, which is not installed: pip install 'reactor[uvloop]'"
            )
    return lambda: new_loop(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``reactor`` command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments[0] if arguments else None)
    if arguments[:1] == ["serve"]:
        serve_parser = parser.subcommands["serve"]
        arguments[1:1] = args_from_env(serve_parser, arguments[1:], dict(os.environ))
    args = parser.parse_args(arguments)
    command: Callable[[argparse.ArgumentParser, argparse.Namespace], int] = args.run
    try:
        return command(args.command_parser, args)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
