"""What instance logical units share: specs sent to nodes, checks, names of disk files."""

from __future__ import annotations

import ipaddress
import os
import random
import re
from typing import TYPE_CHECKING, Any

from cardume import constants, errors, objects
from cardume.cmdlib import drbd
from cardume.config.writer import ConfigWriter
from cardume.rpc.wire import DiskSpec, InstanceSpec, NicSpec
from cardume.rules import disk_templates, volumes

if TYPE_CHECKING:
    from cardume.rpc.calls import NodeCalls

MAX_DISKS = constants.MAX_DISKS
MAX_NICS = constants.MAX_NICS
_MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_DISK_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")


def node_disk(cfg: ConfigWriter, disk: objects.Disk, node_uuid: str) -> DiskSpec:
    """A disk as one of its nodes gets it (a drbd disk differs from node to node)."""
    if disk_templates.of(disk.dev_type).network_mirrored:
        return drbd.node_disk_spec(cfg, disk, node_uuid)
    return DiskSpec.of(disk)


def instance_spec(cfg: ConfigWriter, inst: objects.Instance,
                  beparams: dict[str, Any] | None = None,
                  hvparams: dict[str, Any] | None = None,
                  node_uuid: str | None = None) -> InstanceSpec:
    """An instance as a node gets it (by default its primary): parameters filled through
    every layer."""
    cluster = cfg.get_cluster()
    node_uuid = node_uuid or inst.primary_node
    node = cfg.nodes.get(inst.primary_node)
    group = cfg.groups.get(node.group) if node else None
    filled_be = objects.fill_beparams(cluster, group, inst.beparams)
    filled_hv = objects.fill_hvparams(cluster, group, inst.hypervisor, inst.hvparams)
    if beparams:
        filled_be.update(beparams)
    if hvparams:
        filled_hv.update(hvparams)
    os_name = inst.os.split("+", 1)[0]
    osparams = objects.fill_dict(cluster.osparams.get(os_name, {}), inst.osparams)
    nics = []
    for nic in inst.nics:
        params = objects.fill_nicparams(cluster, group, nic.nicparams)
        nics.append(NicSpec(uuid=nic.uuid, name=nic.name, mac=nic.mac, ip=nic.ip,
                            network=nic.network, mode=params["mode"], link=params["link"],
                            vlan=params.get("vlan", "")))
    spec = InstanceSpec(name=inst.name, uuid=inst.uuid, os=inst.os, hypervisor=inst.hypervisor,
                        hvparams=filled_hv, beparams=filled_be, osparams=osparams,
                        disk_template=inst.disk_template,
                        disks=[node_disk(cfg, d, node_uuid) for d in inst.disks],
                        nics=nics, debug_level=0)
    if filled_hv.get("security_model") == "pool":
        spec.uid_pool = list(cluster.uid_pool)  # the node picks a free uid from it
    return spec


def file_disk_path(cluster: objects.Cluster, template: str, subdir: str, disk_uuid: str,
                   index: int) -> str:
    base = str(getattr(cluster, disk_templates.of(template).file_dir or "file_storage_dir"))
    # Ganeti's name: UUID.TEMPLATE.diskN (a sharedfile image ends .sharedfile.disk0)
    return os.path.join(base, subdir, f"{disk_uuid}.{template}.disk{index}")


def renamed_file_path(path: str, new_name: str) -> str:
    """A file disk's path once its instance is renamed: the instance's directory (the last
    one) takes the new name, as in Ganeti; the rest stays (--file-storage-dir included)."""
    instance_dir = os.path.dirname(path)
    return os.path.join(os.path.dirname(instance_dir), new_name, os.path.basename(path))


def plain_disk_id(cluster: objects.Cluster, spec: dict[str, Any], disk_uuid: str,
                  index: int) -> list[str]:
    """A plain disk's ``[vg, lv_name]``: the disk's ``vg=`` or the cluster's volume group;
    the LV is named by the disk's unique id, as in Ganeti (renaming the instance renames
    nothing on disk)."""
    return [plain_vg(cluster, spec), f"{disk_uuid}.disk{index}"]


def plain_vg(cluster: objects.Cluster, spec: dict[str, Any]) -> str:
    """The volume group of a plain disk: its ``vg=``, else the cluster's."""
    vg = spec.get("vg") or cluster.volume_group_name
    if not vg:
        raise errors.WrongInput("no volume group for plain disks: give --disk N:vg=VG or set "
                                "one with gnt-cluster modify --vg-name")
    return check_lvm_name(vg, "volume group")


def check_lvm_name(name: Any, what: str) -> str:
    """A volume group or logical volume name, by the rules the node applies too."""
    return volumes.check_lvm_name(name, what)


def check_subdir(value: str) -> str:
    """--file-storage-dir: a relative directory below the storage directory."""
    normal = os.path.normpath(value)
    if os.path.isabs(value) or normal.startswith("..") or "\0" in value or normal == ".":
        raise errors.WrongInput(f"invalid file storage directory '{value}': expected a "
                                "relative path below the cluster's storage directory")
    return normal


def check_disks(template: str, disks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not disk_templates.of(template).has_disks:
        if disks:
            raise errors.WrongInput("the diskless template takes no disks (drop --disk)")
        return []
    if not disks:
        raise errors.WrongInput(f"the {template} template needs at least one disk "
                                "(--disk 0:size=SIZE or -s SIZE)")
    if len(disks) > MAX_DISKS:
        raise errors.WrongInput(f"too many disks ({len(disks)}): at most {MAX_DISKS}")
    checked = []
    for index, disk in enumerate(disks):
        unknown = set(disk) - {"size", "mode", "name", "vg", "adopt", "metavg", "spindles",
                               "access", "provider"}
        if unknown:
            raise errors.WrongInput(f"disk {index}: unknown parameter(s) "
                                    f"{', '.join(sorted(unknown))} (known: size, mode, name, vg)")
        if "adopt" in disk and not disk_templates.of(template).adoptable:
            raise errors.WrongInput(f"disk {index}: adoption is only possible with the "
                                    f"plain and blockdev templates, not {template}")
        size = disk.get("size")
        if "adopt" in disk:
            adopt = disk["adopt"]
            if not isinstance(adopt, str) or not adopt:
                raise errors.WrongInput(f"disk {index}: invalid adopt value {adopt!r}: expected "
                                        "the name of an existing volume")
            if size not in (None, 0):
                raise errors.WrongInput(f"disk {index}: give either size or adopt, not both")
            size = 0  # the adopted volume's size, found on the node
        elif not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise errors.WrongInput(f"disk {index}: invalid size {size!r}: expected a positive "
                                    "number of MiB")
        mode = disk.get("mode") or "rw"
        if mode not in ("rw", "ro"):
            raise errors.WrongInput(f"disk {index}: invalid mode '{mode}': expected rw or ro")
        name = disk.get("name")
        if name is not None and not _DISK_NAME_RE.match(str(name)):
            raise errors.WrongInput(f"disk {index}: invalid name '{name}'")
        checked.append({**disk, "size": size, "mode": mode})
    if len({"adopt" in d for d in checked}) > 1:
        raise errors.WrongInput("either all disks are adopted or none is")
    names = [d["name"] for d in checked if d.get("name")]
    if len(names) != len(set(names)):
        raise errors.WrongInput("disk names must be unique")
    return checked


def check_nics(nics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(nics) > MAX_NICS:
        raise errors.WrongInput(f"too many NICs ({len(nics)}): at most {MAX_NICS}")
    checked = []
    for index, nic in enumerate(nics):
        unknown = set(nic) - {"mac", "ip", "mode", "link", "name", "network", "vlan",
                              "bridge"}
        if unknown:
            raise errors.WrongInput(f"NIC {index}: unknown parameter(s) "
                                    f"{', '.join(sorted(unknown))} (known: mac, ip, mode, link, "
                                    "name, network, vlan)")
        mac = nic.get("mac")
        if mac in (None, "", "auto", "generate"):
            mac = None
        else:
            mac = str(mac).lower()
            if not _MAC_RE.match(mac):
                raise errors.WrongInput(f"NIC {index}: invalid MAC address '{nic['mac']}'")
        ip = nic.get("ip")
        if ip in ("", "none"):
            ip = None
        if ip == "pool":  # an address from the network's pool (cmdlib/network_nics)
            if nic.get("network") in (None, "", "none"):
                raise errors.WrongInput(f"NIC {index}: ip=pool needs a network "
                                        "(network=NAME, see 'gnt-network list')")
        elif ip is not None:
            try:
                ipaddress.IPv4Address(str(ip))
            except ValueError:
                raise errors.WrongInput(f"NIC {index}: invalid IP address '{ip}'") from None
        mode = nic.get("mode")
        if mode is not None and mode not in constants.NIC_MODES:
            raise errors.WrongInput(f"NIC {index}: invalid mode '{mode}' "
                                    f"(expected {', '.join(constants.NIC_MODES)})")
        if mode == "routed" and ip is None:
            raise errors.WrongInput(f"NIC {index}: routed mode needs an IP address")
        link = nic.get("link") or nic.get("bridge")
        params = {k: v for k, v in (("mode", mode), ("link", link),
                                    ("vlan", nic.get("vlan"))) if v is not None}
        checked.append({"mac": mac, "ip": ip, "name": nic.get("name"),
                        "network": nic.get("network"), "nicparams": params})
    return checked


def generate_mac(cfg: ConfigWriter, taken: set[str], prefix: str | None = None) -> str:
    """A free MAC with the cluster's prefix (or ``prefix``: a NIC's network's)."""
    prefix = prefix or cfg.get_cluster().mac_prefix
    for _ in range(1000):
        suffix = ":".join(f"{random.randrange(256):02x}" for _ in range(3))
        mac = f"{prefix}:{suffix}"
        if mac not in taken and mac not in cfg.macs:
            return mac
    raise errors.InsufficientResources(f"could not find a free MAC address with prefix {prefix}")


def check_node_usable(node: objects.Node, role: str = "primary") -> None:
    if node.offline:
        raise errors.WrongState(f"{role} node {node.name} is offline")
    if node.drained:
        raise errors.WrongState(f"{role} node {node.name} is drained and takes no new "
                                "instances")
    if not node.vm_capable:
        raise errors.WrongState(f"{role} node {node.name} is not vm capable")


def check_free_memory(node_name: str, info: dict[str, Any], needed: int,
                      inst_name: str) -> None:
    free = info.get("memory_free")
    if not isinstance(free, int):
        raise errors.EnvironmentProblem(f"node {node_name} did not report its free memory")
    if free < needed:
        raise errors.InsufficientResources(
            f"not enough memory on node {node_name} for instance {inst_name}: needed "
            f"{needed} MiB, available {free} MiB (short by {needed - free} MiB)")


async def check_vg_space(rpc: NodeCalls, node: objects.Node, needs: dict[str, int],
                         what: str) -> None:
    """Check ``node`` has each volume group of ``needs`` ({vg: MiB}) with that much free."""
    vgs = {str(v["name"]): int(v["free"]) for v in
           await rpc.node_storage(node, constants.ST_LVM_VG)}
    for vg, needed in sorted(needs.items()):
        if vg not in vgs:
            raise errors.WrongState(f"node {node.name} has no volume group '{vg}' for {what}",
                                    f"create it on {node.name} (vgcreate {vg} DEVICE)")
        if vgs[vg] < needed:
            raise errors.InsufficientResources(
                f"not enough free space in volume group {vg} on node {node.name} for {what}: "
                f"needed {needed} MiB, available {vgs[vg]} MiB (short by "
                f"{needed - vgs[vg]} MiB)")
