"""gnt-backup's logical units and node handlers through the real opcode path (lu_kit): the
exports each node has, their removal, what an export refuses before changing anything, an
import taking its defaults from config.ini, and the node's checks of the names it is sent.
(Running the OS export and import scripts needs loop devices: tests/integration/test_backup.py
does that on a local cluster.)"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lu_kit
import pytest

from cardume import errors
from cardume.cmdlib import backup_config
from cardume.cmdlib.backup import (
    LUBackupExport,
    LUBackupPrepare,
    LUBackupQuery,
    LUBackupRemove,
)
from cardume.cmdlib.instance_create import LUInstanceCreate
from cardume.node.cmd import FakeRunner
from cardume.rpc.wire import DiskSpec, InstanceSpec

NODES = ("node1", "node2", "node3")
WORK = ".tmp-" + "ab" * 16


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[lu_kit.LuKit]:
    made = lu_kit.make(tmp_path / "kit", nodes=NODES, templates=("file", "diskless"),
                        runner_default=(0, "", ""))
    try:
        yield made
    finally:
        made.close()


def node_call(kit: lu_kit.LuKit, node: str, call: str, **args: object) -> Any:
    """One node call as the master makes it (lu_kit.call takes a 'name' of its own)."""
    return kit.sync(kit.rpc.call(kit.cfg.expand_node(node), call, dict(args)))


def export_root(kit: lu_kit.LuKit, node: str) -> Path:
    return Path(kit.paths[node].export_dir)


CONFIG = """[export]
version = 0
timestamp = 1700000000
source = x
os = dummy+default
compression = none

[instance]
name = old
disk_template = file
hypervisor = fake
tags = a b
nic0_mac = aa:00:00:00:00:01
nic0_ip = None
nic0_network = None
nic0_name = None
nic0_link = br0
nic0_mode = bridged
nic0_vlan =
nic_count = 1
disk0_ivname = disk/0
disk0_dump = dump0
disk0_size = 8
disk0_name = None
disk_count = 1

[backend]
maxmem = 96
minmem = 64
vcpus = 2
auto_balance = True

[hypervisor]

[os]
"""


def place_export(kit: lu_kit.LuKit, node: str, name: str, config: str = CONFIG) -> Path:
    folder = export_root(kit, node) / name
    folder.mkdir(parents=True)
    (folder / "config.ini").write_text(config)
    (folder / "dump0").write_bytes(b"x" * 4096)
    return folder


def create_file_instance(kit: lu_kit.LuKit, name: str, template: str = "file") -> None:
    kit.run(LUInstanceCreate, instance_name=name, disk_template=template,
            disks=[{"size": 8}] if template == "file" else [], pnode="node1",
            no_install=True, start=False, name_check=False, ip_check=False, nics=[])


# --- list and remove -------------------------------------------------------------------------


def test_the_query_says_which_node_has_which_export(kit: lu_kit.LuKit) -> None:
    place_export(kit, "node2", "vm1")
    place_export(kit, "node2", "vm0")
    (export_root(kit, "node3") / WORK).mkdir(parents=True)  # unfinished: not an export
    assert kit.run(LUBackupQuery) == {"node1": [], "node2": ["vm0", "vm1"], "node3": []}
    assert kit.run(LUBackupQuery, nodes=["node2"]) == {"node2": ["vm0", "vm1"]}
    with pytest.raises(errors.CardumeError, match="node9"):
        kit.run(LUBackupQuery, nodes=["node9"])


def test_remove_takes_the_export_away_from_every_node(kit: lu_kit.LuKit) -> None:
    place_export(kit, "node2", "vm1")
    place_export(kit, "node3", "vm1")
    keep = place_export(kit, "node3", "vm2")
    kit.run(LUBackupRemove, instance_name="vm1")
    assert not (export_root(kit, "node2") / "vm1").exists()
    assert not (export_root(kit, "node3") / "vm1").exists()
    assert (keep / "config.ini").is_file()


def test_removing_a_missing_export_is_an_error_naming_it(kit: lu_kit.LuKit) -> None:
    keep = place_export(kit, "node2", "vm2")
    with pytest.raises(errors.UnknownEntity, match="vm1"):
        kit.run(LUBackupRemove, instance_name="vm1")
    assert (keep / "config.ini").is_file()


# --- what an export refuses ----------------------------------------------------------------


def test_an_export_refuses_bad_requests_before_changing_anything(kit: lu_kit.LuKit) -> None:
    create_file_instance(kit, "vm1")
    create_file_instance(kit, "vm2", "diskless")
    with pytest.raises(errors.WrongInput, match="not supported yet"):
        kit.run(LUBackupExport, instance_name="vm1", target_node="node2", mode="remote")
    with pytest.raises(errors.WrongInput, match="-n NODE"):
        kit.run(LUBackupExport, instance_name="vm1")
    with pytest.raises(errors.CardumeError, match="node9"):
        kit.run(LUBackupExport, instance_name="vm1", target_node="node9")
    with pytest.raises(errors.CardumeError, match="vm9"):
        kit.run(LUBackupExport, instance_name="vm9", target_node="node2")
    with pytest.raises(errors.WrongInput, match="no disks"):
        kit.run(LUBackupExport, instance_name="vm2", target_node="node2")
    with pytest.raises(errors.WrongInput, match="zero-free-space"):
        kit.run(LUBackupExport, instance_name="vm1", target_node="node2",
                zero_free_space=True)
    assert all(not export_root(kit, n).exists() or not any(export_root(kit, n).iterdir())
               for n in NODES)
    assert not [a for a in kit.asked if a[1].startswith("export_")]


def test_prepare_is_nothing_to_do_for_a_local_export(kit: lu_kit.LuKit) -> None:
    create_file_instance(kit, "vm1")
    assert kit.run(LUBackupPrepare, instance_name="vm1", mode="local") is None
    with pytest.raises(errors.WrongInput, match="remote"):
        kit.run(LUBackupPrepare, instance_name="vm1", mode="remote")


# --- import ----------------------------------------------------------------------------------


def test_an_import_takes_its_defaults_from_config_ini(kit: lu_kit.LuKit) -> None:
    place_export(kit, "node2", "old")
    kit.run(LUInstanceCreate, instance_name="new", mode="import", src_node="node2",
            src_path="old", pnode="node3", no_install=True, start=False,
            name_check=False, ip_check=False)
    inst = kit.cfg.expand_instance("new")
    assert (inst.disk_template, [d.size for d in inst.disks], inst.os, inst.hypervisor) == (
        "file", [8], "dummy+default", "fake")
    assert (inst.beparams["maxmem"], inst.beparams["minmem"], inst.beparams["vcpus"]) == (
        96, 64, 2)
    assert "auto_balance" not in inst.beparams  # the cluster's default: not made its own
    assert [n.mac for n in inst.nics] == ["aa:00:00:00:00:01"]
    assert inst.nics[0].nicparams.get("link") == "br0"
    assert inst.tags == ["a", "b"]
    assert kit.cfg.nodes[inst.primary_node].name == "node3"


def test_an_import_finds_the_export_without_a_source_node(kit: lu_kit.LuKit) -> None:
    place_export(kit, "node3", "old")
    kit.run(LUInstanceCreate, instance_name="old", mode="import", pnode="node1",
            disk_template="file", disks=[{"size": 16}], no_install=True, start=False,
            name_check=False, ip_check=False)
    inst = kit.cfg.expand_instance("old")
    assert [d.size for d in inst.disks] == [16]  # what was given beats the export


def test_an_import_of_nothing_makes_nothing(kit: lu_kit.LuKit) -> None:
    place_export(kit, "node2", "old")
    with pytest.raises(errors.UnknownEntity, match="nosuch"):
        kit.run(LUInstanceCreate, instance_name="new", mode="import", src_node="node2",
                src_path="nosuch", pnode="node3", name_check=False, ip_check=False)
    with pytest.raises(errors.UnknownEntity, match="'new'"):
        kit.run(LUInstanceCreate, instance_name="new", mode="import", pnode="node3",
                name_check=False, ip_check=False)
    with pytest.raises(errors.WrongInput, match="has 1 disk"):
        kit.run(LUInstanceCreate, instance_name="new", mode="import", src_node="node2",
                src_path="old", pnode="node3", disks=[{"size": 8}, {"size": 8}],
                name_check=False, ip_check=False)
    with pytest.raises(errors.WrongInput, match="not an export directory"):
        kit.run(LUInstanceCreate, instance_name="new", mode="import", src_node="node2",
                src_path="/etc", pnode="node3", name_check=False, ip_check=False)
    assert kit.cfg.find_instance("new") is None


def test_a_create_still_needs_a_disk_template(kit: lu_kit.LuKit) -> None:
    with pytest.raises(errors.WrongInput, match="-t TEMPLATE"):
        kit.run(LUInstanceCreate, instance_name="new", pnode="node1", no_install=True,
                name_check=False, ip_check=False)


# --- the node's side -------------------------------------------------------------------------


def test_a_dump_moves_in_chunks_and_the_staging_directory_becomes_the_export(
        kit: lu_kit.LuKit) -> None:
    data = base64.b64encode(b"hello").decode()
    node_call(kit, "node2", "export_write", work=WORK, name="d0", offset=0, data=data)
    node_call(kit, "node2", "export_write", work=WORK, name="d0", offset=5, zeros=1024)
    chunk = node_call(kit, "node2", "export_read", directory=WORK, name="d0", offset=0,
                     length=4096)
    assert (base64.b64decode(chunk["data"]), chunk["length"], chunk["eof"]) == (
        b"hello" + bytes(1024), 1029, True)
    assert node_call(kit, "node2", "export_list") == []  # unfinished: no export yet
    node_call(kit, "node2", "export_finalize", work=WORK, name="vm1", config=CONFIG)
    assert node_call(kit, "node2", "export_list") == ["vm1"]
    assert not (export_root(kit, "node2") / WORK).exists()
    info = node_call(kit, "node2", "export_info", path=str(export_root(kit, "node2") / "vm1"))
    assert info["name"] == "vm1" and backup_config.parse(info["config"]).name == "old"
    node_call(kit, "node2", "export_remove", name="vm1")
    assert node_call(kit, "node2", "export_list") == []


@pytest.mark.parametrize("call, args", [
    ("export_write", {"work": "../x", "name": "d0", "offset": 0, "zeros": 1}),
    ("export_write", {"work": WORK, "name": "../d0", "offset": 0, "zeros": 1}),
    ("export_abort", {"work": "vm1"}),
    ("export_remove", {"name": ".."}),
    ("export_remove", {"name": "a/b"}),
    ("export_info", {"path": "/etc"}),
    ("export_read", {"directory": "vm1", "name": "config.ini", "offset": 0,
                     "length": 64 * 1024 * 1024}),
])
def test_the_node_refuses_names_outside_its_export_directory(
        kit: lu_kit.LuKit, call: str, args: dict[str, object]) -> None:
    with pytest.raises(errors.CardumeError) as caught:
        node_call(kit, "node2", call, **args)
    assert "\n" not in caught.value.message
    assert not (Path(kit.paths["node2"].root).parent / "x").exists()


def test_a_plain_disk_is_snapshotted_by_lvm_and_the_abort_removes_the_snapshot(
        kit: lu_kit.LuKit) -> None:
    runner = kit.use_runner("node1", FakeRunner(default=(0, "", "")))
    spec = InstanceSpec(name="vm1", os="dummy+default", disks=[
        DiskSpec(dev_type="plain", logical_id=["xenvg", "d0"], size=64)])
    reply = node_call(kit, "node1", "export_snapshot", instance=spec.to_dict(), index=0,
                      work=WORK)
    snapshot_lv = "d0.snap-" + "ab" * 16
    assert reply == {"snapshot": f"lvm:xenvg/{snapshot_lv}"}
    [lvcreate] = runner.commands("lvcreate")
    assert lvcreate[-5:] == ["-s", "-L64m", "-n", snapshot_lv, "xenvg/d0"]
    node_call(kit, "node1", "export_abort", work=WORK)
    assert [argv[-1] for argv in runner.commands("lvremove")] == [f"xenvg/{snapshot_lv}"]
    assert not (export_root(kit, "node1") / WORK).exists()


def test_an_export_may_only_read_its_own_snapshots(kit: lu_kit.LuKit) -> None:
    spec = InstanceSpec(name="vm1", os="dummy+default", disks=[
        DiskSpec(dev_type="plain", logical_id=["xenvg", "d0"], size=64)])
    with pytest.raises(errors.WrongInput, match="not a snapshot of this export"):
        node_call(kit, "node1", "export_disk", instance=spec.to_dict(), index=0,
                  work=WORK, snapshot="lvm:xenvg/root")


def test_an_empty_dump_is_copied_as_an_empty_file(kit: lu_kit.LuKit) -> None:
    from cardume.cmdlib.backup_transfer import copy_file
    folder = export_root(kit, "node1") / WORK
    folder.mkdir(parents=True)
    (folder / "d0").write_bytes(b"")
    source, target = kit.cfg.expand_node("node1"), kit.cfg.expand_node("node2")
    assert kit.sync(copy_file(kit.rpc, source, WORK, target, WORK, "d0")) == 0
    assert (export_root(kit, "node2") / WORK / "d0").read_bytes() == b""


def test_a_copy_keeps_data_and_holes(kit: lu_kit.LuKit) -> None:
    from cardume.cmdlib import backup_transfer as backup
    folder = export_root(kit, "node1") / WORK
    folder.mkdir(parents=True)
    data = b"a" * 1000 + bytes(backup.CHUNK * 2) + b"z" * 10
    (folder / "d0").write_bytes(data)
    source, target = kit.cfg.expand_node("node1"), kit.cfg.expand_node("node2")
    assert kit.sync(backup.copy_file(kit.rpc, source, WORK, target, WORK, "d0")) == len(data)
    assert (export_root(kit, "node2") / WORK / "d0").read_bytes() == data


def test_an_allocator_places_an_import_sized_by_its_export(kit: lu_kit.LuKit) -> None:
    place_export(kit, "node2", "old")
    kit.run(LUInstanceCreate, instance_name="new", mode="import", src_node="node2",
            src_path="old", iallocator="cardume", no_install=True, start=False,
            name_check=False, ip_check=False)
    inst = kit.cfg.expand_instance("new")
    assert kit.cfg.nodes[inst.primary_node].name in NODES
    assert [d.size for d in inst.disks] == [8]
