"""tracemalloc bytes per idle keep-alive connection of reactor, measured in-process.

A Server on a SelectorLoop in this process; a child process (idle_client.py) opens N
keep-alive connections and sends one request on each. Once it has read every response (it
says so on its stdout), ``gc.collect()`` and tracemalloc's current size against
a baseline taken after one warm-up request give the Python heap held per idle connection,
with the top allocation sites. Usage: python tools/bench/reactor_idle.py [--conns 1000]
[--json]. Run by tools/bench/run.py (with the source tree on PYTHONPATH); not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from reactor import Request, ResponseWriter, SelectorLoop, Server

CLIENT = str(Path(__file__).resolve().parent / "idle_client.py")


WARM = (
    "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
    "s.sendall(b'GET / HTTP/1.1\\r\\nHost: b\\r\\nConnection: close\\r\\n\\r\\n');"
    "[0 for _ in iter(lambda: s.recv(4096), b'')]"
)


def handler(w: ResponseWriter, r: Request) -> None:
    w.headers.set("Content-Type", "text/plain")
    w.write(b"Hello, World!")


def measure(conns: int) -> dict[str, Any]:
    loop = SelectorLoop()
    server = Server(handler, loop=loop)
    _host, port = server.listen("127.0.0.1", 0)
    # Warm-up: one connection, one request, closed (first-use caches: Date, status lines).
    warm = subprocess.Popen([sys.executable, "-c", WARM, str(port)])
    while warm.poll() is None:
        loop.run_once(0.01)
    for _ in range(5):
        loop.run_once(0.01)
    gc.collect()
    tracemalloc.start(5)
    base = tracemalloc.get_traced_memory()[0]
    snap_before = tracemalloc.take_snapshot()
    child = subprocess.Popen(
        [sys.executable, CLIENT, str(port), str(conns)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    # The client says "idle OPENED FAILED" once it has read every response; the loop watches
    # its pipe (one registration, nothing per connection, unlike a state hook).
    said: list[str] = []
    out = child.stdout
    loop.add_reader(
        out.fileno(), lambda: said.append(out.readline()) or loop.remove_reader(out.fileno())
    )
    deadline = time.monotonic() + 120
    while not said and time.monotonic() < deadline and child.poll() is None:
        loop.run_once(0.05)
    for _ in range(5):
        loop.run_once(0.01)
    gc.collect()
    current = tracemalloc.get_traced_memory()[0]
    snap_after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    fields = said[0].split() if said else []
    if len(fields) != 3 or fields[0] != "idle":
        raise RuntimeError(f"the idle client failed: {said}")
    reached = int(fields[1])
    top = [
        f"{stat.traceback[0].filename.rsplit('/', 2)[-1]}:{stat.traceback[0].lineno} "
        f"{stat.size_diff / max(1, reached):.0f} B/conn"
        for stat in snap_after.compare_to(snap_before, "lineno")[:6]
    ]
    child.stdin.close()
    child.wait(30)
    server.close()
    loop.close()
    return {
        "connections": reached,
        "failed": int(fields[2]),
        "bytes_per_conn": round((current - base) / max(1, reached), 1),
        "top_sites": top,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = measure(args.conns)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['connections']} idle connections: "
            f"{result['bytes_per_conn']:.0f} B of Python heap each"
        )
        for line in result["top_sites"]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
