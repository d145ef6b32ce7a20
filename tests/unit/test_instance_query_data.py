"""OP_INSTANCE_QUERY_DATA (the job behind the REST API's /2/instances/NAME/info) through the
real opcode path (lu_kit): Ganeti's keys and shapes, the live parts from what the nodes
report, null where a node can't tell, and never a drbd disk's secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lu_kit
import pytest

from cardume import errors, objects
from cardume.cmdlib import instance_query
from cardume.cmdlib.instance_create import LUInstanceCreate

NODES = ["node1.example.com", "node2.example.com"]
SECRET = "s3cr3t-shared-drbd-key"

# the keys of one instance in Ganeti 3.0's answer, and of one disk (captured from the peer)
INSTANCE_KEYS = {
    "name", "config_state", "run_state", "pnode", "pnode_group_uuid", "pnode_group_name",
    "snodes", "snodes_group_uuids", "snodes_group_names", "os", "nics", "disk_template",
    "disks", "hypervisor", "network_port", "hv_instance", "hv_actual", "be_instance",
    "be_actual", "os_instance", "os_actual", "serial_no", "mtime", "ctime", "uuid"}
DISK_KEYS = {"iv_name", "dev_type", "logical_id", "drbd_info", "pstatus", "sstatus",
             "children", "mode", "size", "spindles", "name", "uuid"}


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[lu_kit.LuKit]:
    """Two nodes; vm1 diskless and running on node1, vm2 a stopped file instance on node2."""
    made = lu_kit.make(tmp_path / "kit", nodes=NODES, templates=["diskless", "file"])
    try:
        made.run(LUInstanceCreate, instance_name="vm1", disk_template="diskless",
                 pnode="node1", no_install=True, name_check=False, ip_check=False,
                 nics=[{"mac": "aa:00:00:11:22:33"}], beparams={"maxmem": 256})
        made.run(LUInstanceCreate, instance_name="vm2", disk_template="file",
                 disks=[{"size": 8, "name": "data"}], pnode="node2", no_install=True,
                 start=False, name_check=False, ip_check=False, nics=[])
        yield made
    finally:
        made.close()


def query(kit: lu_kit.LuKit, **values: Any) -> dict[str, Any]:
    result = kit.run("OP_INSTANCE_QUERY_DATA", **values)
    return json.loads(json.dumps(result))  # what a client reads from /2/jobs/ID


def node_calls(kit: lu_kit.LuKit) -> list[tuple[str, str]]:
    return [(node, name) for node, name, _ in kit.asked
            if name in ("instance_info_all", "blockdev_info")]


def test_a_running_diskless_instance_in_ganetis_shape(kit: lu_kit.LuKit) -> None:
    data = query(kit, instances=["vm1"])
    assert list(data) == ["vm1"]
    vm1 = data["vm1"]
    assert set(vm1) == INSTANCE_KEYS
    group = kit.cfg.groups[kit.cfg.expand_node("node1").group]
    inst = kit.cfg.expand_instance("vm1")
    assert (vm1["config_state"], vm1["run_state"], vm1["pnode"], vm1["pnode_group_name"],
            vm1["pnode_group_uuid"], vm1["snodes"], vm1["disks"]) == (
        "up", "up", NODES[0], "default", group.uuid, [], [])
    # name, uuid, ip, mac, mode, link, vlan, network, network name
    assert vm1["nics"] == [[None, inst.nics[0].uuid, None, "aa:00:00:11:22:33", "bridged",
                            "xen-br0", "", None, None]]
    assert vm1["be_instance"] == {"maxmem": 256}
    assert vm1["be_actual"]["maxmem"] == 256 and vm1["be_actual"]["vcpus"] == 1
    assert (vm1["uuid"], vm1["serial_no"], vm1["ctime"]) == (
        inst.uuid, inst.serial_no, inst.ctime)


def test_a_stopped_file_instance_with_its_disk_status(kit: lu_kit.LuKit) -> None:
    vm2 = query(kit, instances=["vm2"])["vm2"]
    assert (vm2["config_state"], vm2["run_state"], vm2["disk_template"]) == (
        "down", "down", "file")
    [disk] = vm2["disks"]
    assert set(disk) == DISK_KEYS
    inst = kit.cfg.expand_instance("vm2")
    path = inst.disks[0].logical_id[1]
    assert disk["logical_id"] == ["loop", path]
    assert (disk["iv_name"], disk["name"], disk["size"], disk["mode"], disk["drbd_info"],
            disk["sstatus"], disk["children"]) == ("disk/0", "data", 8, "rw", None, None, [])
    # where the file is on the node, nothing the node can't tell, not degraded, disk ok
    assert disk["pstatus"] == [str(kit.local(NODES[1], path)), None, None, None, None,
                               False, instance_query.LDS_OKAY]


def test_every_instance_when_none_is_named_each_node_asked_once(kit: lu_kit.LuKit) -> None:
    data = query(kit)
    assert list(data) == ["vm1", "vm2"]
    assert sorted(node_calls(kit)) == [(NODES[0], "instance_info_all"),
                                       (NODES[1], "blockdev_info"),
                                       (NODES[1], "instance_info_all")]


def test_static_asks_no_node(kit: lu_kit.LuKit) -> None:
    data = query(kit, instances=["vm1", "vm2"], static=True)
    assert node_calls(kit) == []
    assert data["vm1"]["run_state"] is None and data["vm1"]["config_state"] == "up"
    assert data["vm2"]["disks"][0]["pstatus"] is None


def test_a_silent_node_leaves_its_part_null_with_a_warning(kit: lu_kit.LuKit) -> None:
    kit.transport.down.add(NODES[1])
    data = query(kit)
    assert data["vm1"]["run_state"] == "up"
    assert data["vm2"]["run_state"] is None and data["vm2"]["disks"][0]["pstatus"] is None
    log = "\n".join(kit.log())
    assert f"node {NODES[1]} did not say what runs on it" in log
    assert f"node {NODES[1]} did not report its disks" in log


def test_an_offline_primary_gives_static_data_for_its_instances(kit: lu_kit.LuKit) -> None:
    node = kit.cfg.edit(kit.cfg.expand_node(NODES[1]))
    node.offline = True
    kit.sync(kit.cfg.commit(update=[node]))
    data = query(kit, instances=["vm2"])
    assert data["vm2"]["run_state"] is None and data["vm2"]["disks"][0]["pstatus"] is None
    assert node_calls(kit) == []
    assert any(f"primary node {NODES[1]} is offline" in line for line in kit.log())


def test_an_unknown_instance_fails_naming_it(kit: lu_kit.LuKit) -> None:
    with pytest.raises(errors.UnknownEntity, match="vm9"):
        query(kit, instances=["vm1", "vm9"])


def test_bad_parameters_are_refused_before_a_job_exists(kit: lu_kit.LuKit) -> None:
    before = kit.queue.job_ids()
    with pytest.raises(errors.WrongInput, match="static"):
        query(kit, static="yes")
    assert kit.queue.job_ids() == before


def _add_drbd_instance(kit: lu_kit.LuKit) -> objects.Instance:
    n1, n2 = (kit.cfg.expand_node(n) for n in NODES)
    disk = objects.Disk(dev_type="drbd", size=256, iv_name="disk/0", nodes=[n2.uuid, n1.uuid],
                        logical_id=[n1.uuid, n2.uuid, 11000, 3, 5, SECRET],
                        children=[objects.Disk(dev_type="plain", size=256,
                                               logical_id=["xenvg", "d_data"]),
                                  objects.Disk(dev_type="plain", size=128,
                                               logical_id=["xenvg", "d_meta"])])
    # failed over: node2 is the primary now, while the logical id keeps node1 first
    inst = objects.Instance(name="vm3", primary_node=n2.uuid, disk_template="drbd",
                            disks=[disk])
    kit.sync(kit.cfg.commit(add=[inst]))
    return inst


def test_a_drbd_disk_shows_both_sides_and_never_its_secret(kit: lu_kit.LuKit) -> None:
    _add_drbd_instance(kit)
    data = query(kit, instances=["vm3"], static=True)
    vm3 = data["vm3"]
    assert (vm3["pnode"], vm3["snodes"], vm3["snodes_group_names"]) == (
        NODES[1], [NODES[0]], ["default"])
    [disk] = vm3["disks"]
    n1, n2 = (kit.cfg.expand_node(n).uuid for n in NODES)
    assert disk["logical_id"] == [n1, n2, 11000, 3, 5, None]
    assert disk["drbd_info"] == {"primary_node": NODES[1], "primary_minor": 5,
                                 "secondary_node": NODES[0], "secondary_minor": 3,
                                 "port": 11000}
    assert [c["logical_id"] for c in disk["children"]] == [["xenvg", "d_data"],
                                                           ["xenvg", "d_meta"]]
    assert SECRET not in json.dumps(data) and SECRET not in "\n".join(kit.log())
    assert node_calls(kit) == []
    assert [disk["pstatus"], disk["sstatus"]] == [None, None]


LVS = "  d_data|256.00|-wi-ao----\n  d_meta|128.00|-wi-ao----\n"


def _minor(minor: int, disk: str, peer_disk: str, percent: float | None) -> dict[str, Any]:
    """A minor as /proc/drbd shows it once parsed (the fields the status reads)."""
    return {"minor": minor, "cstate": "SyncSource" if percent is not None else "Connected",
            "disk": disk, "peer_disk": peer_disk, "resyncing": percent is not None,
            "degraded": disk != "UpToDate" or peer_disk != "UpToDate",
            "sync_percent": percent, "sync_finish_s": 30 if percent is not None else None}


def test_a_live_drbd_disk_reports_each_side_and_its_lvs(
        kit: lu_kit.LuKit, monkeypatch: pytest.MonkeyPatch) -> None:
    from cardume.node.storage import drbd as node_drbd
    _add_drbd_instance(kit)
    for name in NODES:
        kit.runners[name].on(["lvs"], stdout=LVS)
    # node2 (primary, minor 5) in sync; node1 (secondary, minor 3) not set up at all
    table = {5: _minor(5, "UpToDate", "UpToDate", None)}
    monkeypatch.setattr(node_drbd.DrbdDisk, "proc_status",
                        lambda self: table.get(self.minor))
    data = query(kit, instances=["vm3"])
    assert SECRET not in json.dumps(data)
    [disk] = data["vm3"]["disks"]
    assert disk["pstatus"] == ["/dev/drbd5", None, 5, None, None, False,
                               instance_query.LDS_OKAY]
    assert disk["sstatus"] is None
    data, meta = disk["children"]
    assert data["pstatus"] == ["/dev/xenvg/d_data", None, None, None, None, False,
                               instance_query.LDS_OKAY]
    assert data["sstatus"] == data["pstatus"] and meta["sstatus"][0] == "/dev/xenvg/d_meta"
    # the secondary set up again, resyncing: its side reports the progress
    table[3] = _minor(3, "Inconsistent", "UpToDate", 61.5)
    [disk] = query(kit, instances=["vm3"])["vm3"]["disks"]
    assert disk["sstatus"] == ["/dev/drbd3", None, 3, 61.5, 30, True,
                               instance_query.LDS_SYNC]


def test_disk_status_from_a_nodes_report() -> None:
    status = instance_query.disk_status
    assert status("plain", {"path": "/dev/xenvg/a", "exists": False}) is None
    assert status("plain", None) is None
    assert status("plain", {"path": "/dev/xenvg/a", "exists": True, "virtual": True}) == [
        "/dev/xenvg/a", None, None, None, None, True, instance_query.LDS_FAULTY]
    syncing = {"disk": "Inconsistent", "resyncing": True, "degraded": True,
               "sync_percent": 42.5, "sync_finish_s": 70}
    assert status("drbd", {"path": "/dev/drbd5", "exists": True, "minor": 5,
                           "drbd": syncing}) == [
        "/dev/drbd5", None, 5, 42.5, 70, True, instance_query.LDS_SYNC]
    in_sync = {"disk": "UpToDate", "resyncing": False, "degraded": False,
               "sync_percent": None, "sync_finish_s": None}
    assert status("drbd", {"path": "/dev/drbd5", "exists": True, "minor": 5,
                           "drbd": in_sync}) == [
        "/dev/drbd5", None, 5, None, None, False, instance_query.LDS_OKAY]
    assert status("drbd", {"path": "/dev/drbd5", "exists": True, "minor": 5,
                           "drbd": {**in_sync, "disk": "Diskless", "degraded": True}})[5:] == [
        True, instance_query.LDS_FAULTY]


@pytest.mark.parametrize(("admin_state", "source", "info", "expected"), [
    ("up", "admin", {"state": "running"}, "up"),
    ("up", "admin", {"state": "user_down"}, "user down"),
    ("up", "admin", None, "down"),
    ("down", "admin", None, "down"),
    ("down", "user", None, "user down"),
    ("offline", "admin", None, "offline"),
])
def test_run_state(admin_state: str, source: str, info: dict[str, Any] | None,
                   expected: str) -> None:
    inst = objects.Instance(name="vm1", admin_state=admin_state, admin_state_source=source)
    assert instance_query.run_state(inst, info) == expected
