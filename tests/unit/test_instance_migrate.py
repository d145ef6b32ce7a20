"""Failover, migrate and move through the real opcode path (lu_kit): what each disk
template allows, as rules/disk_templates says, and what a refusal tells the operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lu_kit
import pytest

from cardume import errors
from cardume.cmdlib.instance_create import LUInstanceCreate
from cardume.cmdlib.instance_migrate import LUInstanceFailover, LUInstanceMigrate, LUInstanceMove

NODES = ["node1.example.com", "node2.example.com"]


@pytest.fixture(params=[["plain"]])
def kit(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[lu_kit.LuKit]:
    """Two nodes; the templates the test names with indirect parametrization (only plain
    asks the nodes' LVM, which each test scripts)."""
    made = lu_kit.make(tmp_path / "kit", nodes=NODES, templates=request.param)
    try:
        yield made
    finally:
        made.close()


diskless = pytest.mark.parametrize("kit", [["diskless"]], indirect=True)


def create(kit: lu_kit.LuKit, name: str, template: str, **values: Any) -> None:
    if template == "plain":
        runner = kit.runners[NODES[0]]
        runner.on(["vgs"], stdout="  xenvg|10236.00|8188.00\n")
        runner.on(["lvcreate"])
    kit.run(LUInstanceCreate, instance_name=name, disk_template=template,
            disks=[{"size": 64}] if template == "plain" else [], pnode="node1",
            no_install=True, start=False, name_check=False, ip_check=False, nics=[],
            **values)


def primary(kit: lu_kit.LuKit, name: str) -> str:
    return kit.cfg.node_name(kit.cfg.expand_instance(name).primary_node)


def test_a_plain_instance_does_not_fail_over(kit: lu_kit.LuKit) -> None:
    create(kit, "vm1", "plain")
    with pytest.raises(errors.WrongState) as caught:
        kit.run(LUInstanceFailover, instance_name="vm1")
    assert "uses the plain template, whose disks live on one node" in caught.value.message
    assert caught.value.hint == "use 'gnt-instance move -n NODE vm1' to copy it"
    assert primary(kit, "vm1") == NODES[0]


def test_a_plain_instance_migrates_only_with_its_disks_mirrored(kit: lu_kit.LuKit) -> None:
    create(kit, "vm1", "plain")
    with pytest.raises(errors.WrongState) as caught:  # migrate, unlike failover, says how
        kit.run(LUInstanceMigrate, instance_name="vm1")
    assert "so a migration must copy them" in caught.value.message
    assert "--mirror-disks" in str(caught.value.hint)
    with pytest.raises(errors.WrongInput, match="--mirror-disks needs the kvm hypervisor; "
                                                "instance vm1 runs on fake"):
        kit.run(LUInstanceMigrate, instance_name="vm1", mirror_disks=True)
    assert primary(kit, "vm1") == NODES[0]


@diskless
def test_a_stopped_diskless_instance_fails_over_to_any_node(kit: lu_kit.LuKit) -> None:
    create(kit, "vm2", "diskless")
    kit.run(LUInstanceFailover, instance_name="vm2")
    assert primary(kit, "vm2") == NODES[1]
    assert f"Shutting down instance vm2 on {NODES[0]}" in kit.log()
    # a stopped instance can't migrate, unless it may fail over instead
    with pytest.raises(errors.WrongState, match="vm2 is not running"):
        kit.run(LUInstanceMigrate, instance_name="vm2")
    kit.run(LUInstanceMigrate, instance_name="vm2", allow_failover=True)
    assert primary(kit, "vm2") == NODES[0]
    assert "Failing over instance vm2 instead of migrating it" in kit.log()


@diskless
def test_only_file_and_plain_instances_move(kit: lu_kit.LuKit) -> None:
    create(kit, "vm2", "diskless")
    with pytest.raises(errors.WrongInput, match="uses the diskless template; only file and "
                                                "plain instances can be moved"):
        kit.run(LUInstanceMove, instance_name="vm2", target_node="node2")
    assert primary(kit, "vm2") == NODES[0]
