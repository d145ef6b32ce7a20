"""The instance fields of disks and NICs: counts, per-device lists, and one field per device
index (``disk.size/0`` .. ``disk.size/15``, ``nic.mac/0`` .. ``nic.mac/7``, Ganeti's maxima).

A per-index field past the instance's last device is unavailable, and so is an optional
attribute the device does not have (a disk without a name, a NIC without an IP), as in Ganeti.
cardume has no spindle accounting, no Open vSwitch VLANs in use and no network objects yet:
their fields give what Ganeti gives on a cluster without them (spindles unset, VLAN and network
unavailable), from the same config values.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from cardume import constants
from cardume.master.fields import UNAVAIL, Getter, QField

#: Metadata volume of every drbd disk, counted in disk_usage (as Ganeti counts it).
DRBD_META_MIB = 128
_NO_NODE_SPACE = frozenset({constants.DT_DISKLESS, constants.DT_BLOCK})


def disk_usage(inst: Any) -> int:
    """MiB the instance's disks take on each of its nodes: a drbd disk adds its metadata
    volume; diskless and block-device disks take nothing cardume allocates."""
    total = 0
    for disk in inst.disks:
        if disk.dev_type == constants.DT_DRBD8:
            total += disk.size + DRBD_META_MIB
        elif disk.dev_type not in _NO_NODE_SPACE:
            total += disk.size
    return total


def bridge_of(params: dict[str, Any]) -> Any:
    """A NIC's bridge: its link, in bridged mode only."""
    return params.get("link") if params.get("mode") == "bridged" else None


def vlan_of(params: dict[str, Any]) -> Any:
    """A NIC's VLAN: only Open vSwitch NICs have one."""
    return params.get("vlan") if params.get("mode") == "openvswitch" else None


def network_name(q: Any, nic: Any) -> Any:
    """The name of a NIC's network (a NIC stores the network's uuid), None off networks."""
    if not nic.network:
        return None
    network = q.cfg.networks.get(nic.network)
    return network.name if network is not None else nic.network


def _network_name_at(index: int) -> Getter:
    def get(q: Any, o: Any) -> Any:
        if index >= len(o.nics):
            return UNAVAIL
        name = network_name(q, o.nics[index])
        return UNAVAIL if name is None else name
    return get


def _device(index: int, devices: Callable[[Any], list[Any]],
            value: Callable[[Any], Any]) -> Getter:
    def get(q: Any, o: Any) -> Any:
        found = devices(o)
        if index >= len(found):
            return UNAVAIL
        result = value(found[index])
        return UNAVAIL if result is None else result
    return get


def _nic_param(index: int, value: Callable[[dict[str, Any]], Any]) -> Getter:
    def get(q: Any, o: Any) -> Any:
        if index >= len(o.nics):
            return UNAVAIL
        result = value(q.nic_params(o)[index])
        return UNAVAIL if result is None else result
    return get


# attribute readers shared by the per-index fields (attrgetter: no Python frame per call)
_size, _spindles, _name, _uuid = (attrgetter(a) for a in ("size", "spindles", "name", "uuid"))
_ip, _mac, _network = (attrgetter(a) for a in ("ip", "mac", "network"))
_disks, _nics = attrgetter("disks"), attrgetter("nics")


def disk_fields() -> list[QField]:
    fields = [
        QField("disk_usage", "DiskUsage", "unit",
               "space the disks take on each node, metadata included (MiB)",
               lambda q, o: disk_usage(o)),
        QField("disk.count", "Disks", "number", "how many disks", lambda q, o: len(o.disks)),
        QField("disk.sizes", "Disk_sizes", "list", "size of each disk (MiB)",
               lambda q, o: [d.size for d in o.disks]),
        QField("disk.spindles", "Disk_spindles", "other", "spindles of each disk",
               lambda q, o: [d.spindles for d in o.disks]),
        QField("disk.names", "Disk_names", "other", "name of each disk",
               lambda q, o: [d.name for d in o.disks]),
        QField("disk.uuids", "Disk_UUIDs", "other", "UUID of each disk",
               lambda q, o: [d.uuid for d in o.disks]),
    ]
    for i in range(constants.MAX_DISKS):
        fields += [
            QField(f"disk.size/{i}", f"Disk/{i}", "unit", f"size of disk {i} (MiB)",
                   _device(i, _disks, _size)),
            QField(f"disk.spindles/{i}", f"DiskSpindles/{i}", "number",
                   f"spindles of disk {i}", _device(i, _disks, _spindles)),
            QField(f"disk.name/{i}", f"DiskName/{i}", "text", f"name of disk {i}",
                   _device(i, _disks, _name)),
            QField(f"disk.uuid/{i}", f"DiskUUID/{i}", "text", f"UUID of disk {i}",
                   _device(i, _disks, _uuid)),
        ]
    return fields


def nic_fields() -> list[QField]:
    fields = [
        QField("nic.count", "NICs", "number", "how many NICs", lambda q, o: len(o.nics)),
        QField("nic.macs", "NIC_MACs", "list", "MAC address of each NIC",
               lambda q, o: [n.mac for n in o.nics]),
        QField("nic.ips", "NIC_IPs", "list", "IP address of each NIC",
               lambda q, o: [n.ip for n in o.nics]),
        QField("nic.names", "NIC_Names", "other", "name of each NIC",
               lambda q, o: [n.name for n in o.nics]),
        QField("nic.uuids", "NIC_UUIDs", "other", "UUID of each NIC",
               lambda q, o: [n.uuid for n in o.nics]),
        QField("nic.modes", "NIC_modes", "list", "mode of each NIC",
               lambda q, o: [p.get("mode") for p in q.nic_params(o)]),
        QField("nic.links", "NIC_links", "list", "link of each NIC",
               lambda q, o: [p.get("link") for p in q.nic_params(o)]),
        QField("nic.vlans", "NIC_VLANs", "other",
               "VLAN of each NIC (none unless in openvswitch mode)",
               lambda q, o: [vlan_of(p) for p in q.nic_params(o)]),
        QField("nic.bridges", "NIC_bridges", "list",
               "bridge of each NIC (none unless in bridged mode)",
               lambda q, o: [bridge_of(p) for p in q.nic_params(o)]),
        QField("nic.networks", "NIC_networks", "list", "network of each NIC",
               lambda q, o: [n.network for n in o.nics]),
        QField("nic.networks.names", "NIC_networks_names", "other",
               "name of the network of each NIC",
               lambda q, o: [network_name(q, n) for n in o.nics]),
    ]
    for i in range(constants.MAX_NICS):
        fields += [
            QField(f"nic.ip/{i}", f"NicIP/{i}", "text", f"IP address of NIC {i}",
                   _device(i, _nics, _ip)),
            QField(f"nic.mac/{i}", f"NicMAC/{i}", "text", f"MAC address of NIC {i}",
                   _device(i, _nics, _mac)),
            QField(f"nic.name/{i}", f"NicName/{i}", "text", f"name of NIC {i}",
                   _device(i, _nics, _name)),
            QField(f"nic.uuid/{i}", f"NicUUID/{i}", "text", f"UUID of NIC {i}",
                   _device(i, _nics, _uuid)),
            QField(f"nic.mode/{i}", f"NicMode/{i}", "text", f"mode of NIC {i}",
                   _nic_param(i, lambda p: p.get("mode"))),
            QField(f"nic.link/{i}", f"NicLink/{i}", "text", f"link of NIC {i}",
                   _nic_param(i, lambda p: p.get("link"))),
            QField(f"nic.bridge/{i}", f"NicBridge/{i}", "text",
                   f"bridge of NIC {i} (bridged mode only)", _nic_param(i, bridge_of)),
            QField(f"nic.vlan/{i}", f"NicVLAN/{i}", "text",
                   f"VLAN of NIC {i} (openvswitch mode only)", _nic_param(i, vlan_of)),
            QField(f"nic.network/{i}", f"NicNetwork/{i}", "text", f"network of NIC {i}",
                   _device(i, _nics, _network)),
            QField(f"nic.network.name/{i}", f"NicNetworkName/{i}", "text",
                   f"name of the network of NIC {i}", _network_name_at(i)),
        ]
    return fields
