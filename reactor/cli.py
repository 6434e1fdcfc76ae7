"""The ``reactor`` command line: ``reactor serve [APP] [options]``, ``reactor leakcheck``.

Owns the command's parser (the ServerConfig flags come from reactor/cliconfig.py), the
REACTOR_* environment variables, the startup line on stdout, wiring a worker to its
supervisor (ready, heartbeats, --max-requests) and the exit statuses: 0 after a
signal-driven shutdown, 1 when the server cannot listen (address in use), 2 for bad flags or
an APP that cannot be loaded (one line on stderr, nothing else). It does not serve anything
itself: ``reactor.run.serve`` runs the server, ``reactor.static`` the files,
``reactor.appsource`` loads and reloads APP (``load_app`` and ``AppLoadError`` are
re-exported here), ``reactor.appserve`` picks the handler for the kind of app it is (and
runs an ASGI app's lifespan), ``reactor.clichecks`` checks paths and certificates at start-up,
``reactor.clilog`` sets up logging, ``reactor.listeners`` adopts inherited sockets,
``reactor.workers`` supervises workers and ``reactor.leakcheck`` runs ``reactor leakcheck``.
Tests: tests/integration/test_cli.py, test_serve_footguns.py, test_workers.py,
test_worker_signals.py, test_listeners.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .apploader import INTERFACES, AppLoadError, load_app
from .appserve import app_handler, loop_backend, serve_asgi
from .appsource import AppSource, PidFile, SourceWatcher, count_requests
from .clichecks import check_access_log, check_path_flags, environment_error, load_tls
from .cliconfig import add_config_flags, config_from_args, parse_count, parse_port, parse_seconds
from .clilog import (
    AccessFormatter,
    check_access_format,
    load_log_config,
    setup_logging,
    uses_request_time,
)
from .configfile import (
    ConfigFileError,
    apply_config_file,
    args_from_env,
    flag_sources,
    key_of,
    render,
)
from .run import Bind, bind_socket, parse_bind, serve, socket_url
from .server import Handler, Server

__all__ = [
    "AccessFormatter",
    "AppLoadError",
    "build_parser",
    "config_from_args",
    "load_app",
    "main",
]


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

    def actions(self) -> list[argparse.Action]:
        """Every argument, positional ones included, in the order they were added."""
        return list(self._actions)

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


def _mode(text: str) -> int:
    from .listeners import parse_mode

    try:
        return parse_mode(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _mount(text: str) -> tuple[str, str]:
    prefix, sep, directory = text.partition("=")
    if not sep or not prefix.startswith("/") or prefix.rstrip("/") == "" or not directory:
        raise argparse.ArgumentTypeError(f"not PREFIX=DIR with PREFIX like /assets: {text!r}")
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"{directory!r} is not a directory (in {text!r})")
    return prefix.rstrip("/"), directory


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
            "gracefully (a second signal, or SIGQUIT, forces it); SIGUSR1 reopens log files; "
            "with --workers, SIGHUP imports the app afresh and replaces the workers one by "
            "one, SIGTTIN/SIGTTOU add/remove a worker. Exit status: 0 after a signal, 1 when "
            "it cannot listen, 2 for bad arguments."
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
    what.add_argument(
        "--static",
        metavar="PREFIX=DIR",
        type=_mount,
        action=_Append,
        default=None,
        help="also serve the files under DIR at URL path PREFIX, beside APP or --wsgi "
        "(--static /assets=./public); repeatable",
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
    where.add_argument(
        "--fd",
        metavar="N",
        type=parse_count,
        action=_Append,
        default=None,
        help="serve the listening socket inherited on descriptor N (repeatable); sockets "
        "passed by systemd socket activation (LISTEN_FDS) are served without a flag",
    )
    where.add_argument(
        "--uds-mode",
        metavar="MODE",
        type=_mode,
        default=None,
        help="permissions of the Unix sockets made by --bind unix:PATH, in octal, like 0o660 "
        "to let a proxy in the socket's group connect (default: from the umask)",
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
        "--max-requests",
        type=parse_count,
        default=0,
        metavar="N",
        help="with --workers: a worker that has served N requests finishes them and is "
        "replaced (bounds slow leaks in an app) (default: 0, never)",
    )
    proc.add_argument(
        "--max-requests-jitter",
        type=parse_count,
        default=0,
        metavar="N",
        help="add a random 0..N to each worker's --max-requests, so that workers are not all "
        "replaced at once (default: 0)",
    )
    proc.add_argument(
        "--worker-timeout",
        type=parse_seconds,
        default=None,
        metavar="SECONDS",
        help="with --workers: kill and replace a worker whose loop has not run for SECONDS "
        "(a handler blocking it) (default: off)",
    )
    proc.add_argument(
        "--reload",
        action="store_true",
        help="for development: serve from a worker under a supervisor that watches the .py "
        "files under the current directory and, when one changes, imports the app afresh "
        "and replaces the worker (a file that does not import keeps the old one)",
    )
    proc.add_argument(
        "--pid",
        metavar="FILE",
        default=None,
        help="write the server's process id (the supervisor's, with --workers) to FILE; "
        "removed at exit",
    )
    proc.add_argument(
        "--loop",
        choices=("auto", "selectors", "asyncio", "uvloop"),
        default="auto",
        help="event loop: reactor's own (selectors), asyncio, or uvloop (pip install "
        "'reactor-httpd[uvloop]'); auto: selectors, or for an ASGI app uvloop if installed, else "
        "asyncio (default: auto)",
    )
    proc.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default="auto",
        help="ASGI lifespan events: on (a failing startup stops the server), off, or auto "
        "(on if the app speaks it) (default: auto)",
    )
    conf = serve_parser.add_argument_group("configuration")
    conf.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="read flags from a TOML file: keys are the flags' long names with _ for - "
        '(max_requests = 1000, bind = ["127.0.0.1:8000"], app = "mod:app"); the '
        "command line and REACTOR_* variables win over it",
    )
    conf.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration as TOML, with where each value came from "
        "(flag, environment, file, default), and exit",
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


# -- serve --------------------------------------------------------------------------------------


def _serve_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    check_path_flags(parser, args)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    workers = args.workers
    if workers == 0:
        workers = os.cpu_count() or 1
    if args.reload and workers is None:
        workers = 1  # the reloading needs a supervisor
    if workers is None:
        for flag, value in (
            ("--max-requests", args.max_requests),
            ("--worker-timeout", args.worker_timeout),
        ):
            if value:
                parser.error(f"{flag} needs --workers N (a single process has no supervisor)")
    inherited = _inherited_sockets(parser, args.fd or [])
    binds: list[Bind] = list(args.bind or [])
    if binds and (args.host is not None or args.port is not None):
        parser.error("--host/--port are shorthands for one --bind; give one or the other")
    if not binds and (not inherited or args.host is not None or args.port is not None):
        host = args.host if args.host is not None else "127.0.0.1"
        port = args.port if args.port is not None else 8080
        binds = [Bind(host=host.strip("[]"), port=port)]
    if args.keyfile and not args.certfile:
        parser.error("--keyfile needs --certfile")

    if args.app is not None and args.wsgi is not None:
        parser.error("give APP (a reactor handler) or --wsgi MODULE:APP, not both")
    if (args.app is not None or args.wsgi is not None) and args.root is not None:
        parser.error("--root serves static files and cannot be combined with an app")
    root = args.root if args.root is not None else "."
    if args.app is None and args.wsgi is None:
        if args.threads is not None or args.interface != "auto":
            parser.error("--threads and --interface need an APP to serve")
        if not os.path.isdir(root):
            parser.error(f"--root {root!r} is not a directory")

    if args.root_path is not None and args.wsgi is None:
        parser.error("--root-path sets the SCRIPT_NAME of a --wsgi app")
    if args.proxy_protocol and args.certfile:
        parser.error(
            "--proxy-protocol with --certfile is not supported: let the proxy terminate TLS"
        )
    trusted = _trusted_proxies(parser, args.forwarded_allow_ips)
    try:
        check_access_format(args.access_log_format)
    except ValueError as exc:
        parser.error(str(exc))
    timed = args.access_log is not None and uses_request_time(args.access_log_format)

    # What the last build made, before the wrappers: the start-up line's name for it, an
    # ASGI app's lifespan, and the handler whose close() stops WSGI worker threads.
    built: dict[str, Any] = {"what": None, "lifespan": None, "inner": None}

    def build(app: Any) -> Handler:
        """The handler for a freshly imported app (None: the static files)."""
        handler: Handler
        if args.app is not None or args.wsgi is not None:
            handler, built["what"] = app_handler(parser, args, app, args.app or args.wsgi, workers)
            built["lifespan"] = getattr(handler, "lifespan", None)
            built["inner"] = handler
        else:
            from .static import StaticFiles

            handler = StaticFiles(root, dotfiles=args.dotfiles)
        if args.static:
            from .static import StaticFiles, mount

            mounts = [StaticFiles(d, dotfiles=args.dotfiles, prefix=p) for p, d in args.static]
            handler = mount(handler, mounts)
        if trusted:
            from .proxy import ProxyHeaders

            # The proxy's word, before the handler and the access log see the request.
            handler = ProxyHeaders(handler, trusted)
        if timed:  # the access log shows the request time
            from .accesslog import timed as timed_handler

            handler = timed_handler(handler)
        return handler

    source = AppSource(args.app or args.wsgi, build)
    try:
        source.load()
    except AppLoadError as exc:
        parser.error(str(exc))
    # (os.path.realpath as StaticFiles resolves its root)
    what = built["what"] if built["what"] is not None else os.path.realpath(root)
    lifespan = built["lifespan"]

    ssl_context = None
    if args.certfile:
        ssl_context = load_tls(parser, args.certfile, args.keyfile)
    check_access_log(parser, args.access_log)

    loop_name = loop_backend(parser, args.loop, lifespan is not None)
    new_loop = _loop_factory(parser, loop_name)
    log_config = None
    if args.log_config is not None:
        try:
            log_config = load_log_config(args.log_config)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        setup_logging(args.log_level, args.access_log, args.access_log_format, log_config)
    except ValueError as exc:
        parser.error(str(exc))

    # Written last before listening: every usage error above leaves no pid file behind.
    pid_file = PidFile(args.pid) if args.pid else None
    if pid_file is not None:
        try:
            pid_file.write()
        except OSError as exc:
            environment_error(parser, f"--pid {args.pid!r}: cannot write it: {exc.strerror or exc}")
    sockets: list[socket.socket] = list(inherited)
    try:
        for bind in binds:
            try:
                sockets.append(bind_socket(bind, config.backlog))
                if bind.path is not None and args.uds_mode is not None:
                    os.chmod(bind.path, args.uds_mode)
            except OSError as exc:
                from .listeners import listen_error

                print(listen_error(bind, exc), file=sys.stderr, flush=True)
                return 1
        scheme = "https" if ssl_context is not None else "http"
        urls = [socket_url(sock, scheme) for sock in sockets]
        count = f"{workers} workers" if workers is not None else "1 process"
        banner = (
            f"reactor: serving {what} on {', '.join(urls)} "
            f"({loop_name} loop, {count}; Ctrl-C to stop)"
        )

        def run_here(parent_pid: int | None, link: Any) -> Any:
            """Serve in this process: the single one (``link`` None) or a worker."""
            served = source.handler
            assert served is not None
            if link is not None and args.max_requests:
                limit = args.max_requests + random.randint(0, args.max_requests_jitter)
                served = count_requests(served, limit, lambda: _retire(link, limit))

            def ready(server: Server, _urls: list[str]) -> None:
                _started(server, link, args.worker_timeout, banner)

            try:
                # The lifespan of the app as last (re)loaded (HUP re-imports it).
                current_lifespan = built["lifespan"]
                if current_lifespan is not None:
                    return serve_asgi(
                        current_lifespan,
                        loop_name,
                        served,
                        config=config,
                        sockets=sockets,
                        ssl_context=ssl_context,
                        parent_pid=parent_pid,
                        ready=ready,
                    )
                return serve(
                    served,
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
                close = getattr(built["inner"], "close", None)
                if callable(close):
                    close(1.0)

        if workers is None:
            report = run_here(None, None)
            if report is not None:
                print(
                    f"reactor: stopped ({report.drained} connection(s) drained, "
                    f"{report.unfinished} closed unfinished)",
                    flush=True,
                )
            else:
                print("reactor: stopped", flush=True)
            return 0

        from .accesslog import reopen_log_files
        from .workers import Supervisor

        grace = args.graceful_timeout or config.shutdown_grace
        supervisor = Supervisor(
            workers,
            run_here,
            graceful_timeout=grace,
            worker_timeout=args.worker_timeout,
            reload=source.reload,
            reopen_logs=reopen_log_files,
            watch=SourceWatcher(os.getcwd()).changed if args.reload else None,
        )
        status = supervisor.run(lambda: print(banner, flush=True))
        print(f"reactor: stopped ({supervisor.summary()})", flush=True)
        return status
    finally:
        for sock in sockets:
            sock.close()
        if workers is None or os.getpid() == _MAIN_PID:
            if pid_file is not None:
                pid_file.remove()
            for bind in binds:
                if bind.path is not None:
                    try:
                        os.unlink(bind.path)
                    except OSError:
                        pass


def _inherited_sockets(parser: argparse.ArgumentParser, fds: list[int]) -> list[socket.socket]:
    from .listeners import NotAListener, inherited_sockets

    try:
        return inherited_sockets(fds, os.environ)
    except NotAListener as exc:
        parser.error(str(exc))


def _trusted_proxies(parser: argparse.ArgumentParser, spec: str | None) -> Any:
    """--forwarded-allow-ips, else FORWARDED_ALLOW_IPS (as gunicorn and uvicorn read it),
    else 127.0.0.1 (a proxy on this machine)."""
    from .proxy import TrustedProxies

    flag = "--forwarded-allow-ips"
    if spec is None:
        spec = os.environ.get("FORWARDED_ALLOW_IPS")
        flag = "FORWARDED_ALLOW_IPS"
    if spec is None:
        spec = "127.0.0.1"
    try:
        return TrustedProxies(spec)
    except ValueError as exc:
        parser.error(f"{flag} {spec!r}: {exc}")


def _started(server: Server, link: Any, worker_timeout: float | None, banner: str) -> None:
    """A process serves: the single one prints the banner; a worker tells its supervisor,
    and with --worker-timeout its loop sends a heartbeat from a timer (a blocked loop sends
    none, and the supervisor replaces the worker)."""
    if link is None:
        print(banner, flush=True)
        return
    link()
    if worker_timeout is None:
        return
    loop = server.loop
    interval = min(1.0, worker_timeout / 4)

    def beat() -> None:
        link.heartbeat()
        loop.call_later(interval, beat)

    beat()


def _retire(link: Any, limit: int) -> None:
    """--max-requests reached: tell the supervisor (it starts a replacement now), then stop
    the way SIGTERM does (the requests in flight finish)."""
    logging.getLogger("reactor.workers").info(
        "worker %d served %d requests (--max-requests); retiring", os.getpid(), limit
    )
    link.retire()
    os.kill(os.getpid(), signal.SIGTERM)


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
    sources: dict[str, str] = {}
    if arguments[:1] == ["serve"]:
        serve_parser = parser.subcommands["serve"]
        from_env = args_from_env(
            serve_parser, arguments[1:], dict(os.environ), lambda a: isinstance(a, _Append)
        )
        sources = flag_sources(serve_parser.flags(), arguments[1:], from_env)
        arguments[1:1] = from_env
    args, unknown = parser.parse_known_args(arguments)
    if unknown:
        # argparse reports a subcommand's unknown flag from the top parser, pointing to
        # ``reactor --help``, where the flag is not described: the subcommand reports it.
        where: argparse.ArgumentParser = getattr(args, "command_parser", None) or parser
        where.error(f"unrecognized arguments: {' '.join(unknown)}")
    if arguments[:1] == ["serve"]:
        serve_parser = parser.subcommands["serve"]
        repeatable = {key_of(a) for a in serve_parser.flags() if isinstance(a, _Append)}
        try:
            apply_config_file(serve_parser, args, sources, repeatable)
        except ConfigFileError as exc:
            serve_parser.error(str(exc))
        if args.print_config:
            print(render(args, serve_parser.actions(), sources), end="")
            return 0
    command: Callable[[argparse.ArgumentParser, argparse.Namespace], int] = args.run
    try:
        return command(args.command_parser, args)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
