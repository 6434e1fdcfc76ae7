"""The reactor server of the benchmark: one process, one loop, a plain hello-world handler.

``--variant selectors`` serves on SelectorLoop, ``asyncio``/``uvloop`` on ``reactor.new_loop(...)``
(the AsyncioLoop adapter), ``wsgi`` serves tools/bench/apps/wsgi_app.py through
``reactor.wsgi.WSGIHandler`` on SelectorLoop, ``wsgi-threads`` the same app through
``ThreadedWSGIHandler`` (4 threads), ``asgi`` tools/bench/apps/asgi_app.py through
``ASGIHandler`` on the uvloop backend. Routes: ``/`` (``Hello, World!``), ``/64k``,
``/post`` (answers the body length) and ``/static/...`` (StaticFiles over ``--www``).
It prints ``ready`` once listening. Started by tools/bench/run.py; not a test.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from reactor import Request, ResponseWriter, Server, ServerConfig
from reactor.loop import new_loop

HELLO = b"Hello, World!"
BIG = b"x" * 65536


def make_handler(www: str) -> Any:
    from reactor.static import StaticFiles

    static = StaticFiles(www, listing=False)

    def handler(w: ResponseWriter, r: Request) -> Any:
        path = r.path
        if path == "/":
            w.headers.set("Content-Type", "text/plain")
            w.write(HELLO)
        elif path == "/post":
            body = r.body.read()
            w.headers.set("Content-Type", "text/plain")
            w.write(str(len(body)).encode())
        elif path == "/64k":
            w.headers.set("Content-Type", "application/octet-stream")
            w.headers.set("Content-Length", "65536")
            w.write(BIG)
        elif path.startswith("/static/"):
            return static(w, r)
        else:
            w.write_header(404)
            w.write(b"not found")
        return None

    return handler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--variant",
        choices=("selectors", "asyncio", "uvloop", "wsgi", "wsgi-threads", "asgi"),
        default="selectors",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--www", default=".")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    backend = "selectors"
    if args.variant == "wsgi":
        from wsgi_app import make_app

        from reactor.wsgi import WSGIHandler

        handler: Any = WSGIHandler(make_app(args.www))
    elif args.variant == "wsgi-threads":
        from wsgi_app import make_app

        from reactor.wsgi_threaded import ThreadedWSGIHandler

        handler = ThreadedWSGIHandler(make_app(args.www), threads=4)
    elif args.variant == "asgi":
        os.environ.setdefault("BENCH_WWW", args.www)
        from asgi_app import app

        from reactor.asgi import ASGIHandler

        handler = ASGIHandler(app, lifespan="off")
        backend = "uvloop"
    else:
        handler = make_handler(args.www)
        if args.variant in ("asyncio", "uvloop"):
            backend = args.variant
    loop = new_loop(backend)
    # Idle connections must outlive the memory measurement (75 s by default).
    config = ServerConfig(idle_timeout=600.0, backlog=4096)
    server = Server(handler, loop=loop, config=config)
    server.listen("127.0.0.1", args.port)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    print("ready", flush=True)
    try:
        loop.run()
    finally:
        server.close()
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
