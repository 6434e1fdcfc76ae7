"""The handlers tests/adversarial and ``make soak`` serve (``tools/soak/served.py serve
apps:plain``, ``--wsgi apps:wsgi``): the same routes as a plain function, an ``async def``
handler and a WSGI application, so an attack runs against each way of answering.

Routes: ``/`` a short text; ``/echo`` the length of the request body; ``/big/N`` N bytes
(the plain handler writes them in 64 KiB writes, which the server must buffer as a plain
handler cannot wait; the async handler awaits ``w.drain()`` before each 32 KiB write, so it
returns with its last write unsent; the WSGI app yields 64 KiB pieces). ``hijack`` is the
async handler plus ``/upgrade``: a 101 and ``w.hijack()`` (the WebSocket example's
pattern), the hijacked socket closed at once. The plain handler's ``/stall/MS``
blocks the loop for MS milliseconds (at most 10 s): what a stall looks like to the
adversarial suite's probe, and what the loop-stall warning is for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from reactor import Request, ResponseWriter

PIECE = b"x" * 65536


def _size(path: str) -> int:
    """N of ``/big/N`` (0 for anything else); bounded so a typo cannot exhaust memory."""
    tail = path[len("/big/") :] if path.startswith("/big/") else ""
    return min(int(tail), 1 << 30) if tail.isascii() and tail.isdigit() else 0


def plain(w: ResponseWriter, r: Request) -> None:
    if r.path.startswith("/stall/"):
        time.sleep(min(int(r.path[len("/stall/") :]), 10_000) / 1000)
        w.write(b"stalled\n")
        return
    if r.path == "/echo":
        w.write(b"%d\n" % len(r.body.read()))
        return
    size = _size(r.path)
    if not size:
        w.write(b"hello\n")
        return
    w.headers.set("Content-Length", str(size))
    while size > 0:
        w.write(PIECE[:size])
        size -= len(PIECE)


async def async_(w: ResponseWriter, r: Request) -> None:
    if r.path == "/echo":
        w.write(b"%d\n" % len(r.body.read()))
        return
    size = _size(r.path)
    if not size:
        w.write(b"hello\n")
        return
    w.headers.set("Content-Length", str(size))
    piece = PIECE[: len(PIECE) // 2]
    while size > 0:
        await w.drain()  # before each write: the last one returns with its bytes unsent
        w.write(piece[:size])
        size -= len(piece)


async def hijack(w: ResponseWriter, r: Request) -> None:
    if r.path != "/upgrade":
        await async_(w, r)
        return
    w.headers.set("Upgrade", "websocket")
    w.headers.set("Connection", "Upgrade")
    w.write_header(101)
    sock, _pair = w.hijack()
    sock.close()


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    path = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"%d\n" % len(body)
        return
    size = _size(path)
    if not size:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"hello\n"
        return
    start_response("200 OK", [("Content-Length", str(size))])
    while size > 0:
        yield PIECE[:size]
        size -= len(PIECE)
