"""Step by step: a host with a main loop of its own drives reactor with ``run_once``.

Some hosts cannot give their thread to ``loop.run()``: a simulation that steps at a fixed
rate, a game loop, a GUI toolkit. Each turn of the host's loop does the host's work when it is
due, then gives reactor one pass: ``loop.run_once(timeout)`` waits for I/O at most ``timeout``
seconds and runs whatever is due (accepts, reads, handlers, timers). ``loop.next_deadline()``
says when reactor next needs a pass without any I/O (its earliest timer, such as a keep-alive
or header timeout; "now" when callbacks are queued; None when only I/O can wake it), so the
host waits until the sooner of its own deadline and reactor's, and never busy-polls. To stop,
the host asks the server to shut down and keeps turning until that is done.

Here the host is a simulation stepping ``--hz`` times a second; ``GET /`` reports its step
count, read on the same thread with no locking.

Run:  python docs/examples/embed_run_once.py --port 8080 --hz 20
Try:  curl http://127.0.0.1:8080/
Stops on Ctrl-C, or after --seconds. Tests: tests/examples/test_embedding.py.
"""

from __future__ import annotations

import argparse
import signal

from reactor import Request, ResponseWriter, SelectorLoop, Server, ServerConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a host loop driving reactor with run_once")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--hz", type=float, default=20.0, help="simulation steps per second")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)

    steps = 0
    passes = 0

    def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("Content-Type", "text/plain")
        w.write(f"step {steps}\n".encode())

    loop = SelectorLoop()
    server = Server(handler, loop=loop, config=ServerConfig(idle_timeout=5.0))
    host, port = server.listen(args.host, args.port)
    print(f"http://{host}:{port}/ stepping at {args.hz:g} Hz", flush=True)

    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    period = 1.0 / args.hz
    start = loop.time()
    end = start + args.seconds if args.seconds is not None else float("inf")
    next_step = start
    shutdown = None
    while shutdown is None or not shutdown.done():
        now = loop.time()
        if now >= next_step:  # the host's own work, when it is due
            steps += 1
            next_step += period
        if shutdown is None and (stopping or now >= end):
            shutdown = server.shutdown(grace=5.0)  # finishes during the next passes
        # Wait for I/O until the sooner of the host's next step and reactor's next timer.
        deadline = next_step
        reactor_deadline = loop.next_deadline()
        if reactor_deadline is not None:
            deadline = min(deadline, reactor_deadline)
        loop.run_once(max(0.0, deadline - loop.time()))
        passes += 1

    print(f"stopped after {steps} steps and {passes} passes of run_once", flush=True)
    loop.close()


if __name__ == "__main__":
    main()
