"""gnt-instance change-group: an instance moved to another node group, where an allocator
places it (Ganeti's OpInstanceChangeGroup).

The allocator answers a ``change-group`` request with the moves to make, as jobs of
opcodes (a secondary replaced, a migration ...): this operation checks them and submits
them, and its result names those jobs, as Ganeti's does. Nothing moves if the allocator
finds no place.
"""

from __future__ import annotations

from typing import Any

from cardume import errors, opcodes
from cardume.cmdlib import common, iallocator
from cardume.cmdlib.base import LogicalUnit, register

#: What an allocator's moves may be made of.
_MOVES = (opcodes.OpInstanceMigrate.OP_ID, opcodes.OpInstanceFailover.OP_ID,
          opcodes.OpInstanceReplaceDisks.OP_ID)


@register
class LUInstanceChangeGroup(LogicalUnit):
    OP = opcodes.OpInstanceChangeGroup

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {}  # the moves' own jobs lock what they change; this one reads a snapshot

    def check_arguments(self) -> None:
        self.allocator = iallocator.chosen(self, self.op.iallocator)

    async def check_prereq(self) -> None:
        self.inst = self.cfg.expand_instance(self.op.instance_name)
        node = self.cfg.nodes[self.inst.primary_node]
        self.targets = []
        for name in self.op.target_groups or []:
            group = common.named_group(self.cfg, name)
            if group.uuid == node.group:
                raise errors.WrongInput(f"instance {self.inst.name} is already in node "
                                        f"group {group.name}")
            self.targets.append(group.uuid)
        if not self.op.target_groups and len(self.cfg.groups) < 2:
            raise errors.WrongState("the cluster has one node group: there is no other "
                                    f"group to move instance {self.inst.name} to")

    async def exec(self) -> dict[str, Any]:
        document = await iallocator.cluster_data(self, self.inst.disk_template)
        document["request"] = iallocator.change_group_request([self.inst.name], self.targets)
        answer = await iallocator.ask(self.allocator, document)
        if not answer["success"]:
            raise errors.InsufficientResources(
                f"can't move instance {self.inst.name} to another group with allocator "
                f"'{self.allocator}': {answer['info']}")
        moved, failed, jobs = _read_result(self.allocator, answer.get("result"))
        if failed:
            raise errors.InsufficientResources(
                f"can't move instance {self.inst.name} to another group with allocator "
                f"'{self.allocator}': {failed[0][1]}")
        for name, group, nodes in moved:
            self.log_info(f"Instance {name} goes to group {group}, nodes {', '.join(nodes)}")
        for job in jobs:  # the allocator's moves, checked as any submitted job is
            for op in job:
                if op.get("OP_ID") not in _MOVES or op.get("instance_name") != self.inst.name:
                    raise errors.ExecError(f"allocator '{self.allocator}' answered a move "
                                           f"cardume won't run: {op.get('OP_ID')} of "
                                           f"{op.get('instance_name')}")
        submitted = self.ctx.queue.submit_many(jobs) if jobs else []
        return {"jobs": [list(entry) for entry in submitted]}


def _read_result(name: str, result: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """A change-group answer's result: ``[moved, failed, jobs]``."""
    try:
        moved, failed, jobs = result
        moved = [(str(m[0]), str(m[1]), [str(n) for n in m[2]]) for m in moved]
        failed = [(str(f[0]), str(f[1])) for f in failed]
        jobs = [[dict(op) for op in job] for job in jobs]
    except (TypeError, ValueError, IndexError):
        raise errors.ExecError(f"allocator '{name}' answered {result!r}, expected "
                               "[moved, failed, jobs]") from None
    return moved, failed, jobs
