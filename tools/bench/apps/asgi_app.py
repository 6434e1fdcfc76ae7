"""The raw ASGI hello-world of the benchmark, served by uvicorn (httptools + uvloop).

Routes: ``/`` (``Hello, World!``), ``/64k``, ``/post`` (answers the body length) and
``/static/<name>`` (a file under ``BENCH_WWW`` sent in 64 KiB pieces). Not a test.
"""

from __future__ import annotations

import os
from typing import Any

HELLO = b"Hello, World!"
BIG = b"x" * 65536
ROOT = os.path.realpath(os.environ.get("BENCH_WWW", "."))

TEXT = [(b"content-type", b"text/plain")]
HELLO_HEADERS = [*TEXT, (b"content-length", str(len(HELLO)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS})
        await send({"type": "http.response.body", "body": HELLO})
        return
    if path == "/post":
        size = 0
        more = True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        out = str(size).encode()
        headers = [*TEXT, (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})
        return
    if path == "/64k":
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"65536")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BIG})
        return
    if path.startswith("/static/") and "/.." not in path:
        full = os.path.join(ROOT, path.lstrip("/"))
        try:
            f = open(full, "rb")  # noqa: SIM115
        except OSError:
            pass
        else:
            with f:
                size = os.fstat(f.fileno()).st_size
                headers = [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(size).encode()),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                while True:
                    chunk = f.read(65536)
                    more = len(chunk) == 65536
                    await send({"type": "http.response.body", "body": chunk, "more_body": more})
                    if not more:
                        break
            return
    await send({"type": "http.response.start", "status": 404, "headers": TEXT})
    await send({"type": "http.response.body", "body": b"not found"})
