"""gnt-cluster destroy: refused while other nodes remain; on a lone master it ends the
cluster, and every command then says there is no cluster."""

from __future__ import annotations

from pathlib import Path

from integration_kit import VCluster, pid_alive, start_cluster, stop_cluster, wait_for


def test_destroy_refused_with_other_nodes(cluster: VCluster) -> None:
    before = cluster.snapshot()
    rc, out, err = cluster.gnt("gnt-cluster", "destroy", check=False)
    assert rc == 1 and "--yes-do-it" in err
    rc, out, err = cluster.gnt("gnt-cluster", "destroy", "--yes-do-it", check=False)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Failure: wrong_state: "), err
    assert "node2, node3" in lines[0]
    assert cluster.snapshot() == before
    assert cluster.pid("node1", "masterd") is not None


def test_destroy_lone_master(tmp_path: Path) -> None:
    lone = start_cluster(tmp_path, nodes=1)
    try:
        assert lone.roles() == {"node1": "M"}
        masterd = lone.pid("node1", "masterd")
        assert masterd is not None
        rc, out, err = lone.gnt("gnt-cluster", "destroy", "--yes-do-it")
        assert "Destroying the cluster" in out
        wait_for(lambda: not pid_alive(masterd), 15, "the master daemon to stop")
        node1 = lone.node_dir("node1")
        assert not (node1 / "config.db").exists()
        assert not (node1 / "ssconf.json").exists()
        assert not (node1 / "certs" / "ca.pem").exists()
        for command in (["gnt-cluster", "info"], ["gnt-node", "list"],
                        ["gnt-cluster", "getmaster"], ["gnt-debug", "delay", "0"]):
            rc, out, err = lone.gnt(*command, check=False)
            assert rc == 5, (command, err)
            assert "no initialised cluster" in err or "not part of a cluster" in err
        # the node daemon is back to waiting for a cluster, with a join token
        assert lone.join_token("node1").startswith("cardume-join:v1:")
    finally:
        stop_cluster(lone)
