"""Jobs: submit, list, info, watch, cancel, the queue's drain flag, and the lock table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import Gnt, VCluster, job_id_of, wait_for


def job_status(gnt: Gnt, job_id: int) -> str:
    return gnt("gnt-job", "list", "--no-headers", "-o", "status", str(job_id))[1].strip()


def wait_status(gnt: Gnt, job_id: int, wanted: str, timeout: float = 30.0) -> None:
    wait_for(lambda: job_status(gnt, job_id) == wanted, timeout, f"job {job_id} {wanted}")


def job_count(gnt: Gnt) -> int:
    return len(gnt("gnt-job", "list", "--no-headers", "-o", "id")[1].split())


@pytest.fixture
def one_job_at_a_time(gnt: Gnt) -> Iterator[None]:
    gnt("gnt-cluster", "modify", "--max-running-jobs", "1")
    assert "maximal number of jobs running simultaneously: 1" in gnt("gnt-cluster", "info")[1]
    try:
        yield
    finally:
        gnt("gnt-cluster", "modify", "--max-running-jobs", "20")


def test_delay_zero_succeeds(gnt: Gnt) -> None:
    assert gnt("gnt-debug", "delay", "0") == (0, "", "")
    lines = gnt("gnt-job", "list")[1].splitlines()
    assert lines[0].split() == ["ID", "Status", "Summary"]
    assert lines[-1].split()[1:] == ["success", "TEST_DELAY(0.0)"]


def test_submit_list_info_watch(gnt: Gnt) -> None:
    start = time.monotonic()
    rc, out, err = gnt("gnt-debug", "delay", "--submit", "5")
    assert time.monotonic() - start < 3.0, "--submit returns at once"
    assert out == ""
    assert err.startswith("JobID: ") and err.count("\n") == 1  # on stderr, like Ganeti
    job = job_id_of(err)
    wait_status(gnt, job, "running")
    row = gnt("gnt-job", "list", "--no-headers", str(job))[1].split()
    assert row == [str(job), "running", "TEST_DELAY(5.0)"]
    info = gnt("gnt-job", "info", str(job))[1].splitlines()
    assert info[0] == f"- Job ID: {job}"  # Ganeti's layout: a list of job documents
    assert "  Status: running" in info
    assert "    - Opcode: OP_TEST_DELAY" in info
    assert "  Processing end:   unknown (None)" in info

    rc, out, err = gnt("gnt-job", "watch", str(job))
    assert out.splitlines()[0] == f"Output from job {job} follows"
    assert job_status(gnt, job) == "success"
    assert time.monotonic() - start >= 5.0
    info = gnt("gnt-job", "info", str(job))[1].splitlines()
    assert "  Status: success" in info
    assert any(line.startswith("  Processing end:   2") for line in info)

    # --print-jobid adds the bare id on stdout, also with --submit
    rc, out, err = gnt("gnt-debug", "delay", "--submit", "--print-jobid", "0")
    assert out == f"{job_id_of(err)}\n"
    gnt("gnt-job", "wait", out.strip())

    rc, out, err = gnt("gnt-job", "info", "99999", check=False)
    assert rc == 1 and "unknown_entity" in err and "99999" in err


def test_cancel_queued_and_finished_jobs(gnt: Gnt, one_job_at_a_time: None) -> None:
    running = job_id_of(gnt("gnt-debug", "delay", "--submit", "3600")[2])
    queued = job_id_of(gnt("gnt-debug", "delay", "--submit", "1")[2])
    wait_status(gnt, running, "running")
    assert job_status(gnt, queued) == "queued"

    rc, out, err = gnt("gnt-job", "cancel", str(queued))
    assert out == f"Job {queued} canceled\n"
    assert job_status(gnt, queued) == "canceled"
    info = gnt("gnt-job", "info", str(queued))[1]
    assert "  Status: canceled" in info.splitlines()

    # a running delay changes nothing: it may be canceled (an hour-long one must not keep
    # its slot of the queue until it ends)
    rc, out, err = gnt("gnt-job", "cancel", str(running))
    assert out == f"Job {running} will be canceled\n"
    wait_status(gnt, running, "canceled")
    after = job_id_of(gnt("gnt-debug", "delay", "--submit", "0")[2])
    gnt("gnt-job", "wait", str(after))
    assert job_status(gnt, after) == "success"
    for job, status in ((running, "canceled"), (queued, "canceled"), (after, "success")):
        rc, out, err = gnt("gnt-job", "cancel", str(job), check=False)
        assert rc == 1
        assert out == f"Job {job} is no longer running (status {status})\n"
        assert job_status(gnt, job) == status


def test_queue_drain(gnt: Gnt) -> None:
    assert gnt("gnt-cluster", "queue", "info")[1] == "The drain flag is unset\n"
    assert gnt("gnt-cluster", "queue", "drain") == (0, "", "")
    try:
        assert gnt("gnt-cluster", "queue", "info")[1] == "The drain flag is set\n"
        jobs = job_count(gnt)
        for extra in ([], ["--submit"]):
            rc, out, err = gnt("gnt-debug", "delay", *extra, "0", check=False)
            assert rc == 1 and out == ""
            lines = err.strip().splitlines()
            assert len(lines) == 1 and "drained" in lines[0], err
            assert lines[0].startswith("Failure: wrong_state: ")
        assert job_count(gnt) == jobs, "no job was created"
    finally:
        gnt("gnt-cluster", "queue", "undrain")
    assert gnt("gnt-cluster", "queue", "info")[1] == "The drain flag is unset\n"
    assert gnt("gnt-cluster", "queue", "undrain") == (0, "", "")  # twice is fine
    assert gnt("gnt-debug", "delay", "0")[0] == 0


def lock_rows(gnt: Gnt) -> dict[str, list[str]]:
    out = gnt("gnt-debug", "locks", "--separator=|")[1]
    lines = out.splitlines()
    assert lines[0] == "Name|Mode|Owner|Pending"
    return {line.split("|")[0]: line.split("|")[1:] for line in lines[1:]}


def test_debug_locks(cluster: VCluster, gnt: Gnt) -> None:
    lines = gnt("gnt-debug", "locks")[1].splitlines()
    assert lines[0].split() == ["Name", "Mode", "Owner", "Pending"]
    assert "node/node1" not in lock_rows(gnt)

    # a delay on node1 holds node1's lock; a second one waits for it
    holder = job_id_of(gnt("gnt-debug", "delay", "--submit", "-n", "node1", "3")[2])
    wait_status(gnt, holder, "running")
    waiter = job_id_of(gnt("gnt-debug", "delay", "--submit", "-n", "node1", "0.1")[2])
    wait_status(gnt, waiter, "waiting")
    rows = lock_rows(gnt)
    assert rows["node/node1"] == ["exclusive", f"job {holder}", f"exclusive:job {waiter}"]
    info = gnt("gnt-job", "info", str(waiter))[1]
    assert f"  Waiting for: node/node1 held by job {holder}" in info.splitlines()
    # a job waiting for a lock can be canceled, and leaves the queue of the lock
    doomed = job_id_of(gnt("gnt-debug", "delay", "--submit", "-n", "node1", "0.1")[2])
    wait_status(gnt, doomed, "waiting")
    assert lock_rows(gnt)["node/node1"][2] == f"exclusive:job {waiter},job {doomed}"
    assert gnt("gnt-job", "cancel", str(doomed))[1] == f"Job {doomed} will be canceled\n"
    wait_status(gnt, doomed, "canceled")
    assert lock_rows(gnt)["node/node1"][2] == f"exclusive:job {waiter}"
    # --no-locks does not wait
    free = job_id_of(gnt("gnt-debug", "delay", "--submit", "--no-locks", "-n", "node1",
                         "0.1")[2])
    gnt("gnt-job", "wait", str(free))
    assert job_status(gnt, waiter) == "waiting"

    gnt("gnt-job", "wait", str(waiter))
    assert job_status(gnt, holder) == "success"
    assert job_status(gnt, waiter) == "success"
    assert "node/node1" not in lock_rows(gnt)


def test_large_submission_over_the_socket(gnt: Gnt, tmp_path: Path) -> None:
    """2000 jobs in one SubmitManyJobs request (well over 64 KiB) all run."""
    ops = tmp_path / "delay.json"
    ops.write_text('[{"OP_ID": "OP_TEST_DELAY", "duration": 0}]')
    before = job_count(gnt)
    rc, out, err = gnt("gnt-debug", "submit-job", "--each", "--job-repeat", "2000",
                       "--timing-stats", str(ops))
    assert rc == 0, err
    assert "Submitted 2000 jobs" in out
    assert job_count(gnt) == before + 2000


def test_bad_parameters_are_refused_before_a_job_exists(gnt: Gnt) -> None:
    before = job_count(gnt)
    rc, out, err = gnt("gnt-cluster", "modify", "-B", "vcpus=x", check=False)
    assert rc != 0
    assert "'vcpus'" in err and "'x'" in err and err.count("\n") == 1
    assert job_count(gnt) == before  # refused at submission: no error job left behind
