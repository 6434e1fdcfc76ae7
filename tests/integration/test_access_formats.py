"""``--access-log-format`` with gunicorn's atoms (the request time in microseconds among
them) and ``json``, the formatter fed records directly, and ``--log-config`` (a dictConfig
file in JSON or TOML) on a real ``reactor serve``."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reactor.clilog import AccessFormatter, check_access_format
from tests.integration.test_cli import _env, curl, reactor_serve

SLOW_APP = """
import time

def app(w, r):
    time.sleep(0.05)
    w.write(b"slow")
"""


def test_atoms_template_with_request_time(tmp_path: Path) -> None:
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    log = tmp_path / "access.log"
    template = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(B)s %(D)s %(M)s %({x-request-id}i)s %(q)s %(p)s'
    args = ["slowapp:app", "--access-log", str(log), "--access-log-format", template]
    with reactor_serve(*args, cwd=tmp_path) as served:
        curl("-H", "X-Request-Id: abc-123", served.url + "/p?x=1")
        curl(served.url + "/q")
        assert served.stop()[0] == 0
    first, second = log.read_text().splitlines()
    pattern = (
        r'127\.0\.0\.1 \[[^]]+\] "GET /p\?x=1 HTTP/1\.1" 200 4 4 (\d+) (\d+) abc-123 x=1 (\d+)'
    )
    match = re.fullmatch(pattern, first)
    assert match is not None, first
    micros, millis = int(match.group(1)), int(match.group(2))
    assert 50_000 <= micros < 5_000_000
    assert millis == micros // 1000
    assert int(match.group(3)) != 0  # the worker's pid
    assert ' "GET /q HTTP/1.1" 200 4 4 ' in second and " - " in second  # no header: -


def test_json_lines(tmp_path: Path) -> None:
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    args = ["slowapp:app", "--access-log", "--access-log-format", "json"]
    with reactor_serve(*args, cwd=tmp_path) as served:
        curl("-A", 'agent "quoted"', served.url + "/j?k=v")
        _, out = served.stop()
    entry = json.loads(next(x for x in out.decode().splitlines() if x.startswith("{")))
    assert entry["remote_addr"] == "127.0.0.1"
    assert (entry["method"], entry["path"], entry["query"]) == ("GET", "/j", "k=v")
    assert (entry["status"], entry["bytes"], entry["protocol"]) == (200, 4, "HTTP/1.1")
    assert entry["user_agent"] == 'agent "quoted"'
    assert entry["request_time_us"] >= 50_000


def test_rejected_request_formats() -> None:
    record = logging.LogRecord("reactor.access", 20, "", 0, "", (), None)
    record.__dict__.update(
        request=None, remote_addr=("1.2.3.4", 5), status=400, body_bytes=0, when="now"
    )
    line = AccessFormatter(template='%(h)s %(t)s "%(r)s" %(s)s %(b)s %(D)s').format(record)
    assert line == '1.2.3.4 [now] "-" 400 - -'
    assert json.loads(AccessFormatter(json_lines=True).format(record))["status"] == 400


@pytest.mark.parametrize(
    ("text", "reason"),
    [("fancy", "give common, combined, json"), ("%(h)s %(zz)s", "unknown access-log atom 'zz'")],
)
def test_bad_formats(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_access_format(text)
    result = subprocess.run(
        [sys.executable, "-m", "reactor", "serve", "--access-log-format", text],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
        env=_env(),
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert reason in result.stderr


LOG_CONFIG_TOML = """
version = 1
[formatters.plain]
format = "CONFIGURED %(name)s %(message)s"
[handlers.file]
class = "logging.FileHandler"
filename = "{path}"
formatter = "plain"
[loggers.reactor]
handlers = ["file"]
level = "INFO"
propagate = false
"""


def test_log_config_file(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    log = tmp_path / "reactor.log"
    (tmp_path / "logging.toml").write_text(LOG_CONFIG_TOML.format(path=log))
    args = ["--root", str(site), "--log-config", "logging.toml"]
    with reactor_serve(*args, cwd=tmp_path) as served:
        assert served.stop()[0] == 0
    text = log.read_text()
    assert "CONFIGURED reactor.server listening on" in text
    assert "listening on" not in served.stderr()  # the file's handlers replaced stderr's
    (tmp_path / "bad.json").write_text('{"version": 1, "handlers": {"h": {"class": "no.Such"}}}')
    for name, reason in (("bad.json", "--log-config: "), ("missing.json", "cannot read it")):
        result = subprocess.run(
            [sys.executable, "-m", "reactor", "serve", "--root", str(site), "--log-config", name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=10,
            env=_env(),
        )
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert reason in result.stderr
