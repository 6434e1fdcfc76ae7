"""``reactor leakcheck``'s report: a line per scenario as it ends, the details of a leak, the
summary table and the JSON.

Owns Report, the formatting, and ``run`` (scenarios in order, a progress callback for each
result). Tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .measure import Options, ScenarioResult, run_scenario
from .scenarios import Scenario

__all__ = ["Report", "format_details", "format_line", "format_table", "run"]


@dataclass
class Report:
    results: list[ScenarioResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "scenarios": [{**asdict(r), "status": r.status} for r in self.results],
        }


def format_line(r: ScenarioResult) -> str:
    return (
        f"{r.name:<20} {r.requests:>7} requests {r.objects_left:>6} objects left "
        f"{r.bytes_per_connection:>9.1f} B/conn  {r.status}"
    )


def format_details(r: ScenarioResult) -> list[str]:
    lines = []
    if r.error is not None:
        lines.append(f"  error: {r.error}")
    lines.extend(f"  {p}" for p in r.problems)
    if r.chain:
        lines.extend(f"    {line}" for line in r.chain)
    if not r.ok and r.growth:
        lines.append(
            "  objgraph.growth(): "
            + ", ".join(f"{name} +{delta}" for name, _count, delta in r.growth[:6])
        )
    if not r.ok and r.top_sites:
        lines.append("  top tracemalloc growth sites:")
        lines.extend(f"    {site}" for site in r.top_sites[:3])
    return lines


def format_table(report: Report) -> list[str]:
    lines = [
        "| scenario | requests | connections | objects left | cyclic garbage | "
        "B/conn retained | seconds | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report.results:
        lines.append(
            f"| {r.name} | {r.requests} | {r.connections} | {r.objects_left} | "
            f"{r.cyclic_garbage} | {r.bytes_per_connection:.1f} | {r.seconds:.2f} | {r.status} |"
        )
    failed = sum(not r.ok for r in report.results)
    lines.append("")
    lines.append(
        f"{len(report.results)} scenarios, {failed} failed: "
        + ("no leaks" if report.ok else "LEAKS FOUND")
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
