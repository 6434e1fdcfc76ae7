"""The harness of the adversarial suite: a server under attack in a subprocess, its numbers,
and a well-behaved client that measures how long it waits while an attack runs.

``served(...)`` starts ``tools/soak/served.py serve --port 0 ...`` (reactor's own command
line, plus a stats channel on its stdin/stdout) on 127.0.0.1, reads the port it prints, and
kills it when the block ends. ``Served.stats()`` is what a user of the server would watch:
RSS and open fds (from /proc/PID), the number of live Python objects after a full collection,
and the connection table. ``Prober`` is the well-behaved client: a thread that sends a GET
every ``interval`` seconds (on a new connection, or on one kept-alive connection when the
attack fills the accept path) and records the slowest answer; it also samples the server's
RSS. Every loop here is bounded in count and in time, and nothing is sent anywhere but
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import reactor

ROOT = Path(__file__).resolve().parent.parent.parent
SERVED = ROOT / "tools" / "soak" / "served.py"
PACKAGE_PARENT = str(Path(reactor.__file__).resolve().parent.parent)
PORT_IN_BANNER = re.compile(rb"reactor: serving .+? on https?://127\.0\.0\.1:(\d+)/ ")
HOST = "127.0.0.1"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _read_line(fd: int, timeout: float) -> bytes:
    """One line from ``fd`` within ``timeout`` seconds (bytes after it are not expected: the
    caller asks one question at a time)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no line within {timeout}s; got {buf!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            data = os.read(fd, 65536)
            if not data:
                raise EOFError(f"the server's stdout closed; got {buf!r}")
            buf += data
    return buf


@dataclass
class Stats:
    rss_kib: int
    fds: int
    objects: int
    connections: int
    handshakes: int


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    stderr_path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stats(self) -> Stats:
        """RSS, fds, live objects and connections now (one full collection in the server)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(b"stats\n")
            self.proc.stdin.flush()
            answer = json.loads(_read_line(self.proc.stdout.fileno(), timeout=10))
        return Stats(
            self.rss_kib(),
            self.fds(),
            answer["objects"],
            answer["connections"],
            answer["handshakes"],
        )

    def settled(self, baseline: Stats, *, objects: int, timeout: float = 5.0) -> Stats:
        """Wait (bounded) until the fds and the connection table are back to ``baseline`` and
        at most ``objects`` objects more are alive; return the last stats either way."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.stats()
            back = (
                now.fds <= baseline.fds
                and now.connections <= baseline.connections
                and now.handshakes == 0
                and now.objects <= baseline.objects + objects
            )
            if back or time.monotonic() > deadline:
                return now
            time.sleep(0.1)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextmanager
def served(
    *args: str,
    cwd: Path,
    nofile: int | None = None,
    sndbuf: int | None = None,
    timeout: float = 15.0,
) -> Iterator[Served]:
    """Run ``served.py [--nofile N] [--sndbuf B] serve --port 0 --log-level warning *args``
    in ``cwd``;
    yield once it prints its port; SIGTERM it (then SIGKILL) when the block ends."""
    stderr_path = cwd / f"stderr-{time.monotonic_ns()}.txt"
    argv = [sys.executable, str(SERVED)]
    if nofile is not None:
        argv += ["--nofile", str(nofile)]
    if sndbuf is not None:
        argv += ["--sndbuf", str(sndbuf)]
    argv += ["serve", "--host", HOST, "--port", "0", "--log-level", "warning", *args]
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_env(),
        )
    try:
        assert proc.stdout is not None
        try:
            line = _read_line(proc.stdout.fileno(), timeout=timeout)
        except (TimeoutError, EOFError) as exc:
            raise AssertionError(f"{exc}; stderr: {stderr_path.read_text()}") from None
        match = PORT_IN_BANNER.match(line)
        assert match is not None, line
        yield Served(proc, int(match.group(1)), stderr_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


# -- clients -------------------------------------------------------------------------------


#: Every client socket a test opened, closed after the test whatever became of it (a test
#: that fails half-way would otherwise leave sockets for the collector, whose
#: ResourceWarnings then fail whichever test runs next).
OPENED: list[socket.socket] = []


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    OPENED.append(sock)
    return sock


def close_opened() -> None:
    while OPENED:
        OPENED.pop().close()


def reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One response on ``sock`` (see ``Responses``: bytes after it are dropped)."""
    return Responses(sock).read(timeout)


class Responses:
    """Successive responses on one socket (Content-Length or close-delimited; no chunked: the
    routes read this way send a length), bytes read past one kept for the next."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read(self, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        """The next response within ``timeout``: (status, lower-cased headers, body)."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self.buf += _recv(self.sock, deadline)
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(rest) < length:
                rest += _recv(self.sock, deadline)
            body, self.buf = rest[:length], rest[length:]
        elif status >= 200 and status not in (204, 304):
            while data := _recv(self.sock, deadline, eof_ok=True):
                rest += data
            body, self.buf = rest, b""
        else:
            body, self.buf = b"", rest
        return status, headers, body


def _recv(sock: socket.socket, deadline: float, eof_ok: bool = False) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("no complete response in time")
    sock.settimeout(remaining)
    data = sock.recv(65536)
    if not data and not eof_ok:
        raise ConnectionError("EOF in the middle of a response")
    return data


def get(
    port: int, path: str = "/", timeout: float = 5.0, tls: ssl.SSLContext | None = None
) -> tuple[int, bytes]:
    """One GET on a new connection (over TLS with ``tls``); (status, body)."""
    with connect(port, timeout) as plain:
        sock = tls.wrap_socket(plain, server_hostname=HOST) if tls is not None else plain
        with sock:
            request = f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            sock.sendall(request.encode())
            status, _, body = read_response(sock, timeout)
            return status, body


def closed_within(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the peer closed (EOF or RST), discarding what it sends; None if it did
    not within ``timeout``."""
    start = time.monotonic()
    deadline = start + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(65536):
                return time.monotonic() - start
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - start
    except TimeoutError:
        return None
    return None


class Prober:
    """The well-behaved client: a GET of ``path`` every ``interval`` seconds from a thread,
    each on a new connection (``keep_alive=False``) or all on one connection opened at the
    start (``keep_alive=True``: for attacks that fill the accept queue or the fd table on
    purpose). Records every latency (a failure counts as ``inf``) and the peak RSS of the
    server sampled at each probe."""

    def __init__(
        self,
        server: Served,
        path: str = "/",
        *,
        interval: float = 0.02,
        keep_alive: bool = False,
        timeout: float = 10.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.server = server
        self.tls = tls
        self.path = path
        self.interval = interval
        self.keep_alive = keep_alive
        self.timeout = timeout
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.peak_rss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self._sock: socket.socket | None = None

    def __enter__(self) -> Prober:
        if self.keep_alive:
            self._sock = self._connect()
            self._probe()  # the connection is established and served before the attack
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)
        if self._sock is not None:
            self._sock.close()

    def _connect(self) -> socket.socket:
        sock = connect(self.server.port, self.timeout)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=HOST)
        return sock

    def _probe(self) -> None:
        request = f"GET {self.path} HTTP/1.1\r\nHost: probe\r\n".encode()
        start = time.monotonic()
        try:
            if self._sock is not None:
                self._sock.sendall(request + b"\r\n")
                status, _, _ = read_response(self._sock, self.timeout)
            else:
                with self._connect() as sock:
                    sock.sendall(request + b"Connection: close\r\n\r\n")
                    status, _, _ = read_response(sock, self.timeout)
            if status != 200:
                raise AssertionError(f"status {status}")
            self.latencies.append(time.monotonic() - start)
        except (OSError, AssertionError, ValueError, IndexError) as exc:
            self.latencies.append(float("inf"))
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._probe()
            try:
                self.peak_rss_kib = max(self.peak_rss_kib, self.server.rss_kib())
            except OSError:
                pass
            self._stop.wait(self.interval)

    @property
    def worst(self) -> float:
        return max(self.latencies, default=float("inf"))

    def check(self, bound: float, minimum: int = 3) -> None:
        """Every probe was answered within ``bound`` seconds, and at least ``minimum`` ran."""
        assert self.worst <= bound or not self.latencies, (
            f"a well-behaved client waited {self.worst:.2f}s (bound {bound}s); "
            f"{len(self.latencies)} probes, errors: {self.errors[:5]}"
        )
        assert len(self.latencies) >= minimum, (len(self.latencies), self.errors)


def baseline(
    server: Served, path: str = "/", warmup: int = 20, tls: ssl.SSLContext | None = None
) -> Stats:
    """The server's numbers after ``warmup`` requests (first-use caches filled)."""
    for _ in range(warmup):
        status, _ = get(server.port, path, tls=tls)
        assert status == 200, status
    deadline = time.monotonic() + 5
    while (stats := server.stats()).connections and time.monotonic() < deadline:
        time.sleep(0.05)  # the warm-up's last connection is closing
    assert stats.connections == 0, stats
    return stats


def assert_recovered(server: Served, before: Stats, allowance: int, timeout: float = 5.0) -> Stats:
    """After an attack: fds and the connection table back to ``before``, at most
    ``allowance`` more live objects, and the server still answers."""
    after = server.settled(before, objects=allowance, timeout=timeout)
    assert server.alive(), server.stderr()
    assert after.connections == before.connections, (before, after)
    assert after.handshakes == 0, (before, after)
    assert after.fds == before.fds, (before, after)
    assert after.objects - before.objects <= allowance, (before, after)
    return after


def rounds(count: int, min_seconds: float = 0.5, max_count: int | None = None) -> Iterator[int]:
    """``count`` rounds of an attack, more if they took under ``min_seconds`` (so the probes
    run while it lasts), never more than ``max_count`` (default ``20 * count``)."""
    limit = 20 * count if max_count is None else max_count
    start = time.monotonic()
    i = 0
    while i < limit and (i < count or time.monotonic() - start < min_seconds):
        yield i
        i += 1
