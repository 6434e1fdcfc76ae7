"""reactor.appsource in-process: APP imported afresh on reload (its own modules, not the
libraries), the old modules put back when the new code does not import, count_requests, and
the pid file that is removed only while it still names this process."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactor.apploader import AppLoadError
from reactor.appsource import AppSource, PidFile, count_requests


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("srcapp_main", "srcapp_helper"):
        sys.modules.pop(name, None)


def test_reload_imports_the_app_afresh_and_restores_on_failure(app_dir: Path) -> None:
    (app_dir / "srcapp_helper.py").write_text("WORD = 'one'\n")
    (app_dir / "srcapp_main.py").write_text(
        "import json, srcapp_helper\ndef app(w, r):\n    return srcapp_helper.WORD\n"
    )
    source = AppSource("srcapp_main:app", lambda app: app)
    first = source.load()
    assert first(None, None) == "one"
    assert set(source.modules) == {"srcapp_main", "srcapp_helper"}  # not json: a library
    json_module = sys.modules["json"]

    (app_dir / "srcapp_helper.py").write_text("WORD = 'two, longer'\n")
    second = source.reload()
    assert second(None, None) == "two, longer"
    assert sys.modules["json"] is json_module  # libraries are not imported again
    assert first(None, None) == "one"  # the old handler keeps its own modules

    old_helper = sys.modules["srcapp_helper"]
    (app_dir / "srcapp_helper.py").write_text("WORD = (\n")
    with pytest.raises(AppLoadError, match="SyntaxError"):
        source.reload()
    assert sys.modules["srcapp_helper"] is old_helper  # put back
    assert source.handler is second


def test_count_requests_calls_once_and_keeps_the_streaming_mark() -> None:
    calls: list[int] = []

    async def handler(w: object, r: object) -> None:
        return None

    handler.reactor_streaming = True  # type: ignore[attr-defined]
    counted = count_requests(handler, 3, lambda: calls.append(1))
    assert counted.reactor_streaming  # type: ignore[attr-defined]
    for _ in range(5):
        counted(None, None).close()  # type: ignore[union-attr]
    assert calls == [1]


def test_pid_file(tmp_path: Path) -> None:
    path = tmp_path / "r.pid"
    pid_file = PidFile(str(path))
    pid_file.write()
    assert path.read_text() == f"{os.getpid()}\n"
    path.write_text("12345\n")  # a newer server took it over
    pid_file.remove()
    assert path.read_text() == "12345\n"
    pid_file.write()
    pid_file.remove()
    assert not path.exists()
