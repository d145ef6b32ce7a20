"""An add cut short leaves nothing behind: its disks are undone when the master daemon that
died during it starts again, or, when the node was the one that died, once the node is back.
``gnt-cluster verify`` names what is left meanwhile, and the name can be used again."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import VCluster, job_id_of, os_cluster, wait_for


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    with os_cluster(tmp_path_factory.mktemp("interrupted")) as vc:
        yield vc


def disk_files(cluster: VCluster, name: str) -> list[Path]:
    return sorted(p for p in (cluster.root / "nodes").rglob("*.file.disk*")
                  if p.parent.name == name)


def job_info(cluster: VCluster, job: int) -> str:
    return cluster.gnt("gnt-job", "info", str(job))[1]


def status(cluster: VCluster, job: int) -> str:
    return cluster.gnt("gnt-job", "list", "--no-headers", "-o", "status", str(job))[1].strip()


def start_slow_add(cluster: VCluster, name: str, node: str) -> int:
    """An add whose OS create script sleeps; returns once its disk exists and the script
    runs."""
    _, _, err = cluster.gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=64m",
                            "-o", "dummy+default", "-O", "flavour=sleep60", "-n", node,
                            "--no-name-check", "--no-ip-check", "--submit", name)
    job = job_id_of(err)
    wait_for(lambda: "Running the OS create script" in job_info(cluster, job), 60,
             "the create script to run")
    assert len(disk_files(cluster, name)) == 1
    return job


def orphans(cluster: VCluster) -> list[str]:
    out = cluster.gnt("gnt-cluster", "verify", check=False)[1]
    return [line for line in out.splitlines() if "ORPHAN" in line]


def test_master_killed_during_an_add(cluster: VCluster) -> None:
    job = start_slow_add(cluster, "vm1", "node1")
    masterd = cluster.pid("node1", "masterd")
    assert masterd is not None
    os.kill(masterd, signal.SIGKILL)
    cluster.up()  # the master daemon starts again and fails the job that was running

    wait_for(lambda: status(cluster, job) == "error", 30, "the job to end")
    wait_for(lambda: not disk_files(cluster, "vm1"), 30, "the disk to be removed")
    info = job_info(cluster, job)
    assert "the master daemon stopped while this job was running" in info
    assert "Cleaned up after the job: undid disk disk/0 of vm1 on node1" in info
    assert "vm1" not in cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "name")[1]
    assert orphans(cluster) == []
    cluster.gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=64m", "-o",
                "dummy+default", "-n", "node1", "--no-name-check", "--no-ip-check", "vm1")
    assert len(disk_files(cluster, "vm1")) == 1


def test_node_killed_during_an_add(cluster: VCluster) -> None:
    """The node daemon dies with the OS script: the failed add can't remove its disk there,
    so the disk stays recorded in the job and goes once the node answers again."""
    job = start_slow_add(cluster, "vm2", "node2")
    noded = cluster.pid("node2", "noded")
    assert noded is not None
    os.kill(noded, signal.SIGKILL)
    wait_for(lambda: status(cluster, job) == "error", 60, "the job to end")
    info = job_info(cluster, job)
    assert "could not undo disk disk/0 of vm2 on node2" in info, info
    assert len(disk_files(cluster, "vm2")) == 1

    cluster.up()  # node2's node daemon is back
    wait_for(lambda: orphans(cluster) == [] and not disk_files(cluster, "vm2"), 90,
             "the master to undo what the add left on node2")
    assert "Cleaned up after the job: undid disk disk/0 of vm2 on node2" in \
        job_info(cluster, job)
