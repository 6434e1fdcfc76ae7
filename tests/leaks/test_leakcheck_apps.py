"""``reactor leakcheck`` on real applications: a stock Flask app (tests/leaks/flaskapp.py) and
a stock Django project (tests/leaks/djsite, ``django-admin startproject`` and its admin login
page) come out *cycles*, exit status 0, with the frameworks' own cycles named as the
application's; the same apps with a planted leak (a module-level list each view appends to)
come out *leak*, naming the list and the view's line; a planted cycle that captures reactor's
hijack handle (and through it the ResponseWriter) fails naming reactor's objects. Small
request counts: each run is a few seconds. Django runs in a subprocess, in a copy of the
project (its settings are process-wide and it writes its sqlite file next to them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reactor import leakcheck

ROOT = Path(__file__).resolve().parents[2]
FLASK = "tests.leaks.flaskapp:app"
SMALL = ["--requests", "15", "--warmup", "5", "--scenario", "app-keepalive"]


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def run_main(capsys: Any, *args: str) -> tuple[int, str]:
    status = leakcheck.main(list(args))
    out = capsys.readouterr()
    return status, out.out + out.err


def test_stock_flask_is_cycles_of_the_application(capsys: Any) -> None:
    status, out = run_main(capsys, "--wsgi", FLASK, "--path", "/", "--path", "/user/ann", *SMALL)
    assert status == 0, out
    lines = out.splitlines()
    assert " cycles " in lines[0] and "application's" in lines[0], out
    # werkzeug's routing closure (StateMachineMatcher.match's _match refers to itself).
    assert "application's cycle, 1/request" in out
    assert "werkzeug/routing/matcher.py" in out
    assert "reactor's cycle" not in out and "FAIL" not in out
    assert lines[-1] == "1 scenarios: 0 clean, 1 cycles, 0 leak; 0 failed: ok"
    # --strict makes the same run fail.
    status, out = run_main(capsys, "--wsgi", FLASK, *SMALL, "--strict")
    assert status == 1 and "FAIL: reference cycles (--strict)" in out


def test_flask_cycles_in_json(capsys: Any) -> None:
    status = leakcheck.main(["--wsgi", FLASK, *SMALL, "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    report = json.loads(captured.out)
    assert captured.err.startswith("app-keepalive ")  # the scenario's line, on stderr
    assert report["verdict"] == "cycles" and report["ok"] is True
    (result,) = report["scenarios"]
    assert result["statuses"] == {"200": 20}
    groups = result["cycles"]["groups"]
    assert groups and all(g["owner"] == "application" for g in groups)
    assert any("_match" in "\n".join(g["cycle"]) for g in groups)
    assert result["failures"] == [] and result["growth"] == []
    assert result["cycle_objects_per_request"] > 0


def test_flask_planted_leak_names_the_list_and_the_view(capsys: Any) -> None:
    status, out = run_main(capsys, "--wsgi", FLASK, "--path", "/leak", *SMALL)
    assert status == 1, out
    view_line = line_of(ROOT / "tests/leaks/flaskapp.py", "SEEN.append(")
    first = out.splitlines()[0]
    assert " LEAK " in first and "+1/request" in first
    assert f"kept at tests/leaks/flaskapp.py:{view_line}" in first
    chain = out[out.index("held by (root first):") :].splitlines()
    assert chain[1].strip() == "module 'tests.leaks.flaskapp'"
    assert chain[2].strip().startswith(".SEEN -> list of 20 items")


def test_flask_cycle_capturing_reactors_writer_fails(capsys: Any) -> None:
    status, out = run_main(capsys, "--wsgi", FLASK, "--path", "/capture", *SMALL)
    assert status == 1, out
    assert " FAIL " in out.splitlines()[0]
    assert (
        "FAIL: the application's cycle captures reactor's reactor.wsgi._Hijacker, and with "
        "it reactor.response.ResponseWriter"
    ) in out
    assert "function 'capture.<locals>.later'" in out
    assert "closure variable 'hijack' -> reactor.wsgi._Hijacker" in out


def test_environ_in_an_application_cycle_is_the_applications(capsys: Any) -> None:
    """An application cycle that holds the environ is the application's: reactor's objects in
    the environ are passengers, not a failure. Since issue 12 the environ has no
    reactor.request (Request, Body and Headers are no longer pinned into such cycles)."""
    app = "tests.leaks.leaky_apps:wsgi_environ_cycle"
    status, out = run_main(capsys, "--wsgi", app, *SMALL, "-v")
    assert status == 0, out
    assert " cycles " in out.splitlines()[0] and "FAIL" not in out and "CAPTURED" not in out
    assert "handed over by reactor in the WSGI environ ['reactor.hijack']" in out
    assert "['reactor.request']" not in out


@pytest.fixture(scope="module")
def djsite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("djsite")
    shutil.copytree(ROOT / "tests" / "leaks" / "djsite", site, dirs_exist_ok=True)
    return site


def run_django(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "-m", "reactor.leakcheck", "--wsgi", "djsite.wsgi:application", *args],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )


def test_stock_django_admin_login_is_cycles_of_the_application(djsite: Path) -> None:
    done = run_django(djsite, "--path", "/admin/login/", "--expect-status", "200", *SMALL, "-v")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert " cycles " in out.splitlines()[0] and "application's" in out.splitlines()[0]
    # AuthenticationMiddleware's lambda: request.user = SimpleLazyObject(lambda: ...)
    assert "django/contrib/auth/middleware.py" in out
    assert "reactor's cycle" not in out and "FAIL" not in out and "CAPTURED" not in out
    # What reactor handed over in the environ rides along in those cycles, as passengers.
    assert "handed over by reactor in the WSGI environ ['reactor.hijack']" in out


def test_django_disallowed_host_is_shown_once_with_a_count(djsite: Path) -> None:
    done = run_django(djsite, "--path", "/admin/login/", "--host", "leakcheck", *SMALL)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "answered 20x 400" in out.splitlines()[0]
    # One traceback for the 20 (5 warm-up, 15 measured), with the count.
    assert out.count("Traceback (most recent call last)") == 1, out
    assert "ERROR django.security.DisallowedHost: 20x (in app-keepalive)" in out
    assert "DisallowedHost: Invalid HTTP_HOST header: 'leakcheck'" in out
    assert "BlockingIOError" not in out and "During handling" not in out
    # With --expect-status, the first wrong answer stops the scenario and says why.
    done = run_django(djsite, "--path", "/admin/login/", "--host", "leakcheck",
                      "--expect-status", "200", *SMALL)  # fmt: skip
    assert done.returncode == 1
    assert "GET /admin/login/ answered 400, expected 200 (is --host right?)" in done.stdout


def test_django_planted_leak_names_the_list_and_the_view(djsite: Path) -> None:
    done = run_django(djsite, "--path", "/leak/", *SMALL)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    view_line = line_of(djsite / "djsite" / "views.py", "SEEN.append(")
    assert " LEAK " in out.splitlines()[0]
    assert f"kept at djsite/views.py:{view_line}" in out.splitlines()[0]
    chain = out[out.index("held by (root first):") :].splitlines()
    assert chain[1].strip() == "module 'djsite.views'"
    assert chain[2].strip().startswith(".SEEN -> list of 20 items")
