"""tools/bench (the `make bench` harness): the wrk parser, scenarios and scripts, the report,
the presets and the minimal apps, checked without starting a server or running any load."""

from __future__ import annotations

import asyncio
import io
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "tools" / "bench"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "apps"))

import idle_client  # noqa: E402
import instructions  # noqa: E402
import memory  # noqa: E402, F401  (imports cleanly)
import peers  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
import wrkrun  # noqa: E402

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  300.00us   9.00ms   90.00%
    Req/Sec    51.20k     2.00k   55.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.30ms
     90%    1.80ms
     99%    2.50ms
  256000 requests in 5.00s, 30.00MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  51200.50
Transfer/sec:      6.00MB
"""


def test_parse_wrk_reads_rate_percentiles_and_errors() -> None:
    res = wrkrun.parse_wrk(WRK_OUTPUT)
    assert res.requests_per_sec == 51200.50
    assert res.p50_ms == pytest.approx(0.812)
    assert res.p99_ms == pytest.approx(2.5)
    assert res.requests == 256000
    assert res.socket_errors == 6
    assert res.non_2xx == 7
    assert res.errors == 13


def test_parse_wrk_zero_percentile_is_unknown_and_no_errors_is_zero() -> None:
    # wrk prints 99% as 0.00us under pipelining: not a measurement.
    text = WRK_OUTPUT.replace("2.50ms", "0.00us").replace("812.00us", "1.50s")
    text = "\n".join(line for line in text.splitlines() if "errors" not in line.lower())
    text = text.replace("Non-2xx or 3xx responses: 7", "")
    res = wrkrun.parse_wrk(text)
    assert res.p99_ms is None
    assert res.p50_ms == 1500.0
    assert res.errors == 0


def test_parse_wrk_without_rate_fails() -> None:
    with pytest.raises(ValueError, match="Requests/sec"):
        wrkrun.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(
    ("text", "ms"),
    [("812.00us", 0.812), ("1.23ms", 1.23), ("2.00s", 2000.0), ("1.50m", 90_000.0)],
)
def test_parse_duration_ms(text: str, ms: float) -> None:
    assert wrkrun.parse_duration_ms(text) == pytest.approx(ms)


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        wrkrun.parse_duration_ms("fast")


def test_every_scenario_of_the_issue_and_its_lua_script_exist() -> None:
    assert set(wrkrun.SCENARIOS) == {
        "hello", "latency", "close", "pipeline", "64k", "post", "static",
    }  # fmt: skip
    for scenario in wrkrun.SCENARIOS.values():
        if scenario.script is not None:
            assert (wrkrun.LUA_DIR / scenario.script).is_file(), scenario.script
    pipeline = (wrkrun.LUA_DIR / "pipeline.lua").read_text()
    assert "local depth = 16" in pipeline and "wrk.format" in pipeline
    post = (wrkrun.LUA_DIR / "post.lua").read_text()
    assert 'string.rep("x", 4096)' in post and 'wrk.method = "POST"' in post


def test_wrk_argv_is_pinned_loopback_and_carries_headers() -> None:
    argv = wrkrun.wrk_argv(wrkrun.SCENARIOS["close"], 8123, 4, cpu=1)
    assert argv[:3] == ["taskset", "-c", "1"]
    assert "-c16" in argv and "-d4s" in argv and "--latency" in argv
    assert argv[argv.index("-H") + 1] == "Connection: close"
    assert argv[-1] == "http://127.0.0.1:8123/"
    argv = wrkrun.wrk_argv(wrkrun.SCENARIOS["pipeline"], 8123, 4, cpu=None)
    assert argv[0] == "wrk" and argv[argv.index("-s") + 1].endswith("pipeline.lua")


def results_fixture() -> dict[str, Any]:
    def rounds(*rps: float, p99: float = 2.0) -> list[dict[str, Any]]:
        return [{"rps": r, "p50": 0.5, "p99": p99, "errors": 0} for r in rps]

    return {
        "meta": {
            "command": "make bench",
            "date": "2025-01-01 00:00 UTC",
            "cpu": "CPU",
            "nproc": 2,
            "kernel": "6",
            "pinning": "pinned",
            "rounds": 3,
            "duration": 4,
            "warmup": 1,
            "versions": {"python": "3.11"},
            "reactor": "abc",
            "loadavg": ["0 0 0", "0 0 0"],
        },
        "servers": {"reactor": "reactor (selectors)", "uvicorn": "uvicorn", "gunicorn": "g"},
        "skipped": {"go": "`go` not found on PATH"},
        "scenarios": ["hello", "close"],
        "runs": {
            "hello": {
                "reactor": rounds(100, 300, 200, p99=0.8),
                "uvicorn": rounds(90, 100, 110),
                "gunicorn": rounds(10, 10, 10),
            },
            "close": {"reactor": rounds(10, 10, 10), "uvicorn": rounds(10, 10, 10)},
        },
        "memory": {
            "idle_rss": {
                "reactor": {"10000": {"connections": 10000, "failed": 0, "kib_per_conn": 0.9}},
                "uvicorn": {"10000": {"error": "timed out"}},
            },
            "hijack": {
                "retention": {
                    "connections": 1000,
                    "retained_bytes_per_conn": 900.0,
                    "leftover_bytes": 0,
                },
                "cycle": {"peak_bytes_per_cycle_median": 5000},
            },
        },
    }


def test_summary_takes_medians_and_ratios_to_uvicorn() -> None:
    summary = report.summarize(results_fixture()["runs"])
    assert summary["hello"]["reactor"]["rps"] == 200
    assert report.ratio(summary, "hello", "reactor") == 2.0
    assert report.ratio(summary, "hello", "reactor-wsgi") is None


def test_targets_say_which_are_met() -> None:
    results = results_fixture()
    rows = {r[0]: r for r in report.targets(results, report.summarize(results["runs"]))}
    assert rows["hello keep-alive c64, selectors loop"][3] == "yes"
    assert rows["p99 latency at c64"][3] == "yes"  # 0.8 ms <= 1 ms and <= 0.5 x 2 ms
    assert rows["`Connection: close` c16"][3] == "**no**"
    assert rows["WSGI hello app"][2] == "not measured"
    assert rows["RSS per idle keep-alive connection at 10k"][3] == "yes"
    assert rows["parked hijacked connection"][3] == "yes"


def test_markdown_holds_machine_tables_and_memory() -> None:
    text = report.markdown(results_fixture(), "benchmarks.png")
    assert "| server | req/s | vs uvicorn | p50 | p99 | errors |" in text
    assert "| reactor (selectors) | 200 | 2.00x | 500 µs | 800 µs |  |" in text
    assert "skipped: go: `go` not found on PATH" in text
    assert "![req/s per scenario](benchmarks.png)" in text
    assert "| reactor (selectors) | 0.90 |" in text and "| uvicorn | failed |" in text
    assert "**900 B** beyond 0 leftover bytes" in text


def test_presets_and_explicit_options() -> None:
    quick = run.parse_args(["--quick"])
    assert quick.server_list == ["reactor", "uvicorn"]
    assert quick.rounds == 1 and "hello" in quick.scenario_list
    full = run.parse_args(["--full", "--rounds", "5"])
    assert full.rounds == 5 and full.server_list == list(peers.PEERS)
    assert full.memory_list == [1000, 10000] and full.output.endswith("docs/benchmarks.md")
    hand = run.parse_args(["--servers", "reactor,uvicorn", "--scenarios", "hello", "--rounds", "3"])
    assert hand.output is None and hand.memory_list == []
    assert quick.json.endswith("quick.json") and full.json.endswith("full.json")
    assert hand.json.endswith("results.json")
    with pytest.raises(SystemExit):
        run.parse_args(["--servers", "nginx"])


def test_every_peer_has_its_app() -> None:
    ctx = peers.Context(python=sys.executable, build=Path("/tmp"), www=Path("/tmp/www"))
    for peer in peers.PEERS.values():
        if peer.name == "go":
            assert (BENCH / "go" / "main.go").is_file()
            continue
        line = " ".join(peer.command(ctx, 8000))
        assert "8000" in line and "0.0.0.0" not in line, line
    for app in ("reactor_app", "asgi_app", "aiohttp_app", "tornado_app", "wsgi_app", "stdlib_app"):
        compile((BENCH / "apps" / f"{app}.py").read_text(), app, "exec")


def test_wsgi_app_answers_hello_post_and_64k() -> None:
    import wsgi_app

    app = wsgi_app.make_app(".")
    seen: list[Any] = []

    def call(path: str, body: bytes = b"") -> bytes:
        environ = {"PATH_INFO": path, "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body)}  # fmt: skip
        return b"".join(app(environ, lambda status, headers: seen.append((status, headers))))

    assert call("/") == b"Hello, World!"
    assert seen[-1] == ("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    assert call("/post", b"x" * 4096) == b"4096"
    assert len(call("/64k")) == 65536
    assert call("/nope") == b"not found" and seen[-1][0].startswith("404")


def test_asgi_app_answers_hello_with_a_length() -> None:
    import asgi_app

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x" * 4096, "more_body": False}

    asyncio.run(asgi_app.app({"type": "http", "path": "/"}, receive, send))
    assert (b"content-length", b"13") in sent[0]["headers"] and sent[1]["body"] == HELLO
    sent.clear()
    asyncio.run(asgi_app.app({"type": "http", "path": "/post"}, receive, send))
    assert sent[1]["body"] == b"4096"


HELLO = b"Hello, World!"


def test_idle_client_reads_one_whole_response() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, ")
        b.sendall(b"World!")
        assert idle_client.read_response(a) is True
        b.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
        assert idle_client.read_response(a) is False
        b.close()
        assert idle_client.read_response(a) is False


def test_callgrind_totals_and_instructions_per_request() -> None:
    out = b"""version: 1
creator: callgrind-3.19.0
events: Ir
summary: 999
fn=(1) main
1 5
totals: 1099605871
"""
    assert instructions.parse_totals(out) == 1099605871
    assert instructions.parse_totals(b"events: Ir\nsummary: 727404268\n") == 727404268
    with pytest.raises(ValueError, match="totals"):
        instructions.parse_totals(b"events: Ir\nfn=(1) main\n")
    # (I2 - I1) / (N2 - N1): start-up, the same in both runs, cancels out.
    assert instructions.per_request(727_404_268, 2000, 1_099_605_871, 6000) == pytest.approx(
        93_050.4, abs=0.1
    )
    with pytest.raises(ValueError):
        instructions.per_request(1, 6000, 2, 2000)
    args = instructions.parse_args(["--servers", "reactor,uvicorn", "--n1", "10", "--n2", "30"])
    assert args.server_list == ["reactor", "uvicorn"] and (args.n1, args.n2) == (10, 30)
    with pytest.raises(SystemExit):
        instructions.parse_args(["--n1", "30", "--n2", "30"])


def test_make_bench_keeps_the_instructions_section(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text(
        "# old\n\nold tables\n\n## Instructions per request (make bench-instr)\n\nkept\n"
    )
    assert run.kept_sections(report) == (
        "\n## Instructions per request (make bench-instr)\n\nkept\n"
    )
    report.write_text("# old\n\nnothing to keep\n")
    assert run.kept_sections(report) == ""
    assert run.kept_sections(tmp_path / "missing.md") == ""
