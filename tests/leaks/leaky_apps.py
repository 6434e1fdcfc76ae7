"""Deliberately leaky handlers for tests/leaks/test_leakcheck.py: ``reactor leakcheck`` must
find each leak (exit status 1) and name its culprit in the back-reference chain.

- ``hoarding``: keeps every request in the module-level list ``KEPT_REQUESTS``.
- ``cyclic``: a closure that refers to itself (and to the request): a reference cycle per
  request that only the cyclic GC frees.
- ``reminder``: leaves a timer armed for an hour whose arguments hold the response.
- ``byte_hoarding``: keeps 4 KiB of bytes per request in ``KEPT_BYTES``: no object count
  grows (bytes are not tracked by the GC), only tracemalloc's retained bytes show it.
- ``clean``: leaks nothing (the control).
- ``login_flow``: ``POST /login`` sets a cookie that ``/private`` needs (403 without it, or
  without the right Host and X-Token).
- ``raising``: every request raises (the traceback must be shown once).
- ``own_cycle``: an object of its own that refers to itself, made per request and captured
  nothing of reactor's: the application's cycle (``cycles``, exit 0 unless ``--strict``).
"""

from __future__ import annotations

from typing import Any

from reactor import Request, ResponseWriter

KEPT_REQUESTS: list[Request] = []
KEPT_BYTES: list[bytes] = []


def hoarding(w: ResponseWriter, r: Request) -> None:
    KEPT_REQUESTS.append(r)
    w.write(b"kept")


def cyclic(w: ResponseWriter, r: Request) -> None:
    def respond_later() -> Any:
        # Refers to itself through its own closure cell: function -> closure -> cell ->
        # function, and the same closure holds the request.
        return respond_later, r

    w.write(b"cycle")


def remind(w: ResponseWriter) -> None:
    """Never runs: the timer is due in an hour."""


def reminder(w: ResponseWriter, r: Request) -> None:
    conn = w._channel
    assert conn is not None
    conn._loop.call_later(3600, remind, w)
    w.write(b"later")


def byte_hoarding(w: ResponseWriter, r: Request) -> None:
    KEPT_BYTES.append(b"%d" % len(KEPT_BYTES) + bytes(4096))
    w.write(b"kept bytes")


def clean(w: ResponseWriter, r: Request) -> None:
    w.write(r.body.read() or b"clean")


def wsgi_hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI app for the ``--wsgi`` path."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def login_flow(w: ResponseWriter, r: Request) -> None:
    if r.headers.get("host") != "app.example" or r.headers.get("x-token") != "t0k3n":
        w.write_header(403)
        return
    if r.method == "POST" and r.path == "/login" and r.body.read() == b"user=ann":
        w.headers.set("Set-Cookie", "session=ann-1; Path=/; HttpOnly")
        w.write(b"welcome")
    elif r.path == "/private" and "session=ann-1" in r.headers.get("cookie", ""):
        w.write(b"private")
    else:
        w.write_header(403)


def raising(w: ResponseWriter, r: Request) -> None:
    raise ValueError("the view failed")


class Node:
    """Refers to itself: freed only by the cyclic GC."""

    def __init__(self) -> None:
        self.me = self


def own_cycle(w: ResponseWriter, r: Request) -> None:
    Node()
    w.write(b"cycle of my own")


def wsgi_environ_cycle(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI app whose per-request object refers to itself and holds the environ (as
    Django's request and its AuthenticationMiddleware lambda do): the application's cycle,
    with what reactor put in the environ riding along."""
    request: dict[str, Any] = {"environ": environ}
    request["self"] = request
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
