"""Node RPC handlers for OS definitions: run an instance's create and rename scripts, list
and check the definitions in the search path (node/osapi.py runs the scripts)."""

from __future__ import annotations

import logging
from typing import Any

from cardume.node import osapi
from cardume.node.callkit import NodeContext, blocking
from cardume.rpc.calls import serves
from cardume.rpc.http import PeerInfo
from cardume.rpc.wire import InstanceSpec

log = logging.getLogger("cardume.noded")


class OsCalls:
    def __init__(self, node: NodeContext) -> None:
        self.node = node

    @serves
    async def instance_os_add(self, peer: PeerInfo, instance: InstanceSpec,
                              reinstall: bool) -> None:
        node = self.node
        search = node.os_search_path()
        paths = await blocking(node.assemble, instance)
        logfile = await blocking(osapi.install, instance.to_dict(), search, paths,
                                 log_dir=node.os_log_dir, reinstall=reinstall,
                                 node_name=node.name, long=True)
        log.info("installed the OS of instance %s (log %s)", instance.name, logfile)

    @serves
    async def instance_os_rename(self, peer: PeerInfo, instance: InstanceSpec,
                                 old_name: str) -> None:
        node = self.node
        search = node.os_search_path()
        paths = await blocking(node.assemble, instance)
        await blocking(osapi.rename, instance.to_dict(), old_name, search, paths,
                       log_dir=node.os_log_dir, node_name=node.name, long=True)

    @serves
    async def os_diagnose(self, peer: PeerInfo) -> list[dict[str, Any]]:
        return await blocking(osapi.diagnose, self.node.os_search_path())

    @serves
    async def os_validate(self, peer: PeerInfo, os: str,
                          osparams: dict[str, Any] | None) -> None:
        await blocking(osapi.validate, os, osparams or {}, self.node.os_search_path(),
                       long=True)
