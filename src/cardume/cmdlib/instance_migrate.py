"""Logical units that move an instance to another node: failover (stopped, started on the
target), migrate (live; --cleanup after an interrupted one) and move (disks copied offline).
What each disk template allows is asked of rules/disk_templates.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from cardume import constants, errors, objects, opcodes
from cardume.cmdlib import drbd, iallocator
from cardume.cmdlib import instance_common as ic
from cardume.cmdlib.base import register
from cardume.cmdlib.instance import _InstanceLU
from cardume.jobs import locks
from cardume.rpc.wire import DiskSpec, InstanceSpec
from cardume.rules import disk_templates, migration

PROBE_TIMEOUT = 5.0  # seconds a live node daemon takes at most to answer 'version'
CLEANUP_SETTLE_TRIES = 10  # --cleanup: seconds a target still loading the state gets


class _MoveLU(_InstanceLU):
    """Shared checks of failover and migrate for templates whose storage is shared."""

    NODE_LOCKS_SHARED = False
    # A live migration can copy local disks on the way (--mirror-disks); a failover can't.
    LIVE: ClassVar[bool] = False

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        plan = super().declare_locks()
        target = getattr(self.op, "target_node", None)
        if target:
            names, _ = plan[locks.LEVEL_NODE]
            resolved = getattr(self.cfg.find_node(target), "name", target)
            plan[locks.LEVEL_NODE] = ([*names, resolved], False)
        else:
            plan[locks.LEVEL_NODE] = (locks.ALL_SET, False)
        return plan

    async def choose_target(self) -> objects.Node:
        inst, kind = self.inst, self.template
        if kind.network_mirrored:
            return self._drbd_target()
        mirrored = kind.copied_to_migrate and getattr(self.op, "mirror_disks", False)
        # the disk layout forbids it: Ganeti's code for that is wrong_state
        if kind.copied_to_migrate and self.LIVE and not mirrored:
            raise errors.WrongState(
                f"instance {inst.name} keeps its {inst.disk_template} disks on "
                f"{self.pnode.name} only, so a migration must copy them",
                f"migrate it live with --mirror-disks (the disks are mirrored to the target "
                f"while it runs), or move it offline with 'gnt-instance move -n NODE "
                f"{inst.name}'")
        if mirrored and inst.hypervisor != constants.HT_KVM:
            raise errors.WrongInput(f"--mirror-disks needs the kvm hypervisor; instance "
                                    f"{inst.name} runs on {inst.hypervisor}")
        if not kind.shared and not mirrored:
            raise errors.WrongState(
                f"instance {inst.name} uses the {inst.disk_template} template, whose disks "
                "live on one node; it can't fail over or migrate",
                f"use 'gnt-instance move -n NODE {inst.name}' to copy it")
        allocator = getattr(self.op, "iallocator", None) or \
            self.cfg.get_cluster().default_iallocator
        if self.op.target_node:
            target = self.cfg.expand_node(self.op.target_node)
        elif allocator and kind.shared:  # (a disk copy's target must be named)
            target = await iallocator.relocate(self, iallocator.check_name(allocator), inst)
        else:
            candidates = [n for n in self.cfg.sorted_nodes()
                          if n.uuid != inst.primary_node and not n.offline and not n.drained
                          and n.vm_capable]
            if not candidates:
                raise errors.WrongState(f"no other node can take instance {inst.name}")
            target = candidates[0]
        if target.uuid == inst.primary_node:
            raise errors.WrongState(f"instance {inst.name} is already on {target.name}")
        ic.check_node_usable(target, "target")
        return target

    def _drbd_target(self) -> objects.Node:
        """A drbd instance moves to its secondary node, the only other copy of its disks."""
        inst = self.inst
        secondaries = inst.secondary_nodes
        if len(secondaries) != 1:
            raise errors.InternalError(f"instance {inst.name} has {len(secondaries)} "
                                       "secondary nodes")
        target = self.cfg.nodes[secondaries[0]]
        if self.op.target_node and self.cfg.expand_node(self.op.target_node).uuid != \
                target.uuid:
            raise errors.WrongInput(
                f"instance {inst.name} has its disks mirrored on {target.name}; it can only "
                f"move there, not to {self.op.target_node}",
                f"change its secondary first: gnt-instance replace-disks -n NODE {inst.name}")
        if target.offline:
            raise errors.WrongState(f"secondary node {target.name} of {inst.name} is offline")
        return target

    async def failover(self, target: objects.Node, was_up: bool, ignore_consistency: bool,
                       shutdown_timeout: int) -> None:
        """Stop on the primary, make the target the primary, start there if it was up."""
        inst, source = self.inst, self.pnode
        if self.template.network_mirrored:
            await self._failover_drbd(target, was_up, ignore_consistency, shutdown_timeout)
            return
        if not source.offline:
            self.log_info(f"Shutting down instance {inst.name} on {source.name}")
            try:
                await self.rpc.instance_shutdown(source, self.spec(), shutdown_timeout)
            except errors.CardumeError as err:
                if not ignore_consistency:
                    raise errors.ExecError(
                        f"could not stop {inst.name} on {source.name}: {err}",
                        "use --ignore-consistency if that node is dead") from None
                self.log_warning(f"could not stop it on {source.name}: {err}")
        moved = await self.set_primary(target)
        if was_up:
            self.log_info(f"Starting instance {inst.name} on {target.name}")
            await self.rpc.instance_start(target, ic.instance_spec(self.cfg, moved))

    async def _failover_drbd(self, target: objects.Node, was_up: bool,
                             ignore_consistency: bool, shutdown_timeout: int) -> None:
        """Stop the instance and demote its disks on the primary (if that node lives),
        check the secondary holds a complete copy, promote it, record the new primary,
        and start there. A dead primary's data is used only with --ignore-consistency
        when the secondary's copy is not known to be up to date."""
        inst, source = self.inst, self.pnode
        source_alive = not source.offline
        if source_alive and ignore_consistency:
            # the admin says the primary may be dead: find out in seconds, not after a
            # shutdown call's timeout
            try:
                await self.rpc.timed(PROBE_TIMEOUT).version(source)
            except errors.CardumeError as err:
                self.log_warning(f"{source.name} does not answer ({err}); treating it as "
                                 "dead (--ignore-consistency)")
                source_alive = False
        if source_alive:
            self.log_info(f"Shutting down instance {inst.name} on {source.name}")
            try:
                await self.rpc.instance_shutdown(source, self.spec(), shutdown_timeout)
                await self.rpc.drbd_connect(source, drbd.disks_for(self.cfg, inst, source.uuid))
                await self.rpc.drbd_set_role(source,
                                             drbd.disks_for(self.cfg, inst, source.uuid),
                                             "secondary")
            except errors.CardumeError as err:
                if not ignore_consistency:
                    raise errors.ExecError(
                        f"could not stop {inst.name} on {source.name}: {err}",
                        "if that node is dead, mark it offline (gnt-node modify -O yes) or "
                        "use --ignore-consistency") from None
                self.log_warning(f"could not stop it on {source.name}: {err}; going on "
                                 "without it (--ignore-consistency)")
                source_alive = False
        target_disks = drbd.disks_for(self.cfg, inst, target.uuid)
        await self.rpc.drbd_connect(target, target_disks)
        if source_alive:
            await drbd.wait_connected(self, inst, target.uuid, timeout=30.0)
        states = await drbd.status(self, inst, target.uuid)
        stale = [f"{d.iv_name} is {st['disk'] if st else 'not set up'}"
                 for d, st in zip(inst.disks, states, strict=True)
                 if st is None or st["disk"] not in ("UpToDate", "Consistent")
                 or st["resyncing"]]
        if stale and not ignore_consistency:
            raise errors.WrongState(
                f"the disks of {inst.name} on {target.name} are not a complete copy ("
                + ", ".join(stale) + ")", "wait for the sync to end; --ignore-consistency "
                "uses them anyway and loses what they miss")
        self.log_info(f"Making {target.name} the primary of {inst.name}'s disks")
        try:
            await self.rpc.drbd_set_role(target, target_disks, "primary")
        except errors.CardumeError as err:
            if not ignore_consistency:
                raise errors.WrongState(
                    f"DRBD refused to make {target.name} primary for {inst.name}: {err}",
                    "--ignore-consistency forces it (the copy there may be stale)") from None
            self.log_warning(f"forcing {target.name} to be primary: {err}")
            await self.rpc.drbd_set_role(target, target_disks, "primary", force=True)
        moved = await self.set_primary(target)
        if was_up:
            self.log_info(f"Starting instance {inst.name} on {target.name}")
            await self.rpc.instance_start(target, ic.instance_spec(self.cfg, moved))
            await self.update_instance(disks_active=True)
        else:
            for problem in await drbd.shutdown(self, moved, ignore_errors=True):
                self.log_warning(problem)
            await self.update_instance(disks_active=False)

    async def set_primary(self, target: objects.Node) -> objects.Instance:
        current = self.cfg.instances[self.inst.uuid]
        edited = self.cfg.edit(current)
        old = current.primary_node
        edited.primary_node = target.uuid
        for disk in edited.disks:
            if disk_templates.of(disk.dev_type).network_mirrored:  # the old primary keeps it
                disk.nodes = [target.uuid, old]
                for child in disk.children:
                    child.nodes = list(disk.nodes)
            else:
                disk.nodes = [target.uuid]
        await self.cfg.commit(update=[edited])
        self.inst = edited
        return edited


@register
class LUInstanceFailover(_MoveLU):
    OP = opcodes.OpInstanceFailover

    async def check_prereq(self) -> None:
        await super().check_prereq()
        self.target = await self.choose_target()
        self.was_up = self.inst.admin_state == "up"
        if self.was_up:
            info = await self.rpc.node_info(self.target)
            memory = int(self.spec().beparams["maxmem"])
            ic.check_free_memory(self.target.name, info, memory, self.inst.name)

    async def exec(self) -> None:
        await self.failover(self.target, self.was_up, self.op.ignore_consistency,
                            self.op.shutdown_timeout)


@register
class LUInstanceMigrate(_MoveLU):
    OP = opcodes.OpInstanceMigrate
    LIVE = True

    async def check_prereq(self) -> None:
        await super().check_prereq()
        if self.op.cleanup:
            self._check_cleanup()
            return
        self.target = await self.choose_target()
        running = await self.running_on_primary()
        always = bool(self.spec().beparams.get("always_failover"))
        # As in Ganeti: always_failover turns every migration into a failover, and
        # --allow-failover lets a migration that can't happen (stopped) fail over.
        self.as_failover = always or (not running and self.op.allow_failover)
        self.copy_disks = self.template.copied_to_migrate
        if self.as_failover and self.copy_disks:
            raise errors.WrongState(
                f"instance {self.inst.name} can't fail over: its {self.inst.disk_template} "
                "disks are on one node, and only a running instance's can be mirrored",
                f"start it and migrate it, or move it offline with 'gnt-instance move -n "
                f"NODE {self.inst.name}'")
        if self.as_failover:
            self.was_up = self.inst.admin_state == "up"
            if not self.was_up:
                return
        elif not running:
            raise errors.WrongState(f"instance {self.inst.name} is not running; use "
                                    "failover to move a stopped instance (or "
                                    "--allow-failover)",
                                    f"gnt-instance failover {self.inst.name}")
        info = await self.rpc.node_info(self.target)
        memory = int(self.spec().beparams["maxmem"])
        ic.check_free_memory(self.target.name, info, memory, self.inst.name)
        if self.template.network_mirrored:
            await self._check_mirror_in_sync()
        if self.copy_disks:
            await self._check_target_space(info)

    async def _check_target_space(self, info: dict[str, Any]) -> None:
        """Room on the target for the disks the migration copies."""
        inst, kind = self.inst, self.template
        if kind.lvm:
            needs: dict[str, int] = {}
            for disk in inst.disks:
                needs[str(disk.logical_id[0])] = needs.get(str(disk.logical_id[0]), 0) \
                    + disk.size
            await ic.check_vg_space(self.rpc, self.target, needs, "the mirrored disks")
            return
        needed = sum(d.size for d in inst.disks)
        for item in info.get("storage", []):
            if item.get("type") == kind.storage_type and int(item.get("free", 0)) < needed:
                raise errors.InsufficientResources(
                    f"not enough file storage on node {self.target.name} for the mirrored "
                    f"disks: needed {needed} MiB, available {item.get('free')} MiB")

    async def _check_mirror_in_sync(self) -> None:
        """A live migration needs the target's copy complete and connected right now."""
        states = await drbd.status(self, self.inst, self.target.uuid)
        bad = [f"{d.iv_name}: " + (f"{st['cstate']} {st['disk']}/{st['peer_disk']}" if st
                                   else "not set up")
               for d, st in zip(self.inst.disks, states, strict=True)
               if st is None or st["degraded"] or st["resyncing"]]
        if bad:
            raise errors.WrongState(
                f"the disks of {self.inst.name} are not in sync on {self.target.name} ("
                + "; ".join(bad) + "), so it can't migrate there now",
                f"wait for the sync (gnt-instance info {self.inst.name}), or check the mirror "
                "with gnt-cluster verify-disks")

    def _check_cleanup(self) -> None:
        """--cleanup: the instance's primary was the source; the target is its drbd
        secondary or the node named with -n."""
        inst = self.inst
        if inst.hypervisor != constants.HT_KVM:
            raise errors.WrongInput(f"--cleanup: nothing to clean up, the {inst.hypervisor} "
                                    "hypervisor migrates atomically")
        if self.template.network_mirrored:
            self.target = self._drbd_target()
        elif self.op.target_node:
            self.target = self.cfg.expand_node(self.op.target_node)
        else:
            raise errors.WrongInput("--cleanup needs the node the migration went to: "
                                    "-n NODE")
        if self.target.uuid == inst.primary_node:
            raise errors.WrongInput(f"--cleanup: {self.target.name} is the primary of "
                                    f"{inst.name}; name the migration's target node")

    async def _side(self, node: objects.Node, role: str, spec: InstanceSpec) -> str:
        if node.offline:
            return migration.ABSENT
        return str(await self.rpc.instance_migration_state(node, spec, role))

    async def _cleanup(self) -> None:
        """Ask both sides where the interrupted migration left them, decide with the
        migration engine's table, carry it out, and record where the instance runs."""
        inst, source, target = self.inst, self.pnode, self.target
        spec, target_spec = self.spec(), self.spec(node_uuid=target.uuid)
        plan = None
        for _ in range(CLEANUP_SETTLE_TRIES):  # a target still loading the state: let it
            states = (await self._side(source, "source", spec),
                      await self._side(target, "target", target_spec))
            plan = migration.decide_cleanup(*states)
            if not migration.settling(*states):
                break
            await asyncio.sleep(1.0)
        assert plan is not None
        self.log_info(f"{source.name}: {states[0]}, {target.name}: {states[1]}: "
                      f"{plan.reason}")
        # Even a refused plan is carried out: it then only kills a target that never ran
        # the guest (left waiting, it would hold the migration port and its memory) and
        # leaves alone whatever an operator must judge.
        for node, role, action, node_spec in ((source, "source", plan.source, spec),
                                              (target, "target", plan.target, target_spec)):
            if action and not node.offline:
                await self.rpc.instance_migration_cleanup(node, node_spec, role, action)
        if plan.error:
            raise errors.WrongState(f"--cleanup of {inst.name}: {plan.error}")
        mirrored = self.template.network_mirrored
        if plan.runs_on == "target":
            await self.set_primary(target)
            loser = source
        else:
            loser = target
        if mirrored and not loser.offline:  # one writer again: the other side secondary
            await self.rpc.drbd_set_role(loser, drbd.disks_for(self.cfg, self.inst, loser.uuid),
                                         "secondary")
            await self._reconnect(dual_primary=False)
        where = self.cfg.node_name(self.cfg.instances[inst.uuid].primary_node)
        self.log_info(f"Instance {inst.name} runs on {where}")

    async def exec(self) -> None:
        if self.op.cleanup:
            await self._cleanup()
            return
        if self.as_failover:
            self.log_info(f"Failing over instance {self.inst.name} instead of migrating it")
            await self.failover(self.target, self.was_up, False,
                                constants.DEFAULT_SHUTDOWN_TIMEOUT)
            return
        inst, source, target = self.inst, self.pnode, self.target
        live = self.op.mode != "non-live" and self.op.live is not False
        mirrored = self.template.network_mirrored
        if mirrored:
            self.log_info("Switching the disks to dual-primary mode")
            await self._reconnect(dual_primary=True)
        self.log_info(f"Migrating instance {inst.name} from {source.name} to {target.name}")
        spec, target_spec = self.spec(), self.spec(node_uuid=target.uuid)
        copies: list[DiskSpec] = []
        if self.copy_disks:  # empty disks of the same size, which the migration fills
            target_spec.mirror_disks = True
            for disk in inst.disks:
                self.log_info(f"Creating disk {disk.iv_name} ({disk.size} MiB) on "
                              f"{target.name} for the mirror")
                try:
                    await self.rpc.blockdev_create(target, DiskSpec.of(disk))
                except errors.CardumeError:
                    await self._remove_copies(target, copies)
                    raise
                copies.append(DiskSpec.of(disk))
        try:
            accepted = await self.rpc.accept_instance(target, target_spec, source.primary_ip)
            await self.rpc.instance_migrate(source, spec, target.primary_ip, accepted or {},
                                            live)
        except errors.CardumeError as err:
            with contextlib.suppress(errors.CardumeError):
                await self.rpc.instance_finalize_migration_dst(target, target_spec, False)
            await self._remove_copies(target, copies)
            if mirrored:  # the target must not stay primary: back to one writer
                with contextlib.suppress(errors.CardumeError):
                    await self.rpc.drbd_set_role(
                        target, drbd.disks_for(self.cfg, inst, target.uuid), "secondary")
                    await self._reconnect(dual_primary=False)
            raise errors.ExecError(f"migration of {inst.name} failed: {err}; it still runs "
                                   f"on {source.name}") from None
        await self.rpc.instance_finalize_migration_dst(target, target_spec, True)
        await self.set_primary(target)
        await self.rpc.instance_finalize_migration_src(source, spec, True)
        for disk in inst.disks if self.copy_disks else []:  # the target has them now
            try:
                await self.rpc.blockdev_remove(source, DiskSpec.of(disk))
            except errors.CardumeError as err:
                self.log_warning(f"could not remove the old copy of {disk.iv_name} on "
                                 f"{source.name}: {err}")
        if mirrored:
            self.log_info("Back to single-primary mode, the old primary as secondary")
            await self.rpc.drbd_set_role(source,
                                         drbd.disks_for(self.cfg, self.inst, source.uuid),
                                         "secondary")
            await self._reconnect(dual_primary=False)
        self.log_info(f"Instance {inst.name} now runs on {target.name}")

    async def _remove_copies(self, target: objects.Node,
                             copies: list[DiskSpec]) -> None:
        for spec in copies:
            with contextlib.suppress(errors.CardumeError):
                await self.rpc.blockdev_remove(target, spec)

    async def _reconnect(self, dual_primary: bool) -> None:
        """Disconnect and reconnect both sides with or without dual-primary mode (as Ganeti
        does; DRBD keeps the bitmap meanwhile, so nothing is resynced whole)."""
        inst = self.cfg.instances[self.inst.uuid]
        nodes = [self.cfg.nodes[u] for u in (inst.primary_node, *inst.secondary_nodes)]
        for node in nodes:
            await self.rpc.drbd_disconnect(node, drbd.disks_for(self.cfg, inst, node.uuid))
        for node in nodes:
            await self.rpc.drbd_connect(node, drbd.disks_for(self.cfg, inst, node.uuid),
                                        dual_primary)
        for node in nodes:
            await drbd.wait_connected(self, inst, node.uuid, timeout=30.0)


COPY_CHUNK = 8 * 1024 * 1024  # bytes per read/write round trip; zero chunks cost nothing


@register
class LUInstanceMove(_InstanceLU):
    OP = opcodes.OpInstanceMove
    NODE_LOCKS_SHARED = False

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        plan = super().declare_locks()
        names, _ = plan[locks.LEVEL_NODE]
        target = getattr(self.cfg.find_node(self.op.target_node), "name", self.op.target_node)
        plan[locks.LEVEL_NODE] = ([*names, target], False)
        return plan

    async def check_prereq(self) -> None:
        await super().check_prereq()
        inst = self.inst
        if not self.template.movable:
            raise errors.WrongInput(f"instance {inst.name} uses the {inst.disk_template} "
                                    "template; only file and plain instances can be moved",
                                    "use failover or migrate for shared storage")
        self.target = self.cfg.expand_node(self.op.target_node)
        if self.target.uuid == inst.primary_node:
            raise errors.WrongInput(f"instance {inst.name} is already on {self.target.name}")
        ic.check_node_usable(self.target, "target")
        self.was_up = inst.admin_state == "up"
        info = await self.rpc.node_info(self.target)
        if self.was_up:
            ic.check_free_memory(self.target.name, info,
                                 int(self.spec().beparams["maxmem"]), inst.name)
        needed = sum(d.size for d in inst.disks)
        for item in info.get("storage", []):
            if item.get("type") == self.template.storage_type \
                    and int(item.get("free", 0)) < needed:
                raise errors.InsufficientResources(
                    f"not enough disk space on node {self.target.name}: needed {needed} MiB, "
                    f"available {item.get('free')} MiB")

    async def exec(self) -> None:
        inst, source, target = self.inst, self.pnode, self.target
        self.log_info(f"Shutting down instance {inst.name} on {source.name}")
        await self.rpc.instance_shutdown(source, self.spec(), self.op.shutdown_timeout)
        copied: list[DiskSpec] = []
        try:
            for disk in inst.disks:
                spec = DiskSpec.of(disk)
                self.log_info(f"Copying disk {disk.iv_name} ({disk.size} MiB) to {target.name}")
                await self.rpc.blockdev_create(target, spec)
                copied.append(spec)
                await self._copy(spec, source, target)
            edited = self.cfg.edit(inst)
            edited.primary_node = target.uuid
            for disk in edited.disks:
                disk.nodes = [target.uuid]
            await self.cfg.commit(update=[edited])
        except BaseException:
            for spec in copied:
                with contextlib.suppress(errors.CardumeError):
                    await self.rpc.blockdev_remove(target, spec)
            if self.was_up:
                with contextlib.suppress(errors.CardumeError):
                    await self.rpc.instance_start(source, self.spec())
            raise
        for disk in inst.disks:
            with contextlib.suppress(errors.CardumeError):
                await self.rpc.blockdev_remove(source, DiskSpec.of(disk))
        if self.was_up:
            self.log_info(f"Starting instance {inst.name} on {target.name}")
            await self.rpc.instance_start(target, ic.instance_spec(self.cfg, edited))

    async def _copy(self, spec: DiskSpec, source: objects.Node, target: objects.Node) -> None:
        """Copy a disk chunk by chunk through the master; holes stay holes."""
        offset = 0
        total = spec.size * 1024 * 1024
        while offset < total:
            length = min(COPY_CHUNK, total - offset)
            chunk = await self.rpc.blockdev_read(source, spec, offset, length)
            if chunk["data"] is not None:
                await self.rpc.blockdev_write(target, spec, offset, data=chunk["data"])
            elif not disk_templates.of(spec.dev_type).new_disk_zeroed and chunk["length"]:
                # a new LV holds whatever its extents held before: zeros must be written
                await self.rpc.blockdev_write(target, spec, offset, zeros=int(chunk["length"]))
            offset += int(chunk["length"])
            if chunk["eof"] or not chunk["length"]:
                break
