"""CI wrapper around ``reactor leakcheck`` (reactor/leakcheck/): the same options, with CI
thresholds on by default.

What it adds: a retained-memory threshold (``--max-bytes-per-conn``, default 1024 tracemalloc
bytes per connection, the hijack memory target of docs/hijack.md) so that a scenario which
frees every object but still grows the heap fails too; and ``--summary`` defaults to
``leakcheck-summary.md`` so CI can attach the table. Everything else (``--requests``,
``--warmup``, ``--scenario``, ``--strict``, ``-v``, ``--json``, ``--graph``, APP and the
request options) is the library's. Exit status: 0 clean or cycles, 1 leak, a failure or the
threshold exceeded, 2 usage. Used by ``make leakcheck`` (``--requests 1000``); tests:
tests/leaks/test_leakcheck.py.

Usage: python tools/leakcheck.py [--requests N] [--max-bytes-per-conn B] [leakcheck options]
"""

from __future__ import annotations

import sys

from reactor import leakcheck

DEFAULT_MAX_BYTES_PER_CONN = 1024.0
DEFAULT_SUMMARY = "leakcheck-summary.md"


def main(argv: list[str] | None = None) -> int:
    parser = leakcheck.build_parser(prog="tools/leakcheck.py")
    parser.set_defaults(max_bytes_per_conn=DEFAULT_MAX_BYTES_PER_CONN, summary=DEFAULT_SUMMARY)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return leakcheck.run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
