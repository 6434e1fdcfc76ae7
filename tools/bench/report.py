"""The benchmark's output: medians, the Markdown report, the issue's targets and the chart.

Owns reducing the rounds to medians, the ratio to uvicorn, the tables (per scenario, summary,
memory, targets) and the PNG bar chart (matplotlib, Agg backend, imported only when a chart is
asked for). It runs nothing. Tests: tests/test_bench_tools.py.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from wrkrun import SCENARIOS

BASELINE = "uvicorn"
#: The reference peer of tools/bench/apps/floor_app.py: what a loop that parses nothing reaches.
FLOOR = "floor"


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """``runs[scenario][server]`` (one dict per round) to medians per scenario and server."""
    out: dict[str, dict[str, Any]] = {}
    for scenario, by_server in runs.items():
        out[scenario] = {}
        for server, rounds in by_server.items():
            if not rounds:
                continue
            out[scenario][server] = {
                "rps": statistics.median(r["rps"] for r in rounds),
                "p50": _median([r["p50"] for r in rounds]),
                "p99": _median([r["p99"] for r in rounds]),
                "errors": sum(r["errors"] for r in rounds),
                "rounds": len(rounds),
            }
    return out


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def ratio(
    summary: dict[str, Any], scenario: str, server: str, base: str = BASELINE
) -> float | None:
    cell = summary.get(scenario, {})
    if server not in cell or base not in cell or not cell[base]["rps"]:
        return None
    return float(cell[server]["rps"] / cell[base]["rps"])


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms * 1000:.0f} µs" if ms < 1 else f"{ms:.2f} ms"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def scenario_table(results: dict[str, Any], summary: dict[str, Any], scenario: str) -> list[str]:
    labels = results["servers"]
    cells = summary.get(scenario, {})
    lines = [
        "| server | req/s | vs uvicorn | p50 | p99 | errors |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    ordered = sorted(cells, key=lambda s: -cells[s]["rps"])
    for server in ordered:
        c = cells[server]
        lines.append(
            f"| {labels.get(server, server)} | {c['rps']:,.0f} | "
            f"{fmt_ratio(ratio(summary, scenario, server))} | {fmt_ms(c['p50'])} | "
            f"{fmt_ms(c['p99'])} | {c['errors'] or ''} |"
        )
    return lines


def summary_table(results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    scenarios = [s for s in results["scenarios"] if s in summary]
    lines = [
        "| server | " + " | ".join(scenarios) + " |",
        "|---|" + "--:|" * len(scenarios),
    ]
    for server, label in results["servers"].items():
        row = []
        for scenario in scenarios:
            cell = summary[scenario].get(server)
            if cell is None:
                row.append("-")
            else:
                r = ratio(summary, scenario, server)
                row.append(f"{cell['rps']:,.0f}" + ("" if r is None else f" ({r:.2f}x)"))
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return lines


def memory_tables(results: dict[str, Any]) -> list[str]:
    memory = results.get("memory", {})
    lines: list[str] = []
    idle = memory.get("idle_rss", {})
    if idle:
        sizes = sorted({int(n) for per in idle.values() for n in per})
        lines += [
            "RSS growth of the server process (VmRSS, its children included) per idle "
            "keep-alive connection, each connection having answered one request; a fresh "
            "server per measurement:",
            "",
            "| server | " + " | ".join(f"KiB/conn at {n:,}" for n in sizes) + " |",
            "|---|" + "--:|" * len(sizes),
        ]
        for server, per in idle.items():
            row = []
            for n in sizes:
                m = per.get(str(n)) or per.get(n)  # type: ignore[call-overload]
                if m is None or m.get("kib_per_conn", 0) is None:  # (none opened)
                    row.append("-")
                elif "error" in m:
                    row.append("failed")
                else:
                    note = f" ({m['connections']:,} opened)" if m["failed"] else ""
                    row.append(f"{m['kib_per_conn']:.2f}{note}")
            label = results["servers"].get(server, server)
            lines.append(f"| {label} | " + " | ".join(row) + " |")
        lines.append("")
    tm = memory.get("tracemalloc")
    if tm:
        if "error" in tm:
            lines.append(f"reactor tracemalloc per idle connection: failed ({tm['error']})")
        else:
            lines.append(
                f"reactor, Python heap per idle keep-alive connection (tracemalloc, "
                f"{tm['connections']:,} connections): **{tm['bytes_per_conn']:.0f} B**; "
                "top sites: " + "; ".join(f"`{s}`" for s in tm["top_sites"][:4])
            )
        lines.append("")
    hj = memory.get("hijack")
    if hj:
        if "error" in hj:
            lines.append(f"hijack retention: failed ({hj['error']})")
        else:
            ret, cyc = hj["retention"], hj["cycle"]
            lines.append(
                f"reactor, retained Python heap per parked hijacked connection "
                f"(tools/bench/hijack_memory.py, {ret['connections']:,} connections): "
                f"**{ret['retained_bytes_per_conn']:.0f} B** beyond "
                f"{ret['leftover_bytes']} leftover bytes; peak per accept-parse-hijack-close "
                f"cycle {cyc['peak_bytes_per_cycle_median']:.0f} B"
            )
        lines.append("")
    return lines


def hello_instructions(instructions: dict[str, Any] | None, server: str) -> float | None:
    """Instructions per hello request of ``server`` in make bench-instr's raw results
    (build/bench/instructions.json; None when not measured)."""
    rows = (instructions or {}).get("servers", {})
    cell = rows.get(server, {}).get("scenarios", {}).get("hello")
    return None if not cell else float(cell["per_request"])


def targets(
    results: dict[str, Any], summary: dict[str, Any], instructions: dict[str, Any] | None = None
) -> list[tuple[str, str, str, str]]:
    """Issue 15's targets (and issue 7's WSGI one): (measure, target, measured, met).
    ``instructions`` is make bench-instr's output, for the instruction counts."""
    rows: list[tuple[str, str, str, str]] = []

    def check(measure: str, target: str, value: float | None, text: str, ok: bool) -> None:
        if value is None:
            rows.append((measure, target, "not measured", "-"))
        else:
            rows.append((measure, target, text, "yes" if ok else "**no**"))

    # The floor is shown beside the two targets that sit closest to it (the latency and the
    # 64 KiB response: the kernel's and the wake-ups' share of a request is largest there).
    def ratio_target(
        measure: str, scenario: str, server: str, base: str, need: float, floor: bool = False
    ) -> None:
        r = ratio(summary, scenario, server, base)
        text = fmt_ratio(r)
        reached = ratio(summary, scenario, FLOOR, base) if floor else None
        if r is not None and reached is not None:
            text += f" (the floor: {reached:.2f}x)"
        check(measure, f">= {need}x {base}", r, text, r is not None and r >= need)

    def latency_target(
        measure: str, scenario: str, key: str, need: float, floor: bool = False
    ) -> None:
        cells = summary.get(scenario, {})
        mine = cells.get("reactor", {}).get(key)
        base = cells.get(BASELINE, {}).get(key)
        value = mine / base if mine is not None and base else None
        text = "" if value is None else f"{fmt_ms(mine)} ({value:.2f}x uvicorn's {fmt_ms(base)})"
        reached = cells.get(FLOOR, {}).get(key) if floor else None
        if value is not None and reached is not None and base:
            text += f"; the floor: {fmt_ms(reached)} ({reached / base:.2f}x)"
        check(measure, f"<= {need}x uvicorn's", value, text, value is not None and value <= need)

    ratio_target("hello keep-alive c64, selectors loop", "hello", "reactor", BASELINE, 2.0)
    latency_target("p99 latency, hello c64", "hello", "p99", 0.5)
    latency_target("p50 latency, 1 connection", "latency", "p50", 0.7, floor=True)
    ratio_target("pipelined depth 16", "pipeline", "reactor", BASELINE, 3.0)
    ratio_target("`Connection: close` c16", "close", "reactor", BASELINE, 1.5)
    ratio_target("POST 1 KiB body", "post", "reactor", BASELINE, 1.5)
    ratio_target("64 KiB response", "64k", "reactor", BASELINE, 1.5, floor=True)
    r = ratio(summary, "hello", "reactor-uvloop", "reactor")
    check(
        "uvloop backend (hello c64)", ">= the selectors loop", r, fmt_ratio(r),
        r is not None and r >= 1.0,
    )  # fmt: skip
    for server, label, need in (
        ("reactor", "selectors loop", 0.5),
        ("reactor-asyncio", "asyncio backend", 0.6),
        ("reactor-uvloop", "uvloop backend", 0.6),
    ):
        mine = hello_instructions(instructions, server)
        base = hello_instructions(instructions, BASELINE)
        r = mine / base if mine is not None and base else None
        check(
            f"instructions per hello request, {label}", f"<= {need}x uvicorn's", r,
            f"{mine:,.0f} ({r:.2f}x uvicorn's {base:,.0f})" if r is not None else "",
            r is not None and r <= need,
        )  # fmt: skip
    # The most connections measured (10,000 in make bench, 1,000 in make bench QUICK=1).
    idle = results.get("memory", {}).get("idle_rss", {}).get("reactor", {})
    n = max((int(k) for k, m in idle.items() if "error" not in m), default=None)
    value = idle[str(n)]["kib_per_conn"] if n is not None else None
    check(
        "RSS per idle keep-alive connection", "<= 1.0 KiB", value,
        f"{value:.2f} KiB (at {n:,} connections)" if value is not None else "",
        value is not None and value <= 1.0,
    )  # fmt: skip
    hj = results.get("memory", {}).get("hijack") or {}
    per = hj.get("retention", {}).get("retained_bytes_per_conn")
    check(
        "parked hijacked connection", "<= 0.35 KiB Python heap beyond its leftover bytes", per,
        f"{per / 1024:.2f} KiB ({per:.0f} B)" if per is not None else "",
        per is not None and per <= 0.35 * 1024,
    )  # fmt: skip
    ratio_target("WSGI hello app (issue 7)", "hello", "reactor-wsgi", "gunicorn", 3.0)
    # Issue 12's targets.
    threaded = "reactor-wsgi-threads"
    ratio_target("WSGI hello, 4 threads (issue 12)", "hello", threaded, "gunicorn", 2.0)
    ratio_target("WSGI hello, 4 threads (issue 12)", "hello", threaded, "waitress", 1.5)
    ratio_target("ASGI hello app (issue 12)", "hello", "reactor-asgi", BASELINE, 1.2)
    sv = results.get("sleeping_view") or {}
    worst = sv.get("worst")
    check(
        "sleeping view, `--threads 4` (issue 12)",
        "4 concurrent 0.5 s requests, each answered <= 0.7 s", worst,
        f"worst {worst:.3f} s of {len(sv.get('rounds', ()))} rounds" if worst is not None else "",
        worst is not None and worst <= 0.7,
    )  # fmt: skip
    return rows


def instructions_note(results: dict[str, Any], instructions: dict[str, Any] | None) -> str:
    """Whether the instruction counts are of the code the wrk run measured: compared by
    run.reactor_code_id (reactor/'s git tree and uncommitted changes) when both runs
    recorded it, by the revision otherwise."""
    if not instructions:
        return (
            "The instruction counts come from `make bench-instr` "
            "(build/bench/instructions.json), which has not been run."
        )
    theirs, ours = instructions.get("reactor", "unknown"), results["meta"]["reactor"]
    where = f"`make bench-instr` of {instructions.get('date', '?')}"
    code_theirs = instructions.get("reactor_code")
    code_ours = results["meta"].get("reactor_code")
    if code_theirs and code_ours and "unknown" not in (code_theirs, code_ours):
        same = code_theirs == code_ours
        detail = f" (reactor/ {code_theirs} and {code_ours})"
    else:
        same = theirs == ours and "uncommitted" not in ours
        detail = ""
    if not same:
        return (
            f"**Warning**: the instruction counts ({where}, reactor {theirs}) and the wrk run "
            f"(reactor {ours}) are not of the same code{detail}: run both from one commit."
        )
    return f"The instruction counts ({where}) are of the same reactor code as the wrk run."


NOTES = [
    "## How the peers are set up",
    "",
    "Each app is in tools/bench/apps/ (Go: tools/bench/go/main.go) and answers `/`, `/64k`, "
    "`/post` and `/static/1m.bin`; keep-alive timeouts are raised to 600 s everywhere so the "
    "idle-connection measurement is not cut short, access logs are off.",
    "",
    "- reactor: a plain handler `(w, r)` on `Server` + `SelectorLoop`; the uvloop variant "
    "runs the same handler on `reactor.new_loop('uvloop')`; the WSGI variant serves the WSGI "
    "app below through `reactor.wsgi.WSGIHandler`; static files through `StaticFiles`.",
    "- uvicorn: a raw ASGI app, `--loop uvloop --http httptools`, one process; it reads the "
    "static file in 64 KiB pieces.",
    "- aiohttp: `web.Application` on uvloop; static files with `add_static` (sendfile).",
    "- Tornado: `RequestHandler`s on its default asyncio loop; `StaticFileHandler`.",
    "- gunicorn: one `gthread` worker with 4 threads, the same WSGI app as reactor's WSGI "
    "variant (static files through `wsgi.file_wrapper`, i.e. sendfile).",
    "- http.server: `ThreadingHTTPServer` with `protocol_version = 'HTTP/1.1'`, a buffered "
    "`wfile` and TCP_NODELAY (unbuffered, the head and body go out in two sends and Nagle "
    "makes the second wait 40 ms for a delayed ACK), and `Connection: close` echoed when it "
    "closes (otherwise wrk counts every close as an error).",
    "- Go: `net/http` with `GOMAXPROCS=1`, `http.FileServer` for static files.",
    "- The floor (tools/bench/apps/floor_app.py): not a server but a reference, a `selectors` "
    "loop that counts the request heads in each `recv` and sends prepared answers; it parses "
    "nothing, so it pays only what every Python server on one thread pays per request (a "
    "poll, a `recv`, a `send`, the loop around them). It runs the hello, latency, pipeline "
    "and 64k scenarios: what it reaches there is the most a Python server can on this "
    "machine, and the Targets table shows it beside the latency and 64 KiB targets.",
    "",
    "Under pipelining wrk's latency percentiles are not meaningful (it prints 0 for p99); "
    "they are shown as `-`. Run one comparison by hand while optimising with "
    "`python tools/bench/run.py --servers reactor,uvicorn --scenarios hello --rounds 3 "
    "--duration 5` (prints the tables; `--help` lists the options).",
]


def markdown(
    results: dict[str, Any],
    chart_name: str | None = None,
    instructions: dict[str, Any] | None = None,
) -> str:
    """The report; ``instructions`` is make bench-instr's raw output (None: not run)."""
    summary = summarize(results["runs"])
    meta = results["meta"]
    out = [
        "# Benchmarks",
        "",
        f"Generated by `{meta['command']}` (tools/bench/run.py) on {meta['date']}; "
        "regenerate it rather than editing it.",
        "",
        "## Machine and method",
        "",
        f"- CPU: {meta['cpu']}, {meta['nproc']} cores (`nproc`); kernel {meta['kernel']}",
        f"- {meta['pinning']}; load average (1/5/15 min) "
        + " at the start, ".join(meta.get("loadavg", ["?"]))
        + " at the end (other work on the machine skews every server alike, not evenly)",
        f"- {meta['rounds']} interleaved rounds of {meta['duration']} s per run (each round "
        "visits every scenario and, within it, every server in turn, rotating the order), "
        f"after a {meta['warmup']} s warm-up per server and scenario; the tables give medians "
        "(p50/p99 from `wrk --latency`)",
        "- every server is one process (gunicorn: its arbiter and one worker) on 127.0.0.1 "
        "serving a minimal app of tools/bench/apps/: `GET /` answers 200 text/plain "
        "`Hello, World!`",
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f", reactor {meta['reactor']}",
    ]
    for name, reason in results.get("skipped", {}).items():
        out.append(f"- skipped: {name}: {reason}")
    out.append("")
    rows = targets(results, summary, instructions)
    if rows:
        out += [
            "## Targets (issue 15)",
            "",
            "| measure | target | measured | met |",
            "|---|---|---|---|",
        ]
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        out += ["", instructions_note(results, instructions), ""]
    if summary:
        out += ["## Throughput (req/s, ratio to uvicorn)", ""]
        out += summary_table(results, summary)
        out.append("")
        if chart_name:
            out += [f"![req/s per scenario]({chart_name})", ""]
        for scenario in results["scenarios"]:
            if scenario not in summary:
                continue
            sc = SCENARIOS[scenario]
            script = f" -s tools/bench/lua/{sc.script}" if sc.script else ""
            header = "".join(f" -H '{h}'" for h in sc.headers)
            cmd = f"wrk -t1 -c{sc.connections} --latency{header}{script} http://127.0.0.1:PORT{sc.path}"
            out += [f"### {scenario}: {sc.title}", "", f"`{cmd}`", ""]
            out += scenario_table(results, summary, scenario)
            out.append("")
    mem = memory_tables(results)
    if mem:
        out += ["## Memory", "", *mem]
    out += NOTES
    return "\n".join(out).rstrip() + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    """Horizontal bars of req/s per scenario (one panel each), plus idle RSS per connection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(results["runs"])
    labels = results["servers"]
    panels: list[tuple[str, dict[str, float], str]] = []
    for scenario in results["scenarios"]:
        cells = summary.get(scenario)
        if cells:
            panels.append(
                (SCENARIOS[scenario].title, {s: c["rps"] for s, c in cells.items()}, "req/s")
            )
    idle = results.get("memory", {}).get("idle_rss", {})
    if idle:
        n = max(int(k) for per in idle.values() for k in per)
        values = {
            s: per[str(n)]["kib_per_conn"]
            for s, per in idle.items()
            if str(n) in per and per[str(n)].get("kib_per_conn") is not None
        }
        if values:
            panels.append((f"RSS per idle connection at {n:,} (lower is better)", values, "KiB"))
    if not panels:
        return
    cols = 2 if len(panels) > 1 else 1
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 2.8 * rows), squeeze=False)
    for ax, (title, values, unit) in zip(axes.flat, panels, strict=False):
        names = sorted(values, key=lambda s: values[s])
        colors = ["#d95f02" if s.startswith("reactor") else "#7570b3" for s in names]
        ax.barh([labels.get(s, s) for s in names], [values[s] for s in names], color=colors)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(unit, fontsize=8)
        ax.tick_params(labelsize=8)
        for i, s in enumerate(names):
            ax.text(values[s], i, f" {values[s]:,.0f}" if unit == "req/s" else f" {values[s]:.2f}",
                    va="center", fontsize=7)  # fmt: skip
        ax.margins(x=0.2)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        f"reactor vs peers, {results['meta']['date']} ({results['meta']['cpu']})", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
