"""JSON RPC over HTTP/1.1 over TLS between the master and the node daemons (stdlib only).

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
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import re
import secrets
import socket
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, NamedTuple

from cardume import errors
from cardume.tls import FINGERPRINT_PREFIX

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
"""Largest request body a server accepts (config replicas can be large)."""
MAX_HEADER = 64 * 1024
"""Largest request or response head (request line / status line plus headers)."""
MAX_REPLY = 1024 * 1024 * 1024
"""Largest reply body a client accepts."""
UNVERIFIED_MAX_BODY = 256 * 1024
"""Largest request body from a client without a verified certificate (only public calls:
``version``, and ``join`` whose body holds two certificates and the cluster summary, about
150 bytes per node: this leaves room for well over a thousand nodes)."""
UNVERIFIED_MAX_HEADER = 8 * 1024
UNVERIFIED_TIMEOUT = 10.0
"""Idle and body timeout for clients without a verified certificate."""
UNVERIFIED_MAX_CONNECTIONS = 32
"""Connections at once from clients without a verified certificate; more are refused."""
REQUEST_ID_HEADER = "X-Cardume-Request-Id"
ONCE_TTL = 15 * 60.0
"""How long a server remembers a finished keyed call (a resend comes within one call's
reconnect, so this is generous)."""
ONCE_MAX_ENTRIES = 4096
ONCE_MAX_BYTES = 32 * 1024 * 1024
ONCE_MAX_REPLY = 1024 * 1024
"""A keyed call's reply larger than this is not kept: a duplicate gets an error instead."""

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_END_OF_HEAD = b"\r\n\r\n"
_DRAIN_LIMIT = 64 * 1024  # a refused request body up to this size is read and discarded
_READ_CHUNK = 256 * 1024
_PROBE_TIMEOUT = 5.0  # telling a refused certificate from a dropped call (RpcClient)
# A node whose power was cut neither answers nor refuses: without these, a request sent on a
# pooled connection to it waits for TCP's own retransmission timeout (about 15 minutes).
# Unacknowledged data fails after USER_TIMEOUT, and keepalive probes find a peer that died
# while a long call (an OS install) was running; connecting is bounded on its own.
CONNECT_TIMEOUT = 10.0
TCP_USER_TIMEOUT_MS = 15_000
KEEPALIVE = (5, 2, 3)  # idle seconds before probing, seconds between probes, probes


def _tune(sock: socket.socket | None) -> None:
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError, AttributeError):  # Linux options; best effort elsewhere
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle, interval, count = KEEPALIVE
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS)


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 413: "Content Too Large",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable"}
# TLS alerts (as OpenSSL reasons) a server sends when it does not accept our certificate.
_CERT_REJECTED = frozenset({
    "TLSV13_ALERT_CERTIFICATE_REQUIRED", "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_REVOKED", "TLSV1_ALERT_ACCESS_DENIED",
    "TLSV1_ALERT_DECRYPT_ERROR", "SSLV3_ALERT_HANDSHAKE_FAILURE",
})
_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN,
                          errno.ENETDOWN})
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
    reads the reply as usual and then speaks the handler's own protocol (the console relay)."""

    __slots__ = ("reply", "run")

    def __init__(self, reply: Any,
                 run: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                               Awaitable[None]]) -> None:
        self.reply = reply
        self.run = run


@dataclass(slots=True)
class Result:
    """One target's outcome in :func:`call_many`: either ``value`` or ``error``."""

    value: Any = None
    error: errors.CardumeError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> Any:
        """The value, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.value


# --- server ----------------------------------------------------------------------------------


class _BadRequest(Exception):
    """A request that cannot be parsed: answer 400 and close."""


class _Request(NamedTuple):
    method: str
    target: str
    length: int
    keep_alive: bool
    expect_continue: bool
    request_id: str | None


class _Outcome:
    """A keyed call that runs: its name, and its reply (status, encoded body) once it ends."""

    __slots__ = ("name", "reply", "_waiting")

    def __init__(self, name: str) -> None:
        self.name = name
        self.reply: tuple[int, bytes] | None = None
        self._waiting: asyncio.Future[None] | None = None  # made only if a duplicate waits

    async def wait(self) -> tuple[int, bytes]:
        if self.reply is None:
            if self._waiting is None:
                self._waiting = asyncio.get_running_loop().create_future()
            # shield: a duplicate whose connection is cancelled must not cancel the future
            # the other duplicates wait on.
            await asyncio.shield(self._waiting)
        assert self.reply is not None
        return self.reply

    def set(self, status: int, body: bytes) -> None:
        self.reply = (status, body)
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)


class _Once:
    """The keyed calls a server ran recently, so that each runs its handler once.

    Keys are scoped by the caller's certificate fingerprint: a client cannot reach another
    client's outcomes. Running calls are always kept (a duplicate waits for them); ended
    ones are forgotten oldest first after ``ttl`` seconds, or beyond ``max_entries`` or
    ``max_bytes`` of kept replies. Per call this costs a few dictionary operations; an
    ended call is kept as a tuple of plain values, which the garbage collector stops
    tracking (thousands of tracked objects would make its full passes slower).
    """

    def __init__(self, ttl: float = ONCE_TTL, max_entries: int = ONCE_MAX_ENTRIES,
                 max_bytes: int = ONCE_MAX_BYTES) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._running: dict[tuple[str, str], _Outcome] = {}
        # (call name, status, body, when it ended), in the order they ended; an OrderedDict
        # because a plain dict emptied from the front makes finding its first key slow
        self._ended: OrderedDict[tuple[str, str], tuple[str, int, bytes, float]] = (
            OrderedDict())
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._running) + len(self._ended)

    def get(self, key: tuple[str, str]) -> tuple[str, _Outcome | tuple[int, bytes]] | None:
        """``(call name, the running call or its reply)`` of a known key."""
        running = self._running.get(key)
        if running is not None:
            return running.name, running
        ended = self._ended.get(key)
        if ended is not None:
            return ended[0], (ended[1], ended[2])
        return None

    def start(self, key: tuple[str, str], name: str) -> None:
        self._running[key] = _Outcome(name)

    def end(self, key: tuple[str, str], status: int, body: bytes) -> None:
        outcome = self._running.pop(key)
        outcome.set(status, body)
        now = asyncio.get_running_loop().time()
        ended = self._ended
        ended[key] = (outcome.name, status, body, now)
        self._bytes += len(body)
        while ended:  # forget the oldest while over a bound
            oldest_key = next(iter(ended))
            _, _, oldest_body, when = ended[oldest_key]
            if (len(ended) <= self._max_entries and self._bytes <= self._max_bytes
                    and now - when < self._ttl):
                return
            ended.popitem(last=False)
            self._bytes -= len(oldest_body)

    def abandon(self, key: tuple[str, str], status: int, body: bytes) -> None:
        """The call was interrupted (the server is closing): tell any duplicate, forget it."""
        outcome = self._running.pop(key, None)
        if outcome is not None:
            outcome.set(status, body)


class RpcServer:
    """Serves ``handlers`` as ``POST /<name>`` over TLS with keep-alive connections.

    A call in ``public`` is served to any client; every other call needs a client certificate
    verified against the cluster CA. With a ``CERT_REQUIRED`` context the handshake already
    refuses other clients; with ``CERT_NONE`` (a node that has not joined yet) only the
    public calls work and the others answer 403. Clients without a verified certificate get
    tight limits: ``unverified_max_body`` (413 beyond it, the body unread), a smaller head,
    ``unverified_timeout`` for idling and sending a body, and at most
    ``UNVERIFIED_MAX_CONNECTIONS`` connections at once.

    ``authorize(name, peer)``, if given, decides who may make each call that is not public:
    it returns None to allow it, or a one-line reason to refuse it. It runs after the request
    head is read and before the body is (a refused caller cannot make the server buffer a
    large body), and a refusal answers 403 with :class:`errors.RpcError` carrying the reason.
    It must be cheap and must not block: it runs for every call.

    A request carrying ``X-Cardume-Request-Id`` from a verified client runs its handler once
    per (client certificate, key): a duplicate that comes while the first runs waits for its
    outcome, one that comes later gets the same reply (see :class:`_Once`).

    ``handlers`` is kept by reference, so calls may be added after construction.
    """

    def __init__(self, handlers: Mapping[str, Handler], ssl_context: ssl.SSLContext, *,
                 public: AbstractSet[str] = frozenset(),
                 authorize: Authorize | None = None,
                 max_body: int = MAX_BODY, idle_timeout: float = 120.0,
                 body_timeout: float = 300.0, handshake_timeout: float = 10.0,
                 unverified_max_body: int = UNVERIFIED_MAX_BODY,
                 unverified_timeout: float = UNVERIFIED_TIMEOUT) -> None:
        self._handlers = handlers
        self._ssl = ssl_context
        self._public = frozenset(public)
        self._authorize = authorize
        self._max_body = max_body
        self._idle_timeout = idle_timeout
        self._body_timeout = body_timeout
        self._handshake_timeout = handshake_timeout
        self._unverified_max_body = min(unverified_max_body, max_body)
        self._unverified_timeout = unverified_timeout
        self._unverified_connections = 0
        self._once = _Once()
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.connections_accepted = 0
        """Connections accepted since start (after a successful TLS handshake)."""
        self.requests_served = 0
        self.duplicates_answered = 0
        """Keyed requests answered with the outcome of an earlier one (not run again)."""

    @property
    def port(self) -> int:
        """The bound TCP port (useful after ``start(host, 0)``)."""
        if self._server is None or not self._server.sockets:
            raise errors.WrongState("the RPC server is not running")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    @property
    def calls_remembered(self) -> int:
        """Keyed calls whose outcome the server keeps (running or recently ended)."""
        return len(self._once)

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port``; return once the socket is bound."""
        if self._server is not None:
            raise errors.WrongState("the RPC server is already running")
        try:
            self._server = await asyncio.start_server(
                self._serve_connection, host, port, ssl=self._ssl, limit=MAX_HEADER,
                ssl_handshake_timeout=self._handshake_timeout, reuse_address=True)
        except OSError as exc:
            raise errors.EnvironmentProblem(
                f"cannot listen on {_host_port(host, port)}: {exc.strerror or exc}") from None

    async def close(self) -> None:
        """Stop listening, end every connection (interrupting running handlers) and wait."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    # -- per connection --

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        self.connections_accepted += 1
        counted = False
        try:
            peer = self._peer_info(writer)
            if not peer.verified:
                if self._unverified_connections >= UNVERIFIED_MAX_CONNECTIONS:
                    await self._send(writer, 503, _encode(_error(errors.RpcError(
                        "too many connections without a cluster certificate",
                        hint="try again later"))), keep_alive=False)
                    return
                self._unverified_connections += 1
                counted = True
            await self._serve_requests(reader, writer, peer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away, TLS broke or it idled too long: just close
        except asyncio.CancelledError:
            # close() (or loop shutdown) ends this task; nobody awaits it, and asyncio 3.11
            # would log a cancelled connection task as an error.
            pass
        except Exception:
            log.exception("RPC connection from %s failed", writer.get_extra_info("peername"))
        finally:
            if counted:
                self._unverified_connections -= 1
            del self._connections[task]
            writer.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()

    def _peer_info(self, writer: asyncio.StreamWriter) -> PeerInfo:
        peername = writer.get_extra_info("peername")
        address = str(peername[0]) if peername else "unknown"
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return PeerInfo(address, None, None, False)
        # A certificate is only requested (and then always verified) when the context verifies.
        verified = self._ssl.verify_mode != ssl.CERT_NONE
        return PeerInfo(address, der, FINGERPRINT_PREFIX + hashlib.sha256(der).hexdigest(),
                        verified)

    async def _serve_requests(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter, peer: PeerInfo) -> None:
        if peer.verified:
            idle_timeout, body_timeout = self._idle_timeout, self._body_timeout
            max_head = MAX_HEADER
        else:
            idle_timeout = min(self._idle_timeout, self._unverified_timeout)
            body_timeout = min(self._body_timeout, self._unverified_timeout)
            max_head = UNVERIFIED_MAX_HEADER
        while True:
            try:
                async with asyncio.timeout(idle_timeout):
                    head = await reader.readuntil(_END_OF_HEAD)
            except asyncio.IncompleteReadError:
                return  # the client closed the connection
            except asyncio.LimitOverrunError:
                head = b""
            if not head or len(head) > max_head:
                await self._send(writer, 431, _encode(_error(errors.WrongInput(
                    f"request head larger than {max_head} bytes"))), keep_alive=False)
                return
            try:
                request = _parse_request(head)
            except _BadRequest as exc:
                await self._send(writer, 400, _encode(_error(errors.WrongInput(str(exc)))),
                                 keep_alive=False)
                return
            keep_alive = request.keep_alive
            length = request.length
            status, payload = self._refusal(request, peer)
            if status:
                # Refused before reading the body: skip a small body, close after a large one.
                if length > _DRAIN_LIMIT:
                    keep_alive = False
                elif length:
                    async with asyncio.timeout(body_timeout):
                        await reader.readexactly(length)
                await self._send(writer, status, _encode(payload), keep_alive)
                if not keep_alive:
                    return
                continue
            if request.expect_continue and length:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if length:
                async with asyncio.timeout(body_timeout):
                    body = await reader.readexactly(length)
            else:
                body = b""
            name = request.target[1:]
            if request.request_id is not None and peer.verified and peer.fingerprint:
                status, data, upgrade = await self._dispatch_once(
                    name, body, peer, (peer.fingerprint, request.request_id))
            else:
                status, result = await self._dispatch(name, body, peer)
                if isinstance(result, StreamUpgrade):
                    data, upgrade = b"", result
                else:
                    data, upgrade = _encode(result), None
            if upgrade is not None:
                await self._send(writer, 200, _encode({"ok": True, "result": upgrade.reply}),
                                 False)
                self.requests_served += 1
                await upgrade.run(reader, writer)
                return
            await self._send(writer, status, data, keep_alive)
            self.requests_served += 1
            if not keep_alive:
                return

    def _refusal(self, request: _Request, peer: PeerInfo) -> tuple[int, Any]:
        """``(status, payload)`` when the request is answered without its body, else (0, None)."""
        method, target = request.method, request.target
        if method == "GET" and target == "/health":
            return 200, {"ok": True}
        if method != "POST":
            return 405, _error(errors.WrongInput(
                f"method {method} not allowed: RPC calls are POST /<call>"))
        name = target[1:]
        if name not in self._handlers:
            return 404, _error(errors.RpcError(f"unknown RPC call '{name[:80]}'",
                                               hint="daemon versions differ?"))
        if name not in self._public:
            if not peer.verified:
                if self._ssl.verify_mode == ssl.CERT_NONE:
                    hint = "this node has not joined a cluster yet"
                else:
                    hint = "no client certificate signed by the cluster CA"
                return 403, _error(errors.RpcError(f"RPC call '{name}' refused", hint=hint))
            if self._authorize is not None:
                try:
                    reason = self._authorize(name, peer)
                except Exception as exc:  # a broken policy refuses rather than allows
                    log.exception("authorizing RPC call %s from %s failed", name, peer.address)
                    return 500, _error(errors.InternalError(
                        f"authorizing '{name}' failed: {type(exc).__name__}: {exc}"))
                if reason is not None:
                    return 403, _error(errors.RpcError(reason))
        limit = self._max_body if peer.verified else self._unverified_max_body
        if request.length > limit:
            return 413, _error(errors.WrongInput(
                f"request body of {request.length} bytes exceeds the limit of {limit}"))
        return 0, None

    async def _dispatch_once(self, name: str, body: bytes, peer: PeerInfo,
                             key: tuple[str, str]) -> tuple[int, bytes, StreamUpgrade | None]:
        """Run a keyed call unless it ran (or runs) already: ``(status, body, upgrade)``."""
        known = self._once.get(key)
        if known is not None:
            known_name, outcome = known
            if known_name != name:
                return 400, _encode(_error(errors.WrongInput(
                    f"request id {key[1]} was already used for '{known_name}', not '{name}'"))
                ), None
            self.duplicates_answered += 1
            status, data = await outcome.wait() if isinstance(outcome, _Outcome) else outcome
            return status, data, None
        self._once.start(key, name)
        try:
            status, payload = await self._dispatch(name, body, peer)
        except BaseException:
            self._once.abandon(key, 200, _encode(_error(errors.RpcError(
                f"'{name}' was interrupted: the node daemon is stopping"))))
            raise
        if isinstance(payload, StreamUpgrade):
            self._once.end(key, 200, _encode(_error(errors.WrongState(
                f"'{name}' already took over another connection"))))
            return 200, b"", payload
        data = _encode(payload)
        kept = data
        if len(data) > ONCE_MAX_REPLY:
            kept = _encode(_error(errors.RpcError(
                f"'{name}' already ran, but its reply ({len(data)} bytes) was not kept",
                hint="check the node's state before running it again")))
        self._once.end(key, status, kept)
        return status, data, None

    async def _dispatch(self, name: str, body: bytes, peer: PeerInfo) -> tuple[int, Any]:
        try:
            args = json.loads(body) if body else {}
        except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
            return 400, _error(errors.WrongInput(f"request body is not valid JSON: {exc}"))
        except RecursionError:
            return 400, _error(errors.WrongInput(
                "request body is not valid JSON: nested too deeply"))
        if not isinstance(args, dict):
            return 400, _error(errors.WrongInput(
                f"request body must be a JSON object, not {type(args).__name__}"))
        try:
            result = await self._handlers[name](args, peer)
        except errors.CardumeError as exc:
            log.debug("RPC call %s from %s: %s", name, peer.address, exc)
            return 200, _error(exc)
        except Exception as exc:
            log.exception("RPC call %s from %s failed", name, peer.address)
            return 200, _error(errors.InternalError(f"{name}: {type(exc).__name__}: {exc}"))
        if isinstance(result, StreamUpgrade):
            return 200, result
        return 200, {"ok": True, "result": result}

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes,
                    keep_alive: bool) -> None:
        connection = "" if keep_alive else "Connection: close\r\n"
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"{connection}\r\n")
        writer.write(head.encode() + body)
        await writer.drain()


def _encode(payload: Any) -> bytes:
    """A reply body; a result that JSON cannot carry becomes an internal error."""
    try:
        return _ENCODE(payload).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        log.exception("RPC reply cannot be encoded as JSON")
        return _ENCODE(_error(errors.InternalError(
            f"the reply cannot be encoded as JSON: {type(exc).__name__}: {exc}"))).encode()


def _error(exc: errors.CardumeError) -> dict[str, Any]:
    return {"ok": False, "error": exc.to_dict()}


def _parse_request(head: bytes) -> _Request:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") \
            or not _TOKEN.match(parts[0]):
        raise _BadRequest(f"malformed request line {lines[0][:80]!r}")
    method, target, version = parts
    if not _TARGET.match(target):
        raise _BadRequest(f"malformed request target {target[:80]!r}")
    headers = _parse_headers(lines[1:])
    if "transfer-encoding" in headers:
        raise _BadRequest("chunked requests are not supported: send Content-Length")
    length_text = headers.get("content-length", "0")
    length = _content_length(length_text)
    if length is None:
        raise _BadRequest(f"bad Content-Length {length_text[:40]!r}: expected a number of "
                          "bytes in ASCII digits")
    request_id = headers.get("x-cardume-request-id")
    if request_id is not None and not _REQUEST_ID.match(request_id):
        raise _BadRequest(f"bad {REQUEST_ID_HEADER} {request_id[:80]!r}: expected 16 to 64 "
                          "letters, digits, '-' or '_'")
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        keep_alive = connection == "keep-alive"
    else:
        keep_alive = connection != "close"
    expect = headers.get("expect", "").lower() == "100-continue"
    return _Request(method, target.partition("?")[0], length, keep_alive, expect, request_id)


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
                raise _BadRequest(f"control character in header {name[:40]!r}")
            raise _BadRequest(f"malformed header line {line[:80]!r}")  # also folded lines
        name = match[1].lower()
        if name in headers and name in _SINGLE_HEADERS:
            raise _BadRequest(f"more than one {name} header")
        headers[name] = match[2].strip(" \t")
    return headers


# --- client ----------------------------------------------------------------------------------


class _NoReply(Exception):
    """The connection failed before any reply byte arrived (maybe a stale keep-alive).

    ``sent`` says whether the whole request had been handed to the connection: if so, the
    server may have received it and be running (or have run) the call.
    """

    def __init__(self, cause: BaseException | None, sent: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sent = sent


class _BadReply(Exception):
    """The server's reply is not valid HTTP/JSON as we speak it."""


class _Connection:
    __slots__ = ("reader", "writer", "cert_der", "fingerprint", "idle_since", "reused")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.cert_der: bytes | None = der or None
        self.fingerprint = (FINGERPRINT_PREFIX + hashlib.sha256(der).hexdigest()) if der else ""
        self.idle_since = 0.0
        self.reused = False

    def close(self) -> None:
        self.writer.close()


class RpcClient:
    """Calls RPC servers, keeping a few idle connections per (host, port) for reuse.

    One request is in flight per connection; when all of a server's connections are busy,
    another is opened. Errors are :class:`errors.RpcError` naming ``host:port`` and the cause,
    or the server's own error re-raised as its class.

    A call that is not ``readonly`` carries a fresh idempotency key, the same on a resend,
    so the server runs it once (see the module's docstring).
    """

    def __init__(self, ssl_context: ssl.SSLContext, *, max_idle: int = 8,
                 idle_timeout: float = 60.0, peer_kind: str = "node daemon",
                 daemon_name: str = "cardume-noded") -> None:
        self._ssl = ssl_context
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._peer_kind = peer_kind
        self._daemon_name = daemon_name
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._closed = False

    async def call(self, host: str, port: int, name: str, args: dict[str, Any],
                   timeout: float, *, pin: str | None = None, readonly: bool = False) -> Any:
        """Call ``name`` on ``host:port`` and return its result.

        ``pin`` (a :func:`cardume.tls.fingerprint`) makes the call refuse a server presenting
        another certificate; use it with an unverified (pinned) context during the join.
        ``readonly`` calls (the call table's ``readonly``) carry no idempotency key: the
        server keeps no copy of their replies, which can be large.
        """
        return await self._call_body(host, port, name, _ENCODE(args).encode(), timeout, pin,
                                     readonly)

    async def peer_certificate(self, host: str, port: int, timeout: float) -> bytes:
        """The certificate (DER) the server at ``host:port`` presents.

        The connection stays in the pool, so a following pinned call reuses it.
        """
        key = (host, port)
        conn = self._take_idle(key)
        if conn is None:
            conn = await self._connect(host, port, timeout)
        der = conn.cert_der
        self._release(key, conn, keep=True)
        if der is None:
            raise errors.RpcError(
                f"{self._peer_kind} at {_host_port(host, port)} presented no certificate")
        return der

    async def close(self) -> None:
        """Close every connection (idle or in use); the client cannot be used afterwards."""
        self._closed = True
        conns = list(self._all)
        self._all.clear()
        self._idle.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await conn.writer.wait_closed()

    # -- internals --

    async def _call_body(self, host: str, port: int, name: str, body: bytes, timeout: float,
                         pin: str | None, readonly: bool = False) -> Any:
        if self._closed:
            raise errors.WrongState("the RPC client is closed")
        if len(body) > MAX_BODY:
            raise errors.WrongInput(
                f"arguments of '{name}' are {len(body)} bytes, more than the limit {MAX_BODY}")
        request_id = "" if readonly else f"{REQUEST_ID_HEADER}: {secrets.token_hex(16)}\r\n"
        request = (f"POST /{name} HTTP/1.1\r\nHost: {_host_port(host, port)}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                   f"{request_id}\r\n").encode() + body
        # Sending it again cannot run it twice: it only reads, or the server knows its key.
        resendable = readonly or bool(request_id)
        key = (host, port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        first: _NoReply | None = None  # why the first attempt failed, if it did
        for attempt in (1, 2):
            conn = self._take_idle(key) if attempt == 1 else None
            if conn is None:
                try:
                    conn = await self._connect(host, port, deadline - loop.time(), timeout)
                except errors.RpcError:
                    if first is not None and first.sent:
                        # The daemon took the request and went away (killed, crashed,
                        # stopped): that, not the refused reconnection, is what happened.
                        raise self._failure(host, port, first.cause, sent=True,
                                            call=name) from None
                    raise
            if pin is not None and conn.fingerprint != pin:
                self._discard(conn)
                raise errors.RpcError(
                    f"{self._peer_kind} at {_host_port(host, port)} presented certificate "
                    f"{conn.fingerprint or '(none)'}, expected {pin}",
                    hint="another host answers at this address, or the node was reinstalled")
            try:
                async with asyncio.timeout_at(deadline):
                    status, payload, keep = await self._exchange(conn, request)
            except _NoReply as exc:
                self._discard(conn)
                if attempt == 1 and conn.reused and resendable:
                    # A keep-alive connection the server had closed (it restarted or timed
                    # it out): the others are likely stale too; resend once on a new one.
                    for other in self._idle.pop(key, []):
                        self._discard(other)
                    first = exc
                    continue
                sent = exc.sent
                if sent and not conn.reused and _is_eof(exc.cause):
                    # A fresh TLS 1.3 connection whose certificate the server refuses looks
                    # the same as one whose server died mid-call: an end of stream after
                    # our request. Ask the server (for nothing that runs a call) which.
                    sent = await self._drop_was_mid_call(host, port, deadline)
                raise self._failure(host, port, exc.cause, sent=sent, call=name) from None
            except TimeoutError:
                self._discard(conn)
                raise errors.RpcError(
                    f"{self._peer_kind} at {_host_port(host, port)} did not answer "
                    f"'{name}' within {timeout:g}s") from None
            except _BadReply as exc:
                self._discard(conn)
                raise errors.RpcError(f"{self._peer_kind} at {_host_port(host, port)} sent an "
                                      f"invalid reply to '{name}': {exc}") from None
            except (OSError, asyncio.IncompleteReadError) as exc:
                self._discard(conn)  # the reply had begun: the call was running or had run
                raise self._failure(host, port, exc, sent=True, call=name) from None
            except BaseException:  # cancelled: the connection is mid-request, drop it
                self._discard(conn)
                raise
            self._release(key, conn, keep)
            return _result(payload, status, f"{self._peer_kind} at {_host_port(host, port)}")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, conn: _Connection, request: bytes) -> tuple[int, Any, bool]:
        """Send one request; ``(status, decoded JSON, keep alive)``."""
        reader, writer = conn.reader, conn.writer
        try:
            writer.write(request)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise _NoReply(exc, sent=False) from None
        try:
            buf = await reader.read(_READ_CHUNK)
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise _NoReply(exc, sent=True) from None
        if not buf:
            raise _NoReply(None, sent=True)
        while (end := buf.find(_END_OF_HEAD)) < 0:
            if len(buf) > MAX_HEADER:
                raise _BadReply("reply head too large")
            more = await reader.read(_READ_CHUNK)
            if not more:
                raise asyncio.IncompleteReadError(buf, None)
            buf += more
        status, length, keep = _parse_reply_head(buf[:end])
        body = buf[end + 4:]
        missing = length - len(body)
        if missing > 0:
            body += await reader.readexactly(missing)
        elif missing < 0:
            raise _BadReply("more data than its Content-Length")
        try:
            return status, json.loads(body), keep
        except ValueError as exc:
            raise _BadReply(f"HTTP {status} with a body that is not JSON ({exc})") from None
        except RecursionError:
            raise _BadReply(f"HTTP {status} with a body nested too deeply") from None

    async def _drop_was_mid_call(self, host: str, port: int, deadline: float) -> bool:
        """Whether the server at ``host:port`` is gone or serves us (``GET /health``),
        rather than closing a new connection before answering (refusing our certificate)."""
        loop = asyncio.get_running_loop()
        remaining = min(deadline - loop.time(), _PROBE_TIMEOUT)
        try:
            async with asyncio.timeout(remaining):
                conn = await self._connect(host, port, remaining)
                try:
                    conn.writer.write(f"GET /health HTTP/1.1\r\nHost: {_host_port(host, port)}"
                                      "\r\nConnection: close\r\n\r\n".encode())
                    await conn.writer.drain()
                    answered = bool(await conn.reader.read(_READ_CHUNK))
                finally:
                    self._discard(conn)
        except (errors.CardumeError, OSError, asyncio.IncompleteReadError, TimeoutError):
            return True  # gone (refused, unreachable, silent) or not telling: it dropped us
        return answered

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()  # the most recently used is the least likely to be stale
            if self._is_stale(conn, now):
                self._discard(conn)
                continue
            return conn
        return None

    def _is_stale(self, conn: _Connection, now: float) -> bool:
        return (conn.writer.is_closing() or conn.reader.at_eof()
                or now - conn.idle_since > self._idle_timeout)

    def _release(self, key: tuple[str, int], conn: _Connection, keep: bool) -> None:
        if not keep or self._closed:
            self._discard(conn)
            return
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self._max_idle:
            self._discard(conn)
            return
        conn.idle_since = asyncio.get_running_loop().time()
        conn.reused = True
        idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        self._all.discard(conn)
        conn.close()

    async def _connect(self, host: str, port: int, remaining: float,
                       timeout: float | None = None) -> _Connection:
        where = f"{self._peer_kind} at {_host_port(host, port)}"
        limit = min(max(remaining, 0.0), CONNECT_TIMEOUT)
        try:
            async with asyncio.timeout(limit):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self._ssl, limit=MAX_HEADER)
        except TimeoutError:
            raise errors.RpcError(
                f"{where} did not accept a connection within {limit:g}s",
                hint="host down or port filtered?") from None
        except OSError as exc:
            raise self._failure(host, port, exc) from None
        _tune(writer.get_extra_info("socket"))
        conn = _Connection(reader, writer)
        if self._closed:
            conn.close()
            raise errors.WrongState("the RPC client is closed")
        self._all.add(conn)
        return conn

    def _failure(self, host: str, port: int, exc: BaseException | None, *,
                 sent: bool = False, call: str = "") -> errors.RpcError:
        """An RpcError naming the peer and the cause of a connection failure.

        ``sent``: the whole request had gone out, so the server may be running the call.
        """
        where = f"{self._peer_kind} at {_host_port(host, port)}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return errors.RpcError(
                f"{where} presented a certificate not signed by the cluster CA",
                hint=exc.verify_message or str(exc))
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or ""
            if reason in _CERT_REJECTED:
                return errors.RpcError(f"{where} rejected our certificate",
                                       hint=f"TLS alert {reason.lower()}")
            return errors.RpcError(f"TLS with {where} failed: {reason or exc}")
        if isinstance(exc, ConnectionRefusedError):
            return errors.RpcError(f"{where} refused the connection",
                                   hint=f"is {self._daemon_name} running?")
        if isinstance(exc, OSError) and exc.errno in _UNREACHABLE:
            return errors.RpcError(f"{where} is unreachable", hint=exc.strerror)
        if _is_eof(exc):
            if sent:
                return errors.RpcError(f"{where} dropped the connection during '{call}'",
                                       hint="it may have been stopped or crashed")
            return errors.RpcError(
                f"{where} closed the connection without answering",
                hint="it may have rejected our certificate, or it is shutting down")
        if isinstance(exc, OSError):
            if sent:
                return errors.RpcError(f"lost the connection to {where} during '{call}': "
                                       f"{exc.strerror or exc}",
                                       hint="it may have been stopped or crashed")
            return errors.RpcError(f"{where} could not be reached: {exc.strerror or exc}")
        return errors.RpcError(f"{where} failed: {exc}")


def _is_eof(exc: BaseException | None) -> bool:
    return exc is None or isinstance(exc, ConnectionError | asyncio.IncompleteReadError)


def _parse_reply_head(head: bytes) -> tuple[int, int, bool]:
    """``(status, content length, keep alive)`` of a reply head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") \
            or not (len(parts[1]) == 3 and parts[1].isascii() and parts[1].isdigit()):
        raise _BadReply(f"malformed status line {lines[0][:80]!r}")
    try:
        headers = _parse_headers(lines[1:])
    except _BadRequest as exc:
        raise _BadReply(str(exc)) from None
    if "transfer-encoding" in headers:
        raise _BadReply("a Transfer-Encoding reply (expected Content-Length)")
    length_text = headers.get("content-length")
    length = None if length_text is None else _content_length(length_text)
    if length is None:
        raise _BadReply("no valid Content-Length")
    if length > MAX_REPLY:
        raise _BadReply(f"reply of {length} bytes is too large")
    connection = headers.get("connection", "").lower()
    keep = connection != "close" if parts[0] == "HTTP/1.1" else connection == "keep-alive"
    return int(parts[1]), length, keep


def _result(payload: Any, status: int, where: str) -> Any:
    """The call's result, or raise the error the server sent."""
    if isinstance(payload, dict):
        if payload.get("ok") is True and status == 200:
            return payload.get("result")
        error = payload.get("error")
        if payload.get("ok") is False and isinstance(error, dict):
            exc = errors.from_dict(error)
            if status != 200:  # refused by the transport: say which daemon refused
                exc = type(exc)(f"{where}: {exc.message}", exc.hint)
            raise exc
    raise errors.RpcError(f"{where} sent an unexpected reply (HTTP {status})")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- fan-out ---------------------------------------------------------------------------------


async def call_many(client: RpcClient, targets: list[tuple[str, str, int]], call: str,
                    args: dict[str, Any], timeout: float, *,
                    readonly: bool = False) -> dict[str, Result]:
    """Call ``call`` on every ``(name, host, port)`` target in parallel.

    Returns ``{name: Result}``; a failing target gets a Result with ``.error`` (an RpcError
    gets ``.node = name``) and does not affect the others. ``readonly`` as in
    :meth:`RpcClient.call` (each target gets its own idempotency key).
    """
    body = _ENCODE(args).encode()

    async def one(name: str, host: str, port: int) -> Result:
        try:
            return Result(value=await client._call_body(host, port, call, body, timeout, None,
                                                        readonly))
        except errors.CardumeError as exc:
            if isinstance(exc, errors.RpcError) and exc.node is None:
                exc.node = name
            return Result(error=exc)
        except Exception as exc:
            log.exception("RPC call %s to %s failed unexpectedly", call, name)
            return Result(error=errors.InternalError(f"{call} to {name}: {exc!r}"))

    results = await asyncio.gather(*(one(name, host, port) for name, host, port in targets))
    return {target[0]: result for target, result in zip(targets, results, strict=True)}
