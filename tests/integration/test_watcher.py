"""cardume-watcher on a local cluster (fake hypervisor): one pass at a time, run as the timer
runs it, and what an admin sees afterwards (gnt-instance list, gnt-job list, gnt-cluster
watcher info).

A crash is what the node sees after one: the fake hypervisor's runtime file of the instance
is gone (no process, no state) while the configuration still says "up". A reboot of a node
of the local cluster is its runtime directory's boot token gone (a new boot id, as a real
boot gives) and every instance on it gone with it.

Each test makes and removes its own instances, and leaves the watcher unpaused.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import BIN, Gnt, VCluster, job_id_of, os_cluster, run, wait_for

OS = ["-o", "dummy+default"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    names = {f"wvm{index}": f"127.0.9.{150 + index}" for index in range(1, 20)}
    with os_cluster(tmp_path_factory.mktemp("watcher"), names) as vc:
        yield vc


def watcher(cluster: VCluster, *args: str, node: str | None = None) -> str:
    """One pass, as the timer runs it on a node (the master when none is named); its
    standard error."""
    return run([str(BIN / "cardume-watcher"), *args], cluster.env(node))[2]


def add(gnt: Gnt, name: str, node: str = "node1", *args: str) -> None:
    gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=8m", *OS, *args,
        "-n", node, name)


def remove(gnt: Gnt, *names: str) -> None:
    for name in names:
        gnt("gnt-instance", "remove", "-f", name)


def status(gnt: Gnt, name: str) -> str:
    return gnt("gnt-instance", "list", "--no-headers", "-o", "status", name)[1].strip()


def crash(cluster: VCluster, node: str, name: str) -> None:
    (cluster.node_dir(node) / "hv" / "fake" / f"{name}.json").unlink()


def reboot(cluster: VCluster, node: str) -> None:
    (cluster.node_dir(node) / "run" / "boot-token").unlink()
    for state in (cluster.node_dir(node) / "hv" / "fake").glob("*.json"):
        state.unlink()


def info(gnt: Gnt) -> list[str]:
    return gnt("gnt-cluster", "watcher", "info")[1].splitlines()


def decisions(gnt: Gnt, name: str) -> list[str]:
    """The last pass's decision lines about instance ``name`` (gnt-cluster watcher info)."""
    return [line.strip() for line in info(gnt) if line.startswith(f"  instance {name}:")]


def jobs(gnt: Gnt, name: str) -> list[str]:
    """'STATUS SUMMARY' of each job about instance ``name``, oldest first."""
    out = gnt("gnt-job", "list", "--no-headers", "-o", "status,summary")[1]
    return [" ".join(line.split()) for line in out.splitlines() if f"({name})" in line]


def test_a_crashed_instance_runs_again_after_one_pass(cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "wvm1")
    watcher(cluster)
    crash(cluster, "node1", "wvm1")
    assert status(gnt, "wvm1") == "ERROR_down"
    watcher(cluster)
    assert status(gnt, "wvm1") == "running"
    assert jobs(gnt, "wvm1")[-1] == "success INSTANCE_STARTUP(wvm1)"
    [line] = decisions(gnt, "wvm1")
    assert re.fullmatch(r"instance wvm1: start \(marked up but not running \(ERROR_down\); "
                        r"attempt 1 of 5\); job \d+: success", line), line
    assert info(gnt)[0] == "The watcher is not paused."
    assert info(gnt)[1].startswith("The watcher last ran at ")
    log = (cluster.node_dir("node1") / "log" / "watcher.log").read_text()
    assert "instance wvm1: start (marked up but not running (ERROR_down)" in log
    watcher(cluster)  # seen running: its count starts again
    assert decisions(gnt, "wvm1") == [
        "instance wvm1: reset (running again after 1 start attempt(s))"]
    for path in ("watcher.json", "log/watcher.log"):
        mode = stat.S_IMODE(os.stat(cluster.node_dir("node1") / path).st_mode)
        assert mode == 0o600, (path, oct(mode))
    remove(gnt, "wvm1")


def test_an_instance_the_admin_stopped_stays_down(cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "wvm2")
    gnt("gnt-instance", "shutdown", "wvm2")
    watcher(cluster)
    assert status(gnt, "wvm2") == "ADMIN_down"
    assert decisions(gnt, "wvm2") == []
    assert jobs(gnt, "wvm2")[-1] == "success INSTANCE_SHUTDOWN(wvm2)"
    remove(gnt, "wvm2")


def test_a_paused_watcher_does_nothing(cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "wvm3", "node2")
    watcher(cluster)
    try:
        out = gnt("gnt-cluster", "watcher", "pause", "1h")[1]
        assert re.fullmatch(r"The watcher is paused until \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d "
                            r"\d{4}\.\n", out), out
        assert info(gnt)[0] == out.strip()
        before = info(gnt)[1:]
        # the pause is on the master candidates too: a new master's watcher keeps it
        until = [(cluster.node_dir(n) / "watcher-pause").read_text() for n in
                 ("node1", "node2", "node3")]
        assert len(set(until)) == 1
        crash(cluster, "node2", "wvm3")
        watcher(cluster)
        assert status(gnt, "wvm3") == "ERROR_down"
        assert info(gnt)[1:] == before  # no pass was made
        assert "paused until" in (cluster.node_dir("node1") / "log" / "watcher.log").read_text()
    finally:
        assert gnt("gnt-cluster", "watcher", "continue")[1] == "The watcher is no longer paused.\n"
    assert info(gnt)[0] == "The watcher is not paused."
    assert not (cluster.node_dir("node2") / "watcher-pause").exists()
    watcher(cluster)
    assert status(gnt, "wvm3") == "running"
    remove(gnt, "wvm3")


def test_pause_durations_and_bad_input(gnt: Gnt) -> None:
    for bad, message in (("1x", "Invalid time specification '1x'"),
                         ("1.5h", "Invalid time specification '1.5'"),
                         ("h", "Invalid time specification (only suffix passed)")):
        rc, out, err = gnt("gnt-cluster", "watcher", "pause", bad, check=False)
        assert (rc, out, err) == (1, "", f"Failure: wrong_input: {message}\n")
    for words, message in ((["pause"], "Missing pause duration"),
                           (["frobnicate"], "Command 'frobnicate' is not valid."),
                           ([], "Command watcher expects at least 1 argument(s)")):
        rc, out, err = gnt("gnt-cluster", "watcher", *words, check=False)
        assert (rc, err) == (1, f"Failure: wrong_input: {message}\n")
    assert info(gnt)[0] == "The watcher is not paused."
    # a pause that has already ended is no pause (as Ganeti's "pause 0")
    assert gnt("gnt-cluster", "watcher", "pause", "0")[1] == "The watcher is not paused.\n"
    gnt("gnt-cluster", "watcher", "continue")


def test_an_instance_with_a_pending_job_is_left_alone(cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "wvm4", "node3")
    watcher(cluster)
    crash(cluster, "node3", "wvm4")
    # the admin stops it, and the stop waits for node3, which another job holds
    hold = job_id_of(gnt("gnt-debug", "delay", "--no-master", "-n", "node3", "-i", "--submit",
                         "120")[2])
    out = gnt("gnt-instance", "shutdown", "--submit", "wvm4")[1]  # "ID: INSTANCE" lines
    stop = int(out.split(":")[0])
    try:
        wait_for(lambda: "waiting" in jobs(gnt, "wvm4")[-1], 30, "the stop to wait for node3")
        watcher(cluster)
        assert status(gnt, "wvm4") == "ERROR_down"
        assert decisions(gnt, "wvm4") == [
            f"instance wvm4: leave (marked up but not running, and job {stop} is pending on "
            "it: not queueing a start behind it)"]
        assert [j for j in jobs(gnt, "wvm4") if "STARTUP" in j] == []
    finally:
        gnt("gnt-job", "cancel", str(hold))
    gnt("gnt-job", "wait", str(stop))
    assert status(gnt, "wvm4") == "ADMIN_down"
    watcher(cluster)  # the admin's stop done: nothing to start
    assert status(gnt, "wvm4") == "ADMIN_down" and decisions(gnt, "wvm4") == []
    remove(gnt, "wvm4")


def test_restarts_stop_after_five_attempts(cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "wvm5", "node2")
    # more memory than node2 has: each start fails (takes effect at the next start)
    gnt("gnt-instance", "modify", "--ignore-ipolicy", "-B", "maxmem=4000000,minmem=4000000",
        "wvm5")
    watcher(cluster)
    crash(cluster, "node2", "wvm5")
    for attempt in range(1, 6):
        watcher(cluster)
        [line] = decisions(gnt, "wvm5")
        assert line.startswith(f"instance wvm5: start (marked up but not running "
                               f"(ERROR_down); attempt {attempt} of 5); job "), line
        assert "error" in line and "memory" in line, line
    watcher(cluster)
    assert decisions(gnt, "wvm5") == [
        "instance wvm5: give-up (still down after 5 start attempts; not starting it again "
        "until it is seen running (gnt-instance startup wvm5))"]
    watcher(cluster)
    assert decisions(gnt, "wvm5") == [
        "instance wvm5: leave (still down; gave up after 5 start attempts)"]
    starts = [j for j in jobs(gnt, "wvm5") if "INSTANCE_STARTUP" in j]
    assert starts == ["error INSTANCE_STARTUP(wvm5)"] * 5
    # the admin mends it and starts it: seen running, the count is forgotten
    gnt("gnt-instance", "modify", "-B", "maxmem=128,minmem=128", "wvm5")
    gnt("gnt-instance", "startup", "wvm5")
    watcher(cluster)
    assert decisions(gnt, "wvm5") == [
        "instance wvm5: reset (running again after 5 start attempt(s))"]
    state = json.loads((cluster.node_dir("node1") / "watcher.json").read_text())
    assert "wvm5" not in state["restarts"]
    remove(gnt, "wvm5")


def test_after_a_node_reboot_its_instances_run_and_disks_are_activated(
        cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "wvm6", "node3")  # should run
    add(gnt, "wvm7", "node3")  # stopped, its disks activated by hand
    add(gnt, "wvm8", "node3")  # stopped by the admin
    gnt("gnt-instance", "shutdown", "wvm7")
    gnt("gnt-instance", "activate-disks", "wvm7")
    gnt("gnt-instance", "shutdown", "wvm8")
    watcher(cluster)  # the boot ids as they are before the reboot
    reboot(cluster, "node3")
    watcher(cluster)
    lines = info(gnt)
    assert "  node node3: rebooted (its boot id changed since the last pass)" in lines
    assert decisions(gnt, "wvm6")[0].startswith(
        "instance wvm6: start (marked up but not running (ERROR_down); attempt 1 of 5)")
    assert re.fullmatch(r"instance wvm7: activate-disks \(node node3 rebooted; it should be "
                        r"up, its disks reconnect\); job \d+: success",
                        decisions(gnt, "wvm7")[0])
    assert decisions(gnt, "wvm8") == []
    assert any(re.fullmatch(r"  cluster: verify-disks \(after a node reboot\); job \d+: "
                            r"success", line) for line in lines), lines
    assert status(gnt, "wvm6") == "running"
    assert status(gnt, "wvm8") == "ADMIN_down"
    assert jobs(gnt, "wvm7")[-1] == "success INSTANCE_ACTIVATE_DISKS(wvm7)"
    watcher(cluster)  # the same boot id again: no reboot
    assert not any("rebooted" in line for line in info(gnt))
    gnt("gnt-instance", "deactivate-disks", "wvm7")
    remove(gnt, "wvm6", "wvm7", "wvm8")


def test_on_a_node_that_is_not_the_master_it_does_nothing(cluster: VCluster,
                                                          gnt: Gnt) -> None:
    add(gnt, "wvm9", "node2")
    watcher(cluster)
    crash(cluster, "node2", "wvm9")
    before = info(gnt)
    err = watcher(cluster, "-d", node="node2")
    assert "this node (node2) is not the master (node1): nothing to do" in err
    assert status(gnt, "wvm9") == "ERROR_down" and info(gnt) == before
    assert not Path(cluster.node_dir("node2") / "watcher.json").exists()
    watcher(cluster)
    assert status(gnt, "wvm9") == "running"
    remove(gnt, "wvm9")


def test_after_a_failed_migration_it_is_never_started_twice(cluster: VCluster,
                                                            gnt: Gnt) -> None:
    add(gnt, "wvm10")
    watcher(cluster)
    # what an interrupted migration can leave: the target (node2) runs it, not its primary
    hv = "hv/fake/wvm10.json"
    os.replace(cluster.node_dir("node1") / hv, cluster.node_dir("node2") / hv)
    assert status(gnt, "wvm10") == "ERROR_wrongnode"
    watcher(cluster)
    assert decisions(gnt, "wvm10") == [
        "instance wvm10: leave (it runs on a node other than its primary (ERROR_wrongnode); "
        "for the admin: gnt-instance migrate --cleanup)"]
    rc, out, err = gnt("gnt-instance", "startup", "wvm10", check=False)
    assert rc != 0 and "instance wvm10 is running on node node2, not on its primary node " \
        "node1; not starting it a second time" in err
    assert not (cluster.node_dir("node1") / hv).exists()
    os.replace(cluster.node_dir("node2") / hv, cluster.node_dir("node1") / hv)
    assert status(gnt, "wvm10") == "running"
    remove(gnt, "wvm10")


def test_a_pause_holds_on_a_new_master(cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "wvm11", "node3")
    gnt("gnt-cluster", "watcher", "pause", "1h")
    try:
        gnt("gnt-cluster", "master-failover", node="node2")
        assert cluster.master() == "node2"
        assert info(gnt)[0].startswith("The watcher is paused until ")
        crash(cluster, "node3", "wvm11")
        watcher(cluster, node="node2")
        assert status(gnt, "wvm11") == "ERROR_down"
        assert "paused until" in (cluster.node_dir("node2") / "log" / "watcher.log").read_text()
        gnt("gnt-cluster", "watcher", "continue")
        watcher(cluster, node="node2")
        assert status(gnt, "wvm11") == "running"
        assert info(gnt)[1].startswith("The watcher last ran at ")
        assert info(gnt)[1].split(" on ")[1].startswith("node2 ")
    finally:
        gnt("gnt-cluster", "watcher", "continue")
        if cluster.master() != "node1":
            gnt("gnt-cluster", "master-failover", node="node1")
    remove(gnt, "wvm11")
