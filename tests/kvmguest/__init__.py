"""A tiny real guest for the kvm hypervisor's tests: Debian's cloud kernel and a busybox
initramfs, built from Debian's packages (through the QA harness's download helpers) and
cached by a hash of their inputs.

``build()`` returns the kernel and initrd to give an instance as ``-H kvm:kernel_path=...,
initrd_path=...``. The guest's init:

* prints ``cardume-guest: up`` on the serial console (ttyS0) once in userspace;
* sets eth0 up with ``cardume.ip=ADDR/PREFIX`` from the kernel command line, if given;
* powers off when QEMU presses the ACPI power button (busybox acpid), so a polite
  shutdown works;
* then runs a shell on ttyS0, again each time it exits, so a console can type commands.

It needs no root image: a file disk given to the instance shows up as /dev/vda.

Given ``cardume.switchroot`` and ``root=/dev/...`` on the kernel command line, it instead
does what a distribution's initramfs does: waits for that device, mounts its ext4
filesystem read-only (read-write with ``rw``), moves /dev into it and hands over to its
``/sbin/init`` (or ``init=``), so a real system installed on the instance's disk boots
(``-H kvm:root_path=/dev/vda,kernel_args=ro cardume.switchroot``). The explicit trigger
keeps guests that only have the default ``root=/dev/vda1`` (no root filesystem) on the
busybox shell above. When the device or its filesystem is missing, it says so on ttyS0 and
stays in the initramfs.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "qa"))

from qaharness import images  # noqa: E402  (shared Debian download and cpio helpers)

MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "button", "evdev")
MARKER = "cardume-guest: up"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /etc/acpi /run /newroot
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r ko; do insmod "/modules/$ko" 2>/dev/null; done </modules/order
addr= root= init=/sbin/init rootmode=ro switchroot=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    cardume.ip=*) addr=${arg#cardume.ip=} ;;
    cardume.switchroot) switchroot=1 ;;
    root=/dev/*) root=${arg#root=} ;;
    init=/*) init=${arg#init=} ;;
    ro|rw) rootmode=$arg ;;
  esac
done
if [ -n "$switchroot" ] && [ -n "$root" ]; then
  # the disk's driver probes asynchronously: give a slow (emulated) machine time
  for i in $(seq 1 300); do [ -b "$root" ] && break; sleep 0.1; done
  if mount -t ext4 -o "$rootmode" "$root" /newroot; then
    # -L too: a merged-/usr system's /sbin/init is an absolute symlink, dangling from here
    if [ -e "/newroot$init" ] || [ -L "/newroot$init" ]; then
      echo "cardume-guest: switching to the root filesystem on $root" >/dev/ttyS0
      umount /proc /sys
      mount --move /dev /newroot/dev
      exec switch_root /newroot "$init"
    fi
    umount /newroot
  fi
  echo "cardume-guest: no bootable root filesystem on $root, staying here" >/dev/ttyS0
fi
hostname cardume-guest
ip link set lo up
if [ -n "$addr" ]; then
  for i in $(seq 1 50); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
  ip addr add "$addr" dev eth0 && ip link set eth0 up
fi
printf 'PWRF poweroff.sh\n' >/etc/acpid.conf
printf '#!/bin/sh\necho "cardume-guest: power button, powering off" >/dev/ttyS0\npoweroff -f\n' \
  >/etc/acpi/poweroff.sh
chmod 755 /etc/acpi/poweroff.sh
acpid -c /etc/acpi -a /etc/acpid.conf -l /dev/null 2>/dev/null
echo "cardume-guest: up" >/dev/ttyS0
while true; do
  setsid sh -c 'exec sh -i </dev/ttyS0 >/dev/ttyS0 2>&1'
done
"""


@dataclass(frozen=True)
class Guest:
    kernel: Path
    initrd: Path


def _depends(ko: Path) -> list[str]:
    """A module's dependencies, from the ``depends=`` field of its modinfo section (no
    depmod needed on the host)."""
    found = re.search(rb"depends=([A-Za-z0-9_,-]*)\0", ko.read_bytes())
    if not found or not found.group(1):
        return []
    return [name.decode().replace("-", "_") for name in found.group(1).split(b",")]


def _closure(moddir: Path, wanted: tuple[str, ...]) -> list[Path]:
    """The module files for ``wanted``, each after its dependencies."""
    by_name = {p.name.split(".ko")[0].replace("-", "_"): p for p in moddir.rglob("*.ko")}
    order: list[Path] = []

    def visit(name: str) -> None:
        path = by_name.get(name)
        if path is None or path in order:
            return  # built into the kernel
        for dep in _depends(path):
            visit(dep)
        order.append(path)
    for name in wanted:
        visit(name)
    return order


def build(cache: Path | None = None) -> Guest:
    cache = cache or images.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    kpkg = images.kernel_package()
    key = hashlib.sha256("\0".join([kpkg, images.candidate(kpkg),
                                    images.candidate("busybox-static"), INIT, *MODULES,
                                    "v1"]).encode()).hexdigest()[:16]
    out = cache / f"kvmguest-{key}"
    guest = Guest(out / "vmlinuz", out / "initrd.cpio")
    if (out / ".complete").exists():
        return guest
    t0 = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    work = out / "work"
    work.mkdir(parents=True)
    debs = cache / "debs"
    kroot, bbroot = work / "kernel", work / "busybox"
    for deb, root in ((images.download(kpkg, debs), kroot),
                      (images.download("busybox-static", debs), bbroot)):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    kver = kpkg.removeprefix("linux-image-")
    shutil.copy(kroot / "boot" / f"vmlinuz-{kver}", guest.kernel)
    modules = _closure(kroot / "lib" / "modules" / kver, MODULES)
    files: dict[str, tuple[int, bytes]] = {
        "bin/busybox": (0o100755, (bbroot / "bin" / "busybox").read_bytes()),
        "init": (0o100755, INIT.encode()),
        "modules/order": (0o100644, "".join(p.name + "\n" for p in modules).encode()),
    }
    for path in modules:
        files[f"modules/{path.name}"] = (0o100644, path.read_bytes())
    images.write_cpio(guest.initrd, files,
                     ["bin", "modules", "dev", "proc", "sys", "etc", "newroot"])
    shutil.rmtree(work)
    (out / ".complete").touch()
    images.log(f"built the kvm test guest {key} in {time.monotonic() - t0:.1f}s")
    for old in cache.glob("kvmguest-*"):
        if old != out:
            shutil.rmtree(old, ignore_errors=True)
    return guest


if __name__ == "__main__":
    print(build())
