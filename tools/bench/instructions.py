"""`make bench-instr`: CPU instructions per request, counted by valgrind's callgrind.

Each server runs under ``valgrind --tool=callgrind`` twice: once answering N1 and once N2
keep-alive ``GET /`` requests (the hello app of tools/bench/apps/), sent by a client of this
module running outside valgrind over 16 connections, one request in flight per connection.
When the last response is in, the server gets SIGTERM, stops its loop and exits normally, and
callgrind writes its total (the ``totals:``/``summary:`` line of its output file). Start-up,
imports and shutdown cost the same in both runs, so ``(I2 - I1) / (N2 - N1)`` is the cost of
one request. Counted instructions do not depend on how busy the machine is, unlike req/s: this
is the figure to compare before and after a change to the core.

Servers are started as tools/bench/peers.py starts them (the same commands, apps and
environment), behind ``taskset`` and ``valgrind``; both runs of a server get the same
environment, with PYTHONHASHSEED=0 and PYTHONDONTWRITEBYTECODE=1. ``--reactor-src PATH`` puts
another checkout's reactor first on PYTHONPATH (e.g. a ``git worktree`` of an older commit) to
measure it with this tree's harness and apps.

    python tools/bench/instructions.py                  # the five servers, N1=2000, N2=6000
    python tools/bench/instructions.py --servers reactor,uvicorn --reactor-src /tmp/base

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
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import HELLO, PEERS, ROOT, Context, Peer, free_port, peer_env, raise_nofile, unavailable
from run import BENCH_VENV, BUILD, cpu_model, fmt_time, log, make_www, pinning, reactor_revision

DEFAULT_SERVERS = ("reactor", "reactor-asyncio", "reactor-uvloop", "reactor-wsgi", "uvicorn")
CONNECTIONS = 16
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
#: Seconds to wait for a server under valgrind to listen, for one response, and to exit.
START_TIMEOUT = 300.0
IO_TIMEOUT = 120.0
EXIT_TIMEOUT = 60.0
TOTALS = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.MULTILINE)


def parse_totals(text: bytes) -> int:
    """The instruction count (first event, Ir) of a callgrind output file: its ``totals:``
    line, or the ``summary:`` line that older valgrinds write instead."""
    found = TOTALS.findall(text)
    if not found:
        raise ValueError("no totals:/summary: line in the callgrind output")
    return int(found[-1])


def per_request(i1: int, n1: int, i2: int, n2: int) -> float:
    """Instructions per request, start-up and shutdown cancelled out: (I2 - I1) / (N2 - N1)."""
    if n2 <= n1:
        raise ValueError(f"N2 ({n2}) must be larger than N1 ({n1})")
    return (i2 - i1) / (n2 - n1)


class Conn:
    """One keep-alive client connection: sends ``GET /`` and reads one whole response
    (Content-Length or chunked), which must be 200 ``Hello, World!``."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(IO_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def send(self) -> None:
        self.sock.sendall(REQUEST)

    def receive(self) -> None:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ValueError(f"unexpected response: {head[:80]!r}")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while size := int(self._line().split(b";")[0], 16):
                body += self._take(size)
                self._take(2)
            while self._line():  # trailers, up to the empty line
                pass
        else:
            body = self._take(int(headers.get(b"content-length", b"-1")))
        if body != HELLO:
            raise ValueError(f"unexpected body: {body[:60]!r}")


def connect_when_listening(port: int, proc: subprocess.Popen[bytes]) -> socket.socket:
    """The first connection, once the server listens. Refused attempts never reach the
    server's process, so this costs it nothing that differs between the two runs."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        except ConnectionRefusedError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not listen within {START_TIMEOUT:g} s")


def drive(port: int, n: int, proc: subprocess.Popen[bytes]) -> list[Conn]:
    """Exactly ``n`` keep-alive requests over 16 connections, one in flight on each, in
    round-robin order; returns the connections, still open (the server closes them when it
    shuts down, which costs the same in both runs)."""
    conns = [Conn(connect_when_listening(port, proc))]
    conns += [
        Conn(socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT))
        for _ in range(min(CONNECTIONS, n) - 1)
    ]
    sent = done = 0
    busy = []
    for c in conns:
        if sent < n:
            c.send()
            sent += 1
            busy.append(c)
    while busy:
        still = []
        for c in busy:
            c.receive()
            done += 1
            if sent < n:
                c.send()
                sent += 1
                still.append(c)
        busy = still
    assert done == n
    return conns


@dataclass
class Count:
    requests: int
    instructions: int
    seconds: float


def reactor_env(peer: Peer, ctx: Context, reactor_src: Path | None) -> dict[str, str]:
    """peers.py's environment for ``peer``, with ``reactor_src`` first on PYTHONPATH, hash
    randomisation off and no bytecode written (so that both runs import the same way)."""
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


def count(peer: Peer, ctx: Context, n: int, env: dict[str, str], out_dir: Path, tag: str) -> Count:
    """One run under callgrind answering ``n`` requests; returns its instruction total."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"callgrind.{peer.name}.{tag}.out"
    log_path = out_dir / f"{peer.name}.{tag}.log"
    out_file.unlink(missing_ok=True)
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
    conns: list[Conn] = []
    try:
        conns = drive(port, n, proc)
        rc = stop(proc, peer.name, log_path)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        log("instr: server log:\n" + "\n".join(tail))
        raise
    finally:
        for c in conns:
            c.sock.close()
    # uvicorn re-raises the SIGTERM it caught once it has shut down; valgrind still runs
    # callgrind's end of run (totals included) when the program dies of a signal.
    if rc not in (0, -signal.SIGTERM):
        log(f"instr: WARNING {peer.name} exited with {rc} (see {log_path})")
    if not out_file.exists():
        raise RuntimeError(f"callgrind wrote no {out_file} (see {log_path})")
    total = parse_totals(out_file.read_bytes())
    return Count(n, total, time.monotonic() - started)


def table(results: dict[str, Any]) -> str:
    rows = results["servers"]
    base = rows.get("uvicorn", {}).get("per_request")
    lines = [
        f"| server | I1 (N1={results['n1']:,}) | I2 (N2={results['n2']:,}) "
        "| instructions/request | vs uvicorn |",
        "|---|--:|--:|--:|--:|",
    ]
    for row in rows.values():
        ratio = f"{row['per_request'] / base:.2f}x" if base else "-"
        lines.append(
            f"| {row['label']} | {row['i1']:,} | {row['i2']:,} "
            f"| {row['per_request']:,.0f} | {ratio} |"
        )
    for name, reason in results.get("skipped", {}).items():
        lines.append(f"\nskipped: {name}: {reason}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Instructions per request under valgrind --tool=callgrind.",
        epilog="servers: " + ", ".join(PEERS),
    )
    p.add_argument("--n1", type=int, default=2000, help="requests of the first run")
    p.add_argument("--n2", type=int, default=6000, help="requests of the second run")
    p.add_argument("--servers", default=",".join(DEFAULT_SERVERS), help="comma-separated")
    p.add_argument("--reactor-src", type=Path, help="a reactor checkout to measure instead")
    p.add_argument("--json", help="write the raw results here")
    p.add_argument("--out-dir", type=Path, default=BUILD / "instr", help="callgrind files, logs")
    p.add_argument("--no-reexec", action="store_true", help="do not switch to build/bench-venv")
    args = p.parse_args(argv)
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    for name in args.server_list:
        if name not in PEERS:
            p.error(f"unknown server {name!r}: choose from {', '.join(PEERS)}")
    if args.n1 < 1 or args.n2 <= args.n1:
        p.error("need 1 <= --n1 < --n2")
    if args.reactor_src is not None:
        args.reactor_src = args.reactor_src.resolve()
        if not (args.reactor_src / "reactor" / "__init__.py").is_file():
            p.error(f"--reactor-src {args.reactor_src}: no reactor/__init__.py there")
    return args


def maybe_reexec(args: argparse.Namespace) -> None:
    python = BENCH_VENV / "bin" / "python"
    if args.no_reexec or not python.exists():
        return
    if Path(sys.prefix).resolve() == BENCH_VENV.resolve():
        return
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


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
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "reactor": reactor_revision(tree),
        "reactor_src": str(tree),
        "cpu": cpu_model(),
        "valgrind": valgrind.stdout.strip(),
        "python": sys.version.split()[0],
        "n1": args.n1,
        "n2": args.n2,
        "connections": CONNECTIONS,
        "servers": {},
        "skipped": {},
    }
    log(f"instr: reactor {results['reactor']} from {tree}; {results['valgrind']}")
    log(f"instr: N1={args.n1:,}, N2={args.n2:,} keep-alive GET / over {CONNECTIONS} connections")
    started = time.monotonic()
    for name in args.server_list:
        peer = PEERS[name]
        env = reactor_env(peer, ctx, args.reactor_src)
        reason = why_not(peer, ctx, env)
        if reason is not None:
            results["skipped"][name] = reason
            log(f"instr: {name}: skipped: {reason}")
            continue
        counts = []
        try:
            for tag, n in (("n1", args.n1), ("n2", args.n2)):
                log(f"instr: {name}: {n:,} requests under callgrind ...")
                c = count(peer, ctx, n, env, args.out_dir, tag)
                counts.append(c)
                log(
                    f"instr: {name}: {n:,} requests: {c.instructions:,} instructions "
                    f"({c.seconds:.0f} s; {fmt_time(time.monotonic() - started)} elapsed)"
                )
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            results["skipped"][name] = f"failed: {exc}"
            log(f"instr: {name}: failed: {exc}")
            continue
        one, two = counts
        cost = per_request(one.instructions, one.requests, two.instructions, two.requests)
        results["servers"][name] = {
            "label": peer.label,
            "i1": one.instructions,
            "i2": two.instructions,
            "per_request": round(cost, 1),
        }
        log(f"instr: {name}: {cost:,.0f} instructions per request")
    base = results["servers"].get("uvicorn", {}).get("per_request")
    for row in results["servers"].values():
        row["vs_uvicorn"] = round(row["per_request"] / base, 3) if base else None
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
        log(f"instr: raw results in {args.json}")
    print(table(results))
    log(f"instr: done in {fmt_time(time.monotonic() - started)}")
    return 0 if results["servers"] else 1


if __name__ == "__main__":
    sys.exit(main())
