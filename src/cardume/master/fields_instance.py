"""The instance field table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cardume import constants
from cardume.master.fields import NODATA, OFFLINE, UNAVAIL, Getter, QField, common_fields

if TYPE_CHECKING:
    from cardume.master.view import MasterView


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


def instance_fields() -> list[QField]:
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
    return fields + common_fields()


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

