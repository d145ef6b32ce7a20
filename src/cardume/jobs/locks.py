"""Hierarchical lock manager for jobs (the model of Ganeti's lock manager; our own code).

Locks are grouped in levels that every owner (a job) must acquire in a fixed order:
cluster ("BGL" only), instance, nodegroup, node, node-res, network. Within one call the names
of a level are taken in sorted order. Because every owner climbs down the same total order
(level, then the level-wide lock, then names sorted), no cycle of waiters can form.

Each level other than the cluster has a level-wide lock, used the way databases use
intention locks:

* asking for individual names takes the level-wide lock in an *intention* mode first
  (IS when all the names are shared, IX when any is exclusive), then the names;
* asking for ALL_SET takes the level-wide lock in plain shared (S) or exclusive (X) mode and
  covers every name of the level, including names that appear later, without touching the
  per-name locks.

The usual compatibility matrix (IS~IS/IX/S, IX~IS/IX, S~IS/S, X~nothing) then gives exactly:
exclusive-ALL excludes everyone at the level, shared-ALL excludes exclusive name holders
but not shared ones, and name holders only meet each other on the per-name locks.

Every lock keeps its waiters sorted by (priority, arrival): lower priority numbers first, as
in Ganeti (-20..19). A request is granted only when it is compatible with the holders *and*
nobody is queued ahead of it, so a shared request never overtakes a queued exclusive one.

Waiting is a plain asyncio future per blocked request; the uncontended path creates none,
so it costs a few dict operations. One acquire call is all-or-nothing: if it is cancelled or
times out, its queued request is withdrawn and whatever that call already got is given back.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
from collections.abc import AsyncIterator, Hashable, Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

from cardume import errors

LEVEL_CLUSTER: Final = "cluster"
LEVEL_INSTANCE: Final = "instance"
LEVEL_NODEGROUP: Final = "nodegroup"
LEVEL_NODE: Final = "node"
LEVEL_NODE_RES: Final = "node-res"
LEVEL_NETWORK: Final = "network"

#: Levels in acquisition order.
LEVELS: Final = (LEVEL_CLUSTER, LEVEL_INSTANCE, LEVEL_NODEGROUP, LEVEL_NODE, LEVEL_NODE_RES,
                 LEVEL_NETWORK)

#: The one lock of the cluster level, the "big Ganeti lock".
BGL: Final = "BGL"

MODE_SHARED: Final = "shared"
MODE_EXCLUSIVE: Final = "exclusive"

Owner = Hashable

_LEVEL_INDEX: Final = {name: index for index, name in enumerate(LEVELS)}
_CLUSTER: Final = 0

# Lock modes as small ints so the hot path indexes lists instead of hashing strings.
_IS, _IX, _S, _X = 0, 1, 2, 3
# For each requested mode, the held modes it cannot coexist with.
_CONFLICTS: Final = ((_X,), (_S, _X), (_IX, _X), (_IS, _IX, _S, _X))
# Upgrades (IS -> IX on a level lock) jump the queue: the queued requests are usually
# waiting for the upgrading owner itself, so making it wait behind them would deadlock.
_UPGRADE_PRIORITY: Final = -(2**31)
_LEVEL_LOCK_NAME: Final = "[lockset]"


class AllSet:
    """The type of ALL_SET: every lock of a level, including ones added later."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ALL_SET"


ALL_SET: Final = AllSet()


class LockTimeout(errors.WrongState):
    """The locks could not be acquired within the requested time."""


@dataclass(frozen=True, slots=True)
class LockInfo:
    """One lock as shown by ``gnt-debug locks``."""

    name: str                                 # "cluster/BGL", "node/node1", "node/[lockset]"
    mode: str | None                          # "shared", "exclusive" or None when free
    owners: list[str]                         # descriptions of the holders, in grant order
    pending: list[tuple[str, list[str]]]      # queued requests, consecutive same-mode grouped


class LockRequest(NamedTuple):
    """One line of a lock plan: a level, its names (or ALL_SET) and the mode."""

    level: str
    names: Iterable[str] | AllSet
    shared: bool = False


def describe_owner(owner: Owner) -> str:
    """How an owner is named in snapshots and messages: ints are job ids."""
    if isinstance(owner, int) and not isinstance(owner, bool):
        return f"job {owner}"
    return str(owner)


def _level_index(level: str) -> int:
    try:
        return _LEVEL_INDEX[level]
    except KeyError:
        raise errors.InternalError(f"unknown lock level {level!r}") from None


def _mode_text(mode: int) -> str:
    # Intention modes are shared as far as an operator is concerned.
    return MODE_EXCLUSIVE if mode == _X else MODE_SHARED


def _covers(held: int, wanted: int) -> bool:
    return held in (_X, wanted) or (wanted == _IS and held in (_IX, _S))


class _Lock:
    __slots__ = ("level", "name", "label", "declared", "holders", "counts", "queue")

    def __init__(self, level: int, name: str | None, declared: bool) -> None:
        self.level = level
        self.name = name                      # None for the level-wide lock
        self.label = f"{LEVELS[level]}/{_LEVEL_LOCK_NAME if name is None else name}"
        self.declared = declared              # kept while idle (add()); else dropped when idle
        self.holders: dict[_OwnerState, int] = {}
        self.counts = [0, 0, 0, 0]            # holders per mode, for O(1) compatibility checks
        self.queue: list[_Waiter] = []        # sorted by key

    def idle(self) -> bool:
        return not self.holders and not self.queue


class _Waiter:
    __slots__ = ("state", "lock", "mode", "key", "future", "granted")

    def __init__(self, state: _OwnerState, lock: _Lock, mode: int, key: tuple[int, int],
                 future: asyncio.Future[None]) -> None:
        self.state = state
        self.lock = lock
        self.mode = mode
        self.key = key
        self.future = future
        self.granted = False

    def __lt__(self, other: _Waiter) -> bool:
        return self.key < other.key


class _Hold:
    """What one owner holds at one level."""

    __slots__ = ("mode", "names")

    def __init__(self) -> None:
        self.mode: int | None = None          # mode on the level-wide lock
        self.names: dict[str, int] = {}


class _OwnerState:
    __slots__ = ("owner", "desc", "holds", "waiting")

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.desc = describe_owner(owner)
        self.holds: dict[int, _Hold] = {}
        self.waiting: _Waiter | None = None


# A step of an acquisition: (level index, name or None for the level-wide lock, mode).
_Step = tuple[int, str | None, int]
# What one level is asked for: (mode on ALL or None, {name: mode}).
_Want = tuple[int | None, dict[str, int]]


class LockManager:
    """All the locks of one master daemon. Use from a single event loop."""

    def __init__(self) -> None:
        self._names: list[dict[str, _Lock]] = [{} for _ in LEVELS]
        self._level_locks = [_Lock(index, None, True) for index in range(len(LEVELS))]
        self._owners: dict[Owner, _OwnerState] = {}
        self._seq = itertools.count()
        self._names[_CLUSTER][BGL] = _Lock(_CLUSTER, BGL, True)

    # -- acquiring -------------------------------------------------------------------------

    async def acquire(self, owner: Owner, level: str, names: Iterable[str] | AllSet,
                      shared: bool, priority: int = 0, timeout: float | None = None) -> None:
        """Acquire ``names`` (or ALL_SET) at ``level`` for ``owner``, all or nothing.

        A bare string is taken as one name. Raises InternalError on a level-order violation
        or an unsupported mode change, LockTimeout when ``timeout`` (seconds; 0 = do not
        wait) runs out; cancelling the awaiting task withdraws the request cleanly.
        """
        lvl = _level_index(level)
        want = self._normalize(lvl, names, shared)
        state = self._owners.get(owner)
        if state is None:
            state = self._owners[owner] = _OwnerState(owner)
        try:
            steps = self._plan(state, lvl, want)
        except BaseException:
            self._forget_if_idle(state)
            raise
        await self._run(state, steps, priority, timeout)

    async def acquire_plan(self, owner: Owner,
                           plan: Iterable[tuple[str, Iterable[str] | AllSet, bool]],
                           priority: int = 0, timeout: float | None = None) -> None:
        """Acquire a whole plan of LockRequest-like triples in level order, all or nothing.

        Lines for the same level are merged (exclusive wins), so their names are still taken
        in one sorted pass. ``timeout`` covers the whole plan.
        """
        merged: dict[int, _Want] = {}
        for level, names, shared in plan:
            lvl = _level_index(level)
            all_mode, wanted = self._normalize(lvl, names, shared)
            old_all, old_wanted = merged.get(lvl, (None, {}))
            if old_all is not None and (all_mode is None or old_all > all_mode):
                all_mode = old_all
            for name, mode in old_wanted.items():
                wanted[name] = max(mode, wanted.get(name, mode))
            merged[lvl] = (all_mode, wanted)
        state = self._owners.get(owner)
        if state is None:
            state = self._owners[owner] = _OwnerState(owner)
        try:
            # Planning every level up front is valid because each level appears once and
            # levels are taken in increasing order; it reports bad plans before any waiting.
            steps = [step for lvl in sorted(merged) for step in self._plan(state, lvl, merged[lvl])]
        except BaseException:
            self._forget_if_idle(state)
            raise
        await self._run(state, steps, priority, timeout)

    @contextlib.asynccontextmanager
    async def locked(self, owner: Owner,
                     plan: Iterable[tuple[str, Iterable[str] | AllSet, bool]],
                     priority: int = 0, timeout: float | None = None) -> AsyncIterator[None]:
        """Hold a plan for the body of an ``async with``; release everything the owner holds
        at the end (including locks the body added), as a finished job does."""
        await self.acquire_plan(owner, plan, priority, timeout)
        try:
            yield
        finally:
            self.release(owner)

    def _normalize(self, lvl: int, names: Iterable[str] | AllSet, shared: bool) -> _Want:
        mode = _S if shared else _X
        if isinstance(names, AllSet):
            if lvl == _CLUSTER:
                return None, {BGL: mode}      # the cluster level has exactly one lock
            return mode, {}
        if isinstance(names, str):
            names = (names,)
        wanted: dict[str, int] = {}
        for name in names:
            if not isinstance(name, str) or not name:
                raise errors.InternalError(f"invalid lock name {name!r} at level {LEVELS[lvl]}")
            wanted[name] = mode
        if lvl == _CLUSTER and any(name != BGL for name in wanted):
            raise errors.InternalError(f"the cluster level has only the {BGL} lock")
        return None, wanted

    def _plan(self, state: _OwnerState, lvl: int, want: _Want) -> list[_Step]:
        """Turn a request into ordered steps, raising before anything is acquired."""
        all_mode, wanted = want
        for held in state.holds:
            if held > lvl:
                raise errors.InternalError(
                    f"lock order violation: {state.desc} holds {LEVELS[held]} locks and asks"
                    f" for {LEVELS[lvl]}")
        if all_mode is None and not wanted:
            return []
        hold = state.holds.get(lvl)
        steps: list[_Step] = []
        if lvl != _CLUSTER:
            if all_mode is not None:
                if all_mode == _S and _X in wanted.values():
                    raise errors.InternalError(
                        f"cannot hold all of {LEVELS[lvl]} shared and some names exclusive")
                need = all_mode
            else:
                need = _IX if _X in wanted.values() else _IS
            held_mode = hold.mode if hold is not None else None
            if held_mode is None:
                steps.append((lvl, None, need))
            elif _covers(held_mode, need):
                pass
            elif held_mode == _IS and need == _IX:
                steps.append((lvl, None, _IX))
            else:
                raise errors.InternalError(
                    f"{state.desc} cannot change its hold on {LEVELS[lvl]} from"
                    f" {'all' if held_mode in (_S, _X) else 'some names'} to"
                    f" {'all' if need in (_S, _X) else 'names'} {_mode_text(need)};"
                    " release the level first or ask for the stronger lock up front")
            if need in (_S, _X) or held_mode in (_S, _X):
                return steps                  # the level-wide lock covers every name
        held_names = hold.names if hold is not None else {}
        for name in sorted(wanted):
            mode = wanted[name]
            have = held_names.get(name)
            if have is None:
                steps.append((lvl, name, mode))
            elif not _covers(have, mode):
                # Two shared holders upgrading at once would deadlock; Ganeti forbids it too.
                raise errors.InternalError(
                    f"{state.desc} holds {LEVELS[lvl]}/{name} shared and cannot upgrade it")
        return steps

    async def _run(self, state: _OwnerState, steps: list[_Step], priority: int,
                   timeout: float | None) -> None:
        if state.waiting is not None:
            raise errors.InternalError(f"{state.desc} is already waiting for a lock")
        seq = next(self._seq)
        deadline: float | None = None
        nowait = False
        if timeout is not None:
            if timeout <= 0:
                nowait = True
            else:
                deadline = asyncio.get_running_loop().time() + timeout
        done: list[tuple[_Lock, int | None]] = []
        try:
            for lvl, name, mode in steps:
                # Looked up only now: an idle lock may have been dropped while we waited.
                lock = self._level_locks[lvl] if name is None else self._name_lock(lvl, name)
                prev = lock.holders.get(state)
                key = (_UPGRADE_PRIORITY if prev is not None else priority, seq)
                queue = lock.queue
                if self._compatible(lock, mode) and (not queue or key < queue[0].key):
                    self._grant(lock, state, mode)
                elif nowait:
                    text = self._blocking_text(lock, state, mode, key)
                    self._drop_if_idle(lock)
                    raise LockTimeout(f"lock not available at once: {text}")
                else:
                    await self._wait(lock, state, mode, key, prev, deadline, timeout)
                done.append((lock, prev))
        except BaseException:
            for lock, prev in reversed(done):
                self._restore(lock, state, prev)
            raise
        finally:
            self._forget_if_idle(state)

    async def _wait(self, lock: _Lock, state: _OwnerState, mode: int, key: tuple[int, int],
                    prev: int | None, deadline: float | None, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(state, lock, mode, key, loop.create_future())
        bisect.insort(lock.queue, waiter)
        state.waiting = waiter
        handle = None
        if deadline is not None:
            handle = loop.call_at(deadline, self._expire, waiter, timeout)
        try:
            await waiter.future
        except BaseException:
            if waiter.granted:
                # Cancelled after the grant but before the task resumed: give it back.
                self._restore(lock, state, prev)
            elif waiter in lock.queue:
                lock.queue.remove(waiter)
                self._wake(lock)
                self._drop_if_idle(lock)
            raise
        finally:
            state.waiting = None
            if handle is not None:
                handle.cancel()

    def _expire(self, waiter: _Waiter, timeout: float | None) -> None:
        if waiter.future.done():
            return
        lock = waiter.lock
        text = self._blocking_text(lock, waiter.state, waiter.mode, waiter.key)
        lock.queue.remove(waiter)
        # The withdrawn request may have been the one holding back those behind it.
        self._wake(lock)
        self._drop_if_idle(lock)
        waiter.future.set_exception(
            LockTimeout(f"timed out after {timeout:g}s waiting for {text}"))

    # -- releasing -------------------------------------------------------------------------

    def release(self, owner: Owner, level: str | None = None,
                names: Iterable[str] | None = None) -> None:
        """Release ``names`` at ``level``, all of ``level``, or (level None) everything.

        Releasing names the owner does not hold individually is an InternalError; releasing a
        level or everything the owner does not hold is a no-op. A pending acquire of the
        owner is not affected: cancel its task for that.
        """
        if level is None and names is not None:
            raise errors.InternalError("release: names given without a level")
        lvl = None if level is None else _level_index(level)
        state = self._owners.get(owner)
        if names is not None and lvl is not None:
            self._release_names(state, owner, lvl, [names] if isinstance(names, str) else
                                list(names))
        elif state is not None:
            for held in sorted(state.holds, reverse=True) if lvl is None else [lvl]:
                self._release_level(state, held)
        if state is not None:
            self._forget_if_idle(state)

    def _release_level(self, state: _OwnerState, lvl: int) -> None:
        hold = state.holds.get(lvl)
        if hold is None:
            return
        level_names = self._names[lvl]
        for name in list(hold.names):
            self._restore(level_names[name], state, None)
        if hold.mode is not None:
            self._restore(self._level_locks[lvl], state, None)

    def _release_names(self, state: _OwnerState | None, owner: Owner, lvl: int,
                       names: list[str]) -> None:
        hold = state.holds.get(lvl) if state is not None else None
        missing = sorted(name for name in names if hold is None or name not in hold.names)
        if missing:
            how = " (held through ALL; release the level)" if (
                hold is not None and hold.mode in (_S, _X)) else ""
            raise errors.InternalError(
                f"{describe_owner(owner)} does not hold {LEVELS[lvl]}/{', '.join(missing)}"
                f"{how}")
        if state is None or hold is None or not names:
            return
        level_names = self._names[lvl]
        for name in names:
            self._restore(level_names[name], state, None)
        if lvl == _CLUSTER:
            return
        # Keep the level-wide lock no stronger than what is still held, so that a queued
        # shared-ALL request can go as soon as the last exclusive name is gone.
        level_lock = self._level_locks[lvl]
        if not hold.names:
            self._restore(level_lock, state, None)
        elif hold.mode == _IX and _X not in hold.names.values():
            self._restore(level_lock, state, _IS)

    # -- queries ---------------------------------------------------------------------------

    def owned(self, owner: Owner, level: str) -> set[str]:
        """Names ``owner`` holds at ``level``; with ALL, every name currently known there."""
        lvl = _level_index(level)
        state = self._owners.get(owner)
        hold = state.holds.get(lvl) if state is not None else None
        if hold is None:
            return set()
        result = set(hold.names)
        if hold.mode in (_S, _X):
            result.update(self._names[lvl])
        return result

    def owns_all(self, owner: Owner, level: str) -> bool:
        """Whether ``owner`` holds ``level`` as ALL_SET (for the cluster level: the BGL)."""
        lvl = _level_index(level)
        state = self._owners.get(owner)
        hold = state.holds.get(lvl) if state is not None else None
        if hold is None:
            return False
        if lvl == _CLUSTER:
            return BGL in hold.names
        return hold.mode in (_S, _X)

    def waiting_for(self, owner: Owner) -> str | None:
        """What ``owner`` is blocked on, e.g. "node/node1 held by job 9"; None if not waiting."""
        state = self._owners.get(owner)
        if state is None:
            return None
        waiter = state.waiting
        if waiter is None or waiter.future.done():
            return None
        return self._blocking_text(waiter.lock, state, waiter.mode, waiter.key)

    def snapshot(self) -> list[LockInfo]:
        """Every declared, held or awaited lock, in acquisition order."""
        result: list[LockInfo] = []
        for lvl in range(len(LEVELS)):
            level_lock = self._level_locks[lvl]
            if not level_lock.idle():
                result.append(self._info(level_lock))
            level_names = self._names[lvl]
            for name in sorted(level_names):
                result.append(self._info(level_names[name]))
        return result

    # -- bookkeeping -----------------------------------------------------------------------

    def add(self, level: str, name: str) -> None:
        """Declare a lock so it shows in snapshots while free. Idempotent."""
        lvl = _level_index(level)
        if lvl == _CLUSTER:
            if name != BGL:
                raise errors.InternalError(f"the cluster level has only the {BGL} lock")
            return
        self._name_lock(lvl, name).declared = True

    def remove(self, level: str, name: str) -> None:
        """Forget a declared lock; a held one disappears once it is free again."""
        lvl = _level_index(level)
        if lvl == _CLUSTER:
            raise errors.InternalError(f"the {BGL} cannot be removed")
        lock = self._names[lvl].get(name)
        if lock is not None:
            lock.declared = False
            self._drop_if_idle(lock)

    # -- internals -------------------------------------------------------------------------

    def _name_lock(self, lvl: int, name: str) -> _Lock:
        level_names = self._names[lvl]
        lock = level_names.get(name)
        if lock is None:
            lock = level_names[name] = _Lock(lvl, name, False)
        return lock

    @staticmethod
    def _compatible(lock: _Lock, mode: int) -> bool:
        # The owner's own hold needs no discounting: the only upgrade allowed (IS -> IX)
        # does not conflict with the IS it replaces.
        counts = lock.counts
        return not any(counts[held] for held in _CONFLICTS[mode])

    @staticmethod
    def _grant(lock: _Lock, state: _OwnerState, mode: int) -> None:
        old = lock.holders.get(state)
        if old is not None:
            lock.counts[old] -= 1
        lock.holders[state] = mode
        lock.counts[mode] += 1
        hold = state.holds.get(lock.level)
        if hold is None:
            hold = state.holds[lock.level] = _Hold()
        if lock.name is None:
            hold.mode = mode
        else:
            hold.names[lock.name] = mode

    def _restore(self, lock: _Lock, state: _OwnerState, prev: int | None) -> None:
        """Put ``state``'s hold on ``lock`` back to ``prev`` (None: release it), then wake."""
        mode = lock.holders.get(state)
        if mode is None:
            return                            # already released, e.g. by a concurrent release()
        if prev is not None:
            self._grant(lock, state, prev)
        else:
            del lock.holders[state]
            lock.counts[mode] -= 1
            hold = state.holds[lock.level]
            if lock.name is None:
                hold.mode = None
            else:
                del hold.names[lock.name]
            if hold.mode is None and not hold.names:
                del state.holds[lock.level]
        self._wake(lock)
        self._drop_if_idle(lock)

    def _wake(self, lock: _Lock) -> None:
        """Grant queued requests from the head while they fit; stop at the first that does
        not, so nothing overtakes it."""
        queue = lock.queue
        while queue:
            waiter = queue[0]
            if waiter.future.done():          # cancelled, its task has not cleaned up yet
                queue.pop(0)
                continue
            if not self._compatible(lock, waiter.mode):
                break
            queue.pop(0)
            self._grant(lock, waiter.state, waiter.mode)
            waiter.granted = True
            waiter.future.set_result(None)

    def _drop_if_idle(self, lock: _Lock) -> None:
        if lock.name is not None and not lock.declared and lock.idle():
            self._names[lock.level].pop(lock.name, None)

    def _forget_if_idle(self, state: _OwnerState) -> None:
        if not state.holds and state.waiting is None:
            self._owners.pop(state.owner, None)

    @staticmethod
    def _blocking_text(lock: _Lock, state: _OwnerState, mode: int, key: tuple[int, int]) -> str:
        conflicts = _CONFLICTS[mode]
        holders = [other.desc for other, held in lock.holders.items()
                   if other is not state and held in conflicts]
        if holders:
            return f"{lock.label} held by {', '.join(holders)}"
        ahead = [waiter.state.desc for waiter in lock.queue
                 if waiter.key < key and not waiter.future.done()]
        if ahead:
            return f"{lock.label} queued behind {', '.join(ahead)}"
        return lock.label

    def _info(self, lock: _Lock) -> LockInfo:
        mode = None
        if lock.holders:
            mode = MODE_EXCLUSIVE if lock.counts[_X] else MODE_SHARED
        pending: list[tuple[str, list[str]]] = []
        for waiter in lock.queue:
            if waiter.future.done():
                continue
            text = _mode_text(waiter.mode)
            if pending and pending[-1][0] == text:
                pending[-1][1].append(waiter.state.desc)
            else:
                pending.append((text, [waiter.state.desc]))
        return LockInfo(lock.label, mode, [state.desc for state in lock.holders], pending)
