"""gnt-node list-storage and gnt-node volumes through the master and the node daemons
(file storage here; LVM itself is exercised on the QA cluster, tests/qa)."""

from __future__ import annotations

from integration_kit import Gnt, VCluster


def test_list_storage_file(cluster: VCluster, gnt: Gnt) -> None:
    _, out, _ = gnt("gnt-node", "list-storage", "-t", "file", "--no-headers",
                    "--separator=|")
    rows = [line.split("|") for line in out.splitlines()]
    assert sorted(r[0] for r in rows) == ["node1", "node2", "node3"]
    for _node, kind, name, size, used, free, allocatable in rows:
        assert (kind, name, allocatable) == ("file", "/srv/ganeti/file-storage", "Y")
        assert int(size) == int(used) + int(free) > 0
    # the default type is that of the first enabled template (file on this cluster)
    _, out, _ = gnt("gnt-node", "list-storage", "node1")
    assert out.splitlines()[0].split() == ["Node", "Type", "Name", "Size", "Used", "Free",
                                           "Allocatable"]
    assert out.splitlines()[1].split()[:3] == ["node1", "file", "/srv/ganeti/file-storage"]


def test_volumes_without_a_volume_group_warns_per_node(cluster: VCluster, gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-node", "volumes", check=False)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["Node", "PhysDev", "VG", "Name", "Size", "Instance"]
    for node in ("node1", "node2", "node3"):  # this machine has no xenvg: each node says so
        assert f"node {node}" in err or any(line.startswith(node) for line in lines[1:])


def test_list_storage_refuses_an_unknown_type(cluster: VCluster, gnt: Gnt) -> None:
    rc, _, err = gnt("gnt-node", "list-storage", "-t", "zfs", check=False)
    assert rc != 0 and "zfs" in err


def test_list_drbd_without_drbd_loaded(cluster: VCluster, gnt: Gnt) -> None:
    # no drbd instances and no DRBD module on this machine: the header, and the node says why
    rc, out, err = gnt("gnt-node", "list-drbd", "node1", check=False)
    assert rc == 0
    assert out.split() == ["Node", "Minor", "Instance", "Disk", "Role", "PeerNode"]
    assert "DRBD is not loaded on node node1" in err
    rc, out, err = gnt("gnt-node", "list-drbd", "node9", check=False)
    assert rc != 0 and out == "" and "node9" in err and err.count("\n") == 1


def test_watch_disks_without_drbd_instances(cluster: VCluster, gnt: Gnt) -> None:
    for family in ("gnt-instance", "gnt-cluster"):
        rc, out, _ = gnt(family, "watch-disks", "--once", check=False)
        assert (rc, out) == (0, "No instances with drbd disks.\n")
