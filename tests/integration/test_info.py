"""What an admin reads on a healthy cluster: node lists, node and cluster info, verify."""

from __future__ import annotations

import re

from integration_kit import Gnt, VCluster

from cardume import __version__

SIZE_HUMAN = re.compile(r"^\d+(\.\d)?[MGT]$|^\d+M$")
DEFAULT_HEADER = ["Node", "DTotal", "DFree", "MTotal", "MNode", "MFree", "Pinst", "Sinst"]


def test_node_list_default_columns(gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-node", "list")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == DEFAULT_HEADER
    assert [line.split()[0] for line in lines[1:]] == ["node1", "node2", "node3"]
    for line in lines:
        assert line == line.rstrip(), "no trailing spaces"
    for line in lines[1:]:
        cells = line.split()
        assert all(SIZE_HUMAN.match(cell) for cell in cells[1:6]), line
        assert cells[6:] == ["0", "0"]
    # right-aligned numbers: every row ends at the same column
    assert len({len(line) for line in lines}) == 1


def test_node_list_roles(cluster: VCluster, gnt: Gnt) -> None:
    assert cluster.roles() == {"node1": "M", "node2": "C", "node3": "C"}
    out = gnt("gnt-node", "list", "-o", "name,role,pip,master_candidate")[1]
    width = max(len("PrimaryIP"), *(len(cluster.ip(i)) for i in (1, 2, 3)))
    assert out.splitlines() == [
        f"Node  Role {'PrimaryIP'.ljust(width)} MasterC",
        f"node1 M    {cluster.ip(1).ljust(width)} Y",
        f"node2 C    {cluster.ip(2).ljust(width)} Y",
        f"node3 C    {cluster.ip(3).ljust(width)} Y",
    ]


def test_node_list_no_headers_and_separator(cluster: VCluster, gnt: Gnt) -> None:
    # without headers, columns are as wide as their widest value (Ganeti's shape)
    out = gnt("gnt-node", "list", "--no-headers", "-o", "name,role,pip")[1]
    assert out.splitlines() == [f"node1 M {cluster.ip(1)}", f"node2 C {cluster.ip(2)}",
                                f"node3 C {cluster.ip(3)}"]
    out = gnt("gnt-node", "list", "--separator=|", "-o", "name,role,pip")[1]
    assert out.splitlines() == ["Node|Role|PrimaryIP", f"node1|M|{cluster.ip(1)}",
                                f"node2|C|{cluster.ip(2)}", f"node3|C|{cluster.ip(3)}"]
    # a separator turns off human units, as in Ganeti: sizes are plain MiB
    out = gnt("gnt-node", "list", "--separator=|", "--no-headers")[1]
    for line in out.splitlines():
        cells = line.split("|")
        assert len(cells) == 8 and all(cell.isdigit() for cell in cells[1:]), line


def test_node_list_units_and_added_field(gnt: Gnt) -> None:
    out = gnt("gnt-node", "list", "--units=m", "-o", "+group")[1]
    lines = out.splitlines()
    assert lines[0].split() == [*DEFAULT_HEADER, "Group"]
    for line in lines[1:]:
        cells = line.split()
        assert all(cell.isdigit() for cell in cells[1:8]), line
        assert cells[8] == "default"
    total = int(lines[1].split()[3])
    assert total > 64, "MTotal in MiB"


def test_node_list_names_filter(gnt: Gnt) -> None:
    out = gnt("gnt-node", "list", "--no-headers", "-o", "name", "node3", "node1")[1]
    assert out.split() == ["node3", "node1"]
    rc, out, err = gnt("gnt-node", "list", "node1", "nosuch", check=False)
    assert rc == 1 and out == ""
    assert "unknown_entity" in err and "nosuch" in err
    assert len(err.strip().splitlines()) == 1


def test_node_list_fields(gnt: Gnt) -> None:
    out = gnt("gnt-node", "list-fields")[1]
    lines = out.splitlines()
    assert lines[0].split() == ["Name", "Type", "Title", "Description"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == sorted(names)
    for field in ("name", "role", "mtotal", "dfree", "pip", "group", "master_candidate"):
        assert field in names
    out = gnt("gnt-node", "list-fields", "role")[1]
    assert out.splitlines()[1].split()[:3] == ["role", "Text", "Role"]


def test_node_info(cluster: VCluster, gnt: Gnt) -> None:
    out = gnt("gnt-node", "info", "node2")[1]
    assert out.startswith("Node name: node2\n")
    for line in (f"  primary ip: {cluster.ip(2)}", "  master candidate: True",
                 "  drained: False", "  offline: False", "  node group: default"):
        assert line in out.splitlines()
    out = gnt("gnt-node", "info")[1]
    assert [line for line in out.splitlines() if line.startswith("Node name:")] == [
        "Node name: node1", "Node name: node2", "Node name: node3"]


def test_cluster_info_getmaster_version(gnt: Gnt) -> None:
    out = gnt("gnt-cluster", "info")[1]
    lines = out.splitlines()
    assert lines[0] == "Cluster name: cluster.vcluster"
    assert "Master node: node1" in lines
    assert "Enabled hypervisors: fake" in lines
    assert gnt("gnt-cluster", "getmaster")[1] == "node1\n"
    out = gnt("gnt-cluster", "version")[1]
    assert out.splitlines()[0] == f"Software version: {__version__}"


def test_cluster_verify_healthy(gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err
    steps = [line.split(" * ", 1)[1] for line in out.splitlines() if " * " in line]
    assert steps[0] == "Verifying cluster config"
    assert "Gathering data (3 nodes)" in steps
    assert "Verifying node status" in steps
    assert "ERROR" not in out and "WARNING" not in out
    # each progress line is "<date> * <step>", Ganeti's shape
    for line in out.splitlines():
        assert re.match(r"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} \* ", line), line
