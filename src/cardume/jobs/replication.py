"""Replication of the job queue to the master candidates.

Each candidate has a worker that sends it, in order, the rows the master's store wrote since
the candidate's last acknowledged ``seq`` (see jobs/store.py); while a send is under way
further changes pile up and go in the next one, so a burst of jobs costs a few calls, not
one per change. A candidate that is new to this master's queue (another ``epoch``: the
queue was taken over at a master failover) or that lost its place gets the whole queue.

The master waits for the candidates before it tells a client something it must never take
back: a job id (SubmitJob) and a job's end (WaitForJobChange). It waits only for the
candidates that are keeping up — one that fails drops out of the waits until it has caught
up again — and never longer than ``wait_limit``.

This module knows nothing of the RPC or the configuration: the master daemon gives it the
list of candidates and the node calls (its rpc.calls.NodeCalls, whose typed
``queue_serial``/``queue_apply`` methods :class:`QueueCalls` names).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cardume import errors
from cardume.jobs.store import LAYOUT, JobStore

log = logging.getLogger(__name__)

BATCH_ROWS = 2000
"""At most about this many rows per call (a candidate far behind catches up in steps)."""
RETRY_AFTER = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before trying a failing candidate again, growing with each failure."""
COALESCE_TURNS = 4
"""Turns of the event loop a send waits for, so that work already under way joins it."""
FLUSH_DELAY = 0.02
"""How long changes nobody waits for may gather before they are sent: a job's steps then
travel together, and a wait (an id, a job's start, its end) sends at once."""


class Target(Protocol):
    @property
    def uuid(self) -> str: ...

    @property
    def name(self) -> str: ...


class QueueCalls(Protocol):
    """The two node calls the replicator makes, on a target ``targets()`` gave."""

    async def queue_serial(self, node: Any) -> dict[str, Any]: ...

    async def queue_apply(self, node: Any, change: dict[str, Any],
                          reset: bool = False, schema: int = 0) -> dict[str, Any]: ...


@dataclass
class _Replica:
    name: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    retry: asyncio.Event = field(default_factory=asyncio.Event)
    """Cuts the pause after a failure short (the node is known to be back)."""
    urgent: asyncio.Event = field(default_factory=asyncio.Event)
    """Somebody waits for this candidate: send now."""
    task: asyncio.Task[None] | None = None
    cursor: int | None = None
    """The highest seq the candidate holds, when known."""
    healthy: bool | None = None
    """Its last call succeeded (True) or failed (False); unknown before the first. Waits
    include it unless it failed."""
    failures: int = 0
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    def release(self, upto: int | None) -> None:
        """Wake the waits this replica satisfies (all of them when ``upto`` is None)."""
        keep = []
        for seq, future in self.waiters:
            if upto is None or seq <= upto:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((seq, future))
        self.waiters = keep


class QueueReplicator:
    def __init__(self, store: JobStore, targets: Callable[[], Sequence[Target]],
                 calls: QueueCalls, wait_limit: float = 10.0) -> None:
        self.store = store
        self._targets = targets
        self._calls = calls
        self.wait_limit = wait_limit
        self._replicas: dict[str, _Replica] = {}
        self._closed = False

    # --- the master's side ---------------------------------------------------------------------

    def changed(self) -> None:
        """The store wrote something: wake every candidate's worker (cheap, called often)."""
        if self._closed:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # written outside the loop (start-up recovery): start() sends it
        for replica in self._replicas.values():
            replica.wake.set()

    def start(self) -> None:
        """Match the workers to the current candidates (call after role changes too)."""
        if self._closed:
            return
        current = {t.uuid: t for t in self._targets()}
        for uuid in list(self._replicas):
            if uuid not in current:
                replica = self._replicas.pop(uuid)
                replica.release(None)
                if replica.task is not None:
                    replica.task.cancel()
        for uuid, target in current.items():
            if uuid not in self._replicas:
                self._replicas[uuid] = _Replica(target.name)
            replica = self._replicas[uuid]
            if replica.task is None or replica.task.done():
                replica.task = asyncio.get_running_loop().create_task(self._worker(uuid))
            replica.wake.set()

    def retry_now(self) -> None:
        """Try the failing candidates again at once (a redistribution reached them)."""
        for replica in self._replicas.values():
            if replica.healthy is False:
                replica.failures = 0
                replica.retry.set()
                replica.wake.set()

    async def synced(self, seq: int | None = None) -> None:
        """Return once every candidate that keeps up holds the store up to ``seq`` (default:
        everything written so far), or after ``wait_limit`` seconds."""
        seq = self.store.seq if seq is None else seq
        loop = asyncio.get_running_loop()
        futures = []
        for replica in self._replicas.values():
            if replica.healthy is False or (replica.cursor is not None
                                            and replica.cursor >= seq):
                continue
            future: asyncio.Future[None] = loop.create_future()
            replica.waiters.append((seq, future))
            replica.urgent.set()
            replica.wake.set()
            futures.append(future)
        if futures:
            await asyncio.wait(futures, timeout=self.wait_limit)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per candidate: how far it is, for queue info and tests."""
        return {r.name: {"seq": r.cursor, "healthy": r.healthy, "behind":
                         None if r.cursor is None else self.store.seq - r.cursor}
                for r in self._replicas.values()}

    async def close(self) -> None:
        self._closed = True
        tasks = []
        for replica in self._replicas.values():
            replica.release(None)
            if replica.task is not None:
                replica.task.cancel()
                tasks.append(replica.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- one candidate ---------------------------------------------------------------------------

    def _target(self, uuid: str) -> Target | None:
        return next((t for t in self._targets() if t.uuid == uuid), None)

    async def _worker(self, uuid: str) -> None:
        while not self._closed:
            replica = self._replicas.get(uuid)
            if replica is None:
                return
            await replica.wake.wait()
            if not replica.waiters and replica.healthy:
                # nobody waits yet: let the job's next steps join this batch
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(replica.urgent.wait(), FLUSH_DELAY)
            for _ in range(COALESCE_TURNS):
                # a job just submitted starts at once: its start joins the batch that
                # carries its submission, instead of needing a call of its own
                await asyncio.sleep(0)
            replica.urgent.clear()
            replica.wake.clear()
            target = self._target(uuid)
            if target is None:
                replica.release(None)
                return
            try:
                await self._catch_up(target, replica)
            except errors.CardumeError as err:
                if replica.healthy is not False or replica.failures == 0:
                    log.warning("job queue replication to %s failed: %s", replica.name, err)
                replica.healthy = False
                replica.cursor = None
                replica.release(None)  # nobody waits on a candidate that does not answer
                delay = RETRY_AFTER[min(replica.failures, len(RETRY_AFTER) - 1)]
                replica.failures += 1
                replica.retry.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(replica.retry.wait(), delay)
                replica.wake.set()

    async def _catch_up(self, target: Target, replica: _Replica) -> None:
        store = self.store
        if replica.cursor is None:
            info = await self._calls.queue_serial(target)
            theirs = int(info.get("seq") or 0) if isinstance(info, dict) else 0
            same_queue = (isinstance(info, dict) and info.get("epoch") is not None
                          and info.get("epoch") == store.get_meta("epoch"))
            replica.cursor = theirs if same_queue and theirs <= store.seq else -1
        while replica.cursor is not None and replica.cursor < store.seq:
            reset = replica.cursor < 0
            change = store.changes_since(max(replica.cursor, 0), BATCH_ROWS)
            reply = await self._calls.queue_apply(target, change, reset, LAYOUT.version)
            if not (isinstance(reply, dict) and reply.get("applied")):
                replica.cursor = None  # it is elsewhere than we thought: ask again
                replica.wake.set()
                return
            replica.cursor = int(change["seq"])
            replica.release(replica.cursor)
        replica.healthy = True
        replica.failures = 0
        if replica.cursor is not None:
            replica.release(replica.cursor)
