"""The configuration objects, with Ganeti's field names, and parameter inheritance.

Each object is one row of the config store (see config/store.py). ``to_dict`` and
``from_dict`` are the only serialization: the same dicts go to SQLite and to the master
candidates' replicas.

Parameters inherit in layers, most general first: built-in defaults → cluster → node group
→ node (nd) or instance (hv/be/nic/os). ``fill_*`` functions compute the effective values;
objects store only what was set at their own layer, so changing a cluster default reaches
every instance that did not override it.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from cardume import constants

T = TypeVar("T", bound="ConfigObject")


def new_uuid() -> str:
    import uuid  # here: the node daemon reads objects but makes none (uuid loads platform)
    return str(uuid.uuid4())


@dataclass(slots=True)
class ConfigObject:
    """Base: serial number, timestamps, tags, and dict conversion."""

    KIND: ClassVar[str] = ""

    uuid: str = field(default_factory=new_uuid)
    serial_no: int = 1
    ctime: float = field(default_factory=time.time)
    mtime: float = field(default_factory=time.time)
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        known = _field_names(cls)
        return cls(**{k: v for k, v in data.items() if k in known})

    def touch(self) -> None:
        """Record a modification: Ganeti bumps the serial and mtime of each changed object."""
        self.serial_no += 1
        self.mtime = time.time()


_FIELDS_CACHE: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELDS_CACHE.get(cls)
    if names is None:
        names = frozenset(f.name for f in dataclasses.fields(cls))
        _FIELDS_CACHE[cls] = names
    return names


@dataclass(slots=True)
class Cluster(ConfigObject):
    KIND: ClassVar[str] = "cluster"

    cluster_name: str = ""
    master_node: str = ""  # node uuid
    master_netdev: str = "lo"
    master_netmask: int = 32
    master_ip: str = ""
    enabled_hypervisors: list[str] = field(default_factory=lambda: [constants.HT_FAKE])
    enabled_disk_templates: list[str] = field(
        default_factory=lambda: [constants.DT_DRBD8, constants.DT_PLAIN])
    file_storage_dir: str = constants.DEFAULT_FILE_STORAGE_DIR
    shared_file_storage_dir: str = constants.DEFAULT_SHARED_FILE_STORAGE_DIR
    volume_group_name: str = constants.DEFAULT_VG
    mac_prefix: str = constants.DEFAULT_MAC_PREFIX
    candidate_pool_size: int = constants.DEFAULT_CANDIDATE_POOL_SIZE
    max_running_jobs: int = constants.DEFAULT_MAX_RUNNING_JOBS
    max_tracked_jobs: int = constants.DEFAULT_MAX_TRACKED_JOBS
    hvparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    beparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    nicparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    ndparams: dict[str, Any] = field(default_factory=dict)
    diskparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    osparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    ipolicy: dict[str, Any] = field(default_factory=dict)
    default_iallocator: str = ""
    default_iallocator_params: dict[str, Any] = field(default_factory=dict)
    drbd_usermode_helper: str = "/bin/true"
    tcpudp_port_pool: list[int] = field(default_factory=list)
    noded_port: int = constants.DEFAULT_NODED_PORT
    hosts_file: str = ""  # an extra hosts file the resolver reads first (local clusters)
    modify_etc_hosts: bool = False
    primary_ip_family: int = 4
    prealloc_wipe_disks: bool = False
    maintain_node_health: bool = False
    uid_pool: list[Any] = field(default_factory=list)
    os_search_path: list[str] = field(default_factory=list)


@dataclass(slots=True)
class NodeGroup(ConfigObject):
    KIND: ClassVar[str] = "nodegroup"

    name: str = ""
    alloc_policy: str = "preferred"
    ndparams: dict[str, Any] = field(default_factory=dict)
    diskparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    ipolicy: dict[str, Any] = field(default_factory=dict)
    hvparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    beparams: dict[str, Any] = field(default_factory=dict)
    nicparams: dict[str, Any] = field(default_factory=dict)
    networks: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Node(ConfigObject):
    KIND: ClassVar[str] = "node"

    name: str = ""
    primary_ip: str = ""
    secondary_ip: str = ""
    port: int = constants.DEFAULT_NODED_PORT
    group: str = ""  # node group uuid
    master_candidate: bool = False
    drained: bool = False
    offline: bool = False
    master_capable: bool = True
    vm_capable: bool = True
    powered: bool = True
    ndparams: dict[str, Any] = field(default_factory=dict)
    cert_fingerprint: str = ""


@dataclass(slots=True)
class NIC:
    uuid: str = field(default_factory=new_uuid)
    name: str | None = None
    mac: str = ""
    ip: str | None = None
    network: str | None = None
    nicparams: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "name": self.name, "mac": self.mac, "ip": self.ip,
                "network": self.network, "nicparams": dict(self.nicparams)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NIC:
        return cls(**{k: v for k, v in data.items() if k in _field_names(cls)})


@dataclass(slots=True)
class Disk:
    uuid: str = field(default_factory=new_uuid)
    name: str | None = None
    dev_type: str = constants.DT_PLAIN
    logical_id: list[Any] = field(default_factory=list)
    size: int = 0  # MiB
    mode: str = "rw"
    iv_name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)  # node uuids, primary first
    spindles: int | None = None
    children: list[Disk] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: copy.deepcopy(getattr(self, f.name))
                for f in dataclasses.fields(self) if f.name != "children"}
        data["children"] = [c.to_dict() for c in self.children]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Disk:
        known = _field_names(cls)
        values = {k: v for k, v in data.items() if k in known and k != "children"}
        values["children"] = [Disk.from_dict(c) for c in data.get("children", [])]
        return cls(**values)


@dataclass(slots=True)
class Instance(ConfigObject):
    KIND: ClassVar[str] = "instance"

    name: str = ""
    primary_node: str = ""  # node uuid
    os: str = ""
    hypervisor: str = constants.HT_FAKE
    hvparams: dict[str, Any] = field(default_factory=dict)
    beparams: dict[str, Any] = field(default_factory=dict)
    osparams: dict[str, Any] = field(default_factory=dict)
    osparams_private: dict[str, Any] = field(default_factory=dict)
    admin_state: str = "down"
    admin_state_source: str = "admin"
    nics: list[NIC] = field(default_factory=list)
    disks: list[Disk] = field(default_factory=list)
    disk_template: str = constants.DT_DISKLESS
    disks_active: bool = False
    network_port: int | None = None

    @property
    def secondary_nodes(self) -> list[str]:
        seen = {self.primary_node}
        result: list[str] = []
        for disk in self.disks:
            for node in disk.nodes:
                if node not in seen:
                    seen.add(node)
                    result.append(node)
        return result

    def to_dict(self) -> dict[str, Any]:
        data = ConfigObject.to_dict(self)
        data["nics"] = [n.to_dict() for n in self.nics]
        data["disks"] = [d.to_dict() for d in self.disks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        known = _field_names(cls)
        values = {k: v for k, v in data.items() if k in known and k not in ("nics", "disks")}
        values["nics"] = [NIC.from_dict(n) for n in data.get("nics", [])]
        values["disks"] = [Disk.from_dict(d) for d in data.get("disks", [])]
        return cls(**values)


@dataclass(slots=True)
class Network(ConfigObject):
    """An IP network (gnt-network): its subnets, gateways, MAC prefix and address pool.

    ``ext_reservations`` is the pool's map of externally reserved addresses (one "0"/"1" a
    subnet address, see rules/addresspool.py). ``reservations`` is Ganeti's map of the
    addresses instances use; cardume derives that map from the NICs on the network
    whenever it is read, so the field stays empty and can never disagree with them.
    Node groups hold the connections: NodeGroup.networks {network uuid: nicparams}.
    """

    KIND: ClassVar[str] = "network"

    name: str = ""
    network: str = ""
    gateway: str | None = None
    network6: str | None = None
    gateway6: str | None = None
    mac_prefix: str | None = None
    reservations: str = ""
    ext_reservations: str = ""


KINDS: dict[str, type[ConfigObject]] = {
    cls.KIND: cls for cls in (Cluster, NodeGroup, Node, Instance, Network)
}


# --- parameter inheritance --------------------------------------------------------------

def fill_dict(defaults: dict[str, Any], custom: dict[str, Any] | None) -> dict[str, Any]:
    """Layer ``custom`` over ``defaults``; a None value in custom means "inherit"."""
    result = dict(defaults)
    if custom:
        for key, value in custom.items():
            if value is not None:
                result[key] = value
    return result


def fill_hvparams(cluster: Cluster, group: NodeGroup | None, hypervisor: str,
                  own: dict[str, Any] | None = None) -> dict[str, Any]:
    values = fill_dict(constants.HVC_DEFAULTS.get(hypervisor, {}),
                       cluster.hvparams.get(hypervisor))
    if group is not None:
        values = fill_dict(values, group.hvparams.get(hypervisor))
    return fill_dict(values, own)


def fill_beparams(cluster: Cluster, group: NodeGroup | None,
                  own: dict[str, Any] | None = None) -> dict[str, Any]:
    values = fill_dict(constants.BEC_DEFAULTS, cluster.beparams.get("default"))
    if group is not None:
        values = fill_dict(values, group.beparams)
    return fill_dict(values, own)


def fill_nicparams(cluster: Cluster, group: NodeGroup | None,
                   own: dict[str, Any] | None = None) -> dict[str, Any]:
    values = fill_dict(constants.NICC_DEFAULTS, cluster.nicparams.get("default"))
    if group is not None:
        values = fill_dict(values, group.nicparams)
    return fill_dict(values, own)


def fill_ndparams(cluster: Cluster, group: NodeGroup | None,
                  own: dict[str, Any] | None = None) -> dict[str, Any]:
    values = fill_dict(constants.NDC_DEFAULTS, cluster.ndparams)
    if group is not None:
        values = fill_dict(values, group.ndparams)
    return fill_dict(values, own)


def fill_diskparams(cluster: Cluster, group: NodeGroup | None, template: str,
                    own: dict[str, Any] | None = None) -> dict[str, Any]:
    values = fill_dict(constants.DISK_DT_DEFAULTS.get(template, {}),
                       cluster.diskparams.get(template))
    if group is not None:
        values = fill_dict(values, group.diskparams.get(template))
    return fill_dict(values, own)


def fill_ipolicy(cluster: Cluster, group: NodeGroup | None) -> dict[str, Any]:
    values = fill_dict(constants.IPOLICY_DEFAULTS, cluster.ipolicy)
    if group is not None:
        values = fill_dict(values, group.ipolicy)
    return values


def merge_params(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply a `-B`-style change set to stored parameters; None removes (back to inherited)."""
    result = dict(current)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def lv_owners(instances: Iterable[Instance]) -> dict[tuple[str, str], str]:
    """``(vg, lv) -> instance name`` for every LV an instance's disks use."""
    owners: dict[tuple[str, str], str] = {}

    def walk(disk: Disk, name: str) -> None:
        if disk.dev_type == constants.DT_PLAIN and len(disk.logical_id) == 2:
            owners[(str(disk.logical_id[0]), str(disk.logical_id[1]))] = name
        for child in disk.children:
            walk(child, name)

    for inst in instances:
        for disk in inst.disks:
            walk(disk, inst.name)
    return owners
