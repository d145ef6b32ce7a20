"""Where file disks may live, on a real local cluster (issue 11, items 6 and 8):
``gnt-cluster modify --file-storage-dir/--shared-file-storage-dir`` refuses system
directories, '..', relative paths, directories outside a node's allowed list and changes
that would strand instances, each in one line and leaving the cluster as it was; an allowed
change works, instances included; ``gnt-cluster verify`` reports what a node refuses and the
disk files no instance claims.

The cluster is this module's own; each test puts back what it changed (storage directories,
allowed-paths files, instances, stray files), so the tests pass alone and in any order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import Gnt, VCluster, os_cluster

FILE_DIR = "/srv/ganeti/file-storage"  # the local cluster's (each node maps it below disk/)
OS = ["-o", "dummy+default"]
BAD = {  # value -> what the one-line refusal says about it
    "/etc": "'/etc' is a system directory: expected a directory of its own",
    "/": "'/' is a system directory: expected a directory of its own",
    "/proc/x": "'/proc/x' is inside the system directory /proc: expected a directory of its "
               "own",
    "/srv/../etc": "'/srv/../etc' goes through '..' (it means '/etc', a system directory): "
                   "expected a path without '..'",
    "srv/disks": "'srv/disks' is not an absolute path: expected one such as",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    names = {f"sp{index}": f"127.0.9.{200 + index}" for index in range(1, 10)}
    with os_cluster(tmp_path_factory.mktemp("storagepaths"), names) as vc:
        yield vc


def refused(gnt: Gnt, *args: str) -> str:
    """Run a command that must fail with a one-line error; returns that line."""
    rc, out, err = gnt(*args, check=False)
    assert rc != 0, f"{' '.join(args)} succeeded:\n{out}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def storage_dirs(gnt: Gnt) -> tuple[str, str]:
    """(file storage path, shared file storage path) as gnt-cluster info shows them."""
    found = {}
    for line in gnt("gnt-cluster", "info")[1].splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("file storage path", "shared file storage path"):
            found[key] = value.strip()
    return found["file storage path"], found["shared file storage path"]


def verify(gnt: Gnt) -> tuple[int, list[str]]:
    """gnt-cluster verify's exit code and the problems it lists."""
    rc, out, _ = gnt("gnt-cluster", "verify", check=False)
    return rc, [line.split(" - ", 1)[1] for line in out.splitlines() if " - " in line]


def allowed_list(cluster: VCluster, node: str) -> Path:
    return cluster.node_dir(node) / "file-storage-paths"


@pytest.fixture
def restore(cluster: VCluster, gnt: Gnt) -> Iterator[None]:
    """Put the storage directories back and drop the allowed lists after the test."""
    before = storage_dirs(gnt)
    yield
    for node in ("node1", "node2", "node3"):
        allowed_list(cluster, node).unlink(missing_ok=True)
    gnt("gnt-cluster", "modify", "--file-storage-dir", before[0],
        "--shared-file-storage-dir", before[1])
    assert storage_dirs(gnt) == before


@pytest.mark.parametrize("option", ["--file-storage-dir", "--shared-file-storage-dir"])
def test_bad_dirs_are_refused_in_one_line_and_change_nothing(cluster: VCluster, gnt: Gnt,
                                                            option: str) -> None:
    before = cluster.snapshot()
    what = option.strip("-").replace("-", " ")
    for value, says in BAD.items():
        line = refused(gnt, "gnt-cluster", "modify", option, value)
        assert f"invalid {what}: {says}" in line, line
        assert cluster.snapshot() == before


def test_a_dir_outside_a_nodes_allowed_list_is_refused(cluster: VCluster, gnt: Gnt,
                                                      restore: None) -> None:
    shared = storage_dirs(gnt)[1]
    allowed_list(cluster, "node2").write_text(f"# node2's disks\n/srv/ganeti\n{shared}\n")
    before = cluster.snapshot()
    line = refused(gnt, "gnt-cluster", "modify", "--file-storage-dir", "/data/disks")
    assert line == (
        "Failure: wrong_input: node node2 refuses the file storage dir: '/data/disks' is not "
        f"in the node's allowed file storage paths (/srv/ganeti, {shared}; see "
        "file-storage-paths in its state directory) (choose a directory every node allows)")
    assert cluster.snapshot() == before


def test_an_allowed_change_works_and_instances_use_it(cluster: VCluster, gnt: Gnt,
                                                     restore: None) -> None:
    shared = storage_dirs(gnt)[1]
    allowed_list(cluster, "node1").write_text(f"/srv/ganeti\n{shared}\n")
    gnt("gnt-cluster", "modify", "--file-storage-dir", "/srv/ganeti/disks-v2/")
    assert storage_dirs(gnt)[0] == "/srv/ganeti/disks-v2"  # stored in its normal form
    gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=4m", *OS, "-n", "node1", "sp1")
    try:
        images = list((cluster.node_dir("node1") / "disk" / "srv/ganeti/disks-v2" / "sp1")
                      .glob("*.file.disk0"))
        assert len(images) == 1
        status = gnt("gnt-instance", "list", "--no-headers", "-o", "status", "sp1")[1]
        assert status.split() == ["running"]
        assert verify(gnt) == (0, [])
    finally:
        gnt("gnt-instance", "remove", "-f", "sp1")


def test_a_change_that_would_strand_an_instance_is_refused(cluster: VCluster, gnt: Gnt,
                                                          restore: None) -> None:
    gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=4m", *OS, "-n", "node1",
        "--no-start", "sp2")
    try:
        before = cluster.snapshot()
        line = refused(gnt, "gnt-cluster", "modify", "--file-storage-dir", "/srv/cardume")
        assert line == (
            "Failure: wrong_state: changing the file storage dir to '/srv/cardume' would "
            f"strand instance(s) sp2: their disks are in '{FILE_DIR}', outside it, and could "
            "no longer be used (remove those instances first (gnt-instance remove), or "
            f"choose a directory that contains '{FILE_DIR}')")
        assert cluster.snapshot() == before
        # a directory that contains the old one keeps the disks inside it: the instance
        # still starts
        gnt("gnt-cluster", "modify", "--file-storage-dir", "/srv/ganeti")
        gnt("gnt-instance", "start", "sp2")
        status = gnt("gnt-instance", "list", "--no-headers", "-o", "status", "sp2")[1]
        assert status.split() == ["running"]
    finally:
        gnt("gnt-instance", "remove", "-f", "sp2")


def test_a_node_refuses_a_dir_its_list_leaves_out_and_verify_says_so(
        cluster: VCluster, gnt: Gnt, restore: None) -> None:
    """The admin narrows node3's allowed list after the fact: the node refuses the disks
    there, and verify names the node and the directory."""
    gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=4m", *OS, "-n", "node3",
        "--no-start", "sp3")
    try:
        allowed_list(cluster, "node3").write_text("/srv/elsewhere\n")
        line = refused(gnt, "gnt-instance", "start", "sp3")
        assert (f"this node refuses the cluster's file storage dir: '{FILE_DIR}' is not in "
                "the node's allowed file storage paths (/srv/elsewhere;") in line, line
        rc, problems = verify(gnt)
        assert rc == 1
        assert ("ERROR: node node3: the file storage dir is refused here: "
                f"'{FILE_DIR}' is not in the node's allowed file storage paths "
                "(/srv/elsewhere; see file-storage-paths in its state directory)") in problems
        allowed_list(cluster, "node3").unlink()
        gnt("gnt-instance", "start", "sp3")
        assert verify(gnt) == (0, [])
    finally:
        gnt("gnt-instance", "remove", "-f", "sp3")


def test_verify_reports_orphan_disk_files(cluster: VCluster, gnt: Gnt) -> None:
    """Disk files no instance claims (as an add interrupted by a master's death leaves
    them): a warning each, naming the node and what to remove; a sharedfile one once."""
    shared = Path(storage_dirs(gnt)[1])
    local = cluster.node_dir("node2") / "disk" / FILE_DIR.lstrip("/") / "ghost"
    stray = [local / "u1.file.disk0", shared / "ghost" / "u2.file.disk0"]
    try:
        for path in stray:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\0" * 512)
        rc, problems = verify(gnt)
        assert rc == 0  # warnings, as Ganeti's ENODEORPHANLV
        assert problems == [
            f"WARNING: node node1: disk file {shared}/ghost/u2.file.disk0 is unknown: no "
            "instance's disk uses it (if nothing else does, remove it with "
            f"'rm -- {shared}/ghost/u2.file.disk0' on node1)",
            f"WARNING: node node2: disk file {FILE_DIR}/ghost/u1.file.disk0 is unknown: no "
            "instance's disk uses it (if nothing else does, remove it with "
            f"'rm -- {local}/u1.file.disk0' on node2)"]
    finally:
        for path in stray:
            path.unlink(missing_ok=True)
            path.parent.rmdir()
    assert verify(gnt) == (0, [])
