"""Second QA stage: a cardume cluster spanning the QA nodes, checked as an admin would."""

from __future__ import annotations

import pytest
from qaharness.cardume import CardumeCluster

pytestmark = pytest.mark.qa


def test_node_list_shows_every_node(qa_cardume: CardumeCluster) -> None:
    out = qa_cardume.gnt("gnt-node list --no-headers --separator=' ' -o name,role,pip")
    rows = {fields[0]: fields[1:] for fields in map(str.split, out.splitlines()) if fields}
    expected = {node.name: ["M" if node is qa_cardume.master else "C", node.ip]
                for node in qa_cardume.nodes}
    assert rows == expected, out


def test_cluster_verify(qa_cardume: CardumeCluster) -> None:
    # verify also compares every candidate's replica serial with the master's
    out = qa_cardume.gnt("gnt-cluster verify")
    assert "ERROR" not in out, out


def test_replica_serials_match(qa_cardume: CardumeCluster) -> None:
    query = ("import sqlite3; print(sqlite3.connect('file:/var/lib/cardume/config.db?mode=ro', "
             "uri=True).execute(\"SELECT value FROM meta WHERE key='serial'\").fetchone()[0])")
    serials = {node.name: node.run("python3 -", input=query, check=True).out.strip()
               for node in qa_cardume.nodes}
    assert len(set(serials.values())) == 1, serials


def test_debug_delay(qa_cardume: CardumeCluster) -> None:
    qa_cardume.gnt("gnt-debug delay 0")


def _instances(cc: CardumeCluster) -> list[list[str]]:
    out = cc.gnt("gnt-instance list --no-headers --separator=' ' -o name,pnode,os,status")
    return sorted(line.split() for line in out.splitlines() if line.strip())


def test_diskless_instance_lifecycle(qa_cardume: CardumeCluster) -> None:
    cc = qa_cardume
    os_list = cc.gnt("gnt-os list --no-headers")
    assert "qa-os+default" in os_list.split(), os_list
    # one instance on each node: the master drives both its own and a remote node daemon
    names = {node.name: f"qa-inst-{node.name}" for node in cc.nodes}
    for node, name in names.items():
        cc.gnt("gnt-instance add -t diskless -o qa-os+default -B memory=64 "
               f"-n {node} --no-name-check --no-ip-check {name}")
    assert _instances(cc) == sorted([name, node, "qa-os+default", "running"]
                                    for node, name in names.items())
    first = names[cc.master.name]
    cc.gnt(f"gnt-instance shutdown {first}")
    assert [first, cc.master.name, "qa-os+default", "ADMIN_down"] in _instances(cc)
    cc.gnt(f"gnt-instance rename -f --no-name-check --no-ip-check {first} {first}-renamed")
    cc.gnt(f"gnt-instance startup {first}-renamed")
    assert [first + "-renamed", cc.master.name, "qa-os+default", "running"] in _instances(cc)
    for name in [first + "-renamed", *(n for n in names.values() if n != first)]:
        cc.gnt(f"gnt-instance remove -f {name}")
    assert _instances(cc) == []
    verify = cc.gnt("gnt-cluster verify")
    assert "ERROR" not in verify, verify
