"""Instance policies through the real opcode path (lu_kit): cluster and group modify check
the policy they leave, gnt-instance modify keeps an instance inside its group's policy
unless told --ignore-ipolicy, and verify names the instances outside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lu_kit
import pytest

from cardume import errors, objects
from cardume.cmdlib.instance_create import LUInstanceCreate

LOW = {"memory-size": 128, "cpu-count": 1, "disk-count": 0, "disk-size": 1024,
       "nic-count": 0, "spindle-use": 1}
HIGH = {"memory-size": 512, "cpu-count": 4, "disk-count": 16, "disk-size": 1048576,
        "nic-count": 8, "spindle-use": 12}
BOUNDS = [{"min": LOW, "max": HIGH}]


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[lu_kit.LuKit]:
    made = lu_kit.make(tmp_path / "kit", templates=["diskless", "file"])
    try:
        made.run("OP_CLUSTER_SET_PARAMS", ipolicy={"minmax": BOUNDS})
        made.run(LUInstanceCreate, instance_name="vm1", disk_template="diskless", disks=[],
                 pnode="node1", no_install=True, start=False, name_check=False,
                 ip_check=False, nics=[])
        yield made
    finally:
        made.close()


def cluster_policy(kit: lu_kit.LuKit) -> dict[str, Any]:
    return objects.fill_ipolicy(kit.cfg.get_cluster(), None)


def maxmem(kit: lu_kit.LuKit) -> Any:
    return kit.cfg.expand_instance("vm1").beparams.get("maxmem")


def test_cluster_modify_stores_the_bounds_and_merges_std(kit: lu_kit.LuKit) -> None:
    kit.run("OP_CLUSTER_SET_PARAMS", ipolicy={"std": {"memory-size": 256},
                                              "vcpu-ratio": "2.5"})
    policy = cluster_policy(kit)
    assert policy["minmax"] == BOUNDS and policy["vcpu-ratio"] == 2.5
    assert policy["std"]["memory-size"] == 256 and policy["std"]["cpu-count"] == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"std": {"memory-size": 1024}}, "invalid std specs: not within the bounds specs "
                                     "(memory-size value 1024 is not in range [128, 512])"),
    ({"minmax": [{"min": HIGH, "max": LOW}]}, "min 512 is above max 128"),
    ({"disk-templates": ["plain"]}, "allowed by the instance policy, but not enabled on the "
                                    "cluster: plain"),
    ({"vcpu-ratio": "abc"}, "invalid vcpu-ratio 'abc': expected a number above 0"),
    ({"spindle-ratio": None}, "can't unset instance policy key 'spindle-ratio' on the "
                              "cluster"),
])
def test_a_bad_cluster_policy_changes_nothing(kit: lu_kit.LuKit, change: dict[str, Any],
                                              message: str) -> None:
    before = cluster_policy(kit)
    with pytest.raises(errors.WrongInput) as caught:
        kit.run("OP_CLUSTER_SET_PARAMS", ipolicy=change)
    assert message in str(caught.value)
    assert cluster_policy(kit) == before


def test_a_group_overrides_and_default_inherits_again(kit: lu_kit.LuKit) -> None:
    kit.run("OP_GROUP_SET_PARAMS", group_name="default",
            ipolicy={"vcpu-ratio": 8, "disk-templates": ["file"]})
    group = kit.cfg.expand_group("default")
    filled = objects.fill_ipolicy(kit.cfg.get_cluster(), group)
    assert filled["vcpu-ratio"] == 8.0 and filled["disk-templates"] == ["file"]
    kit.run("OP_GROUP_SET_PARAMS", group_name="default",
            ipolicy={"vcpu-ratio": "default", "disk-templates": None})
    assert kit.cfg.expand_group("default").ipolicy == {}
    with pytest.raises(errors.WrongInput, match="std specs are set on the cluster only"):
        kit.run("OP_GROUP_SET_PARAMS", group_name="default",
                ipolicy={"std": {"memory-size": 256}})


def test_a_policy_change_names_the_instances_now_outside_it(kit: lu_kit.LuKit) -> None:
    kit.run("OP_GROUP_SET_PARAMS", group_name="default", ipolicy={"disk-templates": ["file"]})
    assert any("After the ipolicy change the following instances violate them: vm1" in line
               for line in kit.log())


def test_modify_beyond_the_bounds_is_refused(kit: lu_kit.LuKit) -> None:
    group = kit.cfg.expand_group("default")
    with pytest.raises(errors.WrongInput) as caught:
        kit.run("OP_INSTANCE_SET_PARAMS", instance_name="vm1",
                beparams={"maxmem": 1024, "vcpus": 6})
    assert caught.value.message == (
        f"Instance allocation to group {group.uuid} (default) violates policy: "
        "memory-size value 1024 is not in range [128, 512], "
        "cpu-count value 6 is not in range [1, 4]")
    assert caught.value.code == "wrong_input"
    assert maxmem(kit) is None
    with pytest.raises(errors.WrongInput, match="memory-size value 64 is not in range"):
        kit.run("OP_INSTANCE_SET_PARAMS", instance_name="vm1", beparams={"minmem": 64})


def test_ignore_ipolicy_lets_it_through(kit: lu_kit.LuKit) -> None:
    kit.run("OP_INSTANCE_SET_PARAMS", instance_name="vm1", beparams={"maxmem": 1024},
            ignore_ipolicy=True)
    assert maxmem(kit) == 1024


def test_nic_count_counts_the_nics_added(kit: lu_kit.LuKit) -> None:
    kit.run("OP_CLUSTER_SET_PARAMS", ipolicy={  # the std specs must stay inside the bounds
        "minmax": [{"min": LOW, "max": {**HIGH, "nic-count": 0}}], "std": {"nic-count": 0}})
    with pytest.raises(errors.WrongInput, match="nic-count value 1 is not in range"):
        kit.run("OP_INSTANCE_SET_PARAMS", instance_name="vm1", nics=[["add", -1, {}]])
    assert kit.cfg.expand_instance("vm1").nics == []


def test_the_group_policy_is_the_one_checked(kit: lu_kit.LuKit) -> None:
    kit.run("OP_GROUP_SET_PARAMS", group_name="default",
            ipolicy={"minmax": [{"min": LOW, "max": {**HIGH, "memory-size": 2048}}]})
    kit.run("OP_INSTANCE_SET_PARAMS", instance_name="vm1", beparams={"maxmem": 1024})
    assert maxmem(kit) == 1024


def test_verify_warns_about_an_instance_outside_its_policy(kit: lu_kit.LuKit) -> None:
    kit.run("OP_INSTANCE_SET_PARAMS", instance_name="vm1", beparams={"maxmem": 1024},
            ignore_ipolicy=True)
    kit.run("OP_CLUSTER_VERIFY", error_codes=True)
    assert any("WARNING:EINSTANCEPOLICY:instance:vm1:memory-size value 1024 is not in range "
               "[128, 512]" in line for line in kit.log()), kit.log()
