"""What a node reports about itself: memory, CPUs, storage space, hypervisors."""

from __future__ import annotations

import functools
import os
import shutil
from typing import Any

from cardume import __version__, constants, errors, paths
from cardume.node.cmd import CommandRunner

MIB = 1024 * 1024


def memory() -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) // 1024  # kB → MiB
    total = values.get("MemTotal", 0)
    free = values.get("MemAvailable", values.get("MemFree", 0))
    return {"memory_total": total, "memory_free": free, "memory_dom0": total - free}


@functools.cache
def _topology() -> tuple[int, int]:
    """(sockets, NUMA nodes): read once per process, since every node list asks and they
    do not change while the host runs (/proc/cpuinfo is long on a host with many CPUs)."""
    sockets: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("physical id"):
                    sockets.add(line.split(":", 1)[1].strip())
    except OSError:
        pass
    try:
        numa = len([d for d in os.listdir("/sys/devices/system/node") if d.startswith("node")])
    except OSError:
        numa = 1
    return max(len(sockets), 1), max(numa, 1)


def cpus() -> dict[str, int]:
    sockets, numa = _topology()
    total = os.cpu_count() or 1
    # the node's own system may use every CPU (Ganeti's cnos for Linux hypervisors), and
    # htools read it so: 0 would tell them the node keeps none for itself
    return {"cpu_total": total, "cpu_sockets": sockets, "cpu_nodes": numa, "cpu_dom0": total}


def space(path: str) -> dict[str, int] | None:
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return {"total": stat.f_blocks * stat.f_frsize // MIB,
            "free": stat.f_bavail * stat.f_frsize // MIB}


def _existing(path: str, floor: str) -> str:
    """path, or its nearest existing parent, but not above floor."""
    while not os.path.isdir(path) and path != floor and path.startswith(floor):
        path = os.path.dirname(path)
    return path


def vg_space(vg: str, runner: CommandRunner | None = None) -> dict[str, int] | None:
    """``{"total", "free"}`` of a volume group (MiB), or None when this node can't tell
    (no LVM, no such volume group)."""
    from cardume.node.storage import lvm
    try:
        return lvm.vg_info(vg, runner)
    except errors.CardumeError:
        return None


def storage(ssconf: dict[str, Any], storage_prefix: str = "",
            runner: CommandRunner | None = None) -> list[dict[str, Any]]:
    """Space of the storage that backs the cluster's default disk template.

    With a storage prefix (node.json) the ``file`` template's directory is measured where
    this node keeps it: under the prefix (or the prefix itself, before the first disk).
    ``plain`` and ``drbd`` report the cluster's volume group (ssconf ``volume_group_name``)
    as storage type ``lvm-vg``, from ``vgs``; a node without it falls through to the next
    enabled template.
    """
    # the capability table is imported here, not at the top: only node_info needs it, and
    # building its rows costs the daemon's start a few milliseconds
    from cardume.rules import disk_templates
    for name in ssconf.get("enabled_disk_templates", []):
        template = disk_templates.TABLE.get(name)
        if template is None or template.storage_type is None:
            continue
        if template.lvm:
            vg = ssconf.get("volume_group_name")
            found = vg_space(str(vg), runner) if vg else None
            if found is not None:
                return [{"type": template.storage_type, "key": vg, **found}]
            continue
        path = ssconf.get(template.file_dir) if template.file_dir else None
        if path:
            measured = path
            if not template.shared and storage_prefix:  # the prefix holds local files only
                prefix = os.path.normpath(storage_prefix).rstrip(os.sep)
                measured = _existing(prefix + os.path.normpath(path), prefix)
            found = space(measured)
            if found is not None:
                return [{"type": template.storage_type, "key": path, **found}]
            return []
    return []


def answers_at_once(ssconf: dict[str, Any], node_root: str) -> bool:
    """Whether node_info has nothing to wait on here: its storage is a node-local
    directory (not ``vgs``, not a shared file system such as NFS) and no kvm instance has
    a runtime file (whose info may ask its QEMU). Then the node daemon answers in its own
    thread: handing the call to a worker thread cost more than the facts themselves."""
    from cardume.rules import disk_templates
    for name in ssconf.get("enabled_disk_templates", []):
        template = disk_templates.TABLE.get(name)
        if template is None or template.storage_type is None:
            continue
        if template.lvm or template.shared:
            return False
        break
    try:  # where hypervisor.get keeps kvm's runtime files
        entries = os.listdir(os.path.join(node_root, "hv", "kvm"))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return not any(entry.endswith(".json") for entry in entries)


def hypervisors() -> list[str]:
    found = [constants.HT_FAKE]
    if shutil.which("qemu-system-x86_64"):
        found.append(constants.HT_KVM)
    return found


def boot_id(node_root: str | None = None) -> str:
    """The kernel's boot id (the watcher compares it between passes to see a reboot). The
    nodes of a local cluster share one kernel: each adds a token kept in its runtime
    directory, so emptying that directory, as a boot empties /run, reboots that node alone."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            kernel = handle.read().strip()
    except OSError:
        return ""
    if node_root is None or paths.is_fhs_root(node_root):
        return kernel
    token_file = os.path.join(paths.NodePaths(node_root).run, "boot-token")
    token = paths.read_json(token_file)
    if not isinstance(token, str):
        import uuid  # here: once per boot (it brings platform along, ~0.3 MiB)
        paths.write_json_atomic(token_file, uuid.uuid4().hex, mode=0o600)
        token = paths.read_json(token_file)  # a concurrent call's, if it wrote last
    return f"{kernel}/{token}"


def instances_memory(node_root: str | None, found: list[str] | None = None) -> int:
    """MiB the instances running under this node's hypervisors use (``found``: what
    hypervisors() answered, when the caller asked it already)."""
    if node_root is None:
        return 0
    from cardume.node import hypervisor
    total = 0
    for name in hypervisors() if found is None else found:
        if name not in hypervisor.SUPPORTED:
            continue
        try:
            total += hypervisor.get(name, node_root).memory_used()
        except (errors.CardumeError, OSError):
            continue  # a hypervisor this node can't drive runs nothing
    return total


def node_info(ssconf: dict[str, Any], node_root: str | None = None,
              storage_prefix: str = "", runner: CommandRunner | None = None,
              ) -> dict[str, Any]:
    """The node's resources. memory_free is the host's available memory minus what the
    running instances use (as Ganeti's fake hypervisor reports it, never below zero)."""
    found = hypervisors()
    info: dict[str, Any] = {"version": __version__, "bootid": boot_id(node_root),
                            "hypervisors": found,
                            "storage": storage(ssconf, storage_prefix, runner),
                            "spindles_total": 0, "spindles_free": 0}
    info.update(memory())
    info.update(cpus())
    used = instances_memory(node_root, found)
    info["instances_memory"] = used
    info["memory_free"] = max(0, info["memory_free"] - used)
    return info
