"""The idle keep-alive client of the memory measurement (a program, run as its own process).

``python idle_client.py PORT N`` opens N connections to 127.0.0.1:PORT in batches, sends one
``GET /`` on each, reads each whole response (Content-Length framing), prints
``idle OPENED FAILED`` and then holds every connection open, idle, until its stdin closes.
It raises its own RLIMIT_NOFILE. Started by tools/bench/memory.py; not a test.
"""

from __future__ import annotations

import resource
import socket
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
BATCH = 200


def read_response(sock: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


def main() -> int:
    port, n = int(sys.argv[1]), int(sys.argv[2])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks: list[socket.socket] = []
    failed = 0
    while len(socks) + failed < n:
        batch = []
        for _ in range(min(BATCH, n - len(socks) - failed)):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
                s.sendall(REQUEST)
            except OSError:
                failed += 1
                continue
            batch.append(s)
        for s in batch:
            try:
                ok = read_response(s)
            except OSError:
                ok = False
            if ok:
                socks.append(s)
            else:
                failed += 1
                s.close()
    print(f"idle {len(socks)} {failed}", flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
