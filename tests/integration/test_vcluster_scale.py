"""A local cluster of some tens of nodes, as an admin checks it: every node listed and
online, verify passes, the master candidates capped at the pool size, an instance added on
the last node, and node daemons that stay small (no cryptography library in them)."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import PORT, VCluster, _claim, install_dummy_os, stop_cluster

from cardume import constants
from cardume.vcluster import loopback

pytestmark = pytest.mark.slow

NODES = 40
# Away from the other tests' ten-address ranges (127.0.0.*, 127.0.2-5.*), their instances'
# 127.0.9.* and bench/scale.py's 127.0.10+.*: a whole /24 of its own, claimed like theirs.
BASES = ["127.0.6.11", "127.0.7.11", "127.0.8.11"]


def _free_base() -> str:
    for base in BASES:
        if _claim(f"scale-{base}") and any(loopback.free_ranges([base], NODES, PORT)):
            return base
    pytest.skip(f"no free loopback range of {NODES} addresses among {BASES}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    vc = VCluster(tmp_path_factory.mktemp("scale") / "vc", _free_base(), NODES)
    try:
        vc.up()
        install_dummy_os(vc)
        yield vc
    finally:
        stop_cluster(vc)


def test_every_node_listed_and_online(cluster: VCluster) -> None:
    out = cluster.gnt("gnt-node", "list", "--no-headers", "-o", "name,offline,pip")[1]
    rows = [line.split() for line in out.splitlines()]
    assert sorted(r[0] for r in rows) == sorted(f"node{i}" for i in range(1, NODES + 1))
    assert {r[1] for r in rows} == {"N"}
    assert {r[2] for r in rows} == {cluster.ip(i) for i in range(1, NODES + 1)}
    # the default columns come from every node daemon: none is missing its answer
    out = cluster.gnt("gnt-node", "list", "--no-headers", "-o", "name,mtotal,dfree")[1]
    missing = [line for line in out.splitlines() if "?" in line.split()]
    assert not missing, f"nodes that did not answer: {missing}"


def test_verify_passes(cluster: VCluster) -> None:
    rc, out, err = cluster.gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err
    assert f"Gathering data ({NODES} nodes)" in out


def test_candidates_capped_at_the_pool_size(cluster: VCluster) -> None:
    info = cluster.gnt("gnt-cluster", "info")[1]
    assert f"candidate pool size: {constants.DEFAULT_CANDIDATE_POOL_SIZE}" in info
    roles = collections.Counter(cluster.roles().values())
    assert roles == {"M": 1, "C": constants.DEFAULT_CANDIDATE_POOL_SIZE - 1,
                     "R": NODES - constants.DEFAULT_CANDIDATE_POOL_SIZE}


def test_an_instance_on_the_last_node(cluster: VCluster) -> None:
    last = f"node{NODES}"
    cluster.gnt("gnt-instance", "add", "-t", "diskless", "-B", "memory=64", "-o",
                "dummy+default", "-n", last, "--no-name-check", "--no-ip-check", "scale1")
    out = cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "name,pnode,status")[1]
    assert out.split() == ["scale1", last, "running"]
    pinst = cluster.gnt("gnt-node", "list", "--no-headers", "-o", "pinst_cnt", last)[1]
    assert pinst.strip() == "1"


def test_node_daemons_carry_no_cryptography_library(cluster: VCluster) -> None:
    """They joined, were verified and listed (the tests above) with the ssl module alone."""
    cluster.gnt("gnt-cluster", "verify")
    loaded = []
    for i in range(1, NODES + 1):
        pid = cluster.pid(f"node{i}", "noded")
        assert pid is not None, f"node{i}'s daemon is not running"
        maps = Path(f"/proc/{pid}/maps").read_text(encoding="ascii", errors="replace")
        if "cryptography" in maps:
            loaded.append(f"node{i}")
    assert not loaded, f"node daemons with the cryptography library mapped: {loaded}"
    assert os.path.exists(cluster.node_dir(f"node{NODES}") / "certs" / "ca.pem")
