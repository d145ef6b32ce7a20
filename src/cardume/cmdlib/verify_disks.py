"""gnt-cluster verify-disks: find mirrors that are broken, degraded or split, mend what is
safe to mend, and say what is left to the admin.

Only the disks that should be up are looked at: those of running instances and those
activated by hand. Each node is asked once for all the minors it should have. Then, per
disk and node:

* not set up, or set up but not connected while its peer is reachable: it is brought up
  and reconnected (DRBD then resyncs whatever changed, from the side with the newer data);
* standing alone after an unresolved split brain: reported, never touched. Both sides have
  changes the other lacks, and choosing which to throw away is the admin's call;
* a local disk that failed (Diskless, Failed): reported with the replace-disks to run;
* a node offline or not answering: reported.

After reconnecting, the disks are checked again a few seconds later, so a reconnection
that ends in a split brain is reported in the same run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cardume import errors, objects, opcodes
from cardume.cmdlib import drbd
from cardume.cmdlib.base import ALL, LogicalUnit, register
from cardume.jobs import locks
from cardume.rules import disk_templates

RECHECK_DELAY = 3.0
_FAILED_DISKS = ("Diskless", "Failed")


@register
class LUClusterVerifyDisks(LogicalUnit):
    OP = opcodes.OpClusterVerifyDisks

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_INSTANCE: (ALL, False), locks.LEVEL_NODE: (ALL, True)}

    async def check_prereq(self) -> None:
        self.group = (self.cfg.expand_group(self.op.group_name) if self.op.group_name
                      else None)

    def _instances(self) -> list[objects.Instance]:
        found = []
        for inst in sorted(self.cfg.instances.values(), key=lambda i: i.name):
            if not disk_templates.of(inst.disk_template).network_mirrored:
                continue
            if not (inst.disks_active or inst.admin_state == "up"):
                continue
            if self.group is not None and \
                    self.cfg.nodes[inst.primary_node].group != self.group.uuid:
                continue
            found.append(inst)
        return found

    async def _gather(self, instances: list[objects.Instance]) -> dict[str, Any]:
        """node uuid -> its drbd_status reply, or an error string."""
        wanted: dict[str, list[int]] = {}
        for inst in instances:
            for disk in drbd.iter_drbd(inst.disks):
                for node_uuid in disk.nodes:
                    wanted.setdefault(node_uuid, []).append(drbd.minor_on(disk, node_uuid))

        async def ask(node_uuid: str, minors: list[int]) -> tuple[str, Any]:
            node = self.cfg.nodes[node_uuid]
            if node.offline:
                return node_uuid, "offline"
            try:
                return node_uuid, await self.rpc.timed(10.0).drbd_status(node, minors)
            except errors.CardumeError as err:
                return node_uuid, f"not answering ({err})"
        replies = await asyncio.gather(*(ask(u, m) for u, m in wanted.items()))
        return dict(replies)

    async def exec(self) -> dict[str, Any]:
        instances = self._instances()
        result: dict[str, Any] = {"node_errors": {}, "reconnected": [], "split_brain": [],
                                  "failed_disks": [], "degraded": [], "syncing": []}
        if not instances:
            self.log_info("No mirrored disks are active: nothing to verify")
            return result
        replies = await self._gather(instances)
        for node_uuid, reply in replies.items():
            if isinstance(reply, str):
                result["node_errors"][self.cfg.nodes[node_uuid].name] = reply
        to_mend = []
        for inst in instances:
            problems = self._examine(inst, replies, result)
            if problems:
                to_mend.append(inst)
        for inst in to_mend:
            self.log_info(f"Reconnecting the disks of instance {inst.name}")
            try:
                await drbd.assemble(self, inst, None, ignore_secondaries=True)
                result["reconnected"].append(inst.name)
            except errors.CardumeError as err:
                self.log_warning(f"could not reconnect the disks of {inst.name}: {err}")
        if to_mend:
            await asyncio.sleep(RECHECK_DELAY)
            replies = await self._gather(to_mend)
            for inst in to_mend:
                self._examine(inst, replies, result, recheck=True)
        self._summary(result)
        return result

    def _examine(self, inst: objects.Instance, replies: dict[str, Any],
                 result: dict[str, Any], recheck: bool = False) -> bool:
        """Record what is wrong with an instance's disks; True if reconnecting may help."""
        mend = False
        for disk in drbd.iter_drbd(inst.disks):
            sides = {}
            for node_uuid in disk.nodes:
                reply = replies.get(node_uuid)
                if isinstance(reply, dict):
                    minor = drbd.minor_on(disk, node_uuid)
                    sides[node_uuid] = reply.get("minors", {}).get(str(minor))
            where = f"{inst.name} {disk.iv_name}"
            for node_uuid, st in sides.items():
                node = self.cfg.nodes[node_uuid].name
                peer_reachable = isinstance(replies.get(drbd.peer_of(disk, node_uuid)), dict)
                if st is None:
                    mend = mend or not recheck
                    if recheck:
                        self._add(result, "degraded", f"{where} on {node}: not set up")
                    continue
                if st.get("split_brain"):
                    self._add(result, "split_brain", f"{where}: split brain between "
                              f"{', '.join(self.cfg.nodes[u].name for u in disk.nodes)}")
                    continue
                if st["disk"] in _FAILED_DISKS:
                    mode = "-p" if node_uuid == inst.primary_node else "-s"
                    self._add(result, "failed_disks",
                              f"{where} on {node}: local disk {st['disk']}; replace it with "
                              f"'gnt-instance replace-disks {mode} {inst.name}'")
                    continue
                if not st["connected"] and peer_reachable:
                    if recheck:
                        self._add(result, "degraded",
                                  f"{where} on {node}: {st['cstate']} after reconnecting")
                    else:
                        mend = True
                    continue
                if st["resyncing"] and st.get("sync_percent") is not None:
                    self._add(result, "syncing", f"{where} on {node}: syncing, "
                              f"{st['sync_percent']:.1f}% done")
                elif st["degraded"] and not st["resyncing"] and st["connected"]:
                    self._add(result, "degraded", f"{where} on {node}: {st['cstate']} "
                              f"{st['disk']}/{st['peer_disk']}")
        return mend

    @staticmethod
    def _add(result: dict[str, Any], kind: str, text: str) -> None:
        if text not in result[kind]:
            result[kind].append(text)

    def _summary(self, result: dict[str, Any]) -> None:
        for node, error in sorted(result["node_errors"].items()):
            self.log_warning(f"node {node}: {error}")
        for text in result["split_brain"]:
            self.log_warning(f"{text}: both sides have changes the other lacks; nothing was "
                             "discarded (README: 'Split brain' says how to choose the side "
                             "to keep)")
        for key in ("failed_disks", "degraded"):
            for text in result[key]:
                self.log_warning(text)
        for text in result["syncing"]:
            self.log_info(text)
