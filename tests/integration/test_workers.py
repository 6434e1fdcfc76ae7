"""``reactor serve --workers N`` as a subprocess: N distinct worker PIDs answer, a killed
worker is replaced, SIGTERM drains in-flight requests (SIGINT too; a second one or SIGQUIT
stops at once), SIGHUP replaces every worker while a steady client sees no failed request.
Every subprocess is killed in a ``finally``."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.integration.test_cli import reactor_serve

PID_APP = """
import os, time

def app(w, r):
    if r.path == "/slow":
        time.sleep(0.4)  # blocks this worker's loop: the next connection goes to another
    w.headers.set("Content-Type", "text/plain")
    w.write(str(os.getpid()).encode())
"""


def get(port: int, path: str = "/", timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while data := sock.recv(65536):
            out += data
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), out
    return body


def slow_pids(port: int, n: int) -> set[int]:
    """PIDs answering ``n`` overlapping slow requests, started 50 ms apart."""
    pids: list[int] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            pids.append(int(get(port, "/slow")))
        except BaseException as exc:
            errors.append(exc)

    threads = []
    for _ in range(n):
        t = threading.Thread(target=one)
        t.start()
        threads.append(t)
        time.sleep(0.05)
    for t in threads:
        t.join(10)
    assert not errors, errors
    return set(pids)


def wait_for(predicate: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_workers_answer_from_distinct_pids_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "pidapp.py").write_text(PID_APP)
    with reactor_serve(
        "pidapp:app", "--workers", "3", "--accept-batch", "1", cwd=tmp_path
    ) as served:
        assert b"(selectors loop, 3 workers;" in served.banner
        pids = slow_pids(served.port, 3)
        assert len(pids) == 3
        assert served.proc.pid not in pids

        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: f"worker {victim} died" in served.stderr())
        wait_for(lambda: served.stderr().count("serving") >= 4)  # a 4th worker is up
        after = slow_pids(served.port, 3)
        assert victim not in after
        assert len(after) == 3
        assert len(after - pids) == 1  # the replacement

        status, out = served.stop()
        assert status == 0
        assert b"1 restarted after dying" in out


def test_term_drains_in_flight_requests(tmp_path: Path) -> None:
    (tmp_path / "upload.py").write_text(
        "import os\n"
        "from reactor import streaming\n"
        "@streaming\n"
        "async def app(w, r):\n"
        "    data = await r.body.read()\n"
        "    w.write(b'got ' + data)\n"
    )
    with reactor_serve("upload:app", "--workers", "2", cwd=tmp_path) as served:
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab")
            time.sleep(0.2)
            served.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert served.proc.poll() is None  # waiting for our request
            sock.sendall(b"cde")
            response = b""
            while data := sock.recv(65536):
                response += data
        finally:
            sock.close()
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(b"\r\n\r\ngot abcde")
        assert served.proc.wait(5) == 0
        assert "1 connection(s) drained, 0 closed unfinished" in served.stderr()


@pytest.mark.parametrize("signals", [["SIGQUIT"], ["SIGINT", "SIGINT"]])
def test_quit_or_a_second_int_stops_at_once(tmp_path: Path, signals: list[str]) -> None:
    (tmp_path / "upload.py").write_text(
        "from reactor import streaming\n"
        "@streaming\n"
        "async def app(w, r):\n"
        "    w.write(await r.body.read())\n"
    )
    with reactor_serve("upload:app", "--workers", "2", cwd=tmp_path) as served:
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab")
            time.sleep(0.2)
            if len(signals) > 1:  # INT is graceful, as TERM: it waits for our request
                served.proc.send_signal(signal.SIGINT)
                time.sleep(0.3)
                assert served.proc.poll() is None
            started = time.monotonic()
            status, _ = served.stop(getattr(signal, signals[-1]))
            assert status == 0
            assert time.monotonic() - started < 2
            assert sock.recv(65536) == b""  # closed, unfinished
        finally:
            sock.close()


def test_hup_replaces_every_worker_without_a_failed_request(tmp_path: Path) -> None:
    (tmp_path / "pidapp.py").write_text(PID_APP)
    with reactor_serve("pidapp:app", "--workers", "2", cwd=tmp_path) as served:
        before = slow_pids(served.port, 2)
        assert len(before) == 2
        stop = threading.Event()
        seen: list[int] = []
        failures: list[BaseException] = []

        def client() -> None:
            while not stop.is_set():
                try:
                    seen.append(int(get(served.port)))
                except BaseException as exc:
                    failures.append(exc)
                time.sleep(0.002)

        thread = threading.Thread(target=client)
        thread.start()
        try:
            time.sleep(0.2)
            served.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: served.stderr().count("replaced by") >= 2)
            time.sleep(0.3)
        finally:
            stop.set()
            thread.join(10)
        assert not failures, failures[:3]
        assert len(seen) > 50
        after = slow_pids(served.port, 2)
        assert len(after) == 2
        assert not (after & before)  # every worker is new
        assert set(seen[-10:]) <= after
        status, out = served.stop()
        assert status == 0
        assert b"2 replaced by SIGHUP" in out
