"""The ``fake`` hypervisor: real per-node state, no virtual machine.

Each running instance is a small JSON file in the node's state directory, so start, stop,
reboot, list and migrate behave as on a real hypervisor and survive a node daemon restart.
Instances "use" their memory: the node reports it as taken, so resource checks are real.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Any

from cardume import errors
from cardume.node.hypervisor.base import Hypervisor, Spec


class FakeHypervisor(Hypervisor):
    NAME = "fake"
    CAN_MIGRATE = True

    # A scan of the state directory is cached while the directory's mtime stays the same.
    # A directory changed less than this long before a scan began is not trusted to show
    # later changes in its mtime (timestamps are coarse), so such a scan is not cached.
    RACY_NS = 100_000_000

    def __init__(self, state_dir: str) -> None:
        self.dir = state_dir
        os.makedirs(self.dir, exist_ok=True)
        self._scan: tuple[int, dict[str, dict[str, Any]]] | None = None

    def _path(self, name: str) -> str:
        if not isinstance(name, str) or not name or "/" in name or "\0" in name \
                or name.startswith("."):
            raise errors.WrongInput(f"invalid instance name {name!r}")
        return os.path.join(self.dir, f"{name}.json")

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            with open(self._path(name), encoding="utf-8") as handle:
                data: dict[str, Any] = json.load(handle)
                return data
        except (FileNotFoundError, ValueError):
            return None

    def _write(self, name: str, data: dict[str, Any], exclusive: bool = False) -> None:
        """Write the state file atomically; with exclusive, fail if it exists already."""
        path = self._path(name)
        self._scan = None
        os.makedirs(self.dir, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)  # no fsync: the state must outlive the daemon, not the host
        try:
            if exclusive:
                os.link(tmp, path)  # atomic "create if absent": two starts can't both win
            else:
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def list_instances(self) -> list[str]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(f[:-5] for f in names if f.endswith(".json") and not f.startswith("."))

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
        beparams = spec.get("beparams") or {}
        try:
            memory, vcpus = int(beparams["maxmem"]), int(beparams["vcpus"])
        except (KeyError, TypeError, ValueError):
            raise errors.WrongInput(f"instance {name}: beparams need integer maxmem and "
                                    "vcpus") from None
        data = {"name": name, "uuid": spec.get("uuid"), "memory": memory, "vcpus": vcpus,
                "disks": [d.get("path") for d in spec.get("disks", [])],
                "started": time.time()}
        try:
            self._write(name, data, exclusive=True)
        except FileExistsError:
            raise errors.WrongState(f"instance {name} is already running on this "
                                    "node") from None

    def all_instances_info(self) -> dict[str, dict[str, Any]]:
        try:
            mtime = os.stat(self.dir).st_mtime_ns
        except FileNotFoundError:
            return {}
        scan = self._scan
        if scan is None or scan[0] != mtime:
            began = time.time_ns()
            found = super().all_instances_info()
            self._scan = scan = (mtime, found) if mtime < began - self.RACY_NS else None
            if scan is None:
                return found
        return {name: dict(info) for name, info in scan[1].items()}

    def stop(self, name: str, timeout: float, force: bool) -> None:
        self._scan = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name))

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

    def migrate(self, name: str, target: str, info: dict[str, Any], live: bool,
                hvparams: dict[str, Any] | None = None) -> None:
        if self._read(name) is None:
            raise errors.WrongState(f"instance {name} is not running, so it can't migrate")

    def finalize_migration_target(self, spec: Spec, success: bool) -> None:
        if success:
            self.start(spec)

    def finalize_migration_source(self, name: str, success: bool) -> None:
        if success:
            self.stop(name, 0, True)
