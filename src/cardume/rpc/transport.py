"""JSON RPC over HTTP/1.1 over TLS between the master and the node daemons (stdlib only).

A call is ``POST /<call-name>`` with a JSON object body; the reply is ``200`` with
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"code", "type", "message",
"hint"}}``. Transport-level refusals use their own status with the same JSON error shape:
400 malformed request, 403 call needs a CA-signed client certificate, 404 unknown call,
405 not POST, 413 body too large. ``GET /health`` answers ``{"ok": true}``.

Connections are kept alive and serve requests one after another (no pipelining on the
client side). The client keeps a small pool of idle connections per (host, port).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from cardume import errors
from cardume.tls import FINGERPRINT_PREFIX

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
"""Largest request body a server accepts (config replicas can be large)."""
MAX_HEADER = 64 * 1024
"""Largest request or response head (request line / status line plus headers)."""
MAX_REPLY = 1024 * 1024 * 1024
"""Largest reply body a client accepts."""

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_END_OF_HEAD = b"\r\n\r\n"
_DRAIN_LIMIT = 64 * 1024  # a refused request body up to this size is read and discarded
_READ_CHUNK = 256 * 1024
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
            501: "Not Implemented"}
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


class RpcServer:
    """Serves ``handlers`` as ``POST /<name>`` over TLS with keep-alive connections.

    A call in ``public`` is served to any client; every other call needs a client certificate
    verified against the cluster CA. With a ``CERT_REQUIRED`` context the handshake already
    refuses other clients; with ``CERT_NONE`` (a node that has not joined yet) only the
    public calls work and the others answer 403.

    ``handlers`` is kept by reference, so calls may be added after construction.
    """

    def __init__(self, handlers: Mapping[str, Handler], ssl_context: ssl.SSLContext, *,
                 public: AbstractSet[str] = frozenset(),
                 max_body: int = MAX_BODY, idle_timeout: float = 120.0,
                 body_timeout: float = 300.0, handshake_timeout: float = 10.0) -> None:
        self._handlers = handlers
        self._ssl = ssl_context
        self._public = frozenset(public)
        self._max_body = max_body
        self._idle_timeout = idle_timeout
        self._body_timeout = body_timeout
        self._handshake_timeout = handshake_timeout
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.connections_accepted = 0
        """Connections accepted since start (after a successful TLS handshake)."""
        self.requests_served = 0

    @property
    def port(self) -> int:
        """The bound TCP port (useful after ``start(host, 0)``)."""
        if self._server is None or not self._server.sockets:
            raise errors.WrongState("the RPC server is not running")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        return len(self._connections)

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
        try:
            peer = self._peer_info(writer)
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
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout):
                    head = await reader.readuntil(_END_OF_HEAD)
            except asyncio.IncompleteReadError:
                return  # the client closed the connection
            except asyncio.LimitOverrunError:
                await self._reply(writer, 431, _error(errors.WrongInput(
                    f"request head larger than {MAX_HEADER} bytes")), keep_alive=False)
                return
            try:
                method, target, length, keep_alive, expect_continue = _parse_request(head)
            except _BadRequest as exc:
                await self._reply(writer, 400, _error(errors.WrongInput(str(exc))),
                                  keep_alive=False)
                return
            status, payload = self._refusal(method, target, length, peer)
            if status:
                # Refused before reading the body: skip a small body, close after a large one.
                if length > _DRAIN_LIMIT:
                    keep_alive = False
                elif length:
                    async with asyncio.timeout(self._body_timeout):
                        await reader.readexactly(length)
                await self._reply(writer, status, payload, keep_alive)
                if not keep_alive:
                    return
                continue
            if expect_continue and length:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if length:
                async with asyncio.timeout(self._body_timeout):
                    body = await reader.readexactly(length)
            else:
                body = b""
            status, payload = await self._dispatch(target[1:], body, peer)
            if isinstance(payload, StreamUpgrade):
                await self._reply(writer, 200, {"ok": True, "result": payload.reply}, False)
                self.requests_served += 1
                await payload.run(reader, writer)
                return
            await self._reply(writer, status, payload, keep_alive)
            self.requests_served += 1
            if not keep_alive:
                return

    def _refusal(self, method: str, target: str, length: int,
                 peer: PeerInfo) -> tuple[int, Any]:
        """``(status, payload)`` when the request is answered without its body, else (0, None)."""
        if method == "GET" and target == "/health":
            return 200, {"ok": True}
        if method != "POST":
            return 405, _error(errors.WrongInput(
                f"method {method} not allowed: RPC calls are POST /<call>"))
        name = target[1:]
        if name not in self._handlers:
            return 404, _error(errors.RpcError(f"unknown RPC call '{name}'",
                                               hint="daemon versions differ?"))
        if not peer.verified and name not in self._public:
            if self._ssl.verify_mode == ssl.CERT_NONE:
                hint = "this node has not joined a cluster yet"
            else:
                hint = "no client certificate signed by the cluster CA"
            return 403, _error(errors.RpcError(f"RPC call '{name}' refused", hint=hint))
        if length > self._max_body:
            return 413, _error(errors.WrongInput(
                f"request body of {length} bytes exceeds the limit of {self._max_body}"))
        return 0, None

    async def _dispatch(self, name: str, body: bytes, peer: PeerInfo) -> tuple[int, Any]:
        try:
            args = json.loads(body) if body else {}
        except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
            return 400, _error(errors.WrongInput(f"request body is not valid JSON: {exc}"))
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

    async def _reply(self, writer: asyncio.StreamWriter, status: int, payload: Any,
                     keep_alive: bool) -> None:
        try:
            body = _ENCODE(payload).encode()
        except (TypeError, ValueError) as exc:
            log.exception("RPC reply cannot be encoded as JSON")
            status = 200
            body = _ENCODE(_error(errors.InternalError(
                f"the reply cannot be encoded as JSON: {exc}"))).encode()
        connection = "" if keep_alive else "Connection: close\r\n"
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"{connection}\r\n")
        writer.write(head.encode() + body)
        await writer.drain()


def _error(exc: errors.CardumeError) -> dict[str, Any]:
    return {"ok": False, "error": exc.to_dict()}


def _parse_request(head: bytes) -> tuple[str, str, int, bool, bool]:
    """``(method, target, content length, keep alive, expects 100-continue)``."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(f"malformed request line {lines[0][:80]!r}")
    method, target, version = parts
    if not target.startswith("/"):
        raise _BadRequest(f"malformed request target {target[:80]!r}")
    headers = _parse_headers(lines[1:])
    if "transfer-encoding" in headers:
        raise _BadRequest("chunked requests are not supported: send Content-Length")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise _BadRequest(f"bad Content-Length {length_text[:40]!r}")
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        keep_alive = connection == "keep-alive"
    else:
        keep_alive = connection != "close"
    expect = headers.get("expect", "").lower() == "100-continue"
    return method, target.partition("?")[0], int(length_text), keep_alive, expect


def _parse_headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(f"malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


# --- client ----------------------------------------------------------------------------------


class _NoReply(Exception):
    """The connection failed before any reply byte arrived (maybe a stale keep-alive)."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__(str(cause))
        self.cause = cause


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
                   timeout: float, *, pin: str | None = None) -> Any:
        """Call ``name`` on ``host:port`` and return its result.

        ``pin`` (a :func:`cardume.tls.fingerprint`) makes the call refuse a server presenting
        another certificate; use it with an unverified (pinned) context during the join.
        """
        return await self._call_body(host, port, name, _ENCODE(args).encode(), timeout, pin)

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
                         pin: str | None) -> Any:
        if self._closed:
            raise errors.WrongState("the RPC client is closed")
        if len(body) > MAX_BODY:
            raise errors.WrongInput(
                f"arguments of '{name}' are {len(body)} bytes, more than the limit {MAX_BODY}")
        request = (f"POST /{name} HTTP/1.1\r\nHost: {_host_port(host, port)}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                   ).encode() + body
        key = (host, port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for attempt in (1, 2):
            conn = self._take_idle(key) if attempt == 1 else None
            if conn is None:
                conn = await self._connect(host, port, deadline - loop.time(), timeout)
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
                if conn.reused and attempt == 1:
                    # A keep-alive connection the server had closed (it restarted or timed
                    # it out): the others are likely stale too; retry once on a new one.
                    for other in self._idle.pop(key, []):
                        self._discard(other)
                    continue
                raise self._failure(host, port, exc.cause, fresh=not conn.reused) from None
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
                self._discard(conn)
                raise self._failure(host, port, exc, fresh=False) from None
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
            buf = await reader.read(_READ_CHUNK)
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise _NoReply(exc) from None
        if not buf:
            raise _NoReply(None)
        while (end := buf.find(_END_OF_HEAD)) < 0:
            if len(buf) > MAX_HEADER:
                raise _BadReply("reply head too large")
            more = await reader.read(_READ_CHUNK)
            if not more:
                raise _BadReply("connection closed in the middle of the reply")
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
            raise self._failure(host, port, exc, fresh=True) from None
        _tune(writer.get_extra_info("socket"))
        conn = _Connection(reader, writer)
        if self._closed:
            conn.close()
            raise errors.WrongState("the RPC client is closed")
        self._all.add(conn)
        return conn

    def _failure(self, host: str, port: int, exc: BaseException | None,
                 fresh: bool) -> errors.RpcError:
        """An RpcError naming the peer and the cause of a connection failure."""
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
        if exc is None or isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
            hint = ("it may have rejected our certificate, or it is shutting down" if fresh
                    else None)
            return errors.RpcError(f"{where} closed the connection without answering",
                                   hint=hint)
        if isinstance(exc, OSError):
            return errors.RpcError(f"{where} could not be reached: {exc.strerror or exc}")
        return errors.RpcError(f"{where} failed: {exc}")


def _parse_reply_head(head: bytes) -> tuple[int, int, bool]:
    """``(status, content length, keep alive)`` of a reply head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise _BadReply(f"malformed status line {lines[0][:80]!r}")
    try:
        headers = _parse_headers(lines[1:])
    except _BadRequest as exc:
        raise _BadReply(str(exc)) from None
    length_text = headers.get("content-length")
    if length_text is None or not length_text.isdigit():
        raise _BadReply("no valid Content-Length")
    length = int(length_text)
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
                    args: dict[str, Any], timeout: float) -> dict[str, Result]:
    """Call ``call`` on every ``(name, host, port)`` target in parallel.

    Returns ``{name: Result}``; a failing target gets a Result with ``.error`` (an RpcError
    gets ``.node = name``) and does not affect the others.
    """
    body = _ENCODE(args).encode()

    async def one(name: str, host: str, port: int) -> Result:
        try:
            return Result(value=await client._call_body(host, port, call, body, timeout, None))
        except errors.CardumeError as exc:
            if isinstance(exc, errors.RpcError) and exc.node is None:
                exc.node = name
            return Result(error=exc)
        except Exception as exc:
            log.exception("RPC call %s to %s failed unexpectedly", call, name)
            return Result(error=errors.InternalError(f"{call} to {name}: {exc!r}"))

    results = await asyncio.gather(*(one(name, host, port) for name, host, port in targets))
    return {target[0]: result for target, result in zip(targets, results, strict=True)}
