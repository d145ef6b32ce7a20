"""Logical units for tags and for gnt-debug's test delay."""

from __future__ import annotations

import asyncio
from typing import Any

from cardume import errors, objects, opcodes
from cardume.cmdlib import common
from cardume.cmdlib.base import LogicalUnit, register
from cardume.jobs import locks

_LEVEL_OF_KIND = {"instance": locks.LEVEL_INSTANCE, "node": locks.LEVEL_NODE,
                  "nodegroup": locks.LEVEL_NODEGROUP, "network": locks.LEVEL_NETWORK}


class _TagsBase(LogicalUnit):
    def check_arguments(self) -> None:
        self.check_tag_syntax()
        if self.op.kind != "cluster" and not self.op.name:
            raise errors.WrongInput(f"tags of a {self.op.kind} need its name")

    def check_tag_syntax(self) -> None:
        common.check_tags(self.op.tags)

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        level = _LEVEL_OF_KIND.get(self.op.kind)
        if level is None:
            return {}
        return {level: ([self.op.name], False)}

    async def check_prereq(self) -> None:
        kind, name = self.op.kind, self.op.name
        target: objects.ConfigObject
        if kind == "cluster":
            target = self.cfg.get_cluster()
        elif kind == "node":
            target = self.cfg.expand_node(name)
        elif kind == "nodegroup":
            target = self.cfg.expand_group(name)
        elif kind == "instance":
            target = self.cfg.expand_instance(name)
        elif kind == "network":
            target = self.cfg.expand_network(name)
        else:
            raise errors.WrongInput(f"tags of kind '{kind}' are not supported")
        self.target = target


@register
class LUTagsSet(_TagsBase):
    OP = opcodes.OpTagsSet

    async def exec(self) -> None:
        target = self.cfg.edit(self.target)
        target.tags = sorted(set(target.tags) | set(self.op.tags))
        await self.cfg.commit(update=[target])


@register
class LUTagsDel(_TagsBase):
    OP = opcodes.OpTagsDel

    def check_tag_syntax(self) -> None:
        # Tags stored before the ASCII rule was enforced must stay removable: a tag that
        # isn't there is refused by name in check_prereq anyway.
        pass

    async def check_prereq(self) -> None:
        await super().check_prereq()
        missing = sorted(set(self.op.tags) - set(self.target.tags))
        if missing:
            raise errors.UnknownEntity(f"tag(s) {', '.join(missing)} not found")

    async def exec(self) -> None:
        target = self.cfg.edit(self.target)
        target.tags = [t for t in target.tags if t not in self.op.tags]
        await self.cfg.commit(update=[target])


@register
class LUTestDelay(LogicalUnit):
    OP = opcodes.OpTestDelay
    BGL_SHARED = None  # a delay touches nothing: it must not queue behind real work

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        if self.op.on_nodes and not self.op.no_locks:
            # lock the names the config knows (a short name locks the full one)
            names = [getattr(self.cfg.find_node(n), "name", n) for n in self.op.on_nodes]
            return {locks.LEVEL_NODE: (names, False)}
        return {}

    async def check_prereq(self) -> None:
        self.nodes = [self.cfg.expand_node(n) for n in self.op.on_nodes]

    async def exec(self) -> None:
        for _ in range(self.op.repeat + 1):
            await self._once()

    async def _once(self) -> None:
        waits = []
        if self.op.on_master:
            waits.append(asyncio.sleep(self.op.duration))
        if self.nodes:
            waits.append(self._on_nodes())
        if waits:
            await asyncio.gather(*waits)

    async def _on_nodes(self) -> None:
        rpc = self.rpc.timed(self.op.duration + 30)
        results = await rpc.each(self.nodes, rpc.test_delay, self.op.duration)
        failed = {name: r.error for name, r in results.items() if r.error is not None}
        if failed:
            name, err = sorted(failed.items())[0]
            raise errors.ExecError(f"delay failed on node {name}: {err}")
