"""The floor of the benchmark: a selectors loop that answers constants and parses nothing.

Not a server: it counts the request heads in what one ``recv`` returns and answers each with
a prepared response (``Hello, World!``, or 64 KiB when the bytes ask for ``/64k``), closing
after a ``Connection: close``. It pays what any Python server on one thread must pay per
request (a poll, a ``recv``, a ``send`` and the loop around them) and nothing else, so its
latency and throughput are the ceiling a Python server can reach on this machine. It serves
the hello, latency, pipeline and 64k scenarios only (tools/bench/peers.py); no request body,
no partial head across two reads (wrk's requests arrive whole). It prints ``ready`` once
listening. Started by tools/bench/run.py; not a test.
"""

from __future__ import annotations

import argparse
import selectors
import socket

HELLO = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
BIG = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 65536\r\n\r\n"
    + b"x" * 65536
)


def serve(port: int) -> None:
    sel = selectors.DefaultSelector()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                answer = BIG if b" /64k " in data else HELLO
                out = answer * data.count(b"\r\n\r\n")
                try:
                    sent = sock.send(out)
                    if sent < len(out):  # rare: finish it blocking, as a floor may
                        sock.setblocking(True)
                        sock.sendall(out[sent:])
                        sock.setblocking(False)
                except OSError:
                    data = b""
            if not data or b"Connection: close" in data:
                sel.unregister(sock)
                sock.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--www", default=".")  # (the peers' common command line)
    serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
