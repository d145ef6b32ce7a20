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

from cardume import errors
from cardume.cmdlib import common

if TYPE_CHECKING:
    from cardume.masterd import MasterDaemon

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

    def __init__(self, daemon: MasterDaemon, live: dict[str, Any]) -> None:
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
               lambda q, j: [op.to_dict() for op in j.ops]),
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


FIELDS: dict[str, dict[str, QField]] = {
    "node": {f.name: f for f in _node_fields()},
    "group": {f.name: f for f in _group_fields()},
    "job": {f.name: f for f in _job_fields()},
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


async def run_query(daemon: MasterDaemon, what: str, fields: list[str],
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
            results = await daemon.rpc.call_many([n for n in nodes if not n.offline],
                                                 "node_info", {})
            live = {name: r.value for name, r in results.items() if r.error is None}
        context = _NodeQuery(daemon, live)
        objects_ = nodes
    elif what == "group":
        objects_ = ([cfg.expand_group(n) for n in names] if names
                    else sorted(cfg.groups.values(), key=lambda g: g.name))
        context = _NodeQuery(daemon, {})
    else:  # job
        ids = [_job_id(n) for n in names] if names else daemon.queue.job_ids()
        objects_ = [daemon.queue.get(i) for i in ids]
        context = daemon
    rows = [[f.get(context, obj) for f in selected] for obj in objects_]
    return {"fields": [f.definition() for f in selected], "data": rows}


def _job_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise errors.WrongInput(f"invalid job id '{text}': expected a number") from None
