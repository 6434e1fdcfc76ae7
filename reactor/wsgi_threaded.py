"""ThreadedWSGIHandler: a PEP 3333 application on a pool of worker threads (waitress's model).

The loop thread owns every socket and does all parsing and writing; the application runs on a
worker thread. Owns the pool (``WorkerPool``), the per-request hand-off between the two
threads (``Exchange``), the streaming ``wsgi.input`` (``InputStream``) and the worker's side of
``start_response``/``write``/the iterable. It must not touch a socket or the connection from a
worker thread: everything that reaches the connection runs on the loop, in the request's
handler task (an ``async def`` on the loop, like any async handler).

The hand-off, worker -> loop: messages in a deque under one lock, and at most one
``loop.call_soon_threadsafe`` (the loop's wake-up) pending per request; the handler task
takes all queued messages at once. A response of one piece is one message (head and body,
sent with a Content-Length); a longer one is sent piece by piece as the application produces
it. Backpressure both ways:

- output: a worker blocks in ``write``/between pieces while more than ``send_window`` bytes it
  handed over are not yet below the connection's low-water mark (the handler task awaits
  ``w.drain()`` for each piece);
- input: the handler task reads the body (``await r.body.read(n)``, the server's streaming
  body) only once the application first reads ``wsgi.input``, and stops while
  ``read_ahead`` bytes wait for the worker; the connection itself stops reading the socket
  past ``max_read_ahead``. A 100 MB upload read in 64 KiB pieces costs well under 64 MB.

A client that goes away is seen by the application as ``ClientDisconnected`` (an OSError) on
``wsgi.input``; its later output is dropped. ``environ`` holds no Request, ResponseWriter or
connection (only this module's InputStream and hijack callable, which hold the Exchange), so
an application's reference cycles pin nothing of the server. Tests:
tests/integration/test_wsgi_threads.py (and tests/integration/test_wsgi.py, run on both paths).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import io
import logging
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, Any

from .buffers import BufferPair
from .errors import BrokenConnectionError, ConnectionClosedError
from .loop.base import Loop
from .loop.futures import Future
from .request import Request
from .response import ResponseWriter
from .wsgi import ExcInfo, WSGIApp, WSGIHandler, check_response_head, iterate_in

__all__ = ["ClientDisconnected", "Exchange", "InputStream", "ThreadedWSGIHandler", "WorkerPool"]

log = logging.getLogger("reactor.wsgi")

#: Body bytes the handler task reads per piece for ``wsgi.input``.
INPUT_PIECE = 64 * 1024

# Messages from the worker to the loop: (kind, head, data). ``head`` is (status, headers)
# for the first message that carries the head, else None.
_DATA = 1  # a piece of the body (not the last): sent now, acknowledged once drained
_END = 2  # the response is complete (``data``: its last piece, or b"")
_FAIL = 3  # the application raised (``data``: the exception)
_HIJACK = 4  # hijack the connection (``data``: a concurrent.futures.Future for the result)
_INPUT = 5  # the application reads wsgi.input: start reading the body

# The body reader's states (Exchange.pump).
_PUMP_IDLE = 0  # not asked for yet
_PUMP_RUNNING = 1
_PUMP_PAUSED = 2  # read_ahead bytes wait for the worker
_PUMP_DONE = 3


class ClientDisconnected(ConnectionResetError):
    """The client went away while the application was reading ``wsgi.input``."""


class WorkerPool:
    """``threads`` daemon threads running jobs in order of submission (started on the first
    job). Daemon threads: an application stuck past the shutdown grace period must not keep
    the process alive."""

    def __init__(self, threads: int, name: str = "reactor-wsgi") -> None:
        if threads < 1:
            raise ValueError(f"a worker pool needs at least 1 thread, got {threads}")
        self.size = threads
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[..., object], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        if not self._threads:
            for i in range(self.size):
                t = threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
                t.start()
                self._threads.append(t)
            log.info("WSGI: %d worker threads started", self.size)
        self._jobs.put((fn, args))

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, args = job
            try:
                fn(*args)
            except BaseException:
                log.exception("a WSGI worker job raised")
            del job, fn, args

    def close(self, timeout: float | None = None) -> int:
        """Stop the threads once they finish what they run; wait up to ``timeout`` seconds.
        Returns how many are still running (an application that did not return)."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)
        alive = 0
        deadline = None if timeout is None else _now() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - _now()))
            alive += t.is_alive()
        if alive:
            log.warning("WSGI: %d worker thread(s) still running an application", alive)
        return alive


def _now() -> float:
    return time.monotonic()


class Exchange:
    """One request's hand-off between its worker thread and the loop. Methods say which
    thread calls them; every field shared by both is guarded by ``lock``. A thread that must
    wait (a full send window, no input yet) makes the condition over that lock on first need:
    most requests never wait, and a Condition costs more to make than the rest of the
    exchange."""

    __slots__ = (
        "body",
        "buffered",
        "chunks",
        "cond",
        "eof",
        "gone",
        "input_error",
        "lock",
        "loop",
        "loop_thread",
        "messages",
        "pump",
        "pump_task",
        "read_ahead",
        "send_window",
        "unacked",
        "waiter",
        "wake_pending",
    )

    def __init__(self, loop: Loop, send_window: int, read_ahead: int) -> None:
        self.loop = loop
        self.loop_thread = threading.get_ident()  # made by the handler, on the loop
        self.lock = threading.Lock()
        self.cond: threading.Condition | None = None  # made by the first wait
        self.messages: deque[tuple[int, Any, Any]] = deque()
        self.wake_pending = False
        self.waiter: Future[None] | None = None  # the handler task waits for messages
        self.send_window = send_window
        self.unacked = 0  # output bytes handed over and not yet drained
        self.gone = False  # output is dropped: the client left, or the connection is taken
        self.read_ahead = read_ahead
        self.chunks: deque[bytes] = deque()  # body bytes read for the worker
        self.buffered = 0
        self.eof = False
        self.input_error: BaseException | None = None
        self.pump = _PUMP_IDLE
        self.pump_task: Any = None
        self.body: Any = None  # the request's streaming body while the pump may read it

    def _condition(self) -> threading.Condition:
        """The condition over ``lock`` (call with it held)."""
        cond = self.cond
        if cond is None:
            cond = self.cond = threading.Condition(self.lock)
        return cond

    def _notify(self) -> None:
        """Wake the waiting worker, if it ever waited (call with ``lock`` held)."""
        if self.cond is not None:
            self.cond.notify_all()

    # -- worker thread -------------------------------------------------------------------

    def post(self, kind: int, head: Any, data: Any) -> bool:
        """Queue a message for the loop (and wake it, unless a wake-up is pending). False:
        the loop is gone (the server stopped), and nothing will carry the message out."""
        with self.lock:
            self.messages.append((kind, head, data))
            if self.wake_pending:
                return True
            self.wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except Exception as exc:  # the loop is closed: the server is gone
            log.debug("WSGI worker: the loop is gone (%s); output dropped", exc)
            with self.lock:
                self.gone = True
                self.messages.clear()
            return False
        return True

    def send(self, head: Any, data: bytes) -> None:
        """A body piece (not the last): waits while the output window is full."""
        with self.lock:
            while self.unacked > self.send_window and not self.gone:
                self._condition().wait()
            if self.gone:
                return
            self.unacked += len(data)
        self.post(_DATA, head, data)

    def read(self, n: int) -> bytes:
        """Up to ``n`` body bytes (``n`` > 0), waiting for at least one; b"" at the end."""
        with self.lock:
            start = self.pump == _PUMP_IDLE
            if start:
                self.pump = _PUMP_RUNNING
        if start:
            self.post(_INPUT, None, None)
        with self.lock:
            while not self.chunks:
                if self.input_error is not None:
                    raise ClientDisconnected(str(self.input_error))
                if self.eof:
                    return b""
                self._condition().wait()
            chunk = self.chunks.popleft()
            if len(chunk) > n:
                self.chunks.appendleft(chunk[n:])
                chunk = chunk[:n]
            self.buffered -= len(chunk)
            resume = self.pump == _PUMP_PAUSED and self.buffered < self.read_ahead
            if resume:
                self.pump = _PUMP_RUNNING
        if resume:
            try:
                self.loop.call_soon_threadsafe(self.start_pump)
            except Exception:
                with self.lock:
                    self.input_error = BrokenConnectionError("the server is gone")
        return chunk

    def hijack(self) -> tuple[socket.socket, BufferPair]:
        """``environ['reactor.hijack']()`` on the worker: the loop hijacks the connection
        (after sending the output queued before) and hands over the socket, in blocking
        mode, and the connection's buffer pair."""
        if threading.get_ident() == self.loop_thread:  # it would wait for itself
            raise RuntimeError("reactor.hijack() is for the WSGI worker thread, not the loop's")
        box: concurrent.futures.Future[tuple[socket.socket, BufferPair]] = (
            concurrent.futures.Future()
        )
        if self.loop.is_closed() or not self.post(_HIJACK, None, box):
            raise ConnectionClosedError("the server is gone: nothing to hijack")
        return box.result()

    # -- loop thread ----------------------------------------------------------------------

    def _wake(self) -> None:
        with self.lock:
            self.wake_pending = False
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take_messages(self) -> list[tuple[int, Any, Any]] | Future[None]:
        """The queued messages, or a future done when there are some."""
        with self.lock:
            if self.messages:
                taken = list(self.messages)
                self.messages.clear()
                return taken
        fut: Future[None] = self.loop.create_future()
        self.waiter = fut
        return fut

    def acknowledge(self, n: int) -> None:
        with self.lock:
            self.unacked -= n
            self._notify()

    def drop_output(self) -> None:
        """The client left or the connection was taken: the worker's output is dropped and
        its waits end."""
        with self.lock:
            self.gone = True
            self._notify()

    def start_pump(self) -> None:
        if self.body is None or self.pump_task is not None:
            return
        self.pump_task = self.loop.spawn(self._read_body())

    async def _read_body(self) -> None:
        body = self.body
        try:
            while body is not None:
                data = await body.read(INPUT_PIECE)
                with self.lock:
                    if data:
                        self.chunks.append(data)
                        self.buffered += len(data)
                    else:
                        self.eof = True
                        self.pump = _PUMP_DONE
                    self._notify()
                    if not data:
                        return
                    if self.buffered >= self.read_ahead:
                        self.pump = _PUMP_PAUSED
                        return  # the worker restarts us (_start_pump) once it has read
        except (BrokenConnectionError, ConnectionClosedError, OSError) as exc:
            self.fail_input(exc)
        finally:
            self.pump_task = None

    def fail_input(self, error: BaseException) -> None:
        with self.lock:
            if not self.eof and self.input_error is None:
                self.input_error = error
            self.pump = _PUMP_DONE
            self._notify()

    def end(self) -> None:
        """The request is over (loop): stop reading its body, drop later output."""
        self.body = None
        task = self.pump_task
        self.pump_task = None
        if task is not None and not task.done():
            task.cancel()
        self.fail_input(ConnectionClosedError("the request is over"))
        self.drop_output()


class InputStream:
    """``wsgi.input``: the body as it arrives, read on the worker thread. ``read(-1)`` reads
    to the end; ``readline`` and iteration split on ``\\n``. Raises ClientDisconnected (an
    OSError) when the client went away before the end."""

    __slots__ = ("_exchange", "_held")

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._held = b""  # read past a line end by readline

    def read(self, size: int | None = -1) -> bytes:
        held = self._held
        if size is None or size < 0:
            out = io.BytesIO()
            out.write(held)
            self._held = b""
            while data := self._exchange.read(1 << 20):
                out.write(data)
            # getvalue() shares the buffer (no copy): a body read whole costs its size once.
            return out.getvalue()
        if held:
            self._held = held[size:]
            return held[:size]
        if size == 0:
            return b""
        return self._exchange.read(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        line = self._held
        self._held = b""
        while True:
            end = line.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                self._held = line[end + 1 :] + self._held
                return line[: end + 1]
            if 0 <= limit <= len(line):
                self._held = line[limit:] + self._held
                return line[:limit]
            data = self._exchange.read(INPUT_PIECE)
            if not data:
                return line
            line += data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> InputStream:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class _WorkerResponse:
    """``start_response`` and ``write`` on the worker thread."""

    __slots__ = ("exchange", "head", "sent")

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.head: tuple[int, list[tuple[str, str]]] | None = None
        self.sent = False  # the head went to the loop

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], object]:
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.head is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        self.head = check_response_head(status, headers)
        return self.write

    def take_head(self) -> tuple[int, list[tuple[str, str]]] | None:
        if self.sent:
            return None
        if self.head is None:
            raise AssertionError("the WSGI application sent body bytes before start_response()")
        self.sent = True
        return self.head

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write`` callable: sent now (blocks while the window is full)."""
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, got {type(data).__name__}")
        head = self.take_head()
        if data or head is not None:
            self.exchange.send(head, data)


def _run_app(
    app: WSGIApp, environ: dict[str, Any], exchange: Exchange, ctx: contextvars.Context
) -> None:
    """A worker job: the application's call, its iterable and its ``close()``."""
    response = _WorkerResponse(exchange)
    result: Iterable[bytes] | None = None
    try:
        result = ctx.run(app, environ, response.start_response)
        del environ
        held: bytes | None = None  # one piece ahead: a one-piece body gets a Content-Length
        # A list (the usual response) holds no application code to run in its context.
        pieces = result if type(result) is list else iterate_in(ctx, result)
        for data in pieces:
            if type(data) is not bytes:
                raise TypeError(f"the WSGI application yielded {type(data).__name__}, not bytes")
            if not data:
                continue
            if held is not None:
                exchange.send(response.take_head(), held)
                if exchange.gone:  # the client left: the rest would be dropped anyway
                    log.debug("WSGI: client gone; the response iterable is closed early")
                    held = None
                    break
            held = data
        exchange.post(_END, response.take_head(), held or b"")
    except BaseException as exc:
        exchange.post(_FAIL, None, exc)
    finally:
        close = getattr(result, "close", None)
        if callable(close):
            try:
                ctx.run(close)
            except Exception:
                log.exception("close() of the WSGI response raised")


class ThreadedWSGIHandler(WSGIHandler):
    """``ThreadedWSGIHandler(app, threads=4)`` serves a WSGI application on ``threads``
    worker threads (see the module docstring). ``send_window``: output bytes a worker may
    have handed over before it waits (default: the server's write high-water mark);
    ``read_ahead``: body bytes read ahead of the application's ``wsgi.input`` reads. Call
    ``close()`` after the server stopped."""

    # A streaming handler: called at the head, the body read as the application reads it.
    reactor_streaming = True

    def __init__(
        self,
        app: WSGIApp,
        *,
        threads: int = 4,
        send_window: int = 64 * 1024,
        read_ahead: int = 256 * 1024,
        script_name: str = "",
        multiprocess: bool = False,
        url_scheme: str = "http",
        errors: IO[str] | None = None,
    ) -> None:
        super().__init__(
            app,
            script_name=script_name,
            multiprocess=multiprocess,
            url_scheme=url_scheme,
            errors=errors,
        )
        if send_window < 1 or read_ahead < 1:
            raise ValueError(
                f"send_window and read_ahead must be positive, got {send_window}, {read_ahead}"
            )
        self._constants["wsgi.multithread"] = True
        self.pool = WorkerPool(threads)
        self.send_window = send_window
        self.read_ahead = read_ahead

    def __repr__(self) -> str:
        return f"ThreadedWSGIHandler({self.app!r}, threads={self.pool.size})"

    def close(self, timeout: float | None = None) -> int:
        """Stop the worker threads, waiting up to ``timeout`` seconds for running ones."""
        return self.pool.close(timeout)

    async def __call__(self, w: ResponseWriter, r: Request) -> None:
        env = self.environ_head(r)
        if env is None:
            body = b"404 Not Found\n"
            w.headers.set("Content-Type", "text/plain; charset=utf-8")
            w.headers.set("Content-Length", str(len(body)))
            w.write_header(404)
            w.write(body)
            return
        loop = r.loop
        assert loop is not None  # the request runs
        exchange = Exchange(loop, self.send_window, self.read_ahead)
        exchange.body = r.body
        env["wsgi.input"] = InputStream(exchange)
        env["reactor.hijack"] = exchange.hijack
        # Not r.on_disconnect(exchange.drop_output): a client's EOF may be a half-close,
        # after which the response is still owed (RFC 9112 section 9.6). A client that is
        # really gone fails the next write or drain, which drops the output (below).
        self.pool.submit(_run_app, self.app, env, exchange, contextvars.copy_context())
        del env
        try:
            await _serve_output(exchange, w)
        finally:
            exchange.end()


async def _serve_output(exchange: Exchange, w: ResponseWriter) -> None:
    """The handler task: carry out the worker's messages until the response is complete."""
    while True:
        taken = exchange.take_messages()
        if isinstance(taken, list):
            messages = taken
        else:
            await taken
            continue
        for kind, head, data in messages:
            if kind in (_END, _DATA):
                if exchange.gone:
                    if kind == _END:
                        return
                    exchange.acknowledge(len(data))
                    continue
                try:
                    if head is not None:
                        status, headers = head
                        for name, value in headers:
                            w.headers.add(name, value)
                        w.write_header(status)
                    if data:
                        w.write(data)
                    if kind == _END:
                        return
                    drained = w.drain()
                    if not drained.done():
                        await drained
                except (BrokenConnectionError, ConnectionClosedError):
                    log.debug("WSGI: client gone; the rest of the response is dropped")
                    exchange.drop_output()
                    if kind == _END:
                        return
                if kind == _DATA:
                    exchange.acknowledge(len(data))
            elif kind == _FAIL:
                exchange.drop_output()
                raise data
            elif kind == _HIJACK:
                box: concurrent.futures.Future[Any] = data
                exchange.end()  # the pump stops; whatever it read stays in wsgi.input
                try:
                    sock, pair = w.hijack()
                    sock.setblocking(True)
                except BaseException as exc:
                    box.set_exception(exc)
                else:
                    box.set_result((sock, pair))
            elif kind == _INPUT:
                exchange.start_pump()
