"""``make soak``: mixed load against a ``reactor serve`` process for a long time, and whether
its memory, objects and fds stay flat.

    python tools/soak/run.py [--seconds 600] [--interval 10] [--clients 2] [--app ARGS]

Starts ``tools/soak/served.py serve apps:plain`` (reactor's own command line plus a stats
channel, see served.py) on 127.0.0.1:0, then ``--clients`` load processes, each running a mix
of what real and hostile clients do, chosen at random by weight (MIX): keep-alive GETs,
POSTs with 1-64 KiB bodies on keep-alive, 16 pipelined GETs, GETs with ``Connection:
close``, heads trickled in three pieces (slow clients), 256 KiB responses read whole, and
1 MiB responses reset after 16 KiB. Every answer is checked (status, length, echoed size).

One line per interval: requests per second, totals, errors, and the server's RSS and open
fds (from /proc/PID), live objects (``len(gc.get_objects())`` after a full collection, in
the server, through served.py) and its connection table. Then the load stops, the server
settles, and a verdict:

- Warm-up is the first 20% of the run (at least one interval): caches, the allocator's
  arenas and the kernel's socket buffers grow there and are not counted.
- Flat means: over the samples after warm-up, the mean of the last third exceeds the mean
  of the first third by at most max(2 MiB, 5%) of RSS and max(1000, 2%) of objects; and
  after the load stops, fds and the connection table are back to the values before it.
  The least-squares slope (per minute) is printed too, for the record.

The server's WARNING and ERROR log lines are counted by message and printed, not judged.
Exit status 0 when flat and no request failed unexpectedly, 1 otherwise. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HOST = "127.0.0.1"
PORT_IN_BANNER = re.compile(rb"reactor: serving .+? on http://127\.0\.0\.1:(\d+)/ ")

# -- the load ---------------------------------------------------------------------------------


class Failure(Exception):
    """An answer that is wrong (not a reset we caused)."""


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Reader:
    """Responses with a Content-Length, in order, from one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _more(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise Failure("EOF in the middle of a response")
        self.buf += data

    def read(self) -> tuple[int, bytes]:
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._more()
        head = self.buf[:end].decode("latin-1")
        status = int(head.split(" ", 2)[1])
        match = re.search(r"(?im)^content-length:\s*(\d+)", head)
        if match is None:
            raise Failure(f"no Content-Length: {head!r}")
        length = int(match.group(1))
        start = end + 4
        while len(self.buf) < start + length:
            self._more()
        body = self.buf[start : start + length]
        self.buf = self.buf[start + length :]
        return status, body


GET = b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"


def _expect(status: int, body: bytes, want: bytes | int) -> None:
    if status != 200:
        raise Failure(f"status {status}")
    if isinstance(want, int) and len(body) != want:
        raise Failure(f"{len(body)} bytes, expected {want}")
    if isinstance(want, bytes) and body != want:
        raise Failure(f"body {body[:40]!r}, expected {want!r}")


def keep_alive_gets(port: int, rng: random.Random) -> int:
    with _connect(port) as sock:
        reader = Reader(sock)
        for _ in range(20):
            sock.sendall(GET)
            _expect(*reader.read(), b"hello\n")
    return 20


def posts(port: int, rng: random.Random) -> int:
    with _connect(port) as sock:
        reader = Reader(sock)
        for _ in range(5):
            size = rng.randint(1024, 65536)
            head = f"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: {size}\r\n\r\n"
            sock.sendall(head.encode() + b"p" * size)
            _expect(*reader.read(), b"%d\n" % size)
    return 5


def pipelined(port: int, rng: random.Random) -> int:
    with _connect(port) as sock:
        reader = Reader(sock)
        sock.sendall(GET * 16)
        for _ in range(16):
            _expect(*reader.read(), b"hello\n")
    return 16


def connection_close(port: int, rng: random.Random) -> int:
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        _expect(*Reader(sock).read(), b"hello\n")
        if sock.recv(1) != b"":
            raise Failure("no EOF after Connection: close")
    return 1


def slow_client(port: int, rng: random.Random) -> int:
    with _connect(port) as sock:
        for piece in (b"GET / HT", b"TP/1.1\r\nHost: so", b"ak\r\n\r\n"):
            sock.sendall(piece)
            time.sleep(0.05)
        _expect(*Reader(sock).read(), b"hello\n")
    return 1


def large_response(port: int, rng: random.Random) -> int:
    with _connect(port) as sock:
        sock.sendall(b"GET /big/262144 HTTP/1.1\r\nHost: soak\r\n\r\n")
        _expect(*Reader(sock).read(), 262144)
    return 1


def reset_mid_response(port: int, rng: random.Random) -> int:
    sock = _connect(port)
    try:
        sock.sendall(b"GET /big/1048576 HTTP/1.1\r\nHost: soak\r\n\r\n")
        got = 0
        while got < 16384:
            data = sock.recv(16384)
            if not data:
                raise Failure("EOF before 16 KiB of the response")
            got += len(data)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()
    return 1


#: (scenario, weight): mostly ordinary keep-alive traffic, some of everything else.
MIX: list[tuple[Callable[[int, random.Random], int], int]] = [
    (keep_alive_gets, 30),
    (posts, 15),
    (pipelined, 15),
    (connection_close, 15),
    (slow_client, 5),
    (large_response, 10),
    (reset_mid_response, 10),
]


def load(port: int, seconds: float, seed: int, slot: int, counts: Any, results: Any) -> None:
    """One load process: scenarios at random until ``seconds`` pass; ``counts[slot]`` is its
    running total of requests; the per-scenario tallies go to ``results`` at the end."""
    rng = random.Random(seed)
    scenarios = [s for s, _ in MIX]
    weights = [w for _, w in MIX]
    ok: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        scenario = rng.choices(scenarios, weights)[0]
        try:
            counts[slot] += scenario(port, rng)
            ok[scenario.__name__] += 1
        except (OSError, Failure, ValueError, IndexError) as exc:
            errors[f"{scenario.__name__}: {type(exc).__name__}: {exc}"[:160]] += 1
    results.put((dict(ok), dict(errors)))


# -- the server and its numbers -------------------------------------------------------------


@dataclass
class Sample:
    seconds: float
    requests: int
    rss_kib: int
    fds: int
    objects: int
    connections: int


class Server:
    def __init__(self, app: list[str], cwd: str) -> None:
        self.log_path = os.path.join(cwd, "server.log")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        served = os.path.join(HERE, "served.py")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, served, "serve", "--host", HOST, "--port", "0"),
                *("--log-level", "warning", *app),
            ],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.log_path, "wb"),  # noqa: SIM115 (the child holds it)
            env=env,
        )
        line = self._line(15)
        match = PORT_IN_BANNER.match(line)
        if match is None:
            raise SystemExit(f"soak: unexpected banner {line!r}")
        self.port = int(match.group(1))

    def _line(self, timeout: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        while not buf.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise SystemExit(f"soak: the server said nothing within {timeout}s")
            data = os.read(fd, 65536)
            if not data:
                raise SystemExit("soak: the server exited")
            buf += data
        return buf

    def stats(self) -> dict[str, int]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stats\n")
        self.proc.stdin.flush()
        answer: dict[str, int] = json.loads(self._line(30))
        pid = self.proc.pid
        with open(f"/proc/{pid}/status") as f:
            answer["rss_kib"] = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        answer["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        return answer

    def log_summary(self) -> list[str]:
        """The server's WARNING/ERROR lines, counted by message (timestamps dropped)."""
        counts: Counter[str] = Counter()
        with open(self.log_path, errors="replace") as f:
            for line in f:
                match = re.match(r"\S+ \S+ (WARNING|ERROR|CRITICAL) (.*)", line.rstrip())
                if match:
                    counts[f"{match.group(1)} {match.group(2)}"[:160]] += 1
        return [f"{n} x {text}" for text, n in counts.most_common(10)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def verdict(samples: list[Sample], warmup: float) -> tuple[bool, list[str]]:
    """Flat after warm-up? (see the module docstring); the lines that say why."""
    after = [s for s in samples if s.seconds > warmup]
    if len(after) < 3:
        return False, [f"too few samples after the {warmup:.0f}s warm-up to judge ({len(after)})"]
    third = max(1, len(after) // 3)
    first, last = after[:third], after[-third:]
    lines = []
    flat = True
    for name, unit, absolute, relative in (
        ("rss_kib", "KiB", 2048, 0.05),
        ("objects", "objects", 1000, 0.02),
    ):
        start = sum(getattr(s, name) for s in first) / len(first)
        end = sum(getattr(s, name) for s in last) / len(last)
        allowed = max(absolute, relative * start)
        slope = _slope([s.seconds / 60 for s in after], [getattr(s, name) for s in after])
        ok = end - start <= allowed
        flat = flat and ok
        lines.append(
            f"{name}: {start:.0f} -> {end:.0f} {unit} (first vs last third after warm-up; "
            f"allowed +{allowed:.0f}), slope {slope:+.1f} {unit}/min: "
            + ("flat" if ok else "GROWING")
        )
    return flat, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument(
        "--app", default="apps:plain", help="what to serve (reactor serve's arguments)"
    )
    args = parser.parse_args(argv)
    interval = min(args.interval, max(1.0, args.seconds / 12))
    warmup = max(interval, 0.2 * args.seconds)

    with tempfile.TemporaryDirectory(prefix="soak-") as cwd:
        server = Server(args.app.split(), cwd)
        try:
            before = server.stats()
            print(
                f"soak: {args.app} on 127.0.0.1:{server.port} (pid {server.proc.pid}), "
                f"{args.clients} load processes for {args.seconds:.0f}s, a line every "
                f"{interval:.0f}s, warm-up {warmup:.0f}s",
                flush=True,
            )
            print(
                f"soak: before: rss {_mib(before['rss_kib'])}, {before['objects']} objects, "
                f"{before['fds']} fds",
                flush=True,
            )
            ctx = multiprocessing.get_context("fork")
            counts = ctx.Array("q", args.clients, lock=False)
            results = ctx.Queue()
            workers = [
                ctx.Process(
                    target=load,
                    args=(server.port, args.seconds, seed, seed, counts, results),
                    daemon=True,
                )
                for seed in range(args.clients)
            ]
            for worker in workers:
                worker.start()
            start = time.monotonic()
            samples: list[Sample] = []
            last_total, last_time = 0, start
            while any(w.is_alive() for w in workers):
                time.sleep(max(0.0, start + (len(samples) + 1) * interval - time.monotonic()))
                if not any(w.is_alive() for w in workers) and samples:
                    break
                now = time.monotonic()
                total = sum(counts)
                stats = server.stats()
                sample = Sample(
                    now - start,
                    total,
                    stats["rss_kib"],
                    stats["fds"],
                    stats["objects"],
                    stats["connections"],
                )
                samples.append(sample)
                rate = (total - last_total) / max(now - last_time, 1e-9)
                last_total, last_time = total, now
                print(
                    f"t={sample.seconds:6.0f}s  {rate:7.0f} req/s  total {total:9d}  "
                    f"rss {_mib(sample.rss_kib):>9}  objects {sample.objects:7d}  "
                    f"fds {sample.fds:4d}  connections {sample.connections:4d}"
                    + ("  (warm-up)" if sample.seconds <= warmup else ""),
                    flush=True,
                )
            ok: Counter[str] = Counter()
            errors: Counter[str] = Counter()
            for _ in workers:
                got_ok, got_errors = results.get(timeout=60)
                ok.update(got_ok)
                errors.update(got_errors)
            for worker in workers:
                worker.join(10)
            # The load has stopped: connections close, fds and the table go back.
            deadline = time.monotonic() + 30
            while True:
                after = server.stats()
                settled = after["fds"] <= before["fds"] and after["connections"] == 0
                if settled or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        finally:
            server.stop()
            log = server.log_summary()

    total = sum(counts)
    print(
        f"soak: {total} requests in {args.seconds:.0f}s ({total / args.seconds:.0f} req/s); "
        "scenarios: " + ", ".join(f"{name} {n}" for name, n in sorted(ok.items()))
    )
    flat, lines = verdict(samples, warmup)
    for line in lines:
        print("soak: " + line)
    print(
        f"soak: after the load: fds {after['fds']} (before {before['fds']}), connections "
        f"{after['connections']}, rss {_mib(after['rss_kib'])}, {after['objects']} objects "
        f"(before {before['objects']}): " + ("back" if settled else "NOT BACK")
    )
    if errors:
        print(f"soak: {sum(errors.values())} failed requests:")
        for text, n in errors.most_common(10):
            print(f"soak:   {n} x {text}")
    if log:
        print("soak: the server's log (WARNING and ERROR lines, by message; not judged):")
        for line in log:
            print(f"soak:   {line}")
    good = flat and settled and not errors
    print("soak: verdict: " + ("FLAT" if good else "NOT FLAT") + " (see above)", flush=True)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
