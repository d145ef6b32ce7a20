"""Placement on real LVM and DRBD (issue 14): the built-in allocator chooses a drbd pair
from the volume groups' real free space, moves a secondary off a node with
``gnt-node evacuate -I``, and refuses what fits nowhere, naming each node, with no volume
left behind.
"""

from __future__ import annotations

import re

import pytest
from qaharness.cardume import CardumeCluster
from qaharness.checks import lv_sizes as lvs
from qaharness.checks import proc_drbd
from qaharness.checks import run as _run

pytestmark = pytest.mark.qa

OS = "qa-os+default"
COMMON = f"-B memory=64 -o {OS} --no-name-check --no-ip-check --no-start"


def _field(cc: CardumeCluster, instance: str, field: str) -> str:
    return cc.gnt(f"gnt-instance list --no-headers -o {field} {instance}").strip()


def _minor(cc: CardumeCluster, instance: str, node: str) -> int:
    out = cc.gnt(f"gnt-instance info -s {instance}")
    found = dict(re.findall(r"node[AB]: (\S+), minor=(\d+)", out))
    return int(found[node])


def test_the_allocator_places_a_drbd_pair_and_moves_its_secondary(
        qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    by_name = {node.name: node for node in cc.nodes}
    name = "vmp-pair"
    out = cc.gnt(f"gnt-instance add -t drbd --disk 0:size=32m {COMMON} {name}", timeout=600)
    assert f"Selected nodes for instance {name} via allocator cardume" in out
    primary, secondary = _field(cc, name, "pnode"), _field(cc, name, "snodes")
    assert primary in by_name and secondary in by_name and primary != secondary
    data = [lv for lv in lvs(by_name[primary]) if lv.endswith(".disk0_data")]
    assert data and data[0] in lvs(by_name[secondary])
    marker = "cardume-qa-placed"
    cc.gnt(f"gnt-instance activate-disks {name}")
    m1 = _minor(cc, name, primary)
    assert proc_drbd(by_name[primary])[m1][0] == "Connected"
    _run(by_name[primary], f"printf %s {marker} | dd of=/dev/drbd{m1} conv=notrunc,fsync "
                           "status=none")

    # the secondary's node is emptied; the allocator picks the only other node
    out = cc.gnt(f"gnt-node evacuate -f -s -I cardume {secondary}", timeout=600)
    assert f"the new secondary of {name} via allocator cardume" in out
    [third] = [n for n in by_name if n not in (primary, secondary)]
    assert _field(cc, name, "snodes") == third
    assert data[0] not in lvs(by_name[secondary]) and data[0] in lvs(by_name[third])
    m3 = _minor(cc, name, third)
    assert proc_drbd(by_name[third])[m3][0] == "Connected"
    cc.gnt(f"gnt-instance deactivate-disks {name}")
    cc.gnt(f"gnt-instance failover -f {name}", timeout=600)
    cc.gnt(f"gnt-instance activate-disks {name}")
    assert _run(by_name[third], f"dd if=/dev/drbd{m3} bs={len(marker)} count=1 "
                                "status=none") == marker
    cc.gnt(f"gnt-instance remove -f {name}")


def test_a_drbd_pair_that_fits_nowhere_is_refused_per_node(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    before = {node.name: set(lvs(node)) for node in cc.nodes}
    res = cc.master.run(f"gnt-instance add -t drbd --disk 0:size=64g {COMMON} vmp-big")
    assert res.rc != 0
    line = (res.out + res.err).strip().splitlines()[-1]
    assert "can't find nodes for instance vmp-big with allocator 'cardume'" in line
    for node in cc.nodes:  # every node named, with its volume group's shortfall
        assert re.search(rf"{node.name}: volume group full \(needs \d+ MiB", line), line
    assert "vmp-big" not in cc.gnt("gnt-instance list --no-headers -o name")
    assert {node.name: set(lvs(node)) for node in cc.nodes} == before
