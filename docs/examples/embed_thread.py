"""Background thread: the loop runs in a thread of its own; the main thread controls it.

For hosts whose main thread is busy with something else (a CLI, a GUI, a blocking job queue).
The server is set up before the thread starts (nothing runs yet, so no race), then
``loop.run()`` goes to a daemon thread. From then on the loop's objects belong to that
thread: the main thread touches them only through ``loop.call_soon_threadsafe``, the one
loop method other threads may call. ``on_loop(fn)`` wraps it to run ``fn`` on the loop and
wait for its result (here: ``server.connection_count``); stopping is the same: the graceful
``server.shutdown()`` is started on the loop, its future stops the loop when done, and the
main thread joins the thread and closes the loop.

Run:  python docs/examples/embed_thread.py --port 8080
Try:  curl http://127.0.0.1:8080/
Stops on Ctrl-C, or after --seconds. Tests: tests/examples/test_embedding.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from reactor import Future, Request, ResponseWriter, SelectorLoop, Server

T = TypeVar("T")


def handler(w: ResponseWriter, r: Request) -> None:
    w.headers.set("Content-Type", "text/plain")
    w.write(f"hello from {threading.current_thread().name}\n".encode())


def on_loop(loop: SelectorLoop, fn: Callable[[], T], timeout: float = 5.0) -> T:
    """Run ``fn()`` on the loop's thread and return its result (or raise its exception)."""
    result: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            result.set_result(fn())
        except BaseException as exc:
            result.set_exception(exc)

    loop.call_soon_threadsafe(run)
    return result.result(timeout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the loop in a background thread")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between reports")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)

    loop = SelectorLoop()
    server = Server(handler, loop=loop)
    host, port = server.listen(args.host, args.port)
    thread = threading.Thread(target=loop.run, name="reactor-loop", daemon=True)
    thread.start()
    print(f"http://{host}:{port}/ served from thread {thread.name}", flush=True)

    # The main thread's own work: report the open connections now and then.
    end = time.monotonic() + args.seconds if args.seconds is not None else float("inf")
    try:
        while time.monotonic() < end:
            time.sleep(min(args.interval, max(0.0, end - time.monotonic())))
            count = on_loop(loop, lambda: server.connection_count)
            print(f"connections: {count}", flush=True)
    except KeyboardInterrupt:
        pass

    # Shut down from the main thread: start it on the loop, stop the loop when it is done.
    def begin_shutdown() -> None:
        done: Future[None] = server.shutdown(grace=5.0)
        done.add_done_callback(lambda _: loop.stop())

    loop.call_soon_threadsafe(begin_shutdown)
    thread.join(10)
    loop.close()
    print("stopped: thread joined, loop closed", flush=True)


if __name__ == "__main__":
    main()
