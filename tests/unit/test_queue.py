"""The job queue: order, concurrency, cancelation, logs, and recovery after a crash."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from fakes_kit import wait_until

from cardume import errors, opcodes
from cardume.jobs.queue import Job, JobQueue
from cardume.jobs.store import JobStore

DELAY = {"OP_ID": "OP_TEST_DELAY", "duration": 0}


class Runner:
    """Runs opcodes by recording them; a gate lets a test hold jobs in 'running'."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.gate: asyncio.Event | None = None
        self.queue: JobQueue | None = None

    async def __call__(self, job: Job, op: opcodes.OpCode) -> Any:
        assert self.queue is not None
        self.queue.mark_running(job)
        self.order.append(job.id)
        self.queue.feedback(job, f"running {op.OP_ID}")
        if self.gate is not None:
            await self.gate.wait()
        if op.comment == "fail":
            raise errors.ExecError("it failed on purpose")
        return getattr(op, "duration", None)


def _queue(path: str, max_running: int = 20) -> tuple[JobQueue, Runner]:
    runner = Runner()
    queue = JobQueue(JobStore(path), runner, max_running)
    runner.queue = queue
    return queue, runner


async def _finish(queue: JobQueue, job_id: int) -> Job:
    while not queue.get(job_id).finalized:
        await queue.wait_for_change(job_id, queue.get(job_id).status, 10**9, 1.0)
    return queue.get(job_id)


def test_jobs_run_and_keep_results_and_logs(tmp_path: os.PathLike[str]) -> None:
    async def main() -> None:
        queue, _ = _queue(os.path.join(tmp_path, "q.db"))
        ok = queue.submit([DELAY, {**DELAY, "duration": 2}])
        bad = queue.submit([{**DELAY, "comment": "fail"}, DELAY])
        job = await _finish(queue, ok)
        assert job.status == "success" and job.op_result == [0, 2]
        assert [m for _, _, _, m in job.log] == ["running OP_TEST_DELAY"] * 2
        failed = await _finish(queue, bad)
        assert failed.status == "error"
        assert failed.op_status == ["error", "error"]
        assert failed.op_result[0]["message"] == "it failed on purpose"
    asyncio.run(main())


def test_priority_then_id_order_with_one_slot(tmp_path: os.PathLike[str]) -> None:
    async def main() -> None:
        queue, runner = _queue(os.path.join(tmp_path, "q.db"), max_running=1)
        runner.gate = asyncio.Event()
        first = queue.submit([DELAY])
        low = queue.submit([{**DELAY, "priority": 10}])
        high = queue.submit([{**DELAY, "priority": -10}])
        await wait_until(lambda: runner.order == [first], "first job running")
        runner.gate.set()
        for job_id in (first, low, high):
            await _finish(queue, job_id)
        assert runner.order == [first, high, low]
    asyncio.run(main())


def test_cancel_queued_job_and_refuse_finished(tmp_path: os.PathLike[str]) -> None:
    async def main() -> None:
        queue, runner = _queue(os.path.join(tmp_path, "q.db"), max_running=1)
        runner.gate = asyncio.Event()
        running = queue.submit([{"OP_ID": "OP_CLUSTER_REDIST_CONF"}])
        queued = queue.submit([DELAY])
        await wait_until(lambda: queue.get(running).status == "running", "job running")
        assert queue.cancel(queued) == (True, f"Job {queued} canceled")
        ok, message = queue.cancel(running)
        assert not ok and "already running" in message
        runner.gate.set()
        await _finish(queue, running)
        assert queue.get(queued).status == "canceled"
        ok, message = queue.cancel(running)
        assert not ok and "no longer running" in message
        assert runner.order == [running]
    asyncio.run(main())


def test_drained_queue_refuses_jobs(tmp_path: os.PathLike[str]) -> None:
    async def main() -> None:
        queue, _ = _queue(os.path.join(tmp_path, "q.db"))
        queue.set_drained(True)
        with pytest.raises(errors.WrongState, match="drained"):
            queue.submit([DELAY])
        reopened, _ = _queue(os.path.join(tmp_path, "q.db"))
        assert reopened.drained
    asyncio.run(main())


def test_recovery_after_crash(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "q.db")

    async def before_crash() -> tuple[int, int]:
        queue, runner = _queue(path, max_running=1)
        runner.gate = asyncio.Event()  # never opened: the master "dies" mid-job
        running = queue.submit([DELAY])
        queued = queue.submit([DELAY])
        await wait_until(lambda: queue.get(running).status == "running", "job running")
        assert queue.get(queued).status == "queued"
        queue._closing = True  # as after SIGKILL: nothing more is scheduled or written
        return running, queued

    running, queued = asyncio.run(before_crash())

    async def after_restart() -> None:
        queue, runner = _queue(path)
        assert queue.recover() == (1, 1)
        lost = queue.get(running)
        assert lost.status == "error"
        assert "master daemon stopped" in lost.op_result[0]["message"]
        assert (await _finish(queue, queued)).status == "success"
        assert queue.submit([DELAY]) == queued + 1  # ids keep growing
    asyncio.run(after_restart())


def test_unknown_job_and_bad_opcodes(tmp_path: os.PathLike[str]) -> None:
    async def main() -> None:
        queue, _ = _queue(os.path.join(tmp_path, "q.db"))
        with pytest.raises(errors.UnknownEntity, match="job 42 does not exist"):
            queue.get(42)
        with pytest.raises(errors.WrongInput):
            queue.submit([])
        results = queue.submit_many([[DELAY], [{"OP_ID": "OP_NOPE"}]])
        assert results[0][0] is True and results[1][0] is False
        assert "OP_NOPE" in results[1][1]
    asyncio.run(main())


def test_autoarchive_hides_old_finished_jobs_only(tmp_path: os.PathLike[str]) -> None:
    async def main() -> None:
        queue, runner = _queue(os.path.join(tmp_path, "q.db"), max_running=1)
        done = queue.submit([DELAY])
        await _finish(queue, done)
        runner.gate = asyncio.Event()
        pending = queue.submit([DELAY])
        await wait_until(lambda: queue.get(pending).status == "running", "job running")
        assert queue.autoarchive(3600) == 0  # finished too recently
        assert queue.autoarchive(-1) == 1
        assert queue.job_ids() == [pending]
        assert queue.get(done).status == "success"  # archived jobs stay readable by id
        runner.gate.set()
        await _finish(queue, pending)
    asyncio.run(main())


def test_validator_refuses_bad_opcodes_before_a_job_exists(tmp_path: os.PathLike[str]) -> None:
    def validator(op: opcodes.OpCode) -> None:
        if op.duration > 100:
            raise errors.WrongInput(f"duration {op.duration} is too long")

    async def main() -> None:
        queue = JobQueue(JobStore(os.path.join(tmp_path, "q.db")), Runner(), 5,
                         validator=validator)
        with pytest.raises(errors.WrongInput, match="duration 500 is too long"):
            queue.submit([{**DELAY, "duration": 500}])
        assert queue.job_ids() == []
    asyncio.run(main())


def test_recovery_requeues_a_job_that_only_waited_for_locks(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "q.db")

    async def before_crash() -> int:
        queue, runner = _queue(path)

        async def never_gets_locks(job: Job, op: opcodes.OpCode) -> Any:
            await asyncio.Event().wait()

        queue.runner = never_gets_locks
        job_id = queue.submit([DELAY, DELAY])
        await wait_until(lambda: queue.get(job_id).status == "waiting", "job waiting")
        queue._closing = True
        return job_id

    job_id = asyncio.run(before_crash())

    async def after_restart() -> None:
        queue, runner = _queue(path)
        assert queue.recover() == (1, 0)
        job = await _finish(queue, job_id)
        assert job.status == "success" and runner.order == [job_id, job_id]
    asyncio.run(after_restart())


def test_interrupted_migration_names_the_cleanup(tmp_path: os.PathLike[str]) -> None:
    """A migration cut short by the master's death may have left the guest on either node:
    the error says which command finds it."""
    path = os.path.join(tmp_path, "q.db")
    migrate = {"OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": "vm1", "target_node": "node2"}

    async def before_crash() -> int:
        queue, runner = _queue(path, max_running=1)
        runner.gate = asyncio.Event()
        job = queue.submit([migrate])
        await wait_until(lambda: queue.get(job).status == "running", "job running")
        queue._closing = True
        return job

    job = asyncio.run(before_crash())

    async def after_restart() -> None:
        queue, _ = _queue(path)
        queue.recover()
        result = queue.get(job).op_result[0]
        assert "master daemon stopped" in result["message"]
        assert result["hint"] == "gnt-instance migrate --cleanup -n node2 vm1 finds where it runs"
    asyncio.run(after_restart())


def test_a_running_delay_can_be_canceled(tmp_path: os.PathLike[str]) -> None:
    """A delay changes nothing, so a running one may always be canceled: a long one must
    not hold a running-job slot until it ends."""
    async def main() -> None:
        queue, runner = _queue(os.path.join(tmp_path, "q.db"), max_running=1)
        runner.gate = asyncio.Event()
        running = queue.submit([{**DELAY, "duration": 86400}])
        waiting = queue.submit([DELAY])
        await wait_until(lambda: queue.get(running).status == "running", "job running")
        assert queue.cancel(running) == (True, f"Job {running} will be canceled")
        await _finish(queue, running)
        assert queue.get(running).status == "canceled"
        runner.gate.set()
        await _finish(queue, waiting)
        assert queue.get(waiting).status == "success"
    asyncio.run(main())
