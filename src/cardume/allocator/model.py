"""The cluster as an iallocator request (protocol version 2) describes it, read and checked.

``parse(data)`` turns the request dict Ganeti (or cardume's master) writes into a ``Cluster``
and a ``Request``; anything malformed raises ``RequestError`` with one line naming the bad
key. Nodes that are offline, drained or not vm_capable carry no runtime data in the protocol,
so their figures default to 0 and they are never placement targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cardume.errors import WrongInput

REQUEST_TYPES = ("allocate", "multi-allocate", "relocate", "node-evacuate", "change-group")
EVAC_MODES = ("primary-only", "secondary-only", "all")
ALLOC_POLICIES = ("preferred", "last_resort", "unallocable")
ADMIN_STATES = ("up", "down", "offline")
# Templates whose disks take space from the node's own storage (free_disk). sharedfile,
# diskless and the network-backed templates (rbd, ext, gluster, blockdev) do not.
NODE_DISK_TEMPLATES = frozenset({"plain", "drbd", "file"})
# Templates hbal counts spindles for (LVM-backed local storage).
SPINDLE_TEMPLATES = frozenset({"plain", "drbd"})
# Templates that can move between nodes without copying (the storage is shared).
SHARED_TEMPLATES = frozenset({"sharedfile", "diskless", "blockdev", "rbd", "ext", "gluster"})
EXCLUSION_PREFIX = "htools:iextags:"


class RequestError(WrongInput):
    """A malformed iallocator request."""


@dataclass
class Group:
    uuid: str
    name: str
    alloc_policy: str
    ipolicy: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)


@dataclass
class Node:
    name: str
    group: str
    offline: bool = False
    drained: bool = False
    vm_capable: bool = True
    total_memory: int = 0
    reserved_memory: int = 0
    free_memory: int = 0
    total_disk: int = 0
    free_disk: int = 0
    total_cpus: int = 0
    reserved_cpus: int = 0
    total_spindles: int = 0
    free_spindles: int = 0
    spindle_count: int = 1
    cpu_speed: float = 1.0
    exclusive_storage: bool = False
    tags: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether instances may be placed here at all."""
        return not (self.offline or self.drained) and self.vm_capable

    def unusable_reason(self) -> str:
        if self.offline:
            return "offline"
        if self.drained:
            return "drained"
        return "not vm_capable"


@dataclass
class Instance:
    name: str
    memory: int
    vcpus: int
    disks: list[int]
    disk_space_total: int
    disk_template: str
    spindle_use: int = 1
    nic_count: int = 0
    admin_state: str = "up"
    tags: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    hypervisor: str | None = None

    @property
    def uses_node_disk(self) -> bool:
        return self.disk_template in NODE_DISK_TEMPLATES

    @property
    def mirrored(self) -> bool:
        return self.disk_template == "drbd"


@dataclass
class Request:
    type: str
    new: list[tuple[Instance, int, str | None]] = field(default_factory=list)
    # allocate / multi-allocate: (instance, required_nodes, group_name)
    name: str = ""                 # relocate: the instance
    relocate_from: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)  # node-evacuate / change-group
    evac_mode: str = "all"
    target_groups: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    name: str
    tags: list[str]
    groups: dict[str, Group]
    nodes: dict[str, Node]
    instances: dict[str, Instance]

    @property
    def exclusion_prefixes(self) -> list[str]:
        return [t[len(EXCLUSION_PREFIX):] for t in self.tags if t.startswith(EXCLUSION_PREFIX)]

    def exclusion_tags(self, instance: Instance) -> list[str]:
        """The instance tags that exclude each other on one primary node."""
        prefixes = self.exclusion_prefixes
        return [t for t in instance.tags if any(t.startswith(p) for p in prefixes)]


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in obj:
        raise RequestError(f"{what}: missing key '{key}'")
    value = obj[key]
    if kind is int or kind is float or kind == (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(f"{what}: '{key}' must be a number, got {value!r}")
        return value
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RequestError(f"{what}: '{key}' must be {names}, got {value!r}")
    return value


def _opt(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str,
         default: Any) -> Any:
    if obj.get(key) is None:
        return default
    return _get(obj, key, kind, what)


def _num(obj: dict[str, Any], key: str, what: str, default: int | None = None) -> int:
    if default is not None and obj.get(key) is None:
        return default
    value = _get(obj, key, (int, float), what)
    if value < 0:
        raise RequestError(f"{what}: '{key}' must not be negative, got {value}")
    return int(value)


def _str_list(obj: dict[str, Any], key: str, what: str, required: bool = True) -> list[str]:
    value = _get(obj, key, list, what) if required else (obj.get(key) or [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(f"{what}: '{key}' must be a list of strings, got {value!r}")
    return list(value)


def _group(uuid: str, raw: Any) -> Group:
    what = f"node group '{uuid}'"
    obj = _obj(raw, what)
    policy = _get(obj, "alloc_policy", str, what)
    if policy not in ALLOC_POLICIES:
        raise RequestError(f"{what}: alloc_policy '{policy}' is not one of "
                           f"{', '.join(ALLOC_POLICIES)}")
    return Group(uuid=uuid, name=_get(obj, "name", str, what), alloc_policy=policy,
                 ipolicy=_obj(_get(obj, "ipolicy", dict, what), f"{what} ipolicy"),
                 tags=_str_list(obj, "tags", what, required=False),
                 networks=_str_list(obj, "networks", what, required=False))


def _node(name: str, raw: Any, groups: dict[str, Group]) -> Node:
    what = f"node '{name}'"
    obj = _obj(raw, what)
    group = _get(obj, "group", str, what)
    if group not in groups:
        raise RequestError(f"{what}: group '{group}' is not in nodegroups")
    node = Node(name=name, group=group, offline=bool(_get(obj, "offline", bool, what)),
                drained=bool(_get(obj, "drained", bool, what)),
                vm_capable=bool(_opt(obj, "vm_capable", bool, what, True)),
                tags=_str_list(obj, "tags", what, required=False))
    ndparams = _obj(obj.get("ndparams") or {}, f"{what} ndparams")
    node.exclusive_storage = bool(ndparams.get("exclusive_storage", False))
    node.spindle_count = _num(ndparams, "spindle_count", what, 1)
    node.cpu_speed = float(_opt(ndparams, "cpu_speed", (int, float), what, 1.0)) or 1.0
    if node.usable:  # only live nodes carry runtime data (Ganeti's protocol)
        for key in ("total_memory", "reserved_memory", "free_memory", "total_disk",
                    "free_disk", "total_cpus"):
            setattr(node, key, _num(obj, key, what))
        node.reserved_cpus = _num(obj, "reserved_cpus", what, 0)
        node.total_spindles = _num(obj, "total_spindles", what, 0)
        node.free_spindles = _num(obj, "free_spindles", what, 0)
    return node


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:  # (bool, float, negative: the checked path)
        raise TypeError
    return value


def _instance_fast(name: str, obj: Any) -> Instance:
    """An instance as Ganeti and cardume write them (whole numbers, every key present):
    read with no per-key checks; anything else raises, and :func:`_instance` reads it
    again with the checks that name what is wrong (a 1,000-node request holds thousands of
    instances, and the checked read was most of an allocation's time)."""
    if type(obj) is not dict:
        raise TypeError
    spindles = obj.get("spindle_use")
    state = obj.get("admin_state")
    tags = obj["tags"]
    hypervisor = obj.get("hypervisor")
    template = obj["disk_template"]
    if (state not in ADMIN_STATES and state is not None) or type(template) is not str \
            or type(tags) is not list or type(obj["nics"]) is not list \
            or not all(type(t) is str for t in tags) \
            or not (hypervisor is None or type(hypervisor) is str):
        raise TypeError
    return Instance(name=name, memory=_count(obj["memory"]), vcpus=_count(obj["vcpus"]),
                    disks=[_count(disk["size"]) for disk in obj["disks"]],
                    disk_space_total=_count(obj["disk_space_total"]),
                    disk_template=template,
                    spindle_use=1 if spindles is None else _count(spindles),
                    nic_count=len(obj["nics"]), admin_state=state or "up", tags=list(tags),
                    hypervisor=hypervisor)


def _instance(name: str, raw: Any, what: str) -> Instance:
    try:
        return _instance_fast(name, raw)
    except (KeyError, TypeError):
        pass
    obj = _obj(raw, what)
    disks = _get(obj, "disks", list, what)
    sizes = []
    for index, disk in enumerate(disks):
        sizes.append(_num(_obj(disk, f"{what} disk {index}"), "size", f"{what} disk {index}"))
    state = _opt(obj, "admin_state", str, what, "up")
    if state not in ADMIN_STATES:
        raise RequestError(f"{what}: admin_state '{state}' is not one of "
                           f"{', '.join(ADMIN_STATES)}")
    return Instance(name=name, memory=_num(obj, "memory", what), vcpus=_num(obj, "vcpus", what),
                    disks=sizes, disk_space_total=_num(obj, "disk_space_total", what),
                    disk_template=_get(obj, "disk_template", str, what),
                    spindle_use=_num(obj, "spindle_use", what, 1),
                    nic_count=len(_get(obj, "nics", list, what)), admin_state=state,
                    tags=_str_list(obj, "tags", what),
                    hypervisor=_opt(obj, "hypervisor", str, what, None))


def _new_instance(raw: Any, what: str) -> tuple[Instance, int, str | None]:
    obj = _obj(raw, what)
    name = _get(obj, "name", str, what)
    inst = _instance(name, obj, f"{what} '{name}'")
    required = _get(obj, "required_nodes", int, what)
    if required not in (1, 2):
        raise RequestError(f"{what} '{name}': required_nodes must be 1 or 2, got {required}")
    if (required == 2) != inst.mirrored:
        raise RequestError(f"{what} '{name}': required_nodes {required} does not fit disk "
                           f"template {inst.disk_template}")
    return inst, required, _opt(obj, "group_name", str, what, None)


def _request(raw: Any, cluster: Cluster) -> Request:
    obj = _obj(raw, "request")
    kind = _get(obj, "type", str, "request")
    if kind not in REQUEST_TYPES:
        raise RequestError(f"request: type '{kind}' is not one of {', '.join(REQUEST_TYPES)}")
    req = Request(type=kind)
    if kind == "allocate":
        req.new = [_new_instance(obj, "request")]
    elif kind == "multi-allocate":
        items = _get(obj, "instances", list, "request")
        req.new = [_new_instance(item, f"request instance {i}") for i, item in enumerate(items)]
    elif kind == "relocate":
        req.name = _get(obj, "name", str, "request")
        if req.name not in cluster.instances:
            raise RequestError(f"request: instance '{req.name}' is not in instances")
        req.relocate_from = _str_list(obj, "relocate_from", "request")
        for node in req.relocate_from:
            if node not in cluster.nodes:
                raise RequestError(f"request: relocate_from node '{node}' is not in nodes")
    else:
        req.instances = _str_list(obj, "instances", "request")
        for name in req.instances:
            if name not in cluster.instances:
                raise RequestError(f"request: instance '{name}' is not in instances")
        if kind == "node-evacuate":
            req.evac_mode = _get(obj, "evac_mode", str, "request")
            if req.evac_mode not in EVAC_MODES:
                raise RequestError(f"request: evac_mode '{req.evac_mode}' is not one of "
                                   f"{', '.join(EVAC_MODES)}")
        else:
            req.target_groups = _str_list(obj, "target_groups", "request")
            for uuid in req.target_groups:
                if uuid not in cluster.groups:
                    raise RequestError(f"request: target group '{uuid}' is not in nodegroups")
    return req


def parse(data: Any) -> tuple[Cluster, Request]:
    """Read a version 2 iallocator request dict; raise RequestError naming what is wrong."""
    top = _obj(data, "the iallocator request")
    version = top.get("version", 2)
    if version != 2:
        raise RequestError(f"iallocator protocol version {version!r} is not supported "
                           "(expected 2)")
    groups = {uuid: _group(uuid, raw)
              for uuid, raw in _obj(_get(top, "nodegroups", dict, "request file"),
                                    "nodegroups").items()}
    nodes = {name: _node(name, raw, groups)
             for name, raw in _obj(_get(top, "nodes", dict, "request file"), "nodes").items()}
    instances = {}
    for name, raw in _obj(_get(top, "instances", dict, "request file"), "instances").items():
        inst = _instance(name, raw, f"instance '{name}'")
        inst.nodes = _str_list(raw, "nodes", f"instance '{name}'")
        if not inst.nodes:
            raise RequestError(f"instance '{name}': empty node list")
        for node in inst.nodes:
            if node not in nodes:
                raise RequestError(f"instance '{name}': node '{node}' is not in nodes")
        instances[name] = inst
    cluster = Cluster(name=str(top.get("cluster_name", "")),
                      tags=_str_list(top, "cluster_tags", "request file", required=False),
                      groups=groups, nodes=nodes, instances=instances)
    return cluster, _request(_get(top, "request", dict, "request file"), cluster)
