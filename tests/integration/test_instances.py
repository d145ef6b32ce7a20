"""Instances on file, sharedfile and diskless disks with the fake hypervisor, driven by the
real gnt-instance commands, with a real OS definition (tests/fixtures/os/dummy)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from integration_kit import FIXTURE_OS, Gnt, VCluster, os_cluster

GIB = 1024 ** 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    names = {f"vm{index}": f"127.0.9.{index}" for index in range(1, 30)}
    with os_cluster(tmp_path_factory.mktemp("inst"), names) as vc:
        yield vc


def instances(gnt: Gnt) -> dict[str, list[str]]:
    out = gnt("gnt-instance", "list", "--no-headers", "-o",
              "name,pnode,status,disk_template,oper_ram")[1]
    return {line.split()[0]: line.split()[1:] for line in out.splitlines()}


def storage_files(cluster: VCluster) -> list[str]:
    """Every disk image on every node, and in the shared directory."""
    found = []
    for top in cluster.root.rglob("*file.disk*"):  # .file.diskN and .sharedfile.diskN
        found.append(str(top.relative_to(cluster.root)))
    return sorted(found)


def info(gnt: Gnt, name: str) -> str:
    return gnt("gnt-instance", "info", name)[1]


def test_seed_command_on_file(cluster: VCluster, gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=5g",
                       "-B", "memory=128", "-o", "dummy+default", "-n", "node1", "vm1")
    assert rc == 0, err
    assert instances(gnt)["vm1"] == ["node1", "running", "file", "128M"]
    images = [f for f in storage_files(cluster) if "/vm1/" in f]
    assert len(images) == 1 and images[0].startswith("nodes/node1/")
    image = cluster.root / images[0]
    assert image.stat().st_size == 5 * GIB
    assert image.stat().st_blocks * 512 < 64 * 1024 * 1024  # sparse
    # the OS create script ran against a block device and left its mark in the image
    with open(image, "rb") as handle:
        head = handle.read(4096)
    assert b"dummy-os create vm1" in head
    text = info(gnt, "vm1")
    assert "Instance name: vm1" in text
    assert "primary: node1" in text
    assert "dummy+default" in text


def test_two_disks_and_lifecycle(cluster: VCluster, gnt: Gnt) -> None:
    gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=1g", "--disk", "1:size=512m",
        "-o", "dummy+default", "-n", "node2", "vm2")
    out = gnt("gnt-instance", "list", "--no-headers", "-o", "name,disk.sizes", "vm2")[1]
    assert out.split() == ["vm2", "1024,512"]
    gnt("gnt-instance", "shutdown", "vm2")
    assert instances(gnt)["vm2"][1] == "ADMIN_down"
    gnt("gnt-instance", "startup", "vm2")
    assert instances(gnt)["vm2"][1] == "running"
    gnt("gnt-instance", "reboot", "vm2")
    assert instances(gnt)["vm2"][1] == "running"
    gnt("gnt-instance", "remove", "-f", "vm2")
    assert "vm2" not in instances(gnt)
    assert not [f for f in storage_files(cluster) if "/vm2/" in f]


def test_sharedfile_migrate_and_failover(cluster: VCluster, gnt: Gnt) -> None:
    gnt("gnt-instance", "add", "-t", "sharedfile", "--disk", "0:size=256m", "-o",
        "dummy+default", "-n", "node1", "vm3")
    gnt("gnt-instance", "migrate", "-f", "-n", "node2", "vm3")
    assert instances(gnt)["vm3"][:2] == ["node2", "running"]
    gnt("gnt-instance", "failover", "-f", "-n", "node3", "vm3")
    assert instances(gnt)["vm3"][:2] == ["node3", "running"]
    gnt("gnt-instance", "remove", "-f", "vm3")


def test_diskless_and_error_down(cluster: VCluster, gnt: Gnt) -> None:
    gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default", "-n", "node3",
        "--no-name-check", "--no-ip-check", "vm4")
    assert instances(gnt)["vm4"][1] == "running"
    # the "hypervisor" loses the instance: it is up in the config but not running
    os.unlink(cluster.node_dir("node3") / "hv" / "fake" / "vm4.json")
    assert instances(gnt)["vm4"][1] == "ERROR_down"
    gnt("gnt-instance", "startup", "vm4")
    assert instances(gnt)["vm4"][1] == "running"
    gnt("gnt-instance", "remove", "-f", "vm4")


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "nosuchos+default", "--disk", "0:size=1g"], "nosuchos"),
    (["-o", "dummy+default", "-O", "flavour=fail", "--disk", "0:size=1g"], "create"),
    (["-o", "dummy+default", "--disk", "0:size=100t", "--ignore-ipolicy"], "disk space"),
    (["-o", "dummy+default", "--disk", "0:size=1x"], "'1x'"),
    (["-o", "dummy+default", "--disk", "0:size=1g", "--disk", "2:size=1g"], "disk"),
])
def test_failed_add_leaves_nothing(cluster: VCluster, gnt: Gnt, args: list[str],
                                   message: str) -> None:
    before_files = storage_files(cluster)
    before = instances(gnt)
    rc, out, err = gnt("gnt-instance", "add", "-t", "file", "-n", "node1", *args, "vm9",
                       check=False)
    assert rc != 0
    assert message in err
    assert instances(gnt) == before
    assert storage_files(cluster) == before_files
    fake = cluster.node_dir("node1") / "hv" / "fake"
    assert not (fake / "vm9.json").exists()


def test_template_not_enabled(cluster: VCluster, gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-instance", "add", "-t", "plain", "--disk", "0:size=1g", "-o",
                       "dummy+default", "-n", "node1", "vm9", check=False)
    assert rc != 0 and "not enabled" in err
    assert "vm9" not in instances(gnt)


def test_refusals_name_the_problem(cluster: VCluster, gnt: Gnt) -> None:
    gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default", "-n", "node1",
        "vm5")
    cases = [
        (["-t", "diskless", "-o", "dummy+default", "-n", "node1", "vm5"], "already exists"),
        (["-t", "diskless", "-o", "dummy+default", "-n", "node9", "vm6"], "node9"),
        (["-t", "diskless", "-o", "dummy+default", "-n", "node1", "unresolvable-vm"],
         "does not resolve"),
    ]
    for args, message in cases:
        rc, out, err = gnt("gnt-instance", "add", *args, check=False)
        assert rc != 0 and message in err, (args, err)
        assert len(err.strip().splitlines()) == 1
    gnt("gnt-instance", "remove", "-f", "vm5")


def test_memory_accounting_refuses_too_big(cluster: VCluster, gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default",
                       "-B", "memory=100t", "--ignore-ipolicy", "-n", "node2", "vm7",
                       check=False)
    assert rc != 0
    assert "not enough memory on node node2" in err
    assert "vm7" not in instances(gnt)


def test_os_commands(cluster: VCluster, gnt: Gnt) -> None:
    out = gnt("gnt-os", "list", "--no-headers")[1].split()
    assert "dummy+default" in out and "dummy+other" in out
    diagnose = gnt("gnt-os", "diagnose")[1]
    assert "dummy" in diagnose


def test_os_environment(cluster: VCluster, gnt: Gnt) -> None:
    gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=64m", "-o", "dummy+other",
        "-O", "flavour=vanilla", "-n", "node1", "--no-start", "vm8")
    images = [f for f in storage_files(cluster) if "/vm8/" in f]
    with open(cluster.root / images[0], "rb") as handle:
        head = handle.read(65536).split(b"\0", 1)[0].decode()
    env = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    assert env["INSTANCE_NAME"] == "vm8"
    assert env["OS_VARIANT"] == "other"
    assert env["OSP_FLAVOUR"] == "vanilla"
    assert env["DISK_COUNT"] == "1"
    assert env["DISK_0_PATH"].startswith("/dev/loop")
    assert env["HYPERVISOR"] == "fake"
    assert instances(gnt)["vm8"][1] == "ADMIN_down"
    gnt("gnt-instance", "remove", "-f", "vm8")




def test_os_search_path_is_configurable(cluster: VCluster, gnt: Gnt) -> None:
    extra = cluster.root / "more-os"
    shutil.copytree(FIXTURE_OS, extra / "extra")
    assert "extra+default" not in gnt("gnt-os", "list", "--no-headers")[1].split()
    path = f"{cluster.root / 'os'}:{extra}"
    gnt("gnt-cluster", "modify", "--os-search-path", path)
    assert f"OS search path: {cluster.root / 'os'}, {extra}" in gnt("gnt-cluster", "info")[1]
    assert "extra+default" in gnt("gnt-os", "list", "--no-headers")[1].split()
    rc, out, err = gnt("gnt-cluster", "modify", "--os-search-path", "relative/dir",
                       check=False)
    assert rc != 0 and "'relative/dir'" in err
