"""First QA stage: the virtual nodes have real LVM, DRBD 8.4, a network and cardume."""

from __future__ import annotations

import re

import pytest
from qaharness.vm import Cluster

pytestmark = pytest.mark.qa


def test_lvm_on_the_data_disk(qa_cluster: Cluster) -> None:
    for node in qa_cluster.nodes:
        # the cluster fixture (qaharness/cardume.py) may have made the volume group already
        node.run("vgs xenvg >/dev/null 2>&1 || "
                 "{ pvcreate -q /dev/qa-data && vgcreate -q xenvg /dev/qa-data; }", check=True)
        node.run("lvcreate -q -y -n qa-test -L 64M xenvg", check=True)
        res = node.run("lvs --noheadings --units m -o lv_name,lv_size xenvg", check=True)
        assert re.search(r"qa-test\s+64\.00m", res.out), res.out
        assert node.run("test -b /dev/xenvg/qa-test").ok
        node.run("lvremove -q -y xenvg/qa-test", check=True)


def test_drbd_84_module(qa_cluster: Cluster) -> None:
    for node in qa_cluster.nodes:
        node.run("modprobe drbd", check=True)
        res = node.run("cat /proc/drbd", check=True)
        assert re.search(r"^version: 8\.4\.\d+", res.out, re.M), res.out


def test_nodes_reach_each_other(qa_cluster: Cluster) -> None:
    nodes = qa_cluster.nodes
    for node in nodes:
        for peer in nodes:
            if peer is not node:
                res = node.run(f"busybox ping -c 1 -W 5 {peer.ip}")
                assert res.ok, f"{node.name} -> {peer.name}: {res.out}{res.err}"
    # A TCP connection, not only ICMP: the first node serves, the second connects.
    server, client = nodes[0], nodes[1]
    serve = ("import socket; s = socket.create_server(('0.0.0.0', 7777)); c, _ = s.accept(); "
             "c.sendall(b'hello-from-' + socket.gethostname().encode()); c.close()")
    server.run(f'python3 -c "{serve}" >/dev/null 2>&1 &', check=True)
    connect = (f"import socket, time\nfor i in range(50):\n  try:\n"
               f"    c = socket.create_connection(('{server.ip}', 7777), 5); break\n"
               f"  except OSError: time.sleep(0.2)\nprint(c.recv(100).decode())")
    res = client.run("python3 -", input=connect, timeout=60)
    assert "hello-from-node1" in res.out, res.out + res.err


def test_cardume_imports(qa_cluster: Cluster) -> None:
    for node in qa_cluster.nodes:
        res = node.run("python3 -c 'import cardume, cryptography; print(cardume.__file__)'",
                       check=True)
        assert "dist-packages/cardume" in res.out
        node.run("python3 -c 'import cardume.cli.main, cardume.node.daemon'", check=True)
        node.run("test -x /usr/local/bin/gnt-cluster", check=True)
