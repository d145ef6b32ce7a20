"""``gnt-node add --readd`` of a node that still belongs to the cluster needs no join token
(an old master back after ``master-failover --no-voting`` has none: it never left)."""

from __future__ import annotations

from integration_kit import Gnt, VCluster

HEALTHY = {"node1": "M", "node2": "C", "node3": "C"}


def test_readd_of_a_member_without_token(cluster: VCluster, gnt: Gnt) -> None:
    # without --readd a known node is refused, token or not (test_nodes.py); with it and
    # no token, the node is checked to be a member and gets the cluster's state again
    rc, out, err = gnt("gnt-node", "add", "--readd", "node2", check=False)
    assert rc == 0, out + err
    assert "node2 still holds its certificate from this cluster" in out, out
    assert cluster.roles() == HEALTHY
    rc, out, err = gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err


def test_readd_without_token_of_a_node_that_left(cluster: VCluster, gnt: Gnt) -> None:
    gnt("gnt-node", "remove", "node3")
    try:
        # gone from the configuration: nothing to re-add (Ganeti's error too)
        rc, _, err = gnt("gnt-node", "add", "--readd", "node3", check=False)
        assert rc != 0 and "unknown_entity" in err and "node3" in err, err
        # a plain add still needs the node's token, and says where to get it
        rc, _, err = gnt("gnt-node", "add", "node3", check=False)
        assert rc != 0 and "join-token" in err, err
    finally:
        gnt("gnt-node", "add", "--join-token", cluster.join_token("node3"), "node3")
    assert cluster.roles() == HEALTHY
