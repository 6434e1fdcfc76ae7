"""Python opcodes and calls per request, per function, of reactor's benchmark server.

Runs tools/bench/apps/reactor_app.py in a subprocess (``--serve``, this module again) with a
``sys.settrace`` tracer that counts, per code object, the calls and the opcodes executed
(``frame.f_trace_opcodes``). On SIGUSR1 the server writes a snapshot of both counters. The
driver (instructions.py's client and scenarios) warms the connections up, snapshots, sends N1
requests, snapshots, sends N2 requests and snapshots again; ``(B2 - B1) / (N2 - N1)``, B1 and
B2 the counts of the two batches, is what one request costs per function, whatever a batch
costs in itself (the snapshot, the loop waking up) cancelled out. It runs outside valgrind
(a count of opcodes does not depend on speed); the default batches take a few seconds.

    python tools/bench/opcodes.py                      # selectors loop, hello, top 25
    python tools/bench/opcodes.py --variant uvloop --scenario post --top 40

instructions.py calls ``profile`` for ``make bench-instr``'s report. Tests:
tests/test_bench_tools.py (the snapshot arithmetic and the labels; no server is run).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import CONNECTIONS, Scenario, connect_when_listening, drive, open_conns
from peers import free_port, raise_nofile

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
#: Requests of the two batches: ~2 ms each under the tracer, ~5 s in all.
N1 = 500
N2 = 2000
TOP = 25
#: reactor_app.py's ``--variant`` of each reactor server of peers.py.
VARIANTS = {
    "reactor": "selectors",
    "reactor-asyncio": "asyncio",
    "reactor-uvloop": "uvloop",
    "reactor-wsgi": "wsgi",
    "reactor-asgi": "asgi",
}
Snapshot = dict[str, dict[str, int]]


def code_label(filename: str, firstlineno: int, qualname: str) -> str:
    """``reactor/http/parser.py:120:Parser.feed`` for reactor's code (its path from the
    package on), ``selectors.py:451:EpollSelector.select`` for anything else."""
    marker = f"{os.sep}reactor{os.sep}"
    i = filename.rfind(marker)
    path = filename[i + 1 :] if i >= 0 else os.path.basename(filename)
    return f"{path}:{firstlineno}:{qualname}"


def serve(snap_dir: Path, app_args: list[str]) -> int:
    """The traced server: reactor_app.main() under the counting tracer."""
    sys.path.insert(0, str(APPS))
    sys.argv = [str(APPS / "reactor_app.py"), *app_args]
    import reactor_app

    opcodes: collections.Counter[Any] = collections.Counter()
    calls: collections.Counter[Any] = collections.Counter()
    taken = 0

    def on_event(frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            opcodes[frame.f_code] += 1
        return on_event

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is snapshot.__code__:
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        calls[frame.f_code] += 1
        return on_event

    def snapshot(signum: int, frame: Any) -> None:
        nonlocal taken
        # Tracing off while the counters are read: the tracer must not add to (or grow) a
        # dict while it is iterated, and the dump must not count itself.
        sys.settrace(None)
        try:
            ops, cs = dict(opcodes), dict(calls)
            out: Snapshot = {"opcodes": {}, "calls": {}}
            for kind, counts in (("opcodes", ops), ("calls", cs)):
                for code, n in counts.items():
                    label = code_label(code.co_filename, code.co_firstlineno, code.co_qualname)
                    out[kind][label] = out[kind].get(label, 0) + n
            path = snap_dir / f"snap.{taken}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(out))
            os.replace(tmp, path)
            taken += 1
        finally:
            sys.settrace(on_call)

    signal.signal(signal.SIGUSR1, snapshot)
    sys.settrace(on_call)
    return int(reactor_app.main())


def batch(one: Snapshot, two: Snapshot) -> Snapshot:
    """What was counted between two snapshots."""
    return {
        kind: {k: n - one[kind].get(k, 0) for k, n in two[kind].items()}
        for kind in ("opcodes", "calls")
    }


def per_request(snaps: list[Snapshot], n1: int, n2: int, top: int = TOP) -> dict[str, Any]:
    """From the snapshots before, between and after the batches of ``n1`` and ``n2``
    requests: opcodes and calls per request in all, and the ``top`` functions by opcodes
    per request as ``(label, opcodes, calls)``."""
    if n2 <= n1:
        raise ValueError(f"N2 ({n2}) must be larger than N1 ({n1})")
    s0, s1, s2 = snaps
    one, two = batch(s0, s1), batch(s1, s2)
    n = n2 - n1
    cost = {
        kind: {
            k: (two[kind].get(k, 0) - one[kind].get(k, 0)) / n
            for k in one[kind].keys() | two[kind].keys()
        }
        for kind in ("opcodes", "calls")
    }
    rows = [(k, v, cost["calls"].get(k, 0.0)) for k, v in cost["opcodes"].items() if v >= 0.05]
    rows.sort(key=lambda r: (-r[1], r[0]))
    return {
        "n1": n1,
        "n2": n2,
        "opcodes": sum(cost["opcodes"].values()),
        "calls": sum(cost["calls"].values()),
        "top": [(k, round(o, 2), round(c, 3)) for k, o, c in rows[:top]],
    }


def profile(
    python: str,
    env: dict[str, str],
    variant: str,
    scenario: Scenario,
    n1: int,
    n2: int,
    out_dir: Path,
    top: int = TOP,
) -> dict[str, Any]:
    """Run the traced server on ``variant``, drive ``scenario`` and return ``per_request``."""
    snap_dir = out_dir / "opcodes"
    snap_dir.mkdir(parents=True, exist_ok=True)
    for old in snap_dir.glob("snap.*"):
        old.unlink()
    port = free_port()
    argv = [python, str(Path(__file__).resolve()), "--serve", str(snap_dir), "--",
            "--variant", variant, "--port", str(port)]  # fmt: skip
    log_path = snap_dir / "server.log"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env,
            cwd=snap_dir, start_new_session=True, preexec_fn=raise_nofile,
        )  # fmt: skip
    snaps: list[Snapshot] = []

    def take() -> None:
        time.sleep(0.2)  # the server finishes the last response's work first
        path = snap_dir / f"snap.{len(snaps)}.json"
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 60
        while not path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the traced server wrote no {path} (see {log_path})")
            time.sleep(0.05)
        snaps.append(json.loads(path.read_text()))

    try:
        connect_when_listening(port, proc).close()
        conns = open_conns(port)
        try:
            drive(conns, scenario, 2 * CONNECTIONS * scenario.depth)
            take()
            for n in (n1, n2):
                drive(conns, scenario, n)
                take()
        finally:
            for c in conns:
                c.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return per_request(snaps, n1, n2, top)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        return serve(Path(argv[1]), argv[3:])
    from client import SCENARIOS
    from instructions import maybe_reexec, reactor_env
    from peers import PEERS, Context
    from run import BUILD, log, make_www

    p = argparse.ArgumentParser(description="Python opcodes per request, per function.")
    p.add_argument("--variant", default="selectors", choices=sorted(set(VARIANTS.values())))
    p.add_argument("--scenario", default="hello", choices=list(SCENARIOS))
    p.add_argument("--n1", type=int, default=N1)
    p.add_argument("--n2", type=int, default=N2)
    p.add_argument("--top", type=int, default=TOP)
    p.add_argument("--reactor-src", type=Path, help="a reactor checkout to measure instead")
    p.add_argument("--out-dir", type=Path, default=BUILD / "instr")
    p.add_argument("--json", help="write the result here")
    p.add_argument("--no-reexec", action="store_true", help="do not switch to build/bench-venv")
    args = p.parse_args(argv)
    if args.n1 < 1 or args.n2 <= args.n1:
        p.error("need 1 <= --n1 < --n2")
    maybe_reexec(args, __file__)
    server = next(s for s, v in VARIANTS.items() if v == args.variant)
    ctx = Context(python=sys.executable, build=BUILD, www=make_www(BUILD))
    src = args.reactor_src.resolve() if args.reactor_src else None
    env = reactor_env(PEERS[server], ctx, src)
    log(f"opcodes: {server}, {args.scenario}, N1={args.n1:,}, N2={args.n2:,} ...")
    result = profile(
        sys.executable, env, args.variant, SCENARIOS[args.scenario], args.n1, args.n2,
        args.out_dir, args.top,
    )  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['opcodes']:,.1f} opcodes, {result['calls']:.1f} calls per request")
    print(f"{'opcodes':>9} {'calls':>6}  function")
    for label, ops, calls in result["top"]:
        print(f"{ops:9.1f} {calls:6.2f}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
