"""Hypervisor parameter values: the master's check (cmdlib.common.check_hvparams, run at
submission) and the node's (the kvm hypervisor before it starts QEMU) are one rule set, so a
value the master accepts is never refused by the node for a reason the admin could not see
at submission, and the two refuse with the same words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cardume import errors
from cardume.cmdlib import common
from cardume.node.cmd import FakeRunner
from cardume.node.hypervisor import kvm_nics
from cardume.node.hypervisor.kvm import KvmHypervisor
from cardume.rules import hvparams

CHOICES = {"boot_order": tuple(hvparams.BOOT_ORDERS), "disk_type": hvparams.DISK_TYPES,
           "disk_cache": hvparams.DISK_CACHES, "nic_type": tuple(hvparams.NIC_MODELS),
           "kvm_flag": hvparams.KVM_FLAGS, "reboot_behavior": hvparams.REBOOT_BEHAVIORS,
           "security_model": hvparams.SECURITY_MODELS, "usb_mouse": hvparams.USB_MICE,
           "migration_mode": hvparams.MIGRATION_MODES}


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_master_accepts_each_choice_and_refuses_others(key: str) -> None:
    for value in CHOICES[key]:
        if key == "security_model" and value == "user":
            continue  # needs security_domain too (tested below)
        assert common.check_hvparams({"kvm": {key: value}})["kvm"][key] == value
    with pytest.raises(errors.WrongInput) as err:
        common.check_hvparams({"kvm": {key: "bogus"}})
    assert str(err.value).startswith(f"invalid value 'bogus' for hypervisor parameter kvm:{key}")
    assert "\n" not in str(err.value)


def test_security_domain_rules() -> None:
    with pytest.raises(errors.WrongInput, match="needs kvm:security_domain"):
        common.check_hvparams({"kvm": {"security_model": "user", "security_domain": ""}})
    with pytest.raises(errors.WrongInput, match="only applies to security_model=user"):
        common.check_hvparams({"kvm": {"security_model": "pool", "security_domain": "qemu"}})
    ok = common.check_hvparams({"kvm": {"security_model": "user", "security_domain": "qemu"}})
    assert ok["kvm"]["security_domain"] == "qemu"


def test_fake_hypervisor_has_only_the_common_rules() -> None:
    assert common.check_hvparams({"fake": {"migration_mode": "live"}})["fake"] == {
        "migration_mode": "live"}
    with pytest.raises(errors.WrongInput, match="fake:migration_mode"):
        common.check_hvparams({"fake": {"migration_mode": "sideways"}})


def test_every_nic_model_the_rules_accept_has_a_qemu_device() -> None:
    for nic_type in hvparams.NIC_MODELS:
        [planned] = kvm_nics.plan("inst1", [{"mac": "aa:00:00:12:34:56", "link": "br0"}],
                                    nic_type)
        assert planned["model"] == hvparams.NIC_MODELS[nic_type]


def test_node_refuses_what_the_master_refuses_with_the_same_words(tmp_path: Path) -> None:
    bad: dict[str, Any] = {"kernel_path": "relative/vmlinuz"}
    with pytest.raises(errors.WrongInput) as at_master:
        common.check_hvparams({"kvm": bad})
    hv = KvmHypervisor(str(tmp_path), runner=FakeRunner())
    spec = {"name": "inst1", "hvparams": bad, "beparams": {"maxmem": 128, "vcpus": 1},
            "disks": [], "nics": []}
    with pytest.raises(errors.WrongInput) as at_node:
        hv.start(spec)
    assert str(at_node.value) == str(at_master.value)
    assert not any(tmp_path.rglob("*.json"))  # nothing started, nothing recorded
