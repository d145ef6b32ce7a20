"""The fake hypervisor: real per-node state in files, no virtual machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cardume import errors
from cardume.node import hypervisor
from cardume.node.hypervisor.fake import FakeHypervisor


def spec(name: str = "vm1", maxmem: int = 256, vcpus: int = 2) -> dict[str, Any]:
    return {"name": name, "uuid": f"{name}-uuid", "hypervisor": "fake",
            "beparams": {"maxmem": maxmem, "minmem": 128, "vcpus": vcpus}, "hvparams": {},
            "disks": [{"uuid": "d0", "path": "/srv/x/d0"}], "nics": []}


def test_start_list_info_reboot_stop(tmp_path: Path) -> None:
    hv = FakeHypervisor(str(tmp_path / "fake"))
    assert hv.list_instances() == [] and hv.instance_info("vm1") is None
    hv.start(spec("vm1"))
    hv.start(spec("vm2", maxmem=512, vcpus=1))
    assert hv.list_instances() == ["vm1", "vm2"]
    info = hv.instance_info("vm1")
    assert info is not None
    assert info["state"] == "running" and info["memory"] == 256 and info["vcpus"] == 2
    assert hv.memory_used() == 768
    before = info["started"]
    hv.reboot("vm1")
    after = hv.instance_info("vm1")
    assert after is not None and after["started"] >= before
    hv.stop("vm1", 10, False)
    assert hv.list_instances() == ["vm2"] and hv.instance_info("vm1") is None
    hv.stop("vm1", 10, False)  # not running: nothing to do
    with pytest.raises(errors.WrongState, match="not running"):
        hv.reboot("vm1")
    assert hv.memory_used() == 512


def test_double_start_is_refused(tmp_path: Path) -> None:
    hv = FakeHypervisor(str(tmp_path))
    hv.start(spec())
    with pytest.raises(errors.WrongState, match="already running"):
        hv.start(spec())
    assert hv.list_instances() == ["vm1"]
    assert [p.name for p in tmp_path.iterdir()] == ["vm1.json"]  # no temporary files left


def test_state_survives_a_new_object_on_the_same_dir(tmp_path: Path) -> None:
    FakeHypervisor(str(tmp_path / "plain")).start(spec("vm1", maxmem=300))
    assert FakeHypervisor(str(tmp_path / "plain")).list_instances() == ["vm1"]
    root = tmp_path / "node"  # hypervisor.get keeps the state under <node root>/hv/fake
    hypervisor.get("fake", str(root)).start(spec("vm1", maxmem=300))
    restarted = hypervisor.get("fake", str(root))
    assert restarted.list_instances() == ["vm1"]
    info = restarted.instance_info("vm1")
    assert info is not None and info["memory"] == 300
    assert (root / "hv" / "fake" / "vm1.json").is_file()
    with pytest.raises(errors.WrongState):
        restarted.start(spec("vm1"))


def test_bad_names_and_specs(tmp_path: Path) -> None:
    hv = FakeHypervisor(str(tmp_path))
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(errors.WrongInput):
            hv.start(spec(bad))
    with pytest.raises(errors.WrongInput, match="maxmem"):
        hv.start({"name": "vm1", "beparams": {}})
    with pytest.raises(errors.WrongInput):
        hypervisor.get("xen-pvm", str(tmp_path))


def test_migration_steps(tmp_path: Path) -> None:
    source = FakeHypervisor(str(tmp_path / "a"))
    target = FakeHypervisor(str(tmp_path / "b"))
    source.start(spec())
    info = target.accept_instance(spec(), "node1")
    source.migrate("vm1", "node2", info, True)
    target.finalize_migration_target(spec(), True)
    source.finalize_migration_source("vm1", True)
    assert source.list_instances() == [] and target.list_instances() == ["vm1"]
    with pytest.raises(errors.WrongState):
        target.accept_instance(spec(), "node1")  # already there
    with pytest.raises(errors.WrongState):
        source.migrate("vm1", "node2", {}, True)  # not running here any more
