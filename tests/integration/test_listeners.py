"""Sockets reactor serve did not bind itself (--fd N, systemd's LISTEN_FDS), the mode of the
Unix sockets it did (--uds-mode) and --backlog: the parsers socketless, the rest over real
subprocesses on 127.0.0.1 and a Unix socket in a temporary directory, killed in a
``finally``."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reactor.listeners import NotAListener, adopt_fd, parse_mode, systemd_sockets
from tests.integration.test_cli import URLS, _env, _read_line, curl


def test_parse_mode() -> None:
    assert parse_mode("660") == parse_mode("0660") == parse_mode("0o660") == 0o660
    for bad in ("", "999", "0o8", "rw-rw----", "77777"):
        with pytest.raises(ValueError, match="octal"):
            parse_mode(bad)


def test_adopt_fd_refuses_what_is_not_a_listener(tmp_path: Path) -> None:
    with socket.socket() as unbound, open(tmp_path / "f", "w") as file:
        for fd, reason in (
            (unbound.fileno(), "not a listening stream socket"),
            (file.fileno(), "not a socket"),
            (9999, "not open"),
        ):
            with pytest.raises(NotAListener, match=reason):
                adopt_fd(fd)
        assert unbound.fileno() >= 0  # left open: not ours


def test_systemd_sockets_only_for_this_process() -> None:
    environ = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "OTHER": "x"}
    assert systemd_sockets(environ) == []
    assert environ == {"OTHER": "x"}  # the variables are not passed on


def _serve_with(
    command: list[str], cwd: Path, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        pass_fds=pass_fds,
    )


def _stop(proc: subprocess.Popen[bytes]) -> bytes:
    if proc.poll() is None:
        proc.terminate()
    _, err = proc.communicate(timeout=10)
    return err


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello\n")
    return site


@pytest.mark.parametrize("how", ["--fd", "systemd"])
def test_inherited_listening_socket_is_served(tmp_path: Path, how: str) -> None:
    site = _site(tmp_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        fd = listener.fileno()
        serve = [sys.executable, "-m", "reactor", "serve", "--root", str(site)]
        if how == "--fd":
            command = [*serve, "--fd", str(fd)]
        else:  # as systemd does: the socket on fd 3, LISTEN_PID the server's pid (exec keeps it)
            launcher = (
                "import os, sys\n"
                f"os.dup2({fd}, 3)\n"
                "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')\n"
                "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
            )
            command = [sys.executable, "-c", launcher, *serve[1:]]
        proc = _serve_with(command, tmp_path, pass_fds=(fd,))
        try:
            try:
                line = _read_line(proc, timeout=10)
            except (TimeoutError, EOFError) as exc:
                raise AssertionError(f"{exc}: {_stop(proc)!r}") from None
            match = URLS.fullmatch(line)
            assert match is not None, line
            assert match.group(1).decode() == f"http://127.0.0.1:{port}/"  # no 127.0.0.1:8080
            got = curl(f"http://127.0.0.1:{port}/hello.txt")
            assert got.stdout.endswith(b"\r\n\r\nhello\n"), got
        finally:
            err = _stop(proc)
        assert proc.returncode == 0, err


def test_fd_that_is_not_a_listener_exits_2(tmp_path: Path) -> None:
    with socket.socket() as unbound:
        fd = unbound.fileno()
        proc = _serve_with(
            [sys.executable, "-m", "reactor", "serve", "--fd", str(fd)], tmp_path, (fd,)
        )
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    expected = f"--fd {fd}: descriptor {fd} is not a listening stream socket"
    assert err.decode().count("\n") == 1, err
    assert expected in err.decode()


def test_uds_mode_sets_the_socket_permissions(tmp_path: Path) -> None:
    site = _site(tmp_path)
    path = tmp_path / "r.sock"
    command = [sys.executable, "-m", "reactor", "serve", "--root", str(site)]
    command += ["--bind", f"unix:{path}", "--uds-mode", "0o660", "--backlog", "8"]
    proc = _serve_with(command, tmp_path)
    try:
        line = _read_line(proc, timeout=10)
        assert f"unix:{path}".encode() in line
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        got = curl("--unix-socket", str(path), "http://x/hello.txt")
        assert got.stdout.endswith(b"\r\n\r\nhello\n")
    finally:
        err = _stop(proc)
    assert proc.returncode == 0, err
    bad = subprocess.run(
        [sys.executable, "-m", "reactor", "serve", "--uds-mode", "rw-rw----"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
        env=_env(),
    )
    assert bad.returncode == 2
    assert "not an octal file mode" in bad.stderr
