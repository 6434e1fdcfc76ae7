"""Memory of hijacked connections, measured with tracemalloc (a benchmark, not a test).

1. Retention (Go's BenchmarkServerHijackMemoryUsage): N clients (in a child process) send an
   Upgrade request; the handler answers 101, hijacks, parks ``(sock, pair)`` and returns.
   After all N: ``gc.collect()``, then tracemalloc's current size against a baseline taken
   with the server listening gives the Python heap retained per parked connection. Live
   Connection/Request/ResponseWriter objects are counted (must be 0). Then every parked
   connection echoes ``echo 01234`` through its pair, proving it still works.
2. Allocation per hijack cycle (accept, parse, hijack, close; Go's BenchmarkServerHijack
   B/op): M sequential cycles; for each, tracemalloc's peak above the level before the
   cycle (``reset_peak``) is the most memory one cycle holds at once. The median is
   reported, with the top allocation sites of a snapshot taken inside the handler just
   before ``hijack()`` returns, against a snapshot taken before the client connected.

Usage: python tools/bench/hijack_memory.py [--conns 1000] [--cycles 300] [--json]
Prints progress to stderr and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import textwrap
import time
import tracemalloc
from typing import Any

from reactor import Request, ResponseWriter, SelectorLoop, Server
from reactor.transport import scratch_buffer

UPGRADE = b"GET /ws HTTP/1.1\r\nHost: bench\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"

CLIENT = textwrap.dedent(
    f"""
    import socket, sys
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    socks = []
    for i in range(n):
        s = socket.create_connection((host, port))
        s.sendall({UPGRADE!r})
        buf = b""
        while b"\\r\\n\\r\\n" not in buf:
            buf += s.recv(4096)
        assert buf.startswith(b"HTTP/1.1 101"), buf
        socks.append(s)
    print("parked", flush=True)
    sys.stdin.readline()
    ok = 0
    for s in socks:
        s.sendall(b"echo 01234")
        got = b""
        while len(got) < 10:
            data = s.recv(10 - len(got))
            if not data:
                break
            got += data
        ok += got == b"echo 01234"
        s.close()
    print("echoed", ok, flush=True)
    """
)

CYCLE_CLIENT = textwrap.dedent(
    """
    import socket, sys
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for i in range(n):
        s = socket.create_connection((host, port))
        s.sendall(b"GET / HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n")
        while s.recv(4096):
            pass
        s.close()
        sys.stdin.readline()  # wait for the server to finish the cycle
    """
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def live(names: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(names, 0)
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in counts and type(obj).__module__.startswith("reactor"):
            counts[name] += 1
    return counts


def retention(conns: int) -> dict[str, Any]:
    loop = SelectorLoop()
    parked: list[Any] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("Upgrade", "echo")
        w.headers.set("Connection", "Upgrade")
        w.write_header(101)
        parked.append(w.hijack())

    server = Server(handler, loop=loop)
    host, port = server.listen("127.0.0.1", 0)
    loop.run_once(0)
    # The loop thread's receive buffer (64 KiB, allocated at its first recv and shared by
    # every connection of the thread) is start-up, not per connection: allocate it first.
    scratch_buffer()
    gc.collect()
    tracemalloc.start(10)
    base = tracemalloc.get_traced_memory()[0]
    snap_before = tracemalloc.take_snapshot()
    child = subprocess.Popen(
        [sys.executable, "-c", CLIENT, host, str(port), str(conns)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    deadline = time.monotonic() + 120
    last = 0
    while len(parked) < conns and time.monotonic() < deadline:
        loop.run_once(0.05)
        if len(parked) - last >= max(1, conns // 10):
            last = len(parked)
            log(f"  parked {last}/{conns}")
    line = child.stdout.readline().strip()
    assert line == "parked", line
    for _ in range(3):
        loop.run_once(0)
    gc.collect()
    current = tracemalloc.get_traced_memory()[0]
    snap_after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    leftovers = sum(pair.reader.buffered() for _sock, pair in parked)
    counts = live(("Connection", "Request", "ResponseWriter", "Body"))
    top = [
        f"{stat.traceback[0].filename.rsplit('/', 2)[-1]}:{stat.traceback[0].lineno} "
        f"{stat.size_diff / conns:.0f} B/conn"
        for stat in snap_after.compare_to(snap_before, "lineno")[:6]
    ]
    # Every parked connection still works: echo through its pair.
    child.stdin.write("go\n")
    child.stdin.flush()
    for sock, pair in parked:
        sock.setblocking(True)
        sock.settimeout(10)
        data = b""
        while len(data) < 10:
            data += pair.reader.read(10 - len(data))
        pair.writer.write(data)
        pair.writer.flush()
    echoed = child.stdout.readline().split()
    child.wait(30)
    for sock, _pair in parked:
        sock.close()
    server.close()
    loop.close()
    per_conn = (current - base - leftovers) / conns
    return {
        "connections": conns,
        "retained_bytes_per_conn": round(per_conn, 1),
        "leftover_bytes": leftovers,
        "live_objects": counts,
        "echoed": int(echoed[1]) if len(echoed) == 2 else 0,
        "top_sites": top,
    }


def cycles(count: int) -> dict[str, Any]:
    loop = SelectorLoop()
    peaks: list[int] = []
    snapshots: dict[str, Any] = {}
    done: list[int] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        if "before" in snapshots and "inside" not in snapshots:
            snapshots["inside"] = tracemalloc.take_snapshot()
        sock, _pair = w.hijack()
        sock.close()
        done.append(1)

    server = Server(handler, loop=loop)
    host, port = server.listen("127.0.0.1", 0)
    child = subprocess.Popen(
        [sys.executable, "-c", CYCLE_CLIENT, host, str(port), str(count)],
        stdin=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    gc.collect()
    tracemalloc.start(10)
    for i in range(count):
        if i == 1:
            # Cycle 0 warmed first-use caches (status lines, Date, code paths); the snapshot
            # inside the next handler shows what one cycle holds at hijack time.
            snapshots["before"] = tracemalloc.take_snapshot()
        level = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        target = len(done) + 1
        deadline = time.monotonic() + 10
        while len(done) < target and time.monotonic() < deadline:
            loop.run_once(0.05)
        loop.run_once(0)
        peak = tracemalloc.get_traced_memory()[1]
        if i > 1:  # the snapshot cycle's peak includes the snapshot itself
            peaks.append(peak - level)
        child.stdin.write("\n")
        child.stdin.flush()
        if (i + 1) % max(1, count // 5) == 0:
            log(f"  cycles {i + 1}/{count}")
    top: list[str] = []
    held = 0
    blocks = 0
    if "inside" in snapshots:
        # Leave out tracemalloc's own allocations (the "before" snapshot is alive inside).
        own = [tracemalloc.Filter(False, tracemalloc.__file__)]
        diff = (
            snapshots["inside"]
            .filter_traces(own)
            .compare_to(snapshots["before"].filter_traces(own), "lineno")
        )
        held = sum(stat.size_diff for stat in diff)
        blocks = sum(stat.count_diff for stat in diff)
        top = [
            f"{stat.traceback[0].filename.rsplit('/', 2)[-1]}:{stat.traceback[0].lineno} "
            f"{stat.size_diff} B"
            for stat in diff[:8]
            if stat.size_diff > 0
        ]
    tracemalloc.stop()
    child.stdin.close()
    child.wait(30)
    server.close()
    loop.close()
    return {
        "cycles": len(peaks),
        "peak_bytes_per_cycle_median": statistics.median(peaks) if peaks else 0,
        "live_bytes_at_hijack": held,
        "live_blocks_at_hijack": blocks,
        "top_sites_at_hijack": top,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=1000, help="parked connections (1000)")
    parser.add_argument("--cycles", type=int, default=300, help="hijack cycles (300)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    if args.conns < 1 or args.cycles < 3:
        parser.error("--conns must be >= 1 and --cycles >= 3")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.conns + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    log(f"retention: {args.conns} parked hijacked connections")
    ret = retention(args.conns)
    log(f"allocation: {args.cycles} accept-parse-hijack-close cycles")
    cyc = cycles(args.cycles)
    if args.json:
        print(json.dumps({"retention": ret, "cycle": cyc}, indent=2))
        return 0
    live_objs = ", ".join(f"{k} {v}" for k, v in ret["live_objects"].items())
    print("| measure | reactor | Go 1.19 | Go 1.25 (after the CL) | target |")
    print("|---|---|---|---|---|")
    print(
        f"| retained Python heap per parked hijacked connection | "
        f"{ret['retained_bytes_per_conn'] / 1024:.2f} KiB | 14.8 KiB | ~8.1 KiB | <= 1 KiB |"
    )
    print(
        f"| peak bytes held during one accept-parse-hijack-close cycle (median of "
        f"{cyc['cycles']}) | {cyc['peak_bytes_per_cycle_median'] / 1024:.2f} KiB | 16.12 KiB "
        f"B/op | 12.06 KiB B/op | < 6 KiB |"
    )
    print()
    print(f"live server objects after {ret['connections']} parked hijacks: {live_objs}")
    print(f"parked connections that echoed through their pair: {ret['echoed']}")
    print(f"leftover bytes held by parked readers: {ret['leftover_bytes']}")
    print("top retention sites (per connection):")
    for line in ret["top_sites"]:
        print(f"  {line}")
    print(
        f"live inside the handler at hijack time: {cyc['live_bytes_at_hijack']} bytes in "
        f"{cyc['live_blocks_at_hijack']} allocations (tracemalloc blocks)"
    )
    print("top allocation sites at hijack time:")
    for line in cyc["top_sites_at_hijack"]:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
