"""The thresholds of the adversarial suite, each next to its precedent.

The servers under attack run with short timeouts so that a test sees them fire within a few
seconds; the defaults (reactor/config.py) are the production values. The bounds on what a
user sees are generous on purpose: the machine is shared and loaded, and the point is to
catch a stalled loop (seconds to tens of seconds), not to measure speed.

| Bound | Value here | Precedent |
| --- | --- | --- |
| A well-behaved client is answered within, while an attack runs | 2 s | None of nginx, Go or HAProxy promise a latency; a stalled loop shows as the length of the stall: a header timeout (10 s), a write timeout (60 s), seconds of CPU in one callback. |
| Header timeout (first byte of a connection to the end of the head, not reset by progress) | 1.5 s (default 10 s) | Go `ReadHeaderTimeout` (whole head, not reset); nginx `client_header_timeout` 60 s; HAProxy `timeout http-request` (commonly 10 s, whole head). |
| Body timeout (between two reads of a body) | 1.5 s (default 60 s) | nginx `client_body_timeout` 60 s, between two reads; HAProxy `timeout client`. |
| Write timeout (no progress writing) | 1.5 s (default 60 s) | nginx `send_timeout` 60 s, between two writes; Go `WriteTimeout`; HAProxy `timeout client`. |
| A cut connection is gone within its timeout plus | 2 s | The timer fires on the loop's next pass; slack for the loaded machine. |
| A connection flood's table size | `--max-connections 50` | nginx `worker_connections` 512; HAProxy `maxconn`. |
| The fd limit of the flooded server | RLIMIT_NOFILE 128 | nginx logs `accept() failed (24: Too many open files)` and retries; Go's `Serve` sleeps 5 ms doubling to 1 s on a temporary accept error. |
| Unread pipelined bytes held per connection | `max_read_ahead` 256 KiB | Go's bufio reader 4 KiB; nginx `large_client_header_buffers` 4 x 8 KiB; HAProxy `tune.bufsize` 16 KiB. |
| RSS growth under an attack that must not be buffered (trickles, floods, slow readers of a streamed response) | 24 MiB | A few hundred connections at ~1 KiB each plus the allocator's slack; a server that buffered a 32 MiB response per slow reader, or every pipelined request, would grow by hundreds of MiB. |
| Live objects after the attack, above the baseline | 1 per attacking connection, at least 300 | A leaked connection keeps dozens of objects (connection, parser, request, writer, buffers), so even one leak per hundred connections shows; 300 absorbs caches (the logging module, the date header) that settle on first use. |
| fds and the connection table after the attack | the baseline exactly | Every connection's fd is closed and it leaves the table. |
"""

from __future__ import annotations

ANSWER_WITHIN = 2.0
HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
WRITE_TIMEOUT = 1.5
TIMER_SLACK = 2.0
MAX_CONNECTIONS = 50
NOFILE = 128
RSS_GROWTH_KIB = 24 * 1024


def leak_allowance(connections: int) -> int:
    """Objects the server may hold above its baseline after ``connections`` attacked it."""
    return max(300, connections)


#: The flags every server under attack runs with.
TIMEOUT_FLAGS = (
    "--read-header-timeout",
    str(HEADER_TIMEOUT),
    "--body-timeout",
    str(BODY_TIMEOUT),
    "--write-timeout",
    str(WRITE_TIMEOUT),
)
