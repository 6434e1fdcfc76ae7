"""WSGIHandler: a PEP 3333 application served as a reactor handler.

Owns the translation between one reactor request and one WSGI call: the ``environ`` (CGI
variables, ``HTTP_*`` headers, ``wsgi.input`` over the buffered body, ``SCRIPT_NAME`` /
``PATH_INFO`` percent-decoded as latin-1), ``start_response`` (with ``exc_info``), the
``write`` callable, iterating the response with write backpressure (``await w.drain()``
between pieces), always calling the iterable's ``close()``, ``wsgi.file_wrapper`` and
``environ['reactor.hijack']``. It must not parse HTTP or touch the loop itself: it speaks the
handler API (``w``, ``r``) only.

The application runs on the loop (``--threads 0``; reactor/wsgi_threaded.py runs it on
worker threads instead, with the environ and the ``start_response`` checks defined here):
while it computes (and while its iterable produces the next piece) nothing else is served, as
in bjoern. Between two pieces of a response the loop runs, so a slow client never makes the
server hold a large body. Each request runs its application and its iterable in its own
``contextvars`` context, so per-request context (Flask's, Werkzeug's) never leaks into a
request interleaved with it. Use ``reactor serve --workers N`` for more
cores. Tests: tests/integration/test_wsgi.py.
"""

from __future__ import annotations

import contextvars
import importlib.metadata
import io
import logging
import os
import socket
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, Protocol
from urllib.parse import unquote_to_bytes

from .buffers import BufferPair
from .errors import BrokenConnectionError, ConnectionClosedError
from .http.parser import BODY_LENGTH
from .request import Request
from .response import ResponseWriter

__all__ = ["FileWrapper", "WSGIApp", "WSGIHandler", "check_response_head", "iterate_in"]

log = logging.getLogger("reactor.wsgi")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# RFC 9110 7.6.1: meaningful for one connection only; PEP 3333 forbids an application to send
# them. The server owns framing and persistence, so they are dropped (with a warning).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


def _package_version() -> str:
    try:
        return importlib.metadata.version("reactor")
    except importlib.metadata.PackageNotFoundError:
        return "0"


#: ``SERVER_SOFTWARE`` in every environ.
SERVER_SOFTWARE = "reactor/" + _package_version()

#: Bytes a FileWrapper reads per piece when the application does not say.
FILE_BLOCK_SIZE = 64 * 1024


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class FileWrapper:
    """``wsgi.file_wrapper``: iterate a file-like object in ``blksize`` pieces; ``close()``
    closes the file. The handler recognises it and sends the file with backpressure."""

    def __init__(self, filelike: _Readable, blksize: int = FILE_BLOCK_SIZE) -> None:
        self.filelike = filelike
        self.blksize = blksize if blksize > 0 else FILE_BLOCK_SIZE

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if callable(close):
            close()


def check_response_head(
    status: str, headers: list[tuple[str, str]]
) -> tuple[int, list[tuple[str, str]]]:
    """What ``start_response`` checks (PEP 3333 types, a status like ``200 OK``): returns the
    status code and the headers without the hop-by-hop ones (dropped with a warning)."""
    if type(status) is not str:
        raise TypeError(f"status must be a str, got {type(status).__name__}")
    code = status[:3]
    if len(status) < 4 or not code.isdigit() or status[3] != " " or int(code) < 100:
        raise ValueError(f"status must look like '200 OK', got {status!r}")
    if type(headers) is not list:
        raise TypeError(f"headers must be a list, got {type(headers).__name__}")
    kept: list[tuple[str, str]] = []
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise TypeError(f"each header must be a (name, value) tuple, got {item!r}")
        name, value = item
        if type(name) is not str or type(value) is not str:
            raise TypeError(f"header names and values must be str, got {item!r}")
        if name.lower() in _HOP_BY_HOP:
            log.warning("WSGI application sent hop-by-hop header %r; dropped", name)
            continue
        kept.append((name, value))
    return int(code), kept


class _Response:
    """The state ``start_response`` and ``write`` share with the handler for one request."""

    __slots__ = ("headers", "sent", "status", "status_line", "w")

    def __init__(self, w: ResponseWriter) -> None:
        self.w = w
        self.status_line: str | None = None
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.sent = False  # the head has been handed to the ResponseWriter

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], object]:
        if exc_info is not None:
            try:
                if self.sent:
                    # PEP 3333: too late to change the response; re-raise the error.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status_line is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        self.status, self.headers = check_response_head(status, headers)
        self.status_line = status
        return self.write

    def send_head(self) -> None:
        if self.sent:
            return
        if self.status_line is None:
            raise AssertionError("the WSGI application sent body bytes before start_response()")
        w = self.w
        for name, value in self.headers:
            w.headers.add(name, value)
        w.write_header(self.status)
        self.sent = True

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write`` callable (the imperative API of old frameworks)."""
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, got {type(data).__name__}")
        self.send_head()
        if data and not self.w.hijacked:
            self.w.write(data)
            self.w.flush()


class WSGIHandler:
    """``WSGIHandler(app)`` is a reactor handler ``(w, r)`` that serves a WSGI application.

    ``script_name`` is the mount point (``SCRIPT_NAME``; request paths outside it get 404).
    ``multiprocess`` is reported as ``wsgi.multiprocess`` (true under ``--workers``);
    ``url_scheme`` as ``wsgi.url_scheme``.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        script_name: str = "",
        multiprocess: bool = False,
        url_scheme: str = "http",
        errors: IO[str] | None = None,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a WSGI callable, got {app!r}")
        self.app = app
        self.script_name = script_name.rstrip("/")
        self.multiprocess = multiprocess
        self.url_scheme = url_scheme
        self.errors = errors
        self._constants: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url_scheme,
            "wsgi.input_terminated": True,
            "wsgi.multithread": False,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }

    def __repr__(self) -> str:
        return f"WSGIHandler({self.app!r})"

    # -- environ ---------------------------------------------------------------------------

    def environ_head(self, r: Request) -> dict[str, Any] | None:
        """The environ of one request without its body (``wsgi.input``) and hijack: the CGI
        variables and the constant ``wsgi.*`` keys (None: the path lies outside
        ``script_name``). It holds no reactor object, so an application that keeps the
        environ in its own reference cycles (Flask and Django do) pins none of ours."""
        path = unquote_to_bytes(r.path).decode("latin-1") if r.path[:1] == "/" else r.path
        script = self.script_name
        if script:
            if path != script and not path.startswith(script + "/"):
                return None
            path = path[len(script) :]
        env: dict[str, Any] = {
            "REQUEST_METHOD": r.method,
            "SCRIPT_NAME": script,
            "PATH_INFO": path,
            "QUERY_STRING": r.query,
            "SERVER_PROTOCOL": r.version,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "REQUEST_URI": r.target,
            "RAW_URI": r.target,
        }
        server_name, server_port = _server_address(r)
        env["SERVER_NAME"] = server_name
        env["SERVER_PORT"] = server_port
        addr = r.remote_addr
        if isinstance(addr, tuple) and len(addr) >= 2:
            env["REMOTE_ADDR"] = str(addr[0])
            env["REMOTE_PORT"] = str(addr[1])
        else:
            env["REMOTE_ADDR"] = ""
        for name, value in r.headers:
            key = name.upper()
            if "_" in key:
                # Header names with "_" would be indistinguishable from those with "-" once
                # mapped; dropping them stops a client spoofing a proxy's header (gunicorn,
                # nginx and Apache do the same).
                continue
            key = key.replace("-", "_")
            if key == "CONTENT_TYPE":
                env[key] = value
                continue
            if key == "CONTENT_LENGTH":
                continue  # normalised below, from the parsed length
            key = "HTTP_" + key
            if key in env:
                env[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
            else:
                env[key] = value
        if r.body_framing == BODY_LENGTH:
            # The parser checked the header (digits only, repeated values equal): the
            # application sees the number, never " 42" or "42, 42".
            env["CONTENT_LENGTH"] = str(r.content_length)
        if r.host and env.get("HTTP_HOST") != r.host:
            # An absolute-form target's authority overrides the Host header (RFC 9112
            # section 3.2.2), and so does the host a trusted proxy forwarded (reactor.proxy);
            # otherwise the Host header is the host.
            env["HTTP_HOST"] = r.host
        env.update(self._constants)
        if r.scheme:  # what a trusted proxy said the client used (reactor.proxy)
            env["wsgi.url_scheme"] = r.scheme
        env["wsgi.errors"] = self.errors if self.errors is not None else sys.stderr
        return env

    def environ(self, w: ResponseWriter, r: Request) -> dict[str, Any] | None:
        """The environ of one request served on the loop (its body read whole)."""
        env = self.environ_head(r)
        if env is None:
            return None
        body = r.body.read()
        if body and "CONTENT_LENGTH" not in env:
            env["CONTENT_LENGTH"] = str(len(body))  # a chunked body, now whole
        env["wsgi.input"] = io.BytesIO(body)
        env["reactor.hijack"] = _Hijacker(w)
        return env

    # -- the handler -----------------------------------------------------------------------

    async def __call__(self, w: ResponseWriter, r: Request) -> None:
        env = self.environ(w, r)
        if env is None:
            body = b"404 Not Found\n"
            w.headers.set("Content-Type", "text/plain; charset=utf-8")
            w.headers.set("Content-Length", str(len(body)))
            w.write_header(404)
            w.write(body)
            return
        response = _Response(w)
        ctx = contextvars.copy_context()
        result = ctx.run(self.app, env, response.start_response)
        try:
            if w.hijacked:
                return
            if isinstance(result, FileWrapper) and await self._send_file(w, response, result):
                return
            # A list (the usual response) holds no application code to run in its context.
            pieces = result if type(result) is list else iterate_in(ctx, result)
            # One piece ahead: a response of one piece goes out with a Content-Length; before
            # each further piece the loop runs until the client has taken the previous ones.
            held = b""
            for data in pieces:
                if w.hijacked:
                    return
                if type(data) is not bytes:
                    raise TypeError(
                        f"the WSGI application yielded {type(data).__name__}, not bytes"
                    )
                if not data:
                    continue
                response.send_head()
                if held:
                    w.write(held)
                    await w.drain()
                held = data
            if w.hijacked:
                return
            response.send_head()
            if held:
                w.write(held)
        except (BrokenConnectionError, ConnectionClosedError):
            log.debug("%s %s: client gone", r.method, r.path)
        finally:
            close = getattr(result, "close", None)
            if callable(close):
                try:
                    ctx.run(close)
                except Exception:
                    log.exception("close() of the WSGI response raised")

    @staticmethod
    async def _send_file(w: ResponseWriter, response: _Response, wrapper: FileWrapper) -> bool:
        """PEP 3333's "platform-specific file transmission": a wrapped regular file goes out
        with ``w.sendfile`` (os.sendfile on plain sockets) from its current position, no
        more than a Content-Length the application declared. False: not a regular file,
        iterate it instead."""
        fileno = getattr(wrapper.filelike, "fileno", None)
        if not callable(fileno) or response.sent:  # write() already framed the body
            return False
        try:
            fd = fileno()
            st = os.fstat(fd)
            position = os.lseek(fd, 0, os.SEEK_CUR)
        except (OSError, ValueError):
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        count = max(0, st.st_size - position)
        declared = next(
            (value for name, value in response.headers if name.lower() == "content-length"),
            None,
        )
        if declared is not None and declared.strip().isdigit():
            count = min(count, int(declared))
        response.send_head()
        await w.sendfile(fd, offset=position, count=count)
        return True


def iterate_in(ctx: contextvars.Context, result: Iterable[bytes]) -> Iterator[bytes]:
    """The pieces of a response iterable, each produced in the request's context ``ctx``
    (a generator's body is the application's code: Flask's stream_with_context relies on
    it)."""
    iterator = ctx.run(iter, result)
    while True:
        try:
            data = ctx.run(next, iterator)
        except StopIteration:
            return
        yield data


class _Hijacker:
    """``environ['reactor.hijack']()``: take the connection over, as ``w.hijack()``."""

    __slots__ = ("_w",)

    def __init__(self, w: ResponseWriter) -> None:
        self._w = w

    def __call__(self) -> tuple[socket.socket, BufferPair]:
        return self._w.hijack()


def _server_address(r: Request) -> tuple[str, str]:
    """SERVER_NAME and SERVER_PORT: the local address of the connection."""
    local = r.local_addr
    if local is not None:
        if isinstance(local, tuple):
            return str(local[0]), str(local[1])
        if isinstance(local, str) and local:
            host = r.headers.get("host", "") or "localhost"
            return host.rpartition(":")[0] or host, "0"
    return "localhost", "0"
