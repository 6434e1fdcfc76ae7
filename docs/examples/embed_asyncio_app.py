"""Mount on asyncio: an asyncio application that already runs also serves HTTP with reactor.

The application owns its event loop (``asyncio.run``, or uvloop with ``--uvloop``) and has its
own tasks (a heartbeat here). From inside it, ``AsyncioLoop(asyncio.get_running_loop())``
wraps the running loop in reactor's loop interface without taking it over: the ``Server`` is
started (``listen``) and stopped (``await server.shutdown()``) from coroutines, and its
``async def`` handler runs as an asyncio task, so it may await anything asyncio offers
(``asyncio.sleep`` here; an asyncio database or HTTP client in real life). Closing the
AsyncioLoop leaves the application's loop open and running.

Run:  python docs/examples/embed_asyncio_app.py --port 8080 [--uvloop]
Try:  curl 'http://127.0.0.1:8080/?ms=200'
Stops on Ctrl-C, or after --seconds. Tests: tests/examples/test_embedding.py.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from urllib.parse import parse_qs

from reactor import AsyncioLoop, Request, ResponseWriter, Server


async def handler(w: ResponseWriter, r: Request) -> None:
    """Sleep ``?ms=`` milliseconds with asyncio.sleep, then say so."""
    ms = int(parse_qs(r.query).get("ms", ["0"])[0])
    await asyncio.sleep(ms / 1000)
    loop_type = type(asyncio.get_running_loop())
    w.headers.set("Content-Type", "text/plain")
    w.write(f"slept {ms} ms on {loop_type.__module__}.{loop_type.__name__}\n".encode())


async def app(host: str, port: int, seconds: float | None) -> None:
    aloop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        aloop.add_signal_handler(sig, stop.set)
    if seconds is not None:
        aloop.call_later(seconds, stop.set)

    beats = 0

    async def heartbeat() -> None:  # the application's own work, going on all along
        nonlocal beats
        while True:
            await asyncio.sleep(0.05)
            beats += 1

    beat_task = asyncio.create_task(heartbeat())

    # Mount reactor on the loop that is running this coroutine.
    loop = AsyncioLoop(aloop)
    server = Server(handler, loop=loop)
    bound_host, bound_port = server.listen(host, port)
    print(f"http://{bound_host}:{bound_port}/ on {type(aloop).__module__}", flush=True)

    await stop.wait()
    await server.shutdown(grace=5.0)  # in-flight requests finish first
    loop.close()  # forgets reactor's registrations; the asyncio loop goes on
    beat_task.cancel()
    print(f"stopped: heartbeat ran {beats} times; asyncio loop still running", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="reactor mounted on a running asyncio app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--uvloop", action="store_true", help="run the app on uvloop")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)
    coro = app(args.host, args.port, args.seconds)
    if args.uvloop:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    main()
