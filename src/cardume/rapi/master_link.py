"""The master's socket, asynchronously: the REST daemon's one way to the cluster.

Requests are LUXI's (``{"method", "args", "version"}`` ending in ETX, as master.client
sends them). A connection carries one request at a time, so concurrent requests take
connections from a small pool instead of queueing behind a slow one (a long job wait must
not hold up a listing).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from cardume import errors
from cardume.master.client import PROTOCOL_VERSION, RAW_REPLY_PREFIX

EOM = b"\x03"
MAX_REPLY = 256 * 1024 * 1024  # a bulk listing of 10,000 instances is some tens of MiB


class MasterLink:
    """A pool of connections to the master's socket at ``path``."""

    def __init__(self, path: str, timeout: float = 120.0, pool: int = 8) -> None:
        self.path = path
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._pool = pool

    async def call(self, method: str, *args: Any) -> Any:
        reply = json.loads(await self._request(method, args))
        if not reply.get("success"):
            raise errors.from_dict(reply.get("result") or {})
        return reply.get("result")

    async def call_raw(self, method: str, *args: Any) -> bytes:
        """The result's JSON text as the master wrote it: a reply that begins with
        RAW_REPLY_PREFIX is sliced, never parsed (a bulk listing of megabytes)."""
        raw = await self._request(method, args)
        if raw.startswith(RAW_REPLY_PREFIX) and raw.endswith(b"}"):
            return raw[len(RAW_REPLY_PREFIX):-1]
        reply = json.loads(raw)
        if not reply.get("success"):
            raise errors.from_dict(reply.get("result") or {})
        return json.dumps(reply.get("result")).encode()

    async def _request(self, method: str, args: tuple[Any, ...]) -> bytes:
        """One request on a pooled connection; the reply's bytes (without the EOM)."""
        conn = self._idle.pop() if self._idle else await self._connect()
        reader, writer = conn
        request = {"method": method, "args": list(args), "version": PROTOCOL_VERSION}
        try:
            writer.write(json.dumps(request, separators=(",", ":")).encode() + EOM)
            await writer.drain()
            raw = await asyncio.wait_for(reader.readuntil(EOM), self.timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError) as err:
            writer.close()
            raise errors.MasterUnreachable(
                f"the master daemon did not answer {method}: {err or type(err).__name__}"
            ) from None
        except BaseException:  # cancelled mid-request: the reply would be out of step
            writer.close()
            raise
        if len(self._idle) < self._pool:
            self._idle.append(conn)
        else:
            writer.close()
        return raw[:-1]

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(self.path, limit=MAX_REPLY)
        except OSError as err:
            raise errors.MasterUnreachable(
                f"cannot reach the master daemon at {self.path}: {err.strerror or err}"
            ) from None

    async def close(self) -> None:
        for _reader, writer in self._idle:
            writer.close()
        self._idle.clear()
