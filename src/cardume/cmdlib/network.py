"""Logical units for networks: add, remove, modify, connect, disconnect, rename.

A network is configuration only: its subnet, gateways, MAC prefix and address pool, and
its connections to node groups (NodeGroup.networks {network uuid: {mode, link, vlan}}).
cardume never configures an address on a node for it.
"""

from __future__ import annotations

import re
from typing import Any

from cardume import errors, objects, opcodes
from cardume.cmdlib import common
from cardume.cmdlib import network_nics as nn
from cardume.cmdlib.base import ALL, LogicalUnit, register
from cardume.jobs import locks
from cardume.rules import addresspool
from cardume.rules.addresspool import AddressPool

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,62}")


def check_network_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise errors.WrongInput(f"invalid network name {str(name)[:70]!r}: expected up to 63 "
                                "ASCII letters, digits and '_.+-' (not starting with '.', "
                                "'+' or '-')")
    return name


def _unset(value: str | None) -> bool:
    return isinstance(value, str) and value.lower() == "none"


def _gateway(net: str, gateway: str) -> str:
    ip = addresspool.parse_address(gateway)
    if not AddressPool(net).contains(ip):
        raise errors.WrongInput(f"gateway {ip} is not in the network's subnet {net}")
    return ip


def _gateway6(network6: str | None, gateway6: str) -> str:
    ip = addresspool.parse_address(gateway6, 6)
    if network6 is not None:
        import ipaddress
        if ipaddress.IPv6Address(ip) not in ipaddress.IPv6Network(network6):
            raise errors.WrongInput(f"IPv6 gateway {ip} is not in the subnet {network6}")
    return ip


@register
class LUNetworkAdd(LogicalUnit):
    OP = opcodes.OpNetworkAdd

    def check_arguments(self) -> None:
        op = self.op
        check_network_name(op.network_name)
        self.net = str(addresspool.parse_network(op.network, op.network_name))
        self.gateway = _gateway(self.net, op.gateway) if op.gateway else None
        self.network6 = str(addresspool.parse_network6(op.network6)) if op.network6 else None
        self.gateway6 = _gateway6(self.network6, op.gateway6) if op.gateway6 else None
        self.mac_prefix = addresspool.check_mac_prefix(op.mac_prefix) if op.mac_prefix \
            else None
        pool = AddressPool(self.net)
        self.reserved = []
        for text in op.add_reserved_ips or []:
            ip = addresspool.parse_address(text)
            if not pool.contains(ip):
                raise errors.WrongInput(f"cannot reserve IP address {ip}: {self.net} does "
                                        f"not contain it")
            self.reserved.append(ip)
        common.check_tags(list(op.tags))

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NETWORK: ([self.op.network_name], False)}

    async def check_prereq(self) -> None:
        found = self.cfg.find_network(self.op.network_name)
        if found is not None and found.name == self.op.network_name:
            raise errors.AlreadyExists(f"network '{found.name}' already exists "
                                       f"(UUID {found.uuid})")

    async def exec(self) -> str:
        pool = AddressPool.new(self.net, self.gateway, self.reserved)
        network = objects.Network(
            name=self.op.network_name, network=self.net, gateway=self.gateway,
            network6=self.network6, gateway6=self.gateway6, mac_prefix=self.mac_prefix,
            ext_reservations=pool.ext_map, tags=sorted(set(self.op.tags)))
        await self.cfg.commit(add=[network])
        return network.uuid


class _NetworkLU(LogicalUnit):
    """A unit acting on one existing network, locked exclusively."""

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NETWORK: ([self.op.network_name], False)}

    async def check_prereq(self) -> None:
        self.network = self.cfg.expand_network(self.op.network_name)


@register
class LUNetworkRemove(_NetworkLU):
    OP = opcodes.OpNetworkRemove

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODEGROUP: (ALL, True),
                locks.LEVEL_NETWORK: ([self.op.network_name], False)}

    async def check_prereq(self) -> None:
        await super().check_prereq()
        groups = nn.groups_of(self.cfg, self.network)
        if groups:
            raise errors.WrongState(
                f"network '{self.network.name}' is still connected to node group(s) "
                f"{', '.join(g.name for g in groups)}",
                f"disconnect it first: gnt-network disconnect {self.network.name}")
        used = nn.users(self.cfg, self.network)
        if used:
            raise errors.WrongState(
                f"network '{self.network.name}' is still used by instance(s) "
                f"{', '.join(sorted({i.name for i, _ in used}))}")

    async def exec(self) -> None:
        await self.cfg.commit(remove=[self.network])


@register
class LUNetworkRename(_NetworkLU):
    OP = opcodes.OpNetworkRename

    def check_arguments(self) -> None:
        check_network_name(self.op.new_name)

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NETWORK: ([self.op.network_name, self.op.new_name], False)}

    async def check_prereq(self) -> None:
        await super().check_prereq()
        found = self.cfg.find_network(self.op.new_name)
        if found is not None and found.name == self.op.new_name:
            raise errors.AlreadyExists(f"network '{self.op.new_name}' already exists")

    async def exec(self) -> str:
        network = self.cfg.edit(self.network)
        network.name = self.op.new_name
        await self.cfg.commit(update=[network])
        return network.name


@register
class LUNetworkSetParams(_NetworkLU):
    OP = opcodes.OpNetworkSetParams

    def check_arguments(self) -> None:
        op = self.op
        if all(v is None for v in (op.gateway, op.network6, op.gateway6, op.mac_prefix,
                                   op.add_reserved_ips, op.remove_reserved_ips)):
            raise errors.WrongInput("please give at least one modification")
        if op.mac_prefix is not None and not _unset(op.mac_prefix):
            addresspool.check_mac_prefix(op.mac_prefix)
        if op.network6 is not None and not _unset(op.network6):
            addresspool.parse_network6(op.network6)
        for text in (op.add_reserved_ips or []) + (op.remove_reserved_ips or []):
            addresspool.parse_address(text)

    async def exec(self) -> None:
        op = self.op
        network = self.cfg.edit(self.network)
        pool = nn.pool_of(self.cfg, network)
        if op.gateway is not None:
            self._set_gateway(network, pool, op.gateway)
        if op.network6 is not None:
            network.network6 = None if _unset(op.network6) else \
                str(addresspool.parse_network6(op.network6))
        if op.gateway6 is not None:
            network.gateway6 = None if _unset(op.gateway6) else \
                _gateway6(network.network6, op.gateway6)
        if op.mac_prefix is not None:
            network.mac_prefix = None if _unset(op.mac_prefix) else \
                addresspool.check_mac_prefix(op.mac_prefix)
        for text in op.add_reserved_ips or []:
            ip = addresspool.parse_address(text)
            problem = self._why_not_reserve(network, pool, ip)
            if problem:
                self.log_warning(f"Cannot reserve IP address {ip}: {problem}")
            else:
                pool.reserve(ip, external=True)
        for text in op.remove_reserved_ips or []:
            ip = addresspool.parse_address(text)
            if ip == network.gateway:
                self.log_warning("Cannot unreserve the gateway's IP address")
            elif not pool.contains(ip) or not pool.is_reserved(ip):
                self.log_warning(f"Cannot release IP address {ip}: it is not externally "
                                 "reserved")
            else:
                pool.release(ip, external=True)
        network.ext_reservations = pool.ext_map
        await self.cfg.commit(update=[network])

    def _set_gateway(self, network: objects.Network, pool: AddressPool, value: str) -> None:
        new = None if _unset(value) else _gateway(network.network, value)
        if new is not None and new != network.gateway:
            if pool.is_used(new):
                owner = nn.owner_of(self.cfg, network, new)
                raise errors.AlreadyExists(f"gateway IP address {new} is already used by "
                                           f"instance {owner}")
            if pool.is_reserved(new):
                self.log_warning(f"Gateway IP address {new} is already externally reserved")
        old = network.gateway
        if old is not None and old != new and pool.is_reserved(old):
            pool.release(old, external=True)
        if new is not None and not pool.is_reserved(new):
            pool.reserve(new, external=True)
        network.gateway = new

    def _why_not_reserve(self, network: objects.Network, pool: AddressPool,
                         ip: str) -> str | None:
        if not pool.contains(ip):
            return f"{network.network} does not contain {ip}"
        if pool.is_reserved(ip):
            return f"IP {ip} is already externally reserved"
        if pool.is_used(ip):
            return f"IP {ip} is used by instance {nn.owner_of(self.cfg, network, ip)}"
        return None


@register
class LUNetworkConnect(_NetworkLU):
    OP = opcodes.OpNetworkConnect

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODEGROUP: ([self.op.group_name], False),
                locks.LEVEL_NETWORK: ([self.op.network_name], True)}

    async def check_prereq(self) -> None:
        await super().check_prereq()
        self.group = self.cfg.expand_group(self.op.group_name)
        self.connected = self.network.uuid in self.group.networks
        if self.connected:
            self.log_warning(f"Network '{self.network.name}' is already connected to node "
                             f"group '{self.group.name}'")
            return
        if self.op.conflicts_check:
            pool = AddressPool(self.network.network)
            clashes = [f"{inst.name} nic{idx}/{nic.ip}"
                       for inst in _instances_in(self.cfg, self.group)
                       for idx, nic in enumerate(inst.nics)
                       if nic.ip and nic.network != self.network.uuid and pool.contains(nic.ip)]
            if clashes:
                raise errors.WrongState(
                    f"NICs in node group '{self.group.name}' have addresses of network "
                    f"'{self.network.name}' without being on it: {', '.join(clashes)}",
                    "remove or modify those NICs, or use --no-conflicts-check")

    async def exec(self) -> None:
        if self.connected:
            return
        group = self.cfg.edit(self.group)
        group.networks[self.network.uuid] = {"mode": self.op.network_mode,
                                             "link": self.op.network_link,
                                             "vlan": self.op.network_vlan or ""}
        await self.cfg.commit(update=[group])


@register
class LUNetworkDisconnect(_NetworkLU):
    OP = opcodes.OpNetworkDisconnect

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODEGROUP: ([self.op.group_name], False),
                locks.LEVEL_NETWORK: ([self.op.network_name], True)}

    async def check_prereq(self) -> None:
        await super().check_prereq()
        self.group = self.cfg.expand_group(self.op.group_name)
        self.connected = self.network.uuid in self.group.networks
        if not self.connected:
            self.log_warning(f"Network '{self.network.name}' is not connected to node group "
                             f"'{self.group.name}'")
            return
        in_use = [f"{inst.name} nic{idx}/{nic.ip or '-'}"
                  for inst in _instances_in(self.cfg, self.group)
                  for idx, nic in enumerate(inst.nics) if nic.network == self.network.uuid]
        if in_use:
            raise errors.WrongState(
                f"network '{self.network.name}' is in use in node group '{self.group.name}': "
                f"{', '.join(in_use)}", "remove or modify those NICs first")

    async def exec(self) -> None:
        if not self.connected:
            return
        group = self.cfg.edit(self.group)
        group.networks.pop(self.network.uuid, None)
        await self.cfg.commit(update=[group])


def _instances_in(cfg: Any, group: objects.NodeGroup) -> list[objects.Instance]:
    """Instances with their primary node in the group, in name order."""
    return sorted((i for i in cfg.instances.values()
                   if getattr(cfg.nodes.get(i.primary_node), "group", None) == group.uuid),
                  key=lambda i: i.name)
