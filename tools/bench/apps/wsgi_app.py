"""The WSGI hello-world of the benchmark, served by gunicorn (gthread) and reactor's WSGIHandler.

Routes: ``/`` (``Hello, World!``), ``/64k``, ``/post`` (answers the body length) and
``/static/<name>`` (a file under the www directory, sent with ``wsgi.file_wrapper``).
``app`` reads the www directory from ``BENCH_WWW``. Not a test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

HELLO = b"Hello, World!"
BIG = b"x" * 65536


def make_app(www: str) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    root = os.path.realpath(www)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/":
            start_response(
                "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
            )
            return [HELLO]
        if path == "/post":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            out = str(len(body)).encode()
            start_response(
                "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))]
            )
            return [out]
        if path == "/64k":
            start_response(
                "200 OK",
                [("Content-Type", "application/octet-stream"), ("Content-Length", "65536")],
            )
            return [BIG]
        if path.startswith("/static/") and "/.." not in path:
            full = os.path.join(root, path.lstrip("/"))
            try:
                f = open(full, "rb")  # noqa: SIM115 (closed by the file wrapper)
            except OSError:
                pass
            else:
                size = os.fstat(f.fileno()).st_size
                start_response(
                    "200 OK",
                    [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
                )
                wrapper = environ.get("wsgi.file_wrapper")
                if wrapper is not None:
                    return wrapper(f, 65536)  # type: ignore[no-any-return]
                return iter(lambda: f.read(65536), b"")
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    return app


app = make_app(os.environ.get("BENCH_WWW", "."))
