"""An export's config.ini: Ganeti's sections and keys written, read back into what an import
needs, and refused in one line when it is not an export's."""

from __future__ import annotations

import configparser

import pytest

from cardume import errors, objects
from cardume.cmdlib import backup_config


def instance() -> objects.Instance:
    inst = objects.Instance(name="vm1.example.com", primary_node="uuid-node1",
                            os="debootstrap+default", hypervisor="kvm",
                            hvparams={"kernel_path": ""}, beparams={"vcpus": 2},
                            osparams={"dhcp": "yes"}, disk_template="plain",
                            tags=["web", "prod"])
    inst.disks = [objects.Disk(dev_type="plain", size=1024, iv_name="disk/0", name="root"),
                  objects.Disk(dev_type="plain", size=512, iv_name="disk/1")]
    inst.nics = [objects.NIC(mac="aa:00:00:11:22:33", ip="192.0.2.10")]
    return inst


def written(timestamp: int = 1700000000) -> str:
    be = {"maxmem": 256, "minmem": 128, "vcpus": 2, "auto_balance": True,
          "always_failover": False, "spindle_use": 1}
    return backup_config.build(instance(), source="uuid-node1", filled_be=be,
                               nicparams=[{"mode": "bridged", "link": "br0", "vlan": ""}],
                               dumps=["dump-a", "dump-b"], timestamp=timestamp)


def test_the_sections_and_keys_are_ganetis() -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str  # type: ignore[assignment,method-assign]
    ini.read_string(written())
    assert ini.sections() == ["export", "instance", "hypervisor", "backend", "os",
                              "os_private"]
    assert dict(ini["export"]) == {"version": "0", "timestamp": "1700000000",
                                   "source": "uuid-node1", "os": "debootstrap+default",
                                   "compression": "none"}
    data = ini["instance"]
    assert (data["name"], data["maxmem"], data["minmem"], data["memory"], data["vcpus"]) == (
        "vm1.example.com", "256", "128", "256", "2")
    assert (data["disk_template"], data["hypervisor"], data["tags"]) == (
        "plain", "kvm", "web prod")
    assert (data["nic0_mac"], data["nic0_ip"], data["nic0_network"], data["nic0_name"],
            data["nic0_link"], data["nic0_mode"], data["nic0_vlan"], data["nic_count"]) == (
        "aa:00:00:11:22:33", "192.0.2.10", "None", "None", "br0", "bridged", "", "1")
    assert (data["disk0_ivname"], data["disk0_dump"], data["disk0_size"],
            data["disk0_name"]) == ("disk/0", "dump-a", "1024", "root")
    assert (data["disk1_dump"], data["disk1_size"], data["disk1_name"],
            data["disk_count"]) == ("dump-b", "512", "None", "2")
    assert dict(ini["backend"])["auto_balance"] == "True"
    assert dict(ini["hypervisor"]) == {"kernel_path": ""}
    assert dict(ini["os"]) == {"dhcp": "yes"}


def test_an_import_reads_back_what_an_export_wrote() -> None:
    info = backup_config.parse(written())
    assert (info.name, info.os, info.disk_template, info.hypervisor) == (
        "vm1.example.com", "debootstrap+default", "plain", "kvm")
    assert info.disks == [{"size": 1024, "dump": "dump-a", "name": "root"},
                          {"size": 512, "dump": "dump-b", "name": None}]
    assert info.nics == [{"mac": "aa:00:00:11:22:33", "ip": "192.0.2.10", "network": None,
                          "name": None, "link": "br0", "mode": "bridged", "vlan": None}]
    assert info.beparams["maxmem"] == 256 and info.beparams["auto_balance"] is True
    assert info.osparams == {"dhcp": "yes"}
    assert info.tags == ["web", "prod"]
    assert (info.source, info.timestamp) == ("uuid-node1", 1700000000)


@pytest.mark.parametrize("text, words", [
    ("not an ini file", "is not an export configuration"),
    ("[export]\nversion = 0\n", "no [instance] section"),
    ("[export]\nversion = 7\n[instance]\n", "unsupported export version"),
    ("[export]\nversion = 0\n[instance]\ndisk_template = floppy\n", "unknown disk template"),
    ("[export]\nversion = 0\n[instance]\ndisk_template = file\nnic_count = 0\n",
     "no 'disk_count'"),
    ("[export]\nversion = 0\n[instance]\ndisk_template = file\ndisk_count = 1\n"
     "nic_count = 0\ndisk0_size = 8\n", "disk 0 has no dump file"),
    ("[export]\nversion = 0\n[instance]\ndisk_template = file\ndisk_count = x\n",
     "disk_count is not a number"),
])
def test_what_is_not_an_export_is_refused_in_one_line(text: str, words: str) -> None:
    with pytest.raises(errors.WrongInput) as caught:
        backup_config.parse(text, "the export vm1 on node2")
    assert words in caught.value.message
    assert caught.value.message.startswith("the export vm1 on node2")
    assert "\n" not in caught.value.message

