"""What the node's disk, instance and OS handlers share: the node they run on (its paths,
identity, ssconf and command runner), how a disk spec becomes a block device, how a
hypervisor is picked, and worker threads for anything that blocks.

The handlers themselves live by what they serve: node/blockdev_calls.py (disks and storage
inventory), node/drbd_calls.py (DRBD roles and connections), node/instance_calls.py
(hypervisor: start, stop, migrate, console), node/os_calls.py (OS scripts). Each handler is
small: its arguments come checked against the call table (rpc/calls.py), and it runs
anything that blocks (scripts, losetup, file I/O) in a worker thread so the daemon keeps
answering other calls meanwhile.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from cardume import errors
from cardume.node import facts, hypervisor, osapi, storage
from cardume.node.cmd import CommandRunner
from cardume.node.hypervisor.base import Hypervisor
from cardume.node.storage import drbd
from cardume.node.storage.base import BlockDev
from cardume.paths import NodePaths
from cardume.rpc.wire import DiskSpec, InstanceSpec

T = TypeVar("T")
MAX_SCRIPTS = 64  # OS scripts running at once on one node; more wait for a free thread

_script_pool: ThreadPoolExecutor | None = None


def _scripts() -> ThreadPoolExecutor:
    """Threads for OS scripts, which may run for hours: kept apart from the default pool, so
    many installs at once never hold up the short calls (node_info, instance_list...)."""
    global _script_pool
    if _script_pool is None:
        _script_pool = ThreadPoolExecutor(max_workers=MAX_SCRIPTS,
                                          thread_name_prefix="os-script")
    return _script_pool


async def blocking(func: Callable[..., T], *args: Any, long: bool = False,
                   **kwargs: Any) -> T:
    """Run func in a worker thread (long: one of the script threads); an OSError becomes an
    ExecError that says what failed."""
    def run() -> T:
        try:
            return func(*args, **kwargs)
        except OSError as err:
            where = f" ({err.filename})" if err.filename else ""
            raise errors.ExecError(f"{err.strerror or err}{where}") from err
    if long:
        return await asyncio.get_running_loop().run_in_executor(_scripts(), run)
    return await asyncio.to_thread(run)


class NodeContext:
    """The node the handlers run on; ``ssconf`` is read at each call (it changes),
    node.json once."""

    def __init__(self, paths: NodePaths, name: str, ssconf: Callable[[], dict[str, Any]],
                 runner: CommandRunner | None = None) -> None:
        self.paths = paths
        self.name = name
        self.ssconf = ssconf
        self.identity = paths.read_identity()
        self.runner = runner  # None: the real commands (tests pass a FakeRunner)

    @property
    def storage_prefix(self) -> str:
        return str(self.identity.get("storage_prefix") or "")

    @property
    def os_log_dir(self) -> str:
        return os.path.join(self.paths.log_dir, "os")

    def os_search_path(self) -> list[str]:
        return osapi.search_path(self.ssconf())

    def disk(self, spec: DiskSpec, ssconf: dict[str, Any] | None = None) -> BlockDev:
        return storage.from_spec(spec.to_dict(), self.ssconf() if ssconf is None else ssconf,
                                 self.identity, self.runner, node_root=self.paths.root)

    def disks(self, specs: list[DiskSpec]) -> list[BlockDev]:
        ssconf = self.ssconf()
        return [self.disk(spec, ssconf) for spec in specs]

    def hv(self, name: str | None) -> Hypervisor:
        if not isinstance(name, str):
            raise errors.WrongInput(f"bad hypervisor name {name!r}")
        return hypervisor.get(name, self.paths.root)

    def hypervisors(self, names: list[str] | None) -> list[Hypervisor]:
        """The named hypervisors, or every one this node has."""
        if names is None:
            names = [n for n in facts.hypervisors() if n in hypervisor.SUPPORTED]
        return [self.hv(n) for n in dict.fromkeys(names)]

    def assemble(self, spec: InstanceSpec) -> list[str]:
        """Local paths of an instance's disks, each checked to exist (worker thread).

        The instance is about to run or be written here, so a DRBD disk is made primary:
        DRBD itself refuses that unless this side has good data, or while the peer is
        primary without dual-primary mode, which keeps a second writer out."""
        paths = []
        ssconf = self.ssconf()
        for index, disk in enumerate(spec.disks):
            try:
                dev = self.disk(disk, ssconf)
                paths.append(dev.assemble())
                if isinstance(dev, drbd.DrbdDisk):
                    dev.primary()
            except errors.CardumeError as err:
                raise type(err)(f"instance {spec.name}, disk {index}: {err.message}",
                                err.hint) from None
        return paths

    def release(self, spec: InstanceSpec) -> None:
        for dev in self.disks(spec.disks):
            dev.shutdown()

    @staticmethod
    def with_paths(spec: InstanceSpec, paths: list[str]) -> dict[str, Any]:
        """The instance as the hypervisor and OS scripts get it: each disk with its path."""
        data = spec.to_dict()
        data["disks"] = [dict(d, path=p) for d, p in zip(data["disks"], paths, strict=True)]
        return data
