"""Server memory while a Flask app receives a large upload (issue 12's measure).

Method: start the server as its own process (``reactor serve fl:app --threads 4``, or
gunicorn with ``--gunicorn`` when it is installed), send one warm-up request, read the
process's VmRSS from /proc/PID/status as the baseline, upload SIZE bytes with
``curl -T`` (streamed from a file; the client is another process), then read VmHWM (the peak
RSS of the process's life). Growth = VmHWM - baseline. Routes: ``/stream`` reads
``request.stream`` in 64 KiB pieces; ``/data`` reads ``request.data`` (the body whole).

Run:  python tools/bench/wsgi_upload_memory.py [--size-mb 100] [--route stream|data]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

FLASK_APP = """
import hashlib
from flask import Flask, request

app = Flask(__name__)

@app.get("/")
def index():
    return "ok"

@app.route("/stream", methods=["PUT", "POST"])
def stream():
    digest = hashlib.sha256()
    total = 0
    while data := request.stream.read(65536):
        digest.update(data)
        total += len(data)
    return {"total": total, "sha256": digest.hexdigest()}

@app.route("/data", methods=["PUT", "POST"])
def data():
    body = request.data
    return {"total": len(body), "sha256": hashlib.sha256(body).hexdigest()}
"""


def status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match, field
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--route", choices=("stream", "data"), default="stream")
    parser.add_argument("--gunicorn", action="store_true", help="measure gunicorn instead")
    parser.add_argument("--port", type=int, default=18712)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "fl.py").write_text(FLASK_APP)
        upload = Path(tmp, "upload.bin")
        with open(upload, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(args.size_mb):
                f.write(block)
        if args.gunicorn:
            cmd = [
                str(Path(sys.executable).parent / "gunicorn"),
                "-b",
                f"127.0.0.1:{args.port}",
                "-w",
                "1",
                "--threads",
                "4",
                "fl:app",
            ]
            name = "gunicorn gthread (1 worker, 4 threads)"
        else:
            cmd = [
                sys.executable,
                "-m",
                "reactor",
                "serve",
                "fl:app",
                "--port",
                str(args.port),
                "--threads",
                "4",
                "--max-body-size",
                "0",
            ]
            name = "reactor serve --threads 4"
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{args.port}/"
            deadline = time.monotonic() + 15
            while True:
                try:
                    urllib.request.urlopen(url, timeout=1).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            pid = proc.pid
            if args.gunicorn:  # the worker process serves; the arbiter only supervises
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                pid = int(children[0])
            base = status_kib(pid, "VmRSS")
            started = time.monotonic()
            out = subprocess.run(
                ["curl", "-s", "-T", str(upload), url + args.route],
                capture_output=True,
                check=True,
                timeout=300,
            ).stdout
            seconds = time.monotonic() - started
            peak = status_kib(pid, "VmHWM")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    print(f"{name}, {args.size_mb} MB upload to /{args.route}: {out.decode().strip()}")
    print(
        f"  baseline RSS {base / 1024:.1f} MiB, peak RSS {peak / 1024:.1f} MiB, "
        f"growth {(peak - base) / 1024:.1f} MiB, {seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
