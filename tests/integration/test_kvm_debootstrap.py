"""The seed scenario, end to end: Debian's real, unchanged ganeti-instance-debootstrap OS
(``-o debootstrap+default``) installs Debian into a ``file`` disk, and the instance boots it
under the ``kvm`` hypervisor (real QEMU; software emulation where there is no KVM) to a
login prompt on its serial console.

The instance boots the way an admin without a bootloader in the image would: a kernel and
an initramfs given by ``-H kvm:kernel_path=...,initrd_path=...``. They are the tiny test
guest's (tests/kvmguest): Debian's cloud kernel, and a busybox initramfs that, told by
``cardume.switchroot`` on the command line, mounts ``root_path`` and hands over to the
installed system's init, as a distribution's initramfs would. The installed system's own
systemd then starts a getty on ttyS0, because ``console=ttyS0`` is on the command line
(serial_console, the default). The debootstrap OS's settings are the machine's, as in
test_debootstrap: with PARTITION_STYLE=none the filesystem is the whole disk, /dev/vda in
the guest; with msdos it is /dev/vda1. Its default variant installs debootstrap's default
package set, systemd and util-linux's agetty included, so no extra variant is needed.

Networking stays inside a network namespace this module creates (``CARDUME_KVM_NETNS``),
where the instance's NIC joins a bridge, as in test_kvm."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import VCluster, netns_cluster, pid_alive, qemus, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for kvmguest

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed"),
              pytest.mark.skipif(os.geteuid() != 0, reason="taps and namespaces need root")]

NAME = "vm1"
INSTANCE_IP = "127.0.9.1"  # what the name resolves to, in the cluster's own hosts file
IMPORTED, IMPORTED_IP = "vm2", "127.0.9.2"  # vm1 exported, then imported under this name
NETNS = f"cardume-kvmdeb-{os.getpid()}"
BRIDGE = "br0"
ADD_TIMEOUT = 20 * 60.0  # debootstrap from the network takes minutes the first time
# Seconds under emulation on an idle machine; much longer when other guests share the CPUs.
BOOT_TIMEOUT = 10 * 60.0
LOGIN_TIMEOUT = 3 * 60.0
SHUTDOWN_TIMEOUT = 20  # gnt-instance shutdown --timeout: then QEMU is killed


@pytest.fixture(scope="module")
def guest() -> object:
    import kvmguest
    return kvmguest.build()


@pytest.fixture(scope="module")
def cluster(debootstrap_settings: dict[str, str], guest: object,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    with netns_cluster(tmp_path_factory.mktemp("kvmdeb") / "vc", NETNS, BRIDGE) as vc:
        with open(vc.root / "hosts", "a", encoding="ascii") as hosts:
            hosts.write(f"{INSTANCE_IP} {NAME}\n{IMPORTED_IP} {IMPORTED}\n")
        yield vc


def kvm_dir(cluster: VCluster, node: str = "node1") -> Path:
    return cluster.node_dir(node) / "hv" / "kvm"


def serial_log(cluster: VCluster, name: str = NAME, node: str = "node1") -> str:
    path = kvm_dir(cluster, node) / f"{name}.serial.log"
    return path.read_text(errors="replace") if path.exists() else ""


def add_args(guest: object, debootstrap_settings: dict[str, str]) -> list[str]:
    """gnt-instance add's arguments for vm1: Debian installed by the debootstrap OS into a
    file disk, booted by the test guest's kernel and initramfs."""
    root = "/dev/vda" if debootstrap_settings["partition_style"] == "none" else "/dev/vda1"
    kernel, initrd = guest.kernel, guest.initrd  # type: ignore[attr-defined]
    return ["-t", "file", "--disk", "0:size=2g", "-B", "memory=256",
            "-o", "debootstrap+default", "--net", f"0:link={BRIDGE}",
            "-H", f"kvm:kernel_path={kernel},initrd_path={initrd},root_path={root},"
                  "kernel_args=ro cardume.switchroot,serial_console=true",
            "-n", "node1", NAME]


def console(cluster: VCluster, command: list[str], text: str, linger: float) -> str:
    """What the serial console shows while ``text`` is typed, and ``linger`` s after."""
    proc = subprocess.run([*command, "--linger", str(linger)], input=text,
                          capture_output=True, text=True, env=cluster.env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def test_debootstrap_instance_boots_to_a_login_prompt(
        cluster: VCluster, guest: object, debootstrap_settings: dict[str, str]) -> None:
    style = debootstrap_settings["partition_style"]
    root = "/dev/vda" if style == "none" else "/dev/vda1"
    cluster.gnt("gnt-cluster", "modify", "--enabled-hypervisors=kvm,fake")
    if NAME in instances(cluster):
        cluster.gnt("gnt-instance", "remove", "-f", NAME)  # the export test's, if it ran first
    t0 = time.monotonic()
    cluster.gnt("gnt-instance", "add", *add_args(guest, debootstrap_settings),
                timeout=ADD_TIMEOUT)
    added = time.monotonic() - t0
    # the installed system's getty, not the initramfs: its prompt carries the hostname the
    # OS's create script wrote to /etc/hostname
    prompt = re.compile(rf"^{NAME} login: ", re.MULTILINE)
    wait_for(lambda: prompt.search(serial_log(cluster)), BOOT_TIMEOUT,
             f"a login prompt on {NAME}'s serial console", interval=1.0)
    booted = time.monotonic() - t0 - added
    print(f"\ngnt-instance add (debootstrap, then start) took {added:.0f}s; "
          f"the login prompt came {booted:.0f}s later")
    log = serial_log(cluster)
    print(tail(log, 6))
    assert f"cardume-guest: switching to the root filesystem on {root}" in log, tail(log)
    assert re.search(r"Welcome to .*Debian GNU/Linux", log), tail(log)
    assert "cardume-guest: up" not in log  # the initramfs handed over, never fell back

    listed = cluster.gnt("gnt-instance", "list", "--no-headers", "--separator=|", "-o",
                         "status,os,disk_template,oper_ram", NAME)[1]
    assert listed.strip().split("|") == ["running", "debootstrap+default", "file", "256"]

    # log in as root over gnt-instance console (the OS leaves root without a password)
    command = shlex.split(cluster.gnt("gnt-instance", "console", "--show-cmd", NAME)[1])
    shell = f"root@{NAME}:~# "

    def logged_in() -> bool:
        # once logged in, "root" is just an unknown command that shows the prompt again
        return shell in console(cluster, command, "root\n", linger=5.0)
    wait_for(logged_in, LOGIN_TIMEOUT, "a root shell on the serial console", interval=1.0)

    def ran() -> str:
        out = console(cluster, command, "findmnt -n -o SOURCE,FSTYPE,OPTIONS /; hostname; "
                                        "echo seed-$((6*7))\n", linger=3.0)
        return out if "seed-42" in out else ""
    out = str(wait_for(ran, LOGIN_TIMEOUT, "a command's output on the console", interval=1.0))
    print(f"logged in as root {time.monotonic() - t0 - added - booted:.0f}s after the "
          f"prompt; the console showed:\n{out.strip()}")
    mount = re.search(rf"^({re.escape(root)})\s+(\S+)\s+(\S+)", out, re.MULTILINE)
    assert mount, out
    assert mount.group(2) == "ext4" and "rw" in mount.group(3).split(","), out  # fstab's
    assert re.search(rf"^{NAME}\r?$", out, re.MULTILINE), out

    pid = int(json.loads((kvm_dir(cluster) / f"{NAME}.json").read_text())["pid"])
    t0 = time.monotonic()
    cluster.gnt("gnt-instance", "shutdown", "--timeout", str(SHUTDOWN_TIMEOUT), NAME,
                timeout=SHUTDOWN_TIMEOUT + 120)
    took = time.monotonic() - t0
    # A default Debian has no acpid and, without dbus, no logind: nothing in it handles the
    # power button, so the shutdown ends by killing QEMU once the timeout has passed.
    powered_off = "reboot: Power down" in serial_log(cluster)
    print(f"gnt-instance shutdown took {took:.0f}s "
          f"({'the guest powered off' if powered_off else 'QEMU was killed'})")
    assert not pid_alive(pid)
    assert cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "status",
                       NAME)[1].split() == ["ADMIN_down"]
    assert not (kvm_dir(cluster) / f"{NAME}.json").exists()
    assert qemus(cluster) == {}  # no QEMU of this cluster's is left


def instances(cluster: VCluster) -> list[str]:
    return cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "name")[1].split()


def test_an_exported_debian_is_imported_on_another_node_and_boots(
        cluster: VCluster, guest: object, debootstrap_settings: dict[str, str]) -> None:
    """gnt-backup with the debootstrap OS's own export and import scripts: the installed
    system, exported to node2 and imported there under a new name, boots to a login prompt
    (a new filesystem, the dump restored into it, its fstab rewritten by the import)."""
    cluster.gnt("gnt-cluster", "modify", "--enabled-hypervisors=kvm,fake")
    if NAME not in instances(cluster):  # run alone: install it (not started)
        cluster.gnt("gnt-instance", "add", "--no-start", *add_args(guest, debootstrap_settings),
                    timeout=ADD_TIMEOUT)
    t0 = time.monotonic()
    cluster.gnt("gnt-backup", "export", "-n", "node2", NAME, timeout=ADD_TIMEOUT)
    exported = time.monotonic() - t0
    assert cluster.gnt("gnt-backup", "list", "-n", "node2")[1].split()[-1] == NAME
    cluster.gnt("gnt-backup", "import", "-n", "node2", "--src-node", "node2", "--src-dir",
                NAME, IMPORTED, timeout=ADD_TIMEOUT)
    imported = time.monotonic() - t0 - exported
    try:
        listed = cluster.gnt("gnt-instance", "list", "--no-headers", "--separator=|", "-o",
                             "status,pnode,os,disk_template", IMPORTED)[1]
        assert listed.strip().split("|") == ["running", "node2", "debootstrap+default", "file"]
        prompt = re.compile(r"^\S+ login: ", re.MULTILINE)
        wait_for(lambda: prompt.search(serial_log(cluster, IMPORTED, "node2")), BOOT_TIMEOUT,
                 f"a login prompt on {IMPORTED}'s serial console", interval=1.0)
        log = serial_log(cluster, IMPORTED, "node2")
        print(f"\nexport {exported:.0f}s, import (and start) {imported:.0f}s, login prompt "
              f"{time.monotonic() - t0 - exported - imported:.0f}s later")
        assert re.search(r"Welcome to .*Debian GNU/Linux", log), tail(log)
        assert "cardume-guest: up" not in log  # the restored system's init took over
    finally:
        cluster.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout",
                    str(SHUTDOWN_TIMEOUT), IMPORTED, check=False, timeout=SHUTDOWN_TIMEOUT + 120)
        cluster.gnt("gnt-backup", "remove", NAME, check=False)
    assert IMPORTED not in instances(cluster)
