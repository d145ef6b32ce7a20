"""gnt-backup: export an instance to a node's export directory, list and remove exports.

An export runs the OS definition's export script once per disk on the primary node; its
output is the disk's dump, streamed chunk by chunk through the master into a staging
directory of the target node (cmdlib/backup_transfer.py), which becomes
``EXPORT_DIR/<instance>`` (with config.ini) only when every disk is there. While the disks
are read the instance is stopped, unless --noshutdown; a file disk is copied first (its
snapshot), a plain or drbd disk gets an LVM snapshot, so the instance runs again before its
export script starts (other templates keep it stopped, only with --long-sleep). A failure
removes the staging directories and starts the instance again if it was running: no half
export is left.
"""

from __future__ import annotations

import uuid
from typing import Any

from cardume import errors, objects, opcodes
from cardume.cmdlib import backup_config, common
from cardume.cmdlib.backup_transfer import new_work, stream_export
from cardume.cmdlib.base import LogicalUnit, register
from cardume.cmdlib.instance import LUInstanceRemove, _InstanceLU
from cardume.jobs import locks

# a copy of the file is the snapshot of file disks; plain and drbd get an LVM snapshot
SNAPSHOT_TEMPLATES = ("file", "sharedfile", "plain", "drbd")


@register
class LUBackupPrepare(_InstanceLU):
    OP = opcodes.OpBackupPrepare

    def check_arguments(self) -> None:
        if self.op.mode == "remote":
            raise errors.WrongInput("remote exports are not supported yet (mode 'remote'); "
                                    "use mode 'local' and copy the export directory")

    async def exec(self) -> None:
        """A local export needs no preparation (Ganeti answers nothing either)."""
        return None


@register
class LUBackupExport(_InstanceLU):
    OP = opcodes.OpBackupExport

    def check_arguments(self) -> None:
        op = self.op
        if op.mode == "remote":
            raise errors.WrongInput("remote exports are not supported yet (mode 'remote'); "
                                    "export to a node (mode 'local') and copy the "
                                    "export directory to the other cluster")
        if not op.target_node:
            raise errors.WrongInput("no target node given: -n NODE")
        if op.zero_free_space:
            raise errors.WrongInput("--zero-free-space is not supported yet")
        self.NODE_LOCKS_SHARED = not op.remove_instance

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        declared = super().declare_locks()
        names, shared = declared[locks.LEVEL_NODE]
        target = self.cfg.find_node(str(self.op.target_node))
        declared[locks.LEVEL_NODE] = ([*names, target.name if target else
                                       str(self.op.target_node)], shared)
        return declared

    async def check_prereq(self) -> None:
        await super().check_prereq()
        op, inst = self.op, self.inst
        self.target = self.cfg.expand_node(str(op.target_node))
        for node, role in ((self.pnode, "primary node"), (self.target, "target node")):
            if node.offline:
                raise errors.WrongState(f"{role} {node.name} is offline")
        if not inst.disks:
            raise errors.WrongInput(f"instance {inst.name} has no disks: nothing to export")
        self.running = await self.running_on_primary()
        self.snapshots = inst.disk_template in SNAPSHOT_TEMPLATES
        if op.shutdown and self.running and not self.snapshots and not op.long_sleep:
            raise errors.WrongInput(
                f"the disks of instance {inst.name} ({inst.disk_template}) can't be "
                "snapshotted, so it would stay stopped for the whole export",
                "allow that with --long-sleep, or export it running with --noshutdown")

    async def exec(self) -> Any:
        inst, pnode, target = self.inst, self.pnode, self.target
        work = new_work()
        for node in {pnode.uuid: pnode, target.uuid: target}.values():
            self.undo_later(node, "export_abort", {"work": work},
                            f"the unfinished export of {inst.name} on {node.name}")
        stopped = False
        try:
            spec = self.spec()
            if self.op.shutdown and self.running:
                self.log_info(f"Shutting down instance {inst.name}")
                await self.rpc.instance_shutdown(pnode, spec, self.op.shutdown_timeout)
                stopped = True
            snapshots: list[str | None] = [None] * len(inst.disks)
            if self.snapshots:
                for index in range(len(inst.disks)):
                    self.log_info(f"Snapshotting disk/{index} on {pnode.name}")
                    reply = await self.rpc.export_snapshot(pnode, spec, index, work)
                    snapshots[index] = reply.get("snapshot")
                if stopped and None in snapshots and not self.op.long_sleep:
                    raise errors.ExecError(
                        f"not every disk of {inst.name} could be snapshotted, and it may "
                        "not stay stopped for the whole export",
                        "allow that with --long-sleep")
                if stopped and None not in snapshots and not self.op.remove_instance:
                    await self._restart()
                    stopped = False
            dumps = []
            for index in range(len(inst.disks)):
                self.log_info(f"Exporting disk/{index} from {pnode.name} to {target.name}")
                if target.uuid == pnode.uuid:
                    reply = await self.rpc.export_disk(pnode, spec, index, work,
                                                       snapshots[index])
                    dumps.append(str(reply["dump"]))
                    size = int(reply["size"])
                else:  # streamed: the primary keeps no copy of the dump
                    dumps.append(str(uuid.uuid4()))
                    size = await stream_export(self.rpc, pnode, spec, index, work,
                                               snapshots[index], target, dumps[-1])
                self.log_info(f"disk/{index} finished ({size} bytes)")
            if target.uuid != pnode.uuid:
                await self.rpc.export_abort(pnode, work)
            self.log_info(f"Finalizing export on {target.name}")
            await self.rpc.export_finalize(target, work, inst.name, self._config(dumps))
        except BaseException:
            await self.undo_now()
            if stopped:
                try:
                    await self._restart()
                except errors.CardumeError as err:
                    self.log_warning(f"could not start instance {inst.name} again: {err}")
            raise
        self.undo_done()
        if stopped and not self.op.remove_instance:  # (Ganeti: a removed one stays down)
            await self._restart()
        await self._remove_old_exports()
        if self.op.remove_instance:
            await self._remove_instance()
        return [True, [True] * len(inst.disks)]  # Ganeti's (finalized, per-disk) result

    def _config(self, dumps: list[str]) -> str:
        inst = self.inst
        cluster = self.cfg.get_cluster()
        group = self.cfg.group_of(self.pnode)
        filled_be = objects.fill_beparams(cluster, group, inst.beparams)
        nicparams = [objects.fill_nicparams(cluster, group, nic.nicparams)
                     for nic in inst.nics]
        return backup_config.build(inst, source=self.pnode.uuid, filled_be=filled_be,
                                   nicparams=nicparams, dumps=dumps)

    async def _restart(self) -> None:
        self.log_info(f"Starting instance {self.inst.name}")
        await self.activate_mirrors()
        await self.rpc.instance_start(self.pnode, self.spec())

    async def _remove_old_exports(self) -> None:
        """Exports of the instance on other nodes are older: Ganeti removes them."""
        others = [n for n in self.cfg.sorted_nodes()
                  if n.uuid != self.target.uuid and not n.offline]
        if not others:
            return
        self.log_info(f"Removing old exports for instance {self.inst.name}")
        results = await self.rpc.each(others, self.rpc.export_remove, self.inst.name)
        for name, result in sorted(results.items()):
            if result.error is not None:
                self.log_warning(f"could not remove the old export on {name}: "
                                 f"{result.error}")

    async def _remove_instance(self) -> None:
        self.log_info(f"Removing instance {self.inst.name}")
        op = opcodes.OpInstanceRemove(instance_name=self.inst.name,
                                      ignore_failures=self.op.ignore_remove_failures,
                                      shutdown_timeout=self.op.shutdown_timeout)
        remover = LUInstanceRemove(self.ctx, op, self.job)
        await remover.check_prereq()
        await remover.exec()


@register
class LUBackupRemove(LogicalUnit):
    OP = opcodes.OpBackupRemove

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        inst = self.cfg.find_instance(self.op.instance_name)
        return {locks.LEVEL_INSTANCE: ([inst.name if inst else self.op.instance_name],
                                       False)}

    async def check_prereq(self) -> None:
        inst = self.cfg.find_instance(self.op.instance_name)
        # the exports of a removed instance are still named after it
        self.name = inst.name if inst is not None else common.check_hostname(
            self.op.instance_name, "instance")

    async def exec(self) -> None:
        nodes = [n for n in self.cfg.sorted_nodes() if not n.offline]
        found = await self.ask_each(nodes, self.rpc.export_list,
                                    "could not list the exports of node {node}: {error}")
        holders = [n for n in nodes if self.name in found.get(n.uuid, [])]
        if not holders:
            raise errors.UnknownEntity(f"no export of instance {self.name} found",
                                       "see gnt-backup list")
        for node in holders:
            self.log_info(f"Removing the export of {self.name} on {node.name}")
            await self.rpc.export_remove(node, self.name)


@register
class LUBackupQuery(LogicalUnit):
    OP = opcodes.OpBackupQuery

    async def exec(self) -> dict[str, Any]:
        """{node name: [export names], or False when the node could not be asked}."""
        if self.op.nodes:
            nodes = [self.cfg.expand_node(n) for n in self.op.nodes]
        else:
            nodes = self.cfg.sorted_nodes()
        online = [n for n in nodes if not n.offline]
        results = await self.rpc.each(online, self.rpc.export_list)
        answer: dict[str, Any] = {}
        for node in nodes:
            result = results.get(node.name)
            answer[node.name] = False if result is None or result.error is not None \
                else list(result.value)
        return answer
