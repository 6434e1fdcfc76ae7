"""Slow clients: slowloris (heads trickled a byte at a time, and connections that say
nothing), slow bodies, and slow readers of a large response from each kind of handler (plain,
async, static files, WSGI). Each runs against a ``reactor serve`` subprocess while a
well-behaved client probes it, and checks what a user cares about: the probe is answered
within ``ANSWER_WITHIN`` throughout, the attackers are cut at their timeout, RSS stays
bounded, and fds, connections and objects are back to the baseline after. Thresholds and
their precedents: bounds.py.
"""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

import pytest

from .bounds import (
    ANSWER_WITHIN,
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    RSS_GROWTH_KIB,
    TIMEOUT_FLAGS,
    TIMER_SLACK,
    WRITE_TIMEOUT,
    leak_allowance,
)
from .conftest import BIG_FILE
from .harness import Prober, assert_recovered, baseline, connect, reset, served

#: Attacking connections per test: enough that a per-connection cost or a stall shows, few
#: enough for a loaded 2-core machine.
ATTACKERS = 150


def _open(port: int, count: int) -> list[socket.socket]:
    return [connect(port) for _ in range(count)]


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (readable, and reading it gives EOF or RST; a 408
    before the EOF is read and discarded). Never blocks."""
    try:
        while True:
            ready, _, _ = select.select([sock], [], [], 0)
            if not ready:
                return False
            if not sock.recv(65536):
                return True
    except OSError:
        return True


def _wait_all_closed(socks: list[socket.socket], timeout: float, trickle: float = 0.0) -> float:
    """Seconds until the server closed every socket; while waiting, send one more head byte
    every ``trickle`` seconds to each open one (0: stay silent). Fails past ``timeout``."""
    start = time.monotonic()
    open_socks = list(socks)
    while open_socks:
        elapsed = time.monotonic() - start
        assert elapsed <= timeout, f"{len(open_socks)} connection(s) not cut after {elapsed:.1f}s"
        still = []
        for sock in open_socks:
            if _closed_by_server(sock):
                continue
            if trickle:
                try:
                    sock.send(b"a")
                except OSError:
                    continue
            still.append(sock)
        open_socks = still
        time.sleep(trickle or 0.05)
    return time.monotonic() - start


def test_slowloris_trickled_heads_are_cut_at_the_header_timeout(site: Path) -> None:
    """Heads trickled a byte every 0.2 s: the header timeout is not reset by progress (Go's
    ReadHeaderTimeout), so every one is cut within it, whatever the client does."""
    with served("apps:plain", *TIMEOUT_FLAGS, cwd=site) as server:
        before = baseline(server)
        with Prober(server) as prober:
            socks = _open(server.port, ATTACKERS)
            for sock in socks:
                sock.send(b"GET / HTTP/1.1\r\nX-Slow: ")
            took = _wait_all_closed(socks, HEADER_TIMEOUT + TIMER_SLACK, trickle=0.2)
        prober.check(ANSWER_WITHIN)
        assert took <= HEADER_TIMEOUT + TIMER_SLACK
        assert prober.peak_rss_kib - before.rss_kib <= RSS_GROWTH_KIB
        for sock in socks:
            sock.close()
        assert_recovered(server, before, leak_allowance(ATTACKERS))


def test_slowloris_silent_connections_are_cut_at_the_header_timeout(site: Path) -> None:
    """Connections that never send a byte hold an fd each until the header timeout, which
    runs from the connection's start."""
    with served("apps:async_", *TIMEOUT_FLAGS, cwd=site) as server:
        before = baseline(server)
        with Prober(server) as prober:
            socks = _open(server.port, ATTACKERS)
            took = _wait_all_closed(socks, HEADER_TIMEOUT + TIMER_SLACK)
        prober.check(ANSWER_WITHIN)
        assert took <= HEADER_TIMEOUT + TIMER_SLACK
        assert prober.peak_rss_kib - before.rss_kib <= RSS_GROWTH_KIB
        for sock in socks:
            sock.close()
        assert_recovered(server, before, leak_allowance(ATTACKERS))


def test_slow_body_is_cut_at_the_body_timeout(site: Path) -> None:
    """Uploads that stop after 256 KiB of a 1 MiB body are cut at the body timeout; what they
    hold meanwhile is their partial bodies (bounded by the sizes sent, nothing more)."""
    uploads = 40
    sent = 256 * 1024
    with served("apps:plain", *TIMEOUT_FLAGS, cwd=site) as server:
        before = baseline(server)
        with Prober(server) as prober:
            socks = _open(server.port, uploads)
            head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n"
            for sock in socks:
                sock.sendall(head + b"b" * sent)
            took = _wait_all_closed(socks, BODY_TIMEOUT + TIMER_SLACK + 2)
        prober.check(ANSWER_WITHIN)
        assert took <= BODY_TIMEOUT + TIMER_SLACK + 2
        held_kib = uploads * sent // 1024
        assert prober.peak_rss_kib - before.rss_kib <= 2 * held_kib + RSS_GROWTH_KIB
        for sock in socks:
            sock.close()
        assert_recovered(server, before, leak_allowance(uploads))


#: (the server's arguments, the path of a large response, readers, response size, RSS bound
#: in KiB). A plain handler cannot wait for the client, so its response is buffered whole:
#: its bound is the responses themselves; the others stream with backpressure and must not
#: grow with the response size.
SLOW_READERS = {
    "plain": (("apps:plain",), "/big/4194304", 10, 4 << 20, 2 * 10 * 4096 + RSS_GROWTH_KIB),
    "async": (("apps:async_",), f"/big/{BIG_FILE}", 30, BIG_FILE, RSS_GROWTH_KIB),
    "static": ((), "/big.bin", 30, BIG_FILE, RSS_GROWTH_KIB),
    # A thread per reader: with the default 4, the readers would queue for the pool and be
    # cut one batch of 4 per write timeout (waitress queues the same way).
    "wsgi": (
        ("--wsgi", "apps:wsgi", "--threads", "32"),
        f"/big/{BIG_FILE}",
        30,
        BIG_FILE,
        RSS_GROWTH_KIB,
    ),
}


@pytest.mark.parametrize("kind", list(SLOW_READERS))
def test_slow_reader_of_a_large_response(site: Path, kind: str) -> None:
    """Clients that ask for a large response and never read it: the server writes what the
    kernel takes, holds a bounded amount more, serves everybody else meanwhile, and cuts
    them at the write timeout."""
    args, path, readers, size, rss_bound_kib = SLOW_READERS[kind]
    probe = "/hello.txt" if kind == "static" else "/"
    with served(*args, *TIMEOUT_FLAGS, cwd=site) as server:
        before = baseline(server, probe)
        with Prober(server, probe) as prober:
            socks = _open(server.port, readers)
            for sock in socks:
                # A small receive buffer, so the kernel does not take the response for us.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            # Every reader is cut once its output stops moving for the write timeout.
            deadline = time.monotonic() + WRITE_TIMEOUT + TIMER_SLACK + 4
            while server.stats().connections > 0:
                assert time.monotonic() < deadline, server.stats()
                time.sleep(0.1)
        prober.check(ANSWER_WITHIN, minimum=1)  # a loaded machine may fit one probe only
        assert prober.peak_rss_kib - before.rss_kib <= rss_bound_kib, (
            f"RSS grew by {prober.peak_rss_kib - before.rss_kib} KiB for {readers} readers "
            f"of {size} bytes"
        )
        for sock in socks:
            reset(sock)
        assert_recovered(server, before, leak_allowance(readers))


def test_the_probe_sees_a_stalled_loop(site: Path) -> None:
    """The measure itself: a handler that blocks the loop for 3 s makes the well-behaved
    client wait past ``ANSWER_WITHIN``, so a stall caused by an attack would fail the tests
    above."""
    with served("apps:plain", *TIMEOUT_FLAGS, cwd=site) as server:
        baseline(server, warmup=2)
        with Prober(server) as prober:
            time.sleep(0.2)
            with connect(server.port, timeout=10) as sock:
                sock.sendall(b"GET /stall/3000 HTTP/1.1\r\nHost: t\r\n\r\n")
                assert b"stalled" in _read_until(sock, b"stalled\n", 10)
            time.sleep(0.2)
        assert 2.5 <= prober.worst <= 10, prober.latencies
        with pytest.raises(AssertionError, match="waited"):
            prober.check(ANSWER_WITHIN)


def _read_until(sock: socket.socket, marker: bytes, timeout: float) -> bytes:
    sock.settimeout(timeout)
    got = b""
    while marker not in got:
        data = sock.recv(65536)
        assert data, got
        got += data
    return got
