"""The client of make bench-instr and opcodes.py: the scenarios and the connections.

Owns what each scenario sends (hello, post with a 1 KiB body, 64k, hello pipelined 16 deep)
and what every response must be, parsing responses (Content-Length or chunked), and driving
exactly N requests over a set of keep-alive connections. It starts no server and counts
nothing (instructions.py and opcodes.py do). Tests: tests/test_bench_tools.py.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass

from peers import HELLO

CONNECTIONS = 16
#: Seconds to wait for a server under valgrind to listen, and for one response.
START_TIMEOUT = 300.0
IO_TIMEOUT = 120.0


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[bytes, bytes]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class Scenario:
    """What the client sends (``request``, ``depth`` of them at a time on one connection)
    and the body every response must carry (status 200)."""

    name: str
    title: str
    request: bytes
    body: bytes
    n1: int
    n2: int
    depth: int = 1

    def check(self, response: Response) -> None:
        if response.status != 200:
            raise ValueError(f"{self.name}: status {response.status}, expected 200")
        if response.body != self.body:
            raise ValueError(
                f"{self.name}: unexpected body of {len(response.body)} bytes: "
                f"{response.body[:40]!r}"
            )


GET = b"GET %s HTTP/1.1\r\nHost: bench\r\n\r\n"
POST_BODY = b"x" * 1024
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("hello", "keep-alive `GET /`", GET % b"/", HELLO, 1000, 3000),
        Scenario(
            "post",
            "`POST /post`, 1 KiB body",
            b"POST /post HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 1024\r\n\r\n" + POST_BODY,
            b"1024",
            1000,
            3000,
        ),
        Scenario("64k", "`GET /64k`, 64 KiB response", GET % b"/64k", b"x" * 65536, 500, 1500),
        Scenario(
            "pipelined", "`GET /` pipelined, depth 16", GET % b"/", HELLO, 1024, 3072, depth=16
        ),
    )
}


def parse_response(buf: bytes | bytearray, start: int = 0) -> tuple[Response, int] | None:
    """The whole response at ``buf[start:]`` and the offset just past it, or None while
    ``buf`` holds less than one. Content-Length or chunked framing (trailers skipped)."""
    end = buf.find(b"\r\n\r\n", start)
    if end < 0:
        return None
    lines = bytes(buf[start:end]).split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not a response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    pos = end + 4
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = bytearray()
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                break
            if len(buf) < pos + size + 2:
                return None
            body += buf[pos : pos + size]
            pos += size + 2
        while True:  # trailers, up to the empty line
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            empty = eol == pos
            pos = eol + 2
            if empty:
                return Response(int(parts[1]), headers, bytes(body)), pos
    length = int(headers.get(b"content-length", b"0"))
    if len(buf) < pos + length:
        return None
    return Response(int(parts[1]), headers, bytes(buf[pos : pos + length])), pos + length


class Conn:
    """One keep-alive client connection: sends a scenario's requests and reads back and
    checks as many responses."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(IO_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.buf = bytearray()

    def send(self, scenario: Scenario, count: int) -> None:
        self.sock.sendall(scenario.request * count)

    def receive(self, scenario: Scenario, count: int) -> None:
        pos = 0
        while count:
            found = parse_response(self.buf, pos)
            if found is None:
                chunk = self.sock.recv(1 << 17)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                self.buf += chunk
                continue
            response, pos = found
            scenario.check(response)
            count -= 1
        del self.buf[:pos]
        if self.buf:
            raise ValueError(f"{scenario.name}: {len(self.buf)} bytes beyond the responses")

    def close(self) -> None:
        self.sock.close()


def connect_when_listening(port: int, proc: subprocess.Popen[bytes]) -> socket.socket:
    """The first connection, once the server listens. Refused attempts never reach the
    server's process, so this costs it nothing."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        except ConnectionRefusedError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not listen within {START_TIMEOUT:g} s")


def open_conns(port: int, k: int = CONNECTIONS) -> list[Conn]:
    return [
        Conn(socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)) for _ in range(k)
    ]


def drive(conns: list[Conn], scenario: Scenario, n: int) -> None:
    """Exactly ``n`` requests of ``scenario``: each connection sends up to ``depth`` at a
    time and reads their responses back before sending more; round-robin over ``conns``."""
    sent = done = 0
    busy: list[tuple[Conn, int]] = []
    for c in conns:
        k = min(scenario.depth, n - sent)
        if k:
            c.send(scenario, k)
            sent += k
            busy.append((c, k))
    while busy:
        still = []
        for c, k in busy:
            c.receive(scenario, k)
            done += k
            k = min(scenario.depth, n - sent)
            if k:
                c.send(scenario, k)
                sent += k
                still.append((c, k))
        busy = still
    assert done == n == sent
