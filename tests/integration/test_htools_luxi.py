"""Ganeti's htools in LUXI mode (Debian's ganeti-htools-3.0: ``hbal -L``, ``hspace -L``,
``hinfo -L``, ``hcheck -L``, ``hscan -L``) read a cardume cluster through its master's socket
and see what ``gnt-node list`` and ``gnt-instance list`` show.

All instances start on node1: hbal proposes to move the shared-storage ones away (a file
instance's disk cannot leave its node), and hspace counts room for more.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import Gnt, VCluster, os_cluster

# Debian's ganeti-htools-3.0 installs the tools here (the ganeti package adds /usr/bin links)
HTOOLS_DIR = "/usr/lib/ganeti/3.0/usr/bin"


def tool_path(name: str) -> str | None:
    found = os.path.join(HTOOLS_DIR, name)
    return found if os.path.exists(found) else shutil.which(name)


def htool(tool: str, *args: str) -> str:
    """The tool's output; it must exit 0."""
    path = tool_path(tool)
    assert path is not None, f"{tool} is not installed"
    proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, f"{tool} {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout

pytestmark = pytest.mark.skipif(tool_path("hbal") is None,
                                reason="ganeti-htools-3.0 is not installed")

INSTANCES = {  # name: (disk template, memory)
    "lx1": ("file", 128), "lx2": ("sharedfile", 128), "lx3": ("sharedfile", 256),
    "lx4": ("diskless", 128)}
# hspace's tiered allocation starts at the policy's maxima and shrinks from there: the
# bounds an admin of a small cluster sets (a local cluster's minima, Ganeti's maxima)
BOUNDS = ("min:memory-size=1,cpu-count=1,disk-count=0,disk-size=1,nic-count=0,spindle-use=0"
          "/max:memory-size=32768,cpu-count=8,disk-count=16,disk-size=1048576,nic-count=8,"
          "spindle-use=12")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    with os_cluster(tmp_path_factory.mktemp("htools-luxi")) as vc:
        for name, (template, memory) in INSTANCES.items():
            disk = [] if template == "diskless" else ["--disk", "0:size=1g"]
            vc.gnt("gnt-instance", "add", "-t", template, *disk, "-o", "dummy+default",
                   "-B", f"memory={memory}", "--no-name-check", "--no-ip-check",
                   "-n", "node1", name)
        vc.gnt("gnt-cluster", "modify", "--ipolicy-bounds-specs", BOUNDS)
        yield vc


@pytest.fixture(scope="module")
def socket_path(cluster: VCluster) -> str:
    path = cluster.node_dir(cluster.master()) / "run" / "master.sock"
    assert path.is_socket(), path
    return str(path)


def listed(gnt: Gnt, what: str, fields: str) -> list[list[str]]:
    out = gnt(f"gnt-{what}", "list", "--no-headers", "--units", "m", "--separator", "|",
              "-o", fields)[1]
    return [line.split("|") for line in out.splitlines()]


def loaded(out: str) -> tuple[int, int]:
    found = re.search(r"^Loaded (\d+) nodes, (\d+) instances", out, re.M)
    assert found, out
    return int(found[1]), int(found[2])


def test_hinfo_loads_what_gnt_lists(socket_path: str, gnt: Gnt) -> None:
    out = htool("hinfo", f"-L{socket_path}")
    assert loaded(out) == (len(listed(gnt, "node", "name")),
                           len(listed(gnt, "instance", "name")))
    assert "1 node group" in out
    assert re.search(r"^Cluster score: \d+\.\d+$", out, re.M), out


def test_hbal_scores_the_cluster_and_moves_shared_storage_off_node1(socket_path: str,
                                                                    gnt: Gnt) -> None:
    out = htool("hbal", f"-L{socket_path}")
    assert loaded(out) == (3, len(INSTANCES))
    assert "Initial check done: 0 bad nodes, 0 bad instances." in out
    initial = re.search(r"^Initial score: (\d+\.\d+)$", out, re.M)
    assert initial, out
    # each step: "N. instance from => to score a=fa:to" (a failover: the disks are shared)
    moves = re.findall(r"^\s+\d+\. (\S+)\s+(\S+)\s+=> (\S+)\s+[\d.]+ a=(\S+)$", out, re.M)
    assert moves, out
    primaries = dict(row[:2] for row in listed(gnt, "instance", "name,pnode"))
    for name, source, target, _action in moves:
        assert INSTANCES[name][0] != "file", f"{name}'s disk cannot leave {source}"
        assert source == primaries[name] == "node1" and target in ("node2", "node3")
    final = re.search(r"^Cluster score improved from [\d.]+ to (\d+\.\d+)$", out, re.M)
    assert final and float(final[1]) < float(initial[1]), out
    # only a plan: nothing moved
    assert set(primaries.values()) == {"node1"}


def test_hspace_counts_room_for_more(socket_path: str, gnt: Gnt) -> None:
    out = htool("hspace", f"-L{socket_path}", "--machine-readable")
    values = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("HTS_"))
    assert values["HTS_OK"] == "1"
    assert values["HTS_INI_INST_CNT"] == str(len(INSTANCES))
    assert int(values["HTS_ALLOC_INSTANCES"]) > 0, values.get("HTS_ALLOC_FAIL_REASON")
    assert int(values["HTS_INI_MEM_INST"]) == sum(m for _t, m in INSTANCES.values())
    assert int(values["HTS_CLUSTER_MEM"]) == sum(
        int(row[0]) for row in listed(gnt, "node", "mtotal"))


def test_gnt_cluster_capacity_agrees_with_hspace(socket_path: str, gnt: Gnt) -> None:
    """The same question, the same cluster: how many more of the standard instance fit,
    and what runs out first, from Debian's hspace over the socket and from cardume."""
    def values(out: str) -> dict[str, str]:
        return dict(line.split("=", 1) for line in out.splitlines() if line.startswith("HTS_"))
    theirs = values(htool("hspace", f"-L{socket_path}", "--machine-readable"))
    ours = values(gnt("gnt-cluster", "capacity", "--machine-readable")[1])
    assert int(ours["HTS_ALLOC_INSTANCES"]) > 0
    assert ours["HTS_ALLOC_INSTANCES"] == theirs["HTS_ALLOC_INSTANCES"]
    assert ours["HTS_ALLOC_FAIL_REASON"] == theirs["HTS_ALLOC_FAIL_REASON"]


def test_hcheck_finds_a_healthy_cluster(socket_path: str) -> None:
    out = htool("hcheck", f"-L{socket_path}")
    assert "Cluster is not healthy: False" in out


def test_hscan_saves_the_nodes_and_instances_gnt_lists(socket_path: str, gnt: Gnt,
                                                       tmp_path: Path) -> None:
    out = htool("hscan", f"-L{socket_path}", "-d", str(tmp_path))
    summary = next(line.split() for line in out.splitlines() if line.startswith("LOCAL"))
    assert summary[1:3] == ["3", str(len(INSTANCES))]
    saved = (tmp_path / "LOCAL.data").read_text(encoding="utf-8")
    for name, pnode, template in listed(gnt, "instance", "name,pnode,disk_template"):
        assert f"|{pnode}||{template}|" in next(
            line for line in saved.splitlines() if line.startswith(f"{name}|")), name
    for (name,) in listed(gnt, "node", "name"):
        assert any(line.startswith(f"{name}|") for line in saved.splitlines()), name
