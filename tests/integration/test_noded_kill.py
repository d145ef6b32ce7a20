"""A node daemon killed (SIGKILL) in the middle of ``gnt-instance add`` takes the call's
children with it: the OS create script and what it started die, its loop device is
released, the job ends in error saying the node dropped the connection, and the node
daemon that ``vcluster up`` starts again finds nothing of the old call left."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import (
    VCluster,
    job_id_of,
    os_cluster,
    pid_alive,
    wait_for,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    with os_cluster(tmp_path_factory.mktemp("noded-kill")) as vc:
        yield vc


def call_processes(marker: bytes) -> dict[int, list[str]]:
    """pid -> argv of every live process whose environment holds marker (the OS script of
    the call and whatever it started inherit the OS parameters as OSP_* variables)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in environ and pid_alive(int(entry)):
            found[int(entry)] = argv.split("\0")[:-1]
    return found


def loop_devices_under(root: Path) -> list[str]:
    """The loop devices attached to a file of this cluster."""
    out = subprocess.run(["losetup", "--list", "--noheadings", "-O", "NAME,BACK-FILE"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if str(root) in line]


def job_status(cluster: VCluster, job: int) -> str:
    return cluster.gnt("gnt-job", "list", "--no-headers", "-o", "status", str(job))[1].strip()


def sentinel_of(cluster: VCluster, node: str) -> int:
    """The pid of the sentinel of node's node daemon, found by its command line."""
    records = str(cluster.node_dir(node) / "run" / "children") + "/"
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "cardume-noded-sentinel" in argv and records in argv and pid_alive(int(entry)):
            return int(entry)
    raise AssertionError(f"no sentinel runs for {node}'s node daemon")


def noded_log(cluster: VCluster, node: str) -> str:
    return (cluster.node_dir(node) / "log" / "noded.log").read_text(errors="replace")


def start_add(cluster: VCluster, name: str, record: Path) -> tuple[int, dict[int, list[str]]]:
    """Submit an add on node2 whose create script sleeps; its job id and the processes of
    the call once the script's sleep runs."""
    marker = f"OSP_RECORD={record}".encode()
    _, _, err = cluster.gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=64m",
                            "-o", "dummy+default", "-O", f"flavour=sleep600,record={record}",
                            "-n", "node2", "--no-name-check", "--no-ip-check", "--submit",
                            name)

    def script_and_child() -> dict[int, list[str]]:
        found = call_processes(marker)
        return found if ["sleep", "600"] in found.values() else {}
    running = wait_for(script_and_child, 120, "the create script to start its sleep")
    assert isinstance(running, dict)
    assert any(argv[-1].endswith("/os/dummy/create") for argv in running.values()), running
    assert loop_devices_under(cluster.root), "the script got its disk as a loop device"
    return job_id_of(err), running


def check_failed_job(cluster: VCluster, job: int) -> None:
    wait_for(lambda: job_status(cluster, job) not in ("queued", "waiting", "running"), 300,
             "the job to end")
    assert job_status(cluster, job) == "error"
    details = cluster.gnt("gnt-job", "info", str(job))[1]
    assert "node2" in details and "dropped the connection" in details, details


def check_nothing_left(cluster: VCluster, record: Path, name: str, killed: int) -> None:
    """After vcluster up: a new node daemon on node2, and nothing of the old call."""
    restarted = cluster.pid("node2", "noded")
    assert restarted is not None and restarted != killed
    assert not call_processes(f"OSP_RECORD={record}".encode())
    assert not loop_devices_under(cluster.root)
    # the new daemon's records: its own directory only, with nothing in it
    records = cluster.node_dir("node2") / "run" / "children"
    [mine] = os.listdir(records)
    assert mine.startswith(f"{restarted}-") and os.listdir(records / mine) == []
    out = cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "name")[1]
    assert name not in out.split()


def test_killed_node_daemon_takes_its_os_script_along(cluster: VCluster,
                                                      tmp_path: Path) -> None:
    record = tmp_path / "record"  # an OS parameter no other process on the machine has
    job, _ = start_add(cluster, "vmkilled", record)
    noded = cluster.pid("node2", "noded")
    assert noded is not None
    os.kill(noded, signal.SIGKILL)
    marker = f"OSP_RECORD={record}".encode()
    wait_for(lambda: not call_processes(marker), 30, "the script and its sleep to die")
    wait_for(lambda: not loop_devices_under(cluster.root), 30, "the loop device to go")
    wait_for(lambda: "the node daemon died: killed 1 process group(s) and detached 1 loop "
             "device(s)" in noded_log(cluster, "node2"), 30, "the sentinel's log line")
    check_failed_job(cluster, job)
    cluster.up()  # starts what is missing: node2's node daemon
    check_nothing_left(cluster, record, "vmkilled", noded)


def test_without_its_sentinel_the_next_node_daemon_kills_what_is_left(
        cluster: VCluster, tmp_path: Path) -> None:
    """Belt and braces: the sentinel was killed too, so the call's script outlives the
    daemon, until the node daemon starts again and sweeps what its predecessor recorded."""
    record = tmp_path / "record"
    job, running = start_add(cluster, "vmorphan", record)
    noded = cluster.pid("node2", "noded")
    assert noded is not None
    sentinel = sentinel_of(cluster, "node2")
    os.kill(sentinel, signal.SIGKILL)
    wait_for(lambda: not pid_alive(sentinel), 30, "the sentinel to die")
    os.kill(noded, signal.SIGKILL)
    wait_for(lambda: not pid_alive(noded), 30, "the node daemon to die")
    check_failed_job(cluster, job)
    assert all(pid_alive(pid) for pid in running), "nothing killed the call's processes"
    assert loop_devices_under(cluster.root)

    cluster.up()
    assert "left by a previous node daemon" in noded_log(cluster, "node2")
    marker = f"OSP_RECORD={record}".encode()
    wait_for(lambda: not call_processes(marker), 30, "the script and its sleep to die")
    check_nothing_left(cluster, record, "vmorphan", noded)
