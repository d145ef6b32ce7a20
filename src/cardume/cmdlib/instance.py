"""Logical units for an instance's life: startup, shutdown, reboot, remove."""

from __future__ import annotations

from typing import Any

from cardume import errors, opcodes
from cardume.cmdlib import common, drbd
from cardume.cmdlib import instance_common as ic
from cardume.cmdlib.base import LogicalUnit, register
from cardume.jobs import locks
from cardume.rpc.wire import InstanceSpec
from cardume.rules import disk_templates


class _InstanceLU(LogicalUnit):
    """An LU acting on one existing instance, holding it and its nodes."""

    NODE_LOCKS_SHARED = True

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        inst = self.cfg.find_instance(self.op.instance_name)
        name = inst.name if inst else self.op.instance_name
        nodes = []
        if inst is not None:
            nodes = [self.cfg.node_name(u) for u in [inst.primary_node, *inst.secondary_nodes]]
        return {locks.LEVEL_INSTANCE: ([name], False),
                locks.LEVEL_NODE: (nodes, self.NODE_LOCKS_SHARED)}

    async def check_prereq(self) -> None:
        self.inst = self.cfg.expand_instance(self.op.instance_name)
        self.pnode = self.cfg.nodes[self.inst.primary_node]

    @property
    def template(self) -> disk_templates.Template:
        """What the instance's disk template can do."""
        return disk_templates.of(self.inst.disk_template)

    def check_stopped(self, running: bool, what: str) -> None:
        """Refuse ``what`` ("renaming it") while the instance runs."""
        if running:
            raise errors.WrongState(f"instance {self.inst.name} is running; stop it before "
                                    f"{what}", f"gnt-instance shutdown {self.inst.name}")

    def spec(self, **overrides: Any) -> InstanceSpec:
        """The instance as a node gets it (see :func:`instance_common.instance_spec`)."""
        return ic.instance_spec(self.cfg, self.inst, **overrides)

    async def update_instance(self, **changes: Any) -> None:
        """Commit field changes to the instance as the config has it now (not a copy taken
        earlier in the job, which would undo the job's own earlier commits)."""
        current = self.cfg.instances[self.inst.uuid]
        if all(getattr(current, k) == v for k, v in changes.items()):
            self.inst = current
            return
        edited = self.cfg.edit(current)
        for key, value in changes.items():
            setattr(edited, key, value)
        await self.cfg.commit(update=[edited])
        self.inst = edited

    async def set_admin_state(self, state: str) -> None:
        await self.update_instance(admin_state=state)

    async def check_startable(self, beparams: dict[str, Any] | None = None) -> bool:
        """Refuse an offline instance or primary; if the instance is not running, check its
        primary has the memory to start it. Returns whether it runs already."""
        if self.inst.admin_state == "offline":
            raise errors.WrongState(f"instance {self.inst.name} is marked offline",
                                    f"bring it online with 'gnt-instance modify --online "
                                    f"{self.inst.name}' first")
        if self.pnode.offline:
            raise errors.WrongState(f"primary node {self.pnode.name} is offline")
        running = await self.running_on_primary()
        if not running:
            await self.check_not_running_elsewhere()
            info = await self.rpc.node_info(self.pnode)
            memory = int(self.spec(beparams=beparams).beparams["maxmem"])
            ic.check_free_memory(self.pnode.name, info, memory, self.inst.name)
        return running

    async def activate_mirrors(self) -> None:
        """Before a start: a drbd instance's disks up on its secondary (a secondary that
        can't be reached only degrades the mirror) and marked active; the primary side is
        assembled by instance_start itself."""
        if not self.template.network_mirrored:
            return
        await drbd.assemble(self, self.inst, None, ignore_secondaries=True)
        await self.update_instance(disks_active=True)

    async def release_mirrors(self, ignore_errors: bool = False) -> None:
        """After a stop: a drbd instance's disks go down on both nodes (as in Ganeti, disks
        are active only while the instance runs or after activate-disks), so either node
        can be made primary next."""
        if not self.template.network_mirrored:
            return
        for problem in await drbd.shutdown(self, self.inst, ignore_errors=ignore_errors):
            self.log_warning(problem)
        await self.update_instance(disks_active=False)

    async def running_on_primary(self) -> bool:
        names = await self.rpc.instance_list(self.pnode, [self.inst.hypervisor])
        return self.inst.name in names

    async def check_not_running_elsewhere(self) -> None:
        """Refuse to start an instance that another node runs: a failed migration can leave
        it on the target, and starting it on the primary too would run it twice on the same
        disks. Asked under the instance's lock, which every move of it holds. A node that
        doesn't answer is a warning, not a refusal (a dead node must not keep it down)."""
        others = [n for n in self.cfg.sorted_nodes()
                  if n.uuid != self.pnode.uuid and not n.offline and n.vm_capable]
        results = await self.rpc.each(others, self.rpc.instance_list, [self.inst.hypervisor])
        for node in others:
            result = results[node.name]
            if result.error is not None:
                self.log_warning(f"could not ask node {node.name} whether it runs "
                                 f"{self.inst.name}: {result.error}")
            elif self.inst.name in (result.value or ()):
                raise errors.WrongState(
                    f"instance {self.inst.name} is running on node {node.name}, not on its "
                    f"primary node {self.pnode.name}; not starting it a second time",
                    f"after a failed migration: gnt-instance migrate --cleanup "
                    f"{self.inst.name}; or stop it there first")


@register
class LUInstanceStartup(_InstanceLU):
    OP = opcodes.OpInstanceStartup

    async def check_prereq(self) -> None:
        await super().check_prereq()
        self.extra_be = common.check_beparams(self.op.beparams)  # memory= sets maxmem, minmem
        self.extra_hv = (common.check_instance_hvparams(self.inst.hypervisor, self.op.hvparams)
                         if self.op.hvparams else {})
        self.already = await self.check_startable(self.extra_be)

    async def exec(self) -> None:
        if not self.op.no_remember:
            await self.set_admin_state("up")
        if self.already:
            self.log_info(f"Instance {self.inst.name} is already running")
            return
        await self.activate_mirrors()
        await self.rpc.instance_start(self.pnode, self.spec(beparams=self.extra_be,
                                                                 hvparams=self.extra_hv))


@register
class LUInstanceShutdown(_InstanceLU):
    OP = opcodes.OpInstanceShutdown

    async def check_prereq(self) -> None:
        await super().check_prereq()
        if self.inst.admin_state == "offline" and not self.op.force:
            raise errors.WrongState(f"instance {self.inst.name} is marked offline")

    async def exec(self) -> None:
        if not self.op.no_remember:
            await self.set_admin_state("down")
        if self.pnode.offline:
            if self.op.ignore_offline_nodes:
                self.log_warning(f"primary node {self.pnode.name} is offline; "
                                 "not contacting it")
                return
            raise errors.WrongState(f"primary node {self.pnode.name} is offline",
                                    "use --ignore-offline to only record the state")
        await self.rpc.instance_shutdown(self.pnode, self.spec(), self.op.timeout)
        await self.release_mirrors()


@register
class LUInstanceReboot(_InstanceLU):
    OP = opcodes.OpInstanceReboot

    async def check_prereq(self) -> None:
        await super().check_prereq()
        self.running = await self.check_startable()

    async def exec(self) -> None:
        """As Ganeti: a stopped instance is started, and is recorded as up either way."""
        spec = self.spec()
        if self.op.reboot_type in ("soft", "hard") and self.running:
            await self.rpc.instance_reboot(self.pnode, spec, self.op.reboot_type,
                                           self.op.shutdown_timeout)
        else:  # "full", or not running: stop (if needed) and start again
            if self.running:
                await self.rpc.instance_shutdown(self.pnode, spec, self.op.shutdown_timeout)
            else:
                self.log_info(f"Instance {self.inst.name} was already stopped, starting now")
            await self.activate_mirrors()
            await self.rpc.instance_start(self.pnode, spec)
        await self.set_admin_state("up")


@register
class LUInstanceRemove(_InstanceLU):
    OP = opcodes.OpInstanceRemove
    NODE_LOCKS_SHARED = False

    async def exec(self) -> None:
        inst, pnode = self.inst, self.pnode
        spec = self.spec()
        problems: list[str] = []
        self.log_info(f"Shutting down instance {inst.name} on {pnode.name}")
        try:
            await self.rpc.instance_shutdown(pnode, spec, self.op.shutdown_timeout)
        except errors.CardumeError as err:
            problems.append(f"could not stop it on {pnode.name}: {err}")
            if not self.op.ignore_failures:
                raise errors.ExecError(f"could not stop instance {inst.name}: {err}",
                                       "use --ignore-failures to remove it anyway") from None
        self.log_info(f"Removing the disks of instance {inst.name}")
        for disk in inst.disks:
            for node_uuid in disk.nodes or [inst.primary_node]:
                node = self.cfg.nodes.get(node_uuid)
                if node is None:
                    continue
                try:
                    await self.rpc.blockdev_remove(
                        node, ic.node_disk(self.cfg, disk, node_uuid))
                except errors.CardumeError as err:
                    problems.append(f"disk {disk.iv_name} on {node.name}: {err}")
        if problems and not self.op.ignore_failures:
            raise errors.ExecError(f"could not remove every disk of {inst.name}: "
                                   f"{'; '.join(problems)}",
                                   "use --ignore-failures to remove it from the config anyway")
        for problem in problems:
            self.log_warning(problem)
        await self.cfg.commit(remove=[inst])


