"""The node and group field tables: Ganeti 3.0's names, titles and kinds (``gnt-node
list-fields``, ``gnt-group list-fields``), with a few of cardume's own added (node: port,
version, hypervisors).

Where cardume has no such concept (out-of-band power control, exclusive storage's spindles,
hypervisor and disk state), a field carries the mark Ganeti gives on a cluster without it,
not an invented value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cardume import constants
from cardume.cmdlib import common
from cardume.master.fields import NODATA, OFFLINE, UNAVAIL, Getter, QField, common_fields

if TYPE_CHECKING:
    from cardume.master.view import MasterView


class NodeQuery:
    """Context of a node query: the config and, when needed, live node data."""

    def __init__(self, daemon: MasterView, live: dict[str, Any]) -> None:
        self.cfg = daemon.cfg
        self.live = live
        self._instances: dict[str, tuple[list[str], list[str]]] | None = None

    def instances(self, node: Any) -> tuple[list[str], list[str]]:
        """(primary, secondary) instance names of a node, as common.instances_on_node: the
        instances are gone through once for every node (at 10,000 instances a pass per
        node was most of a 100-node list)."""
        if self._instances is None:
            primary: dict[str, list[str]] = {}
            secondary: dict[str, list[str]] = {}
            for inst in self.cfg.instances.values():
                primary.setdefault(inst.primary_node, []).append(inst.name)
                for uuid in dict.fromkeys(inst.secondary_nodes):
                    if uuid != inst.primary_node:
                        secondary.setdefault(uuid, []).append(inst.name)
            self._instances = {uuid: (sorted(primary.get(uuid, ())),
                                      sorted(secondary.get(uuid, ())))
                               for uuid in primary.keys() | secondary.keys()}
        return self._instances.get(node.uuid, ([], []))

    def info(self, node: Any, key: str) -> Any:
        if node.offline:
            return OFFLINE
        data = self.live.get(node.name)
        if data is None:
            return NODATA
        value = data.get(key)
        return NODATA if value is None else value

    def spindles(self, node: Any, key: str) -> Any:
        """Spindles count only with exclusive storage (which cardume does not offer yet):
        without it Ganeti reports no data, and so do we."""
        if not _fill_nd(self, node).get("exclusive_storage"):
            return NODATA
        return self.info(node, key)

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


def _reported(name: str, title: str, kind: str, doc: str, key: str) -> QField:
    """A field that is one value of what the node reports about itself (node_info)."""
    return QField(name, title, kind, doc, lambda q, o: NodeQuery.info(q, o, key), live=True)


def node_fields() -> list[QField]:
    n = NodeQuery
    fields = [
        QField("name", "Node", "text", "name of the node", lambda q, o: o.name),
        QField("pip", "PrimaryIP", "text", "the node's primary address",
               lambda q, o: o.primary_ip),
        QField("sip", "SecondaryIP", "text", "the node's replication (secondary) address",
               lambda q, o: o.secondary_ip),
        QField("master", "IsMaster", "bool", "true on the master node",
               lambda q, o: o.uuid == q.cfg.get_cluster().master_node),
        QField("master_candidate", "MasterC", "bool",
               "true if the node keeps a copy of the configuration (master candidate)",
               lambda q, o: o.master_candidate),
        QField("master_capable", "MasterCapable", "bool",
               "true if the node may be made a master candidate", lambda q, o: o.master_capable),
        QField("vm_capable", "VMCapable", "bool", "true if instances may run on the node",
               lambda q, o: o.vm_capable),
        QField("drained", "Drained", "bool", "true if no new instances go to the node",
               lambda q, o: o.drained),
        QField("offline", "Offline", "bool", "true if the node is out of service (offline)",
               lambda q, o: o.offline),
        # Ganeti knows the power state only through an out-of-band program; cardume has none
        QField("powered", "Powered", "bool",
               "power state as an out-of-band program reports it (none here: unavailable)",
               lambda q, o: UNAVAIL),
        QField("role", "Role", "text",
               "one letter: M master, C master candidate, R regular, D drained, O offline",
               lambda q, o: common.node_role(q.cfg, o)),
        QField("group", "Group", "text", "the node's group", lambda q, o: q.cfg.groups[o.group].name
               if o.group in q.cfg.groups else o.group),
        QField("group.uuid", "GroupUUID", "text", "UUID of the node's group",
               lambda q, o: o.group),
        QField("ndparams", "NodeParameters", "other",
               "node parameters in effect (cluster, then group, then node)",
               lambda q, o: _fill_nd(q, o)),
        QField("custom_ndparams", "CustomNodeParameters", "other",
               "node parameters set on this node itself", lambda q, o: dict(o.ndparams)),
        QField("hv_state", "HypervisorState", "other",
               "hypervisor resource state (not tracked: unavailable)", lambda q, o: UNAVAIL),
        QField("disk_state", "DiskState", "other",
               "storage resource state (not tracked: unavailable)", lambda q, o: UNAVAIL),
        QField("port", "Port", "number", "TCP port of the node daemon", lambda q, o: o.port),
        QField("pinst_cnt", "Pinst", "number", "how many instances have this primary node",
               lambda q, o: len(q.instances(o)[0])),
        QField("sinst_cnt", "Sinst", "number", "how many instances have this secondary node",
               lambda q, o: len(q.instances(o)[1])),
        QField("pinst_list", "PriInstances", "other", "instances with this primary node",
               lambda q, o: q.instances(o)[0]),
        QField("sinst_list", "SecInstances", "other", "instances with this secondary node",
               lambda q, o: q.instances(o)[1]),
        _reported("mtotal", "MTotal", "unit", "physical memory of the node", "memory_total"),
        _reported("mnode", "MNode", "unit", "memory the node's own system uses", "memory_dom0"),
        _reported("mfree", "MFree", "unit", "memory left for new instances", "memory_free"),
        QField("dtotal", "DTotal", "unit", "size of the storage for instance disks",
               lambda q, o: n.storage(q, o, "total"), live=True),
        QField("dfree", "DFree", "unit", "free space in the storage for instance disks",
               lambda q, o: n.storage(q, o, "free"), live=True),
        QField("sptotal", "SpTotal", "number",
               "spindles of the volume group (counted with exclusive storage only)",
               lambda q, o: n.spindles(q, o, "spindles_total"), live=True),
        QField("spfree", "SpFree", "number",
               "spindles not yet used (counted with exclusive storage only)",
               lambda q, o: n.spindles(q, o, "spindles_free"), live=True),
        _reported("ctotal", "CTotal", "number", "logical CPUs of the node", "cpu_total"),
        _reported("cnodes", "CNodes", "number", "NUMA nodes, if the hypervisor tells",
                  "cpu_nodes"),
        _reported("csockets", "CSockets", "number", "CPU sockets, if the hypervisor tells",
                  "cpu_sockets"),
        _reported("cnos", "CNOs", "number", "logical CPUs kept by the node's own system",
                  "cpu_dom0"),
        _reported("bootid", "BootID", "text",
                  "identifier that changes at every boot: a change means the node rebooted",
                  "bootid"),
        _reported("version", "Version", "text", "software version of the node daemon",
                  "version"),
        _reported("hypervisors", "Hypervisors", "other", "hypervisors the node can run",
                  "hypervisors"),
    ]
    fields += ndparam_fields(_fill_nd)
    return fields + common_fields("node")


#: Titles and kinds of the ndp/* fields, as Ganeti shows them (others: titled by name).
NDP_FIELDS = {
    "cpu_speed": ("ndp/cpu_speed", "float"),
    "exclusive_storage": ("ExclusiveStorage", "bool"),
    "oob_program": ("OutOfBandProgram", "other"),
    "ovs": ("OpenvSwitch", "bool"),
    "ovs_link": ("OpenvSwitchLink", "other"),
    "ovs_name": ("OpenvSwitchName", "other"),
    "spindle_count": ("SpindleCount", "number"),
    "ssh_port": ("ndp/ssh_port", "number"),
}


def ndparam_fields(filled: Getter) -> list[QField]:
    """One ndp/KEY field per node parameter, read from ``filled`` (the parameters in effect)."""
    def getter(key: str) -> Getter:
        return lambda q, o: filled(q, o).get(key, UNAVAIL)
    return [QField(f"ndp/{key}", title, kind, f"node parameter {key} in effect", getter(key))
            for key, (title, kind) in NDP_FIELDS.items()]


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
        QField("name", "Group", "text", "name of the group", lambda q, o: o.name),
        QField("alloc_policy", "AllocPolicy", "text",
               "whether allocations may use the group (preferred, last_resort, unallocable)",
               lambda q, o: o.alloc_policy),
        QField("node_cnt", "Nodes", "number", "how many nodes the group has",
               lambda q, o: len(members(q, o))),
        QField("node_list", "NodeList", "other", "the group's nodes", members),
        QField("pinst_cnt", "Instances", "number",
               "how many instances have their primary node in the group",
               lambda q, o: len(instances(q, o))),
        QField("pinst_list", "InstanceList", "other",
               "instances whose primary node is in the group", instances),
        QField("ndparams", "NDParams", "other",
               "node parameters in effect for the group (cluster, then group)",
               _fill_group_nd),
        QField("custom_ndparams", "CustomNDParams", "other",
               "node parameters set on the group itself", lambda q, o: dict(o.ndparams)),
        QField("diskparams", "DiskParameters", "other",
               "disk parameters in effect, per disk template (cluster, then group)",
               _fill_group_disk),
        QField("custom_diskparams", "CustomDiskParameters", "other",
               "disk parameters set on the group itself", lambda q, o: dict(o.diskparams)),
        QField("ipolicy", "InstancePolicy", "other",
               "instance policy in effect (cluster, then group)",
               lambda q, o: _fill_group_ipolicy(q, o)),
        QField("custom_ipolicy", "CustomInstancePolicy", "other",
               "instance policy set on the group itself", lambda q, o: dict(o.ipolicy)),
        *ndparam_fields(_fill_group_nd),
    ] + common_fields("group")


def _fill_group_nd(q: Any, group: Any) -> dict[str, Any]:
    from cardume import objects
    return objects.fill_ndparams(q.cfg.get_cluster(), group)


def _fill_group_disk(q: Any, group: Any) -> dict[str, Any]:
    from cardume import objects
    cluster = q.cfg.get_cluster()
    return {template: objects.fill_diskparams(cluster, group, template)
            for template in sorted(constants.DISK_DT_DEFAULTS)}


def _fill_group_ipolicy(q: Any, group: Any) -> dict[str, Any]:
    from cardume import objects
    return objects.fill_ipolicy(q.cfg.get_cluster(), group)
