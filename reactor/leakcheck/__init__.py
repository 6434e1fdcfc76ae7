"""``reactor leakcheck``: prove, with objgraph and tracemalloc, that connections are collected.

Owns the leak harness: an in-process server on 127.0.0.1:0 (a fresh SelectorLoop and Server per
scenario), client sockets driven from the same thread (non-blocking, pumping the loop with
``run_once`` while they wait), the named scenarios, the checks and the report. It must not
touch the network beyond loopback, install anything, or leave the cyclic GC disabled.

For each scenario, after ``--warmup`` requests (first-use caches), the cyclic GC is collected
and disabled, the baseline taken (reactor's per-connection objects, the loop's registrations
and armed timers, a tracemalloc snapshot), and the requests run in three rounds; after each,
``gc.collect()`` (saving what it finds) and the objects alive by type and the traced bytes.
The verdict: *clean* (reference counting freed everything), *cycles* (nothing survives the
collector but cycles needed it: their types, per request, the shortest one and where it was
made, reactor's own or the application's) or *leak* (a type that grew in every round after
the first, or reactor's objects, connections, fds or timers left: the back-reference chain
from a root of one object per leaked type). Reactor's objects in a cycle, or captured by the
application's cycle, always fail; what reactor hands over in the WSGI environ rides along.

Also drives a user's handler (``APP`` as ``module:callable``, or ``--wsgi module:app`` through
``reactor.wsgi.WSGIHandler`` when that module exists) with real requests (``--path``,
``--host``, ``--header``, ``--data``, cookies carried). Exit status: 0 clean or cycles, 1 leak
or a failure (cycles with ``--strict``), 2 usage errors. Tests: tests/leaks/test_leakcheck.py,
tests/leaks/test_leakcheck_apps.py.

The modules, lowest first:

- ``tracked``: the types counted, ``count_objects``, the baseline, the looks inside the loop;
- ``client``: requests (``reactor.testing.raw_request``), the APP requests (Target), Client
  and ClientConn;
- ``app``: the built-in scenarios' handler;
- ``harness``: what a scenario drives (settle, wait, checkpoints);
- ``scenarios`` and ``userapp``: SCENARIOS and APP_SCENARIOS;
- ``explain``: a leaked object's chain or cycle in words, and as a graph;
- ``cycles``: the collector's garbage sorted out (the cycles, whose, what they pin);
- ``applog``: what is logged while a scenario runs, once each with a count;
- ``measure``: one scenario run and checked (``run_scenario``);
- ``report``: the lines, the table, the JSON, ``run``;
- ``command``: the options, ``run_from_args`` and ``main`` (also ``python -m reactor.leakcheck``).

This package re-exports what reactor/cli.py, tools/leakcheck.py and the tests use.
"""

from __future__ import annotations

import shutil  # noqa: F401  (tests patch leakcheck.shutil.which: no Graphviz)

from .app import BuiltinApp
from .client import Client, ClientConn, LeakcheckError
from .command import MAKE_REQUESTS, add_arguments, build_parser, main, run_from_args
from .explain import describe, render_chain
from .harness import Harness
from .measure import Options, ScenarioResult, run_scenario
from .report import Report, format_details, format_line, format_logged, format_table, run
from .scenarios import SCENARIOS, Scenario
from .tracked import TRACKED_TYPES, count_objects
from .userapp import APP_SCENARIOS

__all__ = [
    "APP_SCENARIOS",
    "MAKE_REQUESTS",
    "SCENARIOS",
    "TRACKED_TYPES",
    "BuiltinApp",
    "Client",
    "ClientConn",
    "Harness",
    "LeakcheckError",
    "Options",
    "Report",
    "Scenario",
    "ScenarioResult",
    "add_arguments",
    "build_parser",
    "count_objects",
    "describe",
    "format_details",
    "format_line",
    "format_logged",
    "format_table",
    "main",
    "render_chain",
    "run",
    "run_from_args",
    "run_scenario",
]
