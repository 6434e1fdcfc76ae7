"""The sleeping-view scenario of issue 12: 4 concurrent requests to a WSGI view that sleeps
0.5 s, under ``reactor serve APP --threads N``; the target is all four answered within 0.7 s
with ``--threads 4``.

Method: start ``reactor serve`` as its own process on a free loopback port, send one warm-up
request, then open 4 connections, send the 4 requests at once (each from its own thread,
released together by a barrier) and time each one from its send to the complete response.
Prints the four times; exit status 1 if any is over ``--target`` seconds.

Run:  python tools/bench/sleeping_view.py [--threads 4] [--rounds 3] [--json]
(``--json``: one JSON object on the last line, for tools/bench/run.py, which runs it in
``make bench``.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

APP = """
import time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(0.5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"awake"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def one_round(port: int) -> list[float]:
    barrier = threading.Barrier(4)
    times: list[float] = [0.0] * 4

    def fetch(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.connect()
        barrier.wait()
        started = time.monotonic()
        conn.request("GET", "/sleep")
        body = conn.getresponse().read()
        times[i] = time.monotonic() - started
        assert body == b"awake"
        conn.close()

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.7)
    parser.add_argument("--json", action="store_true", help="end with a JSON line")
    args = parser.parse_args()
    rounds: list[list[float]] = []
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "sleepy.py").write_text(APP)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reactor",
                "serve",
                "sleepy:app",
                "--port",
                str(port),
                "--threads",
                str(args.threads),
                "--log-level",
                "warning",
            ],
            cwd=tmp,
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            proc.stdout.readline()  # the start-up line: listening
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            worst = 0.0
            for n in range(args.rounds):
                times = one_round(port)
                rounds.append(sorted(times))
                worst = max(worst, *times)
                shown = ", ".join(f"{t:.3f}" for t in sorted(times))
                print(f"round {n + 1}: 4 concurrent 0.5 s requests answered in {shown} s")
        finally:
            proc.terminate()
            proc.wait(10)
    ok = worst <= args.target
    print(
        f"--threads {args.threads}: worst {worst:.3f} s (target <= {args.target} s): "
        f"{'met' if ok else 'NOT met'}"
    )
    if args.json:
        print(json.dumps({"threads": args.threads, "rounds": rounds, "worst": worst}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
