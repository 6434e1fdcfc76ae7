"""Running one ``reactor leakcheck`` scenario and measuring what it left.

Owns ScenarioResult, the Options of a run, and ``run_scenario``: a fresh SelectorLoop and
Server, ``--warmup`` requests, then the baseline (counts, registrations, timers), and the
traffic in ROUNDS rounds with the cyclic GC disabled and tracemalloc on. After each round:
``gc.collect()`` (saving what it finds: the cycles, sorted out by reactor/leakcheck/cycles.py),
then the objects that survived it, by type (objgraph.typestats), and the traced bytes. The
verdict:

- *leak*: something survived the collector and grows with the requests (a type whose count
  rose in every round after the first, by at least ``min_growth`` per request: a cache that
  fills once and stays does not), or reactor's per-connection objects, connections, fds or
  armed timers are above the baseline, or the retained bytes are over the limit;
- *cycles*: nothing survived, but the collector had to free reference cycles (failing when
  they are reactor's own, or capture reactor's objects; with ``strict``, always);
- *clean*: reference counting freed everything.

A leak gets the back-reference chain of one object per leaked type (the objects created after
the first round, by their most common allocation site), at most one chain per holder, and
with ``graph`` a picture of each. It leaves the cyclic GC enabled and the logging as it was.
Tests: tests/leaks/test_leakcheck.py, tests/leaks/test_leakcheck_apps.py.
"""

from __future__ import annotations

import collections
import gc
import itertools
import linecache
import os
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import objgraph  # type: ignore[import-untyped]

from ..loop.handles import Handle
from ..loop.selector import SelectorLoop
from ..server import Handler, Server
from ..testing import FakeClock
from .app import BuiltinApp, streaming_echo
from .applog import AppLog
from .client import LeakcheckError, Target
from .cycles import CycleReport, analyse_garbage, made_at
from .explain import describe_registrations, explain_holders, render_graph, where
from .harness import Harness
from .scenarios import Scenario
from .tracked import (
    TRACKED_TYPES,
    Baseline,
    armed_timers,
    count_objects,
    registrations,
    type_name,
)

__all__ = ["ROUNDS", "Options", "ScenarioResult", "run_scenario"]

#: Rounds the measured requests are split into (the growth is measured between them).
ROUNDS = 3
#: tracemalloc frames kept per allocation: the line that made an object is the most recent.
_FRAMES = 1

Progress = Callable[[str, int, int], None]


@dataclass
class ScenarioResult:
    name: str
    requests: int = 0
    warmup: int = 0
    connections: int = 0
    verdict: str = "clean"  # clean, cycles, leak, error
    ok: bool = True
    seconds: float = 0.0
    #: reactor's per-connection objects above the baseline after gc.collect().
    objects_left: int = 0
    leaked: dict[str, int] = field(default_factory=dict)
    #: (requests done, objects alive after gc.collect(), traced bytes) after each round.
    points: list[tuple[int, int, int]] = field(default_factory=list)
    objects_per_request: float = 0.0
    bytes_per_request: float = 0.0
    bytes_per_connection: float = 0.0
    #: Types that grew in every round after the first: (type, objects per request).
    growth: list[tuple[str, float]] = field(default_factory=list)
    cyclic_garbage: int = 0
    cycle_objects_per_request: float = 0.0
    cycle_types: list[tuple[str, int]] = field(default_factory=list)
    cycles: CycleReport = field(default_factory=CycleReport)
    fds_left: int = 0
    timers_left: int = 0
    connections_left: int = 0
    top_sites: list[str] = field(default_factory=list)
    #: The application's line that kept a block per request (a leak's), if one did.
    kept_at: str = ""
    problems: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    chains: list[list[str]] = field(default_factory=list)
    graphs: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    logged: list[dict[str, Any]] = field(default_factory=list)
    errors_logged: int = 0
    error: str | None = None

    @property
    def status(self) -> str:
        """The word on the scenario's line: clean, cycles, LEAK, FAIL (cycles that fail),
        ERROR."""
        if self.verdict == "error":
            return "ERROR"
        if self.verdict == "leak":
            return "LEAK"
        if not self.ok:
            return "FAIL"
        return self.verdict

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


@dataclass
class Options:
    """What a run is asked for besides the scenarios: the user's handler and requests, the
    warm-up, the pictures, the limits, the progress callback."""

    handler: Handler | None = None
    target: Target = field(default_factory=Target)
    warmup: int = 10
    graph: str | None = None
    max_bytes_per_connection: float | None = None
    min_growth: float = 0.25
    max_bytes_growth: float | None = None
    strict: bool = False
    progress: Progress | None = None


def _frame_filter() -> list[tracemalloc.Filter]:
    return [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, linecache.__file__),  # the source lines of the report
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
    options.target.reset()
    options.target.statuses.clear()
    h = Harness(loop, server, app, clock, options.target)
    started = time.perf_counter()
    was_tracing = tracemalloc.is_tracing()
    log = AppLog()
    # Garbage older than the scenario is not the scenario's: collected now, before the log is
    # watched (an asyncio task someone left pending logs "Task was destroyed" when collected).
    gc.collect()
    try:
        with log:
            if options.warmup:
                # First-use caches, code paths, the Date header.
                scenario.run(h, options.warmup)
                result.warmup = options.warmup
            h.settle()
            _measure(scenario, h, requests, options, result)
    except LeakcheckError as exc:
        result.error = str(exc)
        result.verdict = "error"
        result.ok = False
    finally:
        h.client.close_all()
        gc.enable()
        gc.set_debug(0)
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
        result.statuses = dict(sorted(options.target.statuses.items()))
        result.logged = [asdict(p) for p in log.problems]
        result.errors_logged = log.errors
        result.seconds = round(time.perf_counter() - started, 3)
    return result


def _collect_saved() -> list[object]:
    """gc.collect(), keeping what it found (to be looked at, then freed with ``del``)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        garbage = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    return garbage


def _rounds(requests: int) -> list[int]:
    rounds = min(ROUNDS, max(requests, 1))
    base, extra = divmod(max(requests, 1), rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


class _Ticker:
    """The progress callback, told the requests done at most 4 times a second."""

    def __init__(self, name: str, total: int, h: Harness, progress: Progress | None) -> None:
        self.name, self.total, self.h, self.progress = name, total, h, progress
        self.base = 0
        self.size = 0
        self.mark = 0
        self.next = 0.0

    def round(self, done: int, size: int) -> None:
        self.base, self.size = done, size
        self.mark = max(self.h.client.responses, self.h.client.connections)
        self.tell(done)

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + 0.25
        seen = max(self.h.client.responses, self.h.client.connections) - self.mark
        self.tell(self.base + min(self.size, seen))

    def tell(self, done: int) -> None:
        if self.progress is not None:
            self.progress(self.name, done, self.total)


def _measure(
    scenario: Scenario, h: Harness, requests: int, options: Options, result: ScenarioResult
) -> None:
    loop, server = h.loop, h.server
    gc.collect()
    baseline = Baseline(
        count_objects(),
        loop.registered_fds(),
        loop.pending_timers(),
        {id(o) for o in gc.get_objects()},
        {},
        set(registrations(loop)),
    )
    h.baseline = baseline
    gc.disable()
    if not tracemalloc.is_tracing():
        tracemalloc.start(_FRAMES)
    before = tracemalloc.take_snapshot().filter_traces(_frame_filter())
    # The measurements are kept as ints in lists made before the first round: a tuple per
    # round would itself be an object that grows with the rounds. The bytes per round are
    # tracemalloc's total less what this function keeps (the counts by type, _own_bytes):
    # filtering a snapshot per round would cost seconds.
    done_at: list[int] = [0]
    objects_at: list[int] = [len(gc.get_objects())]
    bytes_at: list[int] = [tracemalloc.get_traced_memory()[0]]

    ticker = _Ticker(scenario.name, requests, h, options.progress)
    if options.progress is not None:
        h.client.tick = ticker.tick
    stats: list[collections.Counter[type]] = []
    garbage_types: collections.Counter[str] = collections.Counter()
    done = 0
    for i, size in enumerate(_rounds(requests)):
        ticker.round(done, size)
        result.connections += scenario.run(h, size)
        h.settle()
        done += size
        garbage = _collect_saved()
        result.cyclic_garbage += len(garbage)
        garbage_types.update(type_name(type(o)) for o in garbage)
        if i == 0 and garbage:
            result.cycles = analyse_garbage(garbage, size)
        del garbage
        gc.collect()  # frees what was saved
        done_at.append(done)
        own = _own_bytes(stats, done_at, objects_at, bytes_at)
        bytes_at.append(tracemalloc.get_traced_memory()[0] - own)
        # By type object, named at the end (objgraph.typestats names every object: slow).
        counts = collections.Counter(map(type, gc.get_objects()))
        counts[collections.Counter] -= i  # the counts of the rounds before
        stats.append(counts)
        del counts
        objects_at.append(sum(stats[-1].values()))
    ticker.tell(done)
    result.points = list(zip(done_at, objects_at, bytes_at, strict=True))
    h.client.tick = None
    # A scenario rounds up to whole connections or rounds (shutdown sends 3 per round).
    result.requests = max(done, result.connections)

    grown_types = _growth(result, stats, options.min_growth)
    del stats
    last = tracemalloc.take_snapshot().filter_traces(_frame_filter())
    diff = last.compare_to(before, "lineno")
    result.bytes_per_connection = round(
        sum(s.size_diff for s in diff) / max(result.connections, 1), 1
    )
    # The sites that kept a block per request or more first (a leak's), then the biggest.
    per_request = max(1, int(done * options.min_growth))
    diff.sort(key=lambda s: (s.count_diff < per_request, -s.size_diff))
    result.top_sites = [
        f"{where(s.traceback[0].filename)}:{s.traceback[0].lineno} "
        f"{s.size_diff / max(done, 1):+.1f} B/request ({s.count_diff:+d} blocks)"
        for s in diff[:5]
        if s.size_diff > 0
    ]
    result.kept_at = next(
        (
            _site(s.traceback[0])
            for s in diff
            if s.count_diff >= per_request and _is_app_file(s.traceback[0].filename)
        ),
        "",
    )
    del before, last, diff
    result.cycle_types = garbage_types.most_common(8)
    result.cycle_objects_per_request = round(result.cyclic_garbage / max(done, 1), 2)

    left = count_objects()
    result.leaked = {
        name: n - baseline.counts[name] for name, n in left.items() if n > baseline.counts[name]
    }
    result.objects_left = sum(result.leaked.values())
    result.connections_left = server.connection_count
    result.fds_left = max(0, loop.registered_fds() - baseline.fds)
    result.timers_left = max(0, loop.pending_timers() - baseline.timers)
    problems = list(h.checkpoint_leaks)
    if result.leaked:
        problems.append(
            "reactor's objects left: "
            + ", ".join(f"{n} {name}" for name, n in result.leaked.items())
        )
    if result.connections_left:
        problems.append(f"the server still tracks {result.connections_left} connections")
    if result.fds_left:
        problems.append(f"{result.fds_left} fds still registered with the loop")
        problems.extend(describe_registrations(loop, baseline.fd_numbers))
    if result.timers_left:
        problems.append(f"{result.timers_left} timers still armed")
    if result.growth:
        problems.append(
            "grows with the requests (after gc.collect()): "
            + ", ".join(f"{name} +{rate:g}/request" for name, rate in result.growth[:6])
        )
    bytes_growth = _bytes_growth(result.points)
    if options.max_bytes_growth is not None and bytes_growth >= options.max_bytes_growth:
        problems.append(
            f"the traced bytes grow by {bytes_growth:.0f} B/request in every round "
            f"(limit {options.max_bytes_growth:g})"
        )
    limit = options.max_bytes_per_connection
    if limit is not None and result.bytes_per_connection > limit:
        problems.append(
            f"{result.bytes_per_connection} bytes retained per connection (limit {limit})"
        )
    result.problems = problems
    result.failures = result.cycles.failures
    _explain(result, h, baseline, options, grown_types)
    if problems:
        result.verdict = "leak"
    elif result.cyclic_garbage:
        result.verdict = "cycles"
    result.ok = not problems and not result.failures
    if result.verdict == "cycles" and options.strict:
        result.ok = False
        result.failures.append("reference cycles (--strict)")


# Where the standard library and installed packages live: not the application's own code.
_LIBRARY_DIRS = tuple({os.path.dirname(os.__file__), *(p for p in sys.path if "-packages" in p)})
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _is_app_file(filename: str) -> bool:
    path = os.path.abspath(filename)
    return (
        not filename.startswith("<")
        and not path.startswith(_LIBRARY_DIRS)
        and not path.startswith(_PACKAGE_DIR + os.sep)
    )


def _site(frame: tracemalloc.Frame) -> str:
    line = linecache.getline(frame.filename, frame.lineno).strip()
    text = f"{where(frame.filename)}:{frame.lineno}"
    return f"{text} ({line[:60]})" if line else text


def _own_bytes(stats: list[collections.Counter[type]], *series: list[int]) -> int:
    """What the measurements so far take: the lists, each Counter, their large ints (the
    type objects the Counters are keyed by are not theirs)."""

    def ints(values: Iterable[int]) -> int:
        return sum(sys.getsizeof(v) for v in values if not -5 <= v <= 256)

    return (
        sys.getsizeof(stats)
        + sum(sys.getsizeof(c) + ints(c.values()) for c in stats)
        + sum(sys.getsizeof(s) + ints(s) for s in series)
    )


def _bytes_growth(points: list[tuple[int, int, int]]) -> float:
    """Bytes per request from the first round to the last when they grew in every round
    after the first, else 0."""
    after = points[1:]
    if len(after) < 2 or not all(b[2] > a[2] for a, b in itertools.pairwise(after)):
        return 0.0
    return (after[-1][2] - after[0][2]) / max(after[-1][0] - after[0][0], 1)


def _growth(
    result: ScenarioResult,
    stats: list[collections.Counter[type]],
    min_growth: float,
) -> list[type]:
    """Objects and bytes per request in the last round (a cache filled in the earlier ones
    does not count), and the types that grew in every round after the first by
    ``min_growth`` per request or more."""
    points = result.points
    span = points[-1][0] - points[1][0] if len(points) > 2 else 0
    if span <= 0:
        return []
    last = points[-1][0] - points[-2][0]
    result.objects_per_request = round((points[-1][1] - points[-2][1]) / last, 2)
    result.bytes_per_request = round((points[-1][2] - points[-2][2]) / last, 1)
    grown = []
    for tp, n in stats[-1].items():
        series = [s.get(tp, 0) for s in stats]
        if all(b > a for a, b in itertools.pairwise(series)):
            rate = (n - series[0]) / span
            if rate >= min_growth and n - series[0] >= 2:
                grown.append((tp, round(rate, 2)))
    grown.sort(key=lambda item: -item[1])
    result.growth = [(type_name(tp), rate) for tp, rate in grown]
    return [tp for tp, _rate in grown]


def _explain(
    result: ScenarioResult,
    h: Harness,
    baseline: Baseline,
    options: Options,
    grown_types: list[type],
) -> None:
    """One chain per leaked type (reactor's first), skipping a type held the same way as one
    already shown; one picture each with ``options.graph``."""
    victims: list[object] = []
    by_name = {type_name(tp): tp for tp in TRACKED_TYPES}
    leaked = [by_name[name] for name in result.leaked]
    for tp in dict.fromkeys([*leaked, *grown_types]):
        victim = _pick(tp, baseline.ids, by_holder=tp not in leaked)
        if victim is not None:
            victims.append(victim)
    if not victims and result.timers_left:
        victim = next((t for t in armed_timers(h.loop) if id(t) not in baseline.ids), None)
        if victim is not None:
            victims.append(victim)
    shown: set[tuple[str, ...]] = set()
    for n, victim in enumerate(victims):
        if len(result.chains) >= _MAX_CHAINS:
            break
        if _held_by(victims[:n], victim) or any(_held_by([victim], v) for v in victims[:n]):
            continue  # a list inside a leaked Request, or a timer holding a leaked writer
        chain = explain_holders(victim, h)
        # The root and its first reference: a second type held by the same list (a
        # Request's Body after the Request) adds nothing.
        holder = tuple(chain[1:3])
        if (len(chain) > 3 and holder in shown) or (len(chain) < 3 and result.chains):
            continue
        shown.add(holder)
        site = made_at(victim)
        if site:
            chain.append(f"made at {site}")
        result.chains.append(chain)
        if options.graph:
            stem = f"{result.name}-{type_name(type(victim))}".replace("/", "_")
            out = os.path.join(options.graph, stem + ".png")
            lines = render_graph(victim, h, out, [])
            result.graphs.extend(lines)
    del victims


def _held_by(holders: list[object], obj: object, depth: int = 4) -> bool:
    """Whether ``obj`` is one of ``holders`` or within ``depth`` references below one."""
    level = list(holders)
    seen: set[int] = set()
    for _ in range(depth + 1):
        if any(o is obj for o in level):
            return True
        nxt = []
        for o in level:
            if id(o) not in seen:
                seen.add(id(o))
                nxt.extend(gc.get_referents(o))
        level = nxt
    return False


_CONTAINERS = (list, dict, set, collections.deque)
# Chains looked for per scenario (each walks the referrers of every object: slow).
_MAX_CHAINS = 3


def _pick(tp: type, known: set[int], by_holder: bool) -> object:
    """An object of type ``tp`` not in ``known``; ``by_holder``: one in the container that
    holds the most of them (the list a leak appends to, not a cache's one entry)."""
    found = {}
    for obj in gc.get_objects():
        if type(obj) is tp and id(obj) not in known:
            if isinstance(obj, Handle) and obj.callback is None:
                continue
            found[id(obj)] = obj
            if not by_holder:
                break
    if not found:
        return None
    best, best_count = None, 0
    if by_holder and len(found) > 1:
        for holder in gc.get_objects():
            if type(holder) not in _CONTAINERS or holder is found or id(holder) in found:
                continue
            values = holder.values() if type(holder) is dict else holder
            count = sum(1 for r in values if id(r) in found)
            if count > best_count:
                best_count = count
                best = next(r for r in values if id(r) in found)
        holder = values = None
    victim = best if best is not None else next(iter(found.values()))
    found.clear()
    return victim
