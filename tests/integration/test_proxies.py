"""Real nginx and HAProxy in front of ``reactor serve``, each a process of its own with its own
configuration (in the test's temporary directory) on its own loopback port, stopped by its PID
in a ``finally``. The client connects from 127.0.0.2, the proxies from 127.0.0.1, so the
address the app sees says who was believed:

- nginx ``proxy_pass`` with upstream keep-alive over TCP: X-Forwarded-For/-Proto/-Host are
  honoured from the proxy (127.0.0.1, allowed) and not from the client when it comes direct;
  the access log shows the client; --root-path gives SCRIPT_NAME;
- nginx, running as nobody:nogroup, over a Unix socket in a setgid directory of group
  nogroup: --uds-mode 0o660 lets it connect (and 0o600 gives its 502), ``unix`` trusted;
- HAProxy sending PROXY protocol v2: the client's address from the header; a connection
  without one gets 400 and is closed (and, without HAProxy, v1, a split v2 header and the
  timeout over raw sockets);
- a WebSocket (the hijacking echo of docs/examples) through nginx's Upgrade pass-through.

nginx and HAProxy come from Debian (.ci/run installs them).
"""

from __future__ import annotations

import grp
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.test_cli import reactor_serve

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

ENV_APP = """
def app(environ, start_response):
    body = " ".join([
        environ["REMOTE_ADDR"], environ["wsgi.url_scheme"], environ.get("HTTP_HOST", "-"),
        environ["SCRIPT_NAME"] or "-", environ["PATH_INFO"],
    ]).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""

NATIVE_APP = """
def app(w, r):
    host, port = r.remote_addr if isinstance(r.remote_addr, tuple) else (r.remote_addr, 0)
    w.write(("%s %s %s" % (host, r.scheme, r.host)).encode())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}: {log.read_text(errors='replace')}")


@contextmanager
def run_proxy(command: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc, log)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()  # nginx and haproxy: fast stop, workers included
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def nginx_conf(prefix: Path, listen: int, upstream: str, extra: str = "", user: str = "") -> Path:
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    upstream reactor {{
        server {upstream};
        {extra}
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://reactor;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host public.example;
        }}
        location /ws {{
            proxy_pass http://reactor;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 60s;
        }}
    }}
}}
"""
    )
    return conf


def get_from(port: int, path: str = "/", headers: str = "", source: str = "127.0.0.2") -> bytes:
    """One request from ``source`` (another loopback address than the proxies')."""
    with socket.socket() as sock:
        sock.settimeout(5)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: site.test\r\n{headers}Connection: close\r\n\r\n".encode()
        )
        out = b""
        while data := sock.recv(65536):
            out += data
    return out


def body_of(response: bytes) -> bytes:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response
    return body


def test_nginx_over_tcp_with_keepalive(tmp_path: Path) -> None:
    (tmp_path / "envapp.py").write_text(ENV_APP)
    log = tmp_path / "access.log"
    args = ["--wsgi", "envapp:app", "--root-path", "/app", "--access-log", str(log)]
    with reactor_serve(*args, cwd=tmp_path) as served:
        listen = free_port()
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        conf = nginx_conf(prefix, listen, f"127.0.0.1:{served.port}", "keepalive 8;")
        command = [NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
        with run_proxy(command, listen, prefix / "logs" / "stderr.log"):
            answers = [body_of(get_from(listen, f"/app/x{i}")) for i in range(20)]
            assert answers == [b"127.0.0.2 https public.example /app /x%d" % i for i in range(20)]
            # Upstream keep-alive: nginx holds its connection to reactor open between requests
            # (without `keepalive` it would close each one after its response).
            assert established_to(served.port) == 1
            # A client's own X-Forwarded-For is kept left of what nginx adds: not believed.
            spoofed = get_from(listen, "/app/y", "X-Forwarded-For: 6.6.6.6\r\n")
            assert body_of(spoofed) == b"127.0.0.2 https public.example /app /y"
        # Direct, from an address not allowed: the headers are ignored.
        direct = get_from(
            served.port,
            "/app/z",
            "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n",
        )
        assert body_of(direct) == b"127.0.0.2 http site.test /app /z"
        assert get_from(served.port, "/elsewhere").startswith(b"HTTP/1.1 404")
        assert served.stop()[0] == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 23
    assert all(line.startswith("127.0.0.2 - - [") for line in lines), lines[:3]


def established_to(port: int) -> int:
    """TCP connections in state ESTABLISHED whose local port is ``port`` (/proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
            count += 1
    return count


@pytest.fixture
def nogroup_dir() -> Iterator[Path]:
    """A directory nginx's workers (nobody:nogroup) can reach, setgid nogroup, so that a
    socket made in it belongs to group nogroup (as systemd's SocketGroup= would do)."""
    base = Path(tempfile.mkdtemp(prefix="reactor-uds-"))
    try:
        os.chmod(base, 0o755)
        sockets = base / "run"
        sockets.mkdir()
        os.chown(sockets, -1, grp.getgrnam("nogroup").gr_gid)
        os.chmod(sockets, 0o2750)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="needs root: it checks that nginx running as another user (nobody:nogroup) is let "
    "in at --uds-mode 0o660 and refused at 0o600, and only root can start nginx as that user "
    "and give the socket directory to group nogroup (CI and .ci/run run as root; the other "
    "nginx tests run as any user)",
)
def test_nginx_over_a_unix_socket_of_another_group(tmp_path: Path, nogroup_dir: Path) -> None:
    (tmp_path / "app.py").write_text(NATIVE_APP)
    path = nogroup_dir / "run" / "reactor.sock"
    args = ["app:app", "--bind", f"unix:{path}", "--uds-mode", "0o660"]
    args += ["--forwarded-allow-ips", "unix"]
    with reactor_serve(*args, cwd=tmp_path, port0=False) as served:
        assert path.stat().st_gid == grp.getgrnam("nogroup").gr_gid
        listen = free_port()
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        conf = nginx_conf(prefix, listen, f"unix:{path}", user="user nobody nogroup;")
        command = [NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
        with run_proxy(command, listen, prefix / "logs" / "stderr.log"):
            assert body_of(get_from(listen)) == b"127.0.0.2 https public.example"
            os.chmod(path, 0o600)  # what the umask gave before --uds-mode: nginx is refused
            assert get_from(listen).startswith(b"HTTP/1.1 502")
        assert "Permission denied" in (prefix / "logs" / "error.log").read_text()
        assert served.stop()[0] == 0


def test_haproxy_sends_proxy_protocol_v2(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(NATIVE_APP)
    args = ["app:app", "--proxy-protocol", "--forwarded-allow-ips", ""]
    with reactor_serve(*args, cwd=tmp_path) as served:
        listen = free_port()
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(
            f"""
global
    maxconn 64
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend front
    bind 127.0.0.1:{listen}
    default_backend reactor
backend reactor
    server r1 127.0.0.1:{served.port} send-proxy-v2
"""
        )
        command = [HAPROXY, "-f", str(cfg), "-db"]
        with run_proxy(command, listen, tmp_path / "haproxy.log"):
            answers = {body_of(get_from(listen)) for _ in range(10)}
            assert answers == {b"127.0.0.2 None site.test"}
        # Straight to reactor, without a PROXY header: 400, then the connection is closed.
        response = get_from(served.port)
        assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert response.endswith(b"bad PROXY protocol header")
        assert "bad PROXY header from" in served.stderr()
        assert served.stop()[0] == 0


def test_proxy_protocol_v1_timeout_and_split_header(tmp_path: Path) -> None:
    """Without HAProxy: a v1 header sent in the same segment as the request, a v2 header
    sent a byte at a time, and a client that sends nothing within the timeout."""
    (tmp_path / "app.py").write_text(NATIVE_APP)
    args = ["app:app", "--proxy-protocol", "--proxy-protocol-timeout", "0.5"]
    with reactor_serve(*args, cwd=tmp_path) as served:
        request = b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
            sock.sendall(b"PROXY TCP4 198.51.100.9 10.0.0.1 4711 80\r\n" + request)
            assert body_of(read_all(sock)) == b"198.51.100.9 None site.test"
        header = (
            b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"
            + socket.inet_aton("198.51.100.10")
            + socket.inet_aton("10.0.0.1")
            + (4711).to_bytes(2, "big")
            + (80).to_bytes(2, "big")
        )
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
            for i in range(len(header)):
                sock.sendall(header[i : i + 1])
                time.sleep(0.002)
            sock.sendall(request)
            assert body_of(read_all(sock)) == b"198.51.100.10 None site.test"
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
            started = time.monotonic()
            response = read_all(sock)
            waited = time.monotonic() - started
        assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert 0.4 < waited < 3
        assert "timed out" in served.stderr()
        assert served.stop()[0] == 0


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while data := sock.recv(65536):
        out += data
    return out


def test_websocket_through_nginx(tmp_path: Path) -> None:
    """The hijacking WebSocket echo (docs/examples) behind nginx's Upgrade pass-through."""
    from websockets.sync.client import connect

    from docs.examples import websocket_echo
    from tests.examples.test_examples import serve_example

    with serve_example(websocket_echo.make_handler) as srv:
        listen = free_port()
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        conf = nginx_conf(prefix, listen, f"127.0.0.1:{srv.port}", "keepalive 8;")
        command = [NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
        with run_proxy(command, listen, prefix / "logs" / "stderr.log"):
            url = f"ws://127.0.0.1:{listen}/ws"
            with connect(url, proxy=None, open_timeout=5, max_size=1 << 21) as ws:
                ws.send("through nginx")
                assert ws.recv(timeout=5) == "through nginx"
                big = bytes(range(256)) * 4096  # 1 MiB, in many frames and reads
                ws.send(big)
                assert ws.recv(timeout=10) == big
