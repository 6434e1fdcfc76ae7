"""``reactor leakcheck``'s scenarios for a user's handler (APP or ``--wsgi``).

Owns APP_SCENARIOS: the Target's script of requests (``--path``, ``--method``, ``--host``,
``--header``, ``--data``; cookies carried) over keep-alive connections, with
``Connection: close``, and pipelined. Tests: tests/leaks/test_leakcheck.py,
tests/leaks/test_leakcheck_apps.py.
"""

from __future__ import annotations

from .client import ClientConn, Step
from .harness import Harness
from .scenarios import PER_CONN, Scenario, split_batches

__all__ = ["APP_SCENARIOS"]


def _read(h: Harness, c: ClientConn, step: Step) -> str:
    """Read the response to ``step``, tell the target; its Connection header."""
    status, headers, _body = c.read_response(step.method == "HEAD")
    h.target.answered(step, status, headers)
    return headers.get("connection", "").lower()


def _app_sequential(h: Harness, n: int) -> int:
    batches = split_batches(n, PER_CONN)
    connections = len(batches)
    for count in batches:
        c = h.client.connect()
        for _ in range(count):
            data, step = h.target.request()
            c.send(data)
            if _read(h, c, step) == "close":
                c.close()
                h.wait_closed()
                c = h.client.connect()
                connections += 1
        c.close()
        h.wait_closed()
    return connections


def _app_close(h: Harness, n: int) -> int:
    n = max(n, 1)
    for _ in range(n):
        c = h.client.connect()
        data, step = h.target.request(close=True)
        c.send(data)
        _read(h, c, step)
        c.read_to_eof()
        c.close()
        h.wait_closed()
    return n


def _app_pipelined(h: Harness, n: int) -> int:
    batches = split_batches(n, 5)
    for count in batches:
        c = h.client.connect()
        sent = [h.target.request() for _ in range(count)]
        c.send(b"".join(data for data, _step in sent))
        for _data, step in sent:
            if _read(h, c, step) == "close":
                break  # the server closes after this one: the rest are not answered
        c.close()
        h.wait_closed()
    return len(batches)


APP_SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "app-keepalive",
            f"the requests over keep-alive connections, {PER_CONN} per connection",
            _app_sequential,
        ),
        Scenario(
            "app-close", "each request with Connection: close, one per connection", _app_close
        ),
        Scenario("app-pipelined", "bursts of 5 pipelined requests per connection", _app_pipelined),
    )
}
