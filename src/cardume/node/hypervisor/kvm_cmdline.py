"""The QEMU command line of a kvm instance, built from its spec (no shell anywhere).

Hypervisor parameters (Ganeti's names) and how they map to QEMU:

=================  ======================================================================
kernel_path        ``-kernel`` (must exist on the node); empty: boot from the disks
initrd_path        ``-initrd`` (with kernel_path)
root_path          ``root=...`` on the kernel command line (with kernel_path)
kernel_args        appended to the kernel command line (with kernel_path)
serial_console     a serial port on a unix socket (``-chardev socket ... -serial``), the
                   one ``gnt-instance console`` attaches to; ``console=ttyS0,SPEED`` is
                   added to the kernel command line
serial_speed       SPEED above
boot_order         ``-boot order=``: disk=c, cdrom=d, network=n, floppy=a
disk_type          paravirtual: virtio-blk-pci; ide: ide-hd; scsi: scsi-hd on a
                   virtio-scsi-pci controller
disk_cache         ``cache=``; ``default`` is ``none`` (direct I/O) for block devices and
                   ``writeback`` for image files (direct I/O fails on some file systems)
nic_type           paravirtual: virtio-net-pci; else the QEMU model of that name (e1000...)
vhost_net          ``vhost=on`` on the taps
vnc_bind_address   ``-vnc ADDR:DISPLAY`` with the first free display (5900+N) on ADDR;
                   recorded in the runtime file; empty: ``-display none``
keymap             ``-k`` (with VNC)
usb_mouse          ``mouse`` or ``tablet``: ``-usb -device usb-mouse|usb-tablet``
cpu_type           ``-cpu``
machine_version    ``-machine``
acpi               false: ``-no-acpi``
reboot_behavior    exit: ``-no-reboot`` (a guest reboot stops the instance)
kvm_flag           enabled: ``-accel kvm``; disabled: ``-accel tcg``; empty: kvm when
                   /dev/kvm works on the node (probed once), else tcg
cdrom_image_path   an IDE CD-ROM drive with that image (read-only)
use_chroot         ``-chroot`` into an empty directory once QEMU has opened its files
security_model     none: QEMU runs as root; user: ``-runas security_domain`` (a user of the
                   node); pool: ``-runas UID:UID`` with a uid of the cluster's uid pool
                   that no other process of the node uses (see ``_pool_uid``)
security_domain    the user for security_model=user
kvm_extra          shell-split and appended to the command line
migration_*        used by live migration (kvm_migrate)
user_shutdown      ``-no-shutdown``: a guest that powers itself off leaves QEMU waiting and
                   the instance shows ``USER_down`` (down by the user's hand, not crashed:
                   ``ERROR_down``) until it is started (a fresh QEMU) or shut down
=================  ======================================================================
"""

from __future__ import annotations

import os
import shlex
import socket
import stat
from typing import Any

from cardume import errors
from cardume.node.hypervisor import kvm_nics
from cardume.node.hypervisor.base import Spec
from cardume.rules.hvparams import BOOT_ORDERS, DISK_TYPES

QEMU = "qemu-system-x86_64"
VNC_BASE = 5900
VNC_DISPLAYS = 1000


def opt_value(value: str) -> str:
    """A value inside a QEMU option list (commas doubled)."""
    return value.replace(",", ",,")


def _is_block(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def disk_cache(setting: str, path: str) -> str:
    if setting and setting != "default":
        return setting
    return "none" if _is_block(path) else "writeback"


def build_command(spec: Spec, *, qmp: str, serial: str | None, pidfile: str, accel: str,
                  nics: list[dict[str, Any]], vnc: dict[str, Any] | None = None,
                  chroot: str | None = None, extra: list[str] | None = None,
                  serial_log: str | None = None, runas: str | None = None) -> list[str]:
    """QEMU's argument list for an instance (no shell anywhere)."""
    name = spec["name"]
    hv = spec.get("hvparams") or {}
    be = spec.get("beparams") or {}
    try:
        memory, vcpus = int(be["maxmem"]), int(be["vcpus"])
    except (KeyError, TypeError, ValueError):
        raise errors.WrongInput(f"instance {name}: beparams need integer maxmem and "
                                "vcpus") from None
    argv = [QEMU, "-name", f"{opt_value(name)},process=kvm:{opt_value(name)}",
            "-nodefaults", "-no-user-config"]
    if spec.get("uuid"):
        argv += ["-uuid", str(spec["uuid"])]
    argv += ["-accel", accel]
    if hv.get("machine_version"):
        argv += ["-machine", str(hv["machine_version"])]
    if hv.get("cpu_type"):
        argv += ["-cpu", str(hv["cpu_type"])]
    argv += ["-m", str(memory), "-smp", str(vcpus)]
    if hv.get("acpi") is False:
        argv.append("-no-acpi")
    if hv.get("reboot_behavior") == "exit":
        argv.append("-no-reboot")
    if hv.get("user_shutdown"):
        argv.append("-no-shutdown")
    argv += ["-qmp", f"unix:{opt_value(qmp)},server=on,wait=off"]
    if serial:
        log = f",logfile={opt_value(serial_log)},logappend=off" if serial_log else ""
        argv += ["-chardev", f"socket,id=serial0,path={opt_value(serial)},server=on,wait=off{log}",
                 "-serial", "chardev:serial0"]
    if vnc:
        argv += ["-vnc", f"{vnc['address']}:{vnc['display']}"]
        if hv.get("keymap"):
            argv += ["-k", str(hv["keymap"])]
        argv += ["-vga", "std"]
    else:
        argv += ["-display", "none"]
    if hv.get("usb_mouse"):
        argv += ["-usb", "-device", f"usb-{hv['usb_mouse']}"]
    argv += ["-device", "virtio-balloon-pci,id=balloon0"]
    argv += _disk_args(spec, hv)
    boot = BOOT_ORDERS.get(str(hv.get("boot_order") or "disk"), "c")
    if hv.get("kernel_path"):
        argv += ["-kernel", str(hv["kernel_path"])]
        if hv.get("initrd_path"):
            argv += ["-initrd", str(hv["initrd_path"])]
        append = []
        if hv.get("root_path"):
            append.append(f"root={hv['root_path']}")
        if hv.get("kernel_args"):
            append.append(str(hv["kernel_args"]))
        if serial:
            append.append(f"console=ttyS0,{hv.get('serial_speed') or 38400}")
        if append:
            argv += ["-append", " ".join(append)]
    else:
        argv += ["-boot", f"order={boot}"]
    argv += kvm_nics.qemu_args(nics, vhost=bool(hv.get("vhost_net")))
    if chroot:
        argv += ["-chroot", chroot]
    if runas:
        # QEMU opens its disks, taps and sockets first, then drops to this user
        argv += ["-runas", runas]
    argv += ["-daemonize", "-pidfile", pidfile]
    if hv.get("kvm_extra"):
        argv += shlex.split(str(hv["kvm_extra"]))
    argv += extra or []
    return argv


def _disk_args(spec: Spec, hv: dict[str, Any]) -> list[str]:
    name = spec["name"]
    disk_type = str(hv.get("disk_type") or "paravirtual")
    if disk_type not in DISK_TYPES:
        raise errors.WrongInput(f"instance {name}: unknown disk_type {disk_type!r} "
                                f"(expected {', '.join(DISK_TYPES)})")
    args: list[str] = []
    disks = spec.get("disks") or []
    ide_slots = 3 if hv.get("cdrom_image_path") else 4
    if disk_type == "ide" and len(disks) > ide_slots:
        raise errors.WrongInput(f"instance {name}: {len(disks)} disks, but IDE has room for "
                                f"{ide_slots}", "use disk_type=paravirtual or scsi")
    if disk_type == "scsi" and disks:
        args += ["-device", "virtio-scsi-pci,id=scsi0"]
    for index, disk in enumerate(disks):
        path = disk.get("path")
        if not path:
            raise errors.WrongInput(f"instance {name}, disk {index}: no path on this node")
        readonly = disk.get("mode") == "ro"
        if readonly and disk_type == "ide":
            raise errors.WrongInput(f"instance {name}, disk {index}: read-only disks can't be "
                                    "IDE disks", "use disk_type paravirtual or scsi")
        cache = disk_cache(str(hv.get("disk_cache") or "default"), str(path))
        drive = (f"file={opt_value(str(path))},format=raw,if=none,id=disk{index},cache={cache}"
                 + (",readonly=on" if readonly else ""))
        if cache == "none":
            drive += ",aio=native"
        args += ["-drive", drive]
        boot = f",bootindex={index + 1}" if index == 0 else ""
        if disk_type == "paravirtual":
            args += ["-device", f"virtio-blk-pci,drive=disk{index},id=virtio-disk{index}{boot}"]
        elif disk_type == "ide":
            args += ["-device", f"ide-hd,drive=disk{index},bus=ide.{index // 2},"
                                f"unit={index % 2},id=ide-disk{index}{boot}"]
        else:
            args += ["-device", f"scsi-hd,drive=disk{index},bus=scsi0.0,scsi-id={index},"
                                f"lun=0,id=scsi-disk{index}{boot}"]
    if hv.get("cdrom_image_path"):
        args += ["-drive", f"file={opt_value(str(hv['cdrom_image_path']))},format=raw,if=none,"
                           "id=cdrom0,media=cdrom,readonly=on",
                 "-device", "ide-cd,drive=cdrom0,bus=ide.1,unit=1,id=cdrom"]
    return args


def free_vnc_display(address: str, taken: set[int]) -> int:
    """The first display N whose port 5900+N is free on address (and not in taken)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for display in range(0, VNC_DISPLAYS):
        if display in taken:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((address, VNC_BASE + display))
            except OSError:
                continue
        return display
    raise errors.InsufficientResources(f"no free VNC port on {address} "
                                       f"({VNC_BASE}..{VNC_BASE + VNC_DISPLAYS - 1} are taken)")
