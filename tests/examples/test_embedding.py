"""The embedding examples (docs/examples/embed_*.py) run as programs, docs/embedding.md quotes
them faithfully, and a server started and stopped many times on one loop leaves nothing behind.

Each example runs as a subprocess on 127.0.0.1 port 0: the test reads the address it prints,
talks to it over loopback, stops it the way a user would (a signal, or its admin endpoint)
and checks that it exits 0 with the summary it prints. Every embed_*.py also has to stop on
its own under ``--seconds``. The code blocks of docs/embedding.md that say where they come
from must be verbatim excerpts of that file; the handler-testing example in it is executed.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reactor import Request, ResponseWriter, Server
from reactor.leakcheck import count_objects
from reactor.loop import BACKENDS, Loop, new_loop
from reactor.testing import raw_request, request, run_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
DOC = ROOT / "docs" / "embedding.md"
PROGRAMS = sorted(p.stem for p in EXAMPLES.glob("embed_*.py"))
URL = re.compile(r"http://([\d.]+):(\d+)/")


# -- running an example ------------------------------------------------------------------------


class Program:
    """An example running as a subprocess, its stdout read line by line by a thread."""

    def __init__(self, name: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{name}.py"), "--host", "127.0.0.1", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.out: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The next line of output that matches ``pattern`` (earlier lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {self.out}") from None
            if line is None:
                raise AssertionError(f"exited before {pattern!r}: {self.out} {self.stderr()}")
            self.out.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def address(self, index: int = 0) -> tuple[str, int]:
        """The ``index``-th http://host:port/ of the first line."""
        line = self.out[0] if self.out else self.expect(URL.pattern).string
        host, port = URL.findall(line)[index]
        return host, int(port)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""

    def finish(self, timeout: float = 10.0) -> list[str]:
        """Wait for exit status 0; the rest of stdout."""
        self.proc.wait(timeout)
        rest: list[str] = []
        while (line := self._lines.get(timeout=5)) is not None:
            rest.append(line)
        self.out += rest
        assert self.proc.returncode == 0, (self.out, self.stderr())
        assert self.stderr() == ""
        return rest


@contextmanager
def program(name: str, *args: str) -> Iterator[Program]:
    prog = Program(name, "--port", "0", *args)
    try:
        prog.expect(URL.pattern)
        yield prog
    finally:
        if prog.proc.poll() is None:
            prog.proc.kill()
            prog.proc.wait(5)
        for stream in (prog.proc.stdout, prog.proc.stderr):
            if stream is not None:
                stream.close()


def get(address: tuple[str, int], target: str = "/", method: str = "GET") -> tuple[int, bytes]:
    status, _, body = request(address, method, target, timeout=5)
    return status, body


# -- every program -----------------------------------------------------------------------------


def test_there_are_embedding_examples() -> None:
    assert PROGRAMS == [
        "embed_asyncio_app",
        "embed_host_sockets",
        "embed_many_servers",
        "embed_run_once",
        "embed_thread",
    ]


@pytest.mark.parametrize("name", PROGRAMS)
def test_each_example_stops_on_its_own_after_seconds(name: str) -> None:
    extra = {
        "embed_host_sockets": ["--udp-port", "0", "--tick", "0.05"],
        "embed_many_servers": ["--admin-port", "0"],
        "embed_thread": ["--interval", "0.05"],
    }.get(name, [])
    with program(name, "--seconds", "0.5", *extra) as prog:
        started = time.monotonic()
        assert get(prog.address())[0] in (200, 404)
        rest = prog.finish()
        assert time.monotonic() - started < 5
    assert rest[-1].startswith("stopped"), rest


@pytest.mark.parametrize("name", PROGRAMS)
def test_each_example_is_documented(name: str) -> None:
    text = DOC.read_text()
    assert f"(examples/{name}.py)" in text, f"docs/embedding.md does not link {name}.py"
    source = (EXAMPLES / f"{name}.py").read_text()
    assert source.startswith('"""') and "def main(argv: list[str] | None = None)" in source
    assert "Tests: tests/examples/test_embedding.py." in source


def doc_blocks() -> list[tuple[str, str]]:
    """(source file, code) of each code block in docs/embedding.md that names its source in a
    ``<!-- from docs/examples/x.py -->`` comment just before it."""
    found = re.findall(r"<!-- from (\S+) -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    return [(path, code) for path, code in found]


def test_the_doc_quotes_the_examples_verbatim() -> None:
    blocks = doc_blocks()
    assert {path for path, _ in blocks} >= {f"docs/examples/{n}.py" for n in PROGRAMS}
    for path, code in blocks:
        source = (ROOT / path).read_text()
        # A block is excerpts of the file, in order, separated by "# ..." lines.
        position = 0
        for part in re.split(r"^ *# \.\.\.\n", code, flags=re.M):
            at = source.find(part, position)
            assert at >= 0, f"docs/embedding.md quotes {path} wrongly:\n{part}"
            position = at + len(part)


def test_the_doc_handler_testing_example_passes() -> None:
    text = DOC.read_text()
    code = re.findall(r"<!-- test: testing-example -->\n```python\n(.*?)```", text, re.S)
    assert len(code) == 1
    namespace: dict[str, Any] = {"__name__": "doc_example"}
    exec(compile(code[0], "docs/embedding.md", "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    assert len(tests) >= 2
    for test in tests:
        test()


# -- 1. the host's own sockets and timers --------------------------------------------------------


def test_host_sockets_udp_echo_timer_and_http_share_the_loop() -> None:
    with program("embed_host_sockets", "--udp-port", "0", "--tick", "0.02") as prog:
        udp_host, udp_port = re.findall(r"udp ([\d.]+):(\d+)", prog.out[0])[0]
        status, body = get(prog.address())
        assert status == 200 and json.loads(body)["requests"] == 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(5)
            udp.sendto(b"hello, loop\n", (udp_host, int(udp_port)))
            assert udp.recvfrom(100)[0] == b"HELLO, LOOP\n"
        time.sleep(0.1)
        stats = json.loads(get(prog.address())[1])
        assert stats["requests"] == 2 and stats["datagrams"] == 1 and stats["ticks"] >= 2
        prog.proc.send_signal(signal.SIGTERM)
        rest = prog.finish()
    assert re.fullmatch(
        r'stopped: \{"requests": 2, "datagrams": 1, "ticks": \d+\}; left on the loop: 0 fds',
        rest[-1],
    )


# -- 2. mounted on a running asyncio application ------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "uvloop"])
def test_asyncio_app_serves_async_handlers_concurrently_and_stops_gracefully(
    backend: str,
) -> None:
    args = ["--uvloop"] if backend == "uvloop" else []
    with program("embed_asyncio_app", *args) as prog:
        assert prog.out[0].endswith(
            "on uvloop" if backend == "uvloop" else "on asyncio.unix_events"
        )
        address = prog.address()
        loop_name = "uvloop.Loop" if backend == "uvloop" else "asyncio.unix_events."
        assert get(address, "/?ms=10")[1].decode().startswith(f"slept 10 ms on {loop_name}")
        # Three handlers sleeping 300 ms at once take 300 ms, not 900: asyncio.sleep yields.
        results: list[tuple[int, bytes]] = []
        started = time.monotonic()
        clients = [
            threading.Thread(target=lambda: results.append(get(address, "/?ms=300")))
            for _ in range(3)
        ]
        for t in clients:
            t.start()
        time.sleep(0.15)
        # Stopping while they are in flight: shutdown() lets them finish.
        prog.proc.send_signal(signal.SIGINT)
        for t in clients:
            t.join(10)
        elapsed = time.monotonic() - started
        assert [status for status, _ in results] == [200, 200, 200]
        assert all(body.startswith(b"slept 300 ms") for _, body in results)
        assert elapsed < 0.8, elapsed
        rest = prog.finish()
    assert re.fullmatch(r"stopped: heartbeat ran \d+ times; asyncio loop still running", rest[-1])


# -- 3. driven step by step with run_once --------------------------------------------------------


def test_run_once_host_serves_between_its_own_steps_without_busy_polling() -> None:
    with program("embed_run_once", "--hz", "50") as prog:
        address = prog.address()
        first = int(get(address)[1].split()[1])
        # A keep-alive connection arms a timer: the host waits for the sooner deadline.
        conn = http.client.HTTPConnection(*address, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().read().startswith(b"step ")
        time.sleep(0.3)
        second = int(get(address)[1].split()[1])
        assert second >= first + 5  # the simulation kept stepping at 50 Hz
        conn.close()
        prog.proc.send_signal(signal.SIGTERM)
        rest = prog.finish()
    steps, passes = map(
        int, re.fullmatch(r"stopped after (\d+) steps and (\d+) passes.*", rest[-1]).groups()
    )  # type: ignore[union-attr]
    assert steps >= second
    # One pass per step plus a few per request: a host that busy-polled would make thousands.
    assert passes < 2 * steps + 40, (steps, passes)


# -- 4. the loop in a background thread ----------------------------------------------------------


def test_thread_example_reports_connections_from_the_main_thread() -> None:
    with program("embed_thread", "--interval", "0.05") as prog:
        address = prog.address()
        assert get(address) == (200, b"hello from reactor-loop\n")
        conn = http.client.HTTPConnection(*address, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello from reactor-loop\n"
        prog.expect(r"^connections: 1$")  # queried on the loop by call_soon_threadsafe
        conn.close()
        prog.expect(r"^connections: 0$")
        prog.proc.send_signal(signal.SIGINT)  # KeyboardInterrupt in the main thread
        rest = prog.finish()
    assert rest[-1] == "stopped: thread joined, loop closed"


# -- 5. several servers on one loop ---------------------------------------------------------------


def test_many_servers_share_one_loop_and_stop_together() -> None:
    with program("embed_many_servers", "--admin-port", "0") as prog:
        app, admin = prog.address(0), prog.address(1)
        assert app != admin
        assert get(app) == (200, b"hello from the app server\n")
        conn = http.client.HTTPConnection(*app, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello from the app server\n"
        status, body = get(admin, "/stats")
        assert status == 200 and json.loads(body) == {"connections": 1, "requests": 2}
        assert get(admin, "/nope")[0] == 404
        assert get(admin, "/stop", "POST") == (200, b"stopping\n")
        rest = prog.finish()
        conn.close()
    assert rest[-1] == "stopped: the app served 2 requests"


# -- 6. started and stopped many times: nothing left behind ---------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def asyncio_futures() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, asyncio.Future))


def snapshot(loop: Loop) -> dict[str, Any]:
    gc.collect()
    counts = {name: n for name, n in count_objects().items() if n}
    return {
        "registered_fds": loop.registered_fds(),
        "pending_timers": loop.pending_timers(),
        "open_fds": open_fds(),
        "objects": counts,
        "asyncio_futures": asyncio_futures(),
    }


def make_handler(loop: Loop, kind: str) -> Any:
    """A plain handler, or an async one that awaits a timer of the loop (a task, a future
    and a timer per request)."""

    async def async_handler(w: ResponseWriter, r: Request) -> None:
        await loop.sleep(0.001)
        w.write(b"async " + r.path.encode())

    def sync_handler(w: ResponseWriter, r: Request) -> None:
        w.write(b"sync " + r.path.encode())

    return async_handler if kind == "async" else sync_handler


def start_request_stop(loop: Loop, handler: Any, i: int) -> bytes:
    """One life of a server on ``loop``: listen, serve one request, shut down; the response."""
    server = Server(handler, loop=loop)
    address = server.listen("127.0.0.1", 0)
    client = socket.create_connection(address, timeout=5)
    try:
        client.sendall(raw_request("GET", f"/{i}", [("Connection", "close")]))
        client.setblocking(False)
        data = bytearray()

        def response_read() -> bool:
            try:
                chunk = client.recv(65536)
            except BlockingIOError:
                return False
            data.extend(chunk)
            return not chunk

        run_until(loop, response_read, step=0.01)
    finally:
        client.close()
    done = server.shutdown(grace=1.0)
    run_until(loop, done.done, step=0.01)
    return bytes(data)


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_start_stop_50_times_on_one_loop_leaves_nothing_behind(backend: str, kind: str) -> None:
    loop = new_loop(backend)
    handler = make_handler(loop, kind)
    try:
        for i in range(3):  # warm-up: first-use caches
            start_request_stop(loop, handler, i)
        before = snapshot(loop)
        assert before["registered_fds"] == 0 and before["pending_timers"] == 0
        for i in range(50):
            response = start_request_stop(loop, handler, i)
            assert response.startswith(b"HTTP/1.1 200 OK\r\n")
            assert response.endswith(f"{kind} /{i}".encode())
        after = snapshot(loop)
        assert after == before
        assert "reactor.server.Server" not in after["objects"]
        assert "reactor.connection.Connection" not in after["objects"]
    finally:
        loop.close()
