"""Ganeti's clients on the master's socket (htools with -L): requests without cardume's
"version" get Ganeti's Query arguments and [status, value] cells, the whole instance policy
in QueryClusterInfo and Ganeti's error encoding; cardume's own clients keep their shapes."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from cardume import errors, objects
from cardume.config.store import ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.master import luxi_ganeti
from cardume.master.luxi_server import LuxiServer, encode_reply
from cardume.rpc.calls import NodeCalls

# what htools 3.0 ask for (captured with strace from hbal -L against Ganeti 3.0.2)
HTOOLS_NODE_FIELDS = [
    "name", "mtotal", "mnode", "mfree", "dtotal", "dfree", "ctotal", "cnos", "offline",
    "drained", "vm_capable", "ndp/spindle_count", "group.uuid", "tags",
    "ndp/exclusive_storage", "sptotal", "spfree", "ndp/cpu_speed"]
HTOOLS_INSTANCE_FIELDS = [
    "name", "disk_usage", "be/memory", "be/vcpus", "status", "pnode", "snodes", "tags",
    "be/auto_balance", "disk_template", "be/spindle_use", "disk.sizes", "disk.spindles",
    "forthcoming"]
HTOOLS_GROUP_FIELDS = ["uuid", "name", "alloc_policy", "ipolicy", "tags"]


class Nodes(NodeCalls):
    """node1 and node2 answer node_info and instance_info_all; node3 does not answer."""

    async def call(self, node: objects.Node, call: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        if node.name == "node3":
            raise errors.RpcError(f"node {node.name}: connection refused", node=node.name)
        if call == "node_info":
            return {"memory_total": 4096, "memory_dom0": 512, "memory_free": 3000,
                    "cpu_total": 4, "cpu_dom0": 1,
                    "storage": [{"type": "file", "total": 20480, "free": 10240}]}
        assert call == "instance_info_all", call
        if node.name == "node1":
            return {"vm1": {"state": "running", "memory": 256, "vcpus": 2}}
        return {}


class Master:
    def __init__(self, cfg: ConfigWriter) -> None:
        self.cfg, self.rpc = cfg, Nodes()


@pytest.fixture
def server(tmp_path: Path) -> LuxiServer:
    """node1 (master), node2, node3 (not answering), node4 (offline); vm1: sharedfile on
    node1, 256 MiB, running; vm2: diskless on node2, down."""
    cfg = ConfigWriter(ConfigStore(os.path.join(tmp_path, "config.db")))
    group = objects.NodeGroup(name="default")
    nodes = [objects.Node(name=f"node{i}", primary_ip=f"127.0.0.{i}", group=group.uuid,
                          offline=i == 4) for i in (1, 2, 3, 4)]
    cluster = objects.Cluster(cluster_name="c", master_node=nodes[0].uuid,
                              enabled_hypervisors=["fake"], tags=["site:a"],
                              enabled_disk_templates=["sharedfile", "diskless"])
    vm1 = objects.Instance(name="vm1", primary_node=nodes[0].uuid, os="trivial+default",
                           admin_state="up", disk_template="sharedfile",
                           beparams={"maxmem": 256, "minmem": 256, "vcpus": 2},
                           disks=[objects.Disk(dev_type="sharedfile", size=2048,
                                               iv_name="disk/0", nodes=[nodes[0].uuid],
                                               logical_id=["loop", "/srv/vm1.disk0"])])
    vm2 = objects.Instance(name="vm2", primary_node=nodes[1].uuid, os="trivial+default",
                           disk_template="diskless")
    asyncio.run(cfg.commit(add=[cluster, group, *nodes, vm1, vm2]))
    return LuxiServer(Master(cfg))  # type: ignore[arg-type]


def ask(server: LuxiServer, method: str, *args: Any, version: int | None = None) -> Any:
    """One request as it comes off the socket, and its reply as it goes back (JSON)."""
    request: dict[str, Any] = {"method": method, "args": list(args)}
    if version is not None:
        request["version"] = version
    reply = asyncio.run(server._dispatch(json.dumps(request).encode()))
    return json.loads(b"".join(encode_reply(reply)))


def by_name(result: dict[str, Any], fields: list[str]) -> dict[str, dict[str, Any]]:
    assert [f["name"] for f in result["fields"]] == fields
    return {row[0][1]: dict(zip(fields, row, strict=True)) for row in result["data"]}


def test_htools_node_query_gets_status_value_cells(server: LuxiServer) -> None:
    reply = ask(server, "Query", "node", HTOOLS_NODE_FIELDS, None)
    assert reply["success"] is True
    nodes = by_name(reply["result"], HTOOLS_NODE_FIELDS)
    assert sorted(nodes) == ["node1", "node2", "node3", "node4"]
    node1 = nodes["node1"]
    assert node1["mtotal"] == [0, 4096] and node1["mfree"] == [0, 3000]
    assert node1["dtotal"] == [0, 20480] and node1["dfree"] == [0, 10240]
    assert node1["ctotal"] == [0, 4] and node1["offline"] == [0, False]
    assert node1["group.uuid"][0] == 0 and node1["tags"] == [0, []]
    # no exclusive storage: no spindle data, as Ganeti answers
    assert node1["sptotal"] == [2, None] and node1["ndp/exclusive_storage"] == [0, False]
    assert nodes["node3"]["mfree"] == [2, None]  # did not answer: no data
    assert nodes["node4"]["mfree"] == [4, None]  # offline
    assert nodes["node4"]["offline"] == [0, True]
    kinds = {f["name"]: f["kind"] for f in reply["result"]["fields"]}
    assert kinds["mtotal"] == "unit" and kinds["tags"] == "other"


def test_htools_instance_and_group_queries(server: LuxiServer) -> None:
    reply = ask(server, "Query", "instance", HTOOLS_INSTANCE_FIELDS, None)
    instances = by_name(reply["result"], HTOOLS_INSTANCE_FIELDS)
    vm1, vm2 = instances["vm1"], instances["vm2"]
    assert vm1["be/memory"] == [0, 256] and vm1["be/vcpus"] == [0, 2]
    assert vm1["status"] == [0, "running"] and vm1["pnode"] == [0, "node1"]
    assert vm1["disk_template"] == [0, "sharedfile"] and vm1["disk.sizes"] == [0, [2048]]
    assert vm1["snodes"] == [0, []] and vm1["forthcoming"] == [0, False]
    assert vm2["status"] == [0, "ADMIN_down"] and vm2["disk_usage"] == [0, 0]
    reply = ask(server, "Query", "group", HTOOLS_GROUP_FIELDS, None)
    (group,) = by_name(reply["result"], HTOOLS_GROUP_FIELDS).values()
    assert group["name"] == [0, "default"] and group["alloc_policy"] == [0, "preferred"]
    policy = group["ipolicy"][1]
    assert {"minmax", "std", "disk-templates", "vcpu-ratio", "spindle-ratio"} <= set(policy)


def test_the_third_argument_is_ganetis_filter(server: LuxiServer) -> None:
    reply = ask(server, "Query", "node", ["name", "offline"],
                ["|", ["=", "name", "node2"], ["=", "name", "node4"]])
    assert reply["result"]["data"] == [[[0, "node2"], [0, False]], [[0, "node4"], [0, True]]]


def test_a_field_cardume_lacks_is_unknown_not_refused(server: LuxiServer) -> None:
    reply = ask(server, "Query", "node", ["name", "no.such.field"], None)
    fields = reply["result"]["fields"]
    assert fields[1] == luxi_ganeti.unknown_field("no.such.field")
    assert fields[1]["kind"] == "unknown"
    assert [row[1] for row in reply["result"]["data"]] == [[1, None]] * 4
    # cardume's own clients still hear of their typo
    refused = ask(server, "Query", "node", ["name", "no.such.field"], version=1)
    assert refused["success"] is False and "unknown field" in refused["result"]["message"]


def test_cardumes_clients_keep_plain_cells(server: LuxiServer) -> None:
    reply = ask(server, "Query", "node", ["name", "mfree"], ["node4"], version=1)
    assert reply["result"]["data"] == [["node4", {"_rs": "offline"}]]


def test_cluster_info_carries_the_whole_policy_and_the_master(server: LuxiServer) -> None:
    info = ask(server, "QueryClusterInfo")["result"]
    assert info["master"] == "node1" and info["tags"] == ["site:a"]
    assert info["ipolicy"]["std"]["memory-size"] > 0
    assert {"minmax", "std", "disk-templates", "vcpu-ratio", "spindle-ratio"} <= set(
        info["ipolicy"])
    assert info["ipolicy"] == info["ipolicy_filled"]
    # cardume's clients see what the cluster itself sets (nothing here)
    assert "std" not in ask(server, "QueryClusterInfo", version=1)["result"]["ipolicy"]


def test_failures_take_ganetis_encoding(server: LuxiServer) -> None:
    reply = ask(server, "Query", "nodex", ["name"], None)
    assert reply["success"] is False
    kind, (message, code) = reply["result"]
    assert kind == "OpPrereqError" and code == "wrong_input" and "nodex" in message
    reply = ask(server, "NoSuchMethod")
    assert reply["result"][0] == "OpPrereqError" and "NoSuchMethod" in reply["result"][1][0]
    # cardume's clients keep their error objects
    reply = ask(server, "NoSuchMethod", version=1)
    assert reply["result"]["code"] == "wrong_input"
