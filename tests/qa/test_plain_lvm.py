"""The ``plain`` disk template on real LVM, checked as an admin would (issue 4, point 1).

Every claim cardume makes about a plain disk is compared with what LVM itself reports on
the node (``lvs``, ``vgs``), and data written into an LV is read back after a move.
"""

from __future__ import annotations

import pytest
from qaharness.cardume import VG, CardumeCluster
from qaharness.checks import lv_sizes as lvs
from qaharness.checks import run as _run
from qaharness.vm import AgentError, Node

pytestmark = pytest.mark.qa

OS = "qa-os+default"
MARKER = "cardume-qa-plain-marker"


def _node(cc: CardumeCluster, name: str) -> Node:
    return next(node for node in cc.nodes if node.name == name)


def vgs(node: Node) -> tuple[float, float]:
    out = _run(node, f"vgs --noheadings --units m --nosuffix -o vg_size,vg_free {VG}")
    size, free = out.split()
    return float(size), float(free)


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.strip()]


def _num(text: str) -> float:
    return float(text.rstrip("MmGgTt"))


def _field(cc: CardumeCluster, instance: str, field: str) -> str:
    return cc.gnt(f"gnt-instance list --no-headers -o {field} {instance}").strip()


def _volumes(cc: CardumeCluster, node: str) -> dict[str, tuple[float, str]]:
    """``gnt-node volumes NODE``: LV name -> (size MiB, instance)."""
    out = cc.gnt(f"gnt-node volumes --no-headers --units m --separator=' ' "
                 f"-o vg,name,size,instance {node}")
    return {name: (_num(size), inst[0] if inst else "")
            for vg, name, size, *inst in _rows(out) if vg == VG}


def _disk_lvs(cc: CardumeCluster, instance: str) -> list[str]:
    """The LV names cardume gives the instance's disks: ``<disk uuid>.disk<index>``."""
    uuids = cc.disk_uuids(instance)
    return [f"{uuid}.disk{index}" for index, uuid in enumerate(uuids)]


def _lvs_of(node: Node, names: list[str]) -> dict[str, float]:
    return {name: size for name, size in lvs(node).items() if name in names}


def test_storage_reports_match_vgs(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    for node in cc.nodes:
        size, free = vgs(node)
        out = cc.gnt("gnt-node list-storage -t lvm-vg --no-headers --units m --separator=' ' "
                     f"-o node,name,size,free {node.name}")
        rows = _rows(out)
        assert [row[:2] for row in rows] == [[node.name, VG]], out
        assert [_num(v) for v in rows[0][2:]] == [size, free], (out, size, free)
        out = cc.gnt("gnt-node list --no-headers --units m --separator=' ' "
                     f"-o dtotal,dfree {node.name}")
        assert [_num(v) for v in out.split()] == [size, free], (out, size, free)


def test_plain_lifecycle(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    node1, node2 = cc.nodes[0], cc.nodes[1]
    name = "vmp1"
    before = {node.name: lvs(node) for node in cc.nodes}
    cc.gnt(f"gnt-instance add -t plain --disk 0:size=64m -o {OS} -B memory=64 "
           f"-n {node1.name} --no-name-check --no-ip-check {name}")
    assert _field(cc, name, "status") == "running"
    [lv0] = _disk_lvs(cc, name)
    assert _lvs_of(node1, [lv0]) == {lv0: 64.0}
    assert _volumes(cc, node1.name)[lv0] == (64.0, name)
    # the storage reports follow the allocation
    size, free = vgs(node1)
    out = cc.gnt("gnt-node list --no-headers --units m --separator=' ' "
                 f"-o dtotal,dfree {node1.name}")
    assert [_num(v) for v in out.split()] == [size, free], (out, size, free)
    assert free == vgs(node2)[1] - 64, "node1 should have 64 MiB less free than node2"

    cc.gnt(f"gnt-instance grow-disk {name} 0 32m")
    assert _lvs_of(node1, [lv0]) == {lv0: 96.0}
    assert _field(cc, name, "disk.sizes") == "96"

    cc.gnt(f"gnt-instance shutdown {name}")
    cc.gnt(f"gnt-instance modify --disk add:size=32m {name}")
    lvs_on_1 = _disk_lvs(cc, name)
    assert lvs_on_1[0] == lv0
    assert _lvs_of(node1, lvs_on_1) == {lv0: 96.0, lvs_on_1[1]: 32.0}
    assert _field(cc, name, "disk.sizes") == "96,32"

    # a marker written into the stopped instance's first disk must arrive on node2
    _run(node1, f"printf %s {MARKER} | dd of=/dev/{VG}/{lv0} conv=notrunc,fsync status=none")
    cc.gnt(f"gnt-instance move -f -n {node2.name} {name}")
    assert _field(cc, name, "pnode") == node2.name
    assert _lvs_of(node1, lvs_on_1) == {}, "the source LVs must be gone after the move"
    lvs_on_2 = _disk_lvs(cc, name)
    assert _lvs_of(node2, lvs_on_2) == {lvs_on_2[0]: 96.0, lvs_on_2[1]: 32.0}
    vols = _volumes(cc, node2.name)
    assert vols[lvs_on_2[0]] == (96.0, name), vols
    data = _run(node2, f"dd if=/dev/{VG}/{lvs_on_2[0]} bs={len(MARKER)} count=1 status=none")
    assert data == MARKER

    cc.gnt(f"gnt-instance remove -f {name}")
    assert {node.name: lvs(node) for node in cc.nodes} == before


def test_plain_adoption(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    node2 = cc.nodes[1]
    name, lv = "vmp-adopt", "qa-handmade"
    _run(node2, f"lvcreate -q -y -L 40m -n {lv} {VG}")
    try:
        cc.gnt(f"gnt-instance add -t plain --disk 0:adopt={lv} -o {OS} -B memory=64 "
               f"-n {node2.name} --no-install --no-name-check --no-ip-check {name}")
    except AgentError:
        _run(node2, f"lvremove -q -y {VG}/{lv}")
        raise
    [owned] = _disk_lvs(cc, name)
    assert lv not in lvs(node2), "the adopted LV keeps no hand-made name"
    assert _lvs_of(node2, [owned]) == {owned: 40.0}
    assert _field(cc, name, "disk.sizes") == "40"
    assert _volumes(cc, node2.name)[owned] == (40.0, name)
    cc.gnt(f"gnt-instance remove -f {name}")
    assert _lvs_of(node2, [owned]) == {}


def test_plain_disk_bigger_than_vg_is_refused(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    node1 = cc.nodes[0]
    before = lvs(node1)
    res = cc.master.run(f"gnt-instance add -t plain --disk 0:size=100g -o {OS} "
                        f"-n {node1.name} --no-name-check --no-ip-check vmp-huge")
    assert not res.ok, res
    message = (res.out + res.err).strip()
    assert len(message.splitlines()) == 1, message
    assert VG in message and "102400" in message, message
    assert lvs(node1) == before
    assert "vmp-huge" not in cc.gnt("gnt-instance list --no-headers -o name")
