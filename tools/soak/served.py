"""``reactor serve`` plus a report on itself: the server process of tests/adversarial and of
``make soak``.

    python tools/soak/served.py [--nofile N] [--sndbuf BYTES] serve [reactor serve arguments...]

Runs reactor's own command line (``reactor.cli.main``) unchanged, after two things:

- ``--nofile N`` lowers RLIMIT_NOFILE in this process only, so a test can run a server into
  its fd limit without starving the test's own process;
- ``--sndbuf BYTES`` sets SO_SNDBUF on the listening sockets (accepted sockets inherit it, and
  it turns the kernel's send-buffer autotuning off for them), so a test knows how much of a
  response the kernel holds for a client that does not read;
- a daemon thread answers on stdin/stdout: for each line ``stats`` it writes one JSON line,
  ``{"objects": N, "connections": N, "handshakes": N}``: ``len(gc.get_objects())`` after a
  full ``gc.collect()``, and the connection table (``Server.connection_count``) and TLS
  handshakes in progress of the servers in this process. It needs no new fd (the pipes are
  open from the start), so it answers at the fd limit too. RSS and open fds are read from
  ``/proc/PID`` by the caller, which needs nothing from this process.

The directory of this file is put on ``sys.path``, so APP may be ``apps:plain`` (see apps.py).
The stdout banner is reactor's own (printed before the caller sends any ``stats``).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import socket
import sys
import threading
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def _stats() -> dict[str, int]:
    from reactor.server import Server

    gc.collect()
    objects = gc.get_objects()
    count = len(objects)
    servers = [o for o in objects if isinstance(o, Server)]
    del objects
    connections = sum(s.connection_count for s in servers)
    handshakes = sum(len(getattr(s, "_handshakes", ())) for s in servers)
    del servers
    return {"objects": count, "connections": connections, "handshakes": handshakes}


def _answer_stats() -> None:
    for line in sys.stdin:
        if line.strip() == "stats":
            text = json.dumps(_stats())
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--nofile"]:
        limit = int(argv[1])
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        argv = argv[2:]
    sndbuf = 0
    if argv[:1] == ["--sndbuf"]:
        sndbuf = int(argv[1])
        argv = argv[2:]
    sys.path.insert(0, HERE)
    threading.Thread(target=_answer_stats, name="stats", daemon=True).start()
    import reactor.cli

    if sndbuf:
        bind_socket = reactor.cli.bind_socket

        def bind_with_sndbuf(*args: Any, **kwargs: Any) -> socket.socket:
            sock = bind_socket(*args, **kwargs)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            return sock

        reactor.cli.bind_socket = bind_with_sndbuf  # type: ignore[attr-defined]
    return reactor.cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
