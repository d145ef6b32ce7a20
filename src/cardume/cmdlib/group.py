"""Logical units for node groups: add, remove, rename, assign nodes, modify."""

from __future__ import annotations

from typing import Any

from cardume import errors, objects, opcodes
from cardume.cmdlib import common, instance_policy
from cardume.cmdlib.base import ALL, LogicalUnit, register
from cardume.jobs import locks


@register
class LUGroupAdd(LogicalUnit):
    OP = opcodes.OpGroupAdd

    def check_arguments(self) -> None:
        common.check_group_name(self.op.group_name)
        self.ndparams = common.check_ndparams(self.op.ndparams)
        self.diskparams = common.check_diskparams(self.op.diskparams)

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODEGROUP: ([self.op.group_name], False)}

    async def check_prereq(self) -> None:
        if self.cfg.find_group(self.op.group_name) is not None:
            raise errors.AlreadyExists(f"node group '{self.op.group_name}' already exists")
        self.ipolicy = instance_policy.new_policy(
            self.cfg, objects.NodeGroup(name=self.op.group_name), self.op.ipolicy) or {}

    async def exec(self) -> str:
        group = objects.NodeGroup(name=self.op.group_name,
                                  alloc_policy=self.op.alloc_policy or "preferred",
                                  ndparams=self.ndparams, diskparams=self.diskparams,
                                  ipolicy=self.ipolicy)
        await self.cfg.commit(add=[group])
        return group.uuid


@register
class LUGroupRemove(LogicalUnit):
    OP = opcodes.OpGroupRemove

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODEGROUP: ([self.op.group_name], False)}

    async def check_prereq(self) -> None:
        self.group = self.cfg.expand_group(self.op.group_name)
        members = self.cfg.nodes_in_group(self.group.uuid)
        if members:
            raise errors.WrongState(
                f"node group '{self.group.name}' still has {len(members)} node(s): "
                f"{', '.join(sorted(n.name for n in members))}",
                "move them with 'gnt-group assign-nodes' first")
        if len(self.cfg.groups) == 1:
            raise errors.WrongState(f"node group '{self.group.name}' is the last group "
                                    "and can't be removed")

    async def exec(self) -> None:
        await self.cfg.commit(remove=[self.group])


@register
class LUGroupRename(LogicalUnit):
    OP = opcodes.OpGroupRename

    def check_arguments(self) -> None:
        common.check_group_name(self.op.new_name)

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODEGROUP: ([self.op.group_name, self.op.new_name], False)}

    async def check_prereq(self) -> None:
        self.group = self.cfg.expand_group(self.op.group_name)
        if self.cfg.find_group(self.op.new_name) is not None:
            raise errors.AlreadyExists(f"node group '{self.op.new_name}' already exists")

    async def exec(self) -> str:
        group = self.cfg.edit(self.group)
        group.name = self.op.new_name
        await self.cfg.commit(update=[group])
        return group.name


@register
class LUGroupAssignNodes(LogicalUnit):
    OP = opcodes.OpGroupAssignNodes

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODEGROUP: (ALL, False), locks.LEVEL_NODE: (ALL, False)}

    async def check_prereq(self) -> None:
        self.group = self.cfg.expand_group(self.op.group_name)
        if not self.op.nodes:
            raise errors.WrongInput("no nodes given to assign")
        self.nodes = [self.cfg.expand_node(n) for n in self.op.nodes]
        # An instance whose nodes end up in different groups is "split"; Ganeti refuses
        # that without --force because DRBD pairs must stay inside one group.
        moving = {n.uuid for n in self.nodes}
        split = []
        for inst in self.cfg.instances.values():
            nodes = [inst.primary_node, *inst.secondary_nodes]
            groups = {self.group.uuid if u in moving else self.cfg.nodes[u].group
                      for u in nodes if u in self.cfg.nodes}
            if len(groups) > 1:
                split.append(inst.name)
        if split and not self.op.force:
            raise errors.WrongState(
                f"moving these nodes would split instance(s) {', '.join(sorted(split))} "
                "across node groups", "use --force to do it anyway")

    async def exec(self) -> None:
        update: list[objects.ConfigObject] = []
        for node in self.nodes:
            if node.group != self.group.uuid:
                edited = self.cfg.edit(node)
                edited.group = self.group.uuid
                update.append(edited)
        if update:
            await self.cfg.commit(update=update)


@register
class LUGroupSetParams(LogicalUnit):
    OP = opcodes.OpGroupSetParams

    def check_arguments(self) -> None:
        self.ndparams = common.check_ndparams(self.op.ndparams)
        self.diskparams = common.check_diskparams(self.op.diskparams)
        self.hvparams = common.check_hvparams(self.op.hvparams)
        if all(v is None for v in (self.op.alloc_policy, self.op.ndparams,
                                   self.op.diskparams, self.op.hvparams, self.op.ipolicy)):
            raise errors.WrongInput("please pass at least one modification")

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODEGROUP: ([self.op.group_name], False)}

    async def check_prereq(self) -> None:
        self.group = self.cfg.expand_group(self.op.group_name)
        self.ipolicy = instance_policy.new_policy(self.cfg, self.group, self.op.ipolicy)

    async def exec(self) -> list[tuple[str, str]]:
        group = self.cfg.edit(self.group)
        changes: list[tuple[str, str]] = []
        if self.op.alloc_policy is not None:
            group.alloc_policy = self.op.alloc_policy
            changes.append(("alloc_policy", self.op.alloc_policy))
        if self.ndparams:
            group.ndparams = objects.merge_params(group.ndparams, self.ndparams)
            changes.append(("ndparams", str(self.ndparams)))
        for template, values in self.diskparams.items():
            group.diskparams[template] = objects.merge_params(
                group.diskparams.get(template, {}), values)
            changes.append((f"diskparams/{template}", str(values)))
        for hv, values in self.hvparams.items():
            group.hvparams[hv] = objects.merge_params(group.hvparams.get(hv, {}), values)
            changes.append((f"hvparams/{hv}", str(values)))
        if self.ipolicy is not None:
            group.ipolicy = self.ipolicy
            changes.append(("ipolicy", str(self.op.ipolicy)))
        await self.cfg.commit(update=[group])
        if self.ipolicy is not None:
            members = {node.uuid for node in self.cfg.nodes_in_group(group.uuid)}
            instance_policy.warn_violators(
                self.cfg, [i for i in self.cfg.instances.values() if i.primary_node in members],
                self.log_warning)
        return changes
