"""Name resolution, behind one seam: a cluster hosts file first, then /etc/hosts, then DNS.

Local clusters name their nodes in a hosts file of their own (``ROOT/hosts``) so that
``node1`` resolves to 127.0.0.11 without touching the machine's /etc/hosts.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from cardume import errors


@dataclass(frozen=True)
class Resolved:
    name: str  # the full name (first name on the hosts line, or the canonical DNS name)
    ip: str


def _parse_hosts(path: str) -> list[tuple[str, list[str]]]:
    entries: list[tuple[str, list[str]]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2:
                    entries.append((fields[0], fields[1:]))
    except OSError:
        pass
    return entries


class Resolver:
    def __init__(self, hosts_files: list[str] | None = None, use_dns: bool = True) -> None:
        self.hosts_files = [f for f in (hosts_files or []) if f]
        self.use_dns = use_dns

    def resolve(self, name: str) -> Resolved:
        if not name or len(name) > 253 or any(c.isspace() for c in name):
            raise errors.WrongInput(f"invalid host name {name!r}")
        try:
            ipaddress.ip_address(name)
            return Resolved(name, name)
        except ValueError:
            pass
        for path in [*self.hosts_files, "/etc/hosts"]:
            for ip, names in _parse_hosts(path):
                if name in names and ":" not in ip:
                    return Resolved(names[0], ip)
        if self.use_dns:
            try:
                infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM,
                                           0, socket.AI_CANONNAME)
            except (socket.gaierror, UnicodeError):
                infos = []
            if infos:
                canon = infos[0][3] or name
                return Resolved(canon, str(infos[0][4][0]))
        where = ", ".join([*self.hosts_files, "/etc/hosts", "DNS"])
        raise errors.ResolverError(f"name '{name}' does not resolve (looked in {where})")
