"""Free loopback ranges for local clusters: vcluster, the integration tests and the
benchmarks each look for a run of addresses nobody listens on, in their own part of
127.0.0.0/8 (see the callers for which)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator


def port_free(ip: str, port: int) -> bool:
    """Nobody listens on ip:port (bound as the daemons bind, SO_REUSEADDR: a port whose
    last connections linger in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def free_ranges(bases: Iterable[str], count: int, port: int) -> Iterator[str]:
    """Each base address whose ``count`` addresses from it are all free on ``port``."""
    for base in bases:
        first = ipaddress.IPv4Address(base)
        if all(port_free(str(first + i), port) for i in range(count)):
            yield base
