"""The instance field table: every field of Ganeti 3.0's ``gnt-instance list-fields``, with
Ganeti's names, titles and kinds, plus ``disks`` and ``nics`` (every device in one value,
which gnt-instance info reads).

The disk and NIC fields are in fields_instance_devices, the single-parameter ones (``be/*``,
``hv/*``) in fields_instance_params. ``InstanceQuery`` is built once per query; what several
fields of a row need (filled parameters, live state) it computes once per instance.
"""

from __future__ import annotations

from dataclasses import replace
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from cardume import constants
from cardume.master.fields import NODATA, OFFLINE, UNAVAIL, QField, attr_field, common_fields
from cardume.master.fields_instance_devices import disk_fields, nic_fields
from cardume.master.fields_instance_params import param_fields

if TYPE_CHECKING:
    from cardume.master.view import MasterView


VNC_BASE_PORT = 5900
"""VNC display N listens on port 5900 + N."""

# the status of an instance its primary node answered for and runs nowhere, by admin state
_STOPPED_STATUS = {"up": "ERROR_down", "offline": "ADMIN_offline", "down": "ADMIN_down"}
_NOTHING: dict[str, Any] = {}
_PRIMARY = attrgetter("primary_node")


class InstanceQuery:
    """Context of an instance query: config, and what the hypervisors report, per node."""

    def __init__(self, daemon: MasterView, running: dict[str, dict[str, Any]],
                 unreachable: set[str]) -> None:
        self.cfg = daemon.cfg
        self.running = running  # node name -> {instance name -> info}
        self.unreachable = unreachable
        # instance name -> nodes running it, computed once: a lookup per instance stays O(1)
        self.where: dict[str, list[str]] = {}
        for node_name, found in running.items():
            for inst_name in found:
                self.where.setdefault(inst_name, []).append(node_name)
        # instance uuid -> live(): status and the oper_* fields each ask it, per row
        self._live: dict[str, tuple[str, dict[str, Any] | None]] = {}
        # (instance uuid, family) -> filled parameters; instance uuid -> filled NIC params
        self._filled: dict[tuple[str, str], dict[str, Any]] = {}
        self._defaults: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}
        self._nics: dict[str, list[dict[str, Any]]] = {}

    def node(self, uuid: str) -> Any:
        return self.cfg.nodes.get(uuid)

    def live(self, inst: Any) -> tuple[str, dict[str, Any] | None]:
        """What the hypervisors say of an instance, found as Ganeti looks for it:
        ('primary', info) when its primary node runs it, else ('elsewhere', info) when another
        node does, else ('offline'|'down'|'ok', None) after what its primary node answered."""
        found = self._live.get(inst.uuid)
        if found is None:
            found = self._live[inst.uuid] = self._find_live(
                inst, self.cfg.nodes.get(inst.primary_node))
        return found

    def _find_live(self, inst: Any, pnode: Any) -> tuple[str, dict[str, Any] | None]:
        if pnode is not None:
            info = self.running.get(pnode.name, {}).get(inst.name)
            if info is not None:
                return "primary", info
        for name in self.where.get(inst.name, ()):
            if pnode is None or name != pnode.name:
                return "elsewhere", self.running[name][inst.name]
        if pnode is None or pnode.offline:
            return "offline", None
        if pnode.name in self.unreachable:
            return "down", None
        return "ok", None

    def status(self, inst: Any) -> str:
        """Ganeti's derived status (Ganeti 3.0's order of the checks)."""
        pnode = self.cfg.nodes.get(inst.primary_node)
        if pnode is None or pnode.offline:
            return "ERROR_nodeoffline"
        where, info = self._live.get(inst.uuid) or self.live(inst)
        if where == "primary" and (info or {}).get("state") == constants.HV_STATE_USER_DOWN:
            return "USER_down"  # its guest powered itself off (kvm user_shutdown)
        if where == "primary":
            return "running" if inst.admin_state == "up" else "ERROR_up"
        if where == "elsewhere":
            return "ERROR_wrongnode"
        if where == "down":
            return "ERROR_nodedown"
        if inst.admin_state == "up":
            return "ERROR_down"
        if inst.admin_state == "offline":
            return "ADMIN_offline"
        return "ADMIN_down"

    # The columns below give, for a whole listing, what status(), oper() and a node's name
    # give for one instance: the usual cases (its primary node answered, and runs it or
    # runs nothing of it) inline, any other through the per-instance method.

    def statuses(self, insts: list[Any]) -> list[str]:
        nodes, running, where, unreachable = (self.cfg.nodes, self.running, self.where,
                                              self.unreachable)
        stopped = _STOPPED_STATUS
        result: list[str] = []
        append = result.append
        for inst in insts:
            pnode = nodes.get(inst.primary_node)
            if pnode is not None and not pnode.offline:
                info = running.get(pnode.name, _NOTHING).get(inst.name)
                if info is None:
                    if inst.name not in where and pnode.name not in unreachable:
                        append(stopped.get(inst.admin_state, "ADMIN_down"))
                        continue
                elif info.get("state") != constants.HV_STATE_USER_DOWN:
                    append("running" if inst.admin_state == "up" else "ERROR_up")
                    continue
            append(self.status(inst))
        return result

    def opers(self, insts: list[Any], key: str) -> list[Any]:
        """oper() of each instance, for a key other than "state"."""
        nodes, running, where, unreachable = (self.cfg.nodes, self.running, self.where,
                                              self.unreachable)
        result: list[Any] = []
        append = result.append
        for inst in insts:
            pnode = nodes.get(inst.primary_node)
            if pnode is not None and not pnode.offline:
                info = running.get(pnode.name, _NOTHING).get(inst.name)
                if info is not None:
                    append(info.get(key))
                    continue
                if inst.name not in where and pnode.name not in unreachable:
                    append(UNAVAIL)
                    continue
            append(self.oper(inst, key))
        return result

    def primary_names(self, insts: list[Any]) -> list[str]:
        names = {uuid: node.name for uuid, node in self.cfg.nodes.items()}
        return [names.get(u, u) for u in map(_PRIMARY, insts)]

    def oper(self, inst: Any, key: str) -> Any:
        """A live value; running on another node counts, as in Ganeti."""
        where, info = self.live(inst)
        if where == "offline":
            return OFFLINE
        if where == "down":
            return NODATA
        if key == "state":
            return info is not None and info.get("state") != constants.HV_STATE_USER_DOWN
        if info is None:
            return UNAVAIL
        return info.get(key)

    def console(self, inst: Any) -> Any:
        """Ganeti's console information: where a running instance's VNC listens (kvm), or
        a message where there is nothing to connect to (the fake hypervisor)."""
        if inst.hypervisor == constants.HT_FAKE:
            return {"instance": inst.name, "kind": "msg",
                    "message": "Console not available for fake hypervisor"}
        where = self.oper(inst, "vnc")
        if not isinstance(where, str) or ":" not in where:
            return where if isinstance(where, dict) else UNAVAIL  # a mark, or no VNC
        host, _, port = where.rpartition(":")
        if not port.isdigit():
            return UNAVAIL
        return {"instance": inst.name, "kind": "vnc", "host": host, "port": int(port),
                "display": int(port) - VNC_BASE_PORT}

    def filled(self, inst: Any, family: str) -> dict[str, Any]:
        """An instance's "be", "hv" or "os" parameters with the cluster's and its group's
        defaults under its own, computed once per instance and query (a row may ask many
        single parameters). Cluster-wide-only hypervisor parameters are left out, as in
        Ganeti: they are not the instance's."""
        key = (inst.uuid, family)
        found = self._filled.get(key)
        if found is None:
            found = self._filled[key] = self._fill(inst, family)
        return found

    def _fill(self, inst: Any, family: str) -> dict[str, Any]:
        from cardume import objects
        cluster = self.cfg.get_cluster()
        if family == "os":
            os_name = inst.os.split("+", 1)[0]
            return objects.fill_dict(cluster.osparams.get(os_name, {}), inst.osparams)
        group = self.group_of(inst.primary_node)
        # the cluster's and the group's layers once per group (and hypervisor), not per
        # instance: a listing of 10,000 instances asks them 10,000 times
        key = (family, group.uuid if group is not None else None,
               inst.hypervisor if family == "hv" else None)
        defaults = self._defaults.get(key)
        if defaults is None:
            if family == "be":
                defaults = objects.fill_beparams(cluster, group)
            else:
                defaults = objects.fill_hvparams(cluster, group, inst.hypervisor)
                for name in constants.HVC_GLOBALS.intersection(defaults):
                    del defaults[name]
            self._defaults[key] = defaults
        own = inst.beparams if family == "be" else inst.hvparams
        values = objects.fill_dict(defaults, own)
        if family == "hv" and own:
            for name in constants.HVC_GLOBALS.intersection(own):
                values.pop(name, None)
        return values

    def nic_params(self, inst: Any) -> list[dict[str, Any]]:
        """Each NIC's parameters over the cluster's defaults (the group's are not applied to
        NICs in listings, as in Ganeti), once per instance and query."""
        found = self._nics.get(inst.uuid)
        if found is None:
            from cardume import objects
            cluster = self.cfg.get_cluster()
            found = self._nics[inst.uuid] = [objects.fill_nicparams(cluster, None, n.nicparams)
                                             for n in inst.nics]
        return found

    def group_of(self, node_uuid: str) -> Any:
        node = self.cfg.nodes.get(node_uuid)
        return self.cfg.groups.get(node.group) if node is not None else None

    def disk_path(self, inst: Any, disk: Any) -> str | None:
        """Where the disk's data is on its node: a file disk's image, a logical volume's
        device (a plain disk, or a drbd disk's data and metadata volumes)."""
        if disk.dev_type in ("file", "sharedfile") and len(disk.logical_id) == 2:
            return str(disk.logical_id[1])
        if disk.dev_type == "plain" and len(disk.logical_id) == 2:
            return f"/dev/{disk.logical_id[0]}/{disk.logical_id[1]}"
        return None


def _shown_logical_id(disk: Any) -> list[Any]:
    """A disk's logical_id as queries show it: a drbd disk's shared secret (its 6th item)
    stays in the config, out of every listing and socket reply."""
    if disk.dev_type == "drbd":
        return list(disk.logical_id[:5])
    return list(disk.logical_id)


def _node_name(q: Any, uuid: str) -> str:
    node = q.node(uuid)
    return node.name if node else uuid


def _pnode_group(q: Any, o: Any, attr: str) -> Any:
    group = q.group_of(o.primary_node)
    return getattr(group, attr) if group is not None else NODATA


def _snodes_groups(q: Any, o: Any, attr: str) -> list[Any]:
    groups = (q.group_of(uuid) for uuid in o.secondary_nodes)
    return [getattr(g, attr) for g in groups if g is not None]


def _nic_details(q: Any, o: Any) -> list[dict[str, Any]]:
    return [{"mac": n.mac, "ip": n.ip, "name": n.name, "uuid": n.uuid, "network": n.network,
             **params} for n, params in zip(o.nics, q.nic_params(o), strict=True)]


#: Ganeti's old field names, each the same column as the field it stands for.
ALIASES = (("vcpus", "be/vcpus"), ("be/memory", "be/maxmem"), ("sda_size", "disk.size/0"),
           ("sdb_size", "disk.size/1"), ("ip", "nic.ip/0"), ("mac", "nic.mac/0"),
           ("bridge", "nic.bridge/0"), ("nic_mode", "nic.mode/0"), ("nic_link", "nic.link/0"),
           ("nic_network", "nic.network/0"))


def instance_fields() -> list[QField]:
    fields = [
        attr_field("name", "Instance", "text", "instance name", "name"),
        attr_field("os", "OS", "text", "OS definition (and variant) installed", "os"),
        attr_field("hypervisor", "Hypervisor", "text", "hypervisor that runs it", "hypervisor"),
        QField("pnode", "Primary_node", "text", "node it runs on",
               lambda q, o: _node_name(q, o.primary_node),
               column=lambda q, objects: q.primary_names(objects)),
        QField("pnode.group", "PrimaryNodeGroup", "text", "group of its primary node",
               lambda q, o: _pnode_group(q, o, "name")),
        QField("pnode.group.uuid", "PrimaryNodeGroupUUID", "text",
               "UUID of its primary node's group", lambda q, o: _pnode_group(q, o, "uuid")),
        QField("snodes", "Secondary_Nodes", "list", "other nodes holding its disks",
               lambda q, o: [_node_name(q, u) for u in o.secondary_nodes]),
        QField("snodes.group", "SecondaryNodesGroups", "list", "groups of its secondary nodes",
               lambda q, o: _snodes_groups(q, o, "name")),
        QField("snodes.group.uuid", "SecondaryNodesGroupsUUID", "list",
               "UUIDs of its secondary nodes' groups", lambda q, o: _snodes_groups(q, o, "uuid")),
        attr_field("admin_state", "InstanceState", "text",
                   "state it should be in (up, down, offline)", "admin_state"),
        QField("admin_state_source", "InstanceStateSource", "text",
               "who set the state it should be in (admin or user)",
               lambda q, o: o.admin_state_source),
        QField("admin_up", "Autostart", "bool", "whether it should be running",
               lambda q, o: o.admin_state == "up"),
        QField("disks_active", "DisksActive", "bool", "whether its disks should be active",
               lambda q, o: o.disks_active),
        QField("forthcoming", "Forthcoming", "bool",
               "whether it is only reserved, not yet created (never, in cardume)",
               lambda q, o: False),
        QField("oper_state", "Running", "bool", "whether the hypervisor runs it",
               lambda q, o: q.oper(o, "state"), live=True),
        QField("oper_ram", "Memory", "unit", "memory in use (MiB)",
               lambda q, o: q.oper(o, "memory"), live=True,
               column=lambda q, objects: q.opers(objects, "memory")),
        QField("oper_vcpus", "VCPUs", "number", "virtual CPUs in use",
               lambda q, o: q.oper(o, "vcpus"), live=True,
               column=lambda q, objects: q.opers(objects, "vcpus")),
        QField("status", "Status", "text",
               "its state derived from the desired and the actual one: running, ADMIN_down, "
               "ADMIN_offline, USER_down, ERROR_up, ERROR_down, ERROR_wrongnode, "
               "ERROR_nodedown or ERROR_nodeoffline", lambda q, o: q.status(o), live=True,
               column=lambda q, objects: q.statuses(objects)),
        QField("console", "Console", "other", "where the VNC console listens (kvm), if any",
               lambda q, o: q.console(o), live=True),
        attr_field("disk_template", "Disk_template", "text", "storage type of its disks",
                   "disk_template"),
        QField("disks", "Disks_details", "other", "every disk with its backing path",
               lambda q, o: [{"iv_name": d.iv_name, "name": d.name, "uuid": d.uuid,
                              "size": d.size, "mode": d.mode, "dev_type": d.dev_type,
                              "spindles": d.spindles, "logical_id": _shown_logical_id(d),
                              "path": q.disk_path(o, d),
                              "children": [{"dev_type": c.dev_type, "size": c.size,
                                            "logical_id": list(c.logical_id),
                                            "path": q.disk_path(o, c)} for c in d.children]}
                             for d in o.disks]),
        QField("nics", "NICs_details", "other", "every NIC", _nic_details),
        QField("network_port", "Network_port", "other",
               "TCP port reserved for it (its VNC display), if any",
               lambda q, o: UNAVAIL if o.network_port is None else o.network_port),
        QField("beparams", "BackendParameters", "other",
               "backend parameters, inherited defaults included", lambda q, o: q.filled(o, "be")),
        QField("hvparams", "HypervisorParameters", "other",
               "hypervisor parameters, inherited defaults included",
               lambda q, o: q.filled(o, "hv")),
        QField("osparams", "OpSysParameters", "other",
               "OS parameters, inherited defaults included", lambda q, o: q.filled(o, "os")),
        QField("custom_beparams", "CustomBackendParameters", "other",
               "backend parameters set on the instance itself", lambda q, o: dict(o.beparams)),
        QField("custom_hvparams", "CustomHypervisorParameters", "other",
               "hypervisor parameters set on the instance itself",
               lambda q, o: dict(o.hvparams)),
        QField("custom_osparams", "CustomOpSysParameters", "other",
               "OS parameters set on the instance itself", lambda q, o: dict(o.osparams)),
        QField("custom_nicparams", "CustomNicParameters", "other",
               "parameters set on each NIC itself",
               lambda q, o: [dict(n.nicparams) for n in o.nics]),
        *disk_fields(), *nic_fields(), *param_fields(),
        # tags print comma-joined in gnt-instance list, as Ganeti's do ("other" on the wire)
        *(replace(f, kind="list") if f.name == "tags" else f
          for f in common_fields("instance")),
    ]
    by_name = {f.name: f for f in fields}
    fields += [QField(old, by_name[new].title, by_name[new].kind, f"old name of {new}",
                      by_name[new].get) for old, new in ALIASES]
    return fields
