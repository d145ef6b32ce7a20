"""The plain template end to end without LVM: the master's logical units run through the
real opcode path (tests/unit/lu_kit.py) against the node's real handlers, whose LVM commands
go to a FakeRunner with scripted lvs/vgs output."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lu_kit
import pytest

from cardume import constants, errors, objects
from cardume.cli import node as gnt_node
from cardume.cmdlib import instance_common as ic
from cardume.cmdlib.instance_create import LUInstanceCreate
from cardume.cmdlib.instance_ops import LUInstanceGrowDisk
from cardume.master import storage_query
from cardume.node import facts
from cardume.node.cmd import FakeRunner

NODE = "node1.example.com"
LVM_TEMPLATES = ["plain", "file", "diskless"]


def vgs(fake: FakeRunner, size: str = "10236.00", free: str = "8188.00") -> None:
    fake.on(["vgs"], stdout=f"  xenvg|{size}|{free}\n")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[lu_kit.LuKit]:
    kit = lu_kit.make(tmp_path / "kit", nodes=[NODE], templates=LVM_TEMPLATES)
    try:
        yield kit
    finally:
        kit.close()


@pytest.fixture
def fake(cluster: lu_kit.LuKit) -> FakeRunner:
    return cluster.runners[NODE]


def create(cluster: lu_kit.LuKit, disks: list[dict[str, Any]], **values: Any) -> Any:
    return cluster.run(LUInstanceCreate, **{
        "instance_name": "vm1", "disk_template": "plain", "disks": disks,
        "pnode": "node1", "no_install": True, "start": False, "name_check": False,
        "ip_check": False, "nics": [], **values})


# --- node facts -------------------------------------------------------------------------

def test_ssconf_carries_the_volume_group(cluster: lu_kit.LuKit) -> None:
    ssconf = cluster.daemons[NODE].ssconf()  # as the master's redistribution wrote it
    assert ssconf["volume_group_name"] == constants.DEFAULT_VG == "xenvg"


def test_node_info_reports_the_vg_for_plain() -> None:
    fake = FakeRunner()
    vgs(fake)
    ssconf = {"enabled_disk_templates": ["plain", "file"], "volume_group_name": "xenvg",
              "file_storage_dir": "/nonexistent"}
    assert facts.storage(ssconf, runner=fake) == [
        {"type": "lvm-vg", "key": "xenvg", "total": 10236, "free": 8188}]
    assert fake.commands("vgs")[0][-3:] == ["-o", "vg_name,vg_size,vg_free", "xenvg"]


def test_node_info_without_the_vg_falls_through_to_the_next_template(tmp_path: Path) -> None:
    fake = FakeRunner()
    fake.on(["vgs"], rc=5, stderr='  Volume group "xenvg" not found\n')
    ssconf = {"enabled_disk_templates": ["drbd", "plain", "file"],
              "volume_group_name": "xenvg", "file_storage_dir": str(tmp_path)}
    found = facts.storage(ssconf, runner=fake)
    assert [(item["type"], item["key"]) for item in found] == [("file", str(tmp_path))]
    # no LVM template enabled: no LVM command at all
    fake.calls.clear()
    assert facts.storage({"enabled_disk_templates": ["diskless"],
                          "volume_group_name": "xenvg"}, runner=fake) == []
    assert fake.calls == []


# --- create, grow, remove on the master --------------------------------------------------

def test_create_plain_names_lvs_by_disk_uuid(cluster: lu_kit.LuKit, fake: FakeRunner) -> None:
    fake.on(["vgs"], stdout="  xenvg|10236.00|8188.00\n  fastvg|1000.00|1000.00\n")
    fake.on(["lvcreate"])
    create(cluster, [{"size": 1024}, {"size": 512, "vg": "fastvg"}])
    inst = cluster.cfg.expand_instance("vm1")
    ids = [d.logical_id for d in inst.disks]
    assert ids == [["xenvg", f"{inst.disks[0].uuid}.disk0"],
                   ["fastvg", f"{inst.disks[1].uuid}.disk1"]]
    creates = fake.commands("lvcreate")
    assert len(creates) == 2
    assert creates[0][-4:] == ["-L1024m", "-n", f"{inst.disks[0].uuid}.disk0", "xenvg"]
    assert creates[1][-4:] == ["-L512m", "-n", f"{inst.disks[1].uuid}.disk1", "fastvg"]


def test_create_refuses_when_the_vg_is_too_small(cluster: lu_kit.LuKit, fake: FakeRunner) -> None:
    vgs(fake, free="500.00")
    with pytest.raises(errors.InsufficientResources, match="needed 1024 MiB, available 500"):
        create(cluster, [{"size": 1024}])
    assert fake.commands("lvcreate") == []
    assert cluster.cfg.find_instance("vm1") is None


def test_failed_create_removes_the_lvs_it_made(cluster: lu_kit.LuKit, fake: FakeRunner) -> None:
    vgs(fake)
    fake.on(["lvcreate"])
    fake.on(["lvcreate"], rc=5, stderr="  Some LVM failure\n")
    fake.on(["lvremove"])
    with pytest.raises(errors.ExecError, match="Some LVM failure"):
        create(cluster, [{"size": 100}, {"size": 100}])
    made = [argv[-2] for argv in fake.commands("lvcreate")]
    removed = [argv[-1] for argv in fake.commands("lvremove")]
    # newest first; the second disk's create failed, and LVM may still have made it half:
    # it is removed too (removing a missing volume is not an error)
    assert removed == [f"xenvg/{made[1]}", f"xenvg/{made[0]}"]
    assert cluster.cfg.find_instance("vm1") is None


def test_grow_and_remove_plain(cluster: lu_kit.LuKit, fake: FakeRunner) -> None:
    from cardume.cmdlib.instance import LUInstanceRemove
    vgs(fake)
    fake.on(["lvcreate"])
    create(cluster, [{"size": 1024}])
    lv = cluster.cfg.expand_instance("vm1").disks[0].logical_id[1]
    fake.on(["lvs"], stdout=f"  {lv}|1024.00|-wi-a-----\n")
    fake.on(["lvextend"])
    cluster.run(LUInstanceGrowDisk, instance_name="vm1", disk=0, amount=512)
    assert fake.commands("lvextend")[0][-2:] == ["-L+512m", f"xenvg/{lv}"]
    assert cluster.cfg.expand_instance("vm1").disks[0].size == 1536
    with pytest.raises(errors.InsufficientResources):
        cluster.run(LUInstanceGrowDisk, instance_name="vm1", disk=0, amount=9000)
    fake.on(["lvremove"])
    cluster.run(LUInstanceRemove, instance_name="vm1")
    assert fake.commands("lvremove")[-1][-1] == f"xenvg/{lv}"
    assert cluster.cfg.find_instance("vm1") is None


# --- adoption ----------------------------------------------------------------------------

def test_adopt_takes_the_lv_and_its_size(cluster: lu_kit.LuKit, fake: FakeRunner) -> None:
    fake.on(["lvs"], stdout="  mydata|2048.00|-wi-a-----\n")
    fake.on(["lvrename"])
    vgs(fake)
    create(cluster, [{"adopt": "mydata", "size": 0}])
    disk = cluster.cfg.expand_instance("vm1").disks[0]
    assert disk.size == 2048
    assert disk.logical_id == ["xenvg", f"{disk.uuid}.disk0"]
    assert fake.commands("lvrename")[0][-3:] == ["xenvg", "mydata", f"{disk.uuid}.disk0"]
    assert fake.commands("lvcreate") == []


def test_adopt_refusals(cluster: lu_kit.LuKit, fake: FakeRunner) -> None:
    fake.on(["lvs"], rc=5, stderr='  Failed to find logical volume "xenvg/nope"\n')
    with pytest.raises(errors.WrongInput, match="missing logical volume.*xenvg/nope"):
        create(cluster, [{"adopt": "nope"}])
    fake2 = FakeRunner()
    fake2.on(["lvs"], stdout="  busy|100.00|-wi-ao----\n")
    cluster.use_runner(NODE, fake2)
    with pytest.raises(errors.WrongState, match="in use"):
        create(cluster, [{"adopt": "busy"}])
    with pytest.raises(errors.WrongInput, match="more than once"):
        create(cluster, [{"adopt": "a"}, {"adopt": "a"}])
    with pytest.raises(errors.WrongInput, match="all disks are adopted or none"):
        create(cluster, [{"adopt": "a"}, {"size": 10}])
    with pytest.raises(errors.WrongInput, match="only possible with the plain"):
        create(cluster, [{"adopt": "a"}], disk_template="file")
    assert cluster.cfg.find_instance("vm1") is None


def test_check_disks_accepts_adoption_without_a_size() -> None:
    assert ic.check_disks("plain", [{"adopt": "lv0", "size": 0}]) == [
        {"adopt": "lv0", "size": 0, "mode": "rw"}]
    with pytest.raises(errors.WrongInput, match="either size or adopt"):
        ic.check_disks("plain", [{"adopt": "lv0", "size": 10}])


# --- gnt-node volumes / list-storage ---------------------------------------------------------

def test_node_volumes_and_storage_handlers(cluster: lu_kit.LuKit, fake: FakeRunner) -> None:
    fake.on(["lvs"], stdout="  xenvg|u1.disk0|1024.00|/dev/vdb(0),/dev/vdc(10)\n"
                            "  xenvg|spare|256.00|/dev/vdb(256)\n")
    fake.on(["vgs"], stdout="  xenvg|10236.00|8956.00\n")
    fake.on(["pvs"], stdout="  /dev/vdb|xenvg|5118.00|4000.00|a--\n"
                            "  /dev/vdd||1000.00|1000.00|---\n")
    vols = cluster.call(NODE, "node_volumes")
    assert vols == [{"vg": "xenvg", "name": "u1.disk0", "size": 1024, "dev": "/dev/vdb"},
                    {"vg": "xenvg", "name": "u1.disk0", "size": 1024, "dev": "/dev/vdc"},
                    {"vg": "xenvg", "name": "spare", "size": 256, "dev": "/dev/vdb"}]
    assert fake.commands("lvs")[0][-3:] == ["-o", "vg_name,lv_name,lv_size,devices", "xenvg"]
    vg = cluster.call(NODE, "node_storage", type="lvm-vg")
    assert vg == [{"name": "xenvg", "size": 10236, "used": 1280, "free": 8956,
                   "allocatable": True}]
    pv = cluster.call(NODE, "node_storage", type="lvm-pv")
    assert [(p["name"], p["used"], p["allocatable"]) for p in pv] == [
        ("/dev/vdb", 1118, True), ("/dev/vdd", 0, False)]
    with pytest.raises(errors.WrongInput, match="unknown storage type"):
        cluster.call(NODE, "node_storage", type="ceph")

    inst = objects.Instance(name="vm1", disks=[objects.Disk(logical_id=["xenvg", "u1.disk0"])])
    rows = storage_query.volume_rows("node1", vols, objects.lv_owners([inst]))
    args = argparse.Namespace(output=None, no_headers=False, separator=None, units=None,
                              verbose=False)
    assert gnt_node.format_rows(gnt_node.VOLUME_FIELDS, rows, args).splitlines() == [
        "Node  PhysDev  VG    Name     Size Instance",
        "node1 /dev/vdb xenvg spare    256M -",
        "node1 /dev/vdb xenvg u1.disk0 1.0G vm1",
        "node1 /dev/vdc xenvg u1.disk0 1.0G vm1",
    ]
    rows = storage_query.storage_rows("node1", "lvm-vg", vg)
    assert gnt_node.format_rows(gnt_node.STORAGE_FIELDS, rows, args).splitlines() == [
        "Node  Type   Name   Size Used Free Allocatable",
        "node1 lvm-vg xenvg 10.0G 1.2G 8.7G Y",
    ]


def test_lv_chunks_for_move_and_zero_writes(cluster: lu_kit.LuKit, fake: FakeRunner,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """blockdev_read/write work on an LV's device node (a file stands in for /dev/VG/LV);
    "zeros" overwrites stale data a new LV may hold."""
    from cardume.node.storage.lvm import LogicalVolume
    device = tmp_path / "lv"
    device.write_bytes(b"\xff" * 8192)
    monkeypatch.setattr(LogicalVolume, "path", property(lambda self: str(device)))
    fake.on(["lvs"], stdout="  u1.disk0|1.00|-wi-a-----\n")
    spec = {"dev_type": "plain", "logical_id": ["xenvg", "u1.disk0"], "size": 1}
    cluster.call(NODE, "blockdev_write", disk=spec, offset=4096, zeros=4096)
    assert device.read_bytes() == b"\xff" * 4096 + b"\0" * 4096
    chunk = cluster.call(NODE, "blockdev_read", disk=spec, offset=4096, length=4096)
    assert chunk == {"data": None, "length": 4096, "eof": False}
    with pytest.raises(errors.WrongInput, match="past the end"):
        cluster.call(NODE, "blockdev_write", disk=spec, offset=8000, zeros=4096)


def test_luxi_volumes_and_storage_name_owners_and_report_silent_nodes(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from cardume.master.luxi_server import LuxiServer
    kit = lu_kit.make(tmp_path / "kit", nodes=[NODE, "node2.example.com"],
                      templates=LVM_TEMPLATES)
    try:
        fake = kit.runners[NODE]
        vgs(fake)
        fake.on(["lvcreate"])
        create(kit, [{"size": 1024}])
        lv = kit.cfg.expand_instance("vm1").disks[0].logical_id[1]
        fake.on(["lvs"], stdout=f"  xenvg|{lv}|1024.00|/dev/vdb(0)\n")
        kit.transport.down.add("node2.example.com")
        server = LuxiServer(SimpleNamespace(cfg=kit.cfg, rpc=kit.rpc))  # type: ignore[arg-type]
        reply = kit.sync(server.methods["QueryNodeVolumes"]([]))
        assert reply == {"rows": [{"node": NODE, "phys": "/dev/vdb", "vg": "xenvg",
                                   "name": lv, "size": 1024, "instance": "vm1"}],
                         "errors": {"node2.example.com":
                                    "node node2.example.com: connection refused"}}
        reply = kit.sync(server.methods["QueryNodeStorage"](["node1"], None))
        assert kit.asked[-1] == (NODE, "node_storage", {"type": "lvm-vg"})  # plain comes first
        assert reply["rows"] == [{"node": NODE, "type": "lvm-vg", "name": "xenvg",
                                  "size": 10236, "used": 2048, "free": 8188,
                                  "allocatable": True}]
        with pytest.raises(errors.WrongInput, match="unknown storage type"):
            kit.sync(server.methods["QueryNodeStorage"]([], "zfs"))
    finally:
        kit.close()


def test_node_volumes_says_when_the_vg_is_missing(cluster: lu_kit.LuKit, fake: FakeRunner) -> None:
    fake.on(["lvs"], rc=5, stderr='  Volume group "xenvg" not found\n'
                                  "  Cannot process volume group xenvg\n")
    with pytest.raises(errors.WrongState, match="volume group 'xenvg' does not exist"):
        cluster.call(NODE, "node_volumes")


def test_rename_touches_no_lv_and_modify_adds_plain_disks(cluster: lu_kit.LuKit,
                                                          fake: FakeRunner) -> None:
    from cardume.cmdlib.instance_ops import LUInstanceRename
    vgs(fake)
    fake.on(["lvcreate"])
    create(cluster, [{"size": 100}])
    before = cluster.cfg.expand_instance("vm1").disks[0].logical_id
    calls = len(fake.calls)
    cluster.run(LUInstanceRename, instance_name="vm1", new_name="vm2", name_check=False,
                ip_check=False)
    assert fake.calls[calls:] == []  # LV names are unique ids: nothing to rename
    assert cluster.cfg.expand_instance("vm2").disks[0].logical_id == before
    assert "blockdev_rename" not in [name for _, name, _ in cluster.asked]
    from cardume.cmdlib.instance_setparams import LUInstanceSetParams
    cluster.run(LUInstanceSetParams, instance_name="vm2", disks=[["add", -1, {"size": 64}]])
    disks = cluster.cfg.expand_instance("vm2").disks
    assert disks[1].logical_id == ["xenvg", f"{disks[1].uuid}.disk1"]
    assert fake.commands("lvcreate")[-1][-4:] == ["-L64m", "-n", f"{disks[1].uuid}.disk1",
                                                  "xenvg"]
    with pytest.raises(errors.WrongInput, match="only when the instance is created"):
        cluster.run(LUInstanceSetParams, instance_name="vm2",
                    disks=[["add", -1, {"adopt": "x"}]])


def test_failed_adoption_gives_the_volumes_their_names_back(cluster: lu_kit.LuKit,
                                                            fake: FakeRunner) -> None:
    fake.on(["lvs"], stdout="  a|100.00|-wi-a-----\n  b|200.00|-wi-a-----\n")
    vgs(fake)
    fake.on(["lvrename"])
    fake.on(["lvrename"], rc=5, stderr="  Some LVM failure\n")
    with pytest.raises(errors.ExecError, match="Some LVM failure"):
        create(cluster, [{"adopt": "a"}, {"adopt": "b"}])
    renames = [args for _, name, args in cluster.asked if name == "blockdev_rename"]
    assert [r["new_logical_id"][1].endswith(".disk0") for r in renames[:1]] == [True]
    assert renames[-1]["new_logical_id"] == ["xenvg", "a"]  # the first one, put back
    assert fake.commands("lvremove") == []  # an adopted volume is never removed
    assert cluster.cfg.find_instance("vm1") is None
    # a volume that already holds an instance's disk can't be adopted
    fake2 = FakeRunner()
    vgs(fake2)
    fake2.on(["lvcreate"])
    cluster.use_runner(NODE, fake2)
    create(cluster, [{"size": 10}], instance_name="vm3")
    taken = cluster.cfg.expand_instance("vm3").disks[0].logical_id[1]
    with pytest.raises(errors.WrongInput, match="is used by instance vm3"):
        create(cluster, [{"adopt": taken}])
