"""``reactor serve`` as a user runs it: a subprocess (``python -m reactor``) on 127.0.0.1:0,
its printed address, real clients (curl, http.client, urllib3, raw sockets), exit statuses and
signals. Every subprocess is killed in a ``finally``."""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3

import reactor
from reactor.cli import main
from reactor.config import Limits, ServerConfig

CURL = "/usr/bin/curl"
BANNER = re.compile(
    rb"reactor: serving (.+) on http://127\.0\.0\.1:(\d+)/ \((\w+) loop, (.+); Ctrl-C to stop\)"
)


# The package under test, first on the subprocess's path: the command runs in a temporary
# directory, where an install made before the package was complete would resolve ``reactor``
# differently (an editable install records it as a namespace package).
PACKAGE_PARENT = str(Path(reactor.__file__).resolve().parent.parent)


def _env() -> dict[str, str]:
    """The environment of a subprocess: the package under test on the path, and no proxies
    (curl must talk to loopback directly)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    banner: bytes
    stderr_path: Path
    urls: list[str] = dataclasses.field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> tuple[int, bytes]:
        """Send ``sig``; return the exit status and the rest of stdout."""
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The first stdout line, within ``timeout`` seconds (never blocks past it)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no line on stdout within {timeout}s; got {buf!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            data = os.read(fd, 4096)
            if not data:
                raise EOFError(f"stdout closed (exit {proc.wait(5)}); got {buf!r}")
            buf += data
    return buf.split(b"\n", 1)[0]


URLS = re.compile(rb"reactor: serving .+? on (.+) \(\w+ loop, .+; Ctrl-C to stop\)")


@contextmanager
def reactor_serve(
    *args: str, cwd: Path, env: dict[str, str] | None = None, port0: bool = True
) -> Iterator[Served]:
    """Run ``python -m reactor serve --port 0 *args`` in ``cwd`` (without ``--port 0`` if not
    ``port0``); yield once it prints its address (``Served.urls`` has every URL it printed);
    kill it (if still running) when the block ends."""
    stderr_path = cwd.parent / f"stderr-{time.monotonic_ns()}.txt"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", "serve", *(["--port", "0"] if port0 else []), *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**_env(), **(env or {})},
        )
    try:
        try:
            line = _read_line(proc, timeout=10)
        except (TimeoutError, EOFError) as exc:
            raise AssertionError(f"{exc}; stderr: {stderr_path.read_text()}") from None
        urls = URLS.fullmatch(line)
        assert urls is not None, line
        match = BANNER.fullmatch(line)
        port = int(match.group(2)) if match else 0
        served = Served(proc, port, line, stderr_path)
        served.urls = urls.group(1).decode().split(", ")
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def run_cli(*args: str, cwd: Path, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    """Run ``python -m reactor *args`` to completion (for commands that exit by themselves)."""
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [CURL, "-s", "-i", "--noproxy", "*", "--max-time", "5", *args],
        capture_output=True,
        timeout=10,
        env=_env(),
    )


def raw_get(port: int, target: str, method: str = "GET") -> bytes:
    """Send one request with ``target`` exactly as given (clients normalise ``..``) and read
    the response until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        request = f"{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("latin-1"))
        parts = []
        while data := sock.recv(65536):
            parts.append(data)
    return b"".join(parts)


SECRET = b"TOP SECRET CONTENTS"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A document root, with a secret file outside it and a symlink pointing at it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "site"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "<b>&x.txt").write_bytes(b"tricky")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_bytes(b"<h1>docs</h1>\n")
    (root / "out").symlink_to(outside)
    (root / "a").mkdir()
    return root


# -- help and argument errors --------------------------------------------------------------------


def test_help_documents_every_flag(tmp_path: Path) -> None:
    top = run_cli("--help", cwd=tmp_path)
    assert top.returncode == 0
    assert "serve" in top.stdout
    result = run_cli("serve", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for flag in ("--host", "--port", "--root", "--log-level", "--access-log", "APP"):
        assert flag in text
    # Every limit, timeout and switch of ServerConfig (and of its Limits) has a flag.
    names = [f.name for f in dataclasses.fields(ServerConfig) if f.name != "limits"]
    names += [f.name for f in dataclasses.fields(Limits)]
    for name in names:
        assert "--" + name.replace("_", "-") in text, name


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--port", "http"],
        ["serve", "--port", "70000"],
        ["serve", "--idle-timeout", "-1"],
        ["serve", "--read-header-timeout", "soon"],
        ["serve", "--max-body-size", "lots"],
        ["serve", "--no-such-flag"],
        ["serve", "--write-high-water", "1K", "--write-low-water", "1M"],
        ["serve", "--root", "does-not-exist"],
        ["serve", "a:b", "c"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("app", "reason"),
    [
        ("nocolon", "module:callable"),
        (":app", "module:callable"),
        ("mymod:", "module:callable"),
        ("no_such_module_xyz:app", "no_such_module_xyz"),
        ("mymod:missing", "no attribute 'missing'"),
        ("mymod:NOT_CALLABLE", "not a callable"),
        ("brokenmod:app", "ZeroDivisionError"),
        ("needsdep:app", "no_such_dependency_xyz"),
    ],
)
def test_unloadable_app_exits_2_with_one_line(tmp_path: Path, app: str, reason: str) -> None:
    (tmp_path / "mymod.py").write_text("NOT_CALLABLE = 3\ndef app(w, r):\n    w.write(b'x')\n")
    (tmp_path / "brokenmod.py").write_text("x = 1 / 0\n")
    (tmp_path / "needsdep.py").write_text("import no_such_dependency_xyz\n")
    result = run_cli("serve", "--port", "0", app, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert reason in lines[0]
    assert "Traceback" not in result.stderr


def test_main_in_process_reports_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--max-connections", "-3"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--max-connections" in err


# -- serving ---------------------------------------------------------------------------------------


def test_static_files_over_curl_and_http_client(site: Path, tmp_path: Path) -> None:
    with reactor_serve("--root", str(site), cwd=tmp_path) as served:
        assert served.banner.startswith(f"reactor: serving {site.resolve()} on".encode())

        got = curl(served.url + "/hello.txt")
        assert got.returncode == 0
        head, _, body = got.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"\r\nContent-Type: text/plain; charset=utf-8" in head
        assert b"\r\nContent-Length: 13" in head
        assert b"\r\nLast-Modified: " in head
        assert body == b"hello, world\n"

        head_only = curl("-I", served.url + "/hello.txt")
        assert head_only.stdout.startswith(b"HTTP/1.1 200 OK")
        assert head_only.stdout.endswith(b"\r\n\r\n")  # no body after the head
        assert b"Content-Length: 13" in head_only.stdout

        listing = curl(served.url + "/")
        assert b"&lt;b&gt;&amp;x.txt" in listing.stdout
        assert b'href="%3Cb%3E%26x.txt"' in listing.stdout
        assert b"<b>&x" not in listing.stdout
        assert b'href="docs/"' in listing.stdout

        assert curl(served.url + "/docs/").stdout.endswith(b"<h1>docs</h1>\n")
        redirect = curl(served.url + "/docs")
        assert redirect.stdout.startswith(b"HTTP/1.1 301")
        assert b"\r\nLocation: /docs/\r\n" in redirect.stdout

        post = curl("-X", "POST", "-d", "x=1", served.url + "/hello.txt")
        assert post.stdout.startswith(b"HTTP/1.1 405")
        assert b"\r\nAllow: GET, HEAD\r\n" in post.stdout

        assert curl(served.url + "/nope.txt").stdout.startswith(b"HTTP/1.1 404")

        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
        try:
            conn.request("GET", "/%3Cb%3E%26x.txt")
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == b"tricky"
            conn.request("GET", "/hello.txt")  # same keep-alive connection
            response = conn.getresponse()
            assert response.getheader("Content-Length") == "13"
            assert response.read() == b"hello, world\n"
        finally:
            conn.close()

        with urllib3.PoolManager() as pool:
            response = pool.request("GET", served.url + "/docs/index.html", retries=False)
            assert response.status == 200
            assert response.data == b"<h1>docs</h1>\n"
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"


def test_traversal_never_leaves_the_root(site: Path, tmp_path: Path) -> None:
    with reactor_serve("--root", str(site), cwd=tmp_path) as served:
        for target in (
            "/../outside/secret.txt",
            "/../../../../etc/passwd",
            "/a/../../outside/secret.txt",
            "/%2e%2e/outside/secret.txt",
            "/%2E%2E/%2e%2e/etc/passwd",
            "/a%2f..%2f..%2foutside%2fsecret.txt",
            "/out/secret.txt",
            "/out/",
            "/hello.txt%00.html",
        ):
            response = raw_get(served.port, target)
            assert response.startswith(b"HTTP/1.1 403 "), (target, response[:80])
            assert SECRET not in response
            assert b"root:" not in response
        # curl sends the path as given with --path-as-is.
        got = curl("--path-as-is", served.url + "/../outside/secret.txt")
        assert got.stdout.startswith(b"HTTP/1.1 403")
        assert SECRET not in got.stdout


def test_default_root_is_the_current_directory(site: Path) -> None:
    with reactor_serve(cwd=site) as served:
        assert f" {site.resolve()} on ".encode() in served.banner
        assert raw_get(served.port, "/hello.txt").endswith(b"\r\n\r\nhello, world\n")


def test_serves_an_app_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "mymod.py").write_text(
        "def app(w, r):\n"
        "    w.headers.set('Content-Type', 'text/plain')\n"
        "    w.write(b'app saw ' + r.method.encode() + b' ' + r.path.encode())\n"
    )
    with reactor_serve("mymod:app", cwd=tmp_path) as served:
        assert b"serving mymod:app (handler(w, r)) on" in served.banner
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
        try:
            # Connection: close makes the server end the connection itself once the answer is
            # sent, so it is gone before the stop below (with keep-alive, the client's close
            # raced with the signal and the idle connection was sometimes counted drained).
            conn.request("PUT", "/some/where", body=b"data", headers={"Connection": "close"})
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == b"app saw PUT /some/where"
        finally:
            conn.close()
        status, out = served.stop()
        assert status == 0
        assert out == b"reactor: stopped (0 connection(s) drained, 0 closed unfinished)\n"


def test_config_flags_reach_the_server(tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text("def app(w, r):\n    w.write(r.body.read())\n")
    with reactor_serve(
        "echo:app",
        "--max-body-size",
        "16",
        "--server-header",
        "tester",
        "--access-log",
        cwd=tmp_path,
    ) as served:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
        try:
            conn.request("POST", "/small", body=b"0123456789")
            response = conn.getresponse()
            assert response.read() == b"0123456789"
            assert response.getheader("Server") == "tester"
        finally:
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
        try:
            conn.request("POST", "/big", body=b"x" * 17)
            assert conn.getresponse().status == 413
        finally:
            conn.close()
        status, out = served.stop()
        assert status == 0
        # The access log goes to stdout, one Common Log Format line per request.
        lines = out.decode().splitlines()
        assert re.fullmatch(
            r"127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
            r'"POST /small HTTP/1\.1" 200 10',
            lines[0],
        ), lines
        assert '"POST /small' not in served.stderr()


def test_address_in_use_exits_1_with_a_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"reactor: cannot listen on 127.0.0.1:{port}: address already in use"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_gracefully_and_exits_0(
    site: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    with reactor_serve("--root", str(site), cwd=tmp_path) as served:
        # An idle keep-alive connection must not hold the shutdown up.
        idle = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        try:
            idle.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            got = b""
            while not got.endswith(b"hello, world\n"):  # head and body may come apart
                chunk = idle.recv(65536)
                assert chunk, got
                got += chunk
            started = time.monotonic()
            status, out = served.stop(sig)
            assert status == 0
            assert time.monotonic() - started < 3
            # The idle keep-alive connection is closed at once and counts as drained.
            assert out == b"reactor: stopped (1 connection(s) drained, 0 closed unfinished)\n"
            assert idle.recv(1) == b""  # the server closed it
        finally:
            idle.close()
        assert f"{sig.name}: shutting down" in served.stderr()


def test_shutdown_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    (tmp_path / "upload.py").write_text(
        "from reactor import streaming\n"
        "@streaming\n"
        "async def app(w, r):\n"
        "    data = await r.body.read()\n"
        "    w.write(b'got ' + data)\n"
    )
    with reactor_serve("upload:app", cwd=tmp_path) as served:
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab")
            time.sleep(0.2)  # the handler waits for the rest of the body
            served.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)  # the shutdown has started; it must wait for this request
            assert served.proc.poll() is None
            sock.sendall(b"cde")
            response = b""
            while data := sock.recv(65536):
                response += data
        finally:
            sock.close()
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nConnection: close\r\n" in response
        assert response.endswith(b"\r\n\r\ngot abcde")
        assert served.proc.wait(5) == 0
        stderr = served.stderr()
        assert "draining 1 connection(s)" in stderr
        assert "1 connection(s) drained, 0 closed unfinished" in stderr


def test_shutdown_grace_closes_what_did_not_finish(tmp_path: Path) -> None:
    (tmp_path / "upload.py").write_text(
        "from reactor import streaming\n"
        "@streaming\n"
        "async def app(w, r):\n"
        "    w.write(b'got ' + await r.body.read())\n"
    )
    with reactor_serve("upload:app", "--shutdown-grace", "0.3", cwd=tmp_path) as served:
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab")
            time.sleep(0.2)
            started = time.monotonic()
            status, _ = served.stop()
            assert status == 0
            assert 0.25 < time.monotonic() - started < 3
            assert sock.recv(65536) == b""  # closed without a response
        finally:
            sock.close()
        assert "0 connection(s) drained, 1 closed unfinished" in served.stderr()


# -- where to listen, environment variables, access log ------------------------------------------


def _get_over(sock: socket.socket, target: str = "/hello.txt") -> bytes:
    with sock:
        sock.settimeout(5)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while data := sock.recv(65536):
            out += data
    return out


def test_bind_repeatable_tcp_ipv6_and_unix(site: Path, tmp_path: Path) -> None:
    path = tmp_path / "r.sock"
    with reactor_serve(
        "--root",
        str(site),
        "--bind",
        "127.0.0.1:0",
        "--bind",
        "[::1]:0",
        "-b",
        f"unix:{path}",
        cwd=tmp_path,
        port0=False,
    ) as served:
        v4, v6, unix = served.urls
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", v4)
        assert re.fullmatch(r"http://\[::1\]:\d+/", v6)
        assert unix == f"unix:{path}"
        port4 = int(v4.rsplit(":", 1)[1].rstrip("/"))
        port6 = int(v6.rsplit(":", 1)[1].rstrip("/"))
        assert _get_over(socket.create_connection(("127.0.0.1", port4))).endswith(b"world\n")
        six = socket.socket(socket.AF_INET6)
        six.connect(("::1", port6))
        assert _get_over(six).endswith(b"hello, world\n")
        got = curl("-g", f"http://[::1]:{port6}/hello.txt")
        assert got.stdout.endswith(b"\r\n\r\nhello, world\n")
        local = socket.socket(socket.AF_UNIX)
        local.connect(str(path))
        assert _get_over(local).startswith(b"HTTP/1.1 200 OK\r\n")
        got = curl("--unix-socket", str(path), "http://x/hello.txt")
        assert got.stdout.endswith(b"\r\n\r\nhello, world\n")
        status, _ = served.stop()
        assert status == 0
    assert not path.exists()  # the socket file is removed at exit


def test_environment_variables_set_flags_and_the_command_line_wins(
    site: Path, tmp_path: Path
) -> None:
    env = {
        "REACTOR_PORT": "0",
        "REACTOR_ROOT": str(site),
        "REACTOR_SERVER_HEADER": "from-env",
        "REACTOR_ACCESS_LOG": "-",
        "REACTOR_MAX_HEADER_COUNT": "3",
    }
    with reactor_serve(cwd=tmp_path, env=env, port0=False) as served:
        got = curl(served.url + "/hello.txt")
        assert b"\r\nServer: from-env\r\n" in got.stdout
        assert got.stdout.endswith(b"hello, world\n")
        many = curl("-H", "A: 1", "-H", "B: 2", "-H", "C: 3", served.url + "/hello.txt")
        assert many.stdout.startswith(b"HTTP/1.1 431")
        _, out = served.stop()
        assert b'"GET /hello.txt HTTP/1.1" 200 13' in out  # REACTOR_ACCESS_LOG=-: stdout
    with reactor_serve("--server-header", "from-cli", cwd=tmp_path, env=env) as served:
        assert b"\r\nServer: from-cli\r\n" in curl(served.url + "/hello.txt").stdout


@pytest.mark.parametrize(
    ("env", "args", "needle"),
    [
        ({"REACTOR_PORT": "http"}, [], "--port"),
        ({"REACTOR_ACCESS_LOG_FORMAT": "fancy"}, [], "--access-log-format"),
        ({"REACTOR_NO_SERVER_HEADER": "maybe"}, [], "REACTOR_NO_SERVER_HEADER"),
        ({}, ["--bind", "127.0.0.1"], "HOST:PORT"),
        ({}, ["--bind", "::1:80"], "brackets"),
        ({}, ["--bind", "127.0.0.1:0", "--port", "0"], "--host/--port"),
        ({}, ["--keyfile", "k.pem"], "--certfile"),
        ({}, ["--workers", "-1"], "--workers"),
    ],
)
def test_bad_environment_and_bind_exit_2(
    tmp_path: Path, env: dict[str, str], args: list[str], needle: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reactor", "serve", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
        env={**_env(), **env},
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert needle in result.stderr


def test_bind_address_in_use_exits_1(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--bind", "127.0.0.1:0", "--bind", f"[::1]:{port}", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"reactor: cannot listen on [::1]:{port}: address already in use"
    )


def test_access_log_to_a_file_in_combined_format(site: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    with reactor_serve(
        "--root",
        str(site),
        "--access-log",
        str(log_path),
        "--access-log-format",
        "combined",
        cwd=tmp_path,
    ) as served:
        curl(served.url + "/hello.txt")
        curl(served.url + "/nope")
        _, out = served.stop()
    assert b"GET" not in out  # the file, not stdout
    lines = log_path.read_text().splitlines()
    assert len(lines) == 2
    pattern = r'127\.0\.0\.1 - - \[[^]]+\] "GET {} HTTP/1\.1" {} \S+ "[^"]*" "[^"]*"'
    assert re.fullmatch(pattern.format("/hello.txt", 200), lines[0]), lines[0]
    assert re.fullmatch(pattern.format("/nope", 404), lines[1]), lines[1]


def test_access_formatter_combined_fields() -> None:
    import logging

    from reactor.cli import AccessFormatter

    record = logging.LogRecord(
        "reactor.access", 20, "", 0, '1.2.3.4 - - "GET / HTTP/1.1"', (), None
    )
    assert AccessFormatter().format(record) == '1.2.3.4 - - "GET / HTTP/1.1"'
    assert AccessFormatter(combined=True).format(record).endswith('"GET / HTTP/1.1" "-" "-"')
    record.referer = "http://a/"
    record.user_agent = 'curl/8 "quoted"'
    assert (
        AccessFormatter(combined=True)
        .format(record)
        .endswith('"GET / HTTP/1.1" "http://a/" "curl/8 \\"quoted\\""')
    )


def test_loop_asyncio_serves(site: Path, tmp_path: Path) -> None:
    with reactor_serve("--root", str(site), "--loop", "asyncio", cwd=tmp_path) as served:
        assert b"(asyncio loop, 1 process;" in served.banner
        assert curl(served.url + "/hello.txt").stdout.endswith(b"hello, world\n")
        status, _ = served.stop()
        assert status == 0


def test_leakcheck_is_a_subcommand(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert "leakcheck" in result.stdout
    result = run_cli("leakcheck", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "APP" in result.stdout


@pytest.mark.parametrize("flag", [[], ["--stall-warning", "0"]], ids=["default", "off"])
def test_a_handler_that_blocks_the_loop_is_named_in_a_warning(
    tmp_path: Path, flag: list[str]
) -> None:
    """Issue 11: a handler that blocks the loop stops every connection, invisibly. reactor
    serve warns after --stall-warning seconds (default 0.5) and names the handler;
    --stall-warning 0 turns it off."""
    (tmp_path / "slowapp.py").write_text(
        "import time\ndef handler(w, r):\n    time.sleep(1.2)\n    w.write(b'late')\n"
    )
    with reactor_serve("slowapp:handler", *flag, cwd=tmp_path) as served:
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.endswith(b"late")
        time.sleep(0.2)
        stderr = served.stderr()
    if flag:
        assert "no callback" not in stderr
    else:
        assert "has run no callback" in stderr and "handler (" in stderr
        assert "slowapp.py" in stderr


def test_a_missing_certificate_is_an_environment_error_exit_1(tmp_path: Path) -> None:
    """Issue 13: start-up errors exit 2 for usage and 1 for the environment; a certificate
    file that is not there is the machine's state, not a wrong command line."""
    result = subprocess.run(
        [sys.executable, "-m", "reactor", "serve", "--certfile", "missing.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
        env=_env(),
    )
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "missing.pem" in result.stderr
