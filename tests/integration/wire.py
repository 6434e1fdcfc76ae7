"""Client-side helpers for tests on the wire: read responses from a raw socket with h11 as
the oracle, and bounded waits."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import h11


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    reason: str = ""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    interim: list[int] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return None


class ResponseReader:
    """Reads successive responses from one socket, parsing them with h11."""

    def __init__(self, sock: socket.socket, method: str = "GET") -> None:
        self.sock = sock
        self.conn = h11.Connection(h11.CLIENT)
        self.raw = bytearray()
        # h11 as a client must see the requests it answers; we send raw bytes ourselves, so
        # tell it about a request per response we read.
        self.method = method

    def read(self, method: str | None = None, timeout: float = 5.0) -> Response:
        conn = self.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        if conn.our_state is h11.IDLE:
            conn.send(
                h11.Request(method=method or self.method, target="/", headers=[("Host", "x")])
            )
            conn.send(h11.EndOfMessage())
        deadline = time.monotonic() + timeout
        status = 0
        reason = ""
        headers: list[tuple[str, str]] = []
        body = bytearray()
        interim: list[int] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no complete response in time")
                self.sock.settimeout(remaining)
                data = self.sock.recv(65536)
                self.raw += data
                conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                interim.append(event.status_code)
            elif isinstance(event, h11.Response):
                status = event.status_code
                reason = event.reason.decode()
                headers = [(n.decode(), v.decode("latin-1")) for n, v in event.headers]
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                trailers = [(n.decode(), v.decode("latin-1")) for n, v in event.headers]
                return Response(status, headers, bytes(body), reason, trailers, interim)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before a response")


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until EOF (bounded)."""
    sock.settimeout(timeout)
    parts = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        parts.append(data)
    return b"".join(parts)


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    while marker not in buf:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{marker!r} not received; got {buf!r}")
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"EOF before {marker!r}; got {buf!r}")
        buf += data
    return buf


def is_closed(sock: socket.socket, timeout: float = 2.0) -> bool:
    """Whether the peer closed (EOF or reset) within ``timeout``, discarding data."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
