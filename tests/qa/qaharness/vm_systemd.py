"""QA nodes that boot systemd from a disk of their own (see sysimage.py).

A ``SystemdNode`` is a ``vm.Node`` whose root disk is a qcow2 overlay of the shared image
(a sparse copy without qemu-img), made once per node and kept: what the node writes (the
installed package's state under /var/lib/cardume, /etc/hosts, /etc/cardume/daemons.env, the
journal) survives both a reboot of the guest (``reboot``: ``systemctl reboot`` inside it;
QEMU runs without ``-no-reboot``, so the same QEMU process boots the guest kernel again)
and a power cut (``kill``, then ``restart``). The agent is a systemd service; it tells the
host it is ready at every boot.
"""

from __future__ import annotations

import time
from pathlib import Path

from .sysimage import overlay
from .vm import QEMU, AgentError, Node

SECOND_SUBNET = "192.168.78"  # the DRBD (secondary) addresses, on the same segment
DOMAIN = "qa.test"


class SystemdNode(Node):

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{DOMAIN}"

    @property
    def ip2(self) -> str:
        return f"{SECOND_SUBNET}.{10 + self.index}"

    @property
    def root_disk(self) -> Path:
        """Where the node's own root disk goes (suffix .qcow2 or .raw: see overlay)."""
        return self.workdir / f"{self.name}.root"

    def make_disks(self) -> None:
        """The data disk only: cardume's state is on the node's own root disk here."""
        if not self.data_disk.exists():
            with self.data_disk.open("wb") as f:
                f.truncate(self.disk_mb << 20)

    def command(self) -> list[str]:
        self.make_disks()
        root, fmt = overlay(self.images.rootfs, self.root_disk)
        append = (f"console=ttyS0 loglevel=4 panic=-1 net.ifnames=0 "
                  f"systemd.hostname={self.fqdn} qa.ip={self.ip} qa.ip2={self.ip2}")
        return [
            QEMU, "-name", self.name, "-accel", "tcg,tb-size=256", "-machine", "pc",
            "-cpu", "max", "-smp", "1", "-m", str(max(self.memory_mb, 640)),
            "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", f"file:{self.console_path}",
            "-kernel", str(self.images.kernel), "-initrd", str(self.images.initramfs),
            "-append", append,
            # writeback, not unsafe: qcow2's metadata must reach the file at the guest's
            # flushes, or a power cut (SIGKILL) would lose what the guest synced
            "-drive", f"if=none,id=root,file={root},format={fmt},cache=writeback",
            "-device", "virtio-blk-pci,drive=root,serial=qaroot",
            # raw: what QEMU wrote is in the host's page cache, which a SIGKILL keeps
            "-drive", f"if=none,id=data,file={self.data_disk},format=raw,cache=unsafe,"
                      "aio=threads",
            "-device", "virtio-blk-pci,drive=data,serial=qadata",
            "-netdev", f"socket,id=net0,{self.netdev}",
            "-device", f"virtio-net-pci,netdev=net0,mac={self.mac}",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={self.agent_path},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=cardume-qa",
        ]

    def boot_id(self) -> str:
        return self.run("cat /proc/sys/kernel/random/boot_id", check=True).out.strip()

    def reboot(self, timeout: float = 300.0) -> float:
        """``systemctl reboot`` in the guest; returns the seconds until its agent is back
        (a new boot id). The QEMU process, its disks and sockets stay."""
        before = self.boot_id()
        t0 = time.monotonic()
        with self._cond:
            self._ready = False
        self.run("systemctl --no-block reboot", check=True)
        deadline = t0 + timeout
        with self._cond:
            while not self._ready:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AgentError(f"{self.name}: qemu exited during the reboot: "
                                     + self.diagnostics())
                if time.monotonic() > deadline:
                    raise AgentError(f"{self.name}: not back {timeout}s after the reboot: "
                                     + self.diagnostics())
                self._cond.wait(0.5)
        if self.boot_id() == before:
            raise AgentError(f"{self.name}: same boot id after the reboot")
        return time.monotonic() - t0

    def wait_booted(self, timeout: float = 300.0) -> str:
        """Wait until systemd has finished booting; returns its state (running/degraded)."""
        res = self.run(f"timeout {int(timeout)} systemctl is-system-running --wait",
                       timeout=timeout + 10)
        return res.out.strip()
