"""The instance field table: its names, titles and kinds are Ganeti 3.0's (the reference in
tests/unit/data was captured with ``gnt-instance list-fields`` on a real Ganeti 3.0.2), and
its values, read through the master's real query path from a real config, mean what Ganeti's
mean: per-index disk and NIC fields, the unavailable mark past an instance's last device,
parameters of another hypervisor, the list forms."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fakes_kit import QueryMaster, RunningRpc

from cardume import objects
from cardume.cli.listing import KIND_NAMES
from cardume.config.store import ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.master import query
from cardume.master.fields import NODATA, UNAVAIL
from cardume.master.fields_instance import instance_fields

REFERENCE = Path(__file__).parent / "data" / "ganeti-instance-list-fields.txt"
SECRET = "5ecre7" * 6
#: Fields cardume adds: every disk / NIC in one value, which gnt-instance info reads.
EXTRAS = {"disks", "nics"}


def reference() -> dict[str, tuple[str, str]]:
    """name -> (title, kind) from Ganeti's list-fields table (fixed-width columns)."""
    lines = REFERENCE.read_text().splitlines()
    header = lines[0]
    kind_at, title_at, doc_at = (header.index(w) for w in ("Type", "Title", "Description"))
    return {line[:kind_at].strip(): (line[title_at:doc_at].strip(),
                                     line[kind_at:title_at].strip()) for line in lines[1:]}


# --- the table ---------------------------------------------------------------------------------

def test_the_table_has_ganetis_names_titles_and_kinds() -> None:
    ours = {f.name: (f.title, KIND_NAMES[f.kind]) for f in instance_fields()}
    theirs = reference()
    assert len(theirs) > 290
    assert sorted(set(theirs) - set(ours)) == []
    assert sorted(set(ours) - set(theirs)) == sorted(EXTRAS)
    assert {n: ours[n] for n in theirs if ours[n] != theirs[n]} == {}


def test_the_comma_joined_columns_are_ganetis() -> None:
    # gnt-instance list joins these lists with commas (the others print as Python lists);
    # on the wire they are of Ganeti's kind "other" like every list
    assert sorted(f.name for f in instance_fields() if f.kind == "list") == sorted([
        "tags", "disk.sizes", "nic.macs", "nic.ips", "nic.modes", "nic.links", "nic.bridges",
        "nic.networks", "snodes", "snodes.group", "snodes.group.uuid"])


def test_every_field_is_listed_once_with_a_description_of_its_own() -> None:
    fields = instance_fields()
    assert len({f.name for f in fields}) == len(fields)
    docs = reference_docs()
    assert [f.name for f in fields if not f.doc or _digest(f.doc) == docs.get(f.name)] == []


def _digest(text: str) -> str:
    """The reference keeps a digest of each Ganeti description, not its words."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reference_docs() -> dict[str, str]:
    lines = REFERENCE.read_text().splitlines()
    doc_at, kind_at = lines[0].index("Description"), lines[0].index("Type")
    return {line[:kind_at].strip(): line[doc_at:].strip() for line in lines[1:]}


def test_the_indexed_fields_reach_ganetis_maxima() -> None:
    names = {f.name for f in instance_fields()}
    assert {"disk.size/15", "disk.spindles/15", "disk.name/15", "disk.uuid/15"} <= names
    assert "disk.size/16" not in names
    assert {"nic.mac/7", "nic.vlan/7", "nic.network.name/7", "nic.bridge/7"} <= names
    assert "nic.mac/8" not in names


def test_cluster_wide_hypervisor_parameters_have_no_instance_field() -> None:
    names = {f.name for f in instance_fields()}
    assert "hv/migration_mode" not in names and "hv/migration_port" not in names


# --- values through the real query path ---------------------------------------------------------


@pytest.fixture
def master(tmp_path: Path) -> QueryMaster:
    """node1, node2 (group "default"), node3 (group "other"); kvm is enabled with cluster
    defaults (kernel_args, bridge br0) and a cluster maxmem;
    vm1: fake, diskless, one NIC; vm2: kvm, drbd on node1 with node3 (two disks, one named),
    two NICs (bridged with an IP; openvswitch with a VLAN, a name and a network), a VNC port;
    vm1 runs on node1, vm2 is down."""
    cfg = ConfigWriter(ConfigStore(os.path.join(tmp_path, "config.db")))
    default, other = objects.NodeGroup(name="default"), objects.NodeGroup(name="other")
    n1, n2, n3 = (objects.Node(name=f"node{i}", primary_ip=f"127.0.0.{i}",
                               group=(other if i == 3 else default).uuid) for i in (1, 2, 3))
    cluster = objects.Cluster(
        cluster_name="c", master_node=n1.uuid, enabled_hypervisors=["fake", "kvm"],
        hvparams={"kvm": {"kernel_args": "console=ttyS0"}},
        beparams={"default": {"maxmem": 256}},
        nicparams={"default": {"mode": "bridged", "link": "br0", "vlan": ""}})
    vm1 = objects.Instance(name="vm1", primary_node=n1.uuid, os="trivial+default",
                           admin_state="up", nics=[objects.NIC(mac="aa:00:00:00:00:01")])
    drbd = [objects.Disk(dev_type="drbd", size=size, name=name, iv_name=f"disk/{i}",
                         nodes=[n1.uuid, n3.uuid],
                         logical_id=[n1.uuid, n3.uuid, 11000 + i, i, i, SECRET])
            for i, (size, name) in enumerate(((1024, "root"), (512, None)))]
    vm2 = objects.Instance(
        name="vm2", primary_node=n1.uuid, os="debootstrap+default", hypervisor="kvm",
        hvparams={"acpi": False}, beparams={"vcpus": 2}, disk_template="drbd", disks=drbd,
        admin_state_source="user", network_port=11010,
        nics=[objects.NIC(mac="aa:00:00:00:00:02", ip="192.0.2.10"),
              objects.NIC(mac="aa:00:00:00:00:03", name="storage", network="net1",
                          nicparams={"mode": "openvswitch", "link": "switch1",
                                     "vlan": "100"})])
    asyncio.run(cfg.commit(add=[cluster, default, other, n1, n2, n3, vm1, vm2]))
    running = {"node1": {"vm1": {"state": "running", "memory": 128, "vcpus": 1}}}
    return QueryMaster(cfg, RunningRpc(running))


def rows(master: QueryMaster, fields: list[str], names: list[str] | None = None
         ) -> dict[str, dict[str, Any]]:
    """name -> {field: value}, as the master answers a Query (through JSON, as on the wire)."""
    reply = asyncio.run(query.run_query(master, "instance", ["name", *fields], names))
    reply = json.loads(json.dumps(reply))
    return {row[0]: dict(zip(fields, row[1:], strict=True)) for row in reply["data"]}


def test_disk_fields_by_index_and_past_the_last_disk(master: QueryMaster) -> None:
    got = rows(master, ["disk.count", "disk.size/0", "disk.size/1", "disk.size/2",
                        "disk.size/15", "disk.name/0", "disk.name/1", "disk.uuid/1",
                        "disk.spindles/0", "sda_size", "sdb_size"])
    vm2 = master.cfg.expand_instance("vm2")
    assert got["vm2"] == {"disk.count": 2, "disk.size/0": 1024, "disk.size/1": 512,
                          "disk.size/2": UNAVAIL, "disk.size/15": UNAVAIL,
                          "disk.name/0": "root", "disk.name/1": UNAVAIL,
                          "disk.uuid/1": vm2.disks[1].uuid,
                          "disk.spindles/0": UNAVAIL,  # no spindle accounting: unset
                          "sda_size": 1024, "sdb_size": 512}
    assert got["vm1"]["disk.count"] == 0
    assert all(v == UNAVAIL for k, v in got["vm1"].items() if k != "disk.count")


def test_disk_list_forms_and_usage(master: QueryMaster) -> None:
    got = rows(master, ["disk.sizes", "disk.names", "disk.spindles", "disk.uuids",
                        "disk_usage", "disk_template"])
    vm2 = master.cfg.expand_instance("vm2")
    # drbd: each disk's metadata volume (128 MiB) counts on the node
    assert got["vm2"] == {"disk.sizes": [1024, 512], "disk.names": ["root", None],
                          "disk.spindles": [None, None],
                          "disk.uuids": [d.uuid for d in vm2.disks],
                          "disk_usage": 1024 + 128 + 512 + 128, "disk_template": "drbd"}
    assert got["vm1"] == {"disk.sizes": [], "disk.names": [], "disk.spindles": [],
                          "disk.uuids": [], "disk_usage": 0, "disk_template": "diskless"}


def test_nic_fields_by_index(master: QueryMaster) -> None:
    fields = [f"nic.{what}/{i}" for i in (0, 1, 2) for what in
              ("mac", "ip", "mode", "link", "bridge", "vlan", "name", "network",
               "network.name")]
    got = rows(master, fields, ["vm2"])["vm2"]
    assert {k: v for k, v in got.items() if k.endswith("/0")} == {
        "nic.mac/0": "aa:00:00:00:00:02", "nic.ip/0": "192.0.2.10",
        "nic.mode/0": "bridged", "nic.link/0": "br0", "nic.bridge/0": "br0",
        "nic.vlan/0": UNAVAIL, "nic.name/0": UNAVAIL, "nic.network/0": UNAVAIL,
        "nic.network.name/0": UNAVAIL}
    assert {k: v for k, v in got.items() if k.endswith("/1")} == {
        "nic.mac/1": "aa:00:00:00:00:03", "nic.ip/1": UNAVAIL,
        "nic.mode/1": "openvswitch", "nic.link/1": "switch1", "nic.bridge/1": UNAVAIL,
        "nic.vlan/1": "100", "nic.name/1": "storage", "nic.network/1": "net1",
        "nic.network.name/1": "net1"}
    assert [k for k, v in got.items() if k.endswith("/2") and v != UNAVAIL] == []


def test_nic_list_forms_and_old_names(master: QueryMaster) -> None:
    got = rows(master, ["nic.count", "nic.macs", "nic.ips", "nic.modes", "nic.links",
                        "nic.bridges", "nic.vlans", "nic.names", "nic.networks",
                        "nic.networks.names", "custom_nicparams", "ip", "mac", "bridge",
                        "nic_mode", "nic_link", "nic_network"])
    vm2 = got["vm2"]
    assert vm2 == {
        "nic.count": 2, "nic.macs": ["aa:00:00:00:00:02", "aa:00:00:00:00:03"],
        "nic.ips": ["192.0.2.10", None], "nic.modes": ["bridged", "openvswitch"],
        "nic.links": ["br0", "switch1"], "nic.bridges": ["br0", None],
        "nic.vlans": [None, "100"], "nic.names": [None, "storage"],
        "nic.networks": [None, "net1"], "nic.networks.names": [None, "net1"],
        "custom_nicparams": [{}, {"mode": "openvswitch", "link": "switch1", "vlan": "100"}],
        "ip": "192.0.2.10", "mac": "aa:00:00:00:00:02", "bridge": "br0",
        "nic_mode": "bridged", "nic_link": "br0", "nic_network": UNAVAIL}
    assert got["vm1"]["nic.bridges"] == ["br0"] and got["vm1"]["nic.vlans"] == [None]
    assert got["vm1"]["ip"] == UNAVAIL


def test_hypervisor_parameters_of_another_hypervisor_are_unavailable(master: QueryMaster) -> None:
    got = rows(master, ["hypervisor", "hv/acpi", "hv/kernel_args", "hv/serial_speed",
                        "hv/spice_bind", "hv/use_bootloader", "hvparams", "custom_hvparams"])
    assert got["vm1"]["hypervisor"] == "fake"
    # the fake hypervisor has no parameters an instance sets (migration_mode is cluster-wide)
    assert got["vm1"]["hvparams"] == {} and got["vm1"]["custom_hvparams"] == {}
    assert [got["vm1"][f"hv/{k}"] for k in ("acpi", "kernel_args", "serial_speed")] == \
        [UNAVAIL] * 3
    vm2 = got["vm2"]
    assert (vm2["hv/acpi"], vm2["hv/kernel_args"], vm2["hv/serial_speed"]) == \
        (False, "console=ttyS0", 38400)  # own, cluster's, built-in default
    # Ganeti's spice and Xen parameters: cardume's kvm has no such parameter
    assert vm2["hv/spice_bind"] == UNAVAIL and vm2["hv/use_bootloader"] == UNAVAIL
    assert vm2["custom_hvparams"] == {"acpi": False}
    assert vm2["hvparams"]["kernel_args"] == "console=ttyS0"
    assert "migration_mode" not in vm2["hvparams"]


def test_backend_parameters_and_their_old_names(master: QueryMaster) -> None:
    got = rows(master, ["be/maxmem", "be/memory", "be/minmem", "be/vcpus", "vcpus",
                        "be/auto_balance", "be/spindle_use", "beparams", "custom_beparams"])
    assert got["vm2"] == {
        "be/maxmem": 256, "be/memory": 256, "be/minmem": 128, "be/vcpus": 2, "vcpus": 2,
        "be/auto_balance": True, "be/spindle_use": 1,
        "beparams": {"maxmem": 256, "minmem": 128, "vcpus": 2, "auto_balance": True,
                     "always_failover": False, "spindle_use": 1},
        "custom_beparams": {"vcpus": 2}}
    assert got["vm1"]["vcpus"] == 1


def test_nodes_groups_and_simple_fields(master: QueryMaster) -> None:
    got = rows(master, ["pnode", "pnode.group", "snodes", "snodes.group", "snodes.group.uuid",
                        "network_port", "forthcoming", "admin_state_source", "disks_active",
                        "osparams", "custom_osparams"])
    groups = {g.name: g.uuid for g in master.cfg.groups.values()}
    assert got["vm2"] == {"pnode": "node1", "pnode.group": "default", "snodes": ["node3"],
                          "snodes.group": ["other"], "snodes.group.uuid": [groups["other"]],
                          "network_port": 11010, "forthcoming": False,
                          "admin_state_source": "user", "disks_active": False,
                          "osparams": {}, "custom_osparams": {}}
    assert got["vm1"]["snodes.group"] == [] and got["vm1"]["network_port"] == UNAVAIL
    assert rows(master, ["pnode.group.uuid"], ["vm1"])["vm1"] == \
        {"pnode.group.uuid": groups["default"]}


def test_live_fields_keep_their_meaning(master: QueryMaster) -> None:
    got = rows(master, ["status", "oper_state", "oper_ram", "oper_vcpus"])
    assert got["vm1"] == {"status": "running", "oper_state": True, "oper_ram": 128,
                          "oper_vcpus": 1}
    assert got["vm2"] == {"status": "ADMIN_down", "oper_state": False, "oper_ram": UNAVAIL,
                          "oper_vcpus": UNAVAIL}
    master.rpc.down = ("node1",)
    got = rows(master, ["status", "oper_state", "oper_ram"])
    assert got["vm1"] == {"status": "ERROR_nodedown", "oper_state": NODATA,
                          "oper_ram": NODATA}


def test_the_console_field_is_ganetis_console_information(master: QueryMaster) -> None:
    got = rows(master, ["console"])
    assert got["vm1"]["console"] == {"instance": "vm1", "kind": "msg",
                                     "message": "Console not available for fake hypervisor"}
    assert got["vm2"]["console"] == UNAVAIL  # kvm, not running: nothing to connect to
    master.rpc.running["node1"]["vm2"] = {"state": "running", "memory": 512, "vcpus": 2,
                                          "vnc": "127.0.0.1:5910"}
    assert rows(master, ["console"])["vm2"]["console"] == {
        "instance": "vm2", "kind": "vnc", "host": "127.0.0.1", "port": 5910, "display": 10}


def test_every_field_answers_for_every_instance_without_the_drbd_secret(master: QueryMaster
                                                                        ) -> None:
    names = [f.name for f in instance_fields()]
    reply = asyncio.run(query.run_query(master, "instance", names, None))
    text = json.dumps(reply)
    assert len(reply["data"]) == 2 and all(len(row) == len(names) for row in reply["data"])
    assert SECRET not in text
