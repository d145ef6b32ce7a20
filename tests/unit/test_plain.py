"""The plain template end to end without LVM: the master's logical units call the node's
real handlers, whose LVM commands go to a FakeRunner with scripted lvs/vgs output."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from cardume import constants, errors, objects
from cardume.cli import node as gnt_node
from cardume.cmdlib import instance_common as ic
from cardume.cmdlib.base import Context
from cardume.cmdlib.instance_create import LUInstanceCreate
from cardume.cmdlib.instance_ops import LUInstanceGrowDisk
from cardume.config import ssconf as ssconf_mod
from cardume.config.store import ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.master import storage_query
from cardume.node import facts
from cardume.node.cmd import FakeRunner
from cardume.node.instances import InstanceCalls
from cardume.paths import NodePaths, write_json_atomic
from cardume.rpc.calls import CALLS
from cardume.rpc.http import PeerInfo

PEER = PeerInfo(address="127.0.0.1", cert_der=None, fingerprint=None, verified=True)
LVM_TEMPLATES = ["plain", "file", "diskless"]


def vgs(fake: FakeRunner, size: str = "10236.00", free: str = "8188.00") -> None:
    fake.on(["vgs"], stdout=f"  xenvg|{size}|{free}\n")


class FakeRpc:
    """The master's NodeRpc, answered by one node's real handlers (node_info from facts)."""

    def __init__(self, calls: InstanceCalls, ssconf: dict[str, Any], fake: FakeRunner) -> None:
        self.calls, self.ssconf, self.fake = calls, ssconf, fake
        self.log: list[tuple[str, dict[str, Any]]] = []

    async def call(self, node: objects.Node, name: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        assert name in CALLS
        self.log.append((name, dict(args or {})))
        if name == "node_info":
            return facts.node_info(self.ssconf, None, runner=self.fake)
        return await self.calls.handlers()[name](dict(args or {}), PEER)


class Cluster:
    def __init__(self, tmp: Path, fake: FakeRunner) -> None:
        self.cfg = ConfigWriter(ConfigStore(os.path.join(tmp, "config.db")))
        group = objects.NodeGroup(name="default")
        self.node = objects.Node(name="node1.example.com", primary_ip="127.0.0.11",
                                 group=group.uuid, master_candidate=True)
        cluster = objects.Cluster(cluster_name="c.example.com", master_node=self.node.uuid,
                                  enabled_disk_templates=list(LVM_TEMPLATES),
                                  enabled_hypervisors=["fake"])
        asyncio.run(self.cfg.commit(add=[cluster, group, self.node]))
        self.ssconf = ssconf_mod.build(self.cfg.get_cluster(), self.cfg.nodes.values(), 1)
        paths = NodePaths(str(tmp / "node1"))
        write_json_atomic(paths.identity, {"name": "node1.example.com"})
        self.calls = InstanceCalls(paths, "node1.example.com", lambda: self.ssconf, fake)
        self.rpc = FakeRpc(self.calls, self.ssconf, fake)
        self.ctx = Context(cfg=self.cfg, rpc=self.rpc, locks=None, queue=None,  # type: ignore
                           resolver=None, master=None)  # type: ignore[arg-type]

    def run(self, lu_class: Any, **values: Any) -> Any:
        lu = lu_class(self.ctx, lu_class.OP(**values), None)

        async def go() -> Any:
            lu.check_arguments()
            await lu.check_prereq()
            return await lu.exec()
        return asyncio.run(go())

    def create(self, disks: list[dict[str, Any]], **values: Any) -> Any:
        return self.run(LUInstanceCreate, **{
            "instance_name": "vm1", "disk_template": "plain", "disks": disks,
            "pnode": "node1", "no_install": True, "start": False, "name_check": False,
            "ip_check": False, "nics": [], **values})


@pytest.fixture
def fake() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def cluster(tmp_path: Path, fake: FakeRunner) -> Cluster:
    return Cluster(tmp_path, fake)


# --- node facts -------------------------------------------------------------------------

def test_ssconf_carries_the_volume_group(cluster: Cluster) -> None:
    assert cluster.ssconf["volume_group_name"] == constants.DEFAULT_VG == "xenvg"


def test_node_info_reports_the_vg_for_plain(fake: FakeRunner) -> None:
    vgs(fake)
    ssconf = {"enabled_disk_templates": ["plain", "file"], "volume_group_name": "xenvg",
              "file_storage_dir": "/nonexistent"}
    assert facts.storage(ssconf, runner=fake) == [
        {"type": "lvm-vg", "key": "xenvg", "total": 10236, "free": 8188}]
    assert fake.commands("vgs")[0][-3:] == ["-o", "vg_name,vg_size,vg_free", "xenvg"]


def test_node_info_without_the_vg_falls_through_to_the_next_template(
        fake: FakeRunner, tmp_path: Path) -> None:
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

def test_create_plain_names_lvs_by_disk_uuid(cluster: Cluster, fake: FakeRunner) -> None:
    fake.on(["vgs"], stdout="  xenvg|10236.00|8188.00\n  fastvg|1000.00|1000.00\n")
    fake.on(["lvcreate"])
    cluster.create([{"size": 1024}, {"size": 512, "vg": "fastvg"}])
    inst = cluster.cfg.expand_instance("vm1")
    ids = [d.logical_id for d in inst.disks]
    assert ids == [["xenvg", f"{inst.disks[0].uuid}.disk0"],
                   ["fastvg", f"{inst.disks[1].uuid}.disk1"]]
    creates = fake.commands("lvcreate")
    assert len(creates) == 2
    assert creates[0][-4:] == ["-L1024m", "-n", f"{inst.disks[0].uuid}.disk0", "xenvg"]
    assert creates[1][-4:] == ["-L512m", "-n", f"{inst.disks[1].uuid}.disk1", "fastvg"]


def test_create_refuses_when_the_vg_is_too_small(cluster: Cluster, fake: FakeRunner) -> None:
    vgs(fake, free="500.00")
    with pytest.raises(errors.InsufficientResources, match="needed 1024 MiB, available 500"):
        cluster.create([{"size": 1024}])
    assert fake.commands("lvcreate") == []
    assert cluster.cfg.find_instance("vm1") is None


def test_failed_create_removes_the_lvs_it_made(cluster: Cluster, fake: FakeRunner) -> None:
    vgs(fake)
    fake.on(["lvcreate"])
    fake.on(["lvcreate"], rc=5, stderr="  Some LVM failure\n")
    fake.on(["lvremove"])
    with pytest.raises(errors.ExecError, match="Some LVM failure"):
        cluster.create([{"size": 100}, {"size": 100}])
    made = [argv[-2] for argv in fake.commands("lvcreate")]
    removed = [argv[-1] for argv in fake.commands("lvremove")]
    # newest first; the second disk's create failed, and LVM may still have made it half:
    # it is removed too (removing a missing volume is not an error)
    assert removed == [f"xenvg/{made[1]}", f"xenvg/{made[0]}"]
    assert cluster.cfg.find_instance("vm1") is None


def test_grow_and_remove_plain(cluster: Cluster, fake: FakeRunner) -> None:
    from cardume.cmdlib.instance import LUInstanceRemove
    vgs(fake)
    fake.on(["lvcreate"])
    cluster.create([{"size": 1024}])
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

def test_adopt_takes_the_lv_and_its_size(cluster: Cluster, fake: FakeRunner) -> None:
    fake.on(["lvs"], stdout="  mydata|2048.00|-wi-a-----\n")
    fake.on(["lvrename"])
    vgs(fake)
    cluster.create([{"adopt": "mydata", "size": 0}])
    disk = cluster.cfg.expand_instance("vm1").disks[0]
    assert disk.size == 2048
    assert disk.logical_id == ["xenvg", f"{disk.uuid}.disk0"]
    assert fake.commands("lvrename")[0][-3:] == ["xenvg", "mydata", f"{disk.uuid}.disk0"]
    assert fake.commands("lvcreate") == []


def test_adopt_refusals(cluster: Cluster, fake: FakeRunner) -> None:
    fake.on(["lvs"], rc=5, stderr='  Failed to find logical volume "xenvg/nope"\n')
    with pytest.raises(errors.WrongInput, match="missing logical volume.*xenvg/nope"):
        cluster.create([{"adopt": "nope"}])
    fake2 = FakeRunner()
    fake2.on(["lvs"], stdout="  busy|100.00|-wi-ao----\n")
    cluster.calls.runner = fake2
    with pytest.raises(errors.WrongState, match="in use"):
        cluster.create([{"adopt": "busy"}])
    with pytest.raises(errors.WrongInput, match="more than once"):
        cluster.create([{"adopt": "a"}, {"adopt": "a"}])
    with pytest.raises(errors.WrongInput, match="all disks are adopted or none"):
        cluster.create([{"adopt": "a"}, {"size": 10}])
    with pytest.raises(errors.WrongInput, match="only possible with the plain"):
        cluster.create([{"adopt": "a"}], disk_template="file")
    assert cluster.cfg.find_instance("vm1") is None


def test_check_disks_accepts_adoption_without_a_size() -> None:
    assert ic.check_disks("plain", [{"adopt": "lv0", "size": 0}]) == [
        {"adopt": "lv0", "size": 0, "mode": "rw"}]
    with pytest.raises(errors.WrongInput, match="either size or adopt"):
        ic.check_disks("plain", [{"adopt": "lv0", "size": 10}])


# --- gnt-node volumes / list-storage ---------------------------------------------------------

def test_node_volumes_and_storage_handlers(cluster: Cluster, fake: FakeRunner) -> None:
    fake.on(["lvs"], stdout="  xenvg|u1.disk0|1024.00|/dev/vdb(0),/dev/vdc(10)\n"
                            "  xenvg|spare|256.00|/dev/vdb(256)\n")
    fake.on(["vgs"], stdout="  xenvg|10236.00|8956.00\n")
    fake.on(["pvs"], stdout="  /dev/vdb|xenvg|5118.00|4000.00|a--\n"
                            "  /dev/vdd||1000.00|1000.00|---\n")
    vols = asyncio.run(cluster.calls.node_volumes({}, PEER))
    assert vols == [{"vg": "xenvg", "name": "u1.disk0", "size": 1024, "dev": "/dev/vdb"},
                    {"vg": "xenvg", "name": "u1.disk0", "size": 1024, "dev": "/dev/vdc"},
                    {"vg": "xenvg", "name": "spare", "size": 256, "dev": "/dev/vdb"}]
    assert fake.commands("lvs")[0][-3:] == ["-o", "vg_name,lv_name,lv_size,devices", "xenvg"]
    vg = asyncio.run(cluster.calls.node_storage({"type": "lvm-vg"}, PEER))
    assert vg == [{"name": "xenvg", "size": 10236, "used": 1280, "free": 8956,
                   "allocatable": True}]
    pv = asyncio.run(cluster.calls.node_storage({"type": "lvm-pv"}, PEER))
    assert [(p["name"], p["used"], p["allocatable"]) for p in pv] == [
        ("/dev/vdb", 1118, True), ("/dev/vdd", 0, False)]
    with pytest.raises(errors.WrongInput, match="unknown storage type"):
        asyncio.run(cluster.calls.node_storage({"type": "ceph"}, PEER))

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


def test_lv_chunks_for_move_and_zero_writes(cluster: Cluster, fake: FakeRunner,
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
    asyncio.run(cluster.calls.blockdev_write({"disk": spec, "offset": 4096, "zeros": 4096},
                                             PEER))
    assert device.read_bytes() == b"\xff" * 4096 + b"\0" * 4096
    chunk = asyncio.run(cluster.calls.blockdev_read(
        {"disk": spec, "offset": 4096, "length": 4096}, PEER))
    assert chunk == {"data": None, "length": 4096, "eof": False}
    with pytest.raises(errors.WrongInput, match="past the end"):
        asyncio.run(cluster.calls.blockdev_write(
            {"disk": spec, "offset": 8000, "zeros": 4096}, PEER))


def test_luxi_volumes_and_storage_name_owners_and_report_silent_nodes(
        cluster: Cluster, fake: FakeRunner) -> None:
    from types import SimpleNamespace

    from cardume.master.luxi_server import LuxiServer
    from cardume.rpc.transport import Result
    vgs(fake)
    fake.on(["lvcreate"])
    cluster.create([{"size": 1024}])
    lv = cluster.cfg.expand_instance("vm1").disks[0].logical_id[1]
    node2 = objects.Node(name="node2.example.com", primary_ip="127.0.0.12",
                         group=cluster.node.group)
    asyncio.run(cluster.cfg.commit(add=[node2]))
    fake.on(["lvs"], stdout=f"  xenvg|{lv}|1024.00|/dev/vdb(0)\n")
    asked: list[tuple[str, dict[str, Any]]] = []

    async def call_many(nodes: list[objects.Node], name: str,
                        args: dict[str, Any]) -> dict[str, Result]:
        out = {}
        for node in nodes:
            asked.append((name, args))
            if node.name == "node2.example.com":
                out[node.name] = Result(error=errors.ExecError("connection refused"))
            else:
                out[node.name] = Result(value=await cluster.calls.handlers()[name](args, PEER))
        return out

    daemon = SimpleNamespace(cfg=cluster.cfg, rpc=SimpleNamespace(call_many=call_many))
    server = LuxiServer(daemon)  # type: ignore[arg-type]
    reply = asyncio.run(server.methods["QueryNodeVolumes"]([]))
    assert reply == {"rows": [{"node": "node1.example.com", "phys": "/dev/vdb", "vg": "xenvg",
                               "name": lv, "size": 1024, "instance": "vm1"}],
                     "errors": {"node2.example.com": "connection refused"}}
    reply = asyncio.run(server.methods["QueryNodeStorage"](["node1"], None))
    assert asked[-1] == ("node_storage", {"type": "lvm-vg"})  # plain is enabled first
    assert reply["rows"] == [{"node": "node1.example.com", "type": "lvm-vg", "name": "xenvg",
                              "size": 10236, "used": 2048, "free": 8188, "allocatable": True}]
    with pytest.raises(errors.WrongInput, match="unknown storage type"):
        asyncio.run(server.methods["QueryNodeStorage"]([], "zfs"))


def test_node_volumes_says_when_the_vg_is_missing(cluster: Cluster, fake: FakeRunner) -> None:
    fake.on(["lvs"], rc=5, stderr='  Volume group "xenvg" not found\n'
                                  "  Cannot process volume group xenvg\n")
    with pytest.raises(errors.WrongState, match="volume group 'xenvg' does not exist"):
        asyncio.run(cluster.calls.node_volumes({}, PEER))


def test_rename_touches_no_lv_and_modify_adds_plain_disks(cluster: Cluster,
                                                          fake: FakeRunner) -> None:
    from cardume.cmdlib.instance_ops import LUInstanceRename
    vgs(fake)
    fake.on(["lvcreate"])
    cluster.create([{"size": 100}])
    before = cluster.cfg.expand_instance("vm1").disks[0].logical_id
    calls = len(fake.calls)
    cluster.run(LUInstanceRename, instance_name="vm1", new_name="vm2", name_check=False,
                ip_check=False)
    assert fake.calls[calls:] == []  # LV names are unique ids: nothing to rename
    assert cluster.cfg.expand_instance("vm2").disks[0].logical_id == before
    assert "blockdev_rename" not in [name for name, _ in cluster.rpc.log]
    from cardume.cmdlib.instance_ops import LUInstanceSetParams
    cluster.run(LUInstanceSetParams, instance_name="vm2", disks=[["add", -1, {"size": 64}]])
    disks = cluster.cfg.expand_instance("vm2").disks
    assert disks[1].logical_id == ["xenvg", f"{disks[1].uuid}.disk1"]
    assert fake.commands("lvcreate")[-1][-4:] == ["-L64m", "-n", f"{disks[1].uuid}.disk1",
                                                  "xenvg"]
    with pytest.raises(errors.WrongInput, match="only when the instance is created"):
        cluster.run(LUInstanceSetParams, instance_name="vm2",
                    disks=[["add", -1, {"adopt": "x"}]])


def test_failed_adoption_gives_the_volumes_their_names_back(cluster: Cluster,
                                                            fake: FakeRunner) -> None:
    fake.on(["lvs"], stdout="  a|100.00|-wi-a-----\n  b|200.00|-wi-a-----\n")
    vgs(fake)
    fake.on(["lvrename"])
    fake.on(["lvrename"], rc=5, stderr="  Some LVM failure\n")
    with pytest.raises(errors.ExecError, match="Some LVM failure"):
        cluster.create([{"adopt": "a"}, {"adopt": "b"}])
    renames = [args for name, args in cluster.rpc.log if name == "blockdev_rename"]
    assert [r["new_logical_id"][1].endswith(".disk0") for r in renames[:1]] == [True]
    assert renames[-1]["new_logical_id"] == ["xenvg", "a"]  # the first one, put back
    assert fake.commands("lvremove") == []  # an adopted volume is never removed
    assert cluster.cfg.find_instance("vm1") is None
    # a volume that already holds an instance's disk can't be adopted
    fake2 = FakeRunner()
    vgs(fake2)
    fake2.on(["lvcreate"])
    cluster.calls.runner = fake2
    cluster.rpc.fake = fake2
    cluster.create([{"size": 10}], instance_name="vm3")
    taken = cluster.cfg.expand_instance("vm3").disks[0].logical_id[1]
    with pytest.raises(errors.WrongInput, match="is used by instance vm3"):
        cluster.create([{"adopt": taken}])
