"""Bad input gets a one-line error naming the bad value, a non-zero exit, and changes
nothing; so do a second init and a command pointed at a directory with no cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from integration_kit import BIN, VCluster, run


@pytest.mark.parametrize(("args", "named"), [
    (["-B", "vcpus=x"], ["'vcpus'", "'x'", "integer"]),
    (["-B", "foo=1"], ["'foo'", "vcpus"]),
    (["-B", "memory=0"], ["'memory'", "0"]),
    (["-H", "fake:bad=1"], ["'bad'", "fake", "migration_mode"]),
    (["-H", "fake:migration_mode=sideways"], ["'sideways'", "live, non-live"]),
    (["-H", "nosuchhv:a=1"], ["'nosuchhv'", "fake"]),
    (["-H", ":a=1"], ["':a=1'"]),
    (["-N", "mode=foo"], ["'foo'", "bridged"]),
    (["--enabled-hypervisors", "fake,nosuchhv"], ["'nosuchhv'"]),
    (["--mac-prefix", "zz:00:00"], ["'zz:00:00'"]),
    (["--max-running-jobs", "0"], ["0"]),
])
def test_cluster_modify_bad_parameters(cluster: VCluster, args: list[str],
                                       named: list[str]) -> None:
    before = cluster.snapshot()
    rc, out, err = cluster.gnt("gnt-cluster", "modify", *args, check=False)
    assert rc == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Failure: wrong_input: "), err
    for text in named:
        assert text in lines[0], lines[0]
    assert cluster.snapshot() == before


def test_cluster_modify_nothing_to_change(cluster: VCluster) -> None:
    rc, out, err = cluster.gnt("gnt-cluster", "modify", check=False)
    assert rc == 1 and "at least one" in err and len(err.strip().splitlines()) == 1


def test_cluster_modify_good_parameters(cluster: VCluster) -> None:
    """The same options with good values do change the cluster (and can be undone)."""
    cluster.gnt("gnt-cluster", "modify", "-B", "vcpus=2", "-H", "fake:migration_mode=non-live")
    info = cluster.gnt("gnt-cluster", "info")[1]
    assert "    vcpus: 2" in info.splitlines()
    assert "    migration_mode: non-live" in info.splitlines()
    cluster.gnt("gnt-cluster", "modify", "-B", "vcpus=1", "-H", "fake:migration_mode=live")
    info = cluster.gnt("gnt-cluster", "info")[1]
    assert "    vcpus: 1" in info.splitlines()


def test_second_init_refused(cluster: VCluster) -> None:
    before = cluster.snapshot()
    config = (cluster.node_dir("node1") / "config.db").stat().st_mtime_ns
    for name in ("other.example", "cluster.vcluster"):
        rc, out, err = cluster.gnt("gnt-cluster", "init", "--enabled-hypervisors=fake", name,
                                   check=False)
        assert rc == 1 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Failure: wrong_state: "), err
        assert "cluster.vcluster" in lines[0]
    assert (cluster.node_dir("node1") / "config.db").stat().st_mtime_ns == config
    assert cluster.snapshot() == before


@pytest.mark.parametrize("command", [
    ["gnt-cluster", "info"], ["gnt-cluster", "getmaster"], ["gnt-cluster", "verify"],
    ["gnt-node", "list"], ["gnt-group", "list"], ["gnt-job", "list"],
    ["gnt-debug", "delay", "0"],
])
def test_no_cluster_here(tmp_path: Path, command: list[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"CARDUME_ROOT": str(empty), "PATH": "/usr/bin:/bin"}
    rc, out, err = run([str(BIN / command[0]), *command[1:]], env, check=False)
    assert rc == 5, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Failure: environment_error: "), err
    assert "no initialised cluster" in lines[0] or "not part of a cluster" in lines[0]
    assert list(empty.iterdir()) == [], "a refused command creates nothing"


@pytest.mark.parametrize(("args", "named"), [
    (["gnt-cluster", "modify", "-C", "abc"], "invalid int value: 'abc'"),
    (["gnt-cluster", "modify", "--max-running-jobs", "1e308"], "invalid int value: '1e308'"),
    (["gnt-group", "add", "--alloc-policy", "nosuch", "g2"], "invalid choice: 'nosuch'"),
    (["gnt-debug", "delay", "--submit", "--", "abc"], "'abc'"),
    (["gnt-os", "list", "-o", "nosuchfield"], "-o nosuchfield"),
    (["gnt-cluster", "nosuch"], "invalid choice: 'nosuch'"),
])
def test_bad_options_get_one_line_too(cluster: VCluster, args: list[str], named: str) -> None:
    """argparse's usage block is no error message: one line naming the value, and where
    the usage is; exit code 2 as for any usage error."""
    before = cluster.snapshot()
    rc, out, err = cluster.gnt(*args, check=False)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Failure: wrong_input: ") and named in lines[0], err
    assert lines[0].endswith("--help')"), err
    assert cluster.snapshot() == before


@pytest.mark.parametrize("job", ["1000000000000000000000000000000", "-1", "1.5", "x"])
def test_job_ids_out_of_range(cluster: VCluster, job: str) -> None:
    for args in (["gnt-job", "info", job], ["gnt-job", "list", job]):
        rc, out, err = cluster.gnt(*args, check=False)
        assert rc == 1 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0] == (f"Failure: wrong_input: invalid job id '{job}': expected a "
                            "number from 0 to 9007199254740992"), err
