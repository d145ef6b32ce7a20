"""The consoles of the web console: one-time tickets, per-user limits, and the relay
between a browser's WebSocket and an instance's console on its primary node.

The path is the one ``gnt-instance console`` takes (node/console.py): a TLS connection to
the primary node's daemon presenting this node's certificate (the REST daemon runs on the
master, a cluster node), the ``instance_console`` call, then the same connection carries
the raw serial console or VNC display. No port is opened for VNC: the browser reaches it
only through this daemon's HTTPS port and the node daemons' mutual TLS.

A console page issues a ticket (random, single use, ``TICKET_TTL`` seconds) bound to the
session, the instance and the kind; the WebSocket must present it in its URL with the
session's cookie, from this origin. A user has at most ``per_user`` consoles open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from cardume import errors
from cardume.paths import NodePaths
from cardume.rapi import websocket
from cardume.rapi.ui.session import Session, Sessions

log = logging.getLogger("cardume.rapi.ui.console")

TICKET_TTL = 60.0
PER_USER = 4
TOTAL = 64
MAX_TICKETS = 1000
KEEPALIVE = 20.0         # a ping this often; the session is checked again then
CONNECT_TIMEOUT = 30.0
CHUNK = 65536
KINDS = ("serial", "vnc")


@dataclass
class Ticket:
    token: str
    sid: str
    user: str
    instance: str
    kind: str
    node: str
    expires: float


class Refused(Exception):
    """A console that may not be opened: ``status`` and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Consoles:
    """Tickets and open consoles of this daemon."""

    def __init__(self, paths: NodePaths | None, per_user: int = PER_USER,
                 total: int = TOTAL, ttl: float = TICKET_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.paths = paths
        self.per_user = per_user
        self.total = total
        self.ttl = ttl
        self.clock = clock
        self._tickets: dict[str, Ticket] = {}
        self.open: dict[str, int] = {}  # user -> consoles open now
        self._context: ssl.SSLContext | None = None

    # --- tickets -----------------------------------------------------------------------

    def check_room(self, user: str) -> None:
        if self.open.get(user, 0) >= self.per_user:
            raise Refused(429, f"user {user} has {self.per_user} consoles open already "
                               "(the most allowed): close one first")
        if sum(self.open.values()) >= self.total:
            raise Refused(503, f"{self.total} consoles are open on this daemon (the most "
                               "allowed): try again later")

    def issue(self, session: Session, instance: str, kind: str, node: str) -> str:
        self.check_room(session.user)
        now = self.clock()
        for token in [t for t, k in self._tickets.items() if k.expires < now]:
            del self._tickets[token]
        while len(self._tickets) >= MAX_TICKETS:
            del self._tickets[next(iter(self._tickets))]
        token = secrets.token_urlsafe(24)
        self._tickets[token] = Ticket(token, session.id, session.user, instance, kind, node,
                                      now + self.ttl)
        return token

    def redeem(self, token: str, session: Session, instance: str, kind: str) -> Ticket:
        """The ticket, used up; Refused(403) if it is unknown, used, expired, or another
        session's, instance's or kind's."""
        ticket = self._tickets.pop(token, None) if token else None
        if ticket is None or ticket.expires < self.clock():
            raise Refused(403, "the console's one-time token is missing, used or expired: "
                               "open the console page again")
        if (ticket.sid, ticket.instance, ticket.kind) != (session.id, instance, kind):
            raise Refused(403, "the console's one-time token was issued for another "
                               "session or console")
        self.check_room(session.user)
        return ticket

    # --- the node ----------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            if self.paths is None:
                raise errors.EnvironmentProblem("this daemon does not know the node's "
                                                "certificate (no state directory)")
            from cardume import tls
            self._context = tls.client_context(self.paths.node_cert, self.paths.node_key,
                                               self.paths.ca_cert)
        return self._context

    async def attach(self, ticket: Ticket) -> tuple[asyncio.StreamReader,
                                                    asyncio.StreamWriter]:
        """A connection to the primary node's daemon switched to the console."""
        from cardume.node.console import resolve_node  # the same lookup as the CLI's
        context = self._ssl()
        assert self.paths is not None
        host, port = resolve_node(self.paths, ticket.node)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, server_hostname=host),
                CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ssl.SSLError) as err:
            raise errors.RpcError(f"can't connect to the node daemon of {ticket.node} at "
                                  f"{host}:{port}: {err}") from None
        try:
            body = json.dumps({"instance": ticket.instance, "kind": ticket.kind}).encode()
            writer.write(f"POST /instance_console HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         "Content-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
            length = 0
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            payload = json.loads(await asyncio.wait_for(reader.readexactly(length),
                                                        CONNECT_TIMEOUT))
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as err:
            writer.close()
            raise errors.RpcError(f"the console connection to {ticket.node} failed: "
                                  f"{err or type(err).__name__}") from None
        if not payload.get("ok"):
            writer.close()
            raise errors.from_dict(payload.get("error") or {})
        return reader, writer

    # --- the relay ---------------------------------------------------------------------

    async def run(self, ticket: Ticket, ws: websocket.WebSocket, sessions: Sessions,
                  may_write: Callable[[str], bool]) -> None:
        """Relay until either side ends (or the session ends, or the user loses write
        access); the WebSocket is closed with a code and a reason the page shows."""
        user = ticket.user
        self.open[user] = self.open.get(user, 0) + 1
        started = time.monotonic()
        log.info("console %s of %s opened by %s (node %s)", ticket.kind, ticket.instance,
                 user, ticket.node)
        try:
            try:
                reader, writer = await self.attach(ticket)
            except errors.CardumeError as err:
                await ws.close(websocket.INTERNAL, _line(str(err)))
                return
            try:
                code, reason = await _pump(ticket, ws, reader, writer, sessions, may_write)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            await ws.close(code, reason)
        finally:
            self.open[user] -= 1
            if not self.open[user]:
                del self.open[user]
            log.info("console %s of %s closed (user %s, %.0fs)", ticket.kind,
                     ticket.instance, user, time.monotonic() - started)


async def _pump(ticket: Ticket, ws: websocket.WebSocket, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter, sessions: Sessions,
                may_write: Callable[[str], bool]) -> tuple[int, str]:
    ended: list[tuple[int, str]] = []

    async def to_node() -> None:
        try:
            while True:
                _, data = await ws.receive()
                writer.write(data)
                await writer.drain()
        except websocket.Closed as closed:
            ended.append((websocket.NORMAL, "" if closed.code < 1002 else closed.reason))
        except (ConnectionError, OSError):
            ended.append((websocket.NORMAL, "the console ended"))

    async def to_browser() -> None:
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await ws.send(data)
        ended.append((websocket.NORMAL, "the console ended"))

    async def watch() -> None:
        while True:
            await asyncio.sleep(KEEPALIVE)
            found, _ = sessions.get(ticket.sid)
            if found is None or not may_write(found.user):
                ended.append((websocket.POLICY, "your session ended or lost write access"))
                return
            with contextlib.suppress(websocket.Closed, ConnectionError, OSError):
                await ws.ping()

    tasks = [asyncio.create_task(to_node()), asyncio.create_task(to_browser()),
             asyncio.create_task(watch())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return ended[0] if ended else (websocket.GOING_AWAY, "")


def _line(text: str) -> str:
    return " ".join(text.split())[:120]
