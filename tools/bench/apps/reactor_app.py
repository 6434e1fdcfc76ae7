"""The reactor server of the benchmark: one process, one loop, a plain hello-world handler.

``--variant selectors`` serves on SelectorLoop, ``asyncio``/``uvloop`` on ``reactor.new_loop(...)``
(the AsyncioLoop adapter), ``wsgi`` serves tools/bench/apps/wsgi_app.py through
``reactor.wsgi.WSGIHandler`` on SelectorLoop. Routes: ``/`` (``Hello, World!``), ``/64k``,
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
        "--variant", choices=("selectors", "asyncio", "uvloop", "wsgi"), default="selectors"
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--www", default=".")
    args = parser.parse_args()
    if args.variant == "wsgi":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from wsgi_app import make_app

        from reactor.wsgi import WSGIHandler

        handler: Any = WSGIHandler(make_app(args.www))
    else:
        handler = make_handler(args.www)
    loop = new_loop(args.variant if args.variant in ("asyncio", "uvloop") else "selectors")
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
