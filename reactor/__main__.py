"""``python -m reactor``: the same command line as the ``reactor`` console script.

Owns nothing but the entry point; the command lives in reactor/cli.py. Tests:
tests/integration/test_cli.py (it runs ``python -m reactor serve``).
"""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
