"""reactor/http/ is sans-IO: no file imports a socket, selectors, asyncio or the loop, and
importing reactor.http loads none of them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import reactor.http

FORBIDDEN = ("socket", "selectors", "asyncio", "ssl", "reactor.loop")
HTTP_DIR = Path(reactor.http.__file__).parent


def _forbidden(module: str) -> bool:
    return any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = "reactor.http"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                found.append(module)
                # "from .. import loop" names a module too.
                found.extend(f"{module}.{alias.name}" for alias in node.names)
            else:
                assert node.module is not None
                found.append(node.module)
                found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            found.append("__import__")  # dynamic imports are not allowed either
    return found


def test_files_import_no_io_module() -> None:
    files = sorted(HTTP_DIR.glob("*.py"))
    assert {f.name for f in files} >= {"parser.py", "headers.py", "serialize.py", "state.py"}
    for path in files:
        for module in _imports(path):
            assert module != "__import__", path.name
            assert not _forbidden(module), f"{path.name} imports {module}"


def test_the_ast_check_catches_relative_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from ..loop import SelectorLoop\nfrom .. import loop\nimport socket\n")
    assert [m for m in _imports(bad) if _forbidden(m)] == [
        "reactor.loop",
        "reactor.loop.SelectorLoop",
        "reactor.loop",
        "socket",
    ]


def test_importing_reactor_http_loads_no_io_module() -> None:
    # reactor/__init__.py imports the whole server, so stand in an empty package for it:
    # what gets loaded is then reactor.http and what it imports, nothing else.
    code = (
        "import importlib.util, json, sys, types\n"
        "spec = importlib.util.find_spec('reactor')\n"
        "package = types.ModuleType('reactor')\n"
        "package.__path__ = list(spec.submodule_search_locations)\n"
        "sys.modules['reactor'] = package\n"
        "before = set(sys.modules)\n"
        "import reactor.http\n"
        "reactor.http.RequestParser().parse(b'GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n')\n"
        "new = sorted(set(sys.modules) - before)\n"
        "print(json.dumps({'new': new, 'all': sorted(sys.modules)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    modules = json.loads(out)
    assert "reactor.http.parser" in modules["new"]
    assert [m for m in modules["new"] if _forbidden(m)] == []
    assert [m for m in modules["all"] if _forbidden(m)] == []
    assert {m for m in modules["new"] if m.startswith("reactor.")} <= {
        "reactor.errors",
        "reactor.http",
        "reactor.http.chunked",
        "reactor.http.headers",
        "reactor.http.limits",
        "reactor.http.parser",
        "reactor.http.protocol",
        "reactor.http.serialize",
        "reactor.http.state",
    }
