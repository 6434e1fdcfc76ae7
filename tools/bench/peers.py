"""The servers of the benchmark: how each one is started, checked, measured and stopped.

Owns the peer table (reactor's three variants and the peers), availability checks (a peer
whose packages, reactor module or ``go`` is missing is skipped with the reason), starting one
server process pinned to a core in its own session on a free loopback port, waiting until it
answers, checking every route once, reading its RSS from /proc, and killing its whole process
group (gunicorn's worker too) however the run ends. It runs no load (run.py and wrkrun.py do).
Tests: tests/test_bench_tools.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
ROOT = HERE.parent.parent
HELLO = b"Hello, World!"
PR_SET_PDEATHSIG = 1


@dataclass
class Context:
    """What every peer command needs: the Python of the peers' venv, the www directory,
    the build directory and the core the server is pinned to."""

    python: str
    build: Path
    www: Path
    server_cpu: int | None = 0
    go_binary: Path | None = None

    @property
    def logs(self) -> Path:
        return self.build / "logs"


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    command: Callable[[Context, int], list[str]]
    #: Python code that must import in the peers' venv (None: not a Python server).
    probe: str | None = None
    reactor: bool = False  # needs the source tree on PYTHONPATH
    env: dict[str, str] = field(default_factory=dict)
    #: The scenarios it serves (None: every one); a reference, not a server, when set: it
    #: has no memory measurement and only these routes are checked.
    scenarios: tuple[str, ...] | None = None

    def serves(self, scenario: str) -> bool:
        return self.scenarios is None or scenario in self.scenarios


def _py(ctx: Context, *args: str) -> list[str]:
    return [ctx.python, *args]


def _reactor(variant: str) -> Callable[[Context, int], list[str]]:
    def command(ctx: Context, port: int) -> list[str]:
        script = str(APPS / "reactor_app.py")
        return _py(ctx, script, "--variant", variant, "--port", str(port), "--www", str(ctx.www))

    return command


def _uvicorn(ctx: Context, port: int) -> list[str]:
    return _py(
        ctx, "-m", "uvicorn", "asgi_app:app", "--app-dir", str(APPS), "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        "--log-level", "warning", "--timeout-keep-alive", "600", "--backlog", "4096",
    )  # fmt: skip


def _gunicorn(ctx: Context, port: int) -> list[str]:
    return _py(
        ctx, "-m", "gunicorn", "--chdir", str(APPS), "-w", "1", "-k", "gthread",
        "--threads", "4", "--worker-connections", "20000", "--keep-alive", "600",
        "--backlog", "4096", "--log-level", "warning", "-b", f"127.0.0.1:{port}",
        "wsgi_app:app",
    )  # fmt: skip


def _waitress(ctx: Context, port: int) -> list[str]:
    return _py(
        ctx, "-m", "waitress", "--threads=4", "--listen", f"127.0.0.1:{port}",
        "--backlog=4096", "--connection-limit=20000", "--channel-timeout=600",
        "wsgi_app:app",
    )  # fmt: skip


def _script(name: str) -> Callable[[Context, int], list[str]]:
    def command(ctx: Context, port: int) -> list[str]:
        return _py(ctx, str(APPS / name), "--port", str(port), "--www", str(ctx.www))

    return command


def _go(ctx: Context, port: int) -> list[str]:
    assert ctx.go_binary is not None
    return [str(ctx.go_binary), "-port", str(port), "-www", str(ctx.www)]


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("reactor", "reactor (selectors)", _reactor("selectors"), "import reactor", True),
        Peer(
            "reactor-asyncio",
            "reactor (asyncio backend)",
            _reactor("asyncio"),
            "from reactor.loop import new_loop; new_loop('asyncio').close()",
            True,
        ),
        Peer(
            "reactor-uvloop",
            "reactor (uvloop backend)",
            _reactor("uvloop"),
            "import uvloop; from reactor.loop.asyncio_loop import AsyncioLoop; "
            "from reactor.loop import new_loop; new_loop('uvloop').close()",
            True,
        ),
        Peer(
            "reactor-wsgi",
            "reactor WSGIHandler",
            _reactor("wsgi"),
            "from reactor.wsgi import WSGIHandler",
            True,
        ),
        Peer(
            "reactor-wsgi-threads",
            "reactor ThreadedWSGIHandler (4 threads)",
            _reactor("wsgi-threads"),
            "from reactor.wsgi_threaded import ThreadedWSGIHandler",
            True,
        ),
        Peer(
            "reactor-asgi",
            "reactor ASGIHandler (uvloop backend)",
            _reactor("asgi"),
            "import uvloop; from reactor.asgi import ASGIHandler",
            True,
        ),
        Peer(
            "uvicorn", "uvicorn (httptools + uvloop)", _uvicorn, "import uvicorn, httptools, uvloop"
        ),
        Peer(
            "waitress",
            "waitress (4 threads)",
            _waitress,
            "import waitress",
            env={"PYTHONPATH": str(APPS)},
        ),
        Peer("aiohttp", "aiohttp (uvloop)", _script("aiohttp_app.py"), "import aiohttp, uvloop"),
        Peer("tornado", "Tornado", _script("tornado_app.py"), "import tornado"),
        Peer("gunicorn", "gunicorn gthread (4 threads)", _gunicorn, "import gunicorn"),
        Peer("stdlib", "http.server ThreadingHTTPServer", _script("stdlib_app.py"), "import http"),
        Peer("go", "Go net/http (GOMAXPROCS=1)", _go, None, env={"GOMAXPROCS": "1"}),
        Peer(
            "floor",
            "floor: a selectors loop answering constants (no HTTP; a reference)",
            _script("floor_app.py"),
            "import selectors",
            scenarios=("hello", "latency", "pipeline", "64k"),
        ),
    )
}


def peer_env(peer: Peer, ctx: Context) -> dict[str, str]:
    env = dict(os.environ)
    env["BENCH_WWW"] = str(ctx.www)
    env["PYTHONUNBUFFERED"] = "1"
    if peer.reactor:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(peer.env)
    return env


def build_go(ctx: Context) -> str | None:
    """Build the Go server when ``go`` is present; returns the reason it is skipped, or None."""
    go = shutil.which("go")
    if go is None:
        return "`go` not found on PATH"
    out = ctx.build / "go-hello"
    src = HERE / "go" / "main.go"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        proc = subprocess.run(
            [go, "build", "-o", str(out), str(src)], capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            return f"go build failed: {proc.stderr.strip()[:300]}"
    ctx.go_binary = out
    return None


def unavailable(peer: Peer, ctx: Context) -> str | None:
    """Why ``peer`` cannot run here (None: it can)."""
    if peer.name == "go":
        return build_go(ctx)
    if peer.probe is None:
        return None
    proc = subprocess.run(
        [ctx.python, "-c", peer.probe],
        capture_output=True,
        text=True,
        env=peer_env(peer, ctx),
        timeout=60,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"not available ({last})"
    return None


def raise_nofile() -> None:
    """In the child before exec: soft RLIMIT_NOFILE up to the hard limit, and SIGKILL when
    the benchmark dies (PR_SET_PDEATHSIG), so that not even a killed run leaves a server."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, *, body: bytes | None = None, timeout: float = 5.0) -> bytes:
    """One request on a fresh connection; returns the body (raises OSError/ValueError)."""
    method = "GET" if body is None else "POST"
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode() + b"\r\n" + (body or b""))
        data = bytearray()
        while chunk := s.recv(1 << 16):
            data += chunk
    head_bytes, sep, rest = bytes(data).partition(b"\r\n\r\n")
    if not sep or not head_bytes.startswith(b"HTTP/1.1 200"):
        raise ValueError(f"{path}: {head_bytes[:80]!r}")
    lower = head_bytes.lower()
    if b"transfer-encoding: chunked" in lower:
        out = bytearray()
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return bytes(out)
            out += rest[:size]
            rest = rest[size + 2 :]
    return rest


@dataclass
class Running:
    peer: Peer
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def group_pids(self) -> list[int]:
        """The server and its children (its process group, which it leads)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            if len(fields) > 2 and int(fields[2]) == self.pid:
                pids.append(int(entry))
        return pids

    def rss_kib(self) -> int:
        """Resident set size of the server's process group, in KiB (VmRSS from /proc)."""
        total = 0
        for pid in self.group_pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
                            break
            except OSError:
                continue
        return total

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 5 s."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        # Children (gunicorn's worker) may outlive the leader: the group goes.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class StartError(RuntimeError):
    pass


def start(peer: Peer, ctx: Context, *, tag: str = "") -> Running:
    """Start ``peer`` on a free loopback port, pinned to ``ctx.server_cpu``; returns once it
    answers ``GET /`` with ``Hello, World!`` (StartError with its log otherwise)."""
    ctx.logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = peer.command(ctx, port)
    if ctx.server_cpu is not None:
        argv = ["taskset", "-c", str(ctx.server_cpu), *argv]
    log_path = ctx.logs / f"{peer.name}{tag}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=peer_env(peer, ctx),
            start_new_session=True,
            preexec_fn=raise_nofile,
        )
    running = Running(peer, port, proc, log_path)
    deadline = time.monotonic() + 30
    error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            body = http_get(port, "/", timeout=2)
        except (OSError, ValueError) as exc:
            error = exc
            time.sleep(0.05)
            continue
        if body == HELLO:
            return running
        error = ValueError(f"GET / answered {body[:60]!r}")
        break
    running.stop()
    raise StartError(f"{peer.name} did not start ({error}):\n{running.log_tail()}")


def check_routes(running: Running) -> list[str]:
    """Every route of the scenarios it serves, once; returns the problems found (empty: all
    good)."""
    problems = []
    checks: list[tuple[str, str, bytes | None, Callable[[bytes], bool]]] = [
        ("64k", "/64k", None, lambda b: len(b) == 65536),
        ("post", "/post", b"x" * 1024, lambda b: b.strip() == b"1024"),
        ("static", "/static/1m.bin", None, lambda b: len(b) == 1 << 20),
    ]
    for scenario, path, body, ok in checks:
        if not running.peer.serves(scenario):
            continue
        try:
            got = http_get(running.port, path, body=body, timeout=10)
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        if not ok(got):
            problems.append(f"{path}: unexpected body of {len(got)} bytes: {got[:40]!r}")
    return problems


def package_versions(python: str) -> dict[str, str]:
    """Versions of the peers' packages in ``python``'s environment."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        "for n in ('uvicorn', 'httptools', 'uvloop', 'aiohttp', 'tornado', 'gunicorn',"
        " 'matplotlib'):\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    import json

    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
        versions: dict[str, str] = json.loads(proc.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        versions = {"python": sys.version.split()[0]}
    go = shutil.which("go")
    if go is not None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            out = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30)
            versions["go"] = out.stdout.split()[2] if out.stdout.count(" ") >= 2 else "?"
    return versions
