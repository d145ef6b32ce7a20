"""Debian's real ganeti-instance-debootstrap OS, unchanged, installs Debian into a `file` disk.

The package's create script runs debootstrap against the Debian archive (its MIRROR, else
debootstrap's default, deb.debian.org as for apt), then keeps a tarball of the result in
/var/cache/ganeti-instance-debootstrap, so later runs only unpack it. Its settings (SUITE,
PARTITION_STYLE, ...) are the machine's, in /etc/default/ganeti-instance-debootstrap
(``./dev install`` names this machine's release there, and the unpartitioned style where the
kernel has no device mapper for kpartx). The test is skipped only when the archive does not
answer at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import Gnt, VCluster, start_cluster, stop_cluster

OS_DIR = Path("/usr/share/ganeti/os/debootstrap")
DEFAULTS_FILE = Path("/etc/default/ganeti-instance-debootstrap")
VARIANT_FILE = Path("/etc/ganeti/instance-debootstrap/variants/default.conf")
DEBOOTSTRAP_MIRROR = "http://deb.debian.org/debian"  # debootstrap's own default
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
INSTANCE_IP = "127.0.9.1"
GIB = 1024 ** 3
ADD_TIMEOUT = 20 * 60.0  # debootstrap from the network takes minutes
PROBE_TIMEOUT = 10.0
SECTOR = 512
EXT_MAGIC_AT = 1024 + 56  # s_magic in the ext2/3/4 superblock
EXT_UUID_AT = 1024 + 104  # s_uuid

pytestmark = pytest.mark.slow


def os_settings() -> dict[str, str]:
    """What the create script will use: its defaults file, then the variant's file, over the
    package's built-in defaults (common.sh)."""
    script = ('. "$1"; if [ -f "$2" ]; then . "$2"; fi; '
              'printf "%s\\n" "${MIRROR:-}" "${PROXY:-}" "${SUITE:-jessie}" '
              '"${PARTITION_STYLE:-msdos}"')
    out = subprocess.run(["bash", "-c", script, "settings", str(DEFAULTS_FILE),
                          str(VARIANT_FILE)], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    mirror, proxy, suite, style = out.split("\n")[:4]
    return {"mirror": mirror or DEBOOTSTRAP_MIRROR, "proxy": proxy, "suite": suite,
            "partition_style": style}


def check_archive(settings: dict[str, str]) -> None:
    """Skip when the mirror can't be reached at all; fail when it lacks the suite."""
    url = f"{settings['mirror'].rstrip('/')}/dists/{settings['suite']}/Release"
    proxy = settings["proxy"]  # the create script's only proxy (noded's environment is clean)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {}))
    try:
        with opener.open(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT):
            pass
    except urllib.error.HTTPError as err:
        pytest.fail(f"the Debian archive answers {err.code} for {url}: the debootstrap OS "
                    f"would install suite {settings['suite']!r}, which it does not carry; "
                    f"set SUITE in {DEFAULTS_FILE} (./dev install does)")
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        pytest.skip(f"the Debian archive is unreachable ({url}: {reason})")


@pytest.fixture(scope="module")
def cluster(debootstrap_settings: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    vc = start_cluster(tmp_path_factory.mktemp("debootstrap"))
    try:
        with open(vc.root / "hosts", "a", encoding="ascii") as hosts:
            hosts.write(f"{INSTANCE_IP} vm1\n")
        yield vc
    finally:
        stop_cluster(vc)


def system(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PATH=SYSTEM_PATH))
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr.strip()}"
    return proc.stdout


def filesystem_offset(image: Path) -> tuple[int, bool]:
    """(offset of the filesystem, partitioned): the first partition of an msdos partition
    table, else the whole image."""
    with open(image, "rb") as handle:
        mbr = handle.read(SECTOR)
    if mbr[510:512] == b"\x55\xaa":
        entry = mbr[446:462]
        if entry[4] != 0:  # partition type of the first entry
            return int.from_bytes(entry[8:12], "little") * SECTOR, True
    return 0, False


def guest_path(root: Path, path: str) -> Path:
    """Where the guest's ``path`` is under its mounted root, symlinks followed as the guest
    would follow them (an absolute link never leads out of the image)."""
    current, parts, hops = root, [p for p in path.split("/") if p], 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            assert hops < 40, f"symlink loop at {path} in the guest"
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p] + parts
            current = root if target.startswith("/") else current
            continue
        current = candidate
    return current


def test_debootstrap_installs_debian(cluster: VCluster, gnt: Gnt,
                                     debootstrap_settings: dict[str, str]) -> None:
    started = time.monotonic()
    rc, out, err = gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=2g",
                       "-o", "debootstrap+default", "-n", "node1", "vm1",
                       check=False, timeout=ADD_TIMEOUT)
    took = time.monotonic() - started
    print(f"gnt-instance add with debootstrap took {took:.0f} s")
    assert rc == 0, f"gnt-instance add failed after {took:.0f} s:\n{out}\n{err}"

    jobs = gnt("gnt-job", "list", "--no-headers")[1]
    assert re.search(r"^\s*\d+\s+success\s+INSTANCE_CREATE\(vm1\)$", jobs, re.MULTILINE), jobs
    listed = gnt("gnt-instance", "list", "--no-headers", "-o",
                 "name,pnode,status,os,disk_template")[1].split()
    assert listed == ["vm1", "node1", "running", "debootstrap+default", "file"]

    images = list(cluster.node_dir("node1").glob("disk/**/vm1/*.file.disk0"))
    assert len(images) == 1, images
    image = images[0]
    assert image.stat().st_size == 2 * GIB
    assert system("losetup", "-j", str(image)) == "", "a loop device still holds the image"

    offset, partitioned = filesystem_offset(image)
    style = debootstrap_settings["partition_style"]
    assert partitioned == (style == "msdos"), (
        f"PARTITION_STYLE is {style}, "
        f"but the image is {'' if partitioned else 'not '}partitioned")
    with open(image, "rb") as handle:
        handle.seek(offset + EXT_MAGIC_AT)
        assert handle.read(2) == b"\x53\xef", "no ext2/3/4 filesystem where expected"
        handle.seek(offset + EXT_UUID_AT)
        fs_uuid = str(uuid.UUID(bytes=handle.read(16)))

    device = system("losetup", "--find", "--show", "--read-only", "--offset", str(offset),
                    str(image)).strip()
    try:
        with tempfile.TemporaryDirectory(prefix="cardume-debootstrap-") as mnt:
            system("mount", "-o", "ro", device, mnt)
            try:
                root = Path(mnt)
                version = guest_path(root, "/etc/debian_version").read_text().strip()
                assert re.match(r"\d+(\.\d+)*$|[a-z]+/sid$", version), version
                os_release = guest_path(root, "/etc/os-release").read_text()
                assert re.search(r"^ID=debian$", os_release, re.MULTILINE), os_release
                for program in ("/bin/sh", "/usr/bin/dpkg"):
                    found = guest_path(root, program)
                    assert found.is_file() and os.access(found, os.X_OK), program
                assert guest_path(root, "/etc/hostname").read_text() == "vm1\n"
                fstab = guest_path(root, "/etc/fstab").read_text()
                assert re.search(rf"^UUID={fs_uuid}\s+/\s", fstab, re.MULTILINE), fstab
            finally:
                system("umount", mnt)
    finally:
        system("losetup", "-d", device)
