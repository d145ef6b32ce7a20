"""A learning Ethernet switch for QA nodes, over UDP on 127.0.0.1.

Every node's qemu uses ``-netdev socket,udp=127.0.0.1:HUB,localaddr=127.0.0.1:PORT``: each
datagram is one Ethernet frame. The switch learns which port a source MAC address uses and
floods frames for unknown or broadcast destinations to all the other ports. Run as
``python3 hub.py HUB_PORT NODE_PORT...``; it stays on loopback and runs until killed.
"""

from __future__ import annotations

import socket
import sys


def serve(hub_port: int, node_ports: list[int]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", hub_port))
    ports = [("127.0.0.1", p) for p in node_ports]
    where: dict[bytes, tuple[str, int]] = {}
    while True:
        frame, src = sock.recvfrom(65536)
        if len(frame) < 14 or src not in ports:
            continue
        where[frame[6:12]] = src
        dst = where.get(frame[0:6])
        targets = [dst] if dst is not None and not frame[0] & 1 else ports
        for addr in targets:
            if addr != src:
                try:
                    sock.sendto(frame, addr)
                except OSError:
                    pass


if __name__ == "__main__":
    serve(int(sys.argv[1]), [int(p) for p in sys.argv[2:]])
