"""The supervisor's signals and worker controls on real processes, with gunicorn's meanings:
USR1 after logrotate-style renames, HUP picking up changed app code (and refusing a broken
one), TTIN/TTOU, --max-requests recycling with every answer counted, a hung worker replaced
under --worker-timeout, --pid; and a single process answering USR1 and HUP without dying.
Every subprocess is killed in a ``finally`` (by ``reactor_serve``)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from tests.integration.test_cli import reactor_serve
from tests.integration.test_workers import get, slow_pids, wait_for

VERSIONED_APP = """
import os, time

def app(w, r):
    if r.path == "/slow":  # the pid alone, for slow_pids
        time.sleep(0.4)
        w.write(b"%d" % os.getpid())
        return
    w.write(b"%s %d" % (VERSION, os.getpid()))

VERSION = b"{version}"
"""


def answer(port: int, path: str = "/") -> tuple[bytes, int]:
    version, pid = get(port, path).split()
    return version, int(pid)


def test_usr1_hup_ttin_ttou_and_pid_file(tmp_path: Path) -> None:
    (tmp_path / "verapp.py").write_text(VERSIONED_APP.format(version="v1"))
    log = tmp_path / "access.log"
    pid_file = tmp_path / "reactor.pid"
    args = ["verapp:app", "--workers", "2", "--access-log", str(log), "--pid", str(pid_file)]
    with reactor_serve(*args, cwd=tmp_path) as served:
        assert pid_file.read_text().strip() == str(served.proc.pid)
        first = slow_pids(served.port, 2)
        assert len(first) == 2

        # USR1 after logrotate's rename: the workers survive and log to a new file.
        os.rename(log, tmp_path / "access.log.1")
        served.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: served.stderr().count("SIGUSR1: reopened 1 log file(s)") >= 2)
        assert answer(served.port)[0] == b"v1"
        wait_for(lambda: log.exists() and "GET / HTTP/1.1" in log.read_text())
        assert "GET /slow" in (tmp_path / "access.log.1").read_text()
        assert "GET /slow" not in log.read_text()
        assert served.proc.poll() is None
        assert slow_pids(served.port, 2) == first  # nobody was restarted

        # HUP imports the changed code: every answer afterwards is the new version.
        (tmp_path / "verapp.py").write_text(VERSIONED_APP.format(version="version-2"))
        served.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: served.stderr().count("replaced by") >= 2)
        second = slow_pids(served.port, 2)
        assert not second & first
        assert {answer(served.port)[0] for _ in range(6)} == {b"version-2"}

        # A broken deploy is refused and the running workers keep serving.
        (tmp_path / "verapp.py").write_text("def app(w, r):\n    syntax error here\n")
        served.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: "SIGHUP: reloading failed, the workers keep the old code" in served.stderr()
        )
        assert "SyntaxError" in served.stderr()
        assert {answer(served.port)[0] for _ in range(4)} == {b"version-2"}

        # TTIN: a third worker; TTOU: back to two.
        served.proc.send_signal(signal.SIGTTIN)
        wait_for(lambda: "SIGTTIN: 3 worker(s) wanted" in served.stderr())
        wait_for(lambda: served.stderr().count(" serving") >= 5)  # 2 + 2 replacements + 1
        assert len(slow_pids(served.port, 3)) == 3
        served.proc.send_signal(signal.SIGTTOU)
        wait_for(lambda: "SIGTTOU: 2 worker(s) wanted" in served.stderr())
        wait_for(lambda: served.stderr().count("stopped (exit 0)") >= 3)  # 2 by HUP, 1 by TTOU
        assert len(slow_pids(served.port, 3)) == 2

        status, out = served.stop()
    assert status == 0
    assert b"2 replaced by SIGHUP" in out
    assert b"0 restarted after dying" in out
    assert not pid_file.exists()  # removed at exit


def test_max_requests_recycles_without_losing_an_answer(tmp_path: Path) -> None:
    (tmp_path / "verapp.py").write_text(VERSIONED_APP.format(version="v1"))
    args = ["verapp:app", "--workers", "1", "--max-requests", "4", "--max-requests-jitter", "0"]
    with reactor_serve(*args, cwd=tmp_path) as served:
        pids = [answer(served.port)[1] for _ in range(14)]  # each must be a 200: get() checks
        assert len(pids) == 14
        # 4 answers per worker: the 4th request is served, then the worker retires (one more
        # may still reach it if it was accepted before the worker stopped accepting).
        runs = [
            (pid, pids.count(pid)) for i, pid in enumerate(pids) if i == 0 or pid != pids[i - 1]
        ]
        assert len(runs) == len({pid for pid, _ in runs}) == 4  # none answers after its successor
        assert all(4 <= count <= 5 for _, count in runs[:3]), runs
        wait_for(lambda: served.stderr().count("retiring after its requests") >= 3)
        status, out = served.stop()
    assert status == 0
    assert b"3 recycled after --max-requests" in out
    assert b"0 restarted after dying" in out


HANG_APP = """
import os, time

def app(w, r):
    if r.path == "/hang":
        time.sleep(60)  # blocks the worker's loop: no heartbeat
    w.write(str(os.getpid()).encode())
"""


def test_hung_worker_is_killed_and_replaced(tmp_path: Path) -> None:
    (tmp_path / "hangapp.py").write_text(HANG_APP)
    args = ["hangapp:app", "--workers", "1", "--worker-timeout", "1.5"]
    with reactor_serve(*args, cwd=tmp_path) as served:
        before = int(get(served.port))
        failed: list[BaseException] = []

        def hang() -> None:
            try:
                get(served.port, "/hang", timeout=10)
            except BaseException as exc:  # the connection dies with the worker
                failed.append(exc)

        thread = threading.Thread(target=hang)
        thread.start()
        started = time.monotonic()
        wait_for(lambda: "sent no heartbeat" in served.stderr(), timeout=8)
        thread.join(10)
        assert failed
        assert 1.5 <= time.monotonic() - started < 8
        wait_for(lambda: served.stderr().count(" serving") >= 2)
        after = int(get(served.port))
        assert after != before
        status, out = served.stop()
    assert status == 0
    assert b"1 killed for missing heartbeats" in out
    assert b"1 restarted after dying" in out


def test_single_process_answers_usr1_and_hup(tmp_path: Path) -> None:
    (tmp_path / "verapp.py").write_text(VERSIONED_APP.format(version="v1"))
    log = tmp_path / "access.log"
    pid_file = tmp_path / "single.pid"
    args = ["verapp:app", "--access-log", str(log), "--pid", str(pid_file)]
    with reactor_serve(*args, cwd=tmp_path) as served:
        assert pid_file.read_text().strip() == str(served.proc.pid)
        assert answer(served.port) == (b"v1", served.proc.pid)
        os.rename(log, tmp_path / "access.log.1")
        served.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: "SIGUSR1: reopened 1 log file(s)" in served.stderr())
        served.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: a single process cannot reload" in served.stderr())
        served.proc.send_signal(signal.SIGTTIN)  # its default action would suspend us
        wait_for(lambda: "SIGTTIN: adding or removing workers needs --workers" in served.stderr())
        assert answer(served.port) == (b"v1", served.proc.pid)
        wait_for(lambda: log.exists() and "GET / HTTP/1.1" in log.read_text())
        assert served.stop()[0] == 0
    assert not pid_file.exists()
