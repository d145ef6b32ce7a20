"""NICs on networks: the address pool a network's NICs draw from, and what a NIC on a
network takes from the network's connection to its node group (mode, link, VLAN).

Which addresses instances use is never stored apart from the NICs: a network's pool is
built from its external reservations and the addresses of the NICs on it, so removing an
instance or changing a NIC gives its address back with nothing else to update.

Between a job choosing an address (check_prereq) and committing the instance (exec) the
address is held for that job in memory (one table per master, as drbd.py holds ports and
minors), so that two creations running side by side never take the same one. A hold ends
when the address is in the config or when its job has finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cardume import constants, errors, objects
from cardume.rules.addresspool import AddressPool

if TYPE_CHECKING:
    from cardume.cmdlib.base import LogicalUnit
    from cardume.config.writer import ConfigWriter


def users(cfg: ConfigWriter, network: objects.Network) -> list[tuple[objects.Instance, int]]:
    """(instance, NIC index) of every NIC on the network, instances in name order."""
    found = []
    for inst in sorted(cfg.instances.values(), key=lambda i: i.name):
        for index, nic in enumerate(inst.nics):
            if nic.network == network.uuid:
                found.append((inst, index))
    return found


def pool_of(cfg: ConfigWriter, network: objects.Network) -> AddressPool:
    """The network's pool: its external reservations and the addresses its NICs have."""
    used = [nic.ip for inst in cfg.instances.values() for nic in inst.nics
            if nic.network == network.uuid and nic.ip]
    return AddressPool(network.network, network.ext_reservations, used)


def owner_of(cfg: ConfigWriter, network: objects.Network, ip: str) -> str | None:
    """The instance whose NIC on the network has the address, if any."""
    for inst in cfg.instances.values():
        for nic in inst.nics:
            if nic.network == network.uuid and nic.ip == ip:
                return inst.name
    return None


def groups_of(cfg: ConfigWriter, network: objects.Network) -> list[objects.NodeGroup]:
    return sorted((g for g in cfg.groups.values() if network.uuid in g.networks),
                  key=lambda g: g.name)


def network_name(cfg: ConfigWriter, uuid: str | None) -> str | None:
    network = cfg.networks.get(uuid) if uuid else None
    return network.name if network is not None else uuid


# --- addresses held by running jobs ---------------------------------------------------------

@dataclass
class _Hold:
    owner: Any  # the job (or, without one, the logical unit); dropped with the hold
    instance: str

    def alive(self, cfg: ConfigWriter, ip: str) -> bool:
        if getattr(self.owner, "status", None) in constants.JOBS_FINALIZED:
            return False
        return ip not in cfg.nic_ips  # committed: the config holds it now


def _holds(cfg: ConfigWriter) -> dict[tuple[str, str], _Hold]:
    found: dict[tuple[str, str], _Hold] | None = getattr(cfg, "ip_holds", None)
    if found is None:
        found = {}
        cfg.ip_holds = found  # type: ignore[attr-defined]
    return found


def held(cfg: ConfigWriter, network_uuid: str, lu: LogicalUnit | None = None) -> dict[str, str]:
    """Addresses of the network other jobs hold: {ip: instance name}; stale holds go."""
    table = _holds(cfg)
    mine = _owner(lu) if lu is not None else None
    result: dict[str, str] = {}
    for key, hold in list(table.items()):
        if not hold.alive(cfg, key[1]):
            del table[key]
        elif key[0] == network_uuid and hold.owner is not mine:
            result[key[1]] = hold.instance
    return result


def _owner(lu: LogicalUnit) -> Any:
    return lu.job if lu.job is not None else lu


def _hold(cfg: ConfigWriter, lu: LogicalUnit, network_uuid: str, ip: str,
          instance: str) -> None:
    _holds(cfg)[(network_uuid, ip)] = _Hold(_owner(lu), instance)


# --- NICs ---------------------------------------------------------------------------------

def assign_nic_ips(lu: LogicalUnit, cfg: ConfigWriter, group: objects.NodeGroup | None,
                   nics: list[dict[str, Any]], instance: str) -> list[tuple[str, str]]:
    """Resolve the networks of checked NIC specs (instance_common.check_nics) for an
    instance in ``group``: each NIC on a network gets the network's uuid, the connection's
    mode/link/vlan, and an address (``ip=pool``: the first free one; a given one: checked
    free). Returns the (network name, address) pairs taken; they are held for the job."""
    taken: list[tuple[str, str]] = []
    for index, spec in enumerate(nics):
        network = _network_for(cfg, spec, index)
        if network is None:
            _check_outside_networks(cfg, group, spec.get("ip"), index)
            continue
        _inherit(lu, cfg, group, network, spec, index)
        ip = take_address(lu, cfg, network, spec.get("ip"), index, instance,
                          also_held=[a for n, a in taken if n == network.name])
        spec["ip"] = ip
        if ip is not None:
            taken.append((network.name, ip))
    return taken


def change_nic(lu: LogicalUnit, cfg: ConfigWriter, group: objects.NodeGroup | None,
               inst: objects.Instance, nic: objects.NIC, params: dict[str, Any],
               spec: dict[str, Any]) -> None:
    """gnt-instance modify --net N:modify,network=..,ip=..: set the NIC's network, address
    (also written to ``spec``) and inherited parameters; its old address goes back to its
    pool with the commit."""
    network_uuid = nic.network
    if "network" in params:
        found = _network_for(cfg, spec, 0)
        network_uuid = found.uuid if found is not None else None
        nic.network = network_uuid
        if found is None:
            nic.nicparams = {k: v for k, v in nic.nicparams.items() if k != "vlan"}
    network = cfg.networks.get(network_uuid) if network_uuid else None
    ip = spec.get("ip") if "ip" in params else nic.ip
    if network is None:
        _check_outside_networks(cfg, group, ip, 0, inst.name)
        return
    if "network" in params:
        _inherit(lu, cfg, group, network, spec, 0)
        nic.nicparams = dict(spec["nicparams"])
    elif "mode" in params or "link" in params:
        raise errors.WrongInput(f"NIC {nic.name or nic.mac} is on network '{network.name}': "
                                "it takes its mode and link from the network's connection")
    if ip is not None and ip != "pool" and ip == nic.ip and "network" not in params:
        return  # the address it has
    nic.ip = None  # its own address is free to take again
    nic.ip = spec["ip"] = take_address(lu, cfg, network, ip, 0, inst.name, exclude=inst)


def take_address(lu: LogicalUnit, cfg: ConfigWriter, network: objects.Network,
                 ip: str | None, index: int, instance: str,
                 also_held: list[str] | None = None,
                 exclude: objects.Instance | None = None) -> str | None:
    """The address a NIC gets on the network: ``pool`` picks, an address is checked."""
    if ip is None:
        return None
    pool = pool_of(cfg, network) if exclude is None else _pool_without(cfg, network, exclude)
    others = held(cfg, network.uuid, lu)
    if ip == "pool":
        chosen = pool.first_free(skip=[*others, *(also_held or [])])
        if chosen is None:
            raise errors.InsufficientResources(
                f"no free address left in network '{network.name}' ({network.network}) "
                f"for NIC {index} of instance {instance}",
                f"see 'gnt-network info {network.name}'")
        lu.log_info(f"Chose IP {chosen} from network {network.name}")
    else:
        chosen = ip
        if not pool.contains(ip):
            raise errors.WrongInput(f"IP address {ip} of NIC {index} is not in network "
                                    f"'{network.name}' ({network.network})")
        if pool.is_reserved(ip):
            raise errors.AlreadyExists(f"IP address {ip} is reserved in network "
                                       f"'{network.name}' (gateway, network, broadcast or "
                                       "external reservation)")
        user = owner_of(cfg, network, ip) if exclude is None else _owner_except(
            cfg, network, ip, exclude)
        if user is not None:
            raise errors.AlreadyExists(f"IP address {ip} of network '{network.name}' is "
                                       f"already used by instance {user}")
        if ip in others or ip in (also_held or []):
            raise errors.AlreadyExists(f"IP address {ip} of network '{network.name}' is "
                                       f"being taken by instance {others.get(ip, instance)}")
    _hold(cfg, lu, network.uuid, chosen, instance)
    return chosen


def _pool_without(cfg: ConfigWriter, network: objects.Network,
                  inst: objects.Instance) -> AddressPool:
    used = [nic.ip for other in cfg.instances.values() if other.uuid != inst.uuid
            for nic in other.nics if nic.network == network.uuid and nic.ip]
    used += [nic.ip for nic in inst.nics if nic.network == network.uuid and nic.ip]
    return AddressPool(network.network, network.ext_reservations, used)


def _owner_except(cfg: ConfigWriter, network: objects.Network, ip: str,
                  inst: objects.Instance) -> str | None:
    for nic in inst.nics:
        if nic.network == network.uuid and nic.ip == ip:
            return inst.name
    for other in cfg.instances.values():
        if other.uuid != inst.uuid and any(n.network == network.uuid and n.ip == ip
                                           for n in other.nics):
            return other.name
    return None


def _network_for(cfg: ConfigWriter, spec: dict[str, Any],
                 index: int) -> objects.Network | None:
    name = spec.get("network")
    if name in (None, "", "none"):
        spec["network"] = None
        if spec.get("ip") == "pool":
            raise errors.WrongInput(f"NIC {index}: ip=pool needs a network "
                                    "(network=NAME, see 'gnt-network list')")
        return None
    network = cfg.expand_network(str(name))
    spec["network"] = network.uuid
    return network


def _inherit(lu: LogicalUnit, cfg: ConfigWriter, group: objects.NodeGroup | None,
             network: objects.Network, spec: dict[str, Any], index: int) -> None:
    """A NIC on a network takes the mode, link and VLAN of the network's connection to
    the instance's node group; giving them too is refused, as Ganeti does."""
    given = [k for k in ("mode", "link") if spec.get("nicparams", {}).get(k)]
    if given:
        raise errors.WrongInput(f"NIC {index}: a NIC on network '{network.name}' takes its "
                                f"{' and '.join(given)} from the network's connection to "
                                "the node group; don't give them")
    if group is None or network.uuid not in group.networks:
        where = f"node group '{group.name}'" if group is not None else "the node group"
        raise errors.WrongState(f"network '{network.name}' is not connected to {where}",
                                f"connect it with 'gnt-network connect {network.name} "
                                f"{group.name if group else 'GROUP'}'")
    params = dict(group.networks[network.uuid])
    spec["nicparams"] = {"mode": params.get("mode", ""), "link": params.get("link", ""),
                         "vlan": params.get("vlan", "")}
    lu.log_info(f"NIC/{index} inherits netparams ['{params.get('link', '')}', "
                f"'{params.get('mode', '')}', '{params.get('vlan', '')}']")


def _check_outside_networks(cfg: ConfigWriter, group: objects.NodeGroup | None,
                            ip: str | None, index: int, instance: str | None = None) -> None:
    """An address of a network connected to the group belongs to NICs on that network."""
    if not ip or ip == "pool" or group is None:
        return
    for uuid in group.networks:
        network = cfg.networks.get(uuid)
        if network is not None and AddressPool(network.network).contains(ip):
            raise errors.WrongInput(f"IP address {ip} of NIC {index} belongs to network "
                                    f"'{network.name}', but the NIC is not on it",
                                    f"add network={network.name} to the NIC")


def mac_prefix(cfg: ConfigWriter, spec: dict[str, Any]) -> str | None:
    """The MAC prefix of the NIC's network, when it has one (after assign_nic_ips)."""
    network = cfg.networks.get(spec.get("network") or "")
    return network.mac_prefix if network is not None else None
