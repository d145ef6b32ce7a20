"""gnt-cluster master-failover: a master candidate takes over with the replicated config."""

from __future__ import annotations

from integration_kit import VCluster, wait_for


def groups(cluster: VCluster) -> list[str]:
    return cluster.gnt("gnt-group", "list", "--no-headers", "-o", "name")[1].split()


def failover_to(cluster: VCluster, node: str, old: str) -> None:
    rc, out, err = cluster.gnt("gnt-cluster", "master-failover", node=node)
    lines = out.splitlines()
    assert f"Stopped the master daemon on {old}" in lines
    assert lines[-1] == f"Node {node} is now the master"


def test_failover_and_back(cluster: VCluster) -> None:
    gnt = cluster.gnt
    gnt("gnt-group", "add", "before")
    failover_to(cluster, "node2", "node1")

    for node in (None, "node2"):
        assert gnt("gnt-cluster", "getmaster", node=node)[1] == "node2\n"
    for node in ("node1", "node3"):  # the new master tells the other nodes right after
        wait_for(lambda n=node: gnt("gnt-cluster", "getmaster", node=n)[1] == "node2\n",
                 10, f"{node} to know the new master")
    assert cluster.roles() == {"node1": "C", "node2": "M", "node3": "C"}
    assert "Master node: node2" in gnt("gnt-cluster", "info")[1].splitlines()
    assert cluster.pid("node1", "masterd") is None
    assert cluster.pid("node2", "masterd") is not None
    assert groups(cluster) == ["before", "default"]
    gnt("gnt-group", "add", "after")
    assert gnt("gnt-debug", "delay", "0")[0] == 0
    rc, out, err = gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err

    rc, out, err = gnt("gnt-cluster", "master-failover", node="node2", check=False)
    assert rc == 1 and "node2" in err and "already the master" in err

    failover_to(cluster, "node1", "node2")
    assert cluster.master() == "node1"
    assert cluster.roles() == {"node1": "M", "node2": "C", "node3": "C"}
    assert cluster.pid("node2", "masterd") is None
    assert groups(cluster) == ["after", "before", "default"]
    rc, out, err = gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err


def test_failover_on_a_non_candidate_is_refused(cluster: VCluster) -> None:
    gnt = cluster.gnt
    gnt("gnt-node", "modify", "-D", "yes", "node3")  # drained: no longer a candidate
    try:
        before = cluster.snapshot()
        master_pid = cluster.pid("node1", "masterd")
        rc, out, err = gnt("gnt-cluster", "master-failover", node="node3", check=False)
        assert rc == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Failure: wrong_state: "), err
        assert "node3 is not a master candidate" in lines[0]
        assert "Stopped" not in out
        # the master is untouched, its daemon still the same process
        assert cluster.pid("node1", "masterd") == master_pid
        assert cluster.pid("node3", "masterd") is None
        assert gnt("gnt-cluster", "getmaster", node="node3")[1] == "node1\n"
        assert cluster.snapshot() == before
    finally:
        gnt("gnt-node", "modify", "-D", "no", "node3")
    assert cluster.roles() == {"node1": "M", "node2": "C", "node3": "C"}
