"""The systemd variant of the QA node image: Debian booting systemd, with cardume's .deb.

Beside ``images.py`` (the shared read-only image with a custom init that the other QA
modules boot), this layer makes nodes as an admin has them: ``/sbin/init`` is systemd, the
package built by ``packaging/build_deb.py`` is installed with ``dpkg -i`` (its Depends are in
the base tree), and its units are enabled the way its postinst enables them. A few harness
units stand in for what an installer would have configured: the network address and host
name from the kernel command line (``qa.ip=``, ``systemd.hostname=``), the data disk's
``/dev/qa-data`` name, and the command agent.

Each node boots its own copy-on-write overlay (``vm_systemd.py``), so writes survive a
guest reboot and a power cut. Cached layers under the cache directory:

* ``base-HASH/``: the debootstrap tree with systemd (images.build_base, other packages);
* ``sysimage-HASH/``: kernel, initramfs and ``rootfs.ext4``, keyed also by the package's
  inputs (src/cardume, packaging/) and these guest files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import images
from .images import Images, digest, log, run, tree_digest

HERE = Path(__file__).resolve().parent
GUEST = HERE / "guest_systemd"
REPO = HERE.parents[2]
PACKAGING = REPO / "packaging"

# The package's Depends and what a node needs for LVM and DRBD, with systemd as init. No
# qemu: the reboot tests run the fake hypervisor (the point is the node's reboot).
ROOT_PACKAGES = (
    "python3", "python3-cryptography", "python3-cffi-backend", "lvm2", "drbd-utils", "kmod",
    "iproute2", "udev", "procps", "util-linux", "init-system-helpers", "systemd",
    "systemd-sysv",
)
ROOT_IMAGE_MB = 1024


def build_deb(out: Path) -> Path:
    """``packaging/build_deb.py --out OUT``: the .deb as ``./dev package`` makes it."""
    run([sys.executable, str(PACKAGING / "build_deb.py"), "--out", str(out)], cwd=REPO)
    found = sorted(out.glob("cardume_*_all.deb"))
    if not found:
        raise RuntimeError(f"build_deb.py left no .deb in {out}")
    return found[-1]


def build(cache: Path | None = None) -> Images:
    """Build (or reuse) the systemd node artefacts; the rootfs is the shared base of the
    nodes' overlays (never booted itself)."""
    cache = cache or images.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    mirror = images.apt_mirror()
    kpkg = images.kernel_package()
    kver = images.candidate(kpkg)
    busybox_ver = images.candidate("busybox-static")
    base_root = images.build_base(cache, mirror, ROOT_PACKAGES)
    key = digest(
        base_root, kpkg, kver, busybox_ver, images.ROOT_MODULES, images.INITRAMFS_MODULES,
        ROOT_IMAGE_MB, tree_digest(GUEST), tree_digest(images.GUEST),
        tree_digest(images.CARDUME_SRC), tree_digest(PACKAGING), images.console_scripts(),
        (REPO / "pyproject.toml").read_bytes(), "sys-v1",
    )
    out = cache / f"sysimage-{key}"
    built = Images(out / "vmlinuz", out / "initramfs.cpio", out / "rootfs.ext4",
                   kpkg.removeprefix("linux-image-"), key)
    if (out / ".complete").exists():
        return built
    t0 = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    work = out / "work"
    work.mkdir(parents=True)
    debs = cache / "debs"
    kdeb = images.download(kpkg, debs)
    bdeb = images.download("busybox-static", debs)
    kroot = work / "kernel"
    run(["dpkg-deb", "-x", str(kdeb), str(kroot)])
    kv = built.kernel_version
    shutil.copy(kroot / "boot" / f"vmlinuz-{kv}", built.kernel)

    root = work / "root"
    run(["cp", "-a", str(base_root), str(root)])
    src_mods = kroot / "lib" / "modules" / kv
    dst_mods = root / "lib" / "modules" / kv
    dst_mods.mkdir(parents=True)
    for meta in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        shutil.copy(src_mods / meta, dst_mods / meta)
    shutil.copytree(src_mods / "kernel", dst_mods / "kernel")
    run(["chroot", str(root), "depmod", kv])
    keep = images.modules_closure(dst_mods, images.ROOT_MODULES)
    init_mods = images.modules_closure(dst_mods, images.INITRAMFS_MODULES)
    shutil.rmtree(dst_mods / "kernel")
    for rel in keep:
        (dst_mods / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src_mods / rel, dst_mods / rel)
    run(["chroot", str(root), "depmod", kv])

    # the harness's own files: agent, network/disk setup, their units, system settings
    files = {
        "usr/local/sbin/cardume-qa-agent": (images.GUEST / "agent.py", 0o755),
        "usr/local/sbin/cardume-qa-setup": (GUEST / "qa-setup", 0o755),
        "etc/systemd/system/cardume-qa-setup.service": (GUEST / "cardume-qa-setup.service",
                                                        0o644),
        "etc/systemd/system/cardume-qa-agent.service": (GUEST / "cardume-qa-agent.service",
                                                        0o644),
        "etc/modprobe.d/cardume-qa.conf": (GUEST / "modprobe.conf", 0o644),
        "etc/fstab": (GUEST / "fstab", 0o644),
    }
    for dest, (src, mode) in files.items():
        target = root / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
        target.chmod(mode)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ("cardume-qa-setup.service", "cardume-qa-agent.service"):
        (wants / unit).symlink_to(f"/etc/systemd/system/{unit}")
    # a serial console login would only slow the boot down
    for unit in ("serial-getty@ttyS0.service", "getty@tty1.service",
                 "systemd-timesyncd.service", "apt-daily.timer", "apt-daily-upgrade.timer",
                 "e2scrub_all.timer", "fstrim.timer", "drbd.service"):
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (root / "etc/systemd/system" / unit).symlink_to("/dev/null")
    (root / "etc/hostname").write_text("qanode\n")
    (root / "etc/machine-id").write_text("")  # each node makes its own at first boot

    # the package, installed as an admin would (its Depends are in the base tree)
    with tempfile.TemporaryDirectory() as tmp:
        deb = build_deb(Path(tmp))
        shutil.copy(deb, root / "tmp" / deb.name)
    run(["chroot", str(root), "dpkg", "-i", f"/tmp/{deb.name}"])
    (root / "tmp" / deb.name).unlink()
    (root / "etc/cardume-qa-deb").write_text(deb.name + "\n")

    tmp_img = built.rootfs.with_suffix(".tmp")
    run(["mkfs.ext4", "-q", "-F", "-L", "qaroot", "-d", str(root), str(tmp_img),
         f"{ROOT_IMAGE_MB}M"])
    tmp_img.rename(built.rootfs)

    bbroot = work / "busybox"
    run(["dpkg-deb", "-x", str(bdeb), str(bbroot)])
    init = (images.GUEST / "initramfs-init").read_bytes().replace(
        b"/sbin/cardume-qa-init", b"/sbin/init")
    cpio: dict[str, tuple[int, bytes]] = {
        "bin/busybox": (0o100755, (bbroot / "bin" / "busybox").read_bytes()),
        "init": (0o100755, init),
        "modules/order": (0o100644, "".join(Path(m).name + "\n" for m in init_mods).encode()),
    }
    for rel in init_mods:
        cpio[f"modules/{Path(rel).name}"] = (0o100644, (src_mods / rel).read_bytes())
    images.write_cpio(built.initramfs, cpio, ["bin", "modules", "dev", "proc", "sys",
                                              "newroot"])
    shutil.rmtree(work)
    (out / ".complete").touch()
    log(f"built systemd image {key} in {time.monotonic() - t0:.1f}s")
    for old in cache.glob("sysimage-*"):
        if old != out:
            shutil.rmtree(old, ignore_errors=True)
    return built


def overlay(base: Path, dest: Path) -> tuple[Path, str]:
    """A node's own root disk at ``dest`` (made when missing) and its QEMU format: a qcow2
    overlay of ``base``, or, without qemu-img (Debian's qemu-utils, which qemu-system-x86
    only recommends), a sparse copy of it."""
    qcow2, raw = dest.with_name(dest.name + ".qcow2"), dest.with_name(dest.name + ".raw")
    if qcow2.exists():
        return qcow2, "qcow2"
    if raw.exists():
        return raw, "raw"
    if shutil.which("qemu-img"):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        str(base), str(qcow2)], check=True, capture_output=True)
        return qcow2, "qcow2"
    tmp = raw.with_name(raw.name + ".tmp")
    subprocess.run(["cp", "--sparse=always", str(base), str(tmp)], check=True)
    tmp.rename(raw)
    return raw, "raw"


if __name__ == "__main__":
    t = time.monotonic()
    print(build())
    print(f"{time.monotonic() - t:.1f}s")
