"""Networks on a local cluster through the real gnt-* commands: add, connect, instances
with ip=pool addresses, conflicts and exhausted pools refused in one line with nothing
created, removal giving addresses back, disconnect refused while in use, list-fields, info.
A network here is configuration only: no address is configured anywhere."""

from __future__ import annotations

from integration_kit import Gnt, VCluster


def refused(gnt: Gnt, code: str, *args: str) -> str:
    rc, out, err = gnt(*args, check=False)
    assert rc != 0
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"Failure: {code}: "), err
    return lines[-1]


def add_vm(gnt: Gnt, name: str, net: str, check: bool = True) -> tuple[int, str, str]:
    return gnt("gnt-instance", "add", "-t", "diskless", "--no-install", "-n", "node1",
               "--no-name-check", "--no-ip-check", "--no-start", "--net", net, name,
               check=check)


def net_row(gnt: Gnt, fields: str) -> list[str]:
    out = gnt("gnt-network", "list", "--no-headers", "--separator=|", "-o", fields, "net1")[1]
    return out.strip().split("|")


def test_network_lifecycle(cluster: VCluster, gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-network", "add", "--network", "198.51.100.0/29", "--gateway",
                       "198.51.100.1", "--add-reserved-ips", "198.51.100.6", "--tags", "a,b",
                       "net1")
    assert out == ""
    lines = gnt("gnt-network", "list")[1].splitlines()
    assert lines[0].split() == ["Network", "Subnet", "Gateway", "MacPrefix", "GroupList",
                                "Tags"]
    assert lines[1].split() == ["net1", "198.51.100.0/29", "198.51.100.1", "-", "a,b"]

    gnt("gnt-network", "connect", "--nic-parameters", "mode=bridged,link=br0", "net1",
        "default")
    assert net_row(gnt, "group_list,free_count,map") == ["default (bridged, br0, )", "4",
                                                         "XX....XX"]

    rc, out, err = add_vm(gnt, "vm1", "0:ip=pool,network=net1")
    assert "Chose IP 198.51.100.2 from network net1" in out + err
    add_vm(gnt, "vm2", "0:ip=pool,network=net1")
    add_vm(gnt, "vm3", "0:network=net1,ip=198.51.100.4")
    out = gnt("gnt-instance", "list", "--no-headers", "--separator=|", "-o",
              "name,nic.ips,nic.networks.names,nic.modes,nic.links")[1]
    assert out.splitlines() == ["vm1|198.51.100.2|['net1']|bridged|br0",
                                "vm2|198.51.100.3|['net1']|bridged|br0",
                                "vm3|198.51.100.4|['net1']|bridged|br0"]
    assert net_row(gnt, "free_count,reserved_count,inst_list") == ["1", "7", "vm1,vm2,vm3"]

    before = cluster.snapshot()
    line = refused(gnt, "already_exists", "gnt-instance", "add", "-t", "diskless",
                   "--no-install", "-n", "node1", "--no-name-check", "--no-ip-check",
                   "--no-start", "--net", "0:network=net1,ip=198.51.100.3", "vm4")
    assert "198.51.100.3" in line and "vm2" in line
    add_vm(gnt, "vm4", "0:ip=pool,network=net1")  # the last free address
    before = cluster.snapshot()
    line = refused(gnt, "insufficient_resources", "gnt-instance", "add", "-t", "diskless",
                   "--no-install", "-n", "node1", "--no-name-check", "--no-ip-check",
                   "--no-start", "--net", "0:ip=pool,network=net1", "vm5")
    assert "no free address left in network 'net1'" in line
    assert cluster.snapshot() == before

    line = refused(gnt, "wrong_state", "gnt-network", "disconnect", "net1", "default")
    assert "vm1 nic0/198.51.100.2" in line
    line = refused(gnt, "wrong_state", "gnt-network", "remove", "net1")
    assert "still connected" in line

    info = gnt("gnt-network", "info", "net1")[1]
    assert "  Subnet: 198.51.100.0/29\n  Gateway: 198.51.100.1\n" in info
    assert "  Free: 0 (0.00%)\n  Usage map:\n        0 XXXXXXXX" in info
    assert "  externally reserved IPs:\n    198.51.100.0, 198.51.100.1, 198.51.100.6, " \
           "198.51.100.7\n" in info
    assert "    default (mode:bridged link:br0 vlan:)\n" in info
    assert "  used by 4 instances:\n    vm1: 0:198.51.100.2\n" in info

    for name in ("vm1", "vm2", "vm3", "vm4"):
        gnt("gnt-instance", "remove", "-f", name)
    assert net_row(gnt, "free_count,map") == ["4", "XX....XX"]

    gnt("gnt-network", "modify", "--add-reserved-ips", "198.51.100.2", "--mac-prefix",
        "aa:00:00", "net1")
    assert net_row(gnt, "mac_prefix,map") == ["aa:00:00", "XXX...XX"]
    gnt("gnt-network", "add-tags", "net1", "c")
    assert gnt("gnt-network", "list-tags", "net1")[1].split() == ["a", "b", "c"]
    gnt("gnt-network", "disconnect", "net1")
    gnt("gnt-network", "remove", "net1")
    assert gnt("gnt-network", "list", "--no-headers")[1] == ""


def test_list_fields_are_ganetis(gnt: Gnt) -> None:
    out = gnt("gnt-network", "list-fields", "--no-headers")[1]
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["ctime", "external_reservations", "free_count", "gateway", "gateway6",
                     "group_cnt", "group_list", "inst_cnt", "inst_list", "mac_prefix", "map",
                     "mtime", "name", "network", "network6", "reserved_count", "serial_no",
                     "tags", "uuid"]


def test_bad_networks_are_refused_in_one_line(cluster: VCluster, gnt: Gnt) -> None:
    before = cluster.snapshot()
    refused(gnt, "wrong_input", "gnt-network", "add", "--network", "192.0.2.0/33", "bad")
    refused(gnt, "wrong_input", "gnt-network", "add", "--gateway", "192.0.2.1", "bad")
    refused(gnt, "unknown_entity", "gnt-network", "connect", "-N", "mode=bridged,link=br0",
            "nosuch", "default")
    assert cluster.snapshot() == before
