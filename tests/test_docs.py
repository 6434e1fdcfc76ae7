"""Docs that are generated or executable must not rot."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_state_diagram_is_generated_from_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_state_diagram.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_readme_embedding_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    # Run the example without blocking forever: stop the loop once it has started.
    code = code.replace("loop.run()", "loop.call_later(0.05, loop.stop)\nloop.run()")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("('127.0.0.1', ")
