"""The aiohttp hello-world of the benchmark (aiohttp.web on uvloop, access log off).

Routes: ``/`` (``Hello, World!``), ``/64k``, ``/post`` (answers the body length) and
``/static/`` (``add_static`` over ``--www``, which uses sendfile). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop
from aiohttp import web

HELLO = b"Hello, World!"
BIG = b"x" * 65536


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=HELLO, content_type="text/plain")


async def post(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(body=str(len(body)).encode(), content_type="text/plain")


async def big(request: web.Request) -> web.Response:
    return web.Response(body=BIG, content_type="application/octet-stream")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--www", default=".")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_post("/post", post)
    app.router.add_get("/64k", big)
    app.router.add_static("/static/", f"{args.www}/static")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        backlog=4096,
        keepalive_timeout=600,
        print=lambda *a: print("ready", flush=True),
    )


if __name__ == "__main__":
    main()
