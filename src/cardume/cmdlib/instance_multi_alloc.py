"""Several new instances placed at once (Ganeti's OpInstanceMultiAlloc: RAPI
``/2/instances-multi-alloc`` and ``gnt-instance batch-create``).

One ``multi-allocate`` request asks the allocator for all of them, so each placement counts
the others; then each instance that got nodes is created by a job of its own (the creation
with those nodes, as if given with ``-n``), and the answer names the jobs.
"""

from __future__ import annotations

from typing import Any

from cardume import errors, opcodes
from cardume.cmdlib import iallocator
from cardume.cmdlib.base import LogicalUnit, register
from cardume.cmdlib.instance_create import LUInstanceCreate

_CREATE = opcodes.OpInstanceCreate.OP_ID


@register
class LUInstanceMultiAlloc(LogicalUnit):
    OP = opcodes.OpInstanceMultiAlloc

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {}  # each creation job locks what it uses; this one only reads

    def check_arguments(self) -> None:
        if not self.op.instances:
            raise errors.WrongInput("no instances to allocate")
        with_nodes = [bool(i.get("pnode")) for i in self.op.instances]
        if any(with_nodes) and not all(with_nodes):
            raise errors.WrongInput("some instances name their nodes and others do not: "
                                    "either the allocator chooses for all, or each names its "
                                    "own")
        # every instance naming its nodes: nothing to allocate, only the jobs to submit
        self.allocator = None if all(with_nodes) else iallocator.chosen(self,
                                                                         self.op.iallocator)
        if self.allocator is None and self.op.iallocator:
            raise errors.WrongInput(f"the instances name their nodes: no allocator "
                                    f"({self.op.iallocator}) is needed")
        self.creates: list[LUInstanceCreate] = []
        names: set[str] = set()
        for index, given in enumerate(self.op.instances):
            values = {k: v for k, v in given.items() if k not in ("OP_ID", "__version__")}
            if given.get("OP_ID", _CREATE) != _CREATE:
                raise errors.WrongInput(f"instance {index}: {given['OP_ID']} is not an "
                                        f"instance creation ({_CREATE})")
            if self.allocator is not None:
                if values.get("snode"):
                    raise errors.WrongInput(f"instance {index} ({values.get('instance_name')})"
                                            " names a secondary node but no primary")
                values["iallocator"] = self.allocator
            op = opcodes.OpInstanceCreate(**values)
            if op.instance_name in names:
                raise errors.WrongInput(f"instance '{op.instance_name}' is given twice")
            names.add(op.instance_name)
            create = LUInstanceCreate(self.ctx, op, self.job)
            create.check_arguments()
            self.creates.append(create)

    async def check_prereq(self) -> None:
        for create in self.creates:
            if self.cfg.find_instance(create.op.instance_name) is not None:
                raise errors.AlreadyExists(f"instance '{create.op.instance_name}' already "
                                           "exists")

    async def exec(self) -> dict[str, Any]:
        if self.allocator is None:
            jobs = [[c.op.to_dict()] for c in self.creates]
            return {"allocatable": [c.op.instance_name for c in self.creates], "failed": [],
                    "jobs": [list(entry) for entry in self.ctx.queue.submit_many(jobs)]}
        return await self._allocate(self.allocator)

    async def _allocate(self, allocator: str) -> dict[str, Any]:
        requests = [c.allocate_request(c.op.instance_name) for c in self.creates]
        template = self.creates[0].op.disk_template
        document = await iallocator.cluster_data(self, template)
        document["request"] = iallocator.multi_allocate_request(requests)
        answer = await iallocator.ask(allocator, document)
        if not answer["success"]:
            raise errors.InsufficientResources(
                f"can't allocate the instances with allocator '{allocator}': "
                f"{answer['info']}")
        placed, failed = _read_result(allocator, answer.get("result"))
        jobs = []
        by_name = {c.op.instance_name: c for c in self.creates}
        for name, nodes in placed:
            if name not in by_name:
                raise errors.ExecError(f"allocator '{allocator}' placed an instance "
                                       f"that was not asked for: {name!r}")
            op_dict = by_name[name].op.to_dict()
            op_dict.update(iallocator=None, pnode=self.cfg.expand_node(nodes[0]).name,
                           snode=self.cfg.expand_node(nodes[1]).name if len(nodes) > 1
                           else None)
            jobs.append([op_dict])
            self.log_info(f"Instance {name}: nodes {', '.join(nodes)}")
        for name in failed:
            self.log_warning(f"instance {name}: the allocator found no nodes for it")
        submitted = self.ctx.queue.submit_many(jobs) if jobs else []
        return {"allocatable": [name for name, _ in placed], "failed": list(failed),
                "jobs": [list(entry) for entry in submitted]}


def _read_result(name: str, result: Any) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """A multi-allocate answer's result: ``[[[name, [nodes]] ...], [failed names]]``."""
    try:
        placed_raw, failed_raw = result
        placed = [(str(entry[0]), [str(n) for n in entry[1]]) for entry in placed_raw]
        failed = [str(n) for n in failed_raw]
    except (TypeError, ValueError, IndexError):
        raise errors.ExecError(f"allocator '{name}' answered {result!r}, expected "
                               "[[[name, [nodes]] ...], [failed names]]") from None
    return placed, failed
