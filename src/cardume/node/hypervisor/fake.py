"""The ``fake`` hypervisor: real per-node state, no virtual machine.

Each running instance is a small JSON file in the node's state directory, so start, stop,
reboot, list and migrate behave as on a real hypervisor and survive a node daemon restart.
Instances "use" their memory: the node reports it as taken, so resource checks are real.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from cardume import errors
from cardume.node.hypervisor.base import Hypervisor, Spec


class FakeHypervisor(Hypervisor):
    NAME = "fake"
    CAN_MIGRATE = True

    def __init__(self, state_dir: str) -> None:
        self.dir = state_dir
        os.makedirs(self.dir, exist_ok=True)

    def _path(self, name: str) -> str:
        if "/" in name or name.startswith("."):
            raise errors.WrongInput(f"invalid instance name {name!r}")
        return os.path.join(self.dir, f"{name}.json")

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            with open(self._path(name), encoding="utf-8") as handle:
                data: dict[str, Any] = json.load(handle)
                return data
        except (FileNotFoundError, ValueError):
            return None

    def _write(self, name: str, data: dict[str, Any]) -> None:
        tmp = self._path(name) + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, self._path(name))

    def list_instances(self) -> list[str]:
        return sorted(f[:-5] for f in os.listdir(self.dir) if f.endswith(".json"))

    def instance_info(self, name: str) -> dict[str, Any] | None:
        data = self._read(name)
        if data is None:
            return None
        return {"state": "running", "memory": data["memory"], "vcpus": data["vcpus"],
                "started": data["started"]}

    def start(self, spec: Spec) -> None:
        name = spec["name"]
        if self._read(name) is not None:
            raise errors.WrongState(f"instance {name} is already running on this node")
        self._write(name, {"name": name, "uuid": spec.get("uuid"),
                           "memory": int(spec["beparams"]["maxmem"]),
                           "vcpus": int(spec["beparams"]["vcpus"]),
                           "disks": [d.get("path") for d in spec.get("disks", [])],
                           "started": time.time()})

    def stop(self, name: str, timeout: float, force: bool) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass

    def reboot(self, name: str) -> None:
        data = self._read(name)
        if data is None:
            raise errors.WrongState(f"instance {name} is not running, so it can't reboot")
        data["started"] = time.time()
        self._write(name, data)

    def accept_instance(self, spec: Spec, source: str) -> dict[str, Any]:
        if self._read(spec["name"]) is not None:
            raise errors.WrongState(f"instance {spec['name']} already runs on the target")
        return {}

    def migrate(self, name: str, target: str, info: dict[str, Any], live: bool) -> None:
        if self._read(name) is None:
            raise errors.WrongState(f"instance {name} is not running, so it can't migrate")

    def finalize_migration_target(self, spec: Spec, success: bool) -> None:
        if success:
            self.start(spec)

    def finalize_migration_source(self, name: str, success: bool) -> None:
        if success:
            self.stop(name, 0, True)
