"""The RPC server a node daemon runs, and its memory of keyed calls so that each runs once.

The protocol (paths, statuses, the idempotency header) is described in
:mod:`cardume.rpc.http`; the client is in :mod:`cardume.rpc.transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from cardume import errors
from cardume.rpc.http import (
    END_OF_HEAD,
    MAX_BODY,
    MAX_HEADER,
    Authorize,
    BadArguments,
    BadRequest,
    Handler,
    PeerInfo,
    Request,
    StreamUpgrade,
    compact_json,
    host_port,
    parse_request,
)
from cardume.tls import FINGERPRINT_PREFIX

log = logging.getLogger(__name__)

UNVERIFIED_MAX_BODY = 256 * 1024
"""Largest request body from a client without a verified certificate (only public calls:
``version``, and ``join`` whose body holds two certificates and the cluster summary, about
150 bytes per node: this leaves room for well over a thousand nodes)."""
UNVERIFIED_MAX_HEADER = 8 * 1024
UNVERIFIED_TIMEOUT = 10.0
"""Idle and body timeout for clients without a verified certificate."""
UNVERIFIED_MAX_CONNECTIONS = 32
"""Connections at once from clients without a verified certificate; more are refused."""
ONCE_TTL = 15 * 60.0
"""How long a server remembers a finished keyed call (a resend comes within one call's
reconnect, so this is generous)."""
ONCE_MAX_ENTRIES = 4096
ONCE_MAX_BYTES = 32 * 1024 * 1024
ONCE_MAX_REPLY = 1024 * 1024
"""A keyed call's reply larger than this is not kept: a duplicate gets an error instead."""
_DRAIN_LIMIT = 64 * 1024  # a refused request body up to this size is read and discarded

_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 413: "Content Too Large",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable"}


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
                f"cannot listen on {host_port(host, port)}: {exc.strerror or exc}") from None

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
                    head = await reader.readuntil(END_OF_HEAD)
            except asyncio.IncompleteReadError:
                return  # the client closed the connection
            except asyncio.LimitOverrunError:
                head = b""
            if not head or len(head) > max_head:
                await self._send(writer, 431, _encode(_error(errors.WrongInput(
                    f"request head larger than {max_head} bytes"))), keep_alive=False)
                return
            try:
                request = parse_request(head)
            except BadRequest as exc:
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
                try:
                    await self._send(writer, 200,
                                     _encode({"ok": True, "result": upgrade.reply}), False)
                except BaseException:
                    if upgrade.abandon is not None:
                        upgrade.abandon()
                    raise
                self.requests_served += 1
                await upgrade.run(reader, writer)
                return
            await self._send(writer, status, data, keep_alive)
            self.requests_served += 1
            if not keep_alive:
                return

    def _refusal(self, request: Request, peer: PeerInfo) -> tuple[int, Any]:
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
        except BadArguments as exc:
            log.debug("RPC call %s from %s: %s", name, peer.address, exc)
            return 400, _error(errors.WrongInput(exc.message, exc.hint))
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
        return compact_json(payload).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        log.exception("RPC reply cannot be encoded as JSON")
        return compact_json(_error(errors.InternalError(
            f"the reply cannot be encoded as JSON: {type(exc).__name__}: {exc}"))).encode()


def _error(exc: errors.CardumeError) -> dict[str, Any]:
    return {"ok": False, "error": exc.to_dict()}
