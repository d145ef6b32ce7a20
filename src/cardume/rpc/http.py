"""The wire format of node RPC, shared by the server (:mod:`cardume.rpc.server`) and the
client (:mod:`cardume.rpc.transport`).

JSON RPC over HTTP/1.1 over TLS between the master and the node daemons (stdlib only).
A call is ``POST /<call-name>`` with a JSON object body; the reply is ``200`` with
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"code", "type", "message",
"hint"}}``. Transport-level refusals use their own status with the same JSON error shape:
400 malformed request, 403 call refused (no CA-signed client certificate, or the server's
``authorize`` policy said no), 404 unknown call, 405 not POST, 413 body too large, 431 head
too large, 503 too many unauthenticated connections. ``GET /health`` answers ``{"ok": true}``.

Connections are kept alive and serve requests one after another (no pipelining on the
client side). The client keeps a small pool of idle connections per (host, port).

A node call runs once. A call that is not read-only carries an idempotency key (header
``X-Cardume-Request-Id``, 128 random bits): the server remembers, per caller certificate,
the keys of recent calls and their replies, so a resent request waits for, or gets, the
outcome of the first one instead of running its handler again. The client resends a request
at most once, only when a reused keep-alive connection gave no reply byte (the server may
have closed it as we sent), and only if the call is read-only or keyed.

This module holds what both ends agree on: the size limits, the header names, the types a
handler sees (:class:`PeerInfo`, :data:`Handler`, :class:`StreamUpgrade`) and the parsing of
request and reply heads.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from cardume import errors

MAX_BODY = 64 * 1024 * 1024
"""Largest request body a server accepts (config replicas can be large)."""
MAX_HEADER = 64 * 1024
"""Largest request or response head (request line / status line plus headers)."""
MAX_REPLY = 1024 * 1024 * 1024
"""Largest reply body a client accepts."""
REQUEST_ID_HEADER = "X-Cardume-Request-Id"
"""The idempotency key of a call that is not read-only."""
END_OF_HEAD = b"\r\n\r\n"

compact_json = json.JSONEncoder(separators=(",", ":")).encode
"""JSON text of a value, without spaces, for request and reply bodies."""

# What HTTP/1.1 allows in a header name and a request target; control characters (other than
# tab) are refused anywhere in a head, so no line can smuggle another one in.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_TARGET = re.compile(r"/[\x21-\x7e]*\Z")
_HEADER_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([^\x00-\x08\x0a-\x1f\x7f]*)\Z")
_REQUEST_ID = re.compile(r"[0-9A-Za-z_-]{16,64}\Z")
# Headers whose value we act on: a second copy would make the request ambiguous.
_SINGLE_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "expect",
                             REQUEST_ID_HEADER.lower()})
_MAX_LENGTH_DIGITS = 18


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who is calling: computed once per connection, right after the TLS handshake."""

    address: str
    """The client's IP address."""
    cert_der: bytes | None
    """The client certificate (DER), if it presented one the server asked for."""
    fingerprint: str | None
    """``"sha256:<hex>"`` of ``cert_der``."""
    verified: bool
    """Whether TLS verified the client certificate against the cluster CA."""


Handler = Callable[[dict[str, Any], PeerInfo], Awaitable[Any]]
Authorize = Callable[[str, PeerInfo], str | None]


class StreamUpgrade:
    """What a handler returns to take the connection over after its reply: the server sends
    ``{"ok": true, "result": reply}`` (with ``Connection: close``), then hands the raw TLS
    stream to ``run(reader, writer)``; the connection ends when ``run`` returns. The client
    reads the reply as usual and then speaks the handler's own protocol (the console relay).
    ``abandon`` runs instead of ``run`` when the reply can't be sent (the client left): what
    the handler reserved for the stream (a console's one session) is given back."""

    __slots__ = ("reply", "run", "abandon")

    def __init__(self, reply: Any,
                 run: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                               Awaitable[None]],
                 abandon: Callable[[], None] | None = None) -> None:
        self.reply = reply
        self.run = run
        self.abandon = abandon


# --- heads -----------------------------------------------------------------------------------


class BadRequest(Exception):
    """A request that cannot be parsed: answer 400 and close."""


class BadArguments(errors.WrongInput):
    """A request whose arguments do not fit its call's declaration (rpc/calls.py): answer
    400 with the error; the connection stays usable."""


class Request(NamedTuple):
    """What a server acts on in a request head."""

    method: str
    target: str
    length: int
    keep_alive: bool
    expect_continue: bool
    request_id: str | None


class BadReply(Exception):
    """The server's reply is not valid HTTP/JSON as we speak it."""


def parse_request(head: bytes) -> Request:
    """The request line and headers of ``head`` (without its blank line); raise
    :class:`BadRequest` on anything HTTP/1.1 does not allow or we do not speak."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") \
            or not _TOKEN.match(parts[0]):
        raise BadRequest(f"malformed request line {lines[0][:80]!r}")
    method, target, version = parts
    if not _TARGET.match(target):
        raise BadRequest(f"malformed request target {target[:80]!r}")
    headers = _parse_headers(lines[1:])
    if "transfer-encoding" in headers:
        raise BadRequest("chunked requests are not supported: send Content-Length")
    length_text = headers.get("content-length", "0")
    length = _content_length(length_text)
    if length is None:
        raise BadRequest(f"bad Content-Length {length_text[:40]!r}: expected a number of "
                         "bytes in ASCII digits")
    request_id = headers.get("x-cardume-request-id")
    if request_id is not None and not _REQUEST_ID.match(request_id):
        raise BadRequest(f"bad {REQUEST_ID_HEADER} {request_id[:80]!r}: expected 16 to 64 "
                         "letters, digits, '-' or '_'")
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        keep_alive = connection == "keep-alive"
    else:
        keep_alive = connection != "close"
    expect = headers.get("expect", "").lower() == "100-continue"
    return Request(method, target.partition("?")[0], length, keep_alive, expect, request_id)


def _content_length(text: str) -> int | None:
    # str.isdigit() alone takes '²' and other Unicode digits that int() then refuses.
    if 0 < len(text) <= _MAX_LENGTH_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


def _parse_headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        match = _HEADER_LINE.match(line)
        if match is None:
            if not line:
                continue
            name, sep, _ = line.partition(":")
            if sep and _TOKEN.match(name):
                raise BadRequest(f"control character in header {name[:40]!r}")
            raise BadRequest(f"malformed header line {line[:80]!r}")  # also folded lines
        name = match[1].lower()
        if name in headers and name in _SINGLE_HEADERS:
            raise BadRequest(f"more than one {name} header")
        headers[name] = match[2].strip(" \t")
    return headers


def parse_reply_head(head: bytes) -> tuple[int, int, bool]:
    """``(status, content length, keep alive)`` of a reply head; raise :class:`BadReply`
    if it is malformed or announces a body larger than :data:`MAX_REPLY`."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") \
            or not (len(parts[1]) == 3 and parts[1].isascii() and parts[1].isdigit()):
        raise BadReply(f"malformed status line {lines[0][:80]!r}")
    try:
        headers = _parse_headers(lines[1:])
    except BadRequest as exc:
        raise BadReply(str(exc)) from None
    if "transfer-encoding" in headers:
        raise BadReply("a Transfer-Encoding reply (expected Content-Length)")
    length_text = headers.get("content-length")
    length = None if length_text is None else _content_length(length_text)
    if length is None:
        raise BadReply("no valid Content-Length")
    if length > MAX_REPLY:
        raise BadReply(f"reply of {length} bytes is too large")
    connection = headers.get("connection", "").lower()
    keep = connection != "close" if parts[0] == "HTTP/1.1" else connection == "keep-alive"
    return int(parts[1]), length, keep


def host_port(host: str, port: int) -> str:
    """``host:port`` as written in a Host header and in messages (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
