"""Failures carry Ganeti's error code for the same situation, so scripts that match on
``error type: ...`` (and RAPI clients reading the code) behave as they did with Ganeti."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lu_kit
import pytest

from cardume import errors
from cardume.cmdlib.instance_create import LUInstanceCreate
from cardume.cmdlib.instance_migrate import LUInstanceFailover, LUInstanceMigrate
from cardume.cmdlib.node import LUNodeRemove

NODES = ["node1.example.com", "node2.example.com"]


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[lu_kit.LuKit]:
    made = lu_kit.make(tmp_path / "kit", nodes=NODES, templates=["diskless"])
    try:
        made.run(LUInstanceCreate, instance_name="vm1", disk_template="diskless",
                 pnode="node1", no_install=True, start=False, name_check=False,
                 ip_check=False, nics=[])
        yield made
    finally:
        made.close()


@pytest.mark.parametrize("lu", [LUInstanceMigrate, LUInstanceFailover])
def test_moving_an_instance_to_its_own_primary_is_wrong_state(
        kit: lu_kit.LuKit, lu: type) -> None:
    with pytest.raises(errors.CardumeError) as caught:
        kit.run(lu, instance_name="vm1", target_node="node1")
    assert caught.value.code == "wrong_state"
    assert caught.value.message == "instance vm1 is already on node1.example.com"


def test_removing_the_master_node_is_wrong_input(kit: lu_kit.LuKit) -> None:
    with pytest.raises(errors.CardumeError) as caught:
        kit.run(LUNodeRemove, node_name="node1")
    assert caught.value.code == "wrong_input"
    assert "is the master node" in caught.value.message
    assert kit.cfg.find_node("node1.example.com") is not None
