"""Sans-IO HTTP/1.1: parser, framing, serialisation, header tables, the state table
and the server-side protocol object.

Imports no socket, selectors or loop module (tests/http/test_sans_io.py checks it).
"""

from .headers import Headers
from .limits import Limits
from .parser import BODY_CHUNKED, BODY_LENGTH, BODY_NONE, ChunkedDecoder, RequestHead, RequestParser
from .protocol import ProtocolContext, ServerProtocol
from .serialize import (
    DateCache,
    encode_chunk,
    encode_fields,
    http_date,
    serialize_request,
    status_line,
)
from .state import HOOKS, TRANSITIONS, ConnEvent, ConnState, HookState, check_transition

__all__ = [
    "BODY_CHUNKED",
    "BODY_LENGTH",
    "BODY_NONE",
    "HOOKS",
    "TRANSITIONS",
    "ChunkedDecoder",
    "ConnEvent",
    "ConnState",
    "DateCache",
    "Headers",
    "HookState",
    "Limits",
    "ProtocolContext",
    "RequestHead",
    "RequestParser",
    "ServerProtocol",
    "check_transition",
    "encode_chunk",
    "encode_fields",
    "http_date",
    "serialize_request",
    "status_line",
]
