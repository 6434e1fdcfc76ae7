"""Several servers on one loop: a public app and an admin server, each with its own config.

A ``Server`` is only listeners, a connection table and a handler on a loop; any number of them
share one loop (and one thread). Here the app server answers ``GET /`` on one port, with the
usual timeouts; the admin server, on another port and with ``max_connections=4``, reports
the app's live connections and request count (``GET /stats``) and stops everything on
``POST /stop``: both servers shut down gracefully, then the loop stops. The same goes for
more servers, and for one server listening on several addresses (call ``listen`` again).

Run:  python docs/examples/embed_many_servers.py --port 8080 --admin-port 8081
Try:  curl http://127.0.0.1:8080/ ; curl http://127.0.0.1:8081/stats ;
      curl -X POST http://127.0.0.1:8081/stop
Stops on POST /stop, Ctrl-C, or after --seconds. Tests: tests/examples/test_embedding.py.
"""

from __future__ import annotations

import argparse
import json
import signal

from reactor import Request, ResponseWriter, SelectorLoop, Server, ServerConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="an app server and an admin server, one loop")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--admin-port", type=int, default=8081)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)

    loop = SelectorLoop()
    served = 0

    def app(w: ResponseWriter, r: Request) -> None:
        nonlocal served
        served += 1
        w.headers.set("Content-Type", "text/plain")
        w.write(b"hello from the app server\n")

    def admin(w: ResponseWriter, r: Request) -> None:
        if r.method == "GET" and r.path == "/stats":
            stats = {"connections": app_server.connection_count, "requests": served}
            w.headers.set("Content-Type", "application/json")
            w.write(json.dumps(stats).encode() + b"\n")
        elif r.method == "POST" and r.path == "/stop":
            w.write(b"stopping\n")
            loop.call_soon(stop_all)  # after this response is on its way
        else:
            w.write_header(404)

    app_server = Server(app, loop=loop)
    admin_server = Server(admin, loop=loop, config=ServerConfig(max_connections=4))
    host, port = app_server.listen(args.host, args.port)
    admin_host, admin_port = admin_server.listen(args.host, args.admin_port)
    print(f"app http://{host}:{port}/ admin http://{admin_host}:{admin_port}/", flush=True)

    stopping = False

    def stop_all() -> None:
        """Shut both servers down gracefully; stop the loop when both are done."""
        nonlocal stopping
        if stopping:
            return
        stopping = True
        pending = [app_server.shutdown(grace=5.0), admin_server.shutdown(grace=5.0)]

        def one_done(_: object) -> None:
            if all(f.done() for f in pending):
                loop.stop()

        for fut in pending:
            fut.add_done_callback(one_done)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_all)
    if args.seconds is not None:
        loop.call_later(args.seconds, stop_all)
    loop.run()
    print(f"stopped: the app served {served} requests", flush=True)
    loop.close()


if __name__ == "__main__":
    main()
