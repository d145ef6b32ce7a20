"""gnt-node evacuate: move the drbd instances' sides off a node.

``-s`` (secondary-only) gives each instance whose secondary is the node a new secondary
(``-n NODE``, or the node of the same group with the most free space in the volume group);
``-p`` (primary-only) moves the instances whose primary is the node to their secondary
(migrating the running ones, failing over the stopped ones), as Ganeti does; the default
does both. The steps run one instance after the other, each as replace-disks, migrate or
failover would run it; what was done stays done if a later instance fails.
"""

from __future__ import annotations

from typing import Any

from cardume import constants, errors, objects, opcodes
from cardume.cmdlib import drbd, iallocator
from cardume.cmdlib import instance_common as ic
from cardume.cmdlib.base import ALL, LogicalUnit, register
from cardume.cmdlib.instance_migrate import LUInstanceMigrate
from cardume.cmdlib.instance_replace import LUInstanceReplaceDisks
from cardume.jobs import locks
from cardume.rules import disk_templates


@register
class LUNodeEvacuate(LogicalUnit):
    OP = opcodes.OpNodeEvacuate

    def check_arguments(self) -> None:
        if self.op.iallocator and self.op.remote_node:
            raise errors.WrongInput(f"give either the new secondary ({self.op.remote_node}) "
                                    f"or an allocator ({self.op.iallocator}), not both")
        # with neither, the node with the most free space in the primary's group is taken
        self.allocator = iallocator.check_name(self.op.iallocator) \
            if self.op.iallocator else None
        if self.op.remote_node and self.op.mode == "primary-only":
            raise errors.WrongInput("a new secondary (-n) makes no sense with --primary-only")

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_INSTANCE: (ALL, False), locks.LEVEL_NODE: (ALL, False)}

    async def check_prereq(self) -> None:
        self.node = self.cfg.expand_node(self.op.node_name)
        mode = self.op.mode
        insts = sorted(self.cfg.instances.values(), key=lambda i: i.name)
        self.primaries = [i for i in insts if i.primary_node == self.node.uuid] \
            if mode in ("primary-only", "all") else []
        self.secondaries = [i for i in insts if self.node.uuid in i.secondary_nodes] \
            if mode in ("secondary-only", "all") else []
        single = [i.name for i in self.primaries
                  if not disk_templates.of(i.disk_template).can_failover]
        if single:
            raise errors.WrongState(
                f"instance(s) {', '.join(single)} keep their disks on {self.node.name} only; "
                "evacuate can't move them", "move each with 'gnt-instance move -n NODE' first")
        self.remote: objects.Node | None = None
        if self.op.remote_node:
            self.remote = self.cfg.expand_node(self.op.remote_node)
            if self.remote.uuid == self.node.uuid:
                raise errors.WrongInput(f"the new secondary can't be {self.node.name}, the "
                                        "node being evacuated")
            ic.check_node_usable(self.remote, "new secondary")
        if not self.primaries and not self.secondaries:
            self.log_info(f"No instance to move off {self.node.name}")

    async def exec(self) -> list[tuple[str, str]]:
        done: list[tuple[str, str]] = []
        for inst in self.primaries:
            # the secondary becomes the primary; the node keeps the secondary side, which
            # the next loop moves away when evacuating everything
            await self._run(LUInstanceMigrate, opcodes.OpInstanceMigrate(
                instance_name=inst.name, allow_failover=True))
            current = self.cfg.instances[inst.uuid]
            done.append((inst.name, f"primary now {self.cfg.node_name(current.primary_node)}"))
            if self.op.mode == "all" and disk_templates.of(current.disk_template).needs_secondary \
                    and current not in self.secondaries:
                self.secondaries.append(current)
        for inst in self.secondaries:
            inst = self.cfg.instances[inst.uuid]
            if self.node.uuid not in inst.secondary_nodes:
                continue
            if self.remote is not None:
                target = self.remote
            elif self.allocator is not None:  # asked afresh: each move changes free space
                target = await iallocator.relocate(self, self.allocator, inst)
            else:
                target = await self._pick_secondary(inst)
            self.log_info(f"Moving the secondary of {inst.name} from {self.node.name} to "
                          f"{target.name}")
            await self._run(LUInstanceReplaceDisks, opcodes.OpInstanceReplaceDisks(
                instance_name=inst.name, mode="replace_new_secondary", remote_node=target.name))
            done.append((inst.name, f"secondary now {target.name}"))
        return done

    async def _run(self, lu_class: type[LogicalUnit], op: opcodes.OpCode) -> None:
        """One instance's step, with the checks its own command would make (the locks are
        this job's: every node and instance)."""
        lu = lu_class(self.ctx, op, self.job)
        lu.check_arguments()
        await lu.check_prereq()
        await lu.exec()

    async def _pick_secondary(self, inst: objects.Instance) -> objects.Node:
        """The usable node of the primary's group with DRBD loaded and the most free space
        in the volume groups the instance's disks need."""
        primary = self.cfg.nodes[inst.primary_node]
        needs = drbd.volume_needs(inst.disks)
        best: tuple[int, objects.Node] | None = None
        for node in self.cfg.sorted_nodes():
            if node.uuid in (primary.uuid, self.node.uuid) or node.group != primary.group:
                continue
            if node.offline or node.drained or not node.vm_capable:
                continue
            try:
                found = await self.rpc.drbd_status(node, [])
                if not found.get("version"):
                    continue
                vgs = {str(v["name"]): int(v["free"]) for v in await self.rpc.node_storage(
                    node, constants.ST_LVM_VG)}
            except errors.CardumeError:
                continue
            if all(vgs.get(vg, -1) >= size for vg, size in needs.items()):
                free = min(vgs[vg] - size for vg, size in needs.items())
                if best is None or free > best[0]:
                    best = (free, node)
        if best is None:
            raise errors.InsufficientResources(
                f"no node can take the secondary of {inst.name} (same group as "
                f"{primary.name}, online, DRBD loaded, room for "
                + ", ".join(f"{size} MiB in {vg}" for vg, size in needs.items()) + ")",
                "add a node or free space, or name one with -n NODE")
        return best[1]
