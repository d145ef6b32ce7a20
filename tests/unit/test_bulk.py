"""Bulk listings (what /2/instances?bulk=1 serves) encoded on the master: the same values
as the query, marks as null, keys in the asked order; the configured part of a row is kept
between requests until the configuration changes, the live part is fresh every time."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fakes_kit import QueryMaster, RunningRpc

from cardume import objects
from cardume.config.store import ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.master import bulk, query

KEYS = ["name", "admin_state", "pnode", "snodes", "oper_state", "oper_ram", "status",
        "beparams", "tags", "nic.macs", "not_a_field", "serial_no"]



@pytest.fixture
def master(tmp_path: Path) -> QueryMaster:
    cfg = ConfigWriter(ConfigStore(os.path.join(tmp_path, "config.db")))
    group = objects.NodeGroup(name="default")
    nodes = [objects.Node(name=f"node{i}", primary_ip=f"127.0.0.{i}", group=group.uuid)
             for i in (1, 2)]
    cluster = objects.Cluster(cluster_name="c", master_node=nodes[0].uuid,
                              enabled_hypervisors=["fake"])
    instances = [objects.Instance(name=f"vm{i}", primary_node=nodes[i % 2].uuid,
                                  os="trivial+default", admin_state="up",
                                  nics=[objects.NIC(mac=f"aa:00:00:00:00:0{i}")])
                 for i in range(1, 5)]
    asyncio.run(cfg.commit(add=[cluster, group, *nodes, *instances]))
    bulk._kept.clear()
    rpc = RunningRpc()
    rpc.running = {"node2": {"vm1": {"state": "running", "memory": 128, "vcpus": 1}}}
    return QueryMaster(cfg, rpc)


def listing(master: QueryMaster, keys: list[str] = KEYS) -> list[dict[str, Any]]:
    return json.loads(asyncio.run(bulk.bulk(master, "instance", keys)))


def expected(master: QueryMaster, keys: list[str] = KEYS) -> list[dict[str, Any]]:
    """The query's own rows, a mark (or a field the table lacks) as null."""
    known = [k for k in keys if k in query.FIELDS["instance"]]
    reply = asyncio.run(query.run_query(master, "instance", known, None))
    rows = []
    for row in reply["data"]:
        values = dict(zip(known, row, strict=True))
        rows.append({k: None if isinstance(values.get(k), dict) and "_rs" in values[k]
                     else values.get(k) for k in keys})
    return rows


def test_a_bulk_listing_has_the_querys_values_in_the_asked_order(master: QueryMaster) -> None:
    got = listing(master)
    assert got == expected(master)
    assert [list(row) for row in got] == [KEYS] * 4
    assert [row["name"] for row in got] == ["vm1", "vm2", "vm3", "vm4"]
    vm1, vm2 = got[0], got[1]
    assert (vm1["oper_state"], vm1["oper_ram"], vm1["status"]) == (True, 128, "running")
    assert (vm2["oper_state"], vm2["oper_ram"], vm2["status"]) == (False, None, "ERROR_down")
    assert vm1["not_a_field"] is None


def test_live_values_are_fresh_while_the_configured_part_is_kept(master: QueryMaster) -> None:
    listing(master)
    kept = dict(bulk._kept[("instance", tuple(KEYS))][1])
    master.rpc.running = {"node1": {"vm2": {"state": "running", "memory": 256, "vcpus": 1}}}
    master.rpc.down = {"node2"}
    got = listing(master)
    assert got == expected(master)
    assert (got[0]["oper_state"], got[0]["status"]) == (None, "ERROR_nodedown")
    assert (got[1]["oper_ram"], got[1]["status"]) == (256, "running")
    assert bulk._kept[("instance", tuple(KEYS))][1] == kept  # nothing was encoded again


def test_a_configuration_change_is_seen_at_once(master: QueryMaster) -> None:
    listing(master)
    vm3 = master.cfg.edit(master.cfg.expand_instance("vm3"))
    vm3.admin_state = "down"
    vm3.tags = ["web"]
    asyncio.run(master.cfg.commit(update=[vm3]))
    got = listing(master)
    assert got == expected(master)
    assert (got[2]["admin_state"], got[2]["tags"], got[2]["status"]) == (
        "down", ["web"], "ADMIN_down")


def test_only_the_changed_instance_is_encoded_again(master: QueryMaster) -> None:
    listing(master)
    before = dict(bulk._kept[("instance", tuple(KEYS))][1])
    vm3 = master.cfg.edit(master.cfg.expand_instance("vm3"))
    vm3.tags = ["db"]
    asyncio.run(master.cfg.commit(update=[vm3]))
    assert listing(master)[2]["tags"] == ["db"]
    after = bulk._kept[("instance", tuple(KEYS))][1]
    assert [u for u in before if after[u] is not before[u]] == [vm3.uuid]


def test_a_cluster_or_node_change_reaches_every_row(master: QueryMaster) -> None:
    listing(master)
    cluster = master.cfg.edit(master.cfg.get_cluster())
    cluster.beparams = {"default": {"maxmem": 512, "vcpus": 2}}
    node2 = master.cfg.edit(master.cfg.expand_node("node2"))
    node2.name = "node2b"
    asyncio.run(master.cfg.commit(update=[cluster, node2]))
    got = listing(master)
    assert got == expected(master)
    assert {row["beparams"]["maxmem"] for row in got} == {512}
    assert [row["pnode"] for row in got] == ["node2b", "node1", "node2b", "node1"]


def test_a_configured_value_looking_like_a_hole_is_still_exact(master: QueryMaster) -> None:
    vm4 = master.cfg.edit(master.cfg.expand_instance("vm4"))
    vm4.tags = [bulk._HOLE]  # no tag can hold it (names are checked); the row stays right
    asyncio.run(master.cfg.commit(update=[vm4]))
    got = listing(master)
    assert got == expected(master)
    assert got[3]["tags"] == [bulk._HOLE] and got[3]["status"] == "ERROR_down"


def test_nodes_and_groups_too(master: QueryMaster) -> None:
    nodes = json.loads(asyncio.run(bulk.bulk(master, "node", ["name", "pinst_cnt"],
                                             ["node2"])))
    assert nodes == [{"name": "node2", "pinst_cnt": 2}]
    groups = json.loads(asyncio.run(bulk.bulk(master, "group", ["name", "node_cnt"])))
    assert groups == [{"name": "default", "node_cnt": 2}]
