"""Logical units that change an existing instance in place: reinstall, rename, grow-disk,
activate/deactivate disks. Modify is in instance_setparams, moving an instance to another
node (failover, migrate, move) in instance_migrate.
"""

from __future__ import annotations

import contextlib
from typing import Any

from cardume import errors, objects, opcodes
from cardume.cmdlib import common, drbd
from cardume.cmdlib import instance_common as ic
from cardume.cmdlib.base import register
from cardume.cmdlib.instance import _InstanceLU
from cardume.jobs import locks
from cardume.rpc.wire import DiskSpec
from cardume.rules import disk_templates


@register
class LUInstanceReinstall(_InstanceLU):
    OP = opcodes.OpInstanceReinstall

    async def check_prereq(self) -> None:
        await super().check_prereq()
        self.check_stopped(await self.running_on_primary(), "reinstalling it")
        self.os_name = self.op.os_type or self.inst.os
        if not self.os_name:
            raise errors.WrongInput(f"instance {self.inst.name} has no OS; give one with -o")
        self.osparams = self.op.osparams if self.op.osparams is not None else self.inst.osparams
        await self.rpc.os_validate(self.pnode, self.os_name, dict(self.osparams))

    async def exec(self) -> None:
        edited = self.cfg.edit(self.inst)
        edited.os = self.os_name
        edited.osparams = dict(self.osparams)
        spec = ic.instance_spec(self.cfg, edited)
        await self.activate_mirrors()  # a drbd disk is written with its mirror connected
        self.log_info(f"Running the OS create script of {edited.os} on {self.pnode.name}")
        await self.rpc.instance_os_add(self.pnode, spec, reinstall=True)
        await self.release_mirrors(ignore_errors=True)
        edited = self.cfg.edit(self.cfg.instances[edited.uuid])
        edited.os = self.os_name
        edited.osparams = dict(self.osparams)
        if edited.os != self.inst.os or edited.osparams != self.inst.osparams:
            await self.cfg.commit(update=[edited])


@register
class LUInstanceRename(_InstanceLU):
    OP = opcodes.OpInstanceRename
    NODE_LOCKS_SHARED = False

    def check_arguments(self) -> None:
        common.check_hostname(self.op.new_name, "instance")
        if not self.op.name_check and self.op.ip_check:
            raise errors.WrongInput("cannot do the IP check without the name check")

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        plan = super().declare_locks()
        names, _ = plan[locks.LEVEL_INSTANCE]
        plan[locks.LEVEL_INSTANCE] = ([*names, self.op.new_name], False)
        return plan

    async def check_prereq(self) -> None:
        await super().check_prereq()
        self.new_name = self.op.new_name
        if self.op.name_check:
            self.new_name = common.check_hostname(
                self.ctx.resolver.resolve(self.op.new_name).name, "instance")
        if self.cfg.find_instance(self.new_name) is not None:
            raise errors.AlreadyExists(f"instance '{self.new_name}' already exists")
        self.check_stopped(await self.running_on_primary(), "renaming it")

    async def exec(self) -> str:
        old = self.inst
        edited = self.cfg.edit(old)
        edited.name = self.new_name
        renamed: list[tuple[objects.Disk, list[Any]]] = []
        try:
            for disk in edited.disks:
                if disk_templates.of(disk.dev_type).file_dir is None:
                    continue  # only file disks live in a directory named after the instance
                new_id = [disk.logical_id[0],
                          ic.renamed_file_path(disk.logical_id[1], self.new_name)]
                await self.rpc.blockdev_rename(self.pnode, DiskSpec.of(disk), new_id)
                renamed.append((disk, list(disk.logical_id)))
                disk.logical_id = new_id
            await self.cfg.commit(update=[edited])
        except BaseException:
            for disk, old_id in reversed(renamed):  # put the files back where they were
                with contextlib.suppress(errors.CardumeError):
                    await self.rpc.blockdev_rename(self.pnode, DiskSpec.of(disk), old_id)
            raise
        if old.os:
            try:
                await self.rpc.instance_os_rename(self.pnode, ic.instance_spec(self.cfg, edited),
                                                  old.name)
            except errors.CardumeError as err:
                self.log_warning(f"the OS rename script failed: {err}")
        return edited.name


@register
class LUInstanceGrowDisk(_InstanceLU):
    OP = opcodes.OpInstanceGrowDisk

    async def check_prereq(self) -> None:
        await super().check_prereq()
        if not self.template.has_disks:
            raise errors.WrongInput(f"instance {self.inst.name} is diskless")
        if self.op.disk >= len(self.inst.disks):
            raise errors.WrongInput(f"instance {self.inst.name} has no disk {self.op.disk} "
                                    f"(it has {len(self.inst.disks)})")
        disk = self.inst.disks[self.op.disk]
        self.amount = (self.op.amount - disk.size) if self.op.absolute else self.op.amount
        if self.amount <= 0:
            raise errors.WrongInput(
                f"disk {self.op.disk} is {disk.size} MiB; growing to {self.op.amount} MiB "
                "would shrink it (shrinking is not supported)" if self.op.absolute else
                "the amount to grow must be positive")
        kind = disk_templates.of(disk.dev_type)
        if kind.network_mirrored:  # the data LV grows on both nodes
            vg = str(disk.children[0].logical_id[0])
            for node_uuid in disk.nodes:
                await ic.check_vg_space(self.rpc, self.cfg.nodes[node_uuid],
                                        {vg: self.amount}, f"growing disk {self.op.disk}")
            self.running = await self.running_on_primary()
            return
        info = await self.rpc.node_info(self.pnode)
        for item in info.get("storage", []):
            if item.get("type") == kind.storage_type and int(item.get("free", 0)) < self.amount:
                raise errors.InsufficientResources(
                    f"not enough disk space on node {self.pnode.name}: needed {self.amount} "
                    f"MiB, available {item.get('free')} MiB")

    async def exec(self) -> None:
        edited = self.cfg.edit(self.inst)
        disk = edited.disks[self.op.disk]
        self.log_info(f"Growing disk {self.op.disk} of {edited.name} by {self.amount} MiB")
        if disk_templates.of(disk.dev_type).network_mirrored:
            await self._grow_drbd(edited, disk)
            return
        await self.rpc.blockdev_grow(self.pnode, DiskSpec.of(disk), self.amount)
        disk.size += self.amount
        await self.cfg.commit(update=[edited])

    async def _grow_drbd(self, edited: objects.Instance, disk: objects.Disk) -> None:
        """As Ganeti: the mirror up on both nodes, the data LV grown on each, then the DRBD
        device resized (from the primary: DRBD carries it to the peer) and the new space
        synced; the disks go down again if they were down before."""
        was_active = self.inst.disks_active or self.running
        await drbd.assemble(self, self.inst, None)
        for node_uuid in disk.nodes:
            await self.rpc.blockdev_grow(self.cfg.nodes[node_uuid],
                                         ic.node_disk(self.cfg, disk, node_uuid),
                                         self.amount, backingstore=True)
        disk.size += self.amount
        disk.children[0].size += self.amount
        await self.rpc.blockdev_grow(self.pnode,
                                     ic.node_disk(self.cfg, disk, self.pnode.uuid),
                                     self.amount, backingstore=False)
        await self.cfg.commit(update=[edited])
        self.inst = edited
        if self.op.wait_for_sync:
            await drbd.wait_for_sync(self, edited, self.pnode.uuid)
        if not was_active:
            for problem in await drbd.shutdown(self, edited, ignore_errors=True):
                self.log_warning(problem)


@register
class LUInstanceActivateDisks(_InstanceLU):
    OP = opcodes.OpInstanceActivateDisks

    async def exec(self) -> list[tuple[str, str, str]]:
        mirrored = self.template.network_mirrored
        if mirrored:
            result = await drbd.assemble(self, self.inst, None)
        else:
            result = []
            for disk in self.inst.disks:
                reply = await self.rpc.blockdev_assemble(self.pnode, DiskSpec.of(disk))
                result.append((self.pnode.name, disk.iv_name, reply["path"]))
        await self.update_instance(disks_active=True)
        if self.op.wait_for_sync and mirrored:
            await drbd.wait_for_sync(self, self.inst, self.pnode.uuid)
        return result


@register
class LUInstanceDeactivateDisks(_InstanceLU):
    OP = opcodes.OpInstanceDeactivateDisks

    async def check_prereq(self) -> None:
        await super().check_prereq()
        if not self.op.force:
            self.check_stopped(await self.running_on_primary(), "deactivating its disks")

    async def exec(self) -> None:
        if self.template.network_mirrored:
            await drbd.shutdown(self, self.inst)
        else:
            for disk in self.inst.disks:
                await self.rpc.blockdev_shutdown(self.pnode, DiskSpec.of(disk))
        await self.update_instance(disks_active=False)
