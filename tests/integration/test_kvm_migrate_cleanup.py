"""``gnt-instance migrate --cleanup`` after a live migration of a kvm instance was
interrupted by the death of the master daemon, as an admin meets it: the master daemon is
SIGKILLed while QEMU streams the guest's memory to the target (slowed down with a low
``kvm:migration_bandwidth``), started again, and ``--cleanup`` has to find where the guest
really runs, keep that one QEMU and record the right primary node.

What the QEMU migration does when the master dies decides the case:

* the node daemon that drives it (or QEMU itself, when that daemon dies too) goes on, and
  the migration completes: the guest runs on the target while the configuration still
  names the source;
* ``--cleanup`` comes while the migration is still streaming: it is cancelled, the target
  (which never ran the guest) is killed, and the guest runs on where it was;
* a non-live migration leaves the guest paused on the source until the migration ends
  (``--cleanup`` resumes it there), or brings it paused to the target (resumed there);
* the source's QEMU dies too (its node crashed): the guest runs nowhere, ``--cleanup`` says
  so and leaves nothing behind, and the admin starts the instance again.

A restarted master daemon ends the job that was running as an error saying why.

The QEMUs run in a network namespace this module creates (``CARDUME_KVM_NETNS``), so the
migration stream goes over that namespace's loopback; every QEMU left at the end (a failed
test's) is found by its command line and killed."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_kit import (
    BIN,
    NetnsCluster,
    VCluster,
    install_dummy_os,
    netns_cluster,
    pid_alive,
    qemus,
    wait_for,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for kvmguest

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed"),
              pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")]

MARKER = "cardume-guest: up"
BOOT_TIMEOUT = 120.0
NETNS = f"cardume-kvmc-{os.getpid()}"
# The tiny guest makes about 90 MiB of its memory non-zero, whatever its size: at these
# speeds (MiB/s) a migration takes about 10 s, or longer than this module waits for it.
FINISHING_BANDWIDTH = 8
CRAWLING_BANDWIDTH = 1


@pytest.fixture(scope="module")
def guest() -> Any:
    import kvmguest
    return kvmguest.build()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, guest: Any) -> Iterator[NetnsCluster]:
    with netns_cluster(tmp_path_factory.mktemp("kvmclean") / "vc", NETNS) as vc:
        install_dummy_os(vc)
        vc.gnt("gnt-cluster", "modify", "--enabled-hypervisors=kvm,fake")
        yield vc


# --- what the test looks at ----------------------------------------------------------------

def runtime(cluster: VCluster, name: str, node: str) -> dict[str, Any] | None:
    path = cluster.node_dir(node) / "hv" / "kvm" / f"{name}.json"
    with contextlib.suppress(FileNotFoundError, ValueError):
        return dict(json.loads(path.read_text()))
    return None


def serial_log(cluster: VCluster, name: str, node: str) -> str:
    path = cluster.node_dir(node) / "hv" / "kvm" / f"{name}.serial.log"
    return path.read_text(errors="replace") if path.exists() else ""


def incoming_status(cluster: VCluster, name: str, node: str) -> str | None:
    """The target QEMU's view of the incoming migration (query-migrate), None when there
    is no such QEMU or it doesn't answer (the node daemon may be talking to it)."""
    from cardume import errors
    from cardume.node.hypervisor.qmp import QmpClient
    info = runtime(cluster, name, node)
    if info is None or not pid_alive(int(info["pid"])):
        return None
    try:
        with QmpClient(str(info["qmp"]), timeout=2.0).connect() as qmp:
            return str((qmp.execute("query-migrate") or {}).get("status", "none"))
    except errors.CardumeError:
        return None


def where(cluster: VCluster, name: str) -> list[str]:
    return cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "pnode,status",
                       name)[1].split()


def job_status(cluster: VCluster, job: int) -> str:
    return cluster.gnt("gnt-job", "list", "--no-headers", "-o", "status",
                       str(job))[1].strip()


def console(cluster: VCluster, name: str, text: str, linger: float = 3.0) -> tuple[str, str]:
    """Type text on the instance's serial console; (node it ran on, what came back)."""
    command = shlex.split(cluster.gnt("gnt-instance", "console", "--show-cmd", name)[1])
    node = command[command.index("--node") + 1]
    proc = subprocess.run([*command, "--linger", str(linger)], input=text,
                          capture_output=True, text=True, env=cluster.env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return node, proc.stdout


def answers(cluster: VCluster, name: str, tag: str) -> tuple[str, str]:
    """The guest answers on its console (a shell just resumed may drop the first line):
    (its node, what it said)."""
    said = ""
    node = ""

    def echoed() -> bool:
        nonlocal said, node
        node, said = console(cluster, name, f"cat /tmp/mark; echo {tag}-$((6*7))\n")
        return f"{tag}-42" in said
    wait_for(echoed, 60, f"{name} to answer on its console", interval=1)
    return node, said


def add_instance(cluster: VCluster, guest: Any, name: str) -> None:
    """A guest on node1, started while the cluster's migration bandwidth is high."""
    bandwidth(cluster, 64)
    cluster.gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default",
                "--no-name-check", "--no-ip-check", "--no-nics", "-n", "node1",
                "-B", "memory=128", "-H",
                f"kvm:kernel_path={guest.kernel},initrd_path={guest.initrd},root_path=,"
                "kernel_args=quiet", name)
    wait_for(lambda: MARKER in serial_log(cluster, name, "node1"), BOOT_TIMEOUT,
             "the guest's marker")
    answers(cluster, name, "booted")
    console(cluster, name, "echo before-the-migration > /tmp/mark\n")


def bandwidth(cluster: VCluster, mib_per_s: int) -> None:
    """The speed of the next migrations (a cluster-wide parameter, as in Ganeti)."""
    cluster.gnt("gnt-cluster", "modify", "-H", f"kvm:migration_bandwidth={mib_per_s}")


def interrupt_migration(cluster: VCluster, name: str, speed: int, *extra: str) -> int:
    """Run ``gnt-instance migrate`` node1 -> node2 at speed MiB/s, as an admin does, and
    SIGKILL the master daemon once QEMU streams the guest's memory: the command fails,
    saying so. The migration job's id."""
    # lowered after the instance started: a migration takes the setting as it is then,
    # as in Ganeti (it would be over in a second at the start-time speed)
    bandwidth(cluster, speed)
    admin = subprocess.Popen([str(BIN / "gnt-instance"), "migrate", "-f", *extra,
                              "-n", "node2", name], env=cluster.env(),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: incoming_status(cluster, name, "node2") == "active", 120,
                 "the target QEMU to receive the migration stream", interval=0.2)
        limit = source_query(cluster, name, "query-migrate-parameters") or {}
        assert limit.get("max-bandwidth") == speed << 20, limit
        jobs = cluster.gnt("gnt-job", "list", "--no-headers", "-o", "id,status")[1]
        (job,) = [int(line.split()[0]) for line in jobs.splitlines()
                  if line.split()[1:] == ["running"]]
        master = cluster.pid("node1", "masterd")
        assert master is not None
        os.kill(master, signal.SIGKILL)
        wait_for(lambda: not pid_alive(master), 10, "the master daemon to die")
        out, err = admin.communicate(timeout=60)
    finally:
        if admin.poll() is None:
            admin.kill()
            admin.wait()
    assert admin.returncode != 0 and "master daemon" in err, out + err
    return job


def restart(cluster: VCluster, job: int) -> None:
    """Start what is missing again; the interrupted job ended in error, saying why."""
    cluster.up()
    assert cluster.pid("node1", "masterd") is not None
    assert job_status(cluster, job) == "error"
    details = cluster.gnt("gnt-job", "info", str(job))[1]
    assert "master daemon stopped while this job was running" in details, details


def cleanup(cluster: VCluster, name: str, target: str = "node2") -> str:
    code, out, err = cluster.gnt("gnt-instance", "migrate", "-f", "--cleanup", "-n", target,
                                 name, check=False)
    assert code == 0, out + err
    return out + err


def one_qemu_running(cluster: VCluster, name: str, node: str, same_guest: bool = True) -> int:
    """Exactly one QEMU left, on node, recorded as its primary, the guest answering (the
    same guest, memory and all, unless it was started afresh)."""
    left = qemus(cluster, name)
    assert list(left.values()) == [node], left
    assert where(cluster, name) == [node, "running"]
    shown, said = answers(cluster, name, "after")
    assert shown == node
    assert ("before-the-migration" in said) == same_guest, said
    return next(iter(left))


def source_query(cluster: VCluster, name: str, command: str) -> Any:
    """A query to the source QEMU (node1), None if it doesn't answer."""
    from cardume import errors
    from cardume.node.hypervisor.qmp import QmpClient
    info = runtime(cluster, name, "node1")
    if info is None:
        return None
    try:
        with QmpClient(str(info["qmp"]), timeout=5.0).connect() as qmp:
            return qmp.execute(command)
    except errors.CardumeError:
        return None


def source_status(cluster: VCluster, name: str) -> str | None:
    """The source QEMU's run state (query-status), None if it doesn't answer."""
    status = (source_query(cluster, name, "query-status") or {}).get("status")
    return None if status is None else str(status)


# --- the cases ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["live", "non-live"])
def test_migration_completed_after_the_master_died(cluster: NetnsCluster, guest: Any,
                                                   mode: str) -> None:
    """The master daemon and the source's node daemon (the driver of the migration) die
    mid-stream; QEMU completes the migration on its own (non-live: the guest arrives
    paused). --cleanup finds the guest on the target, quits the source's copy, resumes the
    guest if it is paused and records node2 as the primary; a second --cleanup has nothing
    left to do."""
    name = f"done-{mode}"
    add_instance(cluster, guest, name)
    t0 = time.monotonic()
    job = interrupt_migration(cluster, name, FINISHING_BANDWIDTH, f"--migration-mode={mode}")
    noded = cluster.pid("node1", "noded")
    assert noded is not None
    os.kill(noded, signal.SIGKILL)
    restart(cluster, job)
    # the guest has moved under the master's feet; what the configuration says is stale
    wait_for(lambda: incoming_status(cluster, name, "node2") == "completed", 120,
             "the migration to complete on its own", interval=0.5)
    assert source_status(cluster, name) == "postmigrate"
    assert sorted(qemus(cluster, name).values()) == ["node1", "node2"]
    assert where(cluster, name)[0] == "node1"
    # an admin's routine check shows it, and names the way out
    code, out, err = cluster.gnt("gnt-cluster", "verify", check=False)
    assert code != 0 and f"gnt-instance migrate --cleanup -n node2 {name}" in out, out + err

    out = cleanup(cluster, name)
    print(f"\nkill, restart, migration end and --cleanup ({mode}): "
          f"{time.monotonic() - t0:.1f}s")
    arrived = "running" if mode == "live" else "loaded"  # non-live: it arrives paused
    assert f"node1: handed-over, node2: {arrived}" in out, out
    assert "runs on node2" in out, out
    pid = one_qemu_running(cluster, name, "node2")

    # nothing wrong any more: the same command is refused, the other way changes nothing
    code, _, err = cluster.gnt("gnt-instance", "migrate", "-f", "--cleanup", "-n", "node2",
                               name, check=False)
    assert code != 0 and f"node2 is the primary of {name}" in err, err
    out = cleanup(cluster, name, "node1")
    assert "runs on node2" in out, out
    assert qemus(cluster, name) == {pid: "node2"}
    assert where(cluster, name) == ["node2", "running"]
    assert name not in cluster.gnt("gnt-cluster", "verify", check=False)[1]
    cluster.gnt("gnt-instance", "remove", "-f", name)
    assert qemus(cluster, name) == {}


@pytest.mark.parametrize("mode", ["live", "non-live"])
def test_cleanup_while_the_migration_still_streams(cluster: NetnsCluster, guest: Any,
                                                   mode: str) -> None:
    """The master daemon dies; the source's node daemon still drives a migration that
    crawls. --cleanup cancels it, kills the target QEMU, which never ran the guest, and
    keeps (non-live: resumes) the guest on node1."""
    name = f"crawl-{mode}"
    add_instance(cluster, guest, name)
    t0 = time.monotonic()
    job = interrupt_migration(cluster, name, CRAWLING_BANDWIDTH, f"--migration-mode={mode}")
    restart(cluster, job)
    assert incoming_status(cluster, name, "node2") == "active"  # still under way
    assert source_status(cluster, name) == ("running" if mode == "live" else "paused")

    out = cleanup(cluster, name)
    print(f"\nkill, restart and --cleanup ({mode}): {time.monotonic() - t0:.1f}s")
    left = "running" if mode == "live" else "migrating"  # non-live: paused for it
    assert f"node1: {left}, node2: waiting" in out, out
    assert "runs on node1" in out, out
    one_qemu_running(cluster, name, "node1")
    assert runtime(cluster, name, "node2") is None
    # nothing is left in the way (a QEMU holding the migration port, say): at the speed
    # set now, the next migration goes through
    bandwidth(cluster, 64)
    cluster.gnt("gnt-instance", "migrate", "-f", f"--migration-mode={mode}", "-n", "node2",
                name, timeout=60)
    one_qemu_running(cluster, name, "node2")
    cluster.gnt("gnt-instance", "remove", "-f", name)
    assert qemus(cluster, name) == {}


def test_source_lost_mid_migration(cluster: NetnsCluster, guest: Any) -> None:
    """The master daemon dies and the source's QEMU with it (its node crashed, say): the
    guest runs nowhere. --cleanup says so and leaves no QEMU behind on the target; starting
    the instance brings it up on its primary, node1."""
    add_instance(cluster, guest, "lost")
    job = interrupt_migration(cluster, "lost", CRAWLING_BANDWIDTH)
    (source,) = [pid for pid, node in qemus(cluster, "lost").items() if node == "node1"]
    os.kill(source, signal.SIGKILL)
    wait_for(lambda: not pid_alive(source), 10, "the source QEMU to die")
    restart(cluster, job)
    code, out, err = cluster.gnt("gnt-instance", "migrate", "-f", "--cleanup", "-n", "node2",
                                 "lost", check=False)
    assert code != 0 and "runs on neither node; start it" in err, out + err
    assert qemus(cluster, "lost") == {}
    assert where(cluster, "lost") == ["node1", "ERROR_down"]
    cluster.gnt("gnt-instance", "startup", "lost")
    one_qemu_running(cluster, "lost", "node1", same_guest=False)
    cluster.gnt("gnt-instance", "remove", "-f", "lost")
