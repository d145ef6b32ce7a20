"""What the watcher relies on below the master's socket, through the real opcode path
(lu_kit): a start never runs an instance a second time when another node runs it (what a
failed migration can leave), and a pause reaches a node's state directory, private."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import lu_kit
import pytest

from cardume import errors
from cardume.cmdlib.instance import LUInstanceStartup
from cardume.cmdlib.instance_create import LUInstanceCreate
from cardume.node import hypervisor
from cardume.rules.watcher_pause import read_pause

NODES = ["node1.example.com", "node2.example.com", "node3.example.com"]


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[lu_kit.LuKit]:
    made = lu_kit.make(tmp_path / "kit", nodes=NODES, templates=["diskless"])
    try:
        made.run(LUInstanceCreate, instance_name="vm1", disk_template="diskless", disks=[],
                 pnode=NODES[0], no_install=True, start=False, name_check=False,
                 ip_check=False, nics=[])
        yield made
    finally:
        made.close()


def fake_hv(kit: lu_kit.LuKit, node: str) -> hypervisor.Hypervisor:
    return hypervisor.get("fake", kit.paths[node].root)


def runs_on(kit: lu_kit.LuKit, name: str) -> list[str]:
    return [node for node in NODES if name in fake_hv(kit, node).list_instances()]


def test_a_start_refuses_an_instance_another_node_runs(kit: lu_kit.LuKit) -> None:
    # a migration that failed after the target started it: the target runs it
    fake_hv(kit, NODES[1]).start({"name": "vm1", "beparams": {"maxmem": 128, "vcpus": 1}})
    with pytest.raises(errors.WrongState) as caught:
        kit.run(LUInstanceStartup, instance_name="vm1")
    assert caught.value.message == (
        f"instance vm1 is running on node {NODES[1]}, not on its primary node {NODES[0]}; "
        "not starting it a second time")
    assert "gnt-instance migrate --cleanup vm1" in str(caught.value.hint)
    assert runs_on(kit, "vm1") == [NODES[1]]
    assert kit.cfg.expand_instance("vm1").admin_state == "down"  # nothing recorded


def test_a_start_goes_on_when_another_node_does_not_answer(kit: lu_kit.LuKit) -> None:
    kit.transport.down.add(NODES[2])
    kit.run(LUInstanceStartup, instance_name="vm1")
    assert runs_on(kit, "vm1") == [NODES[0]]
    assert any(f"could not ask node {NODES[2]} whether it runs vm1" in line
               for line in kit.log())


def test_a_start_of_an_instance_running_nowhere_asks_the_other_nodes(
        kit: lu_kit.LuKit) -> None:
    kit.run(LUInstanceStartup, instance_name="vm1")
    assert runs_on(kit, "vm1") == [NODES[0]]
    asked = {node for node, call, _ in kit.asked if call == "instance_list"}
    assert asked == set(NODES)
    # running already on its primary: nothing else is asked, nothing started twice
    before = len(kit.asked)
    kit.run(LUInstanceStartup, instance_name="vm1")
    assert [c for _, c, _ in kit.asked[before:] if c == "instance_list"] == ["instance_list"]
    assert "Instance vm1 is already running" in kit.log()


def test_a_pause_is_written_private_and_ended(kit: lu_kit.LuKit) -> None:
    until = time.time() + 3600
    kit.call(NODES[1], "watcher_pause_write", until=until)
    path = kit.paths[NODES[1]].watcher_pause
    assert read_pause(path) == int(until)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    kit.call(NODES[1], "watcher_pause_write", until=None)
    assert not os.path.exists(path)
    assert read_pause(path) is None
