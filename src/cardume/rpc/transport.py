"""The client side of node RPC: :class:`RpcClient`, its pool of keep-alive connections, and
:func:`call_many` to call many nodes at once.

The protocol (paths, statuses, the idempotency header and when a request is resent) is
described in :mod:`cardume.rpc.http`; the server is in :mod:`cardume.rpc.server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import secrets
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from cardume import errors
from cardume.rpc.http import (
    END_OF_HEAD,
    MAX_BODY,
    MAX_HEADER,
    REQUEST_ID_HEADER,
    BadReply,
    compact_json,
    host_port,
    parse_reply_head,
)
from cardume.tls import FINGERPRINT_PREFIX

log = logging.getLogger(__name__)

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


class _NoReply(Exception):
    """The connection failed before any reply byte arrived (maybe a stale keep-alive).

    ``sent`` says whether the whole request had been handed to the connection: if so, the
    server may have received it and be running (or have run) the call.
    """

    def __init__(self, cause: BaseException | None, sent: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sent = sent


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
    so the server runs it once (see :mod:`cardume.rpc.http`).
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
        return await self._call_body(host, port, name, compact_json(args).encode(), timeout, pin,
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
                f"{self._peer_kind} at {host_port(host, port)} presented no certificate")
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
        request = (f"POST /{name} HTTP/1.1\r\nHost: {host_port(host, port)}\r\n"
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
                    f"{self._peer_kind} at {host_port(host, port)} presented certificate "
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
                    f"{self._peer_kind} at {host_port(host, port)} did not answer "
                    f"'{name}' within {timeout:g}s") from None
            except BadReply as exc:
                self._discard(conn)
                raise errors.RpcError(f"{self._peer_kind} at {host_port(host, port)} sent an "
                                      f"invalid reply to '{name}': {exc}") from None
            except (OSError, asyncio.IncompleteReadError) as exc:
                self._discard(conn)  # the reply had begun: the call was running or had run
                raise self._failure(host, port, exc, sent=True, call=name) from None
            except BaseException:  # cancelled: the connection is mid-request, drop it
                self._discard(conn)
                raise
            self._release(key, conn, keep)
            return _result(payload, status, f"{self._peer_kind} at {host_port(host, port)}")
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
        while (end := buf.find(END_OF_HEAD)) < 0:
            if len(buf) > MAX_HEADER:
                raise BadReply("reply head too large")
            more = await reader.read(_READ_CHUNK)
            if not more:
                raise asyncio.IncompleteReadError(buf, None)
            buf += more
        status, length, keep = parse_reply_head(buf[:end])
        body = buf[end + 4:]
        missing = length - len(body)
        if missing > 0:
            body += await reader.readexactly(missing)
        elif missing < 0:
            raise BadReply("more data than its Content-Length")
        try:
            return status, json.loads(body), keep
        except ValueError as exc:
            raise BadReply(f"HTTP {status} with a body that is not JSON ({exc})") from None
        except RecursionError:
            raise BadReply(f"HTTP {status} with a body nested too deeply") from None

    async def _drop_was_mid_call(self, host: str, port: int, deadline: float) -> bool:
        """Whether the server at ``host:port`` is gone or serves us (``GET /health``),
        rather than closing a new connection before answering (refusing our certificate)."""
        loop = asyncio.get_running_loop()
        remaining = min(deadline - loop.time(), _PROBE_TIMEOUT)
        try:
            async with asyncio.timeout(remaining):
                conn = await self._connect(host, port, remaining)
                try:
                    conn.writer.write(f"GET /health HTTP/1.1\r\nHost: {host_port(host, port)}"
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
        where = f"{self._peer_kind} at {host_port(host, port)}"
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
        where = f"{self._peer_kind} at {host_port(host, port)}"
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


# --- fan-out ---------------------------------------------------------------------------------


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


async def call_many(client: RpcClient, targets: list[tuple[str, str, int]], call: str,
                    args: dict[str, Any], timeout: float, *,
                    readonly: bool = False) -> dict[str, Result]:
    """Call ``call`` on every ``(name, host, port)`` target in parallel.

    Returns ``{name: Result}``; a failing target gets a Result with ``.error`` (an RpcError
    gets ``.node = name``) and does not affect the others. ``readonly`` as in
    :meth:`RpcClient.call` (each target gets its own idempotency key).
    """
    body = compact_json(args).encode()

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
