"""The ``reactor`` command line: ``reactor serve [APP] [options]``, ``reactor leakcheck``.

Owns the command's parser (the ServerConfig flags come from reactor/cliconfig.py), the
REACTOR_* environment variables, logging setup, the startup line on stdout and the exit
statuses: 0 after a signal-driven shutdown, 1 when the server cannot listen (address in use),
2 for bad flags or an APP that cannot be loaded (one line on stderr, nothing else). It does
not serve anything itself: ``reactor.run.serve`` runs the server, ``reactor.static`` the
files, ``reactor.apploader`` loads APP (``load_app`` and ``AppLoadError`` are re-exported
here) and ``reactor.leakcheck`` runs ``reactor leakcheck``.
Tests: tests/integration/test_cli.py.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .apploader import AppLoadError, load_app, one_line
from .cliconfig import add_config_flags, config_from_args, parse_count, parse_port, parse_seconds
from .run import Bind, bind_socket, parse_bind, serve, socket_url
from .server import Handler, Server

__all__ = ["AppLoadError", "build_parser", "config_from_args", "load_app", "main"]


#: The name reactor is installed under (``pip install reactor-httpd``): ``reactor`` on the
#: package index is another project. The import name and the command stay ``reactor``.
DISTRIBUTION = "reactor-httpd"


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
    parser = _Parser(
        prog="reactor",
        description="reactor: a single-threaded HTTP/1.1 server with connection hijacking.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version(DISTRIBUTION)}")
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
        help="serve a WSGI (PEP 3333) application; it runs on the loop and blocks it while "
        "it computes: use --workers for more cores",
    )
    what.add_argument(
        "--root",
        metavar="DIR",
        default=None,
        help="directory of static files to serve when no APP is given (default: .)",
    )
    what.add_argument(
        "--dotfiles",
        choices=("ignore", "deny", "allow"),
        default="ignore",
        help="static files whose path has a name starting with '.' (.git, .env): answered "
        "404 and not listed (ignore), 403 (deny), or served (allow) (default: ignore)",
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
        choices=("selectors", "asyncio", "uvloop"),
        default="selectors",
        help="event loop: reactor's own (selectors), asyncio, or uvloop (pip install "
        "'reactor-httpd[uvloop]') (default: selectors)",
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
    (the command line wins). A switch takes 1/true/yes/on or 0/false/no/off; --access-log
    takes those too (yes: stdout, no: off) or a file name; --bind takes addresses separated by
    spaces or commas."""
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
        elif action.nargs == "?" and action.const is not None:  # --access-log [FILE]
            lowered = value.strip().lower()
            if lowered in _TRUE:
                # The value is spelled out: a bare flag inserted before APP would take APP.
                extra.append(f"{flag}={action.const}")
            elif lowered not in _FALSE:
                extra.append(f"{flag}={value}")
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


#: The name of the handlers reactor serve adds, so a second ``main()`` in one process (the
#: tests) replaces them instead of adding more.
_HANDLER_NAME = "reactor-serve"


def _setup_logging(level: str, access_log: str | None, access_format: str) -> None:
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


# -- checks at start-up: one line naming the thing and what to do ------------------------------

_APP_LIKE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(.*\))?")


def _check_path_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A flag that takes a path but got ``module:attr`` took the APP that followed it."""
    for flag, dest in _PATH_FLAGS:
        value = getattr(args, dest, None)
        if not isinstance(value, str) or not _APP_LIKE.fullmatch(value):
            continue
        if os.path.exists(value):
            continue
        hint = " (or --access-log=- for stdout)" if flag == "--access-log" else ""
        parser.error(
            f"{flag} {value!r} looks like an application (module:callable), not a file: "
            f"give APP before {flag}{hint}"
        )


#: Flags whose value is a path, checked by _check_path_flags.
_PATH_FLAGS = [
    ("--access-log", "access_log"),
    ("--root", "root"),
    ("--certfile", "certfile"),
    ("--keyfile", "keyfile"),
]


def _check_access_log(parser: argparse.ArgumentParser, path: str | None) -> None:
    """The access log file can be opened for appending (now, not at the first request)."""
    if path is None or path == "-":
        return
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        parser.error(
            f"--access-log {path!r}: cannot open it for appending: {exc.strerror or exc} "
            "(give a writable file, or - for stdout)"
        )


def _load_tls(parser: argparse.ArgumentParser, certfile: str, keyfile: str | None) -> Any:
    """The SSLContext for --certfile/--keyfile, or a usage error naming the file at fault."""
    import ssl

    from .tls import make_context

    for flag, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        if path is None:
            continue
        try:
            with open(path, "rb") as file:
                text = file.read(1 << 20)
        except OSError as exc:
            parser.error(f"{flag} {path!r}: cannot read it: {exc.strerror or exc}")
        if flag == "--certfile" and b"-----BEGIN CERTIFICATE-----" not in text:
            parser.error(f"--certfile {path!r} holds no PEM certificate (BEGIN CERTIFICATE)")
        has_key = b"PRIVATE KEY-----" in text
        if flag == "--keyfile" and not has_key:
            parser.error(f"--keyfile {path!r} holds no PEM private key (BEGIN PRIVATE KEY)")
        if flag == "--certfile" and keyfile is None and not has_key:
            parser.error(
                f"--certfile {path!r} holds no private key: give its key with --keyfile FILE"
            )

    def no_password() -> str:
        raise ValueError("encrypted")

    try:
        return make_context(certfile, keyfile, no_password)  # type: ignore[arg-type]
    except ValueError:
        parser.error(
            f"the private key in {keyfile or certfile!r} is encrypted: give an unencrypted "
            "key (openssl pkey -in KEY -out KEY.plain)"
        )
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or exc.reason == "KEY_VALUES_MISMATCH":
            parser.error(
                f"the private key in {keyfile or certfile!r} does not match the certificate "
                f"in {certfile!r}"
            )
        parser.error(f"cannot load --certfile {certfile!r}: {one_line(exc)}")
    except OSError as exc:
        parser.error(f"cannot load --certfile/--keyfile: {one_line(exc)}")


# -- serve --------------------------------------------------------------------------------------


def _serve_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    _check_path_flags(parser, args)
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
        if args.wsgi is not None:
            from .wsgi import WSGIHandler

            handler = WSGIHandler(
                app,  # type: ignore[arg-type]
                multiprocess=workers is not None and workers > 1,
                url_scheme="https" if args.certfile else "http",
            )
            what = f"{args.wsgi} (WSGI)"
        else:
            handler = app
            what = args.app
    else:
        from .static import StaticFiles

        root = args.root if args.root is not None else "."
        if not os.path.isdir(root):
            parser.error(f"--root {root!r} is not a directory")
        static = StaticFiles(root, dotfiles=args.dotfiles)
        handler = static
        what = static.root

    ssl_context = None
    if args.certfile:
        ssl_context = _load_tls(parser, args.certfile, args.keyfile)
    _check_access_log(parser, args.access_log)

    new_loop = _loop_factory(parser, args.loop)
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
            f"({args.loop} loop, {count}; Ctrl-C to stop)"
        )

        def run_here(parent_pid: int | None, ready: Callable[[Server, list[str]], object]) -> Any:
            return serve(
                handler,
                config=config,
                sockets=sockets,
                ssl_context=ssl_context,
                loop=new_loop(),
                parent_pid=parent_pid,
                ready=ready,
            )

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
                "--loop uvloop needs uvloop, which is not installed: "
                "pip install 'reactor-httpd[uvloop]'"
            )
    return lambda: new_loop(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``reactor`` command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments[0] if arguments else None)
    if arguments[:1] == ["serve"]:
        serve_parser = parser.subcommands["serve"]
        arguments[1:1] = args_from_env(serve_parser, arguments[1:], dict(os.environ))
    args, unknown = parser.parse_known_args(arguments)
    if unknown:
        # argparse reports a subcommand's unknown flag from the top parser, pointing to
        # ``reactor --help``, where the flag is not described: the subcommand reports it.
        where: argparse.ArgumentParser = getattr(args, "command_parser", None) or parser
        where.error(f"unrecognized arguments: {' '.join(unknown)}")
    command: Callable[[argparse.ArgumentParser, argparse.Namespace], int] = args.run
    try:
        return command(args.command_parser, args)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
