"""The job queue survives master failover: the candidates hold replicas of it, a new master
takes it over (queued jobs run there exactly once, running ones end as errors with the
reason), job ids are never reused, and a former master that comes back holds no queue of
its own (it neither runs its old jobs nor starts a master daemon)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
from collections.abc import Iterator

import pytest
from integration_kit import (
    BIN,
    VCluster,
    job_id_of,
    os_cluster,
    run,
    wait_for,
)


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    """A cluster of its own per test: each one moves the master role around."""
    names = {f"vm{index}": f"127.0.9.{index}" for index in range(1, 10)}
    with os_cluster(tmp_path_factory.mktemp("qfail"), names) as vc:
        vc.gnt("gnt-cluster", "modify", "--max-running-jobs", "1")
        yield vc


def jobs(cluster: VCluster, node: str | None = None) -> dict[int, str]:
    out = cluster.gnt("gnt-job", "list", "--no-headers", "-o", "id,status", node=node)[1]
    return {int(line.split()[0]): line.split()[1] for line in out.splitlines()}


def status(cluster: VCluster, job: int) -> str:
    return jobs(cluster).get(job, "missing")


def instances(cluster: VCluster) -> list[str]:
    return cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "name")[1].split()


def add_instance(cluster: VCluster, name: str, node: str) -> None:
    cluster.gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default", "--no-start",
                "-n", node, name)


def submit(cluster: VCluster, *args: str) -> int:
    return job_id_of(cluster.gnt(*args, "--submit")[2])


def failover(cluster: VCluster, node: str, *extra: str) -> list[str]:
    rc, out, err = cluster.gnt("gnt-cluster", "master-failover", *extra, node=node)
    assert out.splitlines()[-1] == f"Node {node} is now the master", out + err
    wait_for(lambda: cluster.master() == node, 20, f"{node} to be master")
    return out.splitlines()


def queue_rows(cluster: VCluster, node: str) -> dict[int, str]:
    """What a node's own copy of the queue holds (its file, read as root does)."""
    path = cluster.node_dir(node) / "queue.db"
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT id, status FROM jobs"))


def error_of(cluster: VCluster, job: int) -> str:
    return cluster.gnt("gnt-job", "info", str(job))[1]


def test_failover_takes_the_queue_over_and_fail_back_runs_nothing_twice(
        cluster: VCluster) -> None:
    gnt = cluster.gnt
    add_instance(cluster, "vm1", "node1")
    finished = job_id_of(gnt("gnt-debug", "delay", "--submit", "0")[2])
    gnt("gnt-job", "wait", str(finished))
    running = submit(cluster, "gnt-debug", "delay", "3600")
    wait_for(lambda: status(cluster, running) == "running", 30, "the long delay to run")
    remove = submit(cluster, "gnt-instance", "remove", "-f", "vm1")
    queued = submit(cluster, "gnt-debug", "delay", "0")
    assert status(cluster, remove) == "queued" and status(cluster, queued) == "queued"
    before = jobs(cluster)
    # every job the master acknowledged is already on the candidates
    for node in ("node2", "node3"):
        assert set(queue_rows(cluster, node)) >= set(before), node

    lines = failover(cluster, "node2")
    assert "Took over the job queue (from node1; 3 unfinished job(s))" in lines

    # the queued jobs run on the new master, once; the running one ends with the reason
    for job in (remove, queued):
        gnt("gnt-job", "wait", str(job))
    after = jobs(cluster)
    assert after[finished] == "success"
    assert after[remove] == "success" and after[queued] == "success"
    assert after[running] == "error"
    assert "the master role moved from node1 to node2 while this job was running" in \
        error_of(cluster, running)
    assert "vm1" not in instances(cluster)
    # ids go on from the highest ever given; none is handed out twice
    fresh = job_id_of(gnt("gnt-debug", "delay", "--submit", "0")[2])
    assert fresh == max(before) + 1
    gnt("gnt-job", "wait", str(fresh))

    # a new instance under the old name: the remove must never run again
    add_instance(cluster, "vm1", "node2")
    settled = jobs(cluster)
    # the old master is a candidate again: its copy is the new master's, not its own
    wait_for(lambda: queue_rows(cluster, "node1") == settled, 20,
             "node1's copy of the queue to be the new master's")

    lines = failover(cluster, "node1")
    assert "Took over the job queue (from node2; 0 unfinished job(s))" in lines
    assert "vm1" in instances(cluster)
    assert jobs(cluster) == settled
    again = job_id_of(gnt("gnt-debug", "delay", "--submit", "0")[2])
    assert again == max(settled) + 1
    gnt("gnt-job", "wait", str(again))
    assert status(cluster, again) == "success"


def test_dead_master_then_failover_without_voting(cluster: VCluster) -> None:
    """The master's machine dies with jobs queued; node2 takes over from its replica; when
    node1 comes back it refuses to be master and its old copy of the queue is replaced."""
    gnt = cluster.gnt
    add_instance(cluster, "vm2", "node3")
    running = submit(cluster, "gnt-debug", "delay", "3600")
    wait_for(lambda: status(cluster, running) == "running", 30, "the long delay to run")
    remove = submit(cluster, "gnt-instance", "remove", "-f", "vm2")
    before = jobs(cluster)
    for daemon in ("masterd", "noded"):  # the machine is gone: nothing answers there
        pid = cluster.pid("node1", daemon)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: cluster.pid("node1", "noded") is None, 10, "node1 to be down")

    lines = failover(cluster, "node2", "--no-voting", "--yes-do-it")
    took = next(line for line in lines if line.startswith("Took over the job queue"))
    assert re.fullmatch(r"Took over the job queue \((from node3|kept this node's own copy); "
                        r"2 unfinished job\(s\)\)", took), took
    gnt("gnt-job", "wait", str(remove), node="node2")
    after = jobs(cluster, node="node2")
    assert set(after) == set(before)
    assert after[remove] == "success" and after[running] == "error"
    assert "vm2" not in cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "name",
                                    node="node2")[1].split()
    # node1's own file still says the remove is queued: it must never run from there
    assert queue_rows(cluster, "node1")[remove] == "queued"

    cluster.up()  # brings node1's node daemon back, and no master daemon there
    assert cluster.pid("node1", "masterd") is None
    node1 = cluster.node_dir("node1")
    rc, out, err = cluster.gnt("gnt-cluster", "getmaster", node="node2")
    assert out.strip() == "node2"
    # started by hand (an init script at boot would), it refuses: node2 is master now
    rc, out, err = run([str(BIN / "cardume-masterd"), "--root", str(node1)], cluster.env(),
                       check=False, timeout=60)
    assert rc != 0
    assert "this node (node1) is no longer the master" in err, err
    assert cluster.pid("node1", "masterd") is None
    # the new master tells node1 who is master (its next redistribution), and node1's copy
    # of the queue becomes the new master's: the stale 'queued' remove is gone
    gnt("gnt-cluster", "redist-conf", node="node2")
    wait_for(lambda: queue_rows(cluster, "node1").get(remove) == "success", 30,
             "node1's copy of the queue to be replaced")
    # the redist-conf job's own end reaches node1's copy a moment after gnt-job shows it
    wait_for(lambda: queue_rows(cluster, "node1") == jobs(cluster, node="node2"), 30,
             "node1's copy of the queue to equal the master's")
