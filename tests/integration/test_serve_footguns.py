"""``reactor serve``'s traps for a new user, closed: a flag that would take APP as its file
name, REACTOR_ACCESS_LOG=yes, dotfiles and .md files served by the static default, start-up
errors that must be one line naming the file (access log, certificate, key), an unknown flag
pointing to ``reactor serve --help``, and log lines printed twice because reactor configured
the root logger. Real subprocesses (``python -m reactor``), killed in a ``finally``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_cli import _env, curl, reactor_serve, run_cli

HELLO_APP = "def app(w, r):\n    w.write(b'hello from app')\n"


def run_serve(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactor", "serve", "--port", "0", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=10,
        env={**_env(), **(env or {})},
    )


def one_error_line(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """The one stderr line of a start-up error: status 2 for usage, 1 for the environment
    (a file that cannot be written or read, a certificate that does not match)."""
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


# -- the access log ------------------------------------------------------------------------------


def test_access_log_flag_does_not_eat_the_app(tmp_path: Path) -> None:
    (tmp_path / "flaskapp.py").write_text(HELLO_APP)
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    line = one_error_line(run_serve("--access-log", "flaskapp:app", cwd=tmp_path))
    assert "--access-log 'flaskapp:app' looks like an application" in line
    assert "--access-log=-" in line
    assert not (tmp_path / "flaskapp:app").exists()
    # Written the other way round, it serves the app and logs to stdout.
    with reactor_serve("flaskapp:app", "--access-log", cwd=tmp_path) as served:
        assert curl(served.url + "/").stdout.endswith(b"hello from app")
        status, out = served.stop()
    assert status == 0
    assert b'"GET / HTTP/1.1" 200' in out


@pytest.mark.parametrize(("value", "logged"), [("yes", True), ("1", True), ("no", False)])
def test_access_log_variable_takes_yes_and_no(tmp_path: Path, value: str, logged: bool) -> None:
    (tmp_path / "flaskapp.py").write_text(HELLO_APP)
    env = {"REACTOR_ACCESS_LOG": value}
    with reactor_serve("flaskapp:app", cwd=tmp_path, env=env) as served:
        assert curl(served.url + "/").stdout.endswith(b"hello from app")
        status, out = served.stop()
    assert status == 0
    assert (b'"GET / HTTP/1.1" 200' in out) == logged
    assert not (tmp_path / value).exists()


def test_unwritable_access_log_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(run_serve("--access-log", "/nonexistent/dir/a.log", cwd=tmp_path), 1)
    assert "--access-log '/nonexistent/dir/a.log': cannot open it for appending" in line
    assert "No such file or directory" in line


# -- certificates --------------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pems")
    for name in ("a", "b"):
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(d / f"{name}-key.pem"), "-out", str(d / f"{name}-cert.pem"),
            "-days", "2", "-subj", "/CN=localhost",
        )  # fmt: skip
    return d


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--certfile", "missing.pem"], "--certfile 'missing.pem': cannot read it: No such file"),
        (["--certfile", "{d}/a-key.pem"], "a-key.pem' holds no PEM certificate"),
        (["--certfile", "{d}/a-cert.pem"], "holds no private key: give its key with --keyfile"),
        (
            ["--certfile", "{d}/a-cert.pem", "--keyfile", "nokey.pem"],
            "--keyfile 'nokey.pem': cannot read it",
        ),
        (
            ["--certfile", "{d}/a-cert.pem", "--keyfile", "{d}/b-cert.pem"],
            "b-cert.pem' holds no PEM private key",
        ),
        (
            ["--certfile", "{d}/a-cert.pem", "--keyfile", "{d}/b-key.pem"],
            "b-key.pem' does not match the certificate in",
        ),
    ],
)
def test_certificate_problems_name_the_file(
    pems: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    args = [a.format(d=pems) for a in args]
    line = one_error_line(run_serve(*args, cwd=tmp_path), 1)
    assert needle in line


def test_matching_certificate_and_key_serve(pems: Path, tmp_path: Path) -> None:
    certfile, keyfile = str(pems / "a-cert.pem"), str(pems / "a-key.pem")
    with reactor_serve("--certfile", certfile, "--keyfile", keyfile, cwd=tmp_path) as served:
        assert served.urls[0].startswith("https://127.0.0.1:")
        got = curl("-k", served.urls[0])
        assert got.stdout.startswith(b"HTTP/1.1 200"), got


# -- flags ---------------------------------------------------------------------------------------


def test_unknown_flag_points_to_serve_help(tmp_path: Path) -> None:
    line = one_error_line(run_serve("--no-such-flag", cwd=tmp_path))
    assert "unrecognized arguments: --no-such-flag" in line
    assert "reactor serve --help" in line
    top = run_cli("--no-such-flag", cwd=tmp_path)
    assert top.returncode == 2
    assert "reactor --help" in top.stderr


# -- static defaults -----------------------------------------------------------------------------


def test_serving_a_checkout_does_not_serve_git_or_env(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[remote]\nurl = secret\n")
    (tmp_path / ".env").write_text("TOKEN=secret\n")
    (tmp_path / "README.md").write_text("# hi\n")
    with reactor_serve(cwd=tmp_path) as served:
        for path in ("/.git/config", "/.env", "/.git/"):
            got = curl(served.url + path)
            assert got.stdout.startswith(b"HTTP/1.1 404"), (path, got.stdout)
            assert b"secret" not in got.stdout
        listing = curl(served.url + "/").stdout
        assert b"README.md" in listing and b".git" not in listing and b".env" not in listing
        readme = curl(served.url + "/README.md").stdout
        assert b"\r\nContent-Type: text/markdown; charset=utf-8\r\n" in readme
    with reactor_serve("--dotfiles", "allow", cwd=tmp_path) as served:
        assert curl(served.url + "/.env").stdout.endswith(b"TOKEN=secret\n")


# -- logging -------------------------------------------------------------------------------------

LOGGING_APP = """
import logging, sys, warnings
# As Flask does for app.logger: a handler on the app's own logger, which propagates.
log = logging.getLogger("myapp")
handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter("myapp-handler %(message)s"))
log.addHandler(handler)

def app(w, r):
    log.warning("line-from-the-app")
    warnings.warn("warning-from-the-app", UserWarning, stacklevel=1)
    w.write(b"ok")
"""


def test_log_lines_appear_once(tmp_path: Path) -> None:
    (tmp_path / "logapp.py").write_text(LOGGING_APP)
    with reactor_serve("logapp:app", cwd=tmp_path, env={"PYTHONWARNINGS": "always"}) as served:
        assert curl(served.url + "/").stdout.endswith(b"ok")
        assert served.stop()[0] == 0
    err = served.stderr()
    assert err.count("line-from-the-app") == 1, err
    assert err.count("UserWarning: warning-from-the-app") == 1, err
    assert err.count("listening on") == 1, err


# -- listening -----------------------------------------------------------------------------------


def test_listen_errors_say_what_to_do(tmp_path: Path) -> None:
    import errno

    from reactor.listeners import listen_error
    from reactor.run import Bind

    denied = OSError(errno.EACCES, "Permission denied")
    line = listen_error(Bind("0.0.0.0", 80), denied)
    assert line.startswith("reactor: cannot listen on 0.0.0.0:80: port 80 is privileged")
    assert "CAP_NET_BIND_SERVICE" in line and "LISTEN_FDS" in line
    assert listen_error(Bind(path="/x.sock"), denied).endswith(": Permission denied")
    missing = OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
    assert listen_error(Bind("192.0.2.1", 8080), missing) == (
        "reactor: cannot listen on 192.0.2.1:8080: 192.0.2.1 is not an address of this machine"
    )


def test_static_mount_beside_an_app(tmp_path: Path) -> None:
    (tmp_path / "flaskapp.py").write_text(HELLO_APP)
    public = tmp_path / "public"
    public.mkdir()
    (public / "style.css").write_text("body{}")
    (public / ".env").write_text("SECRET")
    with reactor_serve("flaskapp:app", "--static", "/assets=public", cwd=tmp_path) as served:
        css = curl(served.url + "/assets/style.css").stdout
        assert css.endswith(b"body{}") and b"Content-Type: text/css" in css
        assert curl(served.url + "/assets/.env").stdout.startswith(b"HTTP/1.1 404")
        assert curl(served.url + "/other").stdout.endswith(b"hello from app")
    for bad, reason in (("assets=public", "PREFIX like /assets"), ("/a=nope", "not a directory")):
        line = one_error_line(run_serve("flaskapp:app", "--static", bad, cwd=tmp_path))
        assert reason in line


def test_unwritable_pid_file_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(run_serve("--pid", "/nonexistent/dir/r.pid", cwd=tmp_path), 1)
    assert "--pid '/nonexistent/dir/r.pid': cannot write it: No such file or directory" in line
