"""relocate, node-evacuate and change-group answers of the built-in allocator."""

from __future__ import annotations

import alloc_kit as kit
import pytest

from cardume.allocator import protocol


def _evac(data: dict, names: list[str], mode: str) -> dict:
    data["request"] = {"instances": names, "evac_mode": mode, "type": "node-evacuate"}
    return protocol.answer(data)


@pytest.mark.parametrize("seed", range(4))
def test_node_evacuate_all_moves_every_instance_off_the_node(seed: int) -> None:
    data = kit.random_cluster(seed, 10, 20, templates=("drbd", "sharedfile", "diskless"))
    on_node = [n for n, i in data["instances"].items() if "node1" in i["nodes"]]
    assert on_node
    ans = _evac(data, on_node, "all")
    moved, failed, jobs = ans["result"]
    assert ans["success"] and failed == []
    assert sorted(m[0] for m in moved) == sorted(on_node)
    for name, group, nodes in moved:
        assert "node1" not in nodes and group == "default"
        assert len(nodes) == (2 if data["instances"][name]["disk_template"] == "drbd" else 1)
    assert len(jobs) == len(moved)


def test_evacuate_opcodes_as_ganeti_writes_them() -> None:
    data = kit.cluster(4)
    kit.add_instance(data, "db", ["node1", "node2"])
    kit.add_instance(data, "web", ["node1"], template="sharedfile")
    moved, failed, jobs = _evac(data, ["db", "web"], "all")["result"]
    db_ops, web_ops = jobs
    assert [op["OP_ID"] for op in db_ops] == ["OP_INSTANCE_REPLACE_DISKS",
                                              "OP_INSTANCE_MIGRATE",
                                              "OP_INSTANCE_REPLACE_DISKS"]
    new_p, new_s = moved[0][2]
    assert db_ops[0]["remote_node"] == new_p and db_ops[2]["remote_node"] == new_s
    assert db_ops[0]["mode"] == "replace_new_secondary" and db_ops[0]["disks"] == []
    assert db_ops[1] == {"OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": "db",
                         "allow_runtime_changes": False, "ignore_ipolicy": False,
                         "cleanup": False, "allow_failover": True, "ignore_hvversions": True}
    assert web_ops[0]["target_node"] == moved[1][2][0] != "node1"


def test_evacuate_secondary_only_and_primary_only() -> None:
    data = kit.cluster(4)
    kit.add_instance(data, "db", ["node1", "node2"])
    moved, failed, jobs = _evac(data, ["db"], "secondary-only")["result"]
    assert moved[0][2][0] == "node1" and moved[0][2][1] not in ("node1", "node2")
    assert jobs[0][0]["OP_ID"] == "OP_INSTANCE_REPLACE_DISKS"
    moved, failed, jobs = _evac(data, ["db"], "primary-only")["result"]
    assert moved[0][2] == ["node2", "node1"]
    assert jobs == [[protocol.op_migrate("db")]]


def test_evacuate_refusals() -> None:
    data = kit.cluster(3)
    kit.add_instance(data, "p1", ["node1"], template="plain")
    kit.add_instance(data, "s1", ["node1"], template="sharedfile")
    moved, failed, _ = _evac(data, ["p1", "s1"], "secondary-only")["result"]
    reasons = dict(failed)
    assert moved == []
    assert "Instances of type plain cannot be relocated" in reasons["p1"]
    assert "can't execute change secondary" in reasons["s1"]
    data = kit.cluster(3, memory=4096)
    kit.add_instance(data, "big", ["node1", "node2"], memory=3000)
    data["nodes"]["node3"]["free_memory"] = 1000
    _, failed, _ = _evac(data, ["big"], "secondary-only")["result"]
    assert "node3: not enough memory to take over big" in failed[0][1]


def test_relocate_new_secondary() -> None:
    data = kit.cluster(4)
    kit.add_instance(data, "db", ["node1", "node2"])
    data["nodes"]["node3"]["drained"] = True
    data["request"] = {"name": "db", "required_nodes": 1, "disk_space_total": 2176,
                       "relocate_from": ["node2"], "type": "relocate"}
    ans = protocol.answer(data)
    assert ans["success"] and ans["result"] == ["node4"]
    data["request"]["relocate_from"] = ["node1"]
    ans = protocol.answer(data)
    assert not ans["success"] and "not the instance's secondary" in ans["info"]


def test_change_group_moves_to_another_group() -> None:
    groups = {"g1": kit.group("g1"), "g2": kit.group("g2")}
    data = kit.cluster(6, groups=groups)
    kit.add_instance(data, "db", ["node1", "node3"])
    kit.add_instance(data, "web", ["node1"], template="diskless")
    data["request"] = {"instances": ["db", "web"], "target_groups": [], "type": "change-group"}
    ans = protocol.answer(data)
    moved, failed, jobs = ans["result"]
    assert failed == []
    for _, group, nodes in moved:
        assert group == "g2"
        assert all(data["nodes"][n]["group"] == "g2" for n in nodes)
    assert len(jobs[0]) == 3 and jobs[1][0]["target_node"] in ("node2", "node4", "node6")
