"""The column form of the instance fields (a whole listing at once) gives, for every case of
where an instance runs, the same values as the per-instance form."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

from fakes_kit import QueryMaster, RunningRpc

from cardume import constants, objects
from cardume.config.store import ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.master import query
from cardume.master.fields_instance import InstanceQuery


def _cluster(tmp_path: Path) -> tuple[ConfigWriter, list[objects.Instance]]:
    cfg = ConfigWriter(ConfigStore(str(tmp_path / "config.db")))
    group = objects.NodeGroup(name="default")
    nodes = [objects.Node(name=f"node{i}", primary_ip=f"127.0.0.{i}", group=group.uuid,
                          offline=(i == 4)) for i in (1, 2, 3, 4)]
    cluster = objects.Cluster(cluster_name="c", master_node=nodes[0].uuid,
                              enabled_hypervisors=["fake"])
    # every combination of primary node (answers, down, offline) and admin state
    insts = [objects.Instance(name=f"vm-{node.name}-{state}-{n}", primary_node=node.uuid,
                              admin_state=state)
             for node in nodes for state in ("up", "down", "offline") for n in range(4)]
    asyncio.run(cfg.commit(add=[cluster, group, *nodes, *insts]))
    return cfg, cfg.sorted_instances()


def _running(insts: list[objects.Instance]) -> dict[str, dict[str, dict[str, object]]]:
    """node1 runs the n=0 instances of its own, the n=1 ones of node2 (on the wrong node)
    and powers off the n=2 ones (a guest shut itself down); node3 does not answer."""
    running: dict[str, dict[str, dict[str, object]]] = {"node1": {}, "node2": {}}
    for inst in insts:
        n = inst.name.rsplit("-", 1)[1]
        if inst.name.startswith("vm-node1-") and n == "0":
            running["node1"][inst.name] = {"memory": 128, "vcpus": 1, "state": "running"}
        elif inst.name.startswith("vm-node2-") and n == "1":
            running["node1"][inst.name] = {"memory": 256, "vcpus": 2, "state": "running"}
        elif inst.name.startswith("vm-node1-") and n == "2":
            running["node1"][inst.name] = {"memory": 64, "vcpus": 1,
                                           "state": constants.HV_STATE_USER_DOWN}
    return running


def test_columns_match_the_per_instance_values(tmp_path: Path) -> None:
    cfg, insts = _cluster(tmp_path)
    q = InstanceQuery(SimpleNamespace(cfg=cfg), _running(insts), {"node3"})  # type: ignore[arg-type]
    statuses = q.statuses(insts)
    assert statuses == [q.status(i) for i in insts]
    # the cases are all there, so the comparison above covers each branch
    assert {"running", "ERROR_up", "ERROR_down", "ADMIN_down", "ADMIN_offline", "USER_down",
            "ERROR_wrongnode", "ERROR_nodedown", "ERROR_nodeoffline"} <= set(statuses)
    for key in ("memory", "vcpus"):
        assert q.opers(insts, key) == [q.oper(i, key) for i in insts]
    assert q.primary_names(insts) == [cfg.nodes[i.primary_node].name for i in insts]


def test_query_rows_follow_names_and_filter(tmp_path: Path) -> None:
    cfg, insts = _cluster(tmp_path)
    master = QueryMaster(cfg, RunningRpc(_running(insts), down=("node3",)))
    fields = ["name", "pnode", "status", "oper_ram"]
    whole = asyncio.run(query.run_query(master, "instance", fields, None))
    assert [row[0] for row in whole["data"]] == sorted(i.name for i in insts)
    assert all(isinstance(row, list) and len(row) == 4 for row in whole["data"])
    running = asyncio.run(query.run_query(master, "instance", ["name", "oper_ram"], None,
                                          ["=", "status", "running"]))
    assert running["data"] == [["vm-node1-up-0", 128]]
    encoded = asyncio.run(query.encoded_query(master, "instance", fields, None))
    assert json.loads(encoded) == whole


def test_filled_parameters_layer_cluster_group_and_instance(tmp_path: Path) -> None:
    cfg = ConfigWriter(ConfigStore(str(tmp_path / "config.db")))
    plain, big = objects.NodeGroup(name="plain"), objects.NodeGroup(name="big",
                                                                    beparams={"vcpus": 4})
    nodes = [objects.Node(name="node1", primary_ip="127.0.0.1", group=plain.uuid),
             objects.Node(name="node2", primary_ip="127.0.0.2", group=big.uuid)]
    cluster = objects.Cluster(cluster_name="c", master_node=nodes[0].uuid,
                              enabled_hypervisors=["fake"],
                              beparams={"default": {"maxmem": 512}},
                              hvparams={"fake": {"migration_mode": "non-live"}})
    insts = [objects.Instance(name="a", primary_node=nodes[0].uuid),
             objects.Instance(name="b", primary_node=nodes[1].uuid,
                              beparams={"maxmem": 256, "vcpus": None}),
             objects.Instance(name="c", primary_node=nodes[1].uuid, beparams={"vcpus": 2},
                              hvparams={"migration_mode": "live"})]
    asyncio.run(cfg.commit(add=[cluster, plain, big, *nodes, *insts]))
    master = QueryMaster(cfg, RunningRpc())
    rows = asyncio.run(query.run_query(master, "instance",
                                       ["name", "be/maxmem", "be/vcpus", "hvparams"], None))
    values = {name: (maxmem, vcpus, hv) for name, maxmem, vcpus, hv in rows["data"]}
    assert values["a"][:2] == (512, 1)    # the cluster's memory, the built-in vCPUs
    assert values["b"][:2] == (256, 4)    # its own memory; None inherits the group's vCPUs
    assert values["c"][:2] == (512, 2)    # its own vCPUs over the group's
    # a cluster-wide hypervisor parameter is never an instance's, even one it was given
    assert all("migration_mode" not in hv for _, _, hv in values.values())
