"""tools/bench (the `make bench` harness): the wrk parser, scenarios and scripts, the report,
the presets and the minimal apps, checked without running any load (one server is started:
the floor's, on a loopback port, to check its answers)."""

from __future__ import annotations

import asyncio
import io
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "tools" / "bench"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "apps"))

import client  # noqa: E402
import idle_client  # noqa: E402
import instructions  # noqa: E402
import memory  # noqa: E402, F401  (imports cleanly)
import opcodes  # noqa: E402
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
    assert 'string.rep("x", 1024)' in post and 'wrk.method = "POST"' in post


def test_wrk_argv_is_pinned_loopback_and_carries_headers() -> None:
    argv = wrkrun.wrk_argv(wrkrun.SCENARIOS["close"], 8123, 4, cpu=1)
    assert argv[:3] == ["taskset", "-c", "1"]
    assert "-c16" in argv and "-d4s" in argv and "--latency" in argv
    assert argv[argv.index("-H") + 1] == "Connection: close"
    assert argv[-1] == "http://127.0.0.1:8123/"
    argv = wrkrun.wrk_argv(wrkrun.SCENARIOS["pipeline"], 8123, 4, cpu=None)
    assert argv[0] == "wrk" and argv[argv.index("-s") + 1].endswith("pipeline.lua")


def rounds(*rps: float, p99: float = 2.0) -> list[dict[str, Any]]:
    return [{"rps": r, "p50": 0.5, "p99": p99, "errors": 0} for r in rps]


def results_fixture() -> dict[str, Any]:
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
    assert rows["hello keep-alive c64, selectors loop"][3] == "yes"  # 200 / 100
    assert rows["p99 latency, hello c64"][2:] == ("800 µs (0.40x uvicorn's 2.00 ms)", "yes")
    assert rows["p50 latency, 1 connection"][2] == "not measured"
    assert rows["`Connection: close` c16"][1:] == (">= 1.5x uvicorn", "1.00x", "**no**")
    assert rows["WSGI hello app (issue 7)"][2] == "not measured"
    assert rows["RSS per idle keep-alive connection"][2:] == (
        "0.90 KiB (at 10,000 connections)",
        "yes",
    )
    results["memory"]["idle_rss"]["reactor"] = {
        "1000": {"connections": 1000, "failed": 0, "kib_per_conn": 1.2},
        "10000": {"error": "timed out"},
    }
    rows = {r[0]: r for r in report.targets(results, report.summarize(results["runs"]))}
    assert rows["RSS per idle keep-alive connection"][2:] == (
        "1.20 KiB (at 1,000 connections)",
        "**no**",
    )
    assert rows["parked hijacked connection"][2:] == ("0.88 KiB (900 B)", "**no**")  # > 0.35
    assert rows["instructions per hello request, selectors loop"][2] == "not measured"


def test_targets_show_the_floor_beside_latency_and_64k() -> None:
    results = results_fixture()
    results["runs"]["latency"] = {
        "reactor": rounds(10, 10, 10),
        "uvicorn": rounds(10, 10, 10),
        "floor": rounds(10, 10, 10),
    }
    for name, p50 in (("reactor", 0.09), ("uvicorn", 0.12), ("floor", 0.084)):
        for r in results["runs"]["latency"][name]:
            r["p50"] = p50
    results["runs"]["64k"] = {
        "reactor": rounds(150, 150, 150),
        "uvicorn": rounds(100, 100, 100),
        "floor": rounds(190, 200, 210),
    }
    rows = {r[0]: r for r in report.targets(results, report.summarize(results["runs"]))}
    assert rows["p50 latency, 1 connection"][2:] == (
        "90 µs (0.75x uvicorn's 120 µs); the floor: 84 µs (0.70x)",
        "**no**",
    )
    assert rows["64 KiB response"][2:] == ("1.50x (the floor: 2.00x)", "yes")
    results["runs"]["hello"]["floor"] = rounds(1000, 1000, 1000)
    rows = {r[0]: r for r in report.targets(results, report.summarize(results["runs"]))}
    assert rows["hello keep-alive c64, selectors loop"][2] == "2.00x"  # not beside every row
    text = report.markdown(results, "benchmarks.png")
    assert "The floor (tools/bench/apps/floor_app.py)" in text


def test_the_floor_serves_only_its_scenarios_and_answers_them() -> None:
    floor = peers.PEERS["floor"]
    assert [s for s in wrkrun.SCENARIOS if floor.serves(s)] == [
        "hello",
        "latency",
        "pipeline",
        "64k",
    ]
    assert all(p.serves("post") for p in peers.PEERS.values() if p.name != "floor")
    port = peers.free_port()
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "apps" / "floor_app.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        hello = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(hello * 2)  # pipelined: two answers
            got = b""
            while got.count(HELLO) < 2:
                got += sock.recv(65536)
            assert got == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13"
                           b"\r\n\r\nHello, World!") * 2  # fmt: skip
        running = peers.Running(floor, port, proc, Path("/dev/null"))
        assert peers.check_routes(running) == []  # /64k (with Connection: close); no /post
        assert peers.http_get(port, "/") == HELLO
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


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
    for app in (
        "reactor_app",
        "asgi_app",
        "aiohttp_app",
        "tornado_app",
        "wsgi_app",
        "stdlib_app",
        "floor_app",
    ):
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
    assert args.server_list == ["reactor", "uvicorn"]
    assert args.sizes == {s: (10, 30) for s in ("hello", "post", "64k", "pipelined")}
    assert args.profile_target == ("reactor", "hello")
    args = instructions.parse_args(["--scenarios", "64k,post", "--profile", "none"])
    assert args.sizes == {"64k": (500, 1500), "post": (1000, 3000)}
    assert args.profile_target is None
    for bad in (["--n1", "30", "--n2", "30"], ["--scenarios", "hello,put"],
                ["--profile", "reactor"], ["--n2", "900"]):  # fmt: skip
        with pytest.raises(SystemExit):
            instructions.parse_args(bad)


def test_reactor_code_id_is_the_tree_of_reactor_and_its_changes(tmp_path: Path) -> None:
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q")
    (tmp_path / "reactor").mkdir()
    (tmp_path / "reactor" / "a.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-qm", "one")
    first = run.reactor_code_id(tmp_path)
    assert first == git("rev-parse", "--short", "HEAD:reactor")
    (tmp_path / "tools.py").write_text("")
    git("add", ".")
    git("commit", "-qm", "tools only")
    assert run.reactor_code_id(tmp_path) == first
    (tmp_path / "reactor" / "a.py").write_text("x = 2\n")
    changed = run.reactor_code_id(tmp_path)
    assert changed.startswith(first + "+") and len(changed) == len(first) + 9
    assert run.reactor_code_id(tmp_path / "nowhere") == "unknown"


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


HELLO_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
)
CHUNKED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
    b"7;ext=1\r\nHello, \r\n6\r\nWorld!\r\n0\r\nX-Trailer: 1\r\n\r\n"
)


def test_parse_response_framing_and_partial_input() -> None:
    for raw in (HELLO_RESPONSE, CHUNKED_RESPONSE):
        response, end = client.parse_response(raw + b"HTTP/1.1")
        assert (response.status, response.body, end) == (200, HELLO, len(raw))
        client.SCENARIOS["hello"].check(response)
        # Every cut short of the whole response is "not yet", never a wrong answer.
        for cut in range(len(raw)):
            assert client.parse_response(raw[:cut]) is None, raw[:cut]
    two = HELLO_RESPONSE + CHUNKED_RESPONSE
    _, end = client.parse_response(two)
    second, end2 = client.parse_response(two, end)
    assert second.headers[b"transfer-encoding"] == b"Chunked" and end2 == len(two)
    with pytest.raises(ValueError, match="not a response"):
        client.parse_response(b"GET / HTTP/1.1\r\n\r\n")


def test_scenarios_send_the_issues_requests_and_check_the_answers() -> None:
    sc = client.SCENARIOS
    assert list(sc) == ["hello", "post", "64k", "pipelined"]
    head, _, body = sc["post"].request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /post HTTP/1.1\r\n") and b"Content-Length: 1024" in head
    assert body == b"x" * 1024 and sc["post"].body == b"1024"
    assert sc["64k"].request.startswith(b"GET /64k ") and len(sc["64k"].body) == 65536
    assert sc["pipelined"].depth == 16 and sc["pipelined"].request == sc["hello"].request
    for s in sc.values():
        assert s.n1 < s.n2 and s.n1 % s.depth == 0 and s.n2 % s.depth == 0
    ok = client.Response(200, {}, b"1024")
    sc["post"].check(ok)
    with pytest.raises(ValueError, match="unexpected body of 13 bytes"):
        sc["post"].check(client.Response(200, {}, HELLO))
    with pytest.raises(ValueError, match="status 500"):
        sc["post"].check(client.Response(500, {}, b"1024"))


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected client and server socket on 127.0.0.1 (Conn sets TCP_NODELAY)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def answer_gets(sock: socket.socket, response: bytes, stop: int) -> list[int]:
    """A fake server: answers every whole ``GET`` it reads; returns how many requests
    each recv completed (the client's batches), until ``stop`` requests."""
    batches, buf, served = [], b"", 0
    while served < stop:
        buf += sock.recv(65536)
        k = buf.count(b"\r\n\r\n")
        buf = buf[buf.rfind(b"\r\n\r\n") + 4 :] if k else buf
        sock.sendall(response * k)
        batches.append(k)
        served += k
    return batches


def test_drive_sends_exactly_n_requests_depth_at_a_time() -> None:
    import threading

    pairs = [tcp_pair() for _ in range(2)]
    seen: list[list[int]] = [[], []]

    def serve(i: int, n: int) -> None:
        seen[i] = answer_gets(pairs[i][1], HELLO_RESPONSE, n)

    # 40 pipelined requests over 2 connections: 16 + 16 at first, then 8 on the first one.
    threads = [threading.Thread(target=serve, args=(i, n)) for i, n in enumerate((24, 16))]
    try:
        for t in threads:
            t.start()
        conns = [client.Conn(a) for a, _ in pairs]
        client.drive(conns, client.SCENARIOS["pipelined"], 40)
        for t in threads:
            t.join(5)
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    assert sum(seen[0]) == 24 and max(seen[0]) <= 16
    assert seen[1] == [16]  # one batch of depth 16, read back before anything else


def test_conn_rejects_a_wrong_or_extra_response() -> None:
    a, b = tcp_pair()
    with a, b:
        conn = client.Conn(a)
        b.sendall(HELLO_RESPONSE.replace(b"200 OK", b"404 No"))
        with pytest.raises(ValueError, match="status 404"):
            conn.receive(client.SCENARIOS["hello"], 1)
        conn.buf.clear()
        b.sendall(HELLO_RESPONSE * 2)
        with pytest.raises(ValueError, match="beyond the responses"):
            conn.receive(client.SCENARIOS["hello"], 1)


def annotate_text(total: int, rows: list[tuple[int, str]]) -> str:
    """callgrind_annotate --inclusive=no output as valgrind 3.19 prints it."""
    lines = [
        "-" * 80,
        "Profile data file 'callgrind.reactor.out.2' (creator: callgrind-3.19.0)",
        "Ir",
        f"{total:,} (100.0%)  PROGRAM TOTALS",
        "",
        "Ir                file:function",
    ]
    for value, where in rows:
        lines.append(
            f"{value:,} ({100 * value / total:5.2f}%)  {where} [/usr/lib/libpython3.11.so]"
        )
    return "\n".join(lines) + "\n"


def test_c_profile_of_one_request_from_two_dumps() -> None:
    stack = "./csu/../csu/libc-start.c:__libc_start_main@@GLIBC_2.34"
    one = annotate_text(
        1_000_000,
        [
            (1_000_000, stack),  # the call stack at the dump, listed at 100%: not a cost
            (400_000, "/src/Python/ceval.c:_PyEval_EvalFrameDefault'2"),
            (100_000, "/src/Python/ceval.c:_PyEval_EvalFrameDefault"),
            (20_000, "/src/./Include/object.h:_PyObject_GenericGetAttrWithDict"),
            (80_000, "/src/Objects/object.c:_PyObject_GenericGetAttrWithDict"),
            (5_000, "???:0x0000000004936718"),
        ],
    )
    two = annotate_text(
        2_000_000,
        [
            (2_000_000, stack),
            (900_000, "/src/Python/ceval.c:_PyEval_EvalFrameDefault'2"),
            (200_000, "/src/Python/ceval.c:_PyEval_EvalFrameDefault"),
            (50_000, "/src/./Include/object.h:_PyObject_GenericGetAttrWithDict"),
            (150_000, "/src/Objects/object.c:_PyObject_GenericGetAttrWithDict"),
            (30_000, "/src/Objects/listobject.c:list_dealloc"),
        ],
    )
    a, b = instructions.parse_annotate(one), instructions.parse_annotate(two)
    assert a["_PyEval_EvalFrameDefault"] == ("ceval.c", 500_000)
    assert a["_PyObject_GenericGetAttrWithDict"] == ("object.c", 100_000)  # largest piece's file
    assert "__libc_start_main@@GLIBC_2.34" not in a and a["0x0000000004936718"][1] == 5_000
    rows = instructions.diff_profiles(a, b, 1000, top=3)
    assert rows == [
        ("_PyEval_EvalFrameDefault", "ceval.c", 600.0),
        ("_PyObject_GenericGetAttrWithDict", "object.c", 100.0),
        ("list_dealloc", "listobject.c", 30.0),
    ]
    with pytest.raises(ValueError, match="PROGRAM TOTALS"):
        instructions.parse_annotate("nothing here\n")


def test_report_section_is_replaced_and_the_rest_kept() -> None:
    head = instructions.SECTION
    new = f"{head}\n\nnew\n"
    doc = f"# B\n\nintro\n\n{head}\n\nold\n### sub\nold\n\n## How\n\nkept\n"
    assert instructions.replace_section(doc, head, new) == (
        f"# B\n\nintro\n\n{head}\n\nnew\n\n## How\n\nkept\n"
    )
    assert instructions.replace_section(f"# B\n\n{head}\n\nold\n", head, new) == f"# B\n\n{new}"
    assert instructions.replace_section("# B\n\nintro\n", head, new) == f"# B\n\nintro\n\n{new}"
    assert instructions.replace_section("", head, new) == new


def instr_results() -> dict[str, Any]:
    def cell(per: float, ratio: float | None) -> dict[str, Any]:
        return {"n1": 1, "n2": 3, "i1": 1, "i2": 3, "per_request": per, "vs_uvicorn": ratio}

    return {
        "date": "2026-12-01 23:00 UTC",
        "reactor": "abc",
        "cpu": "CPU",
        "valgrind": "valgrind-3.19.0",
        "versions": {"python": "3.11.7"},
        "scenarios": ["hello", "64k"],
        "sizes": {"hello": [1000, 3000], "64k": [500, 1500]},
        "servers": {
            "reactor": {
                "label": "reactor (selectors)",
                "scenarios": {"hello": cell(45_000, 0.45), "64k": cell(90_000, 0.9)},
            },
            "reactor-asyncio": {
                "label": "reactor (asyncio backend)",
                "scenarios": {"hello": cell(65_000, 0.65)},
            },
            "uvicorn": {
                "label": "uvicorn",
                "scenarios": {"hello": cell(100_000, 1.0), "64k": cell(100_000, 1.0)},
            },
        },
        "skipped": {"reactor-uvloop": "not available (no uvloop)"},
        "profiles": {
            "c": {
                "server": "reactor",
                "scenario": "hello",
                "total": 45_000.0,
                "top": [["_PyEval_EvalFrameDefault", "ceval.c", 22_500.0]],
            },
            "python": {
                "server": "reactor",
                "scenario": "hello",
                "n1": 500,
                "n2": 2000,
                "opcodes": 1000.0,
                "calls": 16.0,
                "top": [["reactor/connection.py:244:Connection._data_received", 180.0, 1.0]],
            },
        },
    }


def test_instructions_section_renders_table_method_and_profiles() -> None:
    text = instructions.section(instr_results())
    assert text.startswith(instructions.SECTION + "\n")
    assert "| server | hello | 64k |" in text
    assert "| reactor (selectors) | 45,000 (0.45x) | 90,000 (0.90x) |" in text
    assert "| reactor (asyncio backend) | 65,000 (0.65x) | - |" in text
    assert "- skipped: reactor-uvloop: not available (no uvloop)" in text
    assert "reactor abc" in text and "hello 1,000/3,000, 64k 500/1,500" in text
    assert "| 22,500 | 50.0% | `_PyEval_EvalFrameDefault` | ceval.c |" in text
    assert "1,000 opcodes and 16.0 Python calls per request" in text
    assert (
        "| 180.0 | 18.0% | 1.00 | `reactor/connection.py:244:Connection._data_received` |" in text
    )


def test_targets_read_instruction_counts_and_warn_on_another_revision() -> None:
    results = results_fixture()
    summary = report.summarize(results["runs"])
    instr = instr_results()
    rows = {r[0]: r for r in report.targets(results, summary, instr)}
    assert rows["instructions per hello request, selectors loop"][2:] == (
        "45,000 (0.45x uvicorn's 100,000)",
        "yes",
    )
    assert rows["instructions per hello request, asyncio backend"][3] == "**no**"  # 0.65x
    assert rows["instructions per hello request, uvloop backend"][2] == "not measured"
    note = report.instructions_note
    assert "same reactor code" in note(results, instr)
    instr["reactor"] = "def"
    assert "**Warning**" in note(results, instr) and "reactor def" in note(results, instr)
    instr["reactor"] = results["meta"]["reactor"] = "abc + uncommitted changes"
    assert "**Warning**" in note(results, instr)  # cannot tell without the code ids
    # Another commit (tools only) with the same reactor/ tree: the same code.
    instr["reactor"], instr["reactor_code"] = "def", "1a2b3c4+0f0f0f0f"
    results["meta"]["reactor_code"] = "1a2b3c4+0f0f0f0f"
    assert "same reactor code" in note(results, instr)
    results["meta"]["reactor_code"] = "1a2b3c4"
    assert "reactor/ 1a2b3c4+0f0f0f0f and 1a2b3c4" in note(results, instr)
    assert "has not been run" in note(results, None)
    text = report.markdown(results, None, instr)
    assert "## Targets (issue 15)" in text and "| POST 1 KiB body | >= 1.5x uvicorn |" in text


def snapshot(opcodes_: dict[str, int], calls: dict[str, int]) -> dict[str, dict[str, int]]:
    return {"opcodes": opcodes_, "calls": calls}


def test_opcodes_per_request_from_three_snapshots() -> None:
    snaps = [
        snapshot({"start": 500}, {"start": 1}),
        # batch of 10: 10 x 30 opcodes in handle, plus 7 the batch costs in run_once
        snapshot({"start": 500, "handle": 300, "run_once": 7}, {"start": 1, "handle": 10}),
        # batch of 30
        snapshot(
            {"start": 500, "handle": 1200, "run_once": 14, "new": 40},
            {"start": 1, "handle": 40, "new": 20},
        ),
    ]
    out = opcodes.per_request(snaps, 10, 30, top=2)
    assert out["top"] == [("handle", 30.0, 1.0), ("new", 2.0, 1.0)]
    assert out["opcodes"] == pytest.approx(32.0) and out["calls"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        opcodes.per_request(snaps, 30, 30)


def test_opcode_labels_name_reactor_modules_by_their_package_path() -> None:
    assert (
        opcodes.code_label("/tmp/base/reactor/http/parser.py", 187, "RequestParser.parse")
        == "reactor/http/parser.py:187:RequestParser.parse"
    )
    assert opcodes.code_label("/usr/lib/python3.11/selectors.py", 451, "select") == (
        "selectors.py:451:select"
    )
    assert opcodes.VARIANTS["reactor-uvloop"] == "uvloop" and opcodes.N1 < opcodes.N2
