"""Every committed change reaches the master candidates' replicas; verify reports a replica
that missed changes, and redist-conf brings it back in sync."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from contextlib import closing

from integration_kit import VCluster, pid_alive, wait_for


def replica(cluster: VCluster, node: str) -> tuple[int, list[str]]:
    """(serial, node group names) of a node's config.db, opened read-only."""
    path = cluster.node_dir(node) / "config.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        serial = int(db.execute("SELECT value FROM meta WHERE key='serial'").fetchone()[0])
        rows = db.execute("SELECT data FROM objects WHERE kind='nodegroup'").fetchall()
    return serial, sorted(json.loads(data)["name"] for (data,) in rows)


def test_change_reaches_candidates(cluster: VCluster) -> None:
    cluster.gnt("gnt-group", "add", "replicated")
    serial, groups = replica(cluster, "node1")
    assert groups == ["default", "replicated"]
    for node in ("node2", "node3"):
        assert replica(cluster, node) == (serial, groups), node

    assert cluster.gnt("gnt-cluster", "redist-conf") == (0, "", "")
    for node in ("node2", "node3"):
        assert replica(cluster, node) == (serial, groups), node


def test_verify_reports_stale_replica_and_redist_fixes_it(cluster: VCluster) -> None:
    gnt = cluster.gnt
    pid = cluster.pid("node2", "noded")
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), 15, "node2's daemon to stop")

    gnt("gnt-group", "add", "missed")
    master_serial, master_groups = replica(cluster, "node1")
    assert "missed" in master_groups
    assert replica(cluster, "node3") == (master_serial, master_groups)
    stale_serial, stale_groups = replica(cluster, "node2")
    assert stale_serial < master_serial and "missed" not in stale_groups

    rc, out, _ = gnt("gnt-cluster", "verify", check=False)
    assert rc == 1
    errors = [line for line in out.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "node node2" in errors[0], out
    assert "refused the connection" in errors[0]
    assert "node node2: node node2" not in errors[0]

    cluster.up()  # starts node2's daemon again, nothing else
    assert cluster.pid("node2", "noded") is not None
    rc, out, _ = gnt("gnt-cluster", "verify", check=False)
    assert rc == 1
    errors = [line for line in out.splitlines() if "ERROR" in line]
    assert len(errors) == 1, out
    assert "node node2" in errors[0]
    assert f"serial {stale_serial}, the master at {master_serial}" in errors[0]
    assert "redist-conf" in errors[0]

    assert gnt("gnt-cluster", "redist-conf") == (0, "", "")
    assert replica(cluster, "node2") == (master_serial, master_groups)
    rc, out, err = gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err
