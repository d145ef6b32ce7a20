"""The node's disk, DRBD, instance and OS handlers together, on one node (the node daemon
adds its own: joining, facts, replicas; tests serve these alone, in-process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cardume.node.backup_calls import BackupCalls
from cardume.node.blockdev_calls import BlockdevCalls
from cardume.node.callkit import NodeContext
from cardume.node.cmd import CommandRunner
from cardume.node.drbd_calls import DrbdCalls
from cardume.node.instance_calls import InstanceCalls
from cardume.node.os_calls import OsCalls
from cardume.paths import NodePaths
from cardume.rpc import calls
from cardume.rpc.http import Handler


class LocalCalls:
    def __init__(self, paths: NodePaths, name: str, ssconf: Callable[[], dict[str, Any]],
                 runner: CommandRunner | None = None) -> None:
        self.node = NodeContext(paths, name, ssconf, runner)
        self.providers: tuple[object, ...] = (
            BlockdevCalls(self.node), DrbdCalls(self.node), InstanceCalls(self.node),
            OsCalls(self.node), BackupCalls(self.node))
        self._handlers: dict[str, Handler] | None = None

    @property
    def storage_prefix(self) -> str:
        return self.node.storage_prefix

    def handlers(self) -> dict[str, Handler]:
        """These calls' handlers, each checking its arguments against the call table."""
        if self._handlers is None:
            self._handlers = calls.handlers(*self.providers, complete=False)
        return self._handlers
