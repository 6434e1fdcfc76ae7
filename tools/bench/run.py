"""`make bench`: reactor against its peers, side by side, in one run on this machine.

Owns the command line, the presets (``--quick``: one round of the main scenarios for reactor
and uvicorn in under two minutes; ``--full``: everything, written to docs/benchmarks.md and
docs/benchmarks.png), starting every server once (pinned to one core, wrk to another),
the interleaved rounds with progress lines, the memory measurements, and stopping every
server it started however the run ends (also on Ctrl-C and SIGTERM). Servers and their apps
are in peers.py and apps/, wrk in wrkrun.py, memory in memory.py, the report in report.py.

By hand, while optimising (prints the tables, writes nothing but build/bench/):
    python tools/bench/run.py --servers reactor,uvicorn --scenarios hello --rounds 3 --duration 5
It re-executes itself with build/bench-venv's Python (where the peers are installed) when
that venv exists. Tests: tests/test_bench_tools.py (no load is run by the tests).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import memory
import report
from peers import (
    PEERS,
    ROOT,
    Context,
    Running,
    StartError,
    check_routes,
    package_versions,
    start,
    unavailable,
)
from wrkrun import SCENARIOS, run_wrk, wrk_argv, wrk_version

HERE = Path(__file__).resolve().parent
BUILD = ROOT / "build" / "bench"
BENCH_VENV = ROOT / "build" / "bench-venv"
#: make bench-instr's raw results, read for the report's instruction targets.
INSTRUCTIONS_JSON = BUILD / "instructions.json"

PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "servers": "reactor,uvicorn",
        "scenarios": "hello",
        "rounds": 3,
        "duration": 5.0,
        "warmup": 1.0,
        "memory": "",
        "tracemalloc": 0,
        "hijack": 0,
        "sleeping_view": 0,
        "output": None,
        "chart": None,
    },
    "quick": {
        "servers": "reactor,uvicorn",
        "scenarios": "hello,pipeline,close",
        "rounds": 1,
        "duration": 5.0,
        "warmup": 1.0,
        "memory": "1000",
        "tracemalloc": 1000,
        "hijack": 0,
        "sleeping_view": 1,
        "output": str(BUILD / "quick.md"),
        "chart": None,
    },
    "full": {
        "servers": ",".join(PEERS),
        "scenarios": ",".join(SCENARIOS),
        "rounds": 3,
        "duration": 4.0,
        "warmup": 1.0,
        "memory": "1000,10000",
        "tracemalloc": 10000,
        "hijack": 1000,
        "sleeping_view": 3,
        "output": str(ROOT / "docs" / "benchmarks.md"),
        "chart": str(ROOT / "docs" / "benchmarks.png"),
    },
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark reactor against its peers (wrk, loopback only).",
        epilog="servers: " + ", ".join(PEERS) + "; scenarios: " + ", ".join(SCENARIOS),
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="make bench QUICK=1: under 2 minutes")
    mode.add_argument("--full", action="store_true", help="make bench: everything, into docs/")
    p.add_argument("--servers", help="comma-separated (default reactor,uvicorn; 'all')")
    p.add_argument("--scenarios", help="comma-separated (default hello; 'all')")
    p.add_argument("--rounds", type=int, help="interleaved rounds; medians are reported")
    p.add_argument("--duration", type=float, help="seconds per wrk run")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per server and scenario")
    p.add_argument(
        "--memory",
        help="idle keep-alive connection counts for RSS, e.g. 1000,10000 (0 or empty: none)",
    )
    p.add_argument("--tracemalloc", type=int, help="reactor tracemalloc idle conns (0: off)")
    p.add_argument("--hijack", type=int, help="parked hijacked conns (0: off)")
    p.add_argument(
        "--sleeping-view", type=int, help="rounds of issue 12's sleeping-view scenario (0: off)"
    )
    p.add_argument("--output", help="write the Markdown report here")
    p.add_argument("--chart", help="write the PNG chart here")
    p.add_argument("--json", help="raw results (default build/bench/<quick|full|results>.json)")
    p.add_argument("--from-json", help="only render the report from saved raw results")
    p.add_argument("--no-reexec", action="store_true", help="do not switch to build/bench-venv")
    args = p.parse_args(argv)
    name = "quick" if args.quick else "full" if args.full else "default"
    preset = PRESETS[name]
    if args.json is None:
        args.json = str(BUILD / f"{'results' if name == 'default' else name}.json")
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.servers == "all":
        args.servers = ",".join(PEERS)
    if args.scenarios == "all":
        args.scenarios = ",".join(SCENARIOS)
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.memory_list = [int(n) for n in args.memory.split(",") if n.strip() and int(n)]  # 0: off
    for name in args.server_list:
        if name not in PEERS:
            p.error(f"unknown server {name!r}: choose from {', '.join(PEERS)}")
    for name in args.scenario_list:
        if name not in SCENARIOS:
            p.error(f"unknown scenario {name!r}: choose from {', '.join(SCENARIOS)}")
    if args.rounds < 1 or args.duration < 1:
        p.error("--rounds must be >= 1 and --duration >= 1")
    return args


def maybe_reexec(args: argparse.Namespace) -> None:
    python = BENCH_VENV / "bin" / "python"
    if args.no_reexec or not python.exists():
        return
    if Path(sys.prefix).resolve() == BENCH_VENV.resolve():
        return
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def reactor_revision(tree: Path = ROOT) -> str:
    """``git rev-parse --short HEAD`` of ``tree``, marked when its reactor/ has changes."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(tree), "status", "--porcelain", "--", "reactor"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except OSError:
        return "unknown"
    return f"{rev or 'unknown'}{' + uncommitted changes' if dirty else ''}"


def reactor_code_id(tree: Path = ROOT) -> str:
    """What identifies the reactor code of ``tree`` whatever else was committed since: the
    git tree of its reactor/ (``git rev-parse HEAD:reactor``), and a hash of the uncommitted
    changes to it, if any. Two runs with the same id measured the same code."""
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD:reactor"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        changes = subprocess.run(
            ["git", "-C", str(tree), "diff", "HEAD", "--", "reactor"],
            capture_output=True, timeout=30,
        ).stdout  # fmt: skip
    except OSError:
        return "unknown"
    if not head:
        return "unknown"
    return head + (f"+{hashlib.sha1(changes).hexdigest()[:8]}" if changes else "")


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def pinning() -> tuple[int | None, int | None, str]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2 and shutil.which("taskset"):
        return (
            cpus[0],
            cpus[1],
            f"server pinned to core {cpus[0]} (`taskset -c {cpus[0]}`), wrk (one thread) to "
            f"core {cpus[1]}",
        )
    return None, None, "not pinned (fewer than 2 cores or no taskset): server and wrk share"


def make_www(build: Path) -> Path:
    www = build / "www"
    target = www / "static" / "1m.bin"
    if not target.exists() or target.stat().st_size != 1 << 20:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(os.urandom(1 << 20))
    return www


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    maybe_reexec(args)
    if args.from_json:
        write_report(args, json.loads(Path(args.from_json).read_text()))
        return 0
    signal.signal(signal.SIGTERM, _sigterm)
    # Ctrl-C must stop the servers even when the shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if shutil.which("wrk") is None:
        log("wrk is not installed: apt-get install wrk (make bench does it)")
        return 2
    BUILD.mkdir(parents=True, exist_ok=True)
    server_cpu, wrk_cpu, pin_note = pinning()
    ctx = Context(python=sys.executable, build=BUILD, www=make_www(BUILD), server_cpu=server_cpu)
    started = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "command": os.environ.get("BENCH_COMMAND")
            or "python tools/bench/run.py " + " ".join(sys.argv[1:]),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(),
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "pinning": pin_note,
            "rounds": args.rounds,
            "duration": args.duration,
            "warmup": args.warmup,
            "versions": {**package_versions(ctx.python), "wrk": wrk_version()},
            "reactor": reactor_revision(),
            "reactor_code": reactor_code_id(),
            "loadavg": [loadavg()],
        },
        "servers": {},
        "skipped": {},
        "scenarios": args.scenario_list,
        "runs": {s: {} for s in args.scenario_list},
        "memory": {},
    }
    log(f"bench: {results['meta']['cpu']}, {os.cpu_count()} cores; {pin_note}")
    log(f"bench: python {ctx.python}")
    servers = []
    for name in args.server_list:
        reason = unavailable(PEERS[name], ctx)
        if reason is None:
            servers.append(name)
            results["servers"][name] = PEERS[name].label
        else:
            results["skipped"][name] = reason
            log(f"bench: {name}: skipped: {reason}")
    running: dict[str, Running] = {}
    try:
        if args.scenario_list and servers:
            throughput(args, ctx, servers, running, results, wrk_cpu, started)
        for r in list(running.values()):
            r.stop()
        running.clear()
        measure_memory(args, ctx, servers, results, wrk_cpu)
        if args.sleeping_view:
            results["sleeping_view"] = sleeping_view(args.sleeping_view)
    except KeyboardInterrupt:
        log("bench: interrupted; stopping the servers")
        return 130
    finally:
        for r in running.values():
            r.stop()
        results["meta"]["loadavg"].append(loadavg())
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    write_report(args, results)
    log(f"bench: done in {fmt_time(time.monotonic() - started)}; raw results in {args.json}")
    return 0


# Sections of the report that other tools write (make bench-instr's), kept across a rewrite.
KEPT_SECTIONS = ("## Instructions per request (make bench-instr)",)


def kept_sections(path: Path) -> str:
    """The part of an existing report from the first kept section on ("" if none)."""
    try:
        old = path.read_text()
    except OSError:
        return ""
    starts = [i for i in (old.find(h) for h in KEPT_SECTIONS) if i >= 0]
    return "\n" + old[min(starts) :] if starts else ""


def write_report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    chart_name = None
    if args.chart:
        try:
            report.chart(results, Path(args.chart))
            chart_name = os.path.relpath(args.chart, Path(args.output or ".").parent)
            log(f"bench: chart written to {args.chart}")
        except ImportError as exc:
            log(f"bench: no chart ({exc}); make bench installs matplotlib")
    instructions = None
    if INSTRUCTIONS_JSON.exists():
        try:
            instructions = json.loads(INSTRUCTIONS_JSON.read_text())
        except ValueError as exc:
            log(f"bench: {INSTRUCTIONS_JSON} unreadable ({exc}); no instruction targets")
    text = report.markdown(results, chart_name, instructions)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        text += kept_sections(out)
        out.write_text(text)
        log(f"bench: report written to {args.output}")
    start = text.find("## Targets")
    print(text[max(0, start) : text.find("## How the peers")].rstrip())


def throughput(
    args: argparse.Namespace,
    ctx: Context,
    servers: list[str],
    running: dict[str, Running],
    results: dict[str, Any],
    wrk_cpu: int | None,
    started: float,
) -> None:
    for name in list(servers):
        try:
            running[name] = start(PEERS[name], ctx)
        except StartError as exc:
            log(f"bench: {exc}")
            results["skipped"][name] = "did not start (see build/bench/logs/)"
            results["servers"].pop(name, None)
            servers.remove(name)
            continue
        problems = check_routes(running[name])
        for problem in problems:
            log(f"bench: WARNING {name} {problem}")
        log(f"bench: {name} listening on 127.0.0.1:{running[name].port} (pid {running[name].pid})")
    scenarios = args.scenario_list
    # (A reference peer, the floor, serves only some scenarios.)
    pairs = sum(1 for name in servers for s in scenarios if PEERS[name].serves(s))
    total = pairs * args.rounds
    warm = args.warmup if args.warmup >= 1 else 0
    per_run = args.duration + 0.4
    eta = total * per_run + (pairs * (warm + 0.4) if warm else 0)
    log(
        f"bench: {len(servers)} servers x {len(scenarios)} scenarios x {args.rounds} rounds "
        f"({total} runs) of {args.duration:g} s: about {fmt_time(eta)} of load"
    )
    dead: set[str] = set()

    def one(name: str, scenario: str, duration: float) -> dict[str, Any] | None:
        r = running[name]
        if name in dead:
            return None
        if not r.alive():
            dead.add(name)
            log(f"bench: {name} died; its log:\n{r.log_tail()}")
            return None
        argv = wrk_argv(SCENARIOS[scenario], r.port, duration, cpu=wrk_cpu)
        try:
            res = run_wrk(argv, duration)
        except (ValueError, subprocess.TimeoutExpired) as exc:
            log(f"bench: {name} {scenario}: {exc}")
            return None
        return {
            "rps": res.requests_per_sec,
            "p50": res.p50_ms,
            "p99": res.p99_ms,
            "errors": res.errors,
            "requests": res.requests,
        }

    if warm:
        log(f"bench: warm-up, {warm:g} s per server and scenario")
        for scenario in scenarios:
            for name in servers:
                if PEERS[name].serves(scenario):
                    one(name, scenario, warm)
    done = 0
    load_started = time.monotonic()
    for rnd in range(args.rounds):
        order = servers[rnd % len(servers) :] + servers[: rnd % len(servers)]
        for scenario in scenarios:
            for name in order:
                if not PEERS[name].serves(scenario):
                    continue
                res = one(name, scenario, args.duration)
                done += 1
                elapsed = time.monotonic() - load_started
                left = elapsed / done * (total - done)
                if res is None:
                    status = "failed"
                else:
                    results["runs"][scenario].setdefault(name, []).append(res)
                    errors = f", {res['errors']} errors" if res["errors"] else ""
                    status = (
                        f"{res['rps']:>9,.0f} req/s  p50 {report.fmt_ms(res['p50'])}  "
                        f"p99 {report.fmt_ms(res['p99'])}{errors}"
                    )
                log(
                    f"[{done:>3}/{total}] round {rnd + 1}/{args.rounds} {scenario:<8} "
                    f"{name:<15} {status}  ({fmt_time(time.monotonic() - started)} elapsed, "
                    f"~{fmt_time(left)} left)"
                )


def sleeping_view(rounds: int) -> dict[str, Any]:
    """Issue 12's scenario (tools/bench/sleeping_view.py): 4 concurrent requests to a WSGI
    view that sleeps 0.5 s under ``reactor serve --threads 4``, ``rounds`` times."""
    log(f"bench: sleeping view: 4 concurrent 0.5 s requests, --threads 4, {rounds} rounds")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # reactor from this tree
    done = subprocess.run(
        [sys.executable, str(HERE / "sleeping_view.py"), "--rounds", str(rounds), "--json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        log(f"bench: sleeping view: failed: {done.stderr.strip()[-300:]}")
        return {"error": done.stderr.strip()[-300:] or "no output"}
    log(f"bench: sleeping view: worst {result['worst']:.3f} s")
    return result


def measure_memory(
    args: argparse.Namespace,
    ctx: Context,
    servers: list[str],
    results: dict[str, Any],
    client_cpu: int | None,
) -> None:
    mem = results["memory"]
    if args.memory_list:
        mem["idle_rss"] = {}
    for n in args.memory_list:
        for name in servers:
            if PEERS[name].scenarios is not None:  # a reference, not a server
                continue
            log(f"bench: memory: {name}, {n:,} idle keep-alive connections")
            try:
                m = memory.idle_rss(PEERS[name], ctx, n, client_cpu=client_cpu)
            except (OSError, RuntimeError, StartError, subprocess.TimeoutExpired) as exc:
                log(f"bench: memory: {name} at {n}: failed: {exc}")
                m = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
            else:
                dead = "" if m["server_alive"] else " (server died)"
                log(
                    f"bench: memory: {name}: {m['kib_per_conn']} KiB/conn "
                    f"({m['rss_before_kib']} -> {m['rss_after_kib']} KiB, "
                    f"{m['connections']} open, {m['failed']} failed){dead}"
                )
            mem["idle_rss"].setdefault(name, {})[str(n)] = m
    if args.tracemalloc and "reactor" in servers:
        log(f"bench: memory: reactor tracemalloc, {args.tracemalloc:,} idle connections")
        try:
            mem["tracemalloc"] = memory.reactor_tracemalloc(ctx, args.tracemalloc)
            log(f"bench: memory: {mem['tracemalloc']['bytes_per_conn']} B/conn (tracemalloc)")
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            mem["tracemalloc"] = {"error": str(exc).splitlines()[0]}
            log(f"bench: memory: tracemalloc failed: {exc}")
    if args.hijack and "reactor" in servers:
        log(f"bench: memory: hijack_memory.py, {args.hijack:,} parked hijacked connections")
        try:
            mem["hijack"] = memory.hijack(ctx, args.hijack)
            per = mem["hijack"]["retention"]["retained_bytes_per_conn"]
            log(f"bench: memory: {per} B retained per parked hijacked connection")
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            mem["hijack"] = {"error": str(exc).splitlines()[0]}
            log(f"bench: memory: hijack failed: {exc}")


if __name__ == "__main__":
    sys.exit(main())
