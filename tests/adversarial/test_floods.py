"""Floods: pipelined requests sent and never read, connections up to ``--max-connections``,
and connections up to the server's fd limit (RLIMIT_NOFILE lowered in the server's process
only). The well-behaved client keeps its connection from before the flood where the flood
fills the accept path on purpose. Thresholds and their precedents: bounds.py.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from .bounds import (
    ANSWER_WITHIN,
    HEADER_TIMEOUT,
    MAX_CONNECTIONS,
    NOFILE,
    RSS_GROWTH_KIB,
    TIMEOUT_FLAGS,
    TIMER_SLACK,
    leak_allowance,
)
from .harness import Prober, assert_recovered, baseline, connect, get, reset, served

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def _pipeline_flood(sock: socket.socket, requests: int, seconds: float) -> int:
    """Send up to ``requests`` pipelined GETs, for at most ``seconds``, as fast as the kernel
    takes them, reading nothing; returns how many went out."""
    sock.setblocking(False)
    batch = REQUEST * 1000
    sent = 0
    deadline = time.monotonic() + seconds
    while sent < requests * len(REQUEST) and time.monotonic() < deadline:
        try:
            sent += sock.send(batch)
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    return sent // len(REQUEST)


def test_unread_pipelining_flood(site: Path) -> None:
    """Four connections pipeline up to 50k requests each and read no answer: the server holds
    at most its read-ahead per connection and stops reading once their unread answers fill
    the socket (or cuts them at the write timeout), while everybody else is served; a reset
    ends them. (Many flooders at once: the next test.)"""
    flooders = 4
    with served("apps:plain", *TIMEOUT_FLAGS, cwd=site) as server:
        before = baseline(server)
        with Prober(server) as prober:
            socks = [connect(server.port) for _ in range(flooders)]
            for sock in socks:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sent = [_pipeline_flood(sock, 50_000, 0.25) for sock in socks]
            time.sleep(1.5)  # the server works through what it read, and stops reading
        assert min(sent) > 1000, sent  # the flood really was one
        prober.check(ANSWER_WITHIN)
        assert prober.peak_rss_kib - before.rss_kib <= RSS_GROWTH_KIB
        for sock in socks:
            reset(sock)
        assert_recovered(server, before, leak_allowance(flooders))


def test_many_pipelining_flooders_share_the_loop(site: Path) -> None:
    """160 connections each send 64 KiB of pipelined GETs at once (about 2,400 requests each,
    380,000 in all, seconds of work) and read no answer: the server works through each
    connection's requests a batch per loop pass, so a well-behaved client is answered
    within a pass or two, not after every flooder's backlog."""
    flooders = 160
    flood = REQUEST * (64 * 1024 // len(REQUEST))
    with served("apps:plain", *TIMEOUT_FLAGS, cwd=site) as server:
        before = baseline(server)
        socks = [connect(server.port) for _ in range(flooders)]
        with Prober(server) as prober:
            time.sleep(0.1)
            for sock in socks:
                sock.sendall(flood)  # the server's receive buffer takes 64 KiB at once
            time.sleep(2.0)  # the server works through the flood
        # Each probe is a new connection: accepted in one pass, read in the next; a pass
        # serves every flooder a batch. 0.75 s: 1.7 s before the batches (every flooder's
        # whole backlog per pass), 0.2 s after them, here.
        prober.check(0.75)
        assert prober.peak_rss_kib - before.rss_kib <= RSS_GROWTH_KIB
        for sock in socks:
            reset(sock)
        assert_recovered(server, before, leak_allowance(flooders))


def test_connection_flood_to_max_connections(site: Path) -> None:
    """Silent connections, twice ``--max-connections``: the table never exceeds the limit,
    the client already connected is served throughout, and a new client queued behind the
    flood is answered once the silent ones ahead of it are cut at the header timeout."""
    flood = 2 * MAX_CONNECTIONS
    args = ("apps:plain", *TIMEOUT_FLAGS, "--max-connections", str(MAX_CONNECTIONS))
    with served(*args, cwd=site) as server:
        before = baseline(server)
        with Prober(server, keep_alive=True) as prober:
            socks = [connect(server.port) for _ in range(flood)]
            start = time.monotonic()
            status, _ = get(server.port, "/", timeout=2 * HEADER_TIMEOUT + TIMER_SLACK + 2)
            waited = time.monotonic() - start
            peak = server.stats().connections
        assert status == 200
        assert waited <= 2 * HEADER_TIMEOUT + TIMER_SLACK + 2
        assert peak <= MAX_CONNECTIONS
        prober.check(ANSWER_WITHIN)
        assert prober.peak_rss_kib - before.rss_kib <= RSS_GROWTH_KIB
        for sock in socks:
            sock.close()
        assert_recovered(server, before, leak_allowance(flood), timeout=10)


def test_connection_flood_to_the_fd_limit(site: Path) -> None:
    """Three times RLIMIT_NOFILE connections: accept fails with EMFILE and backs off instead of
    spinning, the client already connected is served throughout, and once the flood is gone
    new clients are served and every fd is back."""
    flood = 3 * NOFILE
    with served("apps:plain", *TIMEOUT_FLAGS, cwd=site, nofile=NOFILE) as server:
        before = baseline(server)
        with Prober(server, keep_alive=True) as prober:
            socks = [connect(server.port) for _ in range(flood)]
            time.sleep(1.0)  # long enough for the accept path to hit EMFILE and back off
            at_limit = server.fds()
        assert at_limit >= NOFILE - 2, at_limit  # the flood did reach the limit
        prober.check(ANSWER_WITHIN)
        assert prober.peak_rss_kib - before.rss_kib <= RSS_GROWTH_KIB
        for sock in socks:
            sock.close()
        assert_recovered(server, before, leak_allowance(flood), timeout=10)
        status, _ = get(server.port, "/", timeout=ANSWER_WITHIN)
        assert status == 200
