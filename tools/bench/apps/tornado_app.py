"""The Tornado hello-world of the benchmark (one process, asyncio loop).

Routes: ``/`` (``Hello, World!``), ``/64k``, ``/post`` (answers the body length) and
``/static/`` (StaticFileHandler over ``--www``). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import tornado.web

HELLO = b"Hello, World!"
BIG = b"x" * 65536


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write(HELLO)


class Post(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write(str(len(self.request.body)).encode())


class Big(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.write(BIG)


async def serve(port: int, www: str) -> None:
    app = tornado.web.Application(
        [
            (r"/", Hello),
            (r"/post", Post),
            (r"/64k", Big),
            (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": f"{www}/static"}),
        ],
        compiled_template_cache=True,
    )
    app.listen(port, address="127.0.0.1", backlog=4096, idle_connection_timeout=600)
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--www", default=".")
    args = parser.parse_args()
    logging.getLogger("tornado.access").disabled = True
    asyncio.run(serve(args.port, args.www))


if __name__ == "__main__":
    main()
