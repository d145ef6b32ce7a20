"""Reboots and power cuts on QA nodes that run the installed package under systemd (issue 15,
point 4).

The nodes (qaharness/vm_systemd.py) boot Debian with systemd from disks of their own, with
cardume's .deb installed; the cluster is made as README tells an admin (qaharness/
cardume_pkg.py). One cluster serves the whole module; each test leaves it with three
working nodes and needs nothing done by another test. Times go to
``bench/results/qa_reboot.json`` (``bench/qa_reboot.py`` prints them); nothing here asserts
a time.

The watcher is started by hand (``systemctl start cardume-watcher.service``, what its timer
starts) right after a node is back: its timer fires every 5 minutes, too long a wait for a
test, and what is checked is what the watcher does, not when the timer fires.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from qaharness import cardume_pkg, sysimage, vm
from qaharness.cardume import VG
from qaharness.cardume_pkg import PkgCluster, journal
from qaharness.checks import proc_drbd
from qaharness.vm_systemd import SystemdNode

pytestmark = pytest.mark.qa

OS = "qa-os+default"
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "qa_reboot.json"
FIGURES: dict[str, float] = {}
T = TypeVar("T")


def _record(what: str, seconds: float) -> None:
    """Keep a figure of this session; the file holds this session's figures only."""
    FIGURES[what] = round(seconds, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   "figures": FIGURES}, indent=1) + "\n")


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PkgCluster]:
    t0 = time.monotonic()
    images = sysimage.build()
    t1 = time.monotonic()
    vms = vm.boot(images, Path(tmp_path_factory.mktemp("qa-sysnodes")), 3, timeout=300,
                  node_class=SystemdNode)
    t2 = time.monotonic()
    try:
        pc = cardume_pkg.cluster_up(vms)
        _record("systemd image (build or reuse), s", t1 - t0)
        _record("boot of 3 systemd nodes (agents answer), s", t2 - t1)
        _record("cluster up from the package (prepare, init, add), s", time.monotonic() - t2)
        yield pc
    finally:
        vms.stop()
        _record("the module's nodes: from image build to stop, s", time.monotonic() - t0)


def _wait(what: str, probe: Callable[[], T | None], timeout: float = 240.0) -> T:
    """``probe()`` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None and last is not False:
            return last
        time.sleep(1.0)
    raise AssertionError(f"{what}: not so after {timeout:.0f}s (last: {last!r})")


def _ensure_master(pc: PkgCluster) -> SystemdNode:
    """The node every node names as master (the module's tests may have moved it)."""
    for node in pc.nodes:
        res = node.run("gnt-cluster getmaster")
        if res.ok and res.out.strip():
            pc.master_index = pc.nodes.index(pc.node(res.out.strip()))
            return pc.master
    raise AssertionError("no node names a master")


def _others(pc: PkgCluster) -> tuple[SystemdNode, SystemdNode]:
    master = _ensure_master(pc)
    a, b = [n for n in pc.nodes if n is not master]
    return a, b


def _add_drbd(pc: PkgCluster, name: str, primary: SystemdNode, secondary: SystemdNode) -> None:
    pc.gnt(f"gnt-instance remove -f {name}", check=False)
    pc.gnt(f"gnt-instance add -t drbd --disk 0:size=32m -B memory=64 -o {OS} "
           f"-n {primary.fqdn}:{secondary.fqdn} --no-name-check --no-ip-check {name}")


def _minor(pc: PkgCluster, instance: str, node: SystemdNode) -> int:
    out = pc.gnt(f"gnt-instance info -s {instance}")
    found = dict(re.findall(r"node[AB]: (\S+), minor=(\d+)", out))
    return int(found[node.fqdn])


def _data_lv(pc: PkgCluster, instance: str) -> str:
    out = pc.gnt(f"gnt-instance list --no-headers -o disk.uuids {instance}").strip()
    uuid = re.findall(r"'([^']+)'", out)[0]
    return f"/dev/{VG}/{uuid}.disk0_data"


def _write_random(pc: PkgCluster, node: SystemdNode, device: str, mib: int) -> str:
    """``mib`` MiB of random bytes written at the start of ``device``; their md5."""
    out = pc.run(node, f"head -c {mib}M /dev/urandom >/tmp/blob && "
                 f"dd if=/tmp/blob of={device} bs=1M oflag=direct status=none && "
                 "md5sum </tmp/blob && rm -f /tmp/blob")
    return out.split()[0]


def _md5(pc: PkgCluster, node: SystemdNode, path: str, mib: int) -> str:
    return pc.run(node, f"dd if={path} bs=1M count={mib} iflag=direct status=none "
                  "| md5sum").split()[0]


def _status(pc: PkgCluster, instance: str) -> tuple[str, str]:
    out = pc.gnt(f"gnt-instance list --no-headers -o status,pnode {instance}").split()
    return out[0], out[1]


def _synced(node: SystemdNode, minor: int) -> bool:
    state = proc_drbd(node).get(minor)
    return state is not None and state[0] == "Connected" and state[2] == "UpToDate/UpToDate"


def _watcher(pc: PkgCluster) -> None:
    """One watcher pass on the master, as its timer starts it."""
    pc.gnt("systemctl start cardume-watcher.service", timeout=600)


def test_units_after_boot(pkg: PkgCluster) -> None:
    """Every node runs the node daemon from the package; only the master runs the master
    daemon; the watcher's timer is armed; the daemons log to the journal."""
    pc = pkg
    master = _ensure_master(pc)
    for node in pc.nodes:
        assert pc.run(node, "dpkg-query -W -f '${Status}' cardume") == "install ok installed"
        assert node.run("systemctl is-active cardume-noded").out.strip() == "active"
        masterd = node.run("systemctl is-active cardume-masterd").out.strip()
        assert masterd == ("active" if node is master else "inactive"), (node.name, masterd)
        assert node.run("systemctl is-active cardume-watcher.timer").out.strip() == "active"
        assert node.run("systemctl is-enabled cardume-noded cardume-masterd "
                        "cardume-watcher.timer").out.split() == ["enabled"] * 3
        assert pc.run(node, "gnt-cluster getmaster").strip() == master.fqdn
        lines = pc.run(node, "journalctl -b --no-pager -o cat -u cardume-noded")
        assert lines.strip(), f"{node.name}: nothing from cardume-noded in the journal"
    lines = pc.run(master, "journalctl -b --no-pager -o cat -u cardume-masterd")
    assert lines.strip(), "nothing from cardume-masterd in the master's journal"
    nodes = pc.gnt("gnt-node list --no-headers -o name,offline").split()
    assert sorted(nodes[0::2]) == sorted(n.fqdn for n in pc.nodes), nodes
    assert set(nodes[1::2]) == {"N"}, nodes
    pc.gnt("gnt-cluster verify")


def test_node_reboot_brings_back_daemons_disks_and_instances(pkg: PkgCluster) -> None:
    """``systemctl reboot`` on a node that is primary of one mirrored instance and secondary
    of another: systemd starts its node daemon again, one watcher pass restarts the first
    instance there and re-activates the second's disks, and both mirrors resync with the
    data written before (and, for the second, during) the reboot."""
    pc = pkg
    a, b = _others(pc)
    _add_drbd(pc, "rb-a", a, b)  # runs on the node that reboots
    _add_drbd(pc, "rb-b", b, a)  # its mirror half on that node
    lv_a, lv_b = _data_lv(pc, "rb-a"), _data_lv(pc, "rb-b")
    md5_a = _write_random(pc, a, f"/dev/drbd{_minor(pc, 'rb-a', a)}", 8)
    _wait("rb-a in sync before the reboot", lambda: _synced(a, _minor(pc, "rb-a", a)))
    _watcher(pc)  # the pass before the reboot: the watcher learns each node's boot id
    t0 = time.monotonic()
    a.reboot()
    t_back = time.monotonic()
    # written on rb-b's primary while its secondary is away: resynced once it is back
    md5_b = _write_random(pc, b, f"/dev/drbd{_minor(pc, 'rb-b', b)}", 8)
    a.wait_booted()
    assert a.run("systemctl is-active cardume-noded").out.strip() == "active", journal(a)
    # a reboot stops every instance: rb-a is down, not where the cluster wants it
    assert _status(pc, "rb-a") == ("ERROR_down", a.fqdn)
    t_watch = time.monotonic()
    _watcher(pc)
    _wait("rb-a running on its primary again", lambda: _status(pc, "rb-a") == ("running",
                                                                               a.fqdn))
    m_a, m_b = _minor(pc, "rb-a", a), _minor(pc, "rb-b", a)
    _wait("both mirrors connected and in sync on the rebooted node",
          lambda: _synced(a, m_a) and _synced(a, m_b))
    t_done = time.monotonic()
    _record("node reboot: systemctl reboot -> agent back (new boot id), s", t_back - t0)
    _record("node reboot: systemctl reboot -> instances running and disks in sync, s",
            t_done - t0)
    _record("node reboot: watcher pass start -> instances running and in sync, s",
            t_done - t_watch)
    info = pc.gnt("gnt-instance info rb-a rb-b")
    assert info.count("in sync, status ok") == 4, info
    # the data: what rb-a held before the reboot, what rb-b got during it, on both halves
    assert _md5(pc, a, f"/dev/drbd{m_a}", 8) == md5_a
    assert _md5(pc, b, lv_a, 8) == md5_a
    assert _md5(pc, a, lv_b, 8) == md5_b
    assert _status(pc, "rb-b") == ("running", b.fqdn)
    pc.gnt("gnt-cluster verify")
    for name in ("rb-a", "rb-b"):
        pc.gnt(f"gnt-instance remove -f {name}")


def _given_up(node: SystemdNode) -> dict[str, str] | None:
    """The master daemon unit's state once it is not running nor about to run again."""
    out = node.run("systemctl show -p ActiveState -p SubState -p NRestarts "
                   "cardume-masterd").out
    state = dict(line.split("=", 1) for line in out.split())
    if state.get("ActiveState") == "inactive":
        # skipped by its ExecCondition (python3 -m cardume.daemons is-master), which
        # prints why; an inactive unit without that line has not been started yet
        last = node.run("journalctl -b --no-pager -o cat -u cardume-masterd | tail -n 5").out
        return state if "is not the master" in last else None
    return state if state.get("ActiveState") == "failed" else None


def _jobs(pc: PkgCluster) -> set[str]:
    return {line.split()[0] for line in pc.gnt("gnt-job list --no-headers -o id").splitlines()
            if line.strip()}


def test_master_power_cut_failover_and_old_master_back(pkg: PkgCluster) -> None:
    """The master's power is cut; ``gnt-cluster master-failover --no-voting`` on a candidate
    brings the cluster back with its instances and job history. The old master, powered on
    with its stale copy, does not take the role back (its master daemon gives up), every
    node names the new master, and the old master is readded (``gnt-node add --readd``)."""
    pc = pkg
    old = _ensure_master(pc)
    new, third = [n for n in pc.nodes if n is not old]
    _add_drbd(pc, "pc-a", new, third)
    pc.gnt(f"gnt-instance add -t plain --disk 0:size=16m -B memory=64 -o {OS} "
           f"-n {third.fqdn} --no-name-check --no-ip-check pc-b")
    jobs_before = _jobs(pc)
    assert jobs_before
    t0 = time.monotonic()
    old.kill()  # no clean shutdown: QEMU dies, the disks keep what reached them
    pc.master_index = pc.nodes.index(new)
    out = pc.gnt("gnt-cluster master-failover --no-voting --yes-do-it", timeout=600)
    assert f"Node {new.fqdn} is now the master" in out, out
    _wait("the new master answers", lambda: new.run("gnt-cluster getmaster").ok
          and new.run("gnt-instance list").ok)
    t_failover = time.monotonic()
    _record("master power cut -> master-failover --no-voting done, cluster answers, s",
            t_failover - t0)
    assert pc.run(new, "gnt-cluster getmaster").strip() == new.fqdn
    assert new.run("systemctl is-active cardume-masterd").out.strip() == "active"
    assert jobs_before <= _jobs(pc), "jobs of the old master are missing"
    listed = pc.gnt("gnt-instance list --no-headers -o name,pnode").split()
    placed = dict(zip(listed[0::2], listed[1::2], strict=True))
    assert placed["pc-a"] == new.fqdn and placed["pc-b"] == third.fqdn, placed
    # the cluster works: a job runs on the new master
    pc.gnt("gnt-instance reboot pc-b")

    # the old master comes back with its stale configuration
    t1 = time.monotonic()
    old.restart(300)
    old.wait_booted()
    assert old.run("systemctl is-active cardume-noded").out.strip() == "active"
    # its master daemon does not run: either systemd started it with the stale copy, the
    # other nodes outvoted it and systemd gave up after 5 starts (the unit's
    # StartLimitBurst), or the new master's copy reached the node first and the unit's
    # condition skipped it
    state = _wait("the old master's master daemon stopped for good",
                  lambda: _given_up(old), timeout=600)
    _record("old master powered on -> booted, its master daemon given up, s",
            time.monotonic() - t1)
    masterd_log = old.run("journalctl -b --no-pager -o cat -u cardume-masterd").out
    if state["ActiveState"] == "failed":
        assert f"this node ({old.fqdn}) is no longer the master" in masterd_log, masterd_log
        assert f"name {new.fqdn}" in masterd_log, masterd_log
        assert state["NRestarts"] == "5", state
    else:
        assert f"the master is {new.fqdn}" in masterd_log, masterd_log
    print(f"old master's cardume-masterd: {state}")
    for node in pc.nodes:
        if node is old:
            continue
        assert pc.run(node, "gnt-cluster getmaster").strip() == new.fqdn
    # readmitted as Ganeti admins do, from the new master: it never left the cluster, so
    # it has no join token and needs none
    assert not old.run("cardume node join-token").ok
    out = pc.gnt(f"gnt-node add --readd -s {old.ip2} {old.fqdn}")
    assert "re-added without a join token" in out, out
    _wait("every node names the new master", lambda: all(
        n.run("gnt-cluster getmaster").out.strip() == new.fqdn for n in pc.nodes))
    assert old.run("systemctl is-active cardume-masterd").out.strip() != "active"
    pc.gnt("gnt-cluster verify")
    for name in ("pc-a", "pc-b"):
        pc.gnt(f"gnt-instance remove -f {name}")
