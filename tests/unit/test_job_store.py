"""The job store: private files, numbered writes and their replication, a full disk, rows an
older version wrote badly, and secrets that leave a job once it ended."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import stat
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cardume import errors, opcodes
from cardume.jobs.queue import Job, JobQueue
from cardume.jobs.replication import QueueReplicator
from cardume.jobs.store import DiskFull, JobStore
from cardume.rpc.calls import NodeCalls

DELAY = {"OP_ID": "OP_TEST_DELAY", "duration": 0}
TOKEN = "cardume-join:v1:" + "ab" * 32 + ":" + "S3cretS3cretS3cretS3cret"


class ByName(NodeCalls):
    """The node calls, answered in-process by ``answer(node, call name, arguments)``: the
    replicator calls the typed methods, which send by name as the master's NodeRpc does."""

    def __init__(self, answer: Callable[[Any, str, dict[str, Any]], Awaitable[Any]]) -> None:
        self.answer = answer

    async def call(self, node: Any, call: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        return await self.answer(node, call, args or {})


class Runner:
    """Runs opcodes by returning at once, or after a gate when one is set."""

    def __init__(self) -> None:
        self.queue: JobQueue | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self, job: Job, op: opcodes.OpCode) -> Any:
        assert self.queue is not None
        self.queue.mark_running(job)
        if self.gate is not None:
            await self.gate.wait()
        return None


def make_queue(store: JobStore) -> tuple[JobQueue, Runner]:
    runner = Runner()
    queue = JobQueue(store, runner, 5)
    runner.queue = queue
    return queue, runner


async def status_is(queue: JobQueue, job_id: int, status: str) -> None:
    """Let the queue's tasks run until the job has ``status`` (at most 10 s)."""
    async with asyncio.timeout(10):
        while queue.get(job_id).status != status:
            await asyncio.sleep(0.001)


async def finished(queue: JobQueue, job_id: int) -> Job:
    async with asyncio.timeout(10):
        while not queue.get(job_id).finalized:
            await asyncio.sleep(0.01)
    return queue.get(job_id)


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_store_and_its_side_files_are_private_from_the_start(tmp_path: Path) -> None:
    old = os.umask(0o022)  # as an admin's shell would have it
    try:
        store = JobStore(str(tmp_path / "state" / "queue.db"))
        store.insert(1, "queued", {"id": 1})
    finally:
        os.umask(old)
    for suffix in ("", "-wal", "-shm"):
        assert mode(str(tmp_path / "state" / f"queue.db{suffix}")) == 0o600, suffix
    assert mode(str(tmp_path / "state")) == 0o700


def test_an_open_store_of_an_older_version_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    JobStore(str(path)).insert(1, "queued", {"id": 1})
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o644)
    JobStore(str(path))
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            assert mode(f"{path}{suffix}") == 0o600, suffix


def test_every_write_is_numbered_and_a_replica_follows(tmp_path: Path) -> None:
    master = JobStore(str(tmp_path / "m.db"))
    replica = JobStore(str(tmp_path / "r.db"))
    master.insert(1, "queued", {"id": 1})
    master.append_log(1, 1, 1.0, "message", "hello")
    master.update(1, "success", {"id": 1}, end_ts=2.0)
    master.set_meta("drained", "1")
    assert master.seq == 4
    change = master.changes_since(0)
    assert replica.apply_changes(change)
    assert replica.seq == 4 and replica.load(1) == master.load(1)
    assert replica.get_meta("drained") == "1" and replica.next_id() == 2
    # a change that does not start where the replica is, is refused and changes nothing
    master.insert(2, "queued", {"id": 2})
    master.insert(3, "queued", {"id": 3})
    assert not replica.apply_changes(master.changes_since(5))
    assert replica.ids() == [1]
    assert replica.apply_changes(master.changes_since(4))
    assert replica.ids() == [1, 2, 3] and replica.next_id() == 4
    # a whole queue replaces whatever was there
    other = JobStore(str(tmp_path / "o.db"))
    other.insert(7, "queued", {"id": 7})
    assert other.apply_changes(master.dump(), reset=True)
    assert other.ids() == [1, 2, 3] and other.seq == master.seq


def test_ids_are_never_reused_after_a_takeover(tmp_path: Path) -> None:
    master = JobStore(str(tmp_path / "m.db"))
    for job_id in (1, 2, 3):
        master.insert(job_id, "success", {"id": job_id})
    new = JobStore(str(tmp_path / "n.db"))
    change = master.changes_since(0)
    change["jobs"] = [row for row in change["jobs"] if row[0] != 3]  # the newest row lost
    new.apply_changes(change, reset=True)
    # the counter travels with the rows: 3 was handed out, so the next job is 4
    queue, _ = make_queue(new)

    async def main() -> None:
        assert queue.submit([DELAY]) == 4
    asyncio.run(main())


def test_catching_up_in_steps(tmp_path: Path) -> None:
    master = JobStore(str(tmp_path / "m.db"))
    replica = JobStore(str(tmp_path / "r.db"))
    for job_id in range(1, 51):
        master.insert(job_id, "queued", {"id": job_id})
        master.update(job_id, "success", {"id": job_id, "done": True}, end_ts=1.0)
    steps = 0
    while replica.seq < master.seq:
        assert replica.apply_changes(master.changes_since(replica.seq, limit=7))
        steps += 1
    assert steps == 100 // 7 + 1
    assert [replica.load(i) for i in range(1, 51)] == [master.load(i) for i in range(1, 51)]


def test_replicator_sends_in_order_and_waits_only_for_healthy_candidates(
        tmp_path: Path) -> None:
    class Node:
        def __init__(self, name: str) -> None:
            self.uuid = self.name = name

    master = JobStore(str(tmp_path / "m.db"))
    master.set_meta("epoch", "e1")
    replicas = {"good": JobStore(str(tmp_path / "good.db")),
                "down": JobStore(str(tmp_path / "down.db"))}
    calls: list[tuple[str, str]] = []

    async def send(node: Node, call: str, args: dict[str, Any]) -> Any:
        calls.append((node.name, call))
        if node.name == "down":
            raise errors.RpcError("node daemon at x refused the connection")
        store = replicas[node.name]
        if call == "queue_serial":
            return {"epoch": store.get_meta("epoch"), "seq": store.seq}
        applied = store.apply_changes(args["change"], reset=args["reset"])
        return {"applied": applied, "seq": store.seq}

    async def main() -> None:
        nodes = [Node("good"), Node("down")]
        replicator = QueueReplicator(master, lambda: nodes, ByName(send), wait_limit=5.0)
        master.on_change = replicator.changed
        replicator.start()
        queue, runner = make_queue(master)
        ids = [queue.submit([DELAY]) for _ in range(20)]
        submitted = master.seq
        await replicator.synced()  # returns although 'down' never answers
        good = replicas["good"]
        assert good.seq >= submitted and good.get_meta("epoch") == "e1"
        assert set(good.ids()) >= set(ids)
        for job_id in ids:
            await finished(queue, job_id)
        await replicator.synced()
        assert good.seq == master.seq
        assert {i: good.load(i) for i in ids} == {i: master.load(i) for i in ids}
        status = replicator.status()
        assert status["good"]["healthy"] and status["good"]["behind"] == 0
        assert not status["down"]["healthy"]
        # a burst of changes travels in a few calls, not one per change
        applies = [c for c in calls if c == ("good", "queue_apply")]
        assert len(applies) < len(ids)
        await replicator.close()
    asyncio.run(main())


def test_a_secret_never_reaches_the_disk(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "q.db"))
    queue, runner = make_queue(store)
    add = [{"OP_ID": "OP_NODE_ADD", "node_name": "node4", "join_token": TOKEN}]

    async def main() -> None:
        runner.gate = asyncio.Event()
        job_id = queue.submit(add)
        await status_is(queue, job_id, "running")
        # in memory while the job may need it, never in the store (nor, so, in a replica)
        assert queue.get(job_id).ops[0].join_token == TOKEN
        assert store.load(job_id)[0]["ops"][0]["join_token"] == "<redacted>"
        runner.gate.set()
        job = await finished(queue, job_id)
        assert job.ops[0].join_token == "<redacted>"  # and out of memory once it ended
    asyncio.run(main())
    store.close()
    for name in os.listdir(tmp_path):  # the database, its WAL and its shared memory
        assert b"S3cretS3cret" not in (tmp_path / name).read_bytes(), name


def test_a_queued_job_whose_secret_was_not_kept_fails_at_restart(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "q.db"))
    queue, runner = make_queue(store)

    async def main() -> None:
        runner.gate = asyncio.Event()
        queue.max_running = 1
        holder = queue.submit([DELAY])  # holds the only slot
        waiting = queue.submit([{"OP_ID": "OP_NODE_ADD", "node_name": "node4",
                                 "join_token": TOKEN}])
        await status_is(queue, holder, "running")
        assert queue.get(waiting).status == "queued"
        # the master dies here; the next one finds the add queued, without its token
        again, _ = make_queue(JobStore(str(tmp_path / "q.db")))
        again.recover()
        job = again.get(waiting)
        assert job.status == "error"
        assert "join token was not kept across the master daemon's restart" in \
            job.op_result[0]["message"]
        assert "NODE_ADD(node4)" in job.op_result[0]["hint"]
        runner.gate.set()  # the first queue's job ends too: no task is left behind
        await finished(queue, holder)
    asyncio.run(main())


def test_rows_an_older_version_stored_badly_do_not_stop_listing_or_archiving(
        tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with sqlite3.connect(path) as db:  # the first release's schema, and its Infinity bug
        db.executescript("""
            CREATE TABLE jobs (id INTEGER PRIMARY KEY, status TEXT NOT NULL,
                               archived INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL);
            CREATE TABLE job_log (job_id INTEGER NOT NULL, serial INTEGER NOT NULL,
                                  ts REAL NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL,
                                  PRIMARY KEY (job_id, serial));
            CREATE TABLE queue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);""")
        good = {"id": 1, "ops": [DELAY], "status": "success", "priority": 0,
                "received_ts": 1.0, "start_ts": 1.0, "end_ts": 2.0, "op_status": ["success"],
                "op_result": [None], "op_start_ts": [1.0], "op_end_ts": [2.0]}
        bad = dict(good, id=2, ops=[{"OP_ID": "OP_TEST_DELAY", "duration": float("inf")}],
                   end_ts=float("inf"))
        db.executemany("INSERT INTO jobs (id, status, data) VALUES (?,?,?)",
                       [(1, "success", json.dumps(good)), (2, "success", json.dumps(bad))])
    store = JobStore(str(path))
    queue, _ = make_queue(store)
    assert queue.autoarchive(0) == 1  # the good one; the bad one has no usable end time
    job = queue.get(2)  # still listed, as stored
    assert job.ops[0].unchecked and job.status == "success"
    assert queue.archive([2]) == 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of 16 MiB (tmpfs), so that a full disk is really full."""
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb") as handle:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                handle.write(chunk)
                handle.flush()
    return filler


def test_a_full_disk_refuses_new_jobs_and_lets_running_ones_end(small_disk: Path) -> None:
    store = JobStore(str(small_disk / "queue.db"))
    assert store.restore_reserve() and os.path.exists(store.reserve_path)
    queue, runner = make_queue(store)

    async def main() -> None:
        runner.gate = asyncio.Event()
        running = queue.submit([DELAY])
        await status_is(queue, running, "running")  # written before the disk fills
        filler = fill(small_disk)
        with pytest.raises(DiskFull, match="the disk holding the job queue .* is full"):
            for _ in range(2000):  # until the database's own pages run out too
                queue.submit([{**DELAY, "comment": "x" * 4000}])
        last = store.last_id()
        with pytest.raises(errors.EnvironmentProblem, match="is full"):
            queue.submit([DELAY])
        # the running job still records its end, with the space the reserve held
        runner.gate.set()
        await finished(queue, running)
        assert store.load(running)[0]["status"] == "success"
        assert not queue.has_unsaved
        assert store.full and not os.path.exists(store.reserve_path)  # it took the reserve
        # room again: jobs are accepted, and no id was skipped
        filler.unlink()
        assert store.restore_reserve()
        again = queue.submit([DELAY])
        assert again == last + 1
        await finished(queue, again)
    asyncio.run(main())


def test_a_job_is_running_on_the_candidates_before_it_changes_anything(
        tmp_path: Path) -> None:
    """Otherwise a master failover would find it queued there and run it a second time;
    and a job's submission and start travel in one call, its end in another."""
    class Node:
        def __init__(self, name: str) -> None:
            self.uuid = self.name = name

    master = JobStore(str(tmp_path / "m.db"))
    master.set_meta("epoch", "e1")
    replica = JobStore(str(tmp_path / "r.db"))
    applies = 0

    async def send(node: Node, call: str, args: dict[str, Any]) -> Any:
        nonlocal applies
        await asyncio.sleep(0.001)  # a call takes a while: work goes on meanwhile
        if call == "queue_serial":
            return {"epoch": replica.get_meta("epoch"), "seq": replica.seq}
        applies += 1
        return {"applied": replica.apply_changes(args["change"], reset=args["reset"])}

    async def main() -> None:
        nodes = [Node("c1")]
        replicator = QueueReplicator(master, lambda: nodes, ByName(send), wait_limit=5.0)
        master.on_change = replicator.changed
        seen: list[str] = []

        async def runner(job: Job, op: opcodes.OpCode) -> None:
            queue.mark_running(job)
            await queue.wait_durable()
            seen.append(replica.load(job.id)[0]["status"])  # what a new master would find

        queue = JobQueue(master, runner, 5)
        queue.durable = replicator.synced
        replicator.start()
        await replicator.synced()
        before = applies
        jobs = 20
        for _ in range(jobs):
            job_id = queue.submit([DELAY])
            await replicator.synced()
            await finished(queue, job_id)
            await replicator.synced()
        assert seen == ["running"] * jobs
        assert applies - before == 2 * jobs
        await replicator.close()
    asyncio.run(main())
