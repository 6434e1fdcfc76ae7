"""``reactor serve --reload``: a changed source file is imported afresh and served by a new
worker, a file that does not import keeps the old one, and the watcher's polling on its own
(files added, changed, removed; .venv and dot-directories not entered)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from reactor.appsource import SourceWatcher
from tests.integration.test_cli import reactor_serve
from tests.integration.test_workers import get, wait_for

APP = "import helper\n\ndef app(w, r):\n    w.write(helper.MESSAGE)\n"


def test_watcher_sees_changes_in_the_source_tree_only(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "lib.py").write_text("")
    (tmp_path / "pkg").mkdir()
    watcher = SourceWatcher(str(tmp_path))
    assert watcher.changed() is None
    (tmp_path / ".venv" / "lib.py").write_text("changed = True\n")
    (tmp_path / "notes.txt").write_text("not python")
    assert watcher.changed() is None
    (tmp_path / "pkg" / "new.py").write_text("")
    assert watcher.changed() == os.path.join("pkg", "new.py")
    stat = (tmp_path / "app.py").stat()
    os.utime(tmp_path / "app.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert watcher.changed() == "app.py"
    (tmp_path / "pkg" / "new.py").unlink()
    assert watcher.changed() == os.path.join("pkg", "new.py")
    assert watcher.changed() is None


def test_reload_serves_the_changed_code(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "helper.py").write_text("MESSAGE = b'first'\n")
    with reactor_serve("app:app", "--reload", cwd=tmp_path) as served:
        assert b"(selectors loop, 1 workers;" in served.banner
        assert get(served.port) == b"first"
        time.sleep(0.05)  # a modification time the next write cannot share
        (tmp_path / "helper.py").write_text("MESSAGE = b'second version'\n")
        wait_for(lambda: "helper.py changed: reloading" in served.stderr())
        wait_for(lambda: get(served.port) == b"second version")
        (tmp_path / "helper.py").write_text("MESSAGE = (\n")  # does not import
        wait_for(lambda: "reloading failed, the workers keep the old code" in served.stderr())
        assert get(served.port) == b"second version"
        status, out = served.stop()
    assert status == 0
    assert b"1 replaced by SIGHUP" in out
