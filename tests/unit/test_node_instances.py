"""The node daemon's disk, instance and OS handlers, called directly (no TLS)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from loop_kit import loop_works

from cardume import errors
from cardume.node import facts
from cardume.node.daemon import NodeDaemon, ensure_identity
from cardume.node.local_calls import LocalCalls
from cardume.paths import NodePaths, write_json_atomic
from cardume.rpc.calls import CALLS
from cardume.rpc.http import PeerInfo

DUMMY = Path(__file__).resolve().parents[1] / "fixtures" / "os" / "dummy"
PEER = PeerInfo(address="127.0.0.1", cert_der=None, fingerprint=None, verified=True)
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coro
    return asyncio.run(wrapper())


class Node:
    def __init__(self, tmp: Path, prefix: str | None = None) -> None:
        self.root = tmp / "node1"
        self.paths = NodePaths(str(self.root))
        identity: dict[str, Any] = {"name": "node1"}
        if prefix:
            identity["storage_prefix"] = prefix
        write_json_atomic(self.paths.identity, identity)
        os_dir = tmp / "os"
        os_dir.mkdir(exist_ok=True)
        if not (os_dir / "dummy").exists():
            shutil.copytree(DUMMY, os_dir / "dummy")
        self.file_dir = tmp / "storage" / "file-storage"
        self.shared_dir = tmp / "storage" / "shared"
        self.ssconf = {"file_storage_dir": str(self.file_dir),
                       "shared_file_storage_dir": str(self.shared_dir),
                       "os_search_path": [str(os_dir)],
                       "enabled_disk_templates": ["file", "sharedfile", "diskless"]}
        self.calls = LocalCalls(self.paths, "node1", lambda: self.ssconf)

    def call(self, name: str, **args: Any) -> Any:
        return run(self.calls.handlers()[name](args, PEER))


def disk_spec(node: Node, index: int = 0, size: int = 8, inst: str = "vm1",
              template: str = "file") -> dict[str, Any]:
    base = node.file_dir if template == "file" else node.shared_dir
    return {"uuid": f"d{index}", "name": None, "dev_type": template,
            "logical_id": ["loop", f"{base}/{inst}/d{index}.file.disk{index}"],
            "size": size, "mode": "rw", "iv_name": f"disk/{index}", "params": {}}


def inst_spec(name: str = "vm1", disks: list[dict[str, Any]] | None = None,
              **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name, "uuid": f"{name}-uuid", "os": "dummy+default", "hypervisor": "fake",
        "hvparams": {"migration_mode": "live"},
        "beparams": {"maxmem": 200, "minmem": 128, "vcpus": 1}, "osparams": {},
        "disk_template": "file" if disks else "diskless", "disks": disks or [],
        "nics": [{"uuid": "n0", "name": None, "mac": "aa:00:00:00:00:01", "ip": None,
                  "mode": "bridged", "link": "br0", "vlan": "", "network": None}],
        "debug_level": 0}
    data.update(extra)
    return data


def test_every_call_has_a_handler(tmp_path: Path) -> None:
    paths = NodePaths(str(tmp_path / "n"))
    ensure_identity(paths, "node1")
    daemon = NodeDaemon(paths, "node1")  # raises if a call in the table has no handler
    assert daemon.server is not None
    for name in ("blockdev_create", "instance_os_add", "os_diagnose", "os_validate",
                 "instance_info_all"):
        assert name in CALLS
    assert CALLS["instance_os_add"].timeout == "4hrs"
    assert CALLS["instance_os_rename"].timeout == "slow"
    assert CALLS["blockdev_info"].timeout == "fast"
    assert CALLS["instance_list"].timeout == "urgent"


def test_disk_lifecycle_with_a_prefix(tmp_path: Path) -> None:
    node = Node(tmp_path, prefix=str(tmp_path / "node1" / "disk"))
    spec = disk_spec(node)
    local = f"{tmp_path}/node1/disk{spec['logical_id'][1]}"
    assert node.call("blockdev_create", disk=spec) == {"path": local}
    with pytest.raises(errors.AlreadyExists):
        node.call("blockdev_create", disk=spec)
    assert node.call("blockdev_assemble", disk=spec) == {"path": local}
    assert node.call("blockdev_shutdown", disk=spec) is None
    node.call("blockdev_grow", disk=spec, amount=8)
    missing = disk_spec(node, index=1)
    assert node.call("blockdev_info", disks=[spec, missing]) == [
        {"path": local, "exists": True, "size": 16},
        {"path": f"{tmp_path}/node1/disk{missing['logical_id'][1]}", "exists": False,
         "size": None}]
    with pytest.raises(errors.WrongState):
        node.call("blockdev_assemble", disk=missing)
    new_id = ["loop", f"{node.file_dir}/vm2/d0.file.disk0"]
    node.call("blockdev_rename", disk=spec, new_logical_id=new_id)
    renamed = dict(spec, logical_id=new_id)
    assert node.call("blockdev_info", disks=[renamed])[0]["exists"]
    node.call("blockdev_remove", disk=renamed)
    node.call("blockdev_remove", disk=renamed)
    assert not node.call("blockdev_info", disks=[renamed])[0]["exists"]
    with pytest.raises(errors.WrongInput, match="missing"):
        node.call("blockdev_create")
    with pytest.raises(errors.WrongInput, match="amount"):
        node.call("blockdev_grow", disk=spec, amount="8")


def test_copying_a_disk_in_chunks(tmp_path: Path) -> None:
    node = Node(tmp_path)
    source, target = disk_spec(node, inst="src", size=1), disk_spec(node, inst="dst", size=1)
    node.call("blockdev_create", disk=source)
    node.call("blockdev_create", disk=target)
    with open(source["logical_id"][1], "r+b") as handle:
        handle.seek(700000)
        handle.write(b"payload")
    offset, chunk = 0, 256 * 1024
    while True:
        got = node.call("blockdev_read", disk=source, offset=offset, length=chunk)
        if got["data"] is not None:
            node.call("blockdev_write", disk=target, offset=offset, data=got["data"])
        offset += got["length"]
        if got["eof"]:
            break
    data = Path(target["logical_id"][1]).read_bytes()
    assert data == Path(source["logical_id"][1]).read_bytes()
    with pytest.raises(errors.WrongInput):
        node.call("blockdev_read", disk=source, offset=0, length=1 << 30)


def test_os_diagnose_and_validate(tmp_path: Path) -> None:
    node = Node(tmp_path)
    found = node.call("os_diagnose")
    assert [(e["name"], e["status"]) for e in found] == [("dummy", True)]
    assert found[0]["variants"] == ["default", "other"]
    assert [p[0] for p in found[0]["parameters"]] == ["flavour", "record"]
    assert node.call("os_validate", os="dummy+other", osparams={"flavour": "x"}) is None
    with pytest.raises(errors.WrongInput, match="refuses the parameters"):
        node.call("os_validate", os="dummy+default", osparams={"flavour": "invalid"})
    with pytest.raises(errors.WrongInput, match="not installed"):
        node.call("os_validate", os="debootstrap+default", osparams={})


def test_instance_lifecycle_diskless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facts, "memory", lambda: {"memory_total": 4096, "memory_free": 1000,
                                                  "memory_dom0": 3096})
    node = Node(tmp_path)
    record = tmp_path / "record"
    spec = inst_spec(osparams={"record": str(record)})
    node.call("instance_os_add", instance=spec, reinstall=False)
    assert "INSTANCE_NAME=vm1" in record.read_text()
    logs = list((tmp_path / "node1" / "log" / "os").iterdir())
    assert len(logs) == 1 and logs[0].name.startswith("create-vm1-")

    before = facts.node_info(node.ssconf, node.paths.root)
    node.call("instance_start", instance=spec)
    node.call("instance_start", instance=spec)  # already running: fine, as in Ganeti
    assert node.call("instance_list", hypervisors=["fake"]) == ["vm1"]
    assert node.call("instance_list") == ["vm1"]
    info = node.call("instance_info_all", hypervisors=["fake"])
    assert set(info) == {"vm1"} and info["vm1"]["memory"] == 200
    after = facts.node_info(node.ssconf, node.paths.root)
    assert (before["instances_memory"], before["memory_free"]) == (0, 1000)
    assert (after["instances_memory"], after["memory_free"]) == (200, 800)
    assert after["memory_total"] == 4096

    started = info["vm1"]["started"]
    for kind in ("soft", "hard", "full"):
        node.call("instance_reboot", instance=spec, reboot_type=kind, shutdown_timeout=5)
        now = node.call("instance_info_all", hypervisors=["fake"])["vm1"]["started"]
        assert now >= started
        started = now
    with pytest.raises(errors.WrongInput, match="reboot type"):
        node.call("instance_reboot", instance=spec, reboot_type="gentle")
    node.call("instance_shutdown", instance=spec, timeout=5)
    node.call("instance_shutdown", instance=spec, timeout=5)  # idempotent
    assert node.call("instance_list", hypervisors=["fake"]) == []
    with pytest.raises(errors.WrongState, match="not running"):
        node.call("instance_reboot", instance=spec, reboot_type="soft")
    node.call("instance_reboot", instance=spec, reboot_type="full")  # full starts it
    assert node.call("instance_list", hypervisors=["fake"]) == ["vm1"]
    with pytest.raises(errors.WrongInput, match="not supported"):
        node.call("instance_list", hypervisors=["xen-pvm"])


def test_os_script_failure_reaches_the_caller(tmp_path: Path) -> None:
    node = Node(tmp_path)
    with pytest.raises(errors.ExecError) as failed:
        node.call("instance_os_add", instance=inst_spec(osparams={"flavour": "fail"}),
                  reinstall=False)
    assert failed.value.hint is not None and "failing on purpose" in failed.value.hint
    with pytest.raises(errors.WrongInput, match="does not support variant"):
        node.call("instance_os_add", instance=inst_spec(os="dummy+nope"), reinstall=False)


def test_start_needs_the_disks(tmp_path: Path) -> None:
    node = Node(tmp_path)
    spec = inst_spec(disks=[disk_spec(node)])
    with pytest.raises(errors.WrongState, match="instance vm1, disk 0: file disk"):
        node.call("instance_start", instance=spec)
    assert node.call("instance_list") == []
    node.call("blockdev_create", disk=spec["disks"][0])
    node.call("instance_start", instance=spec)
    state = json.loads((tmp_path / "node1" / "hv" / "fake" / "vm1.json").read_text())
    assert state["disks"] == [spec["disks"][0]["logical_id"][1]]


def test_install_and_rename_on_file_disks(tmp_path: Path) -> None:
    if not loop_works(tmp_path):
        pytest.skip("losetup can't attach loop devices here")
    node = Node(tmp_path, prefix=str(tmp_path / "node1" / "disk"))
    disks = [disk_spec(node, 0), disk_spec(node, 1, size=4)]
    spec = inst_spec(disks=disks)
    for d in disks:
        node.call("blockdev_create", disk=d)
    node.call("instance_os_add", instance=spec, reinstall=True)
    image = Path(node.call("blockdev_assemble", disk=disks[0])["path"])
    head = image.read_bytes()[:65536].split(b"\0", 1)[0].decode()
    assert "DISK_1_PATH=/dev/loop" in head and "INSTANCE_REINSTALL=1" in head
    assert "DISK_0_BACKEND_TYPE=block" in head
    attached = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True)
    assert attached.stdout == ""
    node.call("instance_os_rename", instance=inst_spec("vm2", disks=disks), old_name="vm1")
    second = image.read_bytes()[65536:131072].split(b"\0", 1)[0].decode()
    assert "OLD_INSTANCE_NAME=vm1" in second and "INSTANCE_NAME=vm2" in second


def test_migration_calls(tmp_path: Path) -> None:
    source = Node(tmp_path / "a")
    target = Node(tmp_path / "b")
    spec = inst_spec()
    source.call("instance_start", instance=spec)
    info = target.call("accept_instance", instance=spec, source="node1")
    source.call("instance_migrate", instance=spec, target="node2", info=info, live=True)
    target.call("instance_finalize_migration_dst", instance=spec, success=True)
    source.call("instance_finalize_migration_src", instance=spec, success=True)
    assert source.call("instance_list") == [] and target.call("instance_list") == ["vm1"]


def test_memory_free_never_goes_below_zero(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facts, "memory", lambda: {"memory_total": 1024, "memory_free": 100,
                                                  "memory_dom0": 924})
    node = Node(tmp_path)
    node.call("instance_start", instance=inst_spec())
    info = facts.node_info(node.ssconf, node.paths.root)
    assert (info["instances_memory"], info["memory_free"]) == (200, 0)
