#!/usr/bin/env python3
"""kvm figures (issue 5): starting and stopping a real guest, and live migration with
QEMU's own downtime figure, for a ``sharedfile`` disk and for a ``file`` disk mirrored to the
target during the migration.

Run with the project's interpreter (qemu-system-x86_64 needed; no root needed: the guests
have no NICs):
    .venv/bin/python bench/kvm.py [--disk MIB] [--json PATH]

It brings up its own 2-node local cluster (like run.py), boots the tiny test guest
(tests/kvmguest: Debian's cloud kernel + a busybox initramfs) under QEMU's software
emulation (TCG: this machine has no usable KVM), measures and tears everything down.
No Ganeti peer: Ganeti's kvm needs a KVM host; its default target downtime is 30 ms.
Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

import kvmguest  # noqa: E402  (tests/kvmguest: the cached tiny guest)
from run import FIXTURE_OS, LocalCluster, run_timed  # noqa: E402

DEFAULT_JSON = REPO / "bench" / "results" / "kvm-latest.json"
MARKER = kvmguest.MARKER
_FIGURE_RE = re.compile(r"migrated to .*?: (.*)$")


def gnt(cluster: LocalCluster, *argv: str, timeout: float = 600.0) -> float:
    """Run a gnt-* command against the cluster; its wall time in seconds."""
    return run_timed([cluster.cmd(argv[0]), *argv[1:]], cluster.env, timeout=timeout)[0]


def serial_log(cluster: LocalCluster, node: int, name: str) -> str:
    path = Path(cluster.node_dir(node)) / "hv" / "kvm" / f"{name}.serial.log"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_marker(cluster: LocalCluster, node: int, name: str, timeout: float = 120.0) -> float:
    t0 = time.monotonic()
    while MARKER not in serial_log(cluster, node, name):
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"{name} did not reach userspace in {timeout:g} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def migration_figures(cluster: LocalCluster, node: int, name: str) -> dict[str, float]:
    """QEMU's figures for the last migration of ``name``, from the source's daemon log."""
    found: dict[str, float] = {}
    for log in (Path(cluster.node_dir(node)) / "log").glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            match = _FIGURE_RE.search(line)
            if match and f"instance {name} " in line:
                found = {key: float(value) for key, value in
                         (item.split("=", 1) for item in match.group(1).split(", "))
                         if value.replace(".", "", 1).isdigit()}
    return found


def measure(disk: int) -> dict[str, Any]:
    guest = kvmguest.build()
    cluster = LocalCluster(2)
    figures: dict[str, Any] = {"disk_mib": disk}
    try:
        cluster.up()
        shutil.copytree(FIXTURE_OS, Path(cluster.root) / "os" / "dummy")
        gnt(cluster, "gnt-cluster", "modify", "--enabled-hypervisors=kvm,fake",
            "--enabled-disk-templates=file,sharedfile,diskless,plain,drbd")
        hv = (f"kvm:kernel_path={guest.kernel},initrd_path={guest.initrd},root_path=,"
              "kernel_args=quiet")
        common = ["-o", "dummy+default", "-B", "memory=128", "--no-nics", "--no-name-check",
                  "--no-ip-check", "-H", hv]
        for template, name in (("sharedfile", "kvm-shared"), ("file", "kvm-file")):
            figures[f"{template}_add_s"] = gnt(
                cluster, "gnt-instance", "add", "-t", template, "--disk", f"0:size={disk}m",
                "-n", "node1", *common, name)
            figures[f"{template}_boot_s"] = wait_marker(cluster, 1, name)
        t0 = time.monotonic()
        gnt(cluster, "gnt-instance", "shutdown", "kvm-shared")
        figures["shutdown_s"] = time.monotonic() - t0
        figures["startup_s"] = gnt(cluster, "gnt-instance", "startup", "kvm-shared")
        figures["startup_to_userspace_s"] = figures["startup_s"] + \
            wait_marker(cluster, 1, "kvm-shared")
        figures["shared_migrate_s"] = gnt(cluster, "gnt-instance", "migrate", "-f", "-n",
                                          "node2", "kvm-shared")
        figures["shared_qemu"] = migration_figures(cluster, 1, "kvm-shared")
        figures["mirror_migrate_s"] = gnt(cluster, "gnt-instance", "migrate", "-f",
                                          "--mirror-disks", "-n", "node2", "kvm-file")
        figures["mirror_qemu"] = migration_figures(cluster, 1, "kvm-file")
        for name in ("kvm-shared", "kvm-file"):
            gnt(cluster, "gnt-instance", "remove", "-f", name)
    finally:
        cluster.down()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--disk", type=int, default=256, help="disk size in MiB (default 256)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the figures")
    args = parser.parse_args(argv)
    if args.disk <= 0:
        parser.error(f"--disk must be a positive number of MiB, not {args.disk}")
    f = measure(args.disk)
    shared, mirror = f.get("shared_qemu", {}), f.get("mirror_qemu", {})
    rows = [
        ("gnt-instance add (sharedfile, starts it)", f.get("sharedfile_add_s"), "s"),
        ("  then to userspace (serial marker)", f.get("sharedfile_boot_s"), "s"),
        ("gnt-instance shutdown (ACPI, guest powers off)", f.get("shutdown_s"), "s"),
        ("gnt-instance startup", f.get("startup_s"), "s"),
        ("  startup to userspace", f.get("startup_to_userspace_s"), "s"),
        (f"live migration, sharedfile {args.disk} MiB: command", f.get("shared_migrate_s"), "s"),
        ("  QEMU total", shared.get("total_time_ms"), "ms"),
        ("  QEMU downtime (target 30 ms)", shared.get("downtime_ms"), "ms"),
        (f"live migration, file {args.disk} MiB mirrored: command", f.get("mirror_migrate_s"),
         "s"),
        ("  disk mirror", mirror.get("mirror_time_ms"), "ms"),
        ("  QEMU downtime (target 30 ms)", mirror.get("downtime_ms"), "ms"),
    ]
    for label, value, unit in rows:
        shown = "-" if value is None else (f"{value:.0f} {unit}" if unit == "ms"
                                           else f"{value:.2f} {unit}")
        print(f"{label:<55} {shown:>12}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(f, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
