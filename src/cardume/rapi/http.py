"""The REST daemon's HTTPS server: HTTP/1.1 parsing with limits, keep-alive, one task per
connection, and the dispatch of each request to its resource.

Every client is held to limits, so a slow, half-sent or oversized request costs a bounded
amount of memory and time and never holds up another client (each connection is its own
asyncio task): the request line and headers must arrive within ``head_timeout`` and fit in
``max_head`` bytes and ``max_headers`` lines; a body is at most ``max_body`` bytes, refused
(413) from its announced length without being read; an idle keep-alive connection is closed
after ``idle_timeout``; at most ``max_connections`` connections are served at once (the
next ones get a 503). Whatever a client sends, it gets an HTTP reply or the connection is
closed; a handler's unexpected exception is a 500 with one line, the traceback goes to the
log only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

from cardume import errors
from cardume.rapi import auth, routes
from cardume.rapi.base import Call, EncodedJson, MasterLink, PlainText, RapiError

log = logging.getLogger("cardume.rapi.http")

SERVER = "cardume-rapi"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(r"^HTTP/(\d)\.(\d)$")


@dataclass(frozen=True)
class Limits:
    max_body: int = 1024 * 1024
    max_head: int = 16 * 1024       # request line and headers together
    max_headers: int = 100
    head_timeout: float = 10.0      # from a request's first byte to its last header
    body_timeout: float = 30.0
    idle_timeout: float = 60.0      # a keep-alive connection waiting for its next request
    write_timeout: float = 60.0     # a client that does not read its reply
    handshake_timeout: float = 10.0
    max_connections: int = 256


@dataclass
class Request:
    method: str
    target: str
    version: tuple[int, int]
    headers: dict[str, str]         # lower-case names
    body: bytes = b""
    peer: str = "-"

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens


Upgrade = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False
    user: str | None = None  # who made the request, for the access log
    content_type: str = "application/json"
    stream: AsyncIterator[bytes] | None = None
    """A streamed reply (server-sent events): its chunks are written as they come, without
    a Content-Length, and the connection closes after the last (``body`` is not sent)."""
    upgrade: Upgrade | None = None
    """A switch of protocol (a WebSocket, status 101): after the headers, the connection is
    the upgrade's (its reader, writer, and the bytes already read past the request) until
    it returns; then it closes."""


class HttpError(Exception):
    """A request the server itself refuses; ``close``: the connection cannot go on (its
    framing is lost or the client is misbehaving)."""

    def __init__(self, status: int, message: str, close: bool = True,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close
        self.headers = headers or {}


class ConnectionGone(Exception):
    """The client closed the connection (or went silent) before a whole request."""


def error_response(status: int, message: str, headers: dict[str, str] | None = None,
                   close: bool = False) -> Response:
    body = RapiError(status, message).body()
    return Response(status, _json(body), dict(headers or {}), close)


def _json(data: Any) -> bytes:
    return json.dumps(data).encode() + b"\n"


# --- reading a request -------------------------------------------------------------------------


class RequestReader:
    """Reads requests off one connection, keeping what arrived past the current request."""

    def __init__(self, reader: asyncio.StreamReader, limits: Limits) -> None:
        self.reader = reader
        self.limits = limits
        self.buffer = bytearray()

    async def _more(self, timeout: float) -> None:
        chunk = await asyncio.wait_for(self.reader.read(64 * 1024), timeout)
        if not chunk:
            raise ConnectionGone()
        self.buffer += chunk

    async def read_head(self, idle_timeout: float) -> bytes:
        """The request line and headers (without the blank line). Waits ``idle_timeout``
        for a first byte (then ConnectionGone: nothing to answer), and ``head_timeout``
        from there for the rest (then 408)."""
        limits = self.limits
        started: float | None = None
        while True:
            while self.buffer[:2] == b"\r\n":  # blank lines between requests are allowed
                del self.buffer[:2]
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                if end > limits.max_head:
                    raise _head_too_large(self.buffer, limits)
                head = bytes(self.buffer[:end])
                del self.buffer[:end + 4]
                return head
            if len(self.buffer) > limits.max_head:
                raise _head_too_large(self.buffer, limits)
            loop = asyncio.get_running_loop()
            if not self.buffer:
                started = None
                timeout = idle_timeout
            else:
                if started is None:
                    started = loop.time()
                timeout = started + limits.head_timeout - loop.time()
            try:
                if timeout <= 0:
                    raise TimeoutError
                await self._more(timeout)
            except TimeoutError:
                if not self.buffer:
                    raise ConnectionGone() from None
                raise HttpError(408, f"the request's headers did not arrive within "
                                     f"{limits.head_timeout:g}s") from None
            if started is None and self.buffer:
                started = loop.time()

    async def read_body(self, length: int) -> bytes:
        deadline = asyncio.get_running_loop().time() + self.limits.body_timeout
        while len(self.buffer) < length:
            left = deadline - asyncio.get_running_loop().time()
            try:
                if left <= 0:
                    raise TimeoutError
                await self._more(left)
            except TimeoutError:
                raise HttpError(408, f"the request's body ({length} bytes announced) did "
                                     f"not arrive within {self.limits.body_timeout:g}s"
                                ) from None
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return body


def _head_too_large(buffer: bytearray, limits: Limits) -> HttpError:
    if buffer.find(b"\r\n", 0, limits.max_head) < 0:
        return HttpError(414, f"request line longer than {limits.max_head} bytes")
    return HttpError(431, f"request headers larger than {limits.max_head} bytes")


def parse_head(head: bytes, limits: Limits) -> Request:
    """The request line and headers; an HttpError naming what is wrong."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1]:
        raise HttpError(400, f"malformed request line {lines[0][:80]!r} "
                             "(expected 'METHOD /path HTTP/1.1')")
    method, target, version_text = parts
    if not _TOKEN.match(method):
        raise HttpError(400, f"malformed method {method[:20]!r}")
    match = _VERSION.match(version_text)
    if match is None:
        raise HttpError(400, f"malformed HTTP version {version_text[:20]!r}")
    version = (int(match.group(1)), int(match.group(2)))
    if version[0] != 1:
        raise HttpError(505, f"HTTP version {version_text} is not supported (use HTTP/1.1)")
    if len(lines) - 1 > limits.max_headers:
        raise HttpError(431, f"more than {limits.max_headers} header lines")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            raise HttpError(400, "folded header lines are not accepted")
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise HttpError(400, f"malformed header line {line[:40]!r} (expected "
                                 "'Name: value')")
        key = name.lower()
        value = value.strip(" \t")
        if key in headers:
            if key in ("content-length", "authorization", "content-type", "host"):
                if headers[key] != value:
                    raise HttpError(400, f"header {name} given twice with different values")
                continue
            value = f"{headers[key]}, {value}"
        headers[key] = value
    return Request(method, target, version, headers)


def body_length(request: Request, limits: Limits) -> int:
    if "transfer-encoding" in request.headers:
        raise HttpError(411, "chunked or encoded bodies are not accepted; send the body "
                             "with a Content-Length")
    text = request.headers.get("content-length")
    if text is None:
        return 0
    if not text.isdigit() or len(text) > 18:
        raise HttpError(400, f"malformed Content-Length {text[:20]!r} (expected a number "
                             "of bytes)")
    length = int(text)
    if length > limits.max_body:
        raise HttpError(413, f"request body of {length} bytes is larger than the "
                             f"{limits.max_body} bytes allowed")
    return length


# --- the server ----------------------------------------------------------------------------------

App = Callable[[Request], Awaitable[Response]]


class HttpServer:
    """Serves ``app`` over TLS; ``ssl_context`` may be changed in place (a renewed
    certificate is used by the next handshakes)."""

    def __init__(self, app: App, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits or Limits()
        self.connections: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str | None, port: int, ssl_context: ssl.SSLContext | None
                    ) -> asyncio.Server:
        self._server = await asyncio.start_server(
            self._connection, host or None, port, ssl=ssl_context,
            ssl_handshake_timeout=self.limits.handshake_timeout if ssl_context else None,
            reuse_address=True, backlog=256)
        return self._server

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.wait(list(self.connections), timeout=5.0)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else "-"
        try:
            if len(self.connections) > self.limits.max_connections:
                log.warning("refused a connection from %s: %d connections already open",
                            peer, self.limits.max_connections)
                await self._send(writer, error_response(
                    503, f"too many connections (at most {self.limits.max_connections}); "
                         "try again shortly", close=True), (1, 1))
                return
            await self._serve(RequestReader(reader, self.limits), writer, peer)
        except (ConnectionError, ConnectionGone, TimeoutError, ssl.SSLError):
            pass  # the client went away or stopped reading: nothing left to tell it
        except asyncio.CancelledError:
            pass  # the daemon is stopping
        except Exception:
            log.exception("connection from %s failed", peer)
        finally:
            self.connections.discard(task)
            writer.close()

    async def _serve(self, reader: RequestReader, writer: asyncio.StreamWriter,
                     peer: str) -> None:
        idle = self.limits.head_timeout  # a new connection must send its request at once
        while True:
            started = time.monotonic()
            request: Request | None = None
            try:
                head = await reader.read_head(idle)
                started = time.monotonic()
                request = parse_head(head, self.limits)
                request.peer = peer
                length = body_length(request, self.limits)
                expect = request.headers.get("expect", "").lower()
                if expect and expect != "100-continue":
                    raise HttpError(417, f"expectation {expect[:40]!r} is not supported")
                if length and expect == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await self._drain(writer)
                request.body = await reader.read_body(length)
            except HttpError as err:
                response = error_response(err.status, err.message, err.headers, err.close)
                _access_log(peer, request, response, started)
                await self._send(writer, response, request.version if request else (1, 1))
                await self._linger(reader)
                return
            response = await self.app(request)
            _access_log(peer, request, response, started)
            if response.stream is not None:
                await self._send_stream(writer, response)
                return
            if response.upgrade is not None:
                await self._send_upgrade(reader, writer, response)
                return
            keep = request.keep_alive and not response.close
            await self._send(writer, response, request.version, keep)
            if not keep:
                return
            idle = self.limits.idle_timeout

    async def _linger(self, reader: RequestReader) -> None:
        """Before closing on a refused request, read (and drop) a little of what the client
        may still be sending: closing a socket with unread data resets the connection, and
        the client could lose the reply that says why."""
        dropped = 0
        try:
            async with asyncio.timeout(0.5):
                while dropped < self.limits.max_body:
                    chunk = await reader.reader.read(64 * 1024)
                    if not chunk:
                        return
                    dropped += len(chunk)
        except (TimeoutError, ConnectionError, ssl.SSLError):
            return

    async def _send(self, writer: asyncio.StreamWriter, response: Response,
                    version: tuple[int, int], keep: bool = False) -> None:
        status = HTTPStatus(response.status)
        lines = [f"HTTP/1.1 {status.value} {status.phrase}",
                 f"Content-Type: {response.content_type}",
                 f"Content-Length: {len(response.body)}",
                 f"Date: {formatdate(usegmt=True)}",
                 f"Server: {SERVER}"]
        lines.extend(f"{k}: {v}" for k, v in response.headers.items())
        if not keep:
            lines.append("Connection: close")
        elif version < (1, 1):
            lines.append("Connection: keep-alive")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        await self._drain(writer)

    async def _send_stream(self, writer: asyncio.StreamWriter, response: Response) -> None:
        """Headers, then each chunk as the stream yields it; the end of the reply is the end
        of the connection (no Content-Length, no chunked coding: an event stream is read to
        its close). A client that stops reading is dropped after ``write_timeout``."""
        assert response.stream is not None
        status = HTTPStatus(response.status)
        lines = [f"HTTP/1.1 {status.value} {status.phrase}",
                 f"Content-Type: {response.content_type}",
                 f"Date: {formatdate(usegmt=True)}",
                 f"Server: {SERVER}"]
        lines.extend(f"{k}: {v}" for k, v in response.headers.items())
        lines.append("Connection: close")
        stream = response.stream
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await self._drain(writer)
            async for chunk in stream:
                writer.write(chunk)
                await self._drain(writer)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _send_upgrade(self, reader: RequestReader, writer: asyncio.StreamWriter,
                            response: Response) -> None:
        """101 and its headers (no body), then the connection is the upgrade's."""
        assert response.upgrade is not None
        status = HTTPStatus(response.status)
        lines = [f"HTTP/1.1 {status.value} {status.phrase}", f"Date: {formatdate(usegmt=True)}",
                 f"Server: {SERVER}"]
        lines.extend(f"{k}: {v}" for k, v in response.headers.items())
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await self._drain(writer)
        leftover = bytes(reader.buffer)
        reader.buffer.clear()
        await response.upgrade(reader.reader, writer, leftover)

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        await asyncio.wait_for(writer.drain(), self.limits.write_timeout)


def _access_log(peer: str, request: Request | None, response: Response,
                started: float) -> None:
    """One line a request; the path without its query (it may name things, never a
    secret: credentials travel in a header, which is not logged)."""
    what = f"{request.method} {request.target.partition('?')[0][:200]}" if request else "-"
    log.info("%s %s %s %d %d %.1fms", peer, response.user or "-", what, response.status,
             len(response.body), (time.monotonic() - started) * 1000)


# --- the REST API on top ---------------------------------------------------------------------


class RapiApp:
    """One request: its route, its user, its JSON body, its handler, its JSON reply."""

    def __init__(self, master: MasterLink, users: auth.UsersFile,
                 anonymous_reads: bool = False) -> None:
        self.master = master
        self.users = users
        self.anonymous_reads = anonymous_reads

    async def __call__(self, request: Request) -> Response:
        user: str | None = None
        try:
            path, args = split_target(request.target)
            route = routes.lookup(request.method, path)
            user = auth.authorize(self.users.users(), request.headers.get("authorization"),
                                  route.access, request.method, self.anonymous_reads)
            call = Call(method=request.method, path=path, args=args,
                        body=parse_body(request), params=route.params, master=self.master,
                        user=user, headers=request.headers)
            result = await route.handler(call)
            if isinstance(result, PlainText):
                response = Response(200, result.body, content_type=result.content_type)
            else:
                response = Response(200, result + b"\n" if isinstance(result, EncodedJson)
                                    else _json(result))
        except RapiError as err:
            response = Response(err.status, _json(err.body()), dict(err.headers))
        except errors.CardumeError as err:
            status = err.http_status if err.http_status in HTTPStatus._value2member_map_ \
                else 500
            response = Response(status, _json(RapiError(status, str(err)).body()))
        except Exception as err:
            log.exception("%s %s failed", request.method, request.target.partition("?")[0])
            response = Response(500, _json(RapiError(
                500, f"internal error ({type(err).__name__}); see the REST daemon's log"
            ).body()))
        response.user = user
        return response


def split_target(target: str) -> tuple[str, dict[str, list[str]]]:
    """The path and query arguments of a request target."""
    if not target.startswith("/"):
        raise RapiError(400, f"request target {target[:80]!r} must be a path starting "
                             "with '/'")
    raw_path, _, query = target.partition("?")
    try:
        path = unquote(raw_path, errors="strict") if "%" in raw_path else raw_path
        args = parse_qs(query, keep_blank_values=True, strict_parsing=False,
                        errors="strict", max_num_fields=200)
    except (ValueError, UnicodeDecodeError) as err:
        raise RapiError(400, f"malformed path or query string: {err}") from None
    return path, args


def parse_body(request: Request) -> Any:
    """The JSON body, None without one (GET bodies are accepted: Ganeti's client sends one
    with ``GET /2/jobs/ID/wait``)."""
    if not request.body.strip():
        return None
    ctype = request.headers.get("content-type", "")
    if ctype.split(";", 1)[0].strip().lower() != "application/json":
        raise RapiError(415, f"request body of type {ctype[:60] or '(none)'!r} is not "
                             "accepted (expected application/json)")
    try:
        text = request.body.decode("utf-8")
        return json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError as err:
        raise RapiError(400, f"request body is not UTF-8: {err.reason} at byte "
                             f"{err.start}") from None
    except json.JSONDecodeError as err:
        raise RapiError(400, f"request body is not valid JSON: {err.msg} at line "
                             f"{err.lineno} column {err.colno}") from None
    except RecursionError:
        raise RapiError(400, "request body is not valid JSON: nested too deep") from None
    except ValueError as err:  # NaN/Infinity, or an integer of too many digits
        raise RapiError(400, f"request body is not valid JSON: {err}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
