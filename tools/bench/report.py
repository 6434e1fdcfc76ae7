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
                if m is None:
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


def targets(results: dict[str, Any], summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The issue's targets: (measure, target, measured, met)."""
    rows: list[tuple[str, str, str, str]] = []

    def check(measure: str, target: str, value: float | None, text: str, ok: bool) -> None:
        if value is None:
            rows.append((measure, target, "not measured", "-"))
        else:
            rows.append((measure, target, text, "yes" if ok else "**no**"))

    def ratio_target(measure: str, scenario: str, server: str, base: str, need: float) -> None:
        r = ratio(summary, scenario, server, base)
        check(measure, f">= {need}x {base}", r, fmt_ratio(r), r is not None and r >= need)

    ratio_target("hello keep-alive c64, selectors loop", "hello", "reactor", "uvicorn", 2.0)
    hello = summary.get("hello", {})
    p99 = hello.get("reactor", {}).get("p99")
    base99 = hello.get("uvicorn", {}).get("p99")
    if p99 is not None and base99:
        check(
            "p99 latency at c64",
            "<= 1.0 ms and <= 0.5x uvicorn's",
            p99,
            f"{fmt_ms(p99)} ({p99 / base99:.2f}x uvicorn's {fmt_ms(base99)})",
            p99 <= 1.0 and p99 <= 0.5 * base99,
        )
    else:
        check("p99 latency at c64", "<= 1.0 ms and <= 0.5x uvicorn's", None, "", False)
    ratio_target("`Connection: close` c16", "close", "reactor", "uvicorn", 1.3)
    ratio_target("pipelined depth 16", "pipeline", "reactor", "uvicorn", 3.0)
    ratio_target("WSGI hello app", "hello", "reactor-wsgi", "gunicorn", 3.0)
    ratio_target("WSGI hello, 4 threads", "hello", "reactor-wsgi-threads", "gunicorn", 2.0)
    ratio_target("WSGI hello, 4 threads", "hello", "reactor-wsgi-threads", "waitress", 1.5)
    ratio_target("ASGI hello app", "hello", "reactor-asgi", "uvicorn", 1.2)
    r = ratio(summary, "hello", "reactor-uvloop", "reactor")
    check(
        "uvloop backend (hello c64)", ">= the selectors backend", r, fmt_ratio(r),
        r is not None and r >= 1.0,
    )  # fmt: skip
    idle = results.get("memory", {}).get("idle_rss", {}).get("reactor", {})
    m = idle.get("10000") or idle.get(10000)
    value = m.get("kib_per_conn") if m and "error" not in m else None
    check(
        "RSS per idle keep-alive connection at 10k", "<= 1.0 KiB", value,
        f"{value:.2f} KiB" if value is not None else "", value is not None and value <= 1.0,
    )  # fmt: skip
    hj = results.get("memory", {}).get("hijack") or {}
    per = hj.get("retention", {}).get("retained_bytes_per_conn")
    check(
        "parked hijacked connection", "<= 1 KiB Python heap beyond its leftover bytes", per,
        f"{per:.0f} B" if per is not None else "", per is not None and per <= 1024,
    )  # fmt: skip
    return rows


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
    "",
    "Under pipelining wrk's latency percentiles are not meaningful (it prints 0 for p99); "
    "they are shown as `-`. Run one comparison by hand while optimising with "
    "`python tools/bench/run.py --servers reactor,uvicorn --scenarios hello --rounds 3 "
    "--duration 5` (prints the tables; `--help` lists the options).",
]


def markdown(results: dict[str, Any], chart_name: str | None = None) -> str:
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
    rows = targets(results, summary)
    if rows:
        out += [
            "## Targets (issue 7)",
            "",
            "| measure | target | measured | met |",
            "|---|---|---|---|",
        ]
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        out.append("")
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
