"""What a proxy in front of the server says about the client, parsed without sockets.

Owns three sans-IO pieces and the two thin adapters that use them:

- ``TrustedProxies``: ``--forwarded-allow-ips`` (``127.0.0.1,10.0.0.0/8``, ``*`` for any,
  ``unix`` for Unix-socket peers), asked whether a peer address is one;
- ``forwarded_client``: the client address, scheme and host from ``X-Forwarded-For``/
  ``-Proto``/``-Host`` or RFC 7239 ``Forwarded`` (which wins when both are sent), walking the
  chain from the nearest proxy back and stopping at the first address that is not a trusted
  proxy (a client can put anything at the left of X-Forwarded-For);
- ``proxy_header_length``/``parse_proxy_header``: HAProxy's PROXY protocol, version 1 (text)
  and 2 (binary), as its specification (haproxy.org, proxy-protocol.txt) describes.

Adapters: ``ProxyHeaders`` wraps a handler and, for a request from a trusted peer that carries
forwarding headers, tells the Request (``Request.set_client``) who the client is, so the
handler, the WSGI environ and the access log all see it; without the flag the wrapper is not
there, so it costs nothing. ``ProxyHeaderReader`` reads one PROXY header from a just-accepted
socket on the loop (MSG_PEEK, then exactly the header's bytes, so what follows stays in the
kernel for the connection), bounded by a timeout, answering 400 and closing on a bad one; the
connection then gets a ``ProxiedSocket``, whose ``getpeername()`` is the client's address.
Tests: tests/test_proxy.py (bytes and headers), tests/integration/test_proxies.py (real
nginx and HAProxy in front of ``reactor serve``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .pending import PendingSocket

__all__ = [
    "PROXY_V2_SIGNATURE",
    "Forwarded",
    "ProxiedSocket",
    "ProxyHeaderError",
    "ProxyHeaderReader",
    "ProxyHeaders",
    "ProxyInfo",
    "TrustedProxies",
    "forwarded_client",
    "parse_forwarded",
    "parse_proxy_header",
    "proxy_header_length",
]

log = logging.getLogger("reactor.proxy")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- trusted proxies -------------------------------------------------------------------------


class TrustedProxies:
    """``--forwarded-allow-ips``: comma-separated addresses and CIDR ranges, ``*`` (every
    peer) and ``unix`` (peers on a Unix socket, which have no address). Raises ValueError
    naming the item that is none of these."""

    def __init__(self, spec: str | Iterable[str]) -> None:
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        self.any = False
        self.unix = False
        self.networks: list[IPNetwork] = []
        for raw in items:
            item = raw.strip()
            if not item:
                continue
            if item == "*":
                self.any = True
            elif item.lower() == "unix":
                self.unix = True
            else:
                try:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise ValueError(
                        f"not an IP address, CIDR range, '*' or 'unix': {item!r}"
                    ) from None
        self._seen: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return self.any or self.unix or bool(self.networks)

    def trusts_peer(self, addr: Any) -> bool:
        """Whether a connection's peer (``(host, port)`` or, on a Unix socket, a string or
        None) is a trusted proxy."""
        if isinstance(addr, tuple):
            return self.trusts_ip(str(addr[0]))
        return self.any or self.unix

    def trusts_ip(self, host: str) -> bool:
        if self.any:
            return True
        known = self._seen.get(host)
        if known is not None:
            return known
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        trusted = any(ip in net for net in self.networks)
        if len(self._seen) < 1024:  # a bounded cache: peers are few, addresses in XFF not
            self._seen[host] = trusted
        return trusted


# -- forwarding headers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What the proxies said: the client's address (``(host, port)``, port 0 if not given),
    and the scheme and host the client used (None where they did not say)."""

    client: tuple[str, int] | None
    scheme: str | None
    host: str | None


def _split_host_port(text: str) -> tuple[str, int] | None:
    """``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1`` -> (host, port); None if it is no
    IP address (``unknown``, an obfuscated ``_hidden`` identifier)."""
    text = text.strip().strip('"')
    port = 0
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if port_text.isdigit():
            port = int(port_text)
    else:
        host = text
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host, port


def _split_list(value: str) -> list[str]:
    """A comma-separated header value, respecting quoted strings."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    return [item for item in items if item]


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded``: one dict per element (``for``, ``proto``, ``host``, ``by``,
    lower-cased names, quotes removed), in the order they were added."""
    elements = []
    for element in _split_list(value):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            name, sep, val = pair.partition("=")
            if not sep:
                continue
            val = val.strip()
            if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
                val = val[1:-1].replace('\\"', '"')
            pairs[name.strip().lower()] = val
        elements.append(pairs)
    return elements


def _scheme(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    return value if value in ("http", "https", "ws", "wss") else None


def forwarded_client(
    headers: Any, trusted: TrustedProxies, peer_trusted: bool = True
) -> Forwarded | None:
    """The client as the proxies in front describe it, or None when no forwarding header
    was sent (or the peer is not trusted). The address chain is walked from the nearest
    proxy back: the first address that is not a trusted proxy is the client (all trusted:
    the first one). Scheme and host come from the same hop (Forwarded) or, for the
    X-Forwarded-* headers, from the entry at the client's position when the lists line up,
    else from the nearest proxy's."""
    if not peer_trusted:
        return None
    forwarded = headers.get("forwarded")
    if forwarded is not None:
        elements = parse_forwarded(",".join(headers.get_all("forwarded")))
        if not elements:
            return None
        index = _client_index([e.get("for", "") for e in elements], trusted)
        chosen = elements[index]
        client = _split_host_port(chosen.get("for", ""))
        return Forwarded(client, _scheme(chosen.get("proto")), chosen.get("host") or None)
    xff = headers.get("x-forwarded-for")
    proto = headers.get("x-forwarded-proto")
    xhost = headers.get("x-forwarded-host")
    if xff is None and proto is None and xhost is None:
        return None
    client = None
    index = -1
    count = 0
    if xff is not None:
        hops = _split_list(",".join(headers.get_all("x-forwarded-for")))
        count = len(hops)
        if hops:
            index = _client_index(hops, trusted)
            client = _split_host_port(hops[index])
    return Forwarded(
        client,
        _scheme(_pick(proto, index, count)),
        _pick(xhost, index, count),
    )


def _pick(value: str | None, index: int, count: int) -> str | None:
    if value is None:
        return None
    items = _split_list(value)
    if not items:
        return None
    if count and len(items) == count:
        return items[index]
    return items[-1]


def _client_index(hops: list[str], trusted: TrustedProxies) -> int:
    for index in range(len(hops) - 1, -1, -1):
        parsed = _split_host_port(hops[index])
        if parsed is None or not trusted.trusts_ip(parsed[0]):
            return index
    return 0


class ProxyHeaders:
    """A handler wrapper: for a request from a trusted peer with forwarding headers, the
    Request learns the client's address, scheme and host (``Request.set_client``) before
    ``handler`` sees it."""

    def __init__(self, handler: Any, trusted: TrustedProxies) -> None:
        self.handler = handler
        self.trusted = trusted
        if getattr(handler, "reactor_streaming", False):
            self.reactor_streaming = True

    def __call__(self, w: Any, r: Any) -> Any:
        # The peer first (its verdict is cached by address), then one pass over the header
        # names, which is cheaper than building the headers' look-up index.
        if self.trusted.trusts_peer(r.remote_addr):
            for name, _value in r.headers.fields:
                if name[:1] in "fFxX" and name.lower() in _FORWARDING_HEADERS:
                    said = forwarded_client(r.headers, self.trusted)
                    if said is not None:
                        r.set_client(said.client, said.scheme, said.host)
                    break
        return self.handler(w, r)


_FORWARDING_HEADERS = frozenset(
    {"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
)


# -- the PROXY protocol ------------------------------------------------------------------------

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: Version 1's longest header, CRLF included (the specification's 107 bytes).
V1_MAX = 107
#: Version 2's longest header: the 16-byte preamble and a 16-bit length.
V2_MAX = 16 + 0xFFFF


class ProxyHeaderError(ValueError):
    """Not a valid PROXY protocol header; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """A parsed PROXY header: ``source``/``dest`` as ``(host, port)`` (None for a LOCAL
    or UNKNOWN connection: a health check by the proxy itself, whose real peer stands)."""

    version: int
    source: tuple[str, int] | None
    dest: tuple[str, int] | None


def proxy_header_length(data: bytes) -> int | None:
    """The length of the PROXY header at the start of ``data``, None if more bytes are
    needed to tell; raises ProxyHeaderError when ``data`` cannot start one."""
    if data[:1] == b"P":
        if not b"PROXY "[: len(data)].startswith(data[:6]):
            raise ProxyHeaderError(f"not a PROXY header: {bytes(data[:16])!r}")
        end = data.find(b"\r\n", 0, V1_MAX)
        if end >= 0:
            return end + 2
        if len(data) >= V1_MAX:
            raise ProxyHeaderError(f"PROXY v1 header longer than {V1_MAX} bytes")
        return None
    if data[:1] == b"\r":
        if not PROXY_V2_SIGNATURE.startswith(data[:12]):
            raise ProxyHeaderError(f"not a PROXY header: {bytes(data[:16])!r}")
        if len(data) < 16:
            return None
        return 16 + int.from_bytes(data[14:16], "big")
    if data:
        raise ProxyHeaderError(f"not a PROXY header: {bytes(data[:16])!r}")
    return None


def parse_proxy_header(header: bytes) -> ProxyInfo:
    """One whole header (``proxy_header_length`` bytes); raises ProxyHeaderError."""
    if header.startswith(b"PROXY "):
        return _parse_v1(header)
    if header.startswith(PROXY_V2_SIGNATURE):
        return _parse_v2(header)
    raise ProxyHeaderError(f"not a PROXY header: {header[:16]!r}")


def _parse_v1(header: bytes) -> ProxyInfo:
    if not header.endswith(b"\r\n"):
        raise ProxyHeaderError("PROXY v1 header does not end with CRLF")
    try:
        text = header[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 header is not ASCII") from None
    parts = text.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyInfo(1, None, None)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"bad PROXY v1 header: {text!r}")
    _, family, src, dst, sport, dport = parts
    version = 4 if family == "TCP4" else 6
    try:
        src_ip = ipaddress.ip_address(src)
        dst_ip = ipaddress.ip_address(dst)
    except ValueError:
        raise ProxyHeaderError(f"bad address in PROXY v1 header: {text!r}") from None
    if src_ip.version != version or dst_ip.version != version:
        raise ProxyHeaderError(f"{family} with an IPv{src_ip.version} address: {text!r}")
    ports = []
    for port in (sport, dport):
        if not port.isdigit() or (len(port) > 1 and port[0] == "0") or int(port) > 65535:
            raise ProxyHeaderError(f"bad port in PROXY v1 header: {text!r}")
        ports.append(int(port))
    return ProxyInfo(1, (str(src_ip), ports[0]), (str(dst_ip), ports[1]))


_V2_ADDRESSES = {
    0x11: (socket.AF_INET, 12, "!4s4sHH"),  # TCP over IPv4
    0x12: (socket.AF_INET, 12, "!4s4sHH"),  # UDP over IPv4
    0x21: (socket.AF_INET6, 36, "!16s16sHH"),  # TCP over IPv6
    0x22: (socket.AF_INET6, 36, "!16s16sHH"),  # UDP over IPv6
}


def _parse_v2(header: bytes) -> ProxyInfo:
    if len(header) < 16:
        raise ProxyHeaderError("PROXY v2 header shorter than 16 bytes")
    version_command = header[12]
    if version_command >> 4 != 2:
        raise ProxyHeaderError(f"PROXY v2 header with version {version_command >> 4}")
    command = version_command & 0x0F
    length = int.from_bytes(header[14:16], "big")
    if len(header) != 16 + length:
        raise ProxyHeaderError(f"PROXY v2 header of {len(header)} bytes, says {16 + length}")
    if command == 0x0:  # LOCAL: the proxy's own connection (a health check)
        return ProxyInfo(2, None, None)
    if command != 0x1:
        raise ProxyHeaderError(f"PROXY v2 header with command {command:#x}")
    family = header[13]
    layout = _V2_ADDRESSES.get(family)
    if layout is None:  # AF_UNSPEC, AF_UNIX: no address we can use; the real peer stands
        return ProxyInfo(2, None, None)
    af, size, fmt = layout
    if length < size:
        raise ProxyHeaderError(f"PROXY v2 address block of {length} bytes, want {size}")
    src, dst, sport, dport = struct.unpack(fmt, header[16 : 16 + size])
    return ProxyInfo(2, (socket.inet_ntop(af, src), sport), (socket.inet_ntop(af, dst), dport))


class ProxiedSocket(socket.socket):
    """An accepted socket whose ``getpeername()`` is the client a PROXY header named."""

    __slots__ = ("proxied_peer",)

    proxied_peer: tuple[str, int]

    def getpeername(self) -> Any:
        return self.proxied_peer


_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 25\r\nConnection: close\r\n\r\nbad PROXY protocol header"
)


class ProxyHeaderReader(PendingSocket[socket.socket]):
    """Reads the PROXY header of one accepted socket with loop events, within ``timeout``
    seconds. Reports as every PendingSocket does: ``on_done(sock, addr)`` with the socket
    to serve (a ProxiedSocket unless the header was LOCAL/UNKNOWN), and ``on_end(self)`` once
    it is over either way. A bad header gets a 400 and the socket is closed; so is one that
    times out or ends first."""

    __slots__ = ("_buf",)

    def __init__(
        self,
        loop: Any,
        sock: socket.socket,
        addr: Any,
        *,
        timeout: float,
        on_done: Callable[[socket.socket, Any], object],
        on_end: Callable[[ProxyHeaderReader], object],
    ) -> None:
        super().__init__(loop, sock, addr, on_done, on_end)
        self._buf = b""
        self._timer = loop.call_later(timeout, self._on_timeout)

    def start(self) -> None:
        sock = self._sock
        assert sock is not None
        self._loop.add_reader(sock, self._on_readable)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            peeked = sock.recv(V2_MAX - len(self._buf), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.info("PROXY header from %s: %s", self._addr, exc)
            self.cancel()
            return
        if not peeked:
            log.info("PROXY header from %s: the connection ended first", self._addr)
            self.cancel()
            return
        data = self._buf + peeked
        try:
            length = proxy_header_length(data)
            # Consume exactly the header's bytes; what follows stays for the connection.
            take = len(peeked) if length is None else min(len(peeked), length - len(self._buf))
            self._buf += sock.recv(take)
            if length is None or len(self._buf) < length:
                return
            info = parse_proxy_header(self._buf)
        except ProxyHeaderError as exc:
            log.info("bad PROXY header from %s: %s", self._addr, exc)
            self._reject()
            return
        except OSError as exc:
            log.info("PROXY header from %s: %s", self._addr, exc)
            self.cancel()
            return
        on_done = self._on_done
        sock = self._finish()
        if sock is None or on_done is None:
            return
        if info.source is None:
            on_done(sock, self._addr)
            return
        proxied = ProxiedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        proxied.proxied_peer = info.source
        on_done(proxied, info.source)

    def _reject(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                # Closing a socket with unread input makes Linux send RST, which can destroy
                # the 400 before the client reads it: what arrived is read (and dropped) first.
                for _ in range(16):
                    if not sock.recv(65536):
                        break
            except OSError:  # BlockingIOError: all read
                pass
            try:
                sock.send(_BAD_REQUEST)  # best effort: a fresh socket's buffer takes it
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self.cancel()

    def _on_timeout(self) -> None:
        self._timer = None
        if self._sock is not None:
            log.info("PROXY header from %s timed out", self._addr)
            self._reject()
