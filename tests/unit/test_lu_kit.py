"""The unit tests' logical-unit harness itself (tests/unit/lu_kit.py): an opcode runs as a job
of the real queue, holding its locks in the real lock manager, and its node calls reach the
node daemons' real handlers; what the master daemon refuses at submission, the kit refuses
too."""

from __future__ import annotations

import lu_kit as kit_module
import pytest
from fakes_kit import wait_until

from cardume import errors


def delay(**values: object) -> dict[str, object]:
    return {"OP_ID": "OP_TEST_DELAY", "on_master": False, "on_nodes": ["node1"],
            "no_locks": False, **values}


def test_an_opcode_runs_as_a_job_that_calls_its_node(lu_kit: kit_module.LuKit) -> None:
    assert lu_kit.run("OP_TEST_DELAY", **delay(duration=0, repeat=1)) is None
    job = lu_kit.last_job
    assert job is not None and job.status == "success" and job.op_status == ["success"]
    assert [(node, name) for node, name, _ in lu_kit.asked if name == "test_delay"] == [
        ("node1", "test_delay"), ("node1", "test_delay")]
    assert [lock for lock in lu_kit.locks.snapshot() if lock.owners or lock.pending] == []


def test_bad_input_is_refused_before_a_job_exists(lu_kit: kit_module.LuKit) -> None:
    before = lu_kit.queue.job_ids()
    with pytest.raises(errors.WrongInput, match="duration"):
        lu_kit.run("OP_TEST_DELAY", **delay(duration=-1))
    assert lu_kit.queue.job_ids() == before


def test_a_silent_node_fails_the_job_naming_it(lu_kit: kit_module.LuKit) -> None:
    lu_kit.transport.down.add("node1")
    with pytest.raises(errors.ExecError,
                       match="delay failed on node node1: node node1: connection refused"):
        lu_kit.run("OP_TEST_DELAY", **delay(duration=0))
    assert lu_kit.last_job is not None and lu_kit.last_job.status == "error"


def test_a_job_waits_for_the_node_lock_another_holds(lu_kit: kit_module.LuKit) -> None:
    queue = lu_kit.queue

    async def two_jobs() -> tuple[str, str]:
        first = queue.submit([delay(duration=3600, interruptible=True)])
        await wait_until(lambda: queue.get(first).status == "running", "the first job running")
        second = queue.submit([delay(duration=0)])
        await wait_until(lambda: queue.get(second).status == "waiting",
                         "the second job waiting for node1's lock")
        assert queue.cancel(first)[0]
        await wait_until(lambda: queue.get(second).finalized, "the second job's end")
        return queue.get(first).status, queue.get(second).status

    assert lu_kit.sync(two_jobs()) == ("canceled", "success")
