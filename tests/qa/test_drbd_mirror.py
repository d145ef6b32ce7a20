"""The ``drbd`` disk template on real DRBD 8.4 and LVM (issue 4, points 2 and 4).

What cardume says is checked against what the nodes' kernels say: ``/proc/drbd`` for roles,
connection and disk states, ``lvs`` for the volumes, and bytes written on one node read back
on the other after each move.
"""

from __future__ import annotations

import re

import pytest
from qaharness.cardume import VG, CardumeCluster
from qaharness.checks import lv_sizes as lvs
from qaharness.checks import proc_drbd
from qaharness.checks import run as _run
from qaharness.vm import Node

pytestmark = pytest.mark.qa

OS = "qa-os+default"


def _field(cc: CardumeCluster, instance: str, field: str) -> str:
    return cc.gnt(f"gnt-instance list --no-headers -o {field} {instance}").strip()


def _minors(cc: CardumeCluster, instance: str) -> dict[str, int]:
    """node name -> the minor of disk/0 there, from gnt-instance info (nodeA/nodeB)."""
    out = cc.gnt(f"gnt-instance info -s {instance}")
    found = dict(re.findall(r"node[AB]: (\S+), minor=(\d+)", out))
    return {node: int(minor) for node, minor in found.items()}


def _port(cc: CardumeCluster, instance: str) -> int:
    out = cc.gnt(f"gnt-instance info -s {instance}")
    match = re.search(r"port: (\d+)", out)
    assert match, out
    return int(match.group(1))


def _write(node: Node, minor: int, data: str) -> None:
    _run(node, f"printf %s {data} | dd of=/dev/drbd{minor} conv=notrunc,fsync status=none")


def _read(node: Node, minor: int, length: int) -> str:
    return _run(node, f"dd if=/dev/drbd{minor} bs={length} count=1 status=none")


def _data_lvs(cc: CardumeCluster, instance: str) -> list[str]:
    uuid = cc.disk_uuids(instance)[0]
    return [f"{uuid}.disk0_data", f"{uuid}.disk0_meta"]


def _nodes(cc: CardumeCluster) -> tuple[Node, Node]:
    return cc.nodes[0], cc.nodes[1]


def test_drbd_instance_lifecycle(qa_cardume: CardumeCluster) -> None:
    """The seed's HA instance: created mirrored and in sync, failed over and migrated with
    the data following, grown on both nodes, disks activated and deactivated, removed
    without a trace."""
    cc = qa_cardume
    node1, node2 = _nodes(cc)
    name = "vmd1"
    before = {node.name: lvs(node) for node in cc.nodes}
    cc.gnt(f"gnt-instance add -t drbd --disk 0:size=64m -B memory=64 -o {OS} "
           f"-n {node1.name}:{node2.name} --no-name-check --no-ip-check {name}")
    assert _field(cc, name, "status") == "running"
    assert _field(cc, name, "pnode") == node1.name
    assert _field(cc, name, "snodes") == node2.name
    assert 11000 <= _port(cc, name) <= 14999
    minors = _minors(cc, name)
    m1, m2 = minors[node1.name], minors[node2.name]
    # in sync and connected, the primary where cardume says
    assert proc_drbd(node1)[m1] == ("Connected", "Primary/Secondary", "UpToDate/UpToDate")
    assert proc_drbd(node2)[m2] == ("Connected", "Secondary/Primary", "UpToDate/UpToDate")
    data_lv, meta_lv = _data_lvs(cc, name)
    for node in (node1, node2):
        found = lvs(node)
        assert (found[data_lv], found[meta_lv]) == (64.0, 128.0), found

    # a write acknowledged on the primary is on the secondary (protocol C): after a
    # failover the new primary reads it back
    marker = "cardume-qa-drbd-failover"
    _write(node1, m1, marker)
    cc.gnt(f"gnt-instance failover -f {name}")
    assert _field(cc, name, "pnode") == node2.name
    assert _field(cc, name, "snodes") == node1.name
    assert _field(cc, name, "status") == "running"
    assert proc_drbd(node2)[m2][1:] == ("Primary/Secondary", "UpToDate/UpToDate")
    assert proc_drbd(node1)[m1][1] == "Secondary/Primary"
    assert _read(node2, m2, len(marker)) == marker

    # live migration back (dual-primary for the move, single primary after)
    marker = "cardume-qa-drbd-migrate"
    _write(node2, m2, marker)
    cc.gnt(f"gnt-instance migrate -f {name}")
    assert _field(cc, name, "pnode") == node1.name
    assert proc_drbd(node1)[m1] == ("Connected", "Primary/Secondary", "UpToDate/UpToDate")
    assert proc_drbd(node2)[m2] == ("Connected", "Secondary/Primary", "UpToDate/UpToDate")
    assert _read(node1, m1, len(marker)) == marker

    # grow: the data LV on both nodes, the device on the primary, synced
    cc.gnt(f"gnt-instance grow-disk {name} 0 32m")
    assert _field(cc, name, "disk.sizes") == "96"
    for node in (node1, node2):
        assert lvs(node)[data_lv] == 96.0
    size = int(_run(node1, f"blockdev --getsize64 /dev/drbd{m1}"))
    assert size == 96 << 20
    assert proc_drbd(node2)[m2] == ("Connected", "Secondary/Primary", "UpToDate/UpToDate")

    # stopped: the mirror goes down on both nodes; activate-disks brings it back
    cc.gnt(f"gnt-instance shutdown {name}")
    assert m1 not in proc_drbd(node1) and m2 not in proc_drbd(node2)
    out = cc.gnt(f"gnt-instance activate-disks {name}")
    assert f"{node1.name}:disk/0:/dev/drbd{m1}" in out, out
    assert proc_drbd(node1)[m1][0] in ("Connected", "SyncSource")
    assert proc_drbd(node1)[m1][1] == "Primary/Secondary"
    assert _read(node1, m1, len(marker)) == marker
    cc.gnt(f"gnt-instance deactivate-disks {name}")
    assert m1 not in proc_drbd(node1) and m2 not in proc_drbd(node2)

    # failover of a stopped instance: the disks come up, switch roles and go down again
    cc.gnt(f"gnt-instance failover -f {name}")
    assert _field(cc, name, "pnode") == node2.name
    assert _field(cc, name, "status") == "ADMIN_down"
    assert m2 not in proc_drbd(node2)
    cc.gnt(f"gnt-instance startup {name}")
    assert proc_drbd(node2)[m2] == ("Connected", "Primary/Secondary", "UpToDate/UpToDate")
    assert _read(node2, m2, len(marker)) == marker

    cc.gnt(f"gnt-instance remove -f {name}")
    assert m1 not in proc_drbd(node1) and m2 not in proc_drbd(node2)
    assert {node.name: lvs(node) for node in cc.nodes} == before


def test_drbd_no_wait_for_sync_and_two_disks(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    node1, node2 = _nodes(cc)
    name = "vmd2"
    cc.gnt(f"gnt-instance add -t drbd --disk 0:size=96m --disk 1:size=32m -B memory=64 "
           f"-o {OS} -n {node2.name}:{node1.name} --no-wait-for-sync --no-name-check "
           f"--no-ip-check {name}")
    out = cc.gnt(f"gnt-instance info -s {name}")
    assert out.count("nodeA:") == 2, out
    minors = set(proc_drbd(node2))
    assert len(minors) >= 2
    # gnt-instance activate-disks --wait-for-sync returns once both disks are in sync
    cc.gnt(f"gnt-instance activate-disks --wait-for-sync {name}")
    states = [v for v in proc_drbd(node2).values() if v[1].startswith("Primary")]
    assert len(states) == 2 and all(s == ("Connected", "Primary/Secondary",
                                          "UpToDate/UpToDate") for s in states), states
    cc.gnt(f"gnt-instance remove -f {name}")


def test_drbd_bad_requests_leave_nothing(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    node1, node2 = _nodes(cc)
    before = {node.name: (lvs(node), proc_drbd(node)) for node in cc.nodes}
    base = f"gnt-instance add -t drbd -B memory=64 -o {OS} --no-name-check --no-ip-check"
    cases = {
        f"{base} --disk 0:size=64m -n {node1.name} vmd-bad": "secondary node",
        f"{base} --disk 0:size=64m -n {node1.name}:{node1.name} vmd-bad": "must be different",
        f"{base} --disk 0:size=100g -n {node1.name}:{node2.name} vmd-bad": VG,
        f"{base} --disk 0:size=64m,vg=novg -n {node1.name}:{node2.name} vmd-bad": "novg",
    }
    for cmd, expected in cases.items():
        res = cc.master.run(cmd)
        message = (res.out + res.err).strip()
        assert not res.ok, cmd
        assert len(message.splitlines()) == 1 and expected in message, (cmd, message)
    assert "vmd-bad" not in cc.gnt("gnt-instance list --no-headers -o name")
    assert {node.name: (lvs(node), proc_drbd(node)) for node in cc.nodes} == before


def test_drbd_create_with_the_peer_daemon_down_leaves_nothing(
        qa_cardume: CardumeCluster) -> None:
    from qaharness.cardume import start_noded
    cc = qa_cardume
    node1, node2 = _nodes(cc)
    before = (lvs(node1), proc_drbd(node1))
    _run(node2, "pkill -x cardume-noded; sleep 0.5")
    try:
        res = cc.master.run(f"gnt-instance add -t drbd --disk 0:size=64m -B memory=64 "
                            f"-o {OS} -n {node1.name}:{node2.name} --no-name-check "
                            "--no-ip-check vmd-peerless")
        message = (res.out + res.err).strip()
        assert not res.ok and node2.name in message, message
        assert len(message.splitlines()) == 1, message
    finally:
        start_noded(node2)
    assert (lvs(node1), proc_drbd(node1)) == before
    assert "vmd-peerless" not in cc.gnt("gnt-instance list --no-headers -o name")


# --- HA operations that need a third node, and the views of the mirror ---------------------

def _three(cc: CardumeCluster) -> tuple[Node, Node, Node]:
    if len(cc.nodes) < 3:
        pytest.fail("these tests need 3 QA nodes (CARDUME_QA_NODES=3, the default)")
    return cc.nodes[0], cc.nodes[1], cc.nodes[2]


def _minor_on(cc: CardumeCluster, instance: str, node: str) -> int:
    return _minors(cc, instance)[node]


def _in_sync(node: Node, minor: int, role: str) -> bool:
    state = proc_drbd(node).get(minor)
    return state is not None and state[0] == "Connected" and state[2] == "UpToDate/UpToDate" \
        and state[1].startswith(role)


def _md5(node: Node, path: str, mib: int) -> str:
    return _run(node, f"dd if={path} bs=1M count={mib} status=none | md5sum").split()[0]


def test_drbd_views_info_list_drbd_and_watch(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    node1, node2, _ = _three(cc)
    name = "vmd-view"
    cc.gnt(f"gnt-instance add -t drbd --disk 0:size=32m -B memory=64 -o {OS} "
           f"-n {node1.name}:{node2.name} --no-name-check --no-ip-check {name}")
    m1, m2 = _minor_on(cc, name, node1.name), _minor_on(cc, name, node2.name)
    info = cc.gnt(f"gnt-instance info {name}")
    assert f"on primary: /dev/drbd{m1} (147:{m1}) in sync, status ok" in info, info
    assert f"on secondary: /dev/drbd{m2} (147:{m2}) in sync, status ok" in info, info
    rows = [line.split() for line in cc.gnt(
        f"gnt-node list-drbd --no-headers {node2.name}").splitlines() if line.strip()]
    assert [node2.name, str(m2), name, "0", "secondary", node1.name] in rows, rows
    out = cc.gnt(f"gnt-instance watch-disks --once {name}")
    assert node1.name in out and node2.name in out and "Connected" in out, out
    assert cc.master.run(f"gnt-instance watch-disks --once --until-synced {name}").ok
    # the metrics page (what /metrics serves) shows both sides in sync and connected
    page = cc.master.run("python3 -c 'from cardume.master.client import Client; "
                         "print(Client().call(\"QueryMetrics\"))'", check=True).out
    for node, role in ((node1, "primary"), (node2, "secondary")):
        labels = f'instance="{name}",disk="0",node="{node.name}",role="{role}"'
        assert f"cardume_drbd_out_of_sync_bytes{{{labels}}} 0" in page, page[-2000:]
        assert f"cardume_drbd_connected{{{labels}}} 1" in page, page[-2000:]
    cc.gnt(f"gnt-instance remove -f {name}")


def test_drbd_replace_disks_and_verify_disks(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    node1, node2, node3 = _three(cc)
    name = "vmd-rep"
    cc.gnt(f"gnt-instance add -t drbd --disk 0:size=32m -B memory=64 -o {OS} "
           f"-n {node1.name}:{node2.name} --no-name-check --no-ip-check {name}")
    data_lv, meta_lv = _data_lvs(cc, name)
    m1 = _minor_on(cc, name, node1.name)
    marker = "cardume-qa-replace"
    _write(node1, m1, marker)
    digest = _md5(node1, f"/dev/drbd{m1}", 32)

    # -s: new volumes on the secondary, filled from the primary; the old ones go
    cc.gnt(f"gnt-instance replace-disks -s {name}")
    found = lvs(node2)
    assert (found[data_lv], found[meta_lv]) == (32.0, 128.0)
    assert not [lv for lv in found if "_replaced-" in lv], found
    assert _in_sync(node2, _minor_on(cc, name, node2.name), "Secondary")
    assert _md5(node2, f"/dev/{VG}/{data_lv}", 32) == digest

    # -p: the same on the primary, while the instance keeps running
    cc.gnt(f"gnt-instance replace-disks -p {name}")
    assert not [lv for lv in lvs(node1) if "_replaced-" in lv]
    assert _in_sync(node1, m1, "Primary")
    assert _md5(node1, f"/dev/{VG}/{data_lv}", 32) == digest
    assert _field(cc, name, "status") == "running"

    # -n: the secondary side moves to node3, node2 keeps nothing
    cc.gnt(f"gnt-instance replace-disks -n {node3.name} {name}")
    assert _field(cc, name, "snodes") == node3.name
    assert data_lv not in lvs(node2) and meta_lv not in lvs(node2)
    m3 = _minor_on(cc, name, node3.name)
    assert _in_sync(node3, m3, "Secondary")
    assert _md5(node3, f"/dev/{VG}/{data_lv}", 32) == digest

    # verify-disks finds a mirror someone disconnected and reconnects it
    port = _port(cc, name)
    _run(node3, f"drbdsetup disconnect ipv4:{node3.ip}:{port} ipv4:{node1.ip}:{port}")
    assert proc_drbd(node3)[m3][0] == "StandAlone"
    out = cc.gnt("gnt-cluster verify-disks")
    assert name in out, out
    assert _in_sync(node3, m3, "Secondary"), proc_drbd(node3)
    assert "No disks need to be activated." in cc.gnt("gnt-cluster verify-disks")

    # the secondary of a live instance becomes its primary, data included
    cc.gnt(f"gnt-instance failover -f {name}")
    assert _field(cc, name, "pnode") == node3.name
    assert _read(node3, m3, len(marker)) == marker
    cc.gnt(f"gnt-instance remove -f {name}")
    for node in cc.nodes:
        assert data_lv not in lvs(node)


def test_drbd_split_brain_is_reported_not_resolved(qa_cardume: CardumeCluster) -> None:
    """Both sides written while disconnected: verify-disks must say so and keep both."""
    cc = qa_cardume
    node1, node2, _ = _three(cc)
    name = "vmd-split"
    cc.gnt(f"gnt-instance add -t drbd --disk 0:size=16m -B memory=64 -o {OS} "
           f"-n {node1.name}:{node2.name} --no-name-check --no-ip-check {name}")
    m1, m2 = _minor_on(cc, name, node1.name), _minor_on(cc, name, node2.name)
    port = _port(cc, name)
    a1, a2 = f"ipv4:{node1.ip}:{port}", f"ipv4:{node2.ip}:{port}"
    _run(node1, f"drbdsetup disconnect {a1} {a2}")
    _run(node2, f"drbdsetup disconnect {a2} {a1}")
    # an admin (or a partitioned cluster) writes on both sides
    _run(node2, f"drbdsetup primary {m2}")
    _write(node2, m2, "written-on-node2")
    _run(node2, f"drbdsetup secondary {m2}")
    _write(node1, m1, "written-on-node1")
    res = cc.master.run("gnt-cluster verify-disks")
    text = res.out + res.err
    assert res.rc == 1, text
    assert "split brain" in text and name in text, text
    # nothing discarded: each side still has its own data
    assert _read(node1, m1, 16) == "written-on-node1"
    data_lv = _data_lvs(cc, name)[0]
    assert _run(node2, f"dd if=/dev/{VG}/{data_lv} bs=16 count=1 status=none") == \
        "written-on-node2"
    assert proc_drbd(node1)[m1][0] == "StandAlone"
    # the admin keeps the primary's side (README: 'Split brain'): node2 gets node1's data
    cc.gnt(f"gnt-instance replace-disks -s {name}")
    assert _in_sync(node1, m1, "Primary") and _in_sync(node2, m2, "Secondary")
    assert _run(node2, f"dd if=/dev/{VG}/{data_lv} bs=16 count=1 status=none") == \
        "written-on-node1"
    assert not [lv for lv in lvs(node2) if "_replaced-" in lv]
    assert cc.master.run("gnt-cluster verify-disks").ok
    cc.gnt(f"gnt-instance remove -f {name}")


def test_drbd_conversions_and_node_evacuation(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    node1, node2, node3 = _three(cc)
    name = "vmd-conv"
    cc.gnt(f"gnt-instance add -t plain --disk 0:size=32m -B memory=64 -o {OS} "
           f"-n {node2.name} --no-name-check --no-ip-check --no-start {name}")
    [plain_lv] = [f"{cc.disk_uuids(name)[0]}.disk0"]
    marker = "cardume-qa-convert"
    _run(node2, f"printf %s {marker} | dd of=/dev/{VG}/{plain_lv} conv=notrunc,fsync "
                "status=none")
    cc.gnt(f"gnt-instance modify -t drbd -n {node3.name} {name}")
    assert _field(cc, name, "disk_template") == "drbd"
    assert _field(cc, name, "snodes") == node3.name
    # the plain LV became the data side: same name, same data, now mirrored on node3
    assert plain_lv in lvs(node2) and plain_lv in lvs(node3)
    assert _run(node3, f"dd if=/dev/{VG}/{plain_lv} bs={len(marker)} count=1 "
                       "status=none") == marker

    # node2 is evacuated: its primary goes to the secondary, then its secondary elsewhere
    cc.gnt(f"gnt-instance startup {name}")
    cc.gnt(f"gnt-node evacuate -f {node2.name}")
    assert _field(cc, name, "pnode") == node3.name
    assert _field(cc, name, "snodes") == node1.name
    assert plain_lv not in lvs(node2)
    m3 = _minor_on(cc, name, node3.name)
    assert _read(node3, m3, len(marker)) == marker
    # gnt-node migrate moves every primary instance of a node to its secondary
    cc.gnt(f"gnt-node migrate -f {node3.name}")
    assert _field(cc, name, "pnode") == node1.name
    cc.gnt(f"gnt-node failover -f {node1.name}")
    assert _field(cc, name, "pnode") == node3.name

    cc.gnt(f"gnt-instance shutdown {name}")
    cc.gnt(f"gnt-instance modify -t plain {name}")
    assert _field(cc, name, "disk_template") == "plain"
    assert _field(cc, name, "snodes") == ""
    assert plain_lv in lvs(node3) and plain_lv not in lvs(node1)
    assert not [lv for lv in lvs(node3) if lv.endswith("_meta")]
    assert _run(node3, f"dd if=/dev/{VG}/{plain_lv} bs={len(marker)} count=1 "
                       "status=none") == marker
    cc.gnt(f"gnt-instance remove -f {name}")


def test_drbd_peer_unreachable_on_the_replication_network(qa_cardume: CardumeCluster) -> None:
    """The secondary's node daemon answers but DRBD can't reach its replication address:
    the create fails with a clear error after the connection timeout, leaving nothing."""
    cc = qa_cardume
    node1, node2 = _nodes(cc)
    before = {node.name: (lvs(node), proc_drbd(node)) for node in (node1, node2)}
    cc.gnt(f"gnt-node modify -s 192.168.77.99 {node2.name}")  # nobody has this address
    try:
        res = cc.master.run(f"gnt-instance add -t drbd --disk 0:size=16m -B memory=64 -o {OS} "
                            f"-n {node1.name}:{node2.name} --no-name-check --no-ip-check "
                            "vmd-unreachable", timeout=180)
    finally:
        cc.gnt(f"gnt-node modify -s {node2.ip} {node2.name}")
    message = res.err.strip()  # the job's progress lines go to stdout, the error to stderr
    assert not res.ok, res.out + message
    assert len(message.splitlines()) == 1, message
    assert "did not connect" in message and "192.168.77.99" in message, message
    assert "vmd-unreachable" not in cc.gnt("gnt-instance list --no-headers -o name")
    assert {node.name: (lvs(node), proc_drbd(node)) for node in (node1, node2)} == before


def test_drbd_disk_add_and_remove(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    node1, node2 = _nodes(cc)
    name = "vmd-disks"
    cc.gnt(f"gnt-instance add -t drbd --disk 0:size=16m -B memory=64 -o {OS} "
           f"-n {node1.name}:{node2.name} --no-name-check --no-ip-check {name}")
    cc.gnt(f"gnt-instance modify --disk add:size=24m {name}")  # while it runs
    assert _field(cc, name, "disk.sizes") == "16,24"
    uuid = cc.disk_uuids(name)[1]
    new_lvs = [f"{uuid}.disk1_data", f"{uuid}.disk1_meta"]
    for node in (node1, node2):
        found = lvs(node)
        assert [found.get(lv) for lv in new_lvs] == [24.0, 128.0], found
    info = cc.gnt(f"gnt-instance info {name}")
    assert info.count("in sync, status ok") == 4, info  # 2 disks x 2 nodes
    cc.gnt(f"gnt-instance shutdown {name}")
    cc.gnt(f"gnt-instance modify --disk 1:remove {name}")
    assert _field(cc, name, "disk.sizes") == "16"
    for node in (node1, node2):
        assert not set(new_lvs) & set(lvs(node))
    cc.gnt(f"gnt-instance remove -f {name}")


def test_drbd_auto_replace_and_secondary_evacuation(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    node1, node2, node3 = _three(cc)
    name = "vmd-auto"
    cc.gnt(f"gnt-instance add -t drbd --disk 0:size=16m -B memory=64 -o {OS} "
           f"-n {node1.name}:{node2.name} --no-name-check --no-ip-check {name}")
    # a failed disk under the secondary (DRBD detaches on I/O errors): -a finds and
    # replaces it there
    m2 = _minor_on(cc, name, node2.name)
    _run(node2, f"drbdsetup detach {m2}")
    assert proc_drbd(node2)[m2][2].startswith("Diskless")
    res = cc.master.run("gnt-cluster verify-disks")
    assert res.rc == 1 and f"replace-disks -s {name}" in res.out + res.err, res
    out = cc.gnt(f"gnt-instance replace-disks -a {name}")
    assert node2.name in out, out
    assert _in_sync(node2, m2, "Secondary")
    assert "nothing to replace" in cc.gnt(f"gnt-instance replace-disks -a {name}")
    # every secondary off node2, onto the node named
    cc.gnt(f"gnt-node evacuate -f -s -n {node3.name} {node2.name}")
    assert _field(cc, name, "snodes") == node3.name
    assert _field(cc, name, "pnode") == node1.name
    assert _in_sync(node3, _minor_on(cc, name, node3.name), "Secondary")
    cc.gnt(f"gnt-instance remove -f {name}")
