"""gnt-cluster balance and capacity: hbal's plan and hspace's count for the live cluster.

Both read the cluster as an allocator would (``iallocator.cluster_data``) and run the pure
``cardume.allocator.balance`` / ``capacity`` on it in a thread. Neither changes anything: the
balance plan's moves are submitted by the client (``gnt-cluster balance -X``), one job per
move, as ordinary migrate, failover and replace-disks jobs that lock what they change.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cardume import errors, opcodes
from cardume.cmdlib import common, iallocator
from cardume.cmdlib.base import LogicalUnit, register
from cardume.rules import ipolicy

# model.parse wants a request; this one asks nothing
_NO_REQUEST = {"type": "change-group", "instances": [], "target_groups": []}


def _check_group(lu: LogicalUnit, name: str | None) -> None:
    if name is not None:
        common.named_group(lu.cfg, name)


async def _model(lu: LogicalUnit, template: str | None) -> Any:
    from cardume.allocator import model
    document = await iallocator.cluster_data(lu, template)
    document["request"] = dict(_NO_REQUEST)
    return model.parse(document)[0]


@register
class LUClusterBalance(LogicalUnit):
    OP = opcodes.OpClusterBalance

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {}  # a snapshot is enough: the plan only describes moves

    async def check_prereq(self) -> None:
        _check_group(self, self.op.group_name)

    async def exec(self) -> list[dict[str, Any]]:
        from cardume.allocator import balance
        cluster = await _model(self, None)
        plans = await asyncio.to_thread(
            balance.balance, cluster, self.op.group_name, self.op.max_moves,
            float(self.op.min_gain), float(self.op.min_gain_limit))
        for plan in plans:
            self.log_info(f"Group {plan.group}: score {plan.initial_score:.8f} -> "
                          f"{plan.final_score:.8f} in {len(plan.moves)} move(s)")
        return [plan.as_data() for plan in plans]


@register
class LUClusterCapacity(LogicalUnit):
    OP = opcodes.OpClusterCapacity

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {}

    def check_arguments(self) -> None:
        spec = self.op.spec or {}
        wanted = (ipolicy.MEMORY, ipolicy.DISK_SIZE, ipolicy.CPUS, ipolicy.SPINDLES)
        for key in spec:
            if key not in wanted:
                raise errors.WrongInput(f"unknown spec '{key}': expected "
                                        f"{', '.join(wanted)}")
        self.spec = {key: ipolicy.spec_value(key, value, "instance spec")
                     for key, value in spec.items()}

    async def check_prereq(self) -> None:
        _check_group(self, self.op.group_name)

    async def exec(self) -> dict[str, Any]:
        from cardume.allocator import capacity
        cluster = await _model(self, self.op.disk_template)
        report = await asyncio.to_thread(capacity.capacity, cluster, self.spec or None,
                                         self.op.disk_template, self.op.group_name)
        return report.as_data()
