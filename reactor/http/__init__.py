"""Sans-IO HTTP/1.1: parser, framing, serialisation, header tables and the state table.

Imports no socket, selectors or loop module (tests/http/test_sans_io.py checks it).
"""

from .headers import Headers
from .limits import Limits
from .parser import BODY_CHUNKED, BODY_LENGTH, BODY_NONE, ChunkedDecoder, RequestHead, RequestParser
from .serialize import (
    DateCache,
    encode_chunk,
    encode_fields,
    http_date,
    serialize_request,
    status_line,
)
from .state import TRANSITIONS, ConnState, HookState, check_transition

__all__ = [
    "BODY_CHUNKED",
    "BODY_LENGTH",
    "BODY_NONE",
    "TRANSITIONS",
    "ChunkedDecoder",
    "ConnState",
    "DateCache",
    "Headers",
    "HookState",
    "Limits",
    "RequestHead",
    "RequestParser",
    "check_transition",
    "encode_chunk",
    "encode_fields",
    "http_date",
    "serialize_request",
    "status_line",
]
