"""A node daemon killed (SIGKILL) in the middle of ``gnt-instance add`` takes the call's
children with it: the OS create script and what it started die, its loop device is
released, the job ends in error saying the node dropped the connection, and the node
daemon that ``vcluster up`` starts again finds nothing of the old call left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import VCluster, job_id_of, pid_alive, start_cluster, stop_cluster, wait_for

FIXTURE_OS = Path(__file__).resolve().parent.parent / "fixtures" / "os" / "dummy"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    vc = start_cluster(tmp_path_factory.mktemp("noded-kill"))
    try:
        shutil.copytree(FIXTURE_OS, vc.root / "os" / "dummy")
        yield vc
    finally:
        stop_cluster(vc)


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


def test_killed_node_daemon_takes_its_os_script_along(cluster: VCluster,
                                                      tmp_path: Path) -> None:
    record = tmp_path / "record"  # an OS parameter no other process on the machine has
    marker = f"OSP_RECORD={record}".encode()
    _, _, err = cluster.gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=64m",
                            "-o", "dummy+default", "-O", f"flavour=sleep600,record={record}",
                            "-n", "node2", "--no-name-check", "--no-ip-check", "--submit",
                            "vmkilled")
    job = job_id_of(err)

    def script_and_child() -> dict[int, list[str]]:
        found = call_processes(marker)
        return found if ["sleep", "600"] in found.values() else {}
    running = wait_for(script_and_child, 120, "the create script to start its sleep")
    assert isinstance(running, dict)
    assert any(argv[-1].endswith("/os/dummy/create") for argv in running.values()), running
    assert loop_devices_under(cluster.root), "the script got its disk as a loop device"

    noded = cluster.pid("node2", "noded")
    assert noded is not None
    os.kill(noded, signal.SIGKILL)
    wait_for(lambda: not call_processes(marker), 30, "the script and its sleep to die")
    wait_for(lambda: not loop_devices_under(cluster.root), 30, "the loop device to go")

    wait_for(lambda: job_status(cluster, job) not in ("queued", "waiting", "running"), 300,
             "the job to end")
    assert job_status(cluster, job) == "error"
    details = cluster.gnt("gnt-job", "info", str(job))[1]
    assert "node2" in details and "dropped the connection" in details, details
    log = (cluster.node_dir("node2") / "log" / "noded.log").read_text(errors="replace")
    assert "the node daemon died: killed 1 process group(s)" in log

    cluster.up()  # starts what is missing: node2's node daemon
    restarted = cluster.pid("node2", "noded")
    assert restarted is not None and restarted != noded
    assert not call_processes(marker)
    assert not loop_devices_under(cluster.root)
    # the new daemon's records: its own directory only, with nothing in it
    records = cluster.node_dir("node2") / "run" / "children"
    [mine] = os.listdir(records)
    assert mine.startswith(f"{restarted}-") and os.listdir(records / mine) == []
    out = cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "name")[1]
    assert "vmkilled" not in out.split()
