"""What ``reactor serve APP`` serves APP with: the handler for the interface APP speaks
(native, WSGI on the loop or on threads, ASGI) and, for an ASGI app, the lifespan around the
server on an asyncio loop.

Owns ``app_handler`` (--interface, else ``apploader.detect_interface``; a mismatch is a usage
error), ``loop_backend`` (--loop auto) and ``serve_asgi`` (lifespan startup, ``run.serve``,
lifespan shutdown). It prints only the lifespan's failure and never parses flags itself: the
parsed arguments come from reactor/cli.py, which calls it. Kept out of cli.py so that the
command's flag handling and the application plumbing change independently.
Tests: tests/integration/test_wsgi_threads.py, test_asgi.py (through ``reactor serve``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .apploader import AppLoadError, detect_interface
from .cliconfig import config_from_args
from .run import serve
from .server import Handler

__all__ = ["app_handler", "loop_backend", "serve_asgi"]


def app_handler(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    app: Any,
    spec: str,
    workers: int | None,
) -> tuple[Handler, str]:
    """The handler serving APP as the interface it speaks (--interface, else detected), and
    how the start-up line names it. A mismatch is a usage error, not a 500 per request."""
    wanted = "wsgi" if args.wsgi is not None else args.interface
    if args.wsgi is not None and args.interface not in ("auto", "wsgi"):
        parser.error(f"--wsgi serves a WSGI app; it cannot be --interface {args.interface}")
    try:
        detected, why = detect_interface(app)
    except AppLoadError as exc:
        if wanted == "auto":
            parser.error(str(exc))
        detected, why = wanted, "as told"
    # A 2-argument callable whose names say nothing may be either native or WSGI: what the
    # user says wins. Anything else that disagrees with the signature is an error.
    ambiguous = {wanted, detected} == {"native", "wsgi"} and detected == "native"
    if wanted != "auto" and wanted != detected and not ambiguous:
        parser.error(f"{spec} looks like a {detected} app {why}, not --interface {wanted}")
    interface = detected if wanted == "auto" else wanted
    scheme = "https" if args.certfile else "http"
    if interface == "asgi":
        if args.threads is not None:
            parser.error("--threads is for WSGI apps; an ASGI app runs on the loop")
        from .asgi import ASGIHandler

        asgi = ASGIHandler(
            app,
            url_scheme=scheme,
            lifespan=args.lifespan,
            max_message=config_from_args(args).limits.max_body_size,
        )
        return asgi, f"{spec} (ASGI)"
    threads = 4 if args.threads is None else args.threads
    if interface == "native":
        if args.threads is not None:
            parser.error("--threads is for WSGI apps; a handler(w, r) runs on the loop")
        handler: Handler = app
        return handler, f"{spec} (handler(w, r))"
    multiprocess = workers is not None and workers > 1
    if threads == 0:
        from .wsgi import WSGIHandler

        script_name = getattr(args, "root_path", None) or ""
        return WSGIHandler(
            app, script_name=script_name, multiprocess=multiprocess, url_scheme=scheme
        ), (f"{spec} (WSGI, on the loop thread)")
    from .wsgi_threaded import ThreadedWSGIHandler

    config = config_from_args(args)
    threaded = ThreadedWSGIHandler(
        app,
        threads=threads,
        send_window=config.write_high_water,
        read_ahead=config.limits.max_read_ahead,
        script_name=getattr(args, "root_path", None) or "",
        multiprocess=multiprocess,
        url_scheme=scheme,
    )
    return threaded, f"{spec} (WSGI, {threads} threads)"


def loop_backend(parser: argparse.ArgumentParser, name: str, asgi: bool) -> str:
    """The backend --loop NAME means: auto is selectors, or for an ASGI app uvloop if it is
    installed, else asyncio. An ASGI app on selectors is a usage error."""
    if name == "auto":
        if not asgi:
            return "selectors"
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "asyncio"
        return "uvloop"
    if asgi and name == "selectors":
        parser.error("an ASGI app needs an asyncio loop: --loop asyncio or --loop uvloop")
    return name


def serve_asgi(lifespan: Any, backend: str, handler: Handler, **serve_kwargs: Any) -> Any:
    """``run.serve`` between the app's lifespan startup and shutdown, on an asyncio loop
    that outlives serve()'s own close (the shutdown runs after it). A failed startup exits
    with status 3."""
    import asyncio

    from .asgi import LifespanFailure
    from .loop.asyncio_loop import AsyncioLoop

    aloop: asyncio.AbstractEventLoop
    if backend == "uvloop":
        import uvloop

        aloop = uvloop.new_event_loop()
    else:
        aloop = asyncio.new_event_loop()
    try:
        try:
            aloop.run_until_complete(lifespan.startup())
        except LifespanFailure as exc:
            print(f"reactor: ASGI lifespan {exc}", file=sys.stderr, flush=True)
            raise SystemExit(3) from None
        try:
            return serve(handler, loop=AsyncioLoop(aloop, close_loop=False), **serve_kwargs)
        finally:
            try:
                aloop.run_until_complete(lifespan.shutdown())
            except LifespanFailure as exc:
                print(f"reactor: ASGI lifespan {exc}", file=sys.stderr, flush=True)
    finally:
        aloop.close()
