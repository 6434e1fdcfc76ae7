"""``reactor serve --config reactor.toml`` and ``--print-config``: every flag has a key, the
precedence is flags > REACTOR_* > file > defaults, a real server takes its settings from the
file, and a bad file is one line with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_cli import _env, curl, reactor_serve


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactor", "serve", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=10,
        env={**_env(), **(env or {})},
    )


def test_print_config_shows_precedence_and_sources(tmp_path: Path) -> None:
    (tmp_path / "reactor.toml").write_text(
        'app = "mod:app"\n'
        "max_requests = 5\n"
        "max-requests-jitter = 2\n"
        "idle_timeout = 12.5\n"
        'bind = ["127.0.0.1:8001", "unix:/tmp/r.sock"]\n'
        "access_log = true\n"
        'uds_mode = "0o660"\n'
        "no_server_header = true\n"
    )
    result = run(
        "--config",
        "reactor.toml",
        "--print-config",
        "--max-requests-jitter",
        "9",
        cwd=tmp_path,
        env={"REACTOR_MAX_REQUESTS": "7", "REACTOR_WORKERS": "3"},
    )
    assert result.returncode == 0, result.stderr
    lines = set(result.stdout.splitlines())
    for line in (
        'app = "mod:app"  # file',
        "max_requests = 7  # environment",
        "max_requests_jitter = 9  # flag",
        "workers = 3  # environment",
        "idle_timeout = 12.5  # file",
        'bind = ["127.0.0.1:8001", "unix:/tmp/r.sock"]  # file',
        'access_log = "-"  # file',
        'uds_mode = "0o660"  # file',
        "no_server_header = true  # file",
        'loop = "auto"  # default',
        "# port =  (not set)",
    ):
        assert line in lines, (line, result.stdout)
    # What it printed is a configuration file that says the same.
    (tmp_path / "again.toml").write_text(result.stdout)
    again = run("--config", "again.toml", "--print-config", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "max_requests = 7  # file" in again.stdout
    assert 'uds_mode = "0o660"  # file' in again.stdout


def test_a_server_configured_by_its_file(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello\n")
    (tmp_path / "reactor.toml").write_text(
        f'root = "{site}"\nport = 0\nmax_header_count = 3\nserver_header = "from-file"\n'
    )
    with reactor_serve("--config", "reactor.toml", cwd=tmp_path, port0=False) as served:
        got = curl(served.url + "/hello.txt")
        assert got.stdout.endswith(b"hello\n")
        assert b"\r\nServer: from-file\r\n" in got.stdout
        many = curl("-H", "A: 1", "-H", "B: 2", "-H", "C: 3", served.url + "/hello.txt")
        assert many.stdout.startswith(b"HTTP/1.1 431")
        assert served.stop()[0] == 0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("colour = 3\n", "unknown key 'colour'"),
        ("port = [1, 2]\n", "port takes one value, not a list"),
        ("workers = true\n", "workers takes a value, not True"),
        ("no_server_header = 1\n", "no_server_header is a switch: true or false"),
        ("port = \n", "not TOML"),
        ("port = 99999\n", "not a TCP port"),
        ("config = 'other.toml'\n", "unknown key 'config'"),
        (None, "--config 'reactor.toml': cannot read it: No such file"),
    ],
)
def test_bad_config_files_are_one_line(tmp_path: Path, text: str | None, needle: str) -> None:
    if text is not None:  # None: no file at all
        (tmp_path / "reactor.toml").write_text(text)
    result = run("--config", "reactor.toml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert needle in result.stderr
