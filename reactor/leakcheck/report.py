"""``reactor leakcheck``'s report: a line per scenario as it ends, the details of the failing
ones, the application's logged errors once each, the summary table and the JSON.

Owns Report (the run's verdict: leak if any scenario leaked, else cycles if any needed the
collector, else clean), the formatting, and ``run`` (scenarios in order, a callback for each
result). Tests: tests/leaks/test_leakcheck.py, tests/leaks/test_leakcheck_apps.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .cycles import short_site
from .measure import Options, ScenarioResult, run_scenario
from .scenarios import Scenario

__all__ = [
    "Report",
    "format_details",
    "format_line",
    "format_logged",
    "format_table",
    "run",
]

# Chains shown for a leak without -v (the rest are counted).
_CHAINS = 2


@dataclass
class Report:
    results: list[ScenarioResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def verdict(self) -> str:
        verdicts = {r.verdict for r in self.results}
        for v in ("error", "leak", "cycles"):
            if v in verdicts:
                return v
        return "clean"

    def logged(self) -> list[dict[str, Any]]:
        """The distinct warnings and errors of the whole run: the first text, the count, the
        scenarios."""
        merged: dict[str, dict[str, Any]] = {}
        for r in self.results:
            for p in r.logged:
                seen = merged.setdefault(p["text"], {**p, "count": 0, "scenarios": []})
                seen["count"] += p["count"]
                seen["scenarios"].append(r.name)
        return list(merged.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "scenarios": [r.to_json() for r in self.results],
            "logged": self.logged(),
        }


def _statuses(r: ScenarioResult) -> str:
    odd = {s: n for s, n in r.statuses.items() if not 200 <= s < 400}
    if not odd:
        return ""
    return "answered " + ", ".join(f"{n}x {s}" for s, n in odd.items())


def _note(r: ScenarioResult) -> str:
    if r.verdict == "error":
        return r.error or ""
    notes = []
    if r.verdict == "leak":
        if r.leaked:
            name, n = next(iter(r.leaked.items()))
            notes.append(f"{n} {name} left")
        elif r.growth:
            name, rate = r.growth[0]
            notes.append(f"{name} +{rate:g}/request")
        elif r.problems:
            notes.append(r.problems[0])
        if r.kept_at:
            notes.append(f"kept at {r.kept_at.split(' (')[0]}")
    elif r.verdict == "cycles":
        owners = sorted({g.owner for g in r.cycles.groups}) or ["application"]
        notes.append(
            f"{r.cycle_objects_per_request:g} objects/request in cycles, "
            + " and ".join(f"{o}'s" for o in owners)
        )
        if r.failures:
            notes.append(r.failures[0])
    statuses = _statuses(r)
    if statuses:
        notes.append(statuses)
    return "; ".join(notes)


def format_line(r: ScenarioResult) -> str:
    """The scenario's line: requests, growth per request after the warm-up, the verdict."""
    return (
        f"{r.name:<18} {r.requests:>6} req {r.objects_per_request:>+7.2f} obj/req "
        f"{r.bytes_per_request:>+8.1f} B/req  {r.status:<6} {_note(r)}"
    ).rstrip()


def format_details(r: ScenarioResult, verbose: bool = False) -> list[str]:
    """What follows a scenario's line: for a failure, why (the chains, the cycles); with
    ``verbose``, the cycles and measurements of every scenario."""
    lines: list[str] = []
    failing = not r.ok
    if r.error is not None:
        lines.append(f"  error: {r.error}")
    lines.extend(f"  {p}" for p in r.problems)
    lines.extend(f"  FAIL: {f}" for f in r.failures)
    shown = r.chains if verbose else r.chains[:_CHAINS]
    for chain in shown:
        lines.extend(f"    {line}" for line in chain)
    if len(r.chains) > len(shown):
        lines.append(f"  ({len(r.chains) - len(shown)} more chains with -v)")
    lines.extend(f"  {g}" for g in r.graphs)
    if r.cycles.groups and (failing or verbose or r.verdict == "cycles"):
        lines.extend(_cycle_lines(r, verbose or bool(r.failures)))
    if r.kept_at:
        lines.append(f"  kept by the application at {r.kept_at}")
    if r.verdict == "leak" and r.top_sites:
        lines.append("  top tracemalloc growth sites:")
        lines.extend(f"    {site}" for site in r.top_sites[: 5 if verbose else 3])
    if verbose:
        lines.append(
            "  after gc.collect(), by requests done (requests, objects, traced bytes): "
            + ", ".join(f"({n}, {o}, {b})" for n, o, b in r.points)
        )
        if r.cycle_types:
            lines.append(
                "  freed by the collector: " + ", ".join(f"{n} {name}" for name, n in r.cycle_types)
            )
    return lines


def _cycle_lines(r: ScenarioResult, full: bool) -> list[str]:
    lines = []
    groups = r.cycles.groups if full else r.cycles.groups[:2]
    for g in groups:
        made = g.made_at if full else short_site(g.made_at)
        made = f"made at {made}" if ":" in made.split(" ")[0] else f"around {made}"
        kinds = ", ".join(f"{n} {name.rpartition('.')[2]}" for name, n in g.types[:4])
        lines.append(
            f"  {g.owner}'s cycle, {g.per_request:g}/request, {g.size} objects ({kinds}), {made}"
        )
        if full:
            lines.append("    the shortest cycle:")
            lines.extend(f"      {line}" for line in g.cycle)
    if len(r.cycles.groups) > len(groups):
        lines.append(f"  ({len(r.cycles.groups) - len(groups)} more kinds of cycle with -v)")
    for p in r.cycles.pinned:
        if full or p.captured:
            what = "CAPTURED" if p.captured else "pinned"
            lines.append(f"  {what}: {p.count} reactor {p.type}, {p.via}")
            lines.extend(f"      {line}" for line in p.path)
    return lines


def format_logged(report: Report, verbose: bool = False) -> list[str]:
    """Each distinct warning or error once, with how many times it came."""
    logged = report.logged()
    if not logged:
        return []
    lines = ["", "logged while the scenarios ran (each once):"]
    for p in logged:
        where = ", ".join(dict.fromkeys(p["scenarios"]))
        lines.append(f"{p['level']} {p['logger']}: {p['count']}x (in {where})")
        text = p["text"].splitlines()
        limit = len(text) if verbose else 30
        lines.extend(f"  {line}" for line in text[:limit])
        if len(text) > limit:
            lines.append(f"  ... ({len(text) - limit} more lines with -v)")
    return lines


def format_table(report: Report) -> list[str]:
    lines = [
        "| scenario | requests | objects/request | bytes/request | freed by the collector "
        "per request | reactor objects left | B/conn retained | seconds | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report.results:
        lines.append(
            f"| {r.name} | {r.requests} | {r.objects_per_request:+.2f} | "
            f"{r.bytes_per_request:+.1f} | {r.cycle_objects_per_request:g} | {r.objects_left} | "
            f"{r.bytes_per_connection:.1f} | {r.seconds:.2f} | {r.status} |"
        )
    counts = {v: sum(r.verdict == v for r in report.results) for v in ("clean", "cycles", "leak")}
    errors = sum(r.verdict == "error" for r in report.results)
    failed = sum(not r.ok for r in report.results)
    lines.append("")
    lines.append(
        f"{len(report.results)} scenarios: {counts['clean']} clean, {counts['cycles']} cycles, "
        f"{counts['leak']} leak"
        + (f", {errors} error" if errors else "")
        + f"; {failed} failed: "
        + ("ok" if report.ok else "FAILED")
    )
    return lines


def run(
    scenarios: Sequence[Scenario],
    requests: int,
    options: Options | None = None,
    progress: Callable[[ScenarioResult], None] | None = None,
) -> Report:
    """Run ``scenarios`` in order; ``progress`` gets each result as it is done."""
    options = options or Options()
    results = []
    for scenario in scenarios:
        result = run_scenario(scenario, requests, options)
        results.append(result)
        if progress is not None:
            progress(result)
    return Report(results)
