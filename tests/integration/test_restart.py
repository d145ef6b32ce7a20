"""The master daemon killed with SIGKILL and started again loses no committed change and no
job: the queued jobs (and one still waiting for its locks) run, the one that was running ends
in error with a clear reason."""

from __future__ import annotations

import os
import signal

from integration_kit import VCluster, job_id_of, pid_alive, wait_for


def status(cluster: VCluster, job: int) -> str:
    return cluster.gnt("gnt-job", "list", "--no-headers", "-o", "status", str(job))[1].strip()


def test_sigkill_and_restart(cluster: VCluster) -> None:
    gnt = cluster.gnt
    gnt("gnt-group", "add", "survivor")
    gnt("gnt-cluster", "modify", "--max-running-jobs", "2")
    # one job runs holding node1's lock, one waits for that lock, two wait for a free slot
    running = job_id_of(gnt("gnt-debug", "delay", "--submit", "-n", "node1", "30")[2])
    wait_for(lambda: status(cluster, running) == "running", 30, "the first job to run")
    waiting = job_id_of(gnt("gnt-debug", "delay", "--submit", "-n", "node1", "0.5")[2])
    wait_for(lambda: status(cluster, waiting) == "waiting", 30, "the second job to wait")
    queued = [job_id_of(gnt("gnt-debug", "delay", "--submit", "0.5")[2]) for _ in range(2)]
    assert [status(cluster, job) for job in queued] == ["queued", "queued"]

    pid = cluster.pid("node1", "masterd")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 10, "the master daemon to die")
    rc, _, err = gnt("gnt-node", "list", check=False)
    assert rc != 0 and "master daemon" in err

    out = cluster.up()  # idempotent: starts only what is missing
    assert "Created cluster" not in out and "Added" not in out
    new_pid = cluster.pid("node1", "masterd")
    assert new_pid is not None and new_pid != pid

    # the committed changes are there
    groups = gnt("gnt-group", "list", "--no-headers", "-o", "name")[1].split()
    assert groups == ["default", "survivor"]
    info = gnt("gnt-cluster", "info")[1]
    assert "  maximal number of jobs running simultaneously: 2" in info.splitlines()
    assert cluster.roles() == {"node1": "M", "node2": "C", "node3": "C"}

    # the running job ended in error, saying why; the queued ones run to success
    assert status(cluster, running) == "error"
    details = gnt("gnt-job", "info", str(running))[1]
    assert "master daemon stopped while this job was running" in details
    for job in [waiting, *queued]:
        gnt("gnt-job", "wait", str(job))
        assert status(cluster, job) == "success"
    rc, out, err = gnt("gnt-job", "watch", str(running), check=False)
    assert rc == 1 and "master daemon stopped" in err

    gnt("gnt-cluster", "modify", "--max-running-jobs", "20")
    rc, out, err = gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err
