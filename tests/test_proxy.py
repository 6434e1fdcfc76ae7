"""reactor.proxy without sockets: trusted-proxy lists, X-Forwarded-* and RFC 7239 Forwarded
chains, and PROXY protocol v1/v2 headers fed as bytes (whole, byte by byte, with the request
that follows, and broken)."""

from __future__ import annotations

import socket
import struct

import pytest

from reactor.http.headers import Headers
from reactor.proxy import (
    PROXY_V2_SIGNATURE,
    Forwarded,
    ProxyHeaderError,
    ProxyInfo,
    TrustedProxies,
    forwarded_client,
    parse_forwarded,
    parse_proxy_header,
    proxy_header_length,
)

# -- trusted proxies -------------------------------------------------------------------------------


def test_trusted_proxies() -> None:
    trusted = TrustedProxies("127.0.0.1, 10.0.0.0/8,::1,unix")
    assert trusted.trusts_peer(("127.0.0.1", 5000))
    assert trusted.trusts_peer(("10.20.30.40", 1))
    assert trusted.trusts_peer(("::1", 1, 0, 0))
    assert trusted.trusts_peer(("::ffff:10.1.2.3", 1, 0, 0))  # v4-mapped
    assert trusted.trusts_peer("unix")
    assert not trusted.trusts_peer(("11.0.0.1", 1))
    assert not trusted.trusts_peer(("not-an-ip", 1))
    assert not TrustedProxies("127.0.0.1").trusts_peer("unix")
    assert TrustedProxies("*").trusts_peer(("8.8.8.8", 1))
    assert TrustedProxies("*").trusts_peer("unix")
    assert not TrustedProxies("")
    with pytest.raises(ValueError, match="not an IP address, CIDR range, '\\*' or 'unix': 'lan'"):
        TrustedProxies("127.0.0.1,lan")


# -- forwarding headers ----------------------------------------------------------------------------

LOCAL = TrustedProxies("127.0.0.1,10.0.0.0/8")


def said(*fields: tuple[str, str], trusted: TrustedProxies = LOCAL) -> Forwarded | None:
    return forwarded_client(Headers(list(fields)), trusted)


def client(*fields: tuple[str, str]) -> tuple[str, int] | None:
    got = said(*fields)
    assert got is not None
    return got.client


def test_x_forwarded_for_proto_host() -> None:
    got = said(
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "example.org"),
    )
    assert got is not None
    assert (got.client, got.scheme, got.host) == (("203.0.113.7", 0), "https", "example.org")


def test_the_chain_is_walked_from_the_nearest_proxy() -> None:
    # The client can write anything at the left; the first untrusted hop is the client.
    got = said(("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.0.0.2"))
    assert got is not None and got.client == ("203.0.113.7", 0)
    # Two headers are one list; all trusted: the first.
    got = said(("X-Forwarded-For", "10.0.0.5"), ("x-forwarded-for", "10.0.0.2"))
    assert got is not None and got.client == ("10.0.0.5", 0)
    # Trusting everyone believes the leftmost.
    got = said(("X-Forwarded-For", "6.6.6.6, 203.0.113.7"), trusted=TrustedProxies("*"))
    assert got is not None and got.client == ("6.6.6.6", 0)


def test_proto_lined_up_with_the_client_or_the_nearest() -> None:
    got = said(("X-Forwarded-For", "203.0.113.7, 10.0.0.2"), ("X-Forwarded-Proto", "https, http"))
    assert got is not None and got.scheme == "https"
    got = said(("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "http, https"))
    assert got is not None and got.scheme == "https"  # no line-up: the nearest proxy's
    got = said(("X-Forwarded-Proto", "gopher"))
    assert got is not None and got.scheme is None  # not a scheme a URL is built with


def test_addresses_with_ports_and_junk() -> None:
    assert client(("X-Forwarded-For", "203.0.113.7:4711")) == ("203.0.113.7", 4711)
    assert client(("X-Forwarded-For", "[2001:db8::1]:80")) == ("2001:db8::1", 80)
    assert client(("X-Forwarded-For", "2001:db8::1")) == ("2001:db8::1", 0)
    assert client(("X-Forwarded-For", "unknown")) is None
    assert client(("X-Forwarded-For", "")) is None
    assert said(("Accept", "*/*")) is None


def test_rfc7239_forwarded() -> None:
    value = 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;host=example.org, for=10.0.0.2'
    assert parse_forwarded(value)[1] == {
        "for": "[2001:db8:cafe::17]:4711",
        "proto": "https",
        "host": "example.org",
    }
    got = said(("Forwarded", value), ("X-Forwarded-For", "1.1.1.1"))  # Forwarded wins
    assert got is not None
    assert (got.client, got.scheme, got.host) == (
        ("2001:db8:cafe::17", 4711),
        "https",
        "example.org",
    )
    got = said(("Forwarded", 'For="_hidden";Proto=HTTPS'))
    assert got is not None and (got.client, got.scheme) == (None, "https")


def test_untrusted_peer_is_not_believed() -> None:
    headers = Headers([("X-Forwarded-For", "203.0.113.7")])
    assert forwarded_client(headers, LOCAL, peer_trusted=False) is None


# -- PROXY protocol --------------------------------------------------------------------------------


def v2(command: int, family: int, body: bytes) -> bytes:
    return (
        PROXY_V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body
    )


V2_TCP4 = v2(
    1,
    0x11,
    socket.inet_aton("203.0.113.7") + socket.inet_aton("10.0.0.1") + struct.pack("!HH", 4711, 80),
)
V2_TCP6 = v2(
    1,
    0x21,
    socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    + struct.pack("!HH", 4711, 443)
    + b"\x03\x00\x04abcd",  # a TLV after the addresses (CRC32C type), skipped
)

GOOD = [
    (
        b"PROXY TCP4 203.0.113.7 10.0.0.1 4711 80\r\n",
        ProxyInfo(1, ("203.0.113.7", 4711), ("10.0.0.1", 80)),
    ),
    (
        b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\n",
        ProxyInfo(1, ("2001:db8::7", 4711), ("2001:db8::1", 443)),
    ),
    (b"PROXY UNKNOWN\r\n", ProxyInfo(1, None, None)),
    (b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", ProxyInfo(1, None, None)),
    (V2_TCP4, ProxyInfo(2, ("203.0.113.7", 4711), ("10.0.0.1", 80))),
    (V2_TCP6, ProxyInfo(2, ("2001:db8::7", 4711), ("2001:db8::1", 443))),
    (v2(0, 0x00, b""), ProxyInfo(2, None, None)),  # LOCAL: a health check
]


@pytest.mark.parametrize(("header", "info"), GOOD)
def test_proxy_headers_whole_split_and_followed(header: bytes, info: ProxyInfo) -> None:
    following = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert proxy_header_length(header + following) == len(header)
    assert parse_proxy_header(header) == info
    for cut in range(len(header)):  # every prefix: either "need more" or the same length
        assert proxy_header_length(header[:cut]) in (None, len(header))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "not a PROXY header"),
        (b"PROXZ TCP4", "not a PROXY header"),
        (b"PROXY " + b"1" * 120, "longer than 107"),
        (b"\r\n\r\n\x00\r\nQUIX\n" + b"\x21\x11\x00\x00", "not a PROXY header"),
    ],
)
def test_proxy_header_length_refuses(data: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        proxy_header_length(data)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"PROXY TCP4 203.0.113.7 10.0.0.1 4711\r\n", "bad PROXY v1 header"),
        (b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "bad PROXY v1 header"),
        (b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n", "TCP4 with an IPv6 address"),
        (b"PROXY TCP4 1.2.3.999 10.0.0.1 1 2\r\n", "bad address"),
        (b"PROXY TCP4 1.2.3.4 10.0.0.1 1 65536\r\n", "bad port"),
        (b"PROXY TCP4 1.2.3.4 10.0.0.1 01 2\r\n", "bad port"),
        (PROXY_V2_SIGNATURE + b"\x31\x11\x00\x00", "version 3"),
        (v2(2, 0x11, b""), "command 0x2"),
        (v2(1, 0x11, b"\x00" * 4), "address block of 4 bytes"),
    ],
)
def test_bad_proxy_headers(header: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        parse_proxy_header(header)
