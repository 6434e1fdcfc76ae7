"""Listening sockets that ``reactor serve`` did not bind itself, and the mode of the ones it did.

Owns adopting inherited listening sockets: ``--fd N`` (a descriptor the parent left open, as
gunicorn's ``--bind fd://N``) and systemd socket activation (``LISTEN_PID``/``LISTEN_FDS``:
descriptors 3, 4, ... when ``LISTEN_PID`` is this process, sd_listen_fds(3)'s protocol; the
variables are removed so that a child does not take them for its own), each checked to be a
listening stream socket and made non-blocking; ``parse_mode`` for ``--uds-mode``; and
``listen_error``, the one line for an address that cannot be listened on. It binds nothing
and knows no HTTP. Tests: tests/integration/test_listeners.py, test_serve_footguns.py.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import MutableMapping

from .apploader import one_line
from .run import Bind

__all__ = [
    "SD_LISTEN_FDS_START",
    "adopt_fd",
    "inherited_sockets",
    "listen_error",
    "parse_mode",
    "systemd_sockets",
]

#: The first descriptor systemd passes (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3


class NotAListener(ValueError):
    """The descriptor is closed, or not a listening stream socket; the message says which."""


def adopt_fd(fd: int) -> socket.socket:
    """The listening socket on descriptor ``fd``, non-blocking; raises NotAListener."""
    try:
        os.fstat(fd)
    except OSError:
        raise NotAListener(f"descriptor {fd} is not open") from None
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        raise NotAListener(f"descriptor {fd} is not a socket") from None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()  # not ours to close
        raise NotAListener(f"descriptor {fd} is not a listening stream socket")
    sock.setblocking(False)
    return sock


def systemd_sockets(environ: MutableMapping[str, str]) -> list[socket.socket]:
    """The sockets systemd passed to this process (none if ``LISTEN_PID`` is not this
    process's id); the ``LISTEN_*`` variables are removed from ``environ``. Raises
    NotAListener for a passed descriptor that is not a listening socket."""
    pid = environ.get("LISTEN_PID", "")
    count = environ.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return []
    return [adopt_fd(fd) for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count))]


def parse_mode(text: str) -> int:
    """A Unix permission mode in octal: ``660``, ``0660`` or ``0o660``; ValueError if not."""
    digits = text.strip().lower().removeprefix("0o")
    if not digits or any(c not in "01234567" for c in digits) or int(digits, 8) > 0o7777:
        raise ValueError(f"not an octal file mode (like 660 or 0o660): {text!r}")
    return int(digits, 8)


def inherited_sockets(fds: list[int], environ: MutableMapping[str, str]) -> list[socket.socket]:
    """systemd's sockets, then those of ``--fd``; raises NotAListener naming the one at
    fault."""
    try:
        sockets = systemd_sockets(environ)
    except NotAListener as exc:
        raise NotAListener(f"LISTEN_FDS (systemd socket activation): {exc}") from None
    for fd in fds:
        try:
            sockets.append(adopt_fd(fd))
        except NotAListener as exc:
            raise NotAListener(f"--fd {fd}: {exc}") from None
    return sockets


def listen_error(bind: Bind, exc: OSError) -> str:
    """The one line for an address that cannot be listened on: what and what to do."""
    if exc.errno == errno.EADDRINUSE:
        reason = "address already in use"
    elif exc.errno == errno.EACCES and bind.path is None and 0 < bind.port < 1024:
        reason = (
            f"port {bind.port} is privileged: run as root, give the interpreter "
            "CAP_NET_BIND_SERVICE, let systemd pass the socket (LISTEN_FDS), or listen on a "
            "port >= 1024 behind a proxy"
        )
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason = f"{bind.host} is not an address of this machine"
    else:
        reason = exc.strerror or one_line(exc)
    return f"reactor: cannot listen on {bind}: {reason}"
