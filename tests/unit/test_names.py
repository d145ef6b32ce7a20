"""Names and tags as the logical units check them: instance, node and cluster names are DNS
names short enough for every file name a node builds from them; tags follow Ganeti's ASCII
rule. Every refusal is one WrongInput naming the value and the rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cardume import errors
from cardume.cmdlib import common
from cardume.cmdlib.common import MAX_NAME_LENGTH
from cardume.node import osapi
from cardume.node.hypervisor.fake import FakeHypervisor
from cardume.node.hypervisor.kvm import KvmHypervisor


def longest_name() -> str:
    """A valid name of exactly MAX_NAME_LENGTH characters, of 63-character labels."""
    name = ".".join(["a" * 63] * 4)[:MAX_NAME_LENGTH]
    assert not name.endswith(".")
    return name


@pytest.mark.parametrize("name", [
    "vm1", "node1", "cluster.vcluster", "web-01.example.com", "a", "1.2.x",
    "A" * 63, ".".join(["a" * 63] * 3),
])
def test_dns_names_accepted(name: str) -> None:
    for what in ("instance", "node", "cluster"):
        assert common.check_hostname(name, what) == name


@pytest.mark.parametrize("name", [
    "", "-vm1", "vm1-", "vm_1", "vm 1", "vm1..example", ".vm1", "vm1.", "a.-b.c",
    "vm1\n", "vm1/x", "vm\u00e91", "\u0661\u0662", "vm1;rm", "x\0",
])
def test_names_outside_dns_refused(name: str) -> None:
    with pytest.raises(errors.WrongInput) as caught:
        common.check_hostname(name, "instance")
    message = str(caught.value)
    assert message.startswith("invalid instance name ")
    assert repr(name) in message
    assert "1-63 ASCII letters, digits and '-'" in message or name == ""
    assert "\n" not in message


def test_label_of_64_characters_refused() -> None:
    name = "a" * 64 + ".example.com"
    with pytest.raises(errors.WrongInput, match="label 'a{32}\\.\\.\\.' has 64 characters, "
                       "at most 63"):
        common.check_hostname(name, "node")


@pytest.mark.parametrize("length", [MAX_NAME_LENGTH + 1, 253, 254, 10_000])
def test_too_long_name_refused_naming_both_lengths(length: int) -> None:
    name = ("a" * 62 + ".") * (length // 63 + 1)
    name = name[:length - 1] + "z"
    with pytest.raises(errors.WrongInput) as caught:
        common.check_hostname(name, "instance")
    assert str(caught.value) == (f"instance name '{name[:32]}...' is too long: {length} "
                                 f"characters, at most {MAX_NAME_LENGTH}")


def test_longest_name_fits_every_file_a_node_names_after_it(tmp_path: Path) -> None:
    """What the 253-character name failed on: a file name over 255 bytes. The longest
    accepted name must fit in each file a node creates from an instance's name."""
    name = longest_name()
    assert len(name) == MAX_NAME_LENGTH and common.check_hostname(name, "instance") == name
    log_dir = str(tmp_path / "os-log")
    for script in (osapi.SCRIPT_CREATE, osapi.SCRIPT_IMPORT, osapi.SCRIPT_EXPORT,
                   osapi.SCRIPT_RENAME, osapi.SCRIPT_VERIFY):
        path = osapi.log_path(log_dir, script, name)
        with open(path, "w", encoding="utf-8") as handle:  # no ENAMETOOLONG
            handle.write("log")
    assert len(os.listdir(log_dir)) == 5

    fake = FakeHypervisor(str(tmp_path / "fake"))
    fake.start({"name": name, "uuid": "u1", "hypervisor": "fake",
                "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1}, "hvparams": {},
                "disks": [], "nics": []})
    assert fake.list_instances() == [name]

    kvm = KvmHypervisor(str(tmp_path / "kvm"))
    kvm._write_runtime(name, {"name": name})  # the runtime file and its temporary name
    assert kvm.read_runtime(name) == {"name": name}
    with open(kvm.serial_log_path(name), "w", encoding="utf-8") as handle:
        handle.write("console")


@pytest.mark.parametrize("tag", [
    "web", "rack:r1", "a.b+c*d/e:f@g_h-i", "x" * 128, "0",
])
def test_ascii_tags_accepted(tag: str) -> None:
    common.check_tags([tag])


@pytest.mark.parametrize("tag", [
    "", "x" * 129, "bad tag", "caf\u00e9", "\u0661\u0662\u0663", "tag\n", "a,b", "a=b",
    "\u212a",  # KELVIN SIGN: a letter to Unicode, and to an unflagged \w
])
def test_tags_outside_ganeti_rule_refused(tag: str) -> None:
    with pytest.raises(errors.WrongInput) as caught:
        common.check_tags(["ok", tag])
    message = str(caught.value)
    shown = tag if len(tag) <= 40 else tag[:32] + "..."
    assert message == (f"invalid tag {shown!r}: expected 1-128 ASCII letters, digits or "
                       ".+*/:@_-")


@pytest.mark.parametrize("name", ["default", "rack_1", "g.1+2-3", "G" * 63])
def test_group_names_accepted(name: str) -> None:
    assert common.check_group_name(name) == name


@pytest.mark.parametrize("name", ["", "G" * 64, "-g", "g 1", "gr\u00fcn", "g\n", "g/1"])
def test_group_names_refused(name: str) -> None:
    with pytest.raises(errors.WrongInput, match="invalid group name .*: expected up to 63 "
                       "ASCII letters"):
        common.check_group_name(name)
