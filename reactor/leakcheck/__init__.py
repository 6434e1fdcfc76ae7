"""``reactor leakcheck``: prove, with objgraph and tracemalloc, that connections are collected.

Owns the leak harness: an in-process server on 127.0.0.1:0 (a fresh SelectorLoop and Server per
scenario), client sockets driven from the same thread (non-blocking, pumping the loop with
``run_once`` while they wait), the named scenarios, the checks and the report. It must not
touch the network beyond loopback, install anything, or leave the cyclic GC disabled.

For each scenario, after a short warm-up (first-use caches), the cyclic GC is collected and
disabled, then: objgraph counts reactor's per-connection objects (Connection, Request, Body,
ResponseWriter, Task/Future, armed timer and callback handles, parser, decoder, buffers,
sockets) and the loop's registrations and armed timers; the traffic runs; the loop is pumped
until idle; the counts must be back at the baseline (parked hijacks may keep only the socket and
the pair while they are parked); ``gc.collect()`` (saving what it finds) must find nothing;
tracemalloc gives the retained bytes per connection and the top growth sites;
``objgraph.growth()`` lists the types that grew (a type that grew by one or more objects per
request is a leak too). A leak gets one leaked object explained: the back-reference chain from a
root (a module, the loop, the server) down to it, in words; for cyclic garbage, the cycle.

Also drives a user's handler (``APP`` as ``module:callable``, or ``--wsgi module:app`` through
``reactor.wsgi.WSGIHandler`` when that module exists). Exit status: 0 clean, 1 leak (or a
scenario that failed), 2 usage errors. Tests: tests/leaks/test_leakcheck.py.

The modules, lowest first:

- ``tracked``: the types counted, ``count_objects``, the baseline, the looks inside the loop;
- ``client``: requests (``reactor.testing.raw_request``), Client and ClientConn;
- ``app``: the built-in scenarios' handler;
- ``harness``: what a scenario drives (settle, wait, checkpoints);
- ``scenarios`` and ``userapp``: SCENARIOS and APP_SCENARIOS;
- ``explain``: a leaked object's chain or cycle in words, and as a graph;
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
