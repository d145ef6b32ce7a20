"""Node roles (gnt-node modify), removing and re-adding a node, and refused node changes."""

from __future__ import annotations

from pathlib import Path

from integration_kit import Gnt, VCluster

from cardume.node.daemon import ensure_identity, join_token
from cardume.paths import NodePaths

HEALTHY = {"node1": "M", "node2": "C", "node3": "C"}


def one_line_error(rc: int, err: str, code: str) -> str:
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"Failure: {code}: "), err
    return lines[0]


def verify_ok(gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err


def test_drain_and_undrain(cluster: VCluster, gnt: Gnt) -> None:
    out = gnt("gnt-node", "modify", "-D", "yes", "node3")[1]
    lines = out.splitlines()
    assert "Modified node node3" in lines
    assert " - drained -> True" in lines
    assert cluster.roles() == {**HEALTHY, "node3": "D"}
    verify_ok(gnt)  # a drained node is not wanted as a candidate
    out = gnt("gnt-node", "modify", "-D", "no", "node3")[1]
    lines = out.splitlines()
    assert "Modified node node3" in lines
    assert " - drained -> False" in lines
    # the pool is short again, so the node is promoted back, as Ganeti does
    assert " - master_candidate -> True" in lines
    assert cluster.roles() == HEALTHY
    verify_ok(gnt)


def test_offline_and_online(cluster: VCluster, gnt: Gnt) -> None:
    out = gnt("gnt-node", "modify", "-O", "yes", "node3")[1]
    assert "Modified node node3" in out.splitlines()
    assert " - offline -> True" in out.splitlines()
    assert cluster.roles() == {**HEALTHY, "node3": "O"}
    flags = gnt("gnt-node", "list", "--no-headers", "-o", "name,offline,master_candidate",
                "node3")[1]
    assert flags.split() == ["node3", "Y", "N"]
    verify_ok(gnt)
    out = gnt("gnt-node", "modify", "-O", "no", "node3")[1]
    assert " - offline -> False" in out.splitlines()
    assert cluster.roles() == HEALTHY
    verify_ok(gnt)


def test_demoting_a_needed_candidate_is_refused(cluster: VCluster, gnt: Gnt) -> None:
    before = cluster.snapshot()
    for extra in ([], ["--auto-promote"]):
        rc, out, err = gnt("gnt-node", "modify", *extra, "-C", "no", "node3", check=False)
        line = one_line_error(rc, err, "wrong_state")
        assert "desired 3" in line and "would be 2" in line, line
        assert "--force" in line
    assert cluster.snapshot() == before
    # --force does it, and cluster verify then says the pool is short
    out = gnt("gnt-node", "modify", "--force", "-C", "no", "node3")[1]
    assert " - master_candidate -> False" in out.splitlines()
    assert cluster.roles() == {**HEALTHY, "node3": "R"}
    rc, out, _ = gnt("gnt-cluster", "verify", check=False)
    assert rc == 1
    assert "not enough master candidates: have 2, want 3" in out
    gnt("gnt-node", "modify", "-C", "yes", "node3")
    assert cluster.roles() == HEALTHY
    verify_ok(gnt)


def test_two_states_at_once_refused(cluster: VCluster, gnt: Gnt) -> None:
    before = cluster.snapshot()
    for flags in (["-C", "yes", "-D", "yes"], ["-D", "yes", "-O", "yes"],
                  ["-C", "yes", "-O", "yes"]):
        rc, _, err = gnt("gnt-node", "modify", *flags, "node3", check=False)
        line = one_line_error(rc, err, "wrong_input")
        assert "more than one state" in line
    assert cluster.snapshot() == before


def test_master_role_change_refused(cluster: VCluster, gnt: Gnt) -> None:
    before = cluster.snapshot()
    for flags in (["-C", "no"], ["-O", "yes"], ["-D", "yes"]):
        rc, _, err = gnt("gnt-node", "modify", *flags, "node1", check=False)
        line = one_line_error(rc, err, "wrong_input")
        assert "node1 is the master" in line and "master-failover" in line
    assert cluster.snapshot() == before


def test_modify_bad_input(cluster: VCluster, gnt: Gnt) -> None:
    before = cluster.snapshot()
    rc, out, err = gnt("gnt-node", "modify", "-C", "maybe", "node3", check=False)
    line = one_line_error(rc, err, "wrong_input")
    assert "'maybe'" in line and "yes or no" in line
    assert "Traceback" not in err
    rc, _, err = gnt("gnt-node", "modify", "node3", check=False)
    assert "at least one" in one_line_error(rc, err, "wrong_input")
    for command in (["modify", "-D", "yes"], ["remove"], ["list"]):
        rc, _, err = gnt("gnt-node", *command, "nosuch", check=False)
        assert "'nosuch'" in one_line_error(rc, err, "unknown_entity")
    assert cluster.snapshot() == before


def test_add_existing_node_refused(cluster: VCluster, gnt: Gnt) -> None:
    before = cluster.snapshot()
    # a joined node has no join token any more
    rc, _, err = cluster.cardume("node", "join-token", "--root",
                                 str(cluster.node_dir("node2")), check=False)
    assert rc != 0 and "already belongs to a cluster" in err
    token = "cardume-join:v1:" + "0" * 64 + ":" + "s" * 32
    for extra in ([], ["--join-token", token]):
        rc, _, err = gnt("gnt-node", "add", *extra, "node2", check=False)
        line = one_line_error(rc, err, "already_exists")
        assert "node2" in line and "--readd" in line
    assert cluster.snapshot() == before


def test_remove_and_readd_with_fresh_token(cluster: VCluster, gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-node", "remove", "node3")
    assert rc == 0
    assert cluster.roles() == {"node1": "M", "node2": "C"}
    rc, _, err = gnt("gnt-node", "remove", "node3", check=False)
    assert "'node3'" in one_line_error(rc, err, "unknown_entity")
    # the node forgot the cluster and shows a fresh token
    token = cluster.join_token("node3")
    assert token.startswith("cardume-join:v1:")
    before = cluster.snapshot()

    rc, _, err = gnt("gnt-node", "add", "--join-token", "not-a-token", "node3", check=False)
    assert "'not-a-token'" in one_line_error(rc, err, "wrong_input")
    fingerprint, secret = token.removeprefix("cardume-join:v1:").split(":")
    wrong_secret = f"cardume-join:v1:{fingerprint}:{'x' * len(secret)}"
    rc, _, err = gnt("gnt-node", "add", "--join-token", wrong_secret, "node3", check=False)
    assert "secret is wrong" in one_line_error(rc, err, "wrong_input")
    other_node = f"cardume-join:v1:{'ab' * 32}:{secret}"
    rc, _, err = gnt("gnt-node", "add", "--join-token", other_node, "node3", check=False)
    line = one_line_error(rc, err, "wrong_input")
    assert "not the one in the join token" in line
    assert cluster.snapshot() == before

    out = gnt("gnt-node", "add", "--join-token", token, "node3")[1]
    assert "node3 is a master candidate" in out
    assert cluster.roles() == HEALTHY
    verify_ok(gnt)


def test_add_node_whose_daemon_is_down(cluster: VCluster, gnt: Gnt, tmp_path: Path) -> None:
    # node4 resolves and has a real join token, but its daemon is not running
    node4 = NodePaths(str(tmp_path / "node4"))
    ensure_identity(node4, "node4")
    token = join_token(node4)
    with open(cluster.root / "hosts", "a", encoding="ascii") as hosts:
        hosts.write(f"{cluster.ip(4)} node4\n")
    before = cluster.snapshot()
    rc, out, err = gnt("gnt-node", "add", "--join-token", token, "node4", check=False)
    line = one_line_error(rc, err, "environment_error")
    assert f"{cluster.ip(4)}:1811" in line
    assert cluster.snapshot() == before
    assert "node4" not in cluster.roles()
    rc, _, err = gnt("gnt-node", "add", "--join-token", token, "nosuch", check=False)
    assert "nosuch" in one_line_error(rc, err, "resolver_error")
