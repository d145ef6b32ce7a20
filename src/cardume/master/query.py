"""Query fields of every listable resource, computed on the master.

A field is (name, title, kind, doc, getter). ``run_query`` returns the definitions of the
requested fields together with the rows, so the CLI formats a table in one round trip.
Live node data (memory, disk, CPUs) comes from one parallel ``node_info`` call, made only
when a requested field needs it. A cell that has no value carries a mark instead:
``{"_rs": "nodata"}`` (node did not answer), ``"offline"``, ``"unavail"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cardume import constants, errors
from cardume.cmdlib import common
from cardume.jobs import ids as job_ids

if TYPE_CHECKING:
    from cardume.master.view import MasterView

NODATA = {"_rs": "nodata"}
OFFLINE = {"_rs": "offline"}
UNAVAIL = {"_rs": "unavail"}

Getter = Callable[[Any, Any], Any]  # (query context, object) -> value


@dataclass(frozen=True, slots=True)
class QField:
    name: str
    title: str
    kind: str
    doc: str
    get: Getter
    live: bool = False

    def definition(self) -> dict[str, str]:
        return {"name": self.name, "title": self.title, "kind": self.kind, "doc": self.doc}


def _common_fields(prefix_title: str = "") -> list[QField]:
    return [
        QField("uuid", "UUID", "text", "object's UUID", lambda q, o: o.uuid),
        QField("serial_no", "SerialNo", "number", "serial number of the object",
               lambda q, o: o.serial_no),
        QField("ctime", "CTime", "timestamp", "creation time", lambda q, o: o.ctime),
        QField("mtime", "MTime", "timestamp", "modification time", lambda q, o: o.mtime),
        QField("tags", "Tags", "list", "tags", lambda q, o: sorted(o.tags)),
    ]


class _NodeQuery:
    """Context of a node query: the config and, when needed, live node data."""

    def __init__(self, daemon: MasterView, live: dict[str, Any]) -> None:
        self.cfg = daemon.cfg
        self.live = live
        self._instances: dict[str, tuple[list[str], list[str]]] = {}

    def instances(self, node: Any) -> tuple[list[str], list[str]]:
        if node.uuid not in self._instances:
            self._instances[node.uuid] = common.instances_on_node(self.cfg, node.uuid)
        return self._instances[node.uuid]

    def info(self, node: Any, key: str) -> Any:
        if node.offline:
            return OFFLINE
        data = self.live.get(node.name)
        if data is None:
            return NODATA
        value = data.get(key)
        return NODATA if value is None else value

    def storage(self, node: Any, key: str) -> Any:
        if node.offline:
            return OFFLINE
        data = self.live.get(node.name)
        if data is None:
            return NODATA
        total = 0
        for item in data.get("storage", []):
            total += int(item.get(key, 0))
        return total


def _node_fields() -> list[QField]:
    n = _NodeQuery
    fields = [
        QField("name", "Node", "text", "node name", lambda q, o: o.name),
        QField("pip", "PrimaryIP", "text", "primary IP address", lambda q, o: o.primary_ip),
        QField("sip", "SecondaryIP", "text", "secondary (replication) IP address",
               lambda q, o: o.secondary_ip),
        QField("master", "IsMaster", "bool", "whether the node is the master",
               lambda q, o: o.uuid == q.cfg.get_cluster().master_node),
        QField("master_candidate", "MasterC", "bool", "whether the node is a master candidate",
               lambda q, o: o.master_candidate),
        QField("master_capable", "MasterCapable", "bool",
               "whether the node can become a master candidate", lambda q, o: o.master_capable),
        QField("vm_capable", "VMCapable", "bool", "whether the node can host instances",
               lambda q, o: o.vm_capable),
        QField("drained", "Drained", "bool", "whether the node is drained",
               lambda q, o: o.drained),
        QField("offline", "Offline", "bool", "whether the node is offline",
               lambda q, o: o.offline),
        QField("powered", "Powered", "bool", "whether the node is powered",
               lambda q, o: o.powered),
        QField("role", "Role", "text",
               "node role: M master, C candidate, R regular, D drained, O offline",
               lambda q, o: common.node_role(q.cfg, o)),
        QField("group", "Group", "text", "node group", lambda q, o: q.cfg.groups[o.group].name
               if o.group in q.cfg.groups else o.group),
        QField("group.uuid", "GroupUUID", "text", "UUID of the node group",
               lambda q, o: o.group),
        QField("ndparams", "NodeParameters", "other", "node parameters (merged)",
               lambda q, o: _fill_nd(q, o)),
        QField("custom_ndparams", "CustomNodeParameters", "other",
               "node parameters set on the node", lambda q, o: dict(o.ndparams)),
        QField("port", "Port", "number", "port of the node daemon", lambda q, o: o.port),
        QField("pinst_cnt", "Pinst", "number", "number of primary instances",
               lambda q, o: len(q.instances(o)[0])),
        QField("sinst_cnt", "Sinst", "number", "number of secondary instances",
               lambda q, o: len(q.instances(o)[1])),
        QField("pinst_list", "PriInstances", "list", "primary instances",
               lambda q, o: q.instances(o)[0]),
        QField("sinst_list", "SecInstances", "list", "secondary instances",
               lambda q, o: q.instances(o)[1]),
        QField("mtotal", "MTotal", "unit", "total memory of the node (MiB)",
               lambda q, o: n.info(q, o, "memory_total"), live=True),
        QField("mnode", "MNode", "unit", "memory used by the node itself (MiB)",
               lambda q, o: n.info(q, o, "memory_dom0"), live=True),
        QField("mfree", "MFree", "unit", "memory free for instances (MiB)",
               lambda q, o: n.info(q, o, "memory_free"), live=True),
        QField("dtotal", "DTotal", "unit", "total disk space of the node's storage (MiB)",
               lambda q, o: n.storage(q, o, "total"), live=True),
        QField("dfree", "DFree", "unit", "free disk space of the node's storage (MiB)",
               lambda q, o: n.storage(q, o, "free"), live=True),
        QField("sptotal", "SpTotal", "number", "total spindles",
               lambda q, o: n.info(q, o, "spindles_total"), live=True),
        QField("spfree", "SpFree", "number", "free spindles",
               lambda q, o: n.info(q, o, "spindles_free"), live=True),
        QField("ctotal", "CTotal", "number", "number of logical CPUs",
               lambda q, o: n.info(q, o, "cpu_total"), live=True),
        QField("cnodes", "CNodes", "number", "number of NUMA nodes",
               lambda q, o: n.info(q, o, "cpu_nodes"), live=True),
        QField("csockets", "CSockets", "number", "number of CPU sockets",
               lambda q, o: n.info(q, o, "cpu_sockets"), live=True),
        QField("cnos", "CNOs", "number", "CPUs used by the node OS itself",
               lambda q, o: n.info(q, o, "cpu_dom0"), live=True),
        QField("bootid", "BootID", "text", "random UUID renewed at each boot",
               lambda q, o: n.info(q, o, "bootid"), live=True),
        QField("version", "Version", "text", "software version of the node daemon",
               lambda q, o: n.info(q, o, "version"), live=True),
        QField("hypervisors", "Hypervisors", "list", "hypervisors the node supports",
               lambda q, o: n.info(q, o, "hypervisors"), live=True),
    ]
    return fields + _common_fields()


def _fill_nd(q: _NodeQuery, node: Any) -> dict[str, Any]:
    from cardume import objects
    return objects.fill_ndparams(q.cfg.get_cluster(), q.cfg.groups.get(node.group),
                                 node.ndparams)


def _group_fields() -> list[QField]:
    def members(q: Any, o: Any) -> list[str]:
        return sorted(n.name for n in q.cfg.nodes_in_group(o.uuid))

    def instances(q: Any, o: Any) -> list[str]:
        return sorted(i.name for i in q.cfg.instances.values()
                      if q.cfg.nodes.get(i.primary_node) is not None
                      and q.cfg.nodes[i.primary_node].group == o.uuid)

    return [
        QField("name", "Group", "text", "group name", lambda q, o: o.name),
        QField("alloc_policy", "AllocPolicy", "text", "allocation policy",
               lambda q, o: o.alloc_policy),
        QField("node_cnt", "Nodes", "number", "number of nodes", lambda q, o: len(members(q, o))),
        QField("node_list", "NodeList", "list", "nodes in the group", members),
        QField("pinst_cnt", "Instances", "number", "number of primary instances",
               lambda q, o: len(instances(q, o))),
        QField("pinst_list", "InstanceList", "list", "primary instances", instances),
        QField("ndparams", "NDParams", "other", "node parameters (merged)",
               lambda q, o: _fill_group_nd(q, o)),
        QField("custom_ndparams", "CustomNDParams", "other", "node parameters set here",
               lambda q, o: dict(o.ndparams)),
        QField("diskparams", "DiskParameters", "other", "disk parameters set here",
               lambda q, o: dict(o.diskparams)),
        QField("ipolicy", "InstancePolicy", "other", "instance policy set here",
               lambda q, o: dict(o.ipolicy)),
    ] + _common_fields()


def _fill_group_nd(q: Any, group: Any) -> dict[str, Any]:
    from cardume import objects
    return objects.fill_ndparams(q.cfg.get_cluster(), group)


def _ts(value: float | None) -> Any:
    return NODATA if value is None else value


def _job_fields() -> list[QField]:
    return [
        QField("id", "ID", "number", "job ID", lambda q, j: j.id),
        QField("status", "Status", "text", "job status", lambda q, j: j.status),
        QField("priority", "Priority", "number", "current job priority",
               lambda q, j: j.priority),
        QField("summary", "Summary", "list", "summary of the opcodes",
               lambda q, j: j.summary()),
        QField("received_ts", "Received", "timestamp", "time the job was received",
               lambda q, j: _ts(j.received_ts)),
        QField("start_ts", "Start", "timestamp", "time the job started",
               lambda q, j: _ts(j.start_ts)),
        QField("end_ts", "End", "timestamp", "time the job ended", lambda q, j: _ts(j.end_ts)),
        QField("ops", "OpCodes", "other", "the opcodes",
               lambda q, j: [op.to_dict(redact=True) for op in j.ops]),
        QField("opresult", "OpCode_result", "other", "results of the opcodes",
               lambda q, j: j.op_result),
        QField("opstatus", "OpCode_status", "list", "statuses of the opcodes",
               lambda q, j: j.op_status),
        QField("oplog", "OpCode_log", "other", "log lines of the job",
               lambda q, j: [list(e) for e in j.log]),
        QField("opstart", "OpCode_start", "other", "start times of the opcodes",
               lambda q, j: j.op_start_ts),
        QField("opend", "OpCode_end", "other", "end times of the opcodes",
               lambda q, j: j.op_end_ts),
        QField("oppriority", "OpCode_prio", "list", "priorities of the opcodes",
               lambda q, j: [op.priority for op in j.ops]),
        QField("waiting_for", "WaitingFor", "text",
               "the lock a waiting job waits for, and who holds it",
               lambda q, j: (q.locks.waiting_for(j.id) or "-")
               if j.status == "waiting" else "-"),
    ]


class _InstanceQuery:
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

    def filled(self, inst: Any, family: str) -> dict[str, Any]:
        from cardume import objects
        cluster = self.cfg.get_cluster()
        node = self.node(inst.primary_node)
        group = self.cfg.groups.get(node.group) if node else None
        if family == "be":
            return objects.fill_beparams(cluster, group, inst.beparams)
        if family == "hv":
            return objects.fill_hvparams(cluster, group, inst.hypervisor, inst.hvparams)
        os_name = inst.os.split("+", 1)[0]
        return objects.fill_dict(cluster.osparams.get(os_name, {}), inst.osparams)

    def disk_path(self, inst: Any, disk: Any) -> str | None:
        if disk.dev_type in ("file", "sharedfile") and len(disk.logical_id) == 2:
            return str(disk.logical_id[1])
        return None


def _shown_logical_id(disk: Any) -> list[Any]:
    """A disk's logical_id as queries show it: a drbd disk's shared secret (its 6th item)
    stays in the config, out of every listing and socket reply."""
    if disk.dev_type == "drbd":
        return list(disk.logical_id[:5])
    return list(disk.logical_id)


def _instance_fields() -> list[QField]:
    def node_name(q: Any, uuid: str) -> str:
        node = q.node(uuid)
        return node.name if node else uuid

    def nics(o: Any, key: str) -> list[Any]:
        return [getattr(n, key) for n in o.nics]

    def nic_param(q: Any, o: Any, key: str) -> list[Any]:
        from cardume import objects
        cluster = q.cfg.get_cluster()
        return [objects.fill_nicparams(cluster, None, n.nicparams).get(key) for n in o.nics]

    fields = [
        QField("name", "Instance", "text", "instance name", lambda q, o: o.name),
        QField("os", "OS", "text", "operating system", lambda q, o: o.os),
        QField("hypervisor", "Hypervisor", "text", "hypervisor", lambda q, o: o.hypervisor),
        QField("pnode", "Primary_node", "text", "primary node",
               lambda q, o: node_name(q, o.primary_node)),
        QField("pnode.group", "PrimaryNodeGroup", "text", "primary node's group",
               lambda q, o: q.cfg.groups[q.node(o.primary_node).group].name
               if q.node(o.primary_node) else NODATA),
        QField("snodes", "Secondary_Nodes", "list", "secondary nodes",
               lambda q, o: [node_name(q, u) for u in o.secondary_nodes]),
        QField("admin_state", "InstanceState", "text", "desired state (up, down, offline)",
               lambda q, o: o.admin_state),
        QField("admin_up", "Autostart", "bool", "whether the instance should run",
               lambda q, o: o.admin_state == "up"),
        QField("oper_state", "Running", "bool", "whether the hypervisor runs it",
               lambda q, o: q.oper(o, "state"), live=True),
        QField("oper_ram", "Memory", "unit", "memory in use (MiB)",
               lambda q, o: q.oper(o, "memory"), live=True),
        QField("oper_vcpus", "VCPUs", "number", "virtual CPUs in use",
               lambda q, o: q.oper(o, "vcpus"), live=True),
        QField("status", "Status", "text", "derived status (running, ADMIN_down, ERROR_...)",
               lambda q, o: q.status(o), live=True),
        QField("console", "Console", "other", "where the VNC console listens (kvm), if any",
               lambda q, o: q.oper(o, "vnc"), live=True),
        QField("disk_template", "Disk_template", "text", "disk template",
               lambda q, o: o.disk_template),
        QField("disk_usage", "DiskUsage", "unit", "disk space used (MiB)",
               lambda q, o: sum(d.size for d in o.disks)),
        QField("disk.count", "Disks", "number", "number of disks", lambda q, o: len(o.disks)),
        QField("disk.sizes", "Disk_sizes", "list", "disk sizes (MiB)",
               lambda q, o: [d.size for d in o.disks]),
        QField("disk.names", "Disk_names", "list", "disk names",
               lambda q, o: [d.name for d in o.disks]),
        QField("disk.uuids", "Disk_UUIDs", "list", "disk UUIDs",
               lambda q, o: [d.uuid for d in o.disks]),
        QField("disks", "Disks_details", "other", "every disk with its backing path",
               lambda q, o: [{"iv_name": d.iv_name, "name": d.name, "uuid": d.uuid,
                              "size": d.size, "mode": d.mode, "dev_type": d.dev_type,
                              "logical_id": _shown_logical_id(d), "path": q.disk_path(o, d)}
                             for d in o.disks]),
        QField("nic.count", "NICs", "number", "number of NICs", lambda q, o: len(o.nics)),
        QField("nic.macs", "NIC_MACs", "list", "NIC MAC addresses",
               lambda q, o: nics(o, "mac")),
        QField("nic.ips", "NIC_IPs", "list", "NIC IP addresses", lambda q, o: nics(o, "ip")),
        QField("nic.names", "NIC_Names", "list", "NIC names", lambda q, o: nics(o, "name")),
        QField("nic.uuids", "NIC_UUIDs", "list", "NIC UUIDs", lambda q, o: nics(o, "uuid")),
        QField("nic.modes", "NIC_modes", "list", "NIC modes",
               lambda q, o: nic_param(q, o, "mode")),
        QField("nic.links", "NIC_links", "list", "NIC links",
               lambda q, o: nic_param(q, o, "link")),
        QField("nics", "NICs_details", "other", "every NIC",
               lambda q, o: [{"mac": n.mac, "ip": n.ip, "name": n.name, "uuid": n.uuid,
                              "network": n.network, **_fill_nic(q, n)} for n in o.nics]),
        QField("beparams", "BackendParameters", "other", "backend parameters (merged)",
               lambda q, o: q.filled(o, "be")),
        QField("hvparams", "HypervisorParameters", "other", "hypervisor parameters (merged)",
               lambda q, o: q.filled(o, "hv")),
        QField("osparams", "OSParameters", "other", "OS parameters (merged)",
               lambda q, o: q.filled(o, "os")),
        QField("custom_beparams", "CustomBackendParameters", "other",
               "backend parameters set on the instance", lambda q, o: dict(o.beparams)),
        QField("custom_hvparams", "CustomHypervisorParameters", "other",
               "hypervisor parameters set on the instance", lambda q, o: dict(o.hvparams)),
        QField("custom_osparams", "CustomOSParameters", "other",
               "OS parameters set on the instance", lambda q, o: dict(o.osparams)),
        QField("network_port", "Network_port", "number", "console port",
               lambda q, o: o.network_port),
    ]
    for key, kind in (("maxmem", "unit"), ("minmem", "unit"), ("vcpus", "number"),
                      ("auto_balance", "bool"), ("always_failover", "bool"),
                      ("spindle_use", "number")):
        fields.append(QField(f"be/{key}", BE_TITLES.get(key, f"be/{key}"), kind,
                             f"backend parameter {key}", _param_getter("be", key)))
    fields.append(QField("be/memory", BE_TITLES["maxmem"], "unit", "backend maxmem (old name)",
                         lambda q, o: q.filled(o, "be").get("maxmem")))
    from cardume import constants
    hv_keys = sorted({k for table in constants.HVC_DEFAULTS.values() for k in table}
                     - constants.HVC_GLOBALS)  # cluster-wide only: no instance field
    for key in hv_keys:
        fields.append(QField(f"hv/{key}", HV_TITLES.get(key, f"hv/{key}"), "other",
                             f"hypervisor parameter {key}", _param_getter("hv", key)))
    return fields + _common_fields()


#: Titles of the parameter fields, as Ganeti's (others are titled with their name).
BE_TITLES = {"auto_balance": "Auto_balance", "minmem": "ConfigMinMem", "vcpus": "ConfigVCPUs",
             "maxmem": "ConfigMaxMem"}
HV_TITLES = {"acpi": "ACPI", "boot_order": "Boot_order", "cdrom_image_path": "CDROM_image_path",
             "cpu_type": "cpu_type", "disk_type": "Disk_type", "initrd_path": "Initrd_path",
             "kernel_path": "Kernel_path", "nic_type": "NIC_type", "pae": "PAE",
             "pci_pass": "pci_pass", "vnc_bind_address": "VNC_bind_address"}


def _param_getter(family: str, key: str) -> Getter:
    def get(q: Any, o: Any) -> Any:
        return q.filled(o, family).get(key, UNAVAIL)
    return get


def _fill_nic(q: Any, nic: Any) -> dict[str, Any]:
    from cardume import objects
    return objects.fill_nicparams(q.cfg.get_cluster(), None, nic.nicparams)


FIELDS: dict[str, dict[str, QField]] = {
    "node": {f.name: f for f in _node_fields()},
    "group": {f.name: f for f in _group_fields()},
    "job": {f.name: f for f in _job_fields()},
    "instance": {f.name: f for f in _instance_fields()},
}


def field_definitions(what: str, names: list[str] | None) -> list[dict[str, str]]:
    table = _table(what)
    if not names:
        return [f.definition() for f in table.values()]
    return [_field(table, what, n).definition() for n in names]


def _table(what: str) -> dict[str, QField]:
    table = FIELDS.get(what)
    if table is None:
        raise errors.WrongInput(f"unknown query resource '{what}' "
                                f"(known: {', '.join(sorted(FIELDS))})")
    return table


def _field(table: dict[str, QField], what: str, name: str) -> QField:
    field = table.get(name)
    if field is None:
        raise errors.WrongInput(f"unknown field '{name}' for {what} "
                                f"(see 'gnt-{what} list-fields')")
    return field


async def run_query(daemon: MasterView, what: str, fields: list[str],
                    names: list[str] | None) -> dict[str, Any]:
    table = _table(what)
    selected = [_field(table, what, n) for n in fields]
    objects_: list[Any]
    context: Any
    cfg = daemon.cfg
    if what == "node":
        nodes = ([cfg.expand_node(n) for n in names] if names else cfg.sorted_nodes())
        live: dict[str, Any] = {}
        if any(f.live for f in selected):
            results = await daemon.rpc.each([n for n in nodes if not n.offline],
                                            daemon.rpc.node_info)
            live = {name: r.value for name, r in results.items() if r.error is None}
        context = _NodeQuery(daemon, live)
        objects_ = nodes
    elif what == "group":
        objects_ = ([cfg.expand_group(n) for n in names] if names
                    else sorted(cfg.groups.values(), key=lambda g: g.name))
        context = _NodeQuery(daemon, {})
    elif what == "instance":
        objects_ = ([cfg.expand_instance(n) for n in names] if names
                    else sorted(cfg.instances.values(), key=lambda i: i.name))
        running: dict[str, dict[str, Any]] = {}
        unreachable: set[str] = set()
        if any(f.live for f in selected):
            hypervisors = cfg.get_cluster().enabled_hypervisors
            nodes = [n for n in cfg.nodes.values() if not n.offline and n.vm_capable]
            results = await daemon.rpc.each(nodes, daemon.rpc.instance_info_all,
                                            list(hypervisors))
            for name, result in results.items():
                if result.error is None:
                    running[name] = result.value
                else:
                    unreachable.add(name)
        context = _InstanceQuery(daemon, running, unreachable)
    else:  # job
        wanted = [job_ids.parse(n) for n in names] if names else daemon.queue.job_ids()
        objects_ = [daemon.queue.get(i) for i in wanted]
        context = daemon
    getters = [f.get for f in selected]
    rows = [[get(context, obj) for get in getters] for obj in objects_]
    return {"fields": [f.definition() for f in selected], "data": rows}
