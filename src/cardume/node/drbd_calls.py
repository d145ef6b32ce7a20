"""Node RPC handlers for the drbd template's mirrors: their state in /proc/drbd, their
connections to the peer, their roles, and new local volumes under them."""

from __future__ import annotations

import re
from typing import Any

from cardume import errors
from cardume.node.callkit import NodeContext, blocking
from cardume.node.storage import drbd
from cardume.rpc.calls import serves
from cardume.rpc.http import PeerInfo
from cardume.rpc.wire import DiskSpec


class DrbdCalls:
    def __init__(self, node: NodeContext) -> None:
        self.node = node

    def _drbd_disks(self, specs: list[DiskSpec]) -> list[drbd.DrbdDisk]:
        devs = self.node.disks(specs)
        for dev in devs:
            if not isinstance(dev, drbd.DrbdDisk):
                raise errors.WrongInput(f"disk {dev.path} is not a DRBD disk")
        return devs  # type: ignore[return-value]

    @serves
    async def drbd_status(self, peer: PeerInfo, minors: list[int] | None) -> dict[str, Any]:
        """-> {"version", "minors": {minor: /proc/drbd status}}: one read of /proc/drbd
        for every minor asked (all when none is named). A node without DRBD loaded
        answers version null and no minors."""
        wanted = minors

        def read() -> dict[str, Any]:
            try:
                text = drbd.read_proc_drbd()
            except errors.EnvironmentProblem:
                return {"version": None, "minors": {}}
            found = drbd.parse_proc_drbd(text)
            if wanted is not None:
                found = {m: found[m] for m in wanted if m in found}
            alone = [st for st in found.values() if st["cstate"] == "StandAlone"]
            split = drbd.split_brain_minors(drbd.read_kmsg()) if alone else set()
            for st in found.values():
                st["split_brain"] = st["minor"] in split and st["cstate"] == "StandAlone"
            version = drbd.parse_version(text)
            return {"version": version["version"] if version else None,
                    "minors": {str(m): st for m, st in found.items()}}
        return await blocking(read)

    @serves
    async def drbd_connect(self, peer: PeerInfo, disks: list[DiskSpec],
                           dual_primary: bool) -> None:
        """Attach (if needed) and connect to the peers."""
        devs = self._drbd_disks(disks)

        def connect() -> None:
            for dev in devs:
                dev.attach()
                dev.connect(dual_primary=dual_primary)
        await blocking(connect)

    @serves
    async def drbd_disconnect(self, peer: PeerInfo, disks: list[DiskSpec]) -> None:
        """Drop the network connections (the disks stay attached)."""
        devs = self._drbd_disks(disks)

        def disconnect() -> None:
            for dev in devs:
                dev.disconnect()
        await blocking(disconnect)

    @serves
    async def drbd_replace_local(self, peer: PeerInfo, disks: list[DiskSpec], suffix: str,
                                 standalone: bool) -> list[list[list[str]]]:
        """New empty LVs under each disk's local side, synced from the peer (standalone:
        this side is split from its peer, whose changes win); returns, per disk, the
        [vg, lv] ids of the old LVs (renamed with suffix), which the master removes once
        the sync has ended."""
        devs = self._drbd_disks(disks)
        if not re.fullmatch(r"_[A-Za-z0-9_.+-]{1,40}", suffix):
            raise errors.WrongInput(f"invalid suffix {suffix!r}: expected '_' and up to 40 "
                                    "letters, digits or '_.+-'")
        return await blocking(lambda: [dev.replace_local(suffix, standalone) for dev in devs])

    @serves
    async def drbd_set_role(self, peer: PeerInfo, disks: list[DiskSpec], role: str,
                            force: bool) -> None:
        """primary|secondary; force only overrides DRBD's check that this side has good
        data (the initial sync, or a dead peer)."""
        devs = self._drbd_disks(disks)
        if role not in ("primary", "secondary"):
            raise errors.WrongInput(f"invalid DRBD role {role!r}: expected primary or "
                                    "secondary")

        def apply() -> None:
            for dev in devs:
                if role == "primary":
                    dev.primary(force=force)
                else:
                    dev.secondary()
        await blocking(apply)
