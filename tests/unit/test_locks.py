"""Unit tests of the hierarchical lock manager (cardume.jobs.locks)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from cardume import errors
from cardume.jobs.locks import (
    ALL_SET,
    BGL,
    LEVEL_CLUSTER,
    LEVEL_INSTANCE,
    LEVEL_NODE,
    LEVEL_NODEGROUP,
    LockInfo,
    LockManager,
    LockRequest,
    LockTimeout,
)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def settle() -> None:
    """Let every runnable task advance as far as it can."""
    for _ in range(10):
        await asyncio.sleep(0)


def info(manager: LockManager, name: str) -> LockInfo | None:
    for lock in manager.snapshot():
        if lock.name == name:
            return lock
    return None


def busy(manager: LockManager) -> list[LockInfo]:
    """The locks that are held or awaited (declared-but-free ones are not debris)."""
    return [lock for lock in manager.snapshot() if lock.owners or lock.pending]


def start(coro: Awaitable[None]) -> asyncio.Task[None]:
    async def wrapper() -> None:
        await coro
    return asyncio.ensure_future(wrapper())


def test_shared_holders_coexist() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_NODE, ["node1"], shared=True)
        await manager.acquire(2, LEVEL_NODE, ["node1"], shared=True, timeout=0)
        assert manager.owned(1, LEVEL_NODE) == {"node1"}
        assert manager.owned(2, LEVEL_NODE) == {"node1"}
        assert info(manager, "node/node1") == LockInfo("node/node1", "shared",
                                                       ["job 1", "job 2"], [])
    run(body)


def test_exclusive_excludes_until_released() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_NODE, ["node1"], shared=False)
        with pytest.raises(LockTimeout) as caught:
            await manager.acquire(2, LEVEL_NODE, ["node1"], shared=True, timeout=0)
        assert "node/node1 held by job 1" in str(caught.value)
        assert caught.value.code == "wrong_state"
        assert manager.owned(2, LEVEL_NODE) == set()

        waiter = start(manager.acquire(2, LEVEL_NODE, ["node1"], shared=True))
        await settle()
        assert not waiter.done()
        assert manager.waiting_for(2) == "node/node1 held by job 1"
        assert info(manager, "node/node1") == LockInfo(
            "node/node1", "exclusive", ["job 1"], [("shared", ["job 2"])])

        manager.release(1)
        await waiter
        assert manager.owned(2, LEVEL_NODE) == {"node1"}
        assert manager.waiting_for(2) is None
        assert info(manager, "node/node1") == LockInfo("node/node1", "shared", ["job 2"], [])
    run(body)


def test_sets_in_any_order_do_not_deadlock() -> None:
    async def body() -> None:
        manager = LockManager()
        names = [f"node{i}" for i in range(6)]
        rng = random.Random(4)
        finished: list[int] = []

        async def job(owner: int) -> None:
            for _ in range(30):
                wanted = rng.sample(names, rng.randint(2, len(names)))   # any order given
                await manager.acquire(owner, LEVEL_NODE, wanted, shared=rng.random() < 0.3)
                assert manager.owned(owner, LEVEL_NODE) == set(wanted)
                await asyncio.sleep(0)
                manager.release(owner)
            finished.append(owner)

        await asyncio.wait_for(asyncio.gather(*(job(owner) for owner in range(12))), 10)
        assert sorted(finished) == list(range(12))
        assert busy(manager) == []
    run(body)


def test_two_owners_opposite_orders_both_finish() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire("holder", LEVEL_NODE, ["a"], shared=False)
        first = start(manager.acquire(1, LEVEL_NODE, ["b", "a"], shared=False))
        second = start(manager.acquire(2, LEVEL_NODE, ["a", "b"], shared=False))
        await settle()
        # Both wait on "a" and neither grabbed "b" out of order.
        assert manager.owned(1, LEVEL_NODE) == set()
        assert manager.owned(2, LEVEL_NODE) == set()
        assert info(manager, "node/b") is None
        manager.release("holder")
        await first
        assert manager.owned(1, LEVEL_NODE) == {"a", "b"}
        manager.release(1)
        await second
        assert manager.owned(2, LEVEL_NODE) == {"a", "b"}
    run(body)


def test_exclusive_all_blocks_names_including_later_ones() -> None:
    async def body() -> None:
        manager = LockManager()
        manager.add(LEVEL_NODE, "node1")
        await manager.acquire(1, LEVEL_NODE, ALL_SET, shared=False)
        manager.add(LEVEL_NODE, "node2")
        assert manager.owns_all(1, LEVEL_NODE)
        assert manager.owned(1, LEVEL_NODE) == {"node1", "node2"}
        for name in ("node1", "node2", "node3"):
            with pytest.raises(LockTimeout):
                await manager.acquire(2, LEVEL_NODE, [name], shared=True, timeout=0)
        waiter = start(manager.acquire(2, LEVEL_NODE, ["node3"], shared=True))
        await settle()
        assert manager.waiting_for(2) == "node/[lockset] held by job 1"
        manager.release(1, LEVEL_NODE)
        await waiter
        assert manager.owned(2, LEVEL_NODE) == {"node3"}
    run(body)


def test_shared_all_against_name_holders() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_NODE, ["node1"], shared=True)
        # Shared names and shared ALL coexist.
        await manager.acquire(2, LEVEL_NODE, ALL_SET, shared=True, timeout=0)
        await manager.acquire(3, LEVEL_NODE, ["node2"], shared=True, timeout=0)
        # An exclusive name conflicts with the shared ALL ...
        with pytest.raises(LockTimeout) as caught:
            await manager.acquire(4, LEVEL_NODE, ["node9"], shared=False, timeout=0)
        assert "held by job 2" in str(caught.value)
        # ... and exclusive ALL with any name holder.
        with pytest.raises(LockTimeout):
            await manager.acquire(5, LEVEL_NODE, ALL_SET, shared=False, timeout=0)
        manager.release(2)
        await manager.acquire(4, LEVEL_NODE, ["node9"], shared=False, timeout=0)
        # A shared ALL now waits for the exclusive name holder.
        waiter = start(manager.acquire(6, LEVEL_NODE, ALL_SET, shared=True))
        await settle()
        assert manager.waiting_for(6) == "node/[lockset] held by job 4"
        manager.release(4)
        await waiter
        assert manager.owns_all(6, LEVEL_NODE)
    run(body)


def test_releasing_last_exclusive_name_lets_shared_all_in() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_NODE, ["node1"], shared=False)
        await manager.acquire(1, LEVEL_NODE, ["node2"], shared=True)
        waiter = start(manager.acquire(2, LEVEL_NODE, ALL_SET, shared=True))
        await settle()
        assert not waiter.done()
        manager.release(1, LEVEL_NODE, ["node1"])
        await waiter
        assert manager.owned(1, LEVEL_NODE) == {"node2"}
        assert manager.owns_all(2, LEVEL_NODE)
    run(body)


def test_level_order_violation_raises() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_NODE, ["node1"], shared=False)
        with pytest.raises(errors.InternalError, match="order"):
            await manager.acquire(1, LEVEL_INSTANCE, ["vm1"], shared=False)
        with pytest.raises(errors.InternalError, match="order"):
            await manager.acquire(1, LEVEL_CLUSTER, [BGL], shared=True)
        assert manager.owned(1, LEVEL_INSTANCE) == set()
        assert info(manager, "instance/vm1") is None
        # More at the same level and anything at a lower level is fine.
        await manager.acquire(1, LEVEL_NODE, ["node2"], shared=False)
        await manager.acquire(1, "node-res", ["node1"], shared=False)
        assert manager.owned(1, LEVEL_NODE) == {"node1", "node2"}
        with pytest.raises(errors.InternalError, match="unknown lock level"):
            await manager.acquire(1, "disk", ["d"], shared=False)
    run(body)


def test_unsupported_mode_changes_raise() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_NODE, ["node1"], shared=True)
        with pytest.raises(errors.InternalError, match="upgrade"):
            await manager.acquire(1, LEVEL_NODE, ["node1"], shared=False)
        with pytest.raises(errors.InternalError):
            await manager.acquire(1, LEVEL_NODE, ALL_SET, shared=True)
        # Asking again for what is already held is a no-op.
        await manager.acquire(1, LEVEL_NODE, ["node1"], shared=True, timeout=0)
        assert info(manager, "node/node1") == LockInfo("node/node1", "shared", ["job 1"], [])
        with pytest.raises(errors.InternalError, match="only the BGL"):
            await manager.acquire(2, LEVEL_CLUSTER, ["other"], shared=True)
    run(body)


def test_adding_exclusive_names_while_all_is_queued() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_NODE, ["node1"], shared=True)
        all_waiter = start(manager.acquire(2, LEVEL_NODE, ALL_SET, shared=False))
        await settle()
        # Job 1 may still take more names at its level although job 2 queued for ALL:
        # job 2 waits for job 1, so making job 1 wait behind job 2 would deadlock.
        await asyncio.wait_for(manager.acquire(1, LEVEL_NODE, ["node2"], shared=False), 1)
        assert manager.owned(1, LEVEL_NODE) == {"node1", "node2"}
        assert not all_waiter.done()
        manager.release(1)
        await all_waiter
        assert manager.owns_all(2, LEVEL_NODE)
    run(body)


def test_waiters_served_by_priority_then_arrival() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire("holder", LEVEL_INSTANCE, ["vm1"], shared=False)
        served: list[str] = []

        async def job(owner: str, priority: int) -> None:
            await manager.acquire(owner, LEVEL_INSTANCE, ["vm1"], shared=False,
                                  priority=priority)
            served.append(owner)
            manager.release(owner)

        tasks = []
        for owner, priority in [("a", 5), ("b", 0), ("c", -10), ("d", 0), ("e", 19)]:
            tasks.append(start(job(owner, priority)))
            await settle()
        pending = info(manager, "instance/vm1")
        assert pending is not None
        assert pending.pending == [("exclusive", ["c", "b", "d", "a", "e"])]
        manager.release("holder")
        await asyncio.gather(*tasks)
        assert served == ["c", "b", "d", "a", "e"]
    run(body)


def test_shared_request_does_not_overtake_queued_exclusive() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_INSTANCE, ["vm1"], shared=True)
        writer = start(manager.acquire(2, LEVEL_INSTANCE, ["vm1"], shared=False))
        await settle()
        reader = start(manager.acquire(3, LEVEL_INSTANCE, ["vm1"], shared=True))
        await settle()
        assert not reader.done()
        assert manager.waiting_for(3) == "instance/vm1 queued behind job 2"
        assert info(manager, "instance/vm1") == LockInfo(
            "instance/vm1", "shared", ["job 1"],
            [("exclusive", ["job 2"]), ("shared", ["job 3"])])
        manager.release(1)
        await writer
        await settle()
        assert not reader.done()
        manager.release(2)
        await reader
        assert manager.owned(3, LEVEL_INSTANCE) == {"vm1"}
        # A better priority does go first, as with Ganeti.
        await manager.acquire(4, LEVEL_INSTANCE, ["vm1"], shared=True, priority=0)
        writer = start(manager.acquire(5, LEVEL_INSTANCE, ["vm1"], shared=False, priority=10))
        await settle()
        await manager.acquire(6, LEVEL_INSTANCE, ["vm1"], shared=True, priority=-5, timeout=0)
        assert manager.owned(6, LEVEL_INSTANCE) == {"vm1"}
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer
    run(body)


def test_cancel_mid_wait_leaves_no_debris() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire("holder", LEVEL_NODE, ["node5"], shared=False)
        before = manager.snapshot()
        # Gets node1..node4 at once, then blocks on node5.
        task = start(manager.acquire(1, LEVEL_NODE, [f"node{i}" for i in range(1, 7)],
                                     shared=False))
        await settle()
        assert manager.owned(1, LEVEL_NODE) == {"node1", "node2", "node3", "node4"}
        behind = start(manager.acquire(2, LEVEL_NODE, ["node5"], shared=True))
        await settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert manager.owned(1, LEVEL_NODE) == set()
        assert manager.waiting_for(1) is None
        # The shared request was stuck behind the cancelled exclusive one only.
        manager.release("holder")
        await behind
        manager.release(2)
        assert busy(manager) == []
        assert manager.snapshot() == [lock for lock in before if not lock.owners]
    run(body)


def test_cancel_right_after_grant_gives_lock_back() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_NODE, ["node1"], shared=False)
        cancelled = start(manager.acquire(2, LEVEL_NODE, ["node1"], shared=False))
        await settle()
        third = start(manager.acquire(3, LEVEL_NODE, ["node1"], shared=False))
        await settle()
        manager.release(1)                # grants job 2 ...
        cancelled.cancel()                # ... which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await asyncio.wait_for(third, 1)
        assert manager.owned(2, LEVEL_NODE) == set()
        assert manager.owned(3, LEVEL_NODE) == {"node1"}
    run(body)


def test_cancel_then_release_before_the_task_cleans_up() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_NODE, ["node1"], shared=False)
        cancelled = start(manager.acquire(2, LEVEL_NODE, ["node1"], shared=False))
        await settle()
        reader = start(manager.acquire(3, LEVEL_NODE, ["node1"], shared=True))
        await settle()
        cancelled.cancel()
        # Until its task runs again the cancelled request is already out of the picture.
        assert info(manager, "node/node1") == LockInfo(
            "node/node1", "exclusive", ["job 1"], [("shared", ["job 3"])])
        assert manager.waiting_for(2) is None
        manager.release(1)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await asyncio.wait_for(reader, 1)
        assert manager.owned(3, LEVEL_NODE) == {"node1"}
        assert manager.owned(2, LEVEL_NODE) == set()
    run(body)


def test_outside_release_during_a_wait_then_cancel() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(9, LEVEL_NODE, ["node3"], shared=False)
        task = start(manager.acquire(1, LEVEL_NODE, ["node1", "node2", "node3"], shared=False))
        await settle()
        manager.release(1)                # e.g. the job is being torn down
        assert manager.owned(1, LEVEL_NODE) == set()
        assert manager.waiting_for(1) == "node/node3 held by job 9"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        manager.release(9)
        assert busy(manager) == []
    run(body)


def test_misuse_is_reported() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(9, LEVEL_NODE, ["node1"], shared=False)
        task = start(manager.acquire(1, LEVEL_NODE, ["node1"], shared=False))
        await settle()
        with pytest.raises(errors.InternalError, match="already waiting"):
            await manager.acquire(1, "network", ["net1"], shared=False)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(errors.InternalError, match="invalid lock name"):
            await manager.acquire(1, LEVEL_NODE, [""], shared=False)
        with pytest.raises(errors.InternalError, match="without a level"):
            manager.release(1, names=["node1"])
        with pytest.raises(errors.InternalError, match="shared and some names exclusive"):
            await manager.acquire_plan(1, [(LEVEL_NODE, ALL_SET, True),
                                           (LEVEL_NODE, ["node2"], False)])
        with pytest.raises(errors.InternalError):
            manager.add(LEVEL_CLUSTER, "other")
        with pytest.raises(errors.InternalError):
            manager.remove(LEVEL_CLUSTER, BGL)
        # A bare string is one name; an empty set of names takes nothing.
        await manager.acquire(1, LEVEL_INSTANCE, "vm1", shared=True)
        await manager.acquire(1, LEVEL_NODE, [], shared=False)
        assert manager.owned(1, LEVEL_INSTANCE) == {"vm1"}
        assert manager.owned(1, LEVEL_NODE) == set()
        manager.release(1)
        manager.release(9)
        assert busy(manager) == []
    run(body)


def test_timeout_withdraws_request() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(9, LEVEL_NODE, ["node2"], shared=False)
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            await manager.acquire(1, LEVEL_NODE, ["node1", "node2"], shared=False,
                                  timeout=0.05)
        assert 0.04 <= time.monotonic() - started < 2
        assert str(caught.value) == "timed out after 0.05s waiting for node/node2 held by job 9"
        assert isinstance(caught.value, errors.WrongState)
        assert manager.owned(1, LEVEL_NODE) == set()
        assert [lock.name for lock in busy(manager)] == ["node/[lockset]", "node/node2"]
        assert info(manager, "node/node2") == LockInfo("node/node2", "exclusive", ["job 9"], [])
        assert info(manager, "node/node1") is None
    run(body)


def test_snapshot_and_waiting_for_text() -> None:
    async def body() -> None:
        manager = LockManager()
        manager.add(LEVEL_INSTANCE, "vm1")
        manager.add(LEVEL_NODE, "node1")
        assert manager.snapshot() == [
            LockInfo("cluster/BGL", None, [], []),
            LockInfo("instance/vm1", None, [], []),
            LockInfo("node/node1", None, [], []),
        ]
        await manager.acquire(7, LEVEL_CLUSTER, ALL_SET, shared=True)
        await manager.acquire(7, LEVEL_INSTANCE, ["vm1"], shared=False)
        await manager.acquire(7, LEVEL_NODE, ["node1"], shared=True)
        waiter = start(manager.acquire("job 12", LEVEL_CLUSTER, [BGL], shared=False))
        await settle()
        assert manager.waiting_for("job 12") == "cluster/BGL held by job 7"
        assert manager.waiting_for(7) is None
        assert manager.waiting_for("nobody") is None
        assert manager.snapshot() == [
            LockInfo("cluster/BGL", "shared", ["job 7"], [("exclusive", ["job 12"])]),
            LockInfo("instance/[lockset]", "shared", ["job 7"], []),
            LockInfo("instance/vm1", "exclusive", ["job 7"], []),
            LockInfo("node/[lockset]", "shared", ["job 7"], []),
            LockInfo("node/node1", "shared", ["job 7"], []),
        ]
        waiter.cancel()
        await settle()
        manager.remove(LEVEL_INSTANCE, "vm1")
        manager.release(7)
        assert manager.snapshot() == [LockInfo("cluster/BGL", None, [], []),
                                      LockInfo("node/node1", None, [], [])]
    run(body)


def test_release_everything_and_by_level() -> None:
    async def body() -> None:
        manager = LockManager()
        await manager.acquire(1, LEVEL_CLUSTER, [BGL], shared=True)
        await manager.acquire(1, LEVEL_INSTANCE, ALL_SET, shared=False)
        await manager.acquire(1, LEVEL_NODEGROUP, ["default"], shared=True)
        await manager.acquire(1, LEVEL_NODE, ["node1", "node2"], shared=False)
        manager.release(1, LEVEL_NODE, ["node1"])
        assert manager.owned(1, LEVEL_NODE) == {"node2"}
        with pytest.raises(errors.InternalError, match="does not hold node/node1"):
            manager.release(1, LEVEL_NODE, ["node1"])
        with pytest.raises(errors.InternalError, match="held through ALL"):
            manager.release(1, LEVEL_INSTANCE, ["vm1"])
        manager.release(1, LEVEL_INSTANCE)
        assert not manager.owns_all(1, LEVEL_INSTANCE)
        manager.release(1, LEVEL_NODEGROUP, ["default"])
        # The last name of a level takes the level-wide lock with it.
        assert info(manager, "nodegroup/[lockset]") is None
        # Lower levels are still held, so climbing back up to instance is refused.
        with pytest.raises(errors.InternalError, match="order"):
            await manager.acquire(1, LEVEL_INSTANCE, ["vm1"], shared=True)
        manager.release(1)
        for level in (LEVEL_CLUSTER, LEVEL_INSTANCE, LEVEL_NODEGROUP, LEVEL_NODE):
            assert manager.owned(1, level) == set()
        assert busy(manager) == []
        manager.release(1)                # nothing held: a no-op
        await manager.acquire(2, LEVEL_CLUSTER, ALL_SET, shared=False, timeout=0)
        await manager.acquire(2, LEVEL_NODE, ALL_SET, shared=False, timeout=0)
        assert manager.owns_all(2, LEVEL_CLUSTER) and manager.owns_all(2, LEVEL_NODE)
    run(body)


def test_plan_is_level_ordered_and_all_or_nothing() -> None:
    async def body() -> None:
        manager = LockManager()
        plan = [LockRequest(LEVEL_NODE, ["node2", "node1"]),
                LockRequest(LEVEL_CLUSTER, ALL_SET, shared=True),
                LockRequest(LEVEL_INSTANCE, ["vm1"]),
                LockRequest(LEVEL_NODE, ["node3"], shared=True)]
        async with manager.locked(1, plan):
            assert manager.owned(1, LEVEL_CLUSTER) == {BGL}
            assert manager.owned(1, LEVEL_INSTANCE) == {"vm1"}
            assert manager.owned(1, LEVEL_NODE) == {"node1", "node2", "node3"}
            assert info(manager, "node/node3") == LockInfo("node/node3", "shared", ["job 1"],
                                                           [])
            # The job may go on taking lower levels inside the block.
            await manager.acquire(1, "network", ["net1"], shared=False)
        assert busy(manager) == []

        await manager.acquire(9, LEVEL_NODE, ["node3"], shared=False)
        with pytest.raises(LockTimeout, match="node/node3 held by job 9"):
            await manager.acquire_plan(2, plan, timeout=0.02)
        assert manager.owned(2, LEVEL_CLUSTER) == set()
        assert manager.owned(2, LEVEL_INSTANCE) == set()
        assert [lock.name for lock in busy(manager)] == ["node/[lockset]", "node/node3"]
    run(body)


def test_uncontended_acquire_release_is_cheap() -> None:
    async def body() -> None:
        manager = LockManager()
        rounds = 2000
        started = time.perf_counter()
        for job in range(rounds):
            await manager.acquire(job, LEVEL_CLUSTER, [BGL], shared=True)
            await manager.acquire(job, LEVEL_INSTANCE, ["vm1"], shared=False)
            await manager.acquire(job, LEVEL_NODE, ["node1", "node2"], shared=False)
            manager.release(job)
        per_job = (time.perf_counter() - started) / rounds
        # Generous bound against accidental slow paths (measured: roughly 10 microseconds).
        assert per_job < 500e-6
        assert busy(manager) == []
    run(body)
