"""Thread handoff: hijack a connection and serve it with blocking code in a thread.

Shows the simplest continuation of a hijack: no Stream and no async code. A request with
``Upgrade: lines`` gets ``101 Switching Protocols``; the handler hijacks, switches the socket
to blocking mode (with an idle timeout) and starts a thread that serves a line protocol over
the connection's own ``pair``: each line comes back upper-cased, ``QUIT`` ends the session.
Reading through ``pair.reader`` matters: lines the client sent in the same write as the
upgrade request are already held there, and a raw ``sock.recv`` would skip them. Meanwhile
the loop is free and goes on serving other requests (``GET /`` answers at once) however long
the thread blocks. The thread owns the socket from the hijack on; the loop never touches it.

Run:  python docs/examples/thread_handoff.py --port 8080
Try:  (printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: lines\\r\\nConnection: Upgrade\\r\\n\\r\\n'
       cat) | nc 127.0.0.1 8080       (then type lines; QUIT ends the session)
Tests: tests/examples/test_examples.py.
"""

from __future__ import annotations

import argparse
import socket
import threading

from reactor import BufferPair, Request, ResponseWriter, SelectorLoop, Server

IDLE_TIMEOUT = 60.0  # seconds a session may wait for a line
LINE_LIMIT = 64 * 1024


def handler(w: ResponseWriter, r: Request) -> None:
    if r.headers.get("Upgrade", "").lower() != "lines":
        w.headers.set("Content-Type", "text/plain")
        w.write(b"hello from the loop\n")  # ordinary requests: the loop is never blocked
        return
    w.headers.set("Upgrade", "lines")
    w.headers.set("Connection", "Upgrade")
    w.write_header(101)
    sock, pair = w.hijack()  # the 101 head goes out first
    sock.settimeout(IDLE_TIMEOUT)  # blocking from now on, but not forever
    threading.Thread(target=serve_lines, args=(sock, pair), daemon=True).start()


def serve_lines(sock: socket.socket, pair: BufferPair) -> None:
    """Runs in its own thread: blocking reads and writes through the connection's buffers."""
    reader, writer = pair
    with sock:
        try:
            while line := reader.readline(LINE_LIMIT):  # held bytes first, then the socket
                if line.strip() == b"QUIT":
                    writer.write(b"BYE\n")
                    writer.flush()
                    return
                writer.write(line.upper())
                writer.flush()  # blocking mode: sends it all (sendall)
        except OSError:
            pass  # idle timeout, or the client reset the connection


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="line protocol served from a thread")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    loop = SelectorLoop()
    server = Server(handler, loop=loop)
    host, port = server.listen(args.host, args.port)
    print(f"thread handoff on http://{host}:{port}/", flush=True)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        loop.close()


if __name__ == "__main__":
    main()
