"""IPv4 address pools of networks, kept as Ganeti keeps them: one character per address of
the subnet ("1" taken, "0" free), in two maps. The external map holds what the
administrator reserved (``--add-reserved-ips``), the gateway, and the network and broadcast
addresses; the used map holds the addresses instances' NICs have.

Pure: validation with :mod:`ipaddress`, no config, no I/O. The master builds a pool from a
network object and the NICs on it (see cmdlib/network_nics.py).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from cardume import errors

#: Ganeti's bounds: a pool of a /16 at most (65,536 addresses), and of a /30 at least.
MIN_PREFIX = 16
MAX_PREFIX = 30
#: Addresses per line of the usage map ``gnt-network info`` prints.
MAP_WIDTH = 64

_MAC_PREFIX_RE = re.compile(r"^[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$")


def parse_network(cidr: str, name: str = "") -> ipaddress.IPv4Network:
    """An IPv4 subnet in CIDR notation that a pool can be made of."""
    try:
        net = ipaddress.IPv4Network(str(cidr), strict=True)
    except ValueError as err:
        raise errors.WrongInput(f"invalid IPv4 network '{cidr}': {err} "
                                "(expected CIDR notation such as 192.0.2.0/24)") from None
    if net.prefixlen < MIN_PREFIX:
        raise errors.WrongInput(f"network '{cidr}'{_of(name)} has {net.num_addresses} "
                                f"addresses: at most a /{MIN_PREFIX} is supported")
    if net.prefixlen > MAX_PREFIX:
        raise errors.WrongInput(f"network '{cidr}'{_of(name)} has {net.num_addresses} "
                                f"address(es): at least a /{MAX_PREFIX} is needed")
    return net


def parse_network6(cidr: str) -> ipaddress.IPv6Network:
    try:
        return ipaddress.IPv6Network(str(cidr), strict=True)
    except ValueError as err:
        raise errors.WrongInput(f"invalid IPv6 network '{cidr}': {err} "
                                "(expected CIDR notation such as 2001:db8::/64)") from None


def parse_address(ip: str, family: int = 4) -> str:
    """A single address of the family, in its canonical text."""
    try:
        addr = ipaddress.ip_address(str(ip).strip())
    except ValueError:
        raise errors.WrongInput(f"invalid IP address '{ip}'") from None
    if addr.version != family:
        raise errors.WrongInput(f"'{ip}' is not an IPv{family} address")
    return str(addr)


def check_mac_prefix(prefix: str) -> str:
    """Ganeti's MAC prefix: three hex bytes, XX:XX:XX."""
    text = str(prefix).strip().lower()
    if not _MAC_PREFIX_RE.match(text):
        raise errors.WrongInput(f"invalid MAC address prefix '{prefix}' (expected XX:XX:XX, "
                                "three hexadecimal bytes)")
    return text


def _of(name: str) -> str:
    return f" of '{name}'" if name else ""


class AddressPool:
    """The addresses of one IPv4 subnet: externally reserved, used, free."""

    def __init__(self, network: str, ext_reservations: str = "",
                 used: Iterable[str] = ()) -> None:
        self.net = ipaddress.IPv4Network(network, strict=True)
        self.size = self.net.num_addresses
        self.ext = bytearray(_bits(ext_reservations, self.size))
        self.used = bytearray(b"0" * self.size)
        for ip in used:
            if self.contains(ip):
                self.used[self.index(ip)] = ord("1")

    @classmethod
    def new(cls, network: str, gateway: str | None = None,
            reserved: Iterable[str] = ()) -> AddressPool:
        """A fresh pool: network, broadcast and gateway addresses externally reserved."""
        pool = cls(network)
        pool.ext[0] = pool.ext[-1] = ord("1")
        for ip in ([gateway] if gateway else []) + list(reserved):
            pool.ext[pool.index(ip)] = ord("1")
        return pool

    # --- addresses ----------------------------------------------------------------------

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.IPv4Address(ip) in self.net
        except ValueError:
            return False

    def index(self, ip: str) -> int:
        """The address's position in the maps; an address outside is refused by name."""
        if not self.contains(ip):
            raise errors.WrongInput(f"{self.net} does not contain {ip}")
        return int(ipaddress.IPv4Address(ip)) - int(self.net.network_address)

    def address(self, index: int) -> str:
        return str(self.net.network_address + index)

    def is_reserved(self, ip: str) -> bool:
        return self.ext[self.index(ip)] == ord("1")

    def is_used(self, ip: str) -> bool:
        return self.used[self.index(ip)] == ord("1")

    def is_taken(self, ip: str) -> bool:
        index = self.index(ip)
        return self.ext[index] == ord("1") or self.used[index] == ord("1")

    # --- changes ------------------------------------------------------------------------

    def reserve(self, ip: str, external: bool = False) -> None:
        """Mark an address taken (by an instance, or externally); refused when it is."""
        index = self.index(ip)
        if self.ext[index] == ord("1"):
            raise errors.AlreadyExists(f"IP address {ip} is externally reserved in {self.net}")
        target = self.ext if external else self.used
        if self.used[index] == ord("1"):
            raise errors.AlreadyExists(f"IP address {ip} is already in use in {self.net}")
        target[index] = ord("1")

    def release(self, ip: str, external: bool = False) -> None:
        index = self.index(ip)
        target = self.ext if external else self.used
        if target[index] != ord("1"):
            what = "externally reserved" if external else "in use"
            raise errors.WrongInput(f"IP address {ip} is not {what} in {self.net}")
        target[index] = ord("0")

    def first_free(self, skip: Iterable[str] = ()) -> str | None:
        """The lowest free address not in ``skip`` (addresses other jobs hold), or None."""
        held = {self.index(ip) for ip in skip if self.contains(ip)}
        for index in range(self.size):
            if self.ext[index] != ord("1") and self.used[index] != ord("1") \
                    and index not in held:
                return self.address(index)
        return None

    # --- reports ------------------------------------------------------------------------

    @property
    def ext_map(self) -> str:
        return self.ext.decode()

    @property
    def used_map(self) -> str:
        return self.used.decode()

    def reserved_count(self) -> int:
        return sum(1 for e, u in zip(self.ext, self.used, strict=True)
                   if e == ord("1") or u == ord("1"))

    def free_count(self) -> int:
        return self.size - self.reserved_count()

    def external_addresses(self) -> list[str]:
        return [self.address(i) for i, bit in enumerate(self.ext) if bit == ord("1")]

    def usage_map(self) -> str:
        """One character per address: X taken (used or reserved), . free."""
        return "".join("X" if e == ord("1") or u == ord("1") else "."
                       for e, u in zip(self.ext, self.used, strict=True))

    def usage_lines(self) -> list[str]:
        """The map as gnt-network info prints it: 64 addresses a line, first and last index
        of each line around it."""
        text = self.usage_map()
        return [f"{start:>9} {text[start:start + MAP_WIDTH]:<{MAP_WIDTH}} "
                f"{start + MAP_WIDTH - 1}" for start in range(0, len(text), MAP_WIDTH)]


def _bits(text: str, size: int) -> bytes:
    """A stored map as bytes of b'0'/b'1', the subnet's length (an empty one: all free)."""
    if not text:
        return b"0" * size
    if len(text) != size or set(text) - {"0", "1"}:
        raise errors.InternalError(f"address map of {size} addresses is damaged "
                                        f"(length {len(text)})")
    return text.encode()
