"""`make bench-instr`: CPU instructions per request, counted by valgrind's callgrind.

Each server runs once under ``valgrind --tool=callgrind``, started as tools/bench/peers.py
starts it (the same commands, apps and environment, with PYTHONHASHSEED=0 and
PYTHONDONTWRITEBYTECODE=1), and answers every scenario in turn, sent by a client of this
module running outside valgrind over 16 connections:

- ``hello``: keep-alive ``GET /``, answered ``Hello, World!``;
- ``post``: ``POST /post`` with a 1 KiB body, answered with the body length (``1024``);
- ``64k``: ``GET /64k``, a 64 KiB response;
- ``pipelined``: ``GET /`` sent 16 at a time per connection, the 16 responses read back.

Per scenario the client opens fresh connections, warms them up, and then sends N1 and then N2
requests; before and after each batch (the server idle by then) ``callgrind_control --dump``
makes callgrind write the instructions counted since the previous dump to a file of its own.
``(I2 - I1) / (N2 - N1)``, I1 and I2 the counts of the two batches, is the cost of one
request: what a batch costs whatever its size (the dump, the loop waking up) cancels out.
Counted instructions do not depend on how busy the machine is, unlike req/s: this is the
figure to compare before and after a change to the core. One process per server answers all
scenarios because a Python server's start-up costs ~20 s under callgrind (40 starts would
take 13 minutes); ``callgrind_control`` reaches a server blocked in ``epoll_wait`` through
vgdb, which needs ptrace (``kernel.yama.ptrace_scope`` 0 or 1 for a child, or root).

Defaults (N1, N2 per scenario, chosen so that the default run of the five servers stays under
~8 minutes on a 2-core machine): hello 1,000/3,000, post 1,000/3,000, 64k 500/1,500,
pipelined 1,024/3,072. ``--n1``/``--n2`` set them for every scenario.

``--profile reactor/hello`` (the default) adds the per-function profile of one request of
that server and scenario: C functions from ``callgrind_annotate --inclusive=no`` of the two
batches' dumps, differenced and divided by N2 - N1; Python functions (reactor only) from
tools/bench/opcodes.py, which counts opcodes per code object outside valgrind.
``--report docs/benchmarks.md`` (as ``make bench-instr`` does) replaces the section
"## Instructions per request (make bench-instr)" of that file and keeps the rest.
``--reactor-src PATH`` puts another checkout's reactor first on PYTHONPATH (e.g. a
``git worktree`` of an older commit) to measure it with this tree's harness and apps.

    python tools/bench/instructions.py                  # five servers, four scenarios
    python tools/bench/instructions.py --servers reactor,uvicorn --scenarios hello,post

Progress goes to stderr, the table to stdout, raw numbers to ``--json``. It re-executes itself
with build/bench-venv's Python (where uvicorn is) when that venv exists.
Tests: tests/test_bench_tools.py (no server is run by the tests).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import CONNECTIONS, SCENARIOS, Scenario, connect_when_listening, drive, open_conns
from peers import (
    PEERS,
    ROOT,
    Context,
    Peer,
    free_port,
    package_versions,
    peer_env,
    raise_nofile,
    unavailable,
)
from run import (
    BENCH_VENV,
    BUILD,
    cpu_model,
    fmt_time,
    log,
    make_www,
    pinning,
    reactor_code_id,
    reactor_revision,
)

DEFAULT_SERVERS = (
    "reactor",
    "reactor-asyncio",
    "reactor-uvloop",
    "reactor-wsgi",
    "reactor-asgi",
    "uvicorn",
)
BASELINE = "uvicorn"
SECTION = "## Instructions per request (make bench-instr)"
#: Seconds to wait for a server under valgrind to exit.
EXIT_TIMEOUT = 60.0
#: Seconds the server gets to finish the work of the last response before a dump.
SETTLE = 0.3
TOTALS = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.MULTILINE)
TRIGGER = re.compile(rb"^desc: Trigger: (.*)$", re.MULTILINE)


def parse_totals(text: bytes) -> int:
    """The instruction count (first event, Ir) of a callgrind output file: its ``totals:``
    line, or the ``summary:`` line that older valgrinds write instead."""
    found = TOTALS.findall(text)
    if not found:
        raise ValueError("no totals:/summary: line in the callgrind output")
    return int(found[-1])


def per_request(i1: int, n1: int, i2: int, n2: int) -> float:
    """Instructions per request, the fixed cost of a batch cancelled out: (I2-I1)/(N2-N1)."""
    if n2 <= n1:
        raise ValueError(f"N2 ({n2}) must be larger than N1 ({n1})")
    return (i2 - i1) / (n2 - n1)


# One function line of `callgrind_annotate`: "  1,234 ( 0.5%)  file:function [object]".
ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.+?)(?:\s+\[[^\]]*\])?\s*$")


def parse_annotate(text: str) -> dict[str, tuple[str, int]]:
    """Self cost per C function of ``callgrind_annotate --inclusive=no`` output:
    ``{function: (file name, instructions)}``. Recursion levels (``f'2``) and the pieces of
    a function inlined from headers are added up; the rows equal to PROGRAM TOTALS (the
    call stack at the time of a dump, which this callgrind_annotate lists at 100%) and
    the totals line are left out."""
    total = None
    out: dict[str, tuple[str, int]] = {}
    biggest: dict[str, int] = {}
    for line in text.splitlines():
        m = ANNOTATE_LINE.match(line)
        if m is None:
            continue
        value = int(m.group(1).replace(",", ""))
        where = m.group(2)
        if where == "PROGRAM TOTALS":
            total = value
            continue
        if value == total:
            continue
        file, sep, fn = where.rpartition(":")
        if not sep:
            file, fn = "???", where
        fn = re.sub(r"'\d+$", "", fn)
        name = file.rsplit("/", 1)[-1]
        old_name, old = out.get(fn, (name, 0))
        if value > biggest.get(fn, -1):
            biggest[fn] = value
            old_name = name
        out[fn] = (old_name, old + value)
    if total is None:
        raise ValueError("no PROGRAM TOTALS line in the callgrind_annotate output")
    return out


def diff_profiles(
    one: dict[str, tuple[str, int]], two: dict[str, tuple[str, int]], n: int, top: int = 20
) -> list[tuple[str, str, float]]:
    """The ``top`` functions by instructions per request, (two - one) / n, as
    ``(function, file, per request)``, largest first."""
    rows = []
    for fn in one.keys() | two.keys():
        file = (two.get(fn) or one[fn])[0]
        cost = (two.get(fn, ("", 0))[1] - one.get(fn, ("", 0))[1]) / n
        rows.append((fn, file, cost))
    rows.sort(key=lambda r: (-r[2], r[0]))
    return rows[:top]


def annotate(path: Path) -> dict[str, tuple[str, int]]:
    proc = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", str(path)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return parse_annotate(proc.stdout)


def reactor_env(peer: Peer, ctx: Context, reactor_src: Path | None) -> dict[str, str]:
    """peers.py's environment for ``peer``, with ``reactor_src`` first on PYTHONPATH, hash
    randomisation off and no bytecode written (so that runs import the same way)."""
    env = peer_env(peer, ctx)
    if peer.reactor and reactor_src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(reactor_src), env["PYTHONPATH"]])
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def valgrind_argv(out_file: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--trace-children=no",
        "--vgdb=yes",  # callgrind_control --dump goes through vgdb
        f"--callgrind-out-file={out_file}",
        "--dump-line=no",
        "--dump-instr=no",
    ]


def stop(proc: subprocess.Popen[bytes], name: str, log_path: Path) -> int:
    """SIGTERM, and the exit status once the server has shut down. A server still running
    after EXIT_TIMEOUT gets its stack (callgrind_control -b) logged and one more SIGTERM."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
    log(f"instr: WARNING {name} still runs {EXIT_TIMEOUT:g} s after SIGTERM; signalling again")
    with open(log_path, "ab") as logf:
        logf.write(b"\n--- instructions.py: no exit after SIGTERM; callgrind_control -b:\n")
        logf.flush()
        subprocess.run(
            ["callgrind_control", "-b", str(proc.pid)], stdout=logf, stderr=subprocess.STDOUT,
            timeout=60, check=False,
        )  # fmt: skip
    proc.send_signal(signal.SIGTERM)
    return proc.wait(EXIT_TIMEOUT)


class Dumper:
    """``callgrind_control --dump`` of one server under callgrind; each dump is the file
    ``<out file>.<k>`` (k = 1, 2, ...) holding what was counted since the previous one."""

    def __init__(self, proc: subprocess.Popen[bytes], out_file: Path) -> None:
        self.proc = proc
        self.out_file = out_file
        self.k = 0

    def dump(self, label: str) -> tuple[Path, int]:
        """Dump now (after SETTLE s for the server to go idle); the file and its total."""
        time.sleep(SETTLE)
        self.k += 1
        path = self.out_file.with_name(f"{self.out_file.name}.{self.k}")
        proc = subprocess.run(
            ["callgrind_control", "--dump=" + label, str(self.proc.pid)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                text = path.read_bytes()
                total = parse_totals(text)
            except (OSError, ValueError):
                time.sleep(0.1)
                continue
            trigger = TRIGGER.search(text)
            if trigger is None or trigger.group(1).split()[-1:] != [label.encode()]:
                raise RuntimeError(f"{path} is not the dump {label!r}")
            return path, total
        raise RuntimeError(
            f"callgrind_control --dump wrote no {path}: {proc.stdout.strip()} "
            f"{proc.stderr.strip()} (vgdb needs ptrace; see this module's docstring)"
        )


@dataclass
class Batch:
    requests: int
    instructions: int
    dump: Path


def measure_server(
    peer: Peer,
    ctx: Context,
    env: dict[str, str],
    scenarios: list[Scenario],
    sizes: dict[str, tuple[int, int]],
    out_dir: Path,
) -> dict[str, tuple[Batch, Batch]]:
    """One run of ``peer`` under callgrind answering every scenario: per scenario the batch
    of N1 and the batch of N2 requests."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"callgrind.{peer.name}.out"
    for old in out_dir.glob(f"{out_file.name}*"):
        old.unlink()
    log_path = out_dir / f"{peer.name}.log"
    port = free_port()
    argv = valgrind_argv(out_file) + peer.command(ctx, port)
    if ctx.server_cpu is not None:
        argv = ["taskset", "-c", str(ctx.server_cpu), *argv]
    started = time.monotonic()
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=out_dir,  # not a checkout: nothing imports from the working directory
            start_new_session=True,
            preexec_fn=raise_nofile,
        )
    out: dict[str, tuple[Batch, Batch]] = {}
    try:
        connect_when_listening(port, proc).close()
        log(f"instr: {peer.name}: listening after {time.monotonic() - started:.0f} s")
        dumper = Dumper(proc, out_file)
        for sc in scenarios:
            conns = open_conns(port)
            try:
                # Every connection answers a few requests before counting starts: first
                # calls, caches and buffers are warm in both batches.
                drive(conns, sc, 2 * CONNECTIONS * sc.depth)
                dumper.dump(f"{sc.name}-warm")
                batches = []
                for n in sizes[sc.name]:
                    drive(conns, sc, n)
                    path, total = dumper.dump(f"{sc.name}-{n}")
                    batches.append(Batch(n, total, path))
            finally:
                for c in conns:
                    c.close()
            out[sc.name] = (batches[0], batches[1])
            cost = per_request(
                batches[0].instructions, batches[0].requests,
                batches[1].instructions, batches[1].requests,
            )  # fmt: skip
            log(
                f"instr: {peer.name} {sc.name}: {cost:,.0f} instructions per request "
                f"({fmt_time(time.monotonic() - started)} since start)"
            )
        rc = stop(proc, peer.name, log_path)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        log("instr: server log:\n" + "\n".join(tail))
        raise
    # uvicorn re-raises the SIGTERM it caught once it has shut down.
    if rc not in (0, -signal.SIGTERM):
        log(f"instr: WARNING {peer.name} exited with {rc} (see {log_path})")
    return out


def fmt_count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(results: dict[str, Any]) -> str:
    """Instructions per request, one row per server, one column per scenario, each cell
    with its ratio to uvicorn's."""
    names = results["scenarios"]
    lines = [
        "| server | " + " | ".join(names) + " |",
        "|---|" + "--:|" * len(names),
    ]
    for row in results["servers"].values():
        cells = []
        for name in names:
            cell = row["scenarios"].get(name)
            if cell is None:
                cells.append("-")
                continue
            ratio = cell.get("vs_uvicorn")
            cells.append(
                fmt_count(cell["per_request"]) + ("" if ratio is None else f" ({ratio:.2f}x)")
            )
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def c_profile_table(profile: dict[str, Any]) -> list[str]:
    total = profile["total"]
    lines = [
        "| instructions/request | share | function | file |",
        "|--:|--:|---|---|",
    ]
    for fn, file, cost in profile["top"]:
        lines.append(f"| {cost:,.0f} | {cost / total:.1%} | `{fn}` | {file} |")
    return lines


def py_profile_table(profile: dict[str, Any]) -> list[str]:
    total = profile["opcodes"]
    lines = [
        "| opcodes/request | share | calls/request | function |",
        "|--:|--:|--:|---|",
    ]
    for label, opcodes, calls in profile["top"]:
        lines.append(f"| {opcodes:,.1f} | {opcodes / total:.1%} | {calls:.2f} | `{label}` |")
    return lines


def section(results: dict[str, Any]) -> str:
    """The report's section "## Instructions per request (make bench-instr)"."""
    sizes = ", ".join(f"{name} {n1:,}/{n2:,}" for name, (n1, n2) in results["sizes"].items())
    versions = ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items())
    out = [
        SECTION,
        "",
        f"Generated by `make bench-instr` (tools/bench/instructions.py) on {results['date']}; "
        "regenerate it rather than editing it. "
        f"reactor {results['reactor']} (code id {results.get('reactor_code', '?')}); "
        f"{results['valgrind']}; {versions}; "
        f"CPU: {results['cpu']}.",
        "",
        "Instructions per request (ratio to uvicorn's):",
        "",
        table(results),
        "",
    ]
    for name, reason in results.get("skipped", {}).items():
        out += [f"- skipped: {name}: {reason}"]
    if results.get("skipped"):
        out.append("")
    out += [
        "Scenarios, each over 16 keep-alive connections: "
        + "; ".join(f"{s}: {SCENARIOS[s].title}" for s in results["scenarios"])
        + ". The apps are those of `make bench` (tools/bench/apps/).",
        "",
        "Method: every server runs once under `valgrind --tool=callgrind`, started as "
        "`make bench` starts it, with `PYTHONHASHSEED=0`; a Python client outside valgrind "
        "answers the scenarios in turn on fresh connections, each warmed up with a few "
        "requests, then sends N1 and then N2 requests and checks every response. Before and "
        "after each batch, with the server idle, `callgrind_control --dump` writes what "
        "callgrind counted since the previous dump; `(I2 - I1) / (N2 - N1)` is the cost of "
        f"one request (the fixed cost of a batch cancels out). N1/N2: {sizes}. Counts do not "
        "depend on CPU speed, but do on how many sockets one `epoll` call returns (the "
        "client is not slowed down by valgrind) and on when the cyclic GC runs: compare "
        "only runs made back to back. Two runs of one tree agree within about 0.3% (hello), "
        "and with the earlier method (one callgrind run per N) within 0.3%.",
        "",
    ]
    c = results.get("profiles", {}).get("c")
    if c:
        out += [
            f"### C functions of one request: {c['server']}, {c['scenario']} (callgrind)",
            "",
            f"Self instructions per request of the top {len(c['top'])} functions, from "
            "`callgrind_annotate --inclusive=no` of the N2 and the N1 batch, differenced "
            f"and divided by N2 - N1 ({c['total']:,.0f} per request in all; the top "
            f"{len(c['top'])} are {sum(r[2] for r in c['top']) / c['total']:.0%}):",
            "",
            *c_profile_table(c),
            "",
        ]
    py = results.get("profiles", {}).get("python")
    if py:
        out += [
            f"### Python functions of one request: {py['server']}, {py['scenario']} (opcodes)",
            "",
            "tools/bench/opcodes.py (outside valgrind) runs tools/bench/apps/reactor_app.py "
            "with a `sys.settrace` opcode counter per code object and the same client; the "
            f"counts of an N1 = {py['n1']:,} and an N2 = {py['n2']:,} batch, differenced and "
            f"divided by N2 - N1: {py['opcodes']:,.0f} opcodes and {py['calls']:.1f} Python "
            f"calls per request; the top {len(py['top'])} functions:",
            "",
            *py_profile_table(py),
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def replace_section(text: str, heading: str, new: str) -> str:
    """``text`` with its section ``heading`` (up to the next ``## `` heading or the end)
    replaced by ``new``, or ``new`` appended when there is no such section."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == heading]
    if not starts:
        return (text.rstrip("\n") + "\n\n" if text.strip() else "") + new
    start = starts[0]
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    after = "".join(lines[end:])
    return "".join(lines[:start]) + new + ("\n" + after if after else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Instructions per request under valgrind --tool=callgrind.",
        epilog="servers: " + ", ".join(PEERS) + ". scenarios (default N1/N2): "
        + ", ".join(f"{s.name} ({s.n1}/{s.n2})" for s in SCENARIOS.values())
        + ". The default run (6 servers, 4 scenarios) takes about 7 minutes.",
    )  # fmt: skip
    p.add_argument("--n1", type=int, help="requests of the first batch (every scenario)")
    p.add_argument("--n2", type=int, help="requests of the second batch (every scenario)")
    p.add_argument("--servers", default=",".join(DEFAULT_SERVERS), help="comma-separated")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    p.add_argument(
        "--profile",
        default="reactor/hello",
        help="SERVER/SCENARIO to profile per function ('none': no profile)",
    )
    p.add_argument("--reactor-src", type=Path, help="a reactor checkout to measure instead")
    p.add_argument("--json", help="write the raw results here")
    p.add_argument("--report", type=Path, help="replace the section in this Markdown file")
    p.add_argument("--out-dir", type=Path, default=BUILD / "instr", help="callgrind files, logs")
    p.add_argument("--no-reexec", action="store_true", help="do not switch to build/bench-venv")
    args = p.parse_args(argv)
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for name in args.server_list:
        if name not in PEERS:
            p.error(f"unknown server {name!r}: choose from {', '.join(PEERS)}")
    for name in args.scenario_list:
        if name not in SCENARIOS:
            p.error(f"unknown scenario {name!r}: choose from {', '.join(SCENARIOS)}")
    args.sizes = {}
    for name in args.scenario_list:
        n1 = SCENARIOS[name].n1 if args.n1 is None else args.n1
        n2 = SCENARIOS[name].n2 if args.n2 is None else args.n2
        if n1 < 1 or n2 <= n1:
            p.error(f"{name}: need 1 <= N1 < N2 (N1={n1}, N2={n2})")
        args.sizes[name] = (n1, n2)
    args.profile_target = None
    if args.profile != "none":
        server, _, scenario = args.profile.partition("/")
        if server not in PEERS or scenario not in SCENARIOS:
            p.error(f"--profile {args.profile!r}: expected SERVER/SCENARIO or 'none'")
        args.profile_target = (server, scenario)
    if args.reactor_src is not None:
        args.reactor_src = args.reactor_src.resolve()
        if not (args.reactor_src / "reactor" / "__init__.py").is_file():
            p.error(f"--reactor-src {args.reactor_src}: no reactor/__init__.py there")
    return args


def maybe_reexec(args: argparse.Namespace, script: str = __file__) -> None:
    """Run ``script`` again with build/bench-venv's Python (where the peers are), if any."""
    python = BENCH_VENV / "bin" / "python"
    if args.no_reexec or not python.exists():
        return
    if Path(sys.prefix).resolve() == BENCH_VENV.resolve():
        return
    os.execv(str(python), [str(python), str(Path(script).resolve()), *sys.argv[1:]])


def why_not(peer: Peer, ctx: Context, env: dict[str, str]) -> str | None:
    """Why ``peer`` cannot run (None: it can), probed with the environment it will run in."""
    if not peer.reactor:
        return unavailable(peer, ctx)
    code = f"{peer.probe}\nimport reactor; print(reactor.__file__)"
    proc = subprocess.run(
        [ctx.python, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ctx.build,
        timeout=60,
    )
    if proc.returncode != 0:
        return f"not available ({(proc.stderr.strip().splitlines() or ['?'])[-1]})"
    log(f"instr: {peer.name}: reactor from {Path(proc.stdout.strip()).parent}")
    return None


def c_profile(server: str, scenario: str, one: Batch, two: Batch) -> dict[str, Any]:
    rows = diff_profiles(annotate(one.dump), annotate(two.dump), two.requests - one.requests)
    total = per_request(one.instructions, one.requests, two.instructions, two.requests)
    return {"server": server, "scenario": scenario, "total": total, "top": rows}


def python_profile(
    args: argparse.Namespace, ctx: Context, server: str, scenario: str
) -> dict[str, Any] | None:
    import opcodes

    variant = opcodes.VARIANTS.get(server)
    if variant is None:
        log(f"instr: no Python profile for {server} (reactor servers only)")
        return None
    env = reactor_env(PEERS[server], ctx, args.reactor_src)
    log(f"instr: Python profile of {server} {scenario} (opcodes.py) ...")
    prof = opcodes.profile(
        ctx.python, env, variant, SCENARIOS[scenario], opcodes.N1, opcodes.N2, args.out_dir
    )
    return {"server": server, "scenario": scenario, **prof}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    maybe_reexec(args)
    if shutil.which("valgrind") is None:
        log("valgrind is not installed: apt-get install valgrind")
        return 2
    server_cpu, client_cpu, _ = pinning()
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    ctx = Context(python=sys.executable, build=BUILD, www=make_www(BUILD), server_cpu=server_cpu)
    tree = args.reactor_src or ROOT
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True)
    versions = package_versions(ctx.python)
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "reactor": reactor_revision(tree),
        "reactor_code": reactor_code_id(tree),
        "reactor_src": str(tree),
        "cpu": cpu_model(),
        "valgrind": valgrind.stdout.strip(),
        "versions": {
            k: versions[k] for k in ("python", "uvicorn", "httptools", "uvloop") if k in versions
        },
        "connections": CONNECTIONS,
        "scenarios": args.scenario_list,
        "sizes": args.sizes,
        "servers": {},
        "skipped": {},
        "profiles": {},
    }
    log(f"instr: reactor {results['reactor']} from {tree}; {results['valgrind']}")
    log(
        "instr: N1/N2 per scenario: "
        + ", ".join(f"{s} {n1:,}/{n2:,}" for s, (n1, n2) in args.sizes.items())
        + f", over {CONNECTIONS} connections"
    )
    started = time.monotonic()
    scenarios = [SCENARIOS[s] for s in args.scenario_list]
    for name in args.server_list:
        peer = PEERS[name]
        env = reactor_env(peer, ctx, args.reactor_src)
        reason = why_not(peer, ctx, env)
        if reason is not None:
            results["skipped"][name] = reason
            log(f"instr: {name}: skipped: {reason}")
            continue
        log(f"instr: {name}: starting under callgrind ({fmt_time(time.monotonic() - started)})")
        try:
            batches = measure_server(peer, ctx, env, scenarios, args.sizes, args.out_dir)
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            results["skipped"][name] = f"failed: {exc}"
            log(f"instr: {name}: failed: {exc}")
            continue
        row: dict[str, Any] = {"label": peer.label, "scenarios": {}}
        for scenario, (one, two) in batches.items():
            cost = per_request(one.instructions, one.requests, two.instructions, two.requests)
            row["scenarios"][scenario] = {
                "n1": one.requests,
                "n2": two.requests,
                "i1": one.instructions,
                "i2": two.instructions,
                "per_request": round(cost, 1),
            }
            if args.profile_target == (name, scenario):
                try:
                    results["profiles"]["c"] = c_profile(name, scenario, one, two)
                except Exception as exc:  # a profile lost must not lose the counts
                    log(f"instr: C profile failed: {exc!r}")
        results["servers"][name] = row
    for row in results["servers"].values():
        for scenario, cell in row["scenarios"].items():
            base = results["servers"].get(BASELINE, {}).get("scenarios", {}).get(scenario)
            cell["vs_uvicorn"] = (
                round(cell["per_request"] / base["per_request"], 3) if base else None
            )
    if args.profile_target is not None and args.profile_target[0] in results["servers"]:
        try:
            py = python_profile(args, ctx, *args.profile_target)
        except Exception as exc:  # a profile lost must not lose the counts
            log(f"instr: Python profile failed: {exc!r}")
            py = None
        if py is not None:
            results["profiles"]["python"] = py
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
        log(f"instr: raw results in {args.json}")
    text = section(results)
    if args.report is not None:
        old = args.report.read_text() if args.report.exists() else ""
        args.report.write_text(replace_section(old, SECTION, text))
        log(f"instr: section {SECTION!r} of {args.report} rewritten")
    print(text)
    log(f"instr: done in {fmt_time(time.monotonic() - started)}")
    return 0 if results["servers"] else 1


if __name__ == "__main__":
    sys.exit(main())
