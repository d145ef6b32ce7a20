"""Debian's real ganeti-instance-debootstrap OS through gnt-backup: an installed system is
exported (its export script dumps the ext filesystem) and imported under a new name on
another node (its import script makes a new filesystem and restores the dump into it). The
imported disk holds the same Debian, with its fstab naming the new filesystem. Booting it
needs kvm: the QA cluster's part."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import VCluster, start_cluster, stop_cluster

pytestmark = pytest.mark.slow

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
TIMEOUT = 20 * 60.0
EXT_MAGIC_AT = 1024 + 56
EXT_UUID_AT = 1024 + 104


@pytest.fixture(scope="module")
def cluster(debootstrap_settings: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    if debootstrap_settings["partition_style"] != "none":
        pytest.skip("this test reads the unpartitioned style's images")
    vc = start_cluster(tmp_path_factory.mktemp("backup-debootstrap"))
    try:
        with open(vc.root / "hosts", "a", encoding="ascii") as hosts:
            hosts.write("127.0.9.31 dvm1\n127.0.9.32 dvm2\n")
        yield vc
    finally:
        stop_cluster(vc)


def system(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PATH=SYSTEM_PATH))
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr.strip()}"
    return proc.stdout


def image_of(cluster: VCluster, node: str, name: str) -> Path:
    [image] = cluster.node_dir(node).glob(f"disk/**/{name}/*.file.disk0")
    return image


def fs_uuid(image: Path) -> str:
    with open(image, "rb") as handle:
        handle.seek(EXT_MAGIC_AT)
        assert handle.read(2) == b"\x53\xef", f"no ext filesystem in {image}"
        handle.seek(EXT_UUID_AT)
        return str(uuid.UUID(bytes=handle.read(16)))


def read_files(image: Path, *paths: str) -> dict[str, str]:
    device = system("losetup", "--find", "--show", "--read-only", str(image)).strip()
    try:
        with tempfile.TemporaryDirectory(prefix="cardume-backup-") as mnt:
            system("mount", "-o", "ro", device, mnt)
            try:
                return {p: (Path(mnt) / p.lstrip("/")).read_text() for p in paths}
            finally:
                system("umount", mnt)
    finally:
        system("losetup", "-d", device)


def test_an_installed_debian_is_exported_and_imported(cluster: VCluster) -> None:
    started = time.monotonic()
    cluster.gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=2g",
                "-o", "debootstrap+default", "-n", "node1", "dvm1", timeout=TIMEOUT)
    print(f"add: {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    cluster.gnt("gnt-backup", "export", "-n", "node2", "dvm1", timeout=TIMEOUT)
    print(f"export: {time.monotonic() - started:.0f} s")
    assert cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "status",
                       "dvm1")[1].strip() == "running"
    started = time.monotonic()
    cluster.gnt("gnt-backup", "import", "-n", "node3", "--src-node", "node2",
                "--src-dir", "dvm1", "dvm2", timeout=TIMEOUT)
    print(f"import: {time.monotonic() - started:.0f} s")

    old, new = image_of(cluster, "node1", "dvm1"), image_of(cluster, "node3", "dvm2")
    assert new.stat().st_size == 2 * 1024 ** 3
    old_uuid, new_uuid = fs_uuid(old), fs_uuid(new)
    assert old_uuid != new_uuid  # a new filesystem, the dump restored into it
    wanted = ("/etc/debian_version", "/etc/os-release", "/etc/fstab")
    before, after = read_files(old, *wanted), read_files(new, *wanted)
    assert after["/etc/debian_version"] == before["/etc/debian_version"]
    assert after["/etc/os-release"] == before["/etc/os-release"]
    assert re.search(rf"^UUID={new_uuid}\s+/\s", after["/etc/fstab"], re.MULTILINE), \
        after["/etc/fstab"]
    assert system("losetup", "-j", str(new)) == "", "a loop device still holds the image"
