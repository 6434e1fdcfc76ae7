"""Memory measurements of the benchmark: server RSS per idle keep-alive connection (any peer),
tracemalloc bytes per idle connection (reactor) and the hijack retention script.

Owns driving idle_client.py against a freshly started server and reading the server's RSS
from /proc before and after, and running reactor_idle.py and hijack_memory.py as
subprocesses and reading their JSON. Starting and stopping servers is peers.py's.
Tests: tests/test_bench_tools.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from idle_client import REQUEST, read_response
from peers import ROOT, Context, Peer, peer_env, raise_nofile, start

HERE = Path(__file__).resolve().parent


def warm_up(port: int, requests: int = 200) -> None:
    """``requests`` hello requests on one keep-alive connection (lazy imports, caches)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for _ in range(requests):
            s.sendall(REQUEST)
            if not read_response(s):
                raise RuntimeError("warm-up request failed")


def idle_rss(peer: Peer, ctx: Context, conns: int, *, client_cpu: int | None = 1) -> dict[str, Any]:
    """Start ``peer`` fresh, open ``conns`` idle keep-alive connections to it, and return the
    RSS growth per connection (KiB) with the raw numbers."""
    running = start(peer, ctx, tag=f"-idle{conns}")
    client: subprocess.Popen[str] | None = None
    try:
        warm_up(running.port)
        time.sleep(0.5)
        before = running.rss_kib()
        argv = [sys.executable, str(HERE / "idle_client.py"), str(running.port), str(conns)]
        if client_cpu is not None:
            argv = ["taskset", "-c", str(client_cpu), *argv]
        client = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=raise_nofile,
        )
        assert client.stdout is not None
        line = client.stdout.readline().split()
        if len(line) != 3 or line[0] != "idle":
            raise RuntimeError(f"idle client failed: {line}")
        opened, failed = int(line[1]), int(line[2])
        # Let the server finish whatever the last responses started, then measure.
        time.sleep(1.0)
        after = running.rss_kib()
        alive = running.alive()
        return {
            "connections": opened,
            "failed": failed,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "kib_per_conn": round((after - before) / opened, 2) if opened else None,
            "server_alive": alive,
        }
    finally:
        if client is not None:
            if client.stdin is not None:
                client.stdin.close()
            try:
                client.wait(30)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
        running.stop()


def _json_script(argv: list[str], ctx: Context, timeout: float) -> dict[str, Any]:
    from peers import PEERS

    proc = subprocess.run(
        [ctx.python, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=peer_env(PEERS["reactor"], ctx),
        cwd=ROOT,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def reactor_tracemalloc(ctx: Context, conns: int) -> dict[str, Any]:
    """tracemalloc bytes per idle keep-alive connection of reactor (reactor_idle.py)."""
    return _json_script([str(HERE / "reactor_idle.py"), "--conns", str(conns), "--json"], ctx, 300)


def hijack(ctx: Context, conns: int = 1000) -> dict[str, Any]:
    """tools/bench/hijack_memory.py --json: retained bytes per parked hijacked connection."""
    return _json_script([str(HERE / "hijack_memory.py"), "--conns", str(conns), "--json"], ctx, 600)
