"""Host sockets: a tool adds its own UDP socket and a timer to the loop that serves HTTP.

A SelectorLoop is reactor's whole event loop, and it can be the host tool's too. Here the tool
registers a UDP socket with ``loop.add_reader`` (a line echo: each datagram comes back
upper-cased) and a timer that re-arms itself with ``loop.call_later``, beside a ``Server``
that answers every request with the tool's counters as JSON. One thread and no locks: every
callback (the UDP reader, the timer, the HTTP handler) runs on the loop, one at a time.
SIGINT/SIGTERM stop the loop (``loop.add_signal_handler``); the tool then removes what it
added and shuts the server down gracefully, leaving the loop with nothing registered.

Run:  python docs/examples/embed_host_sockets.py --port 8080 --udp-port 9999
Try:  curl http://127.0.0.1:8080/      echo hello | nc -u -w1 127.0.0.1 9999
Stops on Ctrl-C, or after --seconds. Tests: tests/examples/test_embedding.py.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket

from reactor import Request, ResponseWriter, SelectorLoop, Server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="HTTP, a UDP echo and a timer on one loop")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--udp-port", type=int, default=9999)
    parser.add_argument("--tick", type=float, default=1.0, help="timer period, seconds")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)

    loop = SelectorLoop()
    stats = {"requests": 0, "datagrams": 0, "ticks": 0}

    # The tool's own socket: a UDP line echo, read whenever the loop sees it readable.
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((args.host, args.udp_port))
    udp.setblocking(False)

    def on_datagram() -> None:
        try:
            data, peer = udp.recvfrom(65535)
        except BlockingIOError:
            return
        stats["datagrams"] += 1
        udp.sendto(data.upper(), peer)

    loop.add_reader(udp, on_datagram)

    # The tool's own timer, re-armed each time it fires.
    def tick() -> None:
        nonlocal timer
        stats["ticks"] += 1
        timer = loop.call_later(args.tick, tick)

    timer = loop.call_later(args.tick, tick)

    # reactor's server on the same loop; its handler reads the counters the others update.
    def handler(w: ResponseWriter, r: Request) -> None:
        stats["requests"] += 1
        w.headers.set("Content-Type", "application/json")
        w.write(json.dumps(stats).encode() + b"\n")

    server = Server(handler, loop=loop)
    host, port = server.listen(args.host, args.port)
    udp_host, udp_port = udp.getsockname()
    print(f"http://{host}:{port}/ udp {udp_host}:{udp_port}", flush=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, loop.stop)
    if args.seconds is not None:
        loop.call_later(args.seconds, loop.stop)
    loop.run()

    # Take back what the tool added, then let the server finish its requests.
    timer.cancel()
    loop.remove_fd(udp)
    udp.close()
    loop.run_until_complete(server.shutdown(grace=5.0))
    print(f"stopped: {json.dumps(stats)}; left on the loop: {loop.registered_fds()} fds")
    loop.close()


if __name__ == "__main__":
    main()
