"""Node groups: add, list, rename, assign nodes, remove, and the changes that are refused."""

from __future__ import annotations

from integration_kit import Gnt, VCluster


def groups(gnt: Gnt) -> dict[str, str]:
    out = gnt("gnt-group", "list", "--no-headers", "--separator=|", "-o", "name,node_list")[1]
    return dict(line.split("|") for line in out.splitlines())


def refused(gnt: Gnt, code: str, *args: str) -> str:
    rc, out, err = gnt("gnt-group", *args, check=False)
    assert rc == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Failure: {code}: "), err
    return lines[0]


def test_group_list_default(gnt: Gnt) -> None:
    lines = gnt("gnt-group", "list")[1].splitlines()
    assert lines[0].split() == ["Group", "Nodes", "Instances", "AllocPolicy", "NDParams"]
    cells = lines[1].split(None, 4)
    assert cells[:4] == ["default", "3", "0", "preferred"]
    assert "spindle_count=1" in cells[4]


def test_group_lifecycle(cluster: VCluster, gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-group", "add", "g2")
    assert (out, err) == ("", "")  # a successful add prints nothing, as in Ganeti
    assert groups(gnt) == {"default": "node1,node2,node3", "g2": ""}

    gnt("gnt-group", "assign-nodes", "g2", "node3")
    assert groups(gnt) == {"default": "node1,node2", "g2": "node3"}
    out = gnt("gnt-node", "list", "--no-headers", "-o", "name,group")[1]
    assert out.split() == ["node1", "default", "node2", "default", "node3", "g2"]

    gnt("gnt-group", "rename", "g2", "g3")
    assert groups(gnt) == {"default": "node1,node2", "g3": "node3"}

    before = cluster.snapshot()
    line = refused(gnt, "wrong_state", "remove", "g3")
    assert "'g3'" in line and "node3" in line
    assert cluster.snapshot() == before

    gnt("gnt-group", "assign-nodes", "default", "node3")
    gnt("gnt-group", "remove", "g3")
    assert groups(gnt) == {"default": "node1,node2,node3"}
    rc, out, err = gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err


def test_group_refusals(cluster: VCluster, gnt: Gnt) -> None:
    gnt("gnt-group", "add", "spare")
    before = cluster.snapshot()
    assert "'spare'" in refused(gnt, "already_exists", "add", "spare")
    assert "'default'" in refused(gnt, "already_exists", "add", "default")
    assert "'spare'" in refused(gnt, "already_exists", "rename", "default", "spare")
    assert "'nosuch'" in refused(gnt, "unknown_entity", "remove", "nosuch")
    assert "'nosuch'" in refused(gnt, "unknown_entity", "rename", "nosuch", "x")
    assert "'nosuch'" in refused(gnt, "unknown_entity", "assign-nodes", "nosuch", "node3")
    assert "'nosuch'" in refused(gnt, "unknown_entity", "assign-nodes", "spare", "nosuch")
    assert "'bad name'" in refused(gnt, "wrong_input", "add", "bad name")
    line = refused(gnt, "wrong_state", "remove", "default")
    assert "node1, node2, node3" in line
    assert cluster.snapshot() == before
    gnt("gnt-group", "remove", "spare")
    assert groups(gnt) == {"default": "node1,node2,node3"}
