"""The network field table: Ganeti 3.0's names, titles and kinds (``gnt-network
list-fields``). Pool figures come from the network's external reservations and the NICs on
it (cmdlib/network_nics.py), computed once per network and query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cardume.cmdlib import network_nics as nn
from cardume.master.fields import UNAVAIL, QField, common_fields
from cardume.rules.addresspool import AddressPool

if TYPE_CHECKING:
    from cardume.master.view import MasterView


class NetworkQuery:
    """Context of a network query: the config, and each network's pool once built."""

    def __init__(self, daemon: MasterView) -> None:
        self.cfg = daemon.cfg
        self._pools: dict[str, AddressPool] = {}

    def pool(self, network: Any) -> AddressPool:
        pool = self._pools.get(network.uuid)
        if pool is None:
            pool = self._pools[network.uuid] = nn.pool_of(self.cfg, network)
        return pool


def _or_unavail(attr: str) -> Any:
    def get(q: Any, o: Any) -> Any:
        value = getattr(o, attr)
        return UNAVAIL if value is None else value
    return get


def _group_list(q: Any, o: Any) -> list[list[str]]:
    """[group name, NIC mode, NIC link, VLAN] of each connection."""
    return [[g.name, str(g.networks[o.uuid].get("mode", "")),
             str(g.networks[o.uuid].get("link", "")), str(g.networks[o.uuid].get("vlan", ""))]
            for g in nn.groups_of(q.cfg, o)]


def _inst_list(q: Any, o: Any) -> list[str]:
    return sorted({inst.name for inst, _ in nn.users(q.cfg, o)})


def network_fields() -> list[QField]:
    return [
        QField("name", "Network", "text", "name of the network", lambda q, o: o.name),
        QField("network", "Subnet", "text", "the IPv4 subnet, CIDR", lambda q, o: o.network),
        QField("gateway", "Gateway", "other", "the IPv4 gateway", _or_unavail("gateway")),
        QField("network6", "IPv6Subnet", "other", "the IPv6 subnet, CIDR",
               _or_unavail("network6")),
        QField("gateway6", "IPv6Gateway", "other", "the IPv6 gateway",
               _or_unavail("gateway6")),
        QField("mac_prefix", "MacPrefix", "other",
               "first three bytes of the MACs of the network's NICs",
               _or_unavail("mac_prefix")),
        QField("free_count", "FreeCount", "number", "how many addresses of the pool are free",
               lambda q, o: q.pool(o).free_count()),
        QField("reserved_count", "ReservedCount", "number",
               "how many addresses are taken (by NICs or reserved)",
               lambda q, o: q.pool(o).reserved_count()),
        QField("map", "Map", "text", "one character per address: X taken, . free",
               lambda q, o: q.pool(o).usage_map()),
        QField("external_reservations", "ExternalReservations", "text",
               "addresses reserved outside of instances (gateway, network, broadcast ...)",
               lambda q, o: ", ".join(q.pool(o).external_addresses())),
        QField("group_cnt", "NodeGroups", "number", "how many node groups it is connected to",
               lambda q, o: len(nn.groups_of(q.cfg, o))),
        QField("group_list", "GroupList", "other",
               "node groups it is connected to, with NIC mode, link and VLAN", _group_list),
        QField("inst_cnt", "Instances", "number", "how many instances have a NIC on it",
               lambda q, o: len(_inst_list(q, o))),
        QField("inst_list", "InstanceList", "other", "instances with a NIC on it", _inst_list),
    ] + [f if f.name != "tags" else QField("tags", "Tags", "other", "the network's tags",
                                           f.get) for f in common_fields("network")]


def list_networks(daemon: MasterView, names: list[str] | None) -> tuple[list[Any], Any]:
    """The networks a query lists (those named, or all in name order) and its context."""
    cfg = daemon.cfg
    found = ([cfg.expand_network(n) for n in names] if names
             else sorted(cfg.networks.values(), key=lambda n: n.name))
    return found, NetworkQuery(daemon)
