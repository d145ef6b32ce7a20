"""The node and group field tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cardume.cmdlib import common
from cardume.master.fields import NODATA, OFFLINE, QField, common_fields

if TYPE_CHECKING:
    from cardume.master.view import MasterView


class NodeQuery:
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


def node_fields() -> list[QField]:
    n = NodeQuery
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
    return fields + common_fields()


def _fill_nd(q: NodeQuery, node: Any) -> dict[str, Any]:
    from cardume import objects
    return objects.fill_ndparams(q.cfg.get_cluster(), q.cfg.groups.get(node.group),
                                 node.ndparams)


def group_fields() -> list[QField]:
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
    ] + common_fields()


def _fill_group_nd(q: Any, group: Any) -> dict[str, Any]:
    from cardume import objects
    return objects.fill_ndparams(q.cfg.get_cluster(), group)

