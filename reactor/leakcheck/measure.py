"""Running one ``reactor leakcheck`` scenario and measuring what it left.

Owns ScenarioResult, the Options of a run, and ``run_scenario``: a fresh SelectorLoop and
Server, a warm-up, then the baseline (counts, registrations, timers, objgraph peaks), the
traffic with the cyclic GC disabled and tracemalloc on, and the checks (objects, connections,
fds and timers left, cyclic garbage, growth per request, retained bytes per connection), with
one leaked object explained. It leaves the cyclic GC enabled and reactor's log as it was.
Tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

import gc
import logging
import os
import time
import tracemalloc
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import objgraph  # type: ignore[import-untyped]

from ..loop.handles import Handle
from ..loop.selector import SelectorLoop
from ..server import Handler, Server
from ..testing import FakeClock
from .app import BuiltinApp, streaming_echo
from .client import LeakcheckError, Target
from .explain import (
    describe_registrations,
    explain_cycle,
    explain_holders,
    garbage_culprit,
    render_graph,
    type_summary,
    where,
)
from .harness import Harness
from .scenarios import Scenario
from .tracked import Baseline, armed_timers, count_objects, registrations, type_name

__all__ = ["Options", "ScenarioResult", "run_scenario"]


@dataclass
class ScenarioResult:
    name: str
    requests: int = 0
    connections: int = 0
    objects_left: int = 0
    bytes_per_connection: float = 0.0
    ok: bool = True
    seconds: float = 0.0
    leaked: dict[str, int] = field(default_factory=dict)
    cyclic_garbage: int = 0
    fds_left: int = 0
    timers_left: int = 0
    connections_left: int = 0
    growth: list[tuple[str, int, int]] = field(default_factory=list)
    top_sites: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)
    errors_logged: int = 0
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "ERROR"
        return "OK" if self.ok else "LEAK"


class _CountingHandler(logging.Handler):
    """Takes reactor's log records while a scenario runs: counted, formatted, dropped (a
    capturing handler would keep their arguments alive and show up as growth)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors += 1


class _Quiet:
    def __init__(self) -> None:
        self.logger = logging.getLogger("reactor")
        self.handler = _CountingHandler()

    def __enter__(self) -> _CountingHandler:
        self.saved = (self.logger.propagate, self.logger.level, list(self.logger.handlers))
        self.logger.propagate = False
        self.logger.handlers = [self.handler]
        self.logger.setLevel(logging.INFO)
        return self.handler

    def __exit__(self, *exc: object) -> None:
        self.logger.propagate, level, self.logger.handlers = self.saved
        self.logger.setLevel(level)


@dataclass
class Options:
    """What a run is asked for besides the scenarios: the user's handler and request, the
    picture of the first leak, the retained-bytes limit."""

    handler: Handler | None = None
    target: Target = field(default_factory=Target)
    graph: str | None = None
    max_bytes_per_connection: float | None = None
    out: TextIO | None = None


def _frame_filter() -> list[tracemalloc.Filter]:
    return [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, os.path.join(os.path.dirname(__file__), "*")),
        tracemalloc.Filter(False, objgraph.__file__),
    ]


def run_scenario(scenario: Scenario, requests: int, options: Options) -> ScenarioResult:
    """Run one scenario on a fresh loop and server; check and measure it."""
    result = ScenarioResult(scenario.name)
    clock = FakeClock() if scenario.fake_clock else None
    loop = SelectorLoop(clock=clock) if clock is not None else SelectorLoop()
    if clock is not None:
        clock.loop = loop
    app: Any
    if options.handler is not None:
        app = handler = options.handler
    elif scenario.streaming:
        app = handler = streaming_echo
    else:
        app = BuiltinApp()
        app.loop = loop
        handler = app
    server = Server(handler, loop=loop, config=scenario.config)
    server.listen("127.0.0.1", 0)
    h = Harness(loop, server, app, clock, options.target)
    started = time.perf_counter()
    was_tracing = tracemalloc.is_tracing()
    quiet = _Quiet()
    try:
        with quiet as counter:
            scenario.run(h, 2)  # warm-up: first-use caches, code paths, Date header
            h.settle()
            _measure(scenario, h, requests, options, result)
            result.errors_logged = counter.errors
    except LeakcheckError as exc:
        result.error = str(exc)
        result.ok = False
    finally:
        gc.enable()
        if tracemalloc.is_tracing() and not was_tracing:
            tracemalloc.stop()
        for sock, _pair in getattr(app, "parked", ()):
            sock.close()
        server.close()
        for _ in range(3):
            loop.run_once(0)
        loop.close()
        # What the scenario left to the collector (explained above) goes now, not later.
        gc.collect()
        result.seconds = round(time.perf_counter() - started, 3)
    return result


def _measure(
    scenario: Scenario, h: Harness, requests: int, options: Options, result: ScenarioResult
) -> None:
    loop, server = h.loop, h.server
    gc.collect()
    ids = {id(o) for o in gc.get_objects()}
    baseline = Baseline(
        count_objects(),
        loop.registered_fds(),
        loop.pending_timers(),
        ids,
        {},
        set(registrations(loop)),
    )
    h.baseline = baseline
    # Last before the traffic: growth() records the peaks (and collects first).
    objgraph.growth(limit=None, peak_stats=baseline.peak, shortnames=False)
    gc.disable()
    if not tracemalloc.is_tracing():
        tracemalloc.start(1)
    before = tracemalloc.take_snapshot().filter_traces(_frame_filter())

    result.connections = scenario.run(h, requests)
    h.settle()

    after = tracemalloc.take_snapshot().filter_traces(_frame_filter())
    counts = count_objects()
    diff = after.compare_to(before, "lineno")
    # A scenario rounds up to whole connections or rounds (shutdown sends 3 per round).
    result.requests = max(requests, result.connections)
    result.bytes_per_connection = round(
        sum(s.size_diff for s in diff) / max(result.connections, 1), 1
    )
    result.top_sites = [
        f"{where(s.traceback[0].filename)}:{s.traceback[0].lineno} "
        f"{s.size_diff / max(result.connections, 1):+.1f} B/conn ({s.count_diff:+d} blocks)"
        for s in diff[:5]
        if s.size_diff > 0
    ]
    del before, after, diff

    result.leaked = {
        name: n - baseline.counts[name] for name, n in counts.items() if n > baseline.counts[name]
    }
    result.objects_left = sum(result.leaked.values())
    result.connections_left = server.connection_count
    result.fds_left = max(0, loop.registered_fds() - baseline.fds)
    result.timers_left = max(0, loop.pending_timers() - baseline.timers)
    problems = list(h.checkpoint_leaks)
    if result.leaked:
        problems.append(
            "objects left: " + ", ".join(f"{n} {name}" for name, n in result.leaked.items())
        )
    if result.connections_left:
        problems.append(f"the server still tracks {result.connections_left} connections")
    if result.fds_left:
        problems.append(f"{result.fds_left} fds still registered with the loop")
        problems.extend(describe_registrations(loop, baseline.fd_numbers))
    if result.timers_left:
        problems.append(f"{result.timers_left} timers still armed")

    # Anything the scenario left to the cyclic GC: collect it, saving it to explain. This
    # comes before any objgraph chain search (those call gc.collect() themselves).
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        result.cyclic_garbage = gc.collect()
        garbage = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    chain: list[str] = []
    victim: object = None
    if garbage:
        problems.append(
            f"gc.collect() found {result.cyclic_garbage} objects in reference cycles: "
            + type_summary(garbage)
        )
        victim = garbage_culprit(garbage)
        chain = explain_cycle(victim, garbage)
    else:
        # The most telling leaked type first; else an armed timer the scenario left.
        for name in result.leaked:
            victim = _pick(name, baseline)
            if victim is not None:
                break
        if victim is None and result.timers_left:
            victim = next(
                (t for t in armed_timers(loop) if _is_new(t, baseline)),
                None,
            )
        if victim is not None:
            chain = explain_holders(victim, h)

    grown = objgraph.growth(limit=None, peak_stats=baseline.peak, shortnames=False)
    result.growth = [(name, count, delta) for name, count, delta in grown[:10]]
    per_request = [
        (name, delta) for name, _count, delta in grown if delta >= max(result.requests, 10)
    ]
    if per_request:
        problems.append(
            "types that grew by one or more objects per request: "
            + ", ".join(f"{name} +{delta}" for name, delta in per_request)
        )
    if per_request and victim is None:
        victim = _pick(per_request[0][0], baseline)
        if victim is not None:
            chain = explain_holders(victim, h)

    limit = options.max_bytes_per_connection
    if limit is not None and result.bytes_per_connection > limit:
        problems.append(
            f"{result.bytes_per_connection} bytes retained per connection (limit {limit})"
        )
    result.problems = problems
    result.chain = chain
    result.ok = not problems
    if not result.ok and victim is not None and options.graph:
        chain.extend(render_graph(victim, h, options.graph, garbage))
        options.graph = None  # one picture per run: the first leak
    del victim, garbage


def _is_new(obj: object, baseline: Baseline) -> bool:
    return id(obj) not in baseline.ids


def _pick(tp_name: str, baseline: Baseline, pool: Iterable[object] | None = None) -> object:
    objs = gc.get_objects() if pool is None else pool
    for obj in objs:
        if type_name(type(obj)) == tp_name and _is_new(obj, baseline):
            if isinstance(obj, Handle) and obj.callback is None:
                continue
            return obj
    return None
