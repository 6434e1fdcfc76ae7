"""What ``reactor serve``'s processes serve: the handler built from APP, imported afresh on
reload, and counted for ``--max-requests``.

Owns ``AppSource`` (loads APP with ``reactor.apploader.load_app``, remembers which modules that
import added from the application's own tree, and on ``reload()`` drops exactly those from
``sys.modules`` and imports again, so a supervisor's SIGHUP picks up changed code while the
libraries stay loaded; a failed reload puts the old modules back and raises, so the running
workers keep the old code), ``SourceWatcher`` (``--reload``: polls the modification times of
the application's ``.py`` files), ``count_requests`` (a handler wrapper that calls
``on_limit`` once after N requests: the worker then retires) and ``PidFile``. It must not
fork, signal or listen: reactor/workers.py and reactor/cli.py do.
Tests: tests/integration/test_worker_signals.py, test_reload.py.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .apploader import load_app
from .server import Handler

__all__ = ["AppSource", "PidFile", "SourceWatcher", "count_requests"]


class AppSource:
    """``AppSource(spec, build)``: ``load()`` imports ``spec`` (``module:callable``) and returns
    ``build(app)``, the handler, also kept as ``handler``; ``reload()`` does it again with the
    application's modules imported afresh. Without a spec (static files), ``build(None)``."""

    def __init__(self, spec: str | None, build: Callable[[Any], Handler]) -> None:
        self.spec = spec
        self.build = build
        self.handler: Handler | None = None
        #: The modules the last load added from the application's tree (not libraries).
        self.modules: dict[str, ModuleType] = {}

    def load(self) -> Handler:
        """Raises reactor.apploader.AppLoadError with a one-line reason."""
        if self.spec is None:
            self.handler = self.build(None)
            return self.handler
        before = set(sys.modules)
        app = load_app(self.spec)
        self.modules = {
            name: module
            for name in set(sys.modules) - before
            if (module := sys.modules[name]) is not None and _is_application_module(module)
        }
        self.handler = self.build(app)
        return self.handler

    def reload(self) -> Handler:
        """Import the application afresh; on failure the old modules are restored and the
        exception (AppLoadError) propagates."""
        old = dict(self.modules)
        if self.spec is not None:
            # The top module of APP may have been imported before load() (by a test, say):
            # it is the application's all the same.
            top = self.spec.partition(":")[0]
            if top in sys.modules and top not in old:
                old[top] = sys.modules[top]
        for name in old:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        before = set(sys.modules)
        try:
            return self.load()
        except BaseException:
            for name in set(sys.modules) - before:  # what the failed import left half-done
                module = sys.modules.get(name)
                if module is None or _is_application_module(module):
                    sys.modules.pop(name, None)
            sys.modules.update(old)
            self.modules = old
            raise


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update({sys.prefix, sys.base_prefix, sys.exec_prefix})
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots)


_LIBRARY_ROOTS = _library_roots()


def _is_application_module(module: ModuleType) -> bool:
    """A module loaded from a file outside the interpreter's and the environment's library
    directories (the application's own code, which a reload must import again)."""
    path = getattr(module, "__file__", None)
    if not path:
        return False
    real = os.path.realpath(path)
    return not real.startswith(_LIBRARY_ROOTS)


def count_requests(handler: Handler, limit: int, on_limit: Callable[[], object]) -> Handler:
    """``handler``, calling ``on_limit()`` once when the ``limit``-th request starts (that
    request is served; the worker then drains and exits). Keeps a streaming mark."""
    served = 0

    def counted(w: Any, r: Any) -> Any:
        nonlocal served
        served += 1
        if served == limit:
            on_limit()
        return handler(w, r)

    if getattr(handler, "reactor_streaming", False):
        counted.reactor_streaming = True  # type: ignore[attr-defined]
    return counted


class PidFile:
    """``--pid FILE``: ``write()`` puts this process's id in it (raises OSError), ``remove()``
    deletes it if it still holds that id (a newer server may have taken it over)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = 0

    def write(self) -> None:
        self.pid = os.getpid()
        tmp = f"{self.path}.{self.pid}.tmp"
        with open(tmp, "w") as file:
            file.write(f"{self.pid}\n")
        os.replace(tmp, self.path)  # never a half-written file for a reader

    def remove(self) -> None:
        if not self.pid or os.getpid() != self.pid:
            return
        try:
            with open(self.path) as file:
                if file.read().strip() != str(self.pid):
                    return
            os.unlink(self.path)
        except OSError:
            pass


#: Directories a source tree walk never enters (a virtualenv, caches, dependencies).
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "build", "dist"})


class SourceWatcher:
    """``--reload``'s eyes: ``changed()`` says which ``.py`` file under ``root`` was added,
    removed or modified since the last call (None: nothing), by polling modification times
    (no thread, no inotify: the supervisor calls it about once a second). Directories whose
    name starts with a dot (``.venv``, ``.git``) and those in _SKIPPED_DIRS are not
    entered; at most ``max_files`` files are watched (a warning names the limit)."""

    def __init__(self, root: str, max_files: int = 5000) -> None:
        self.root = os.path.realpath(root)
        self.max_files = max_files
        self.truncated = False
        self.snapshot = self._scan()

    def _scan(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for directory, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS]
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                try:
                    found[path] = os.stat(path).st_mtime_ns
                except OSError:
                    continue
                if len(found) >= self.max_files:
                    self.truncated = True
                    return found
        return found

    def changed(self) -> str | None:
        now = self._scan()
        before, self.snapshot = self.snapshot, now
        if now == before:
            return None
        for path in sorted(set(now) | set(before)):
            if now.get(path) != before.get(path):
                return os.path.relpath(path, self.root)
        return None  # pragma: no cover (the dicts differ, so some path does)
