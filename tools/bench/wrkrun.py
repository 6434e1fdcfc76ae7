"""wrk for the benchmark: the scenarios, the command line for one run and the output parser.

Owns what each scenario sends (path, connections, extra header, Lua script) and turning wrk's
text output (with ``--latency``) into numbers. It starts no server and picks no port
(tools/bench/peers.py does). Tests: tests/test_bench_tools.py.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    path: str = "/"
    connections: int = 64
    script: str | None = None  # a file in tools/bench/lua/
    headers: tuple[str, ...] = ()
    #: What a correct response body of this scenario is (checked once before measuring).
    expect_size: int = 13


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("hello", "hello, keep-alive, 64 connections"),
        Scenario("latency", "hello, 1 connection (latency)", connections=1),
        Scenario(
            "close",
            "hello, `Connection: close`, 16 connections",
            connections=16,
            headers=("Connection: close",),
        ),
        Scenario("pipeline", "hello, pipelined depth 16, 64 connections", script="pipeline.lua"),
        Scenario("64k", "64 KiB response, 64 connections", path="/64k", expect_size=65536),
        Scenario(
            "post",
            "1 KiB POST body, 64 connections",
            path="/post",
            script="post.lua",
            expect_size=4,
        ),
        Scenario(
            "static",
            "static 1 MiB file, 16 connections",
            path="/static/1m.bin",
            connections=16,
            expect_size=1 << 20,
        ),
    )
}


@dataclass
class WrkResult:
    requests_per_sec: float = 0.0
    #: None when wrk printed none, or 0 (it does for p99 under pipelining: too few samples).
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    socket_errors: int = 0
    non_2xx: int = 0
    raw: str = field(default="", repr=False)

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^\s*([\d.]+)(us|ms|s|m|h)\s*$")


def parse_duration_ms(text: str) -> float:
    """wrk's latency text (``812.00us``, ``1.23ms``, ``2.00s``, ``1.50m``) in milliseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(text: str) -> WrkResult:
    """The numbers of one ``wrk --latency`` run; raises ValueError when there is no
    ``Requests/sec`` line (wrk failed)."""
    result = WrkResult(raw=text)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if rps is None:
        raise ValueError("wrk printed no Requests/sec line:\n" + text.strip())
    result.requests_per_sec = float(rps.group(1))
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        match = re.search(rf"^\s*{pct}(?:\.0+)?%\s+(\S+)\s*$", text, re.M)
        if match is not None:
            value = parse_duration_ms(match.group(1))
            setattr(result, attr, value if value > 0 else None)
    total = re.search(r"^\s*(\d+) requests in", text, re.M)
    if total is not None:
        result.requests = int(total.group(1))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if errors is not None:
        result.socket_errors = sum(int(g) for g in errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx is not None:
        result.non_2xx = int(non2xx.group(1))
    return result


def wrk_argv(
    scenario: Scenario, port: int, duration: float, *, cpu: int | None = 1, wrk: str = "wrk"
) -> list[str]:
    """The command for one run against 127.0.0.1:``port`` (one wrk thread, pinned to ``cpu``)."""
    argv = [] if cpu is None else ["taskset", "-c", str(cpu)]
    argv += [
        wrk,
        "-t1",
        f"-c{scenario.connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    for header in scenario.headers:
        argv += ["-H", header]
    if scenario.script is not None:
        argv += ["-s", str(LUA_DIR / scenario.script)]
    argv.append(f"http://127.0.0.1:{port}{scenario.path}")
    return argv


def run_wrk(argv: list[str], duration: float) -> WrkResult:
    """Run wrk; raises ValueError (with its output) when it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    try:
        return parse_wrk(proc.stdout)
    except ValueError:
        raise ValueError(f"wrk exited {proc.returncode}: {proc.stdout}{proc.stderr}") from None


def wrk_version(wrk: str = "wrk") -> str:
    try:
        proc = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "not installed"
    first = (proc.stdout + proc.stderr).strip().splitlines()
    if not first:
        return "unknown"
    return first[0].split(" [")[0].split(" Copyright")[0].removeprefix("wrk ")
