"""Networks through the real opcode path (lu_kit): add, connect, instances taking pool
addresses, conflicts and exhausted pools refused with nothing half-created, addresses given
back on removal, disconnect and remove refused while in use, modify's reservations."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lu_kit
import pytest

from cardume import errors
from cardume.master import query


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[lu_kit.LuKit]:
    made = lu_kit.make(tmp_path / "kit", nodes=["node1.example.com"], templates=["diskless"])
    try:
        yield made
    finally:
        made.close()


def add_vm(kit: lu_kit.LuKit, name: str, **nic: Any) -> Any:
    return kit.run("OP_INSTANCE_CREATE", instance_name=name, disk_template="diskless",
                   nics=[nic], pnode="node1.example.com", name_check=False, ip_check=False,
                   no_install=True, start=False)


def rows(kit: lu_kit.LuKit, what: str, fields: list[str],
         names: list[str] | None = None) -> list[list[Any]]:
    view = SimpleNamespace(cfg=kit.cfg)
    reply = asyncio.run(query.run_query(view, what, fields, names))  # type: ignore[arg-type]
    return list(reply["data"])


def network(kit: lu_kit.LuKit, cidr: str = "198.51.100.0/29", **values: Any) -> None:
    kit.run("OP_NETWORK_ADD", network_name="net1", network=cidr, **values)
    kit.run("OP_NETWORK_CONNECT", network_name="net1", group_name="default",
            network_mode="bridged", network_link="br0")


def test_add_lists_subnet_gateway_pool_and_tags(kit: lu_kit.LuKit) -> None:
    kit.run("OP_NETWORK_ADD", network_name="net1", network="192.0.2.0/28",
            gateway="192.0.2.1", add_reserved_ips=["192.0.2.10", "192.0.2.11"],
            tags=["b", "a"])
    [row] = rows(kit, "network", ["name", "network", "gateway", "mac_prefix", "free_count",
                                  "reserved_count", "map", "external_reservations",
                                  "group_list", "tags"])
    assert row[:3] == ["net1", "192.0.2.0/28", "192.0.2.1"]
    assert row[3] == {"_rs": "unavail"}
    assert row[4:] == [11, 5, "XX........XX...X",
                       "192.0.2.0, 192.0.2.1, 192.0.2.10, 192.0.2.11, 192.0.2.15", [],
                       ["a", "b"]]
    with pytest.raises(errors.AlreadyExists, match="network 'net1' already exists"):
        kit.run("OP_NETWORK_ADD", network_name="net1", network="192.0.2.0/24")


@pytest.mark.parametrize(("values", "words"), [
    ({"network": "192.0.2.0/33"}, "invalid IPv4 network"),
    ({"network": "192.0.2.0/24", "gateway": "198.51.100.1"}, "gateway 198.51.100.1 is not"),
    ({"network": "192.0.2.0/24", "add_reserved_ips": ["198.51.100.1"]},
     "192.0.2.0/24 does not contain it"),
    ({"network": "192.0.2.0/24", "mac_prefix": "zz:00:00"}, "invalid MAC address prefix"),
])
def test_bad_values_are_refused_by_name(kit: lu_kit.LuKit, values: dict[str, Any],
                                        words: str) -> None:
    with pytest.raises(errors.WrongInput, match=words):
        kit.run("OP_NETWORK_ADD", network_name="bad", **values)
    assert kit.cfg.networks == {}


def test_pool_addresses_conflicts_exhaustion_and_release(kit: lu_kit.LuKit) -> None:
    network(kit, "198.51.100.0/30")  # two usable addresses
    add_vm(kit, "vm1", network="net1", ip="pool")
    assert "Chose IP 198.51.100.1 from network net1" in "\n".join(kit.log())
    with pytest.raises(errors.AlreadyExists,
                       match="198.51.100.1 of network 'net1' is already used by instance vm1"):
        add_vm(kit, "vm2", network="net1", ip="198.51.100.1")
    add_vm(kit, "vm2", network="net1", ip="pool")
    with pytest.raises(errors.InsufficientResources,
                       match="no free address left in network 'net1'"):
        add_vm(kit, "vm3", network="net1", ip="pool")
    assert kit.cfg.find_instance("vm3") is None
    assert rows(kit, "instance", ["name", "nic.ips", "nic.networks.names", "nic.modes",
                                  "nic.links"]) == [
        ["vm1", ["198.51.100.1"], ["net1"], ["bridged"], ["br0"]],
        ["vm2", ["198.51.100.2"], ["net1"], ["bridged"], ["br0"]]]
    assert rows(kit, "network", ["free_count", "inst_list", "group_list"]) == [
        [0, ["vm1", "vm2"], [["default", "bridged", "br0", ""]]]]
    with pytest.raises(errors.WrongState, match="network 'net1' is in use in node group "
                                                "'default': vm1 nic0/198.51.100.1"):
        kit.run("OP_NETWORK_DISCONNECT", network_name="net1", group_name="default")
    kit.run("OP_INSTANCE_REMOVE", instance_name="vm1")
    assert rows(kit, "network", ["free_count", "map"]) == [[1, "X.XX"]]


def test_a_nic_on_a_network_takes_no_mode_or_link_of_its_own(kit: lu_kit.LuKit) -> None:
    network(kit)
    with pytest.raises(errors.WrongInput, match="takes its mode and link"):
        add_vm(kit, "vm1", network="net1", ip="pool", mode="routed", link="x")
    with pytest.raises(errors.WrongInput, match="ip=pool needs a network"):
        add_vm(kit, "vm1", ip="pool")
    with pytest.raises(errors.UnknownEntity, match="network 'nosuch' does not exist"):
        add_vm(kit, "vm1", network="nosuch", ip="pool")


def test_an_unconnected_network_is_refused(kit: lu_kit.LuKit) -> None:
    kit.run("OP_NETWORK_ADD", network_name="net2", network="192.0.2.0/24")
    with pytest.raises(errors.WrongState, match="network 'net2' is not connected to node "
                                                "group 'default'"):
        add_vm(kit, "vm1", network="net2", ip="pool")


def test_modify_moves_a_nic_address_and_gives_the_old_one_back(kit: lu_kit.LuKit) -> None:
    network(kit)
    add_vm(kit, "vm1", network="net1", ip="pool")
    kit.run("OP_INSTANCE_SET_PARAMS", instance_name="vm1",
            nics=[["modify", 0, {"ip": "198.51.100.5"}]])
    assert rows(kit, "network", ["map"]) == [["X....X.X"]]
    kit.run("OP_INSTANCE_SET_PARAMS", instance_name="vm1",
            nics=[["add", -1, {"network": "net1", "ip": "pool"}]])
    assert rows(kit, "instance", ["nic.ips"]) == [[["198.51.100.5", "198.51.100.1"]]]
    kit.run("OP_INSTANCE_SET_PARAMS", instance_name="vm1",
            nics=[["modify", 0, {"network": "none", "ip": "none"}]])
    assert rows(kit, "network", ["map", "inst_list"]) == [["XX.....X", ["vm1"]]]


def test_modify_reservations_gateway_and_mac_prefix(kit: lu_kit.LuKit) -> None:
    kit.run("OP_NETWORK_ADD", network_name="net1", network="192.0.2.0/28",
            gateway="192.0.2.1")
    kit.run("OP_NETWORK_SET_PARAMS", network_name="net1",
            add_reserved_ips=["192.0.2.3", "10.0.0.1"], remove_reserved_ips=["192.0.2.1"])
    log = "\n".join(kit.log())
    assert "Cannot reserve IP address 10.0.0.1: 192.0.2.0/28 does not contain 10.0.0.1" in log
    assert "Cannot unreserve the gateway's IP address" in log
    kit.run("OP_NETWORK_SET_PARAMS", network_name="net1", gateway="192.0.2.14",
            mac_prefix="aa:00:00")
    assert rows(kit, "network", ["gateway", "mac_prefix", "map", "serial_no"]) == [
        ["192.0.2.14", "aa:00:00", "X..X..........XX", 3]]


def test_remove_rename_and_tags(kit: lu_kit.LuKit) -> None:
    network(kit)
    with pytest.raises(errors.WrongState, match="still connected to node group"):
        kit.run("OP_NETWORK_REMOVE", network_name="net1")
    kit.run("OP_NETWORK_DISCONNECT", network_name="net1", group_name="default")
    kit.run("OP_NETWORK_RENAME", network_name="net1", new_name="net9")
    kit.run("OP_TAGS_SET", kind="network", name="net9", tags=["x"])
    assert rows(kit, "network", ["name", "tags"]) == [["net9", ["x"]]]
    kit.run("OP_NETWORK_REMOVE", network_name="net9")
    assert rows(kit, "network", ["name"]) == []
