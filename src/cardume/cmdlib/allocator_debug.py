"""gnt-debug allocator (Ganeti's gnt-debug iallocator): the request an allocator would get
for a made-up operation, or its answer. Nothing is placed and nothing changes."""

from __future__ import annotations

import json
from typing import Any

from cardume import constants, errors, objects, opcodes
from cardume.cmdlib import common, iallocator
from cardume.cmdlib.base import LogicalUnit, register
from cardume.rules import disk_templates


@register
class LUTestAllocator(LogicalUnit):
    OP = opcodes.OpTestAllocator
    BGL_SHARED = True

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {}  # a snapshot is enough: the request only describes the cluster

    def check_arguments(self) -> None:
        op = self.op
        if op.mode in ("allocate", "multi-allocate"):
            missing = [name for name, value in (("memory", op.memory), ("disks", op.disks),
                                                ("disk_template", op.disk_template),
                                                ("os", op.os)) if not value]
            if missing and not (missing == ["disks"] and
                                op.disk_template == constants.DT_DISKLESS):
                raise errors.WrongInput(f"the {op.mode} request needs {', '.join(missing)}")
            for disk in op.disks:
                if not isinstance(disk.get("size"), int) or disk["size"] <= 0:
                    raise errors.WrongInput(f"disk size {disk.get('size')!r} is not valid "
                                            "(expected MiB, a positive integer)")
        if op.mode == "node-evacuate" and not op.evac_mode:
            raise errors.WrongInput("the node-evacuate request needs an evacuation mode "
                                    "(--evac-mode primary-only|secondary-only|all)")
        if op.mode == "multi-allocate" and not op.count:
            raise errors.WrongInput("the multi-allocate request needs --count")
        if op.direction == "out":
            self.allocator = iallocator.chosen(self, op.iallocator)

    async def check_prereq(self) -> None:
        op, cfg = self.op, self.cfg
        cluster = cfg.get_cluster()
        if op.mode in ("allocate", "multi-allocate"):
            if op.mode == "allocate" and cfg.find_instance(op.name) is not None:
                raise errors.AlreadyExists(f"instance '{op.name}' already exists")
            names = [op.name] if op.mode == "allocate" else \
                [f"{op.name}{i}" for i in range(int(op.count))]
            be = objects.fill_beparams(cluster, None, {})
            one = [iallocator.allocate_request(
                name=name, template=str(op.disk_template), disks=list(op.disks),
                nics=list(op.nics), memory=int(op.memory),
                vcpus=int(op.vcpus or be["vcpus"]), os=str(op.os),
                hypervisor=op.hypervisor or cluster.enabled_hypervisors[0],
                tags=list(op.tags), spindle_use=int(op.spindle_use or 1),
                group_name=op.group_name) for name in names]
            self.request = one[0] if op.mode == "allocate" else \
                iallocator.multi_allocate_request(one)
            self.template = op.disk_template
        elif op.mode == "relocate":
            inst = cfg.expand_instance(op.name)
            if not disk_templates.of(inst.disk_template).network_mirrored:
                raise errors.WrongInput(f"instance {inst.name} is not mirrored "
                                        f"({inst.disk_template}): it has no secondary to "
                                        "relocate")
            self.request = iallocator.relocate_request(cfg, inst)
            self.template = inst.disk_template
        else:
            names = [cfg.expand_instance(n).name for n in (op.instances or [op.name])]
            if op.mode == "node-evacuate":
                self.request = iallocator.evacuate_request(names, str(op.evac_mode))
            else:
                groups = [common.named_group(cfg, g).uuid for g in op.target_groups or []]
                self.request = iallocator.change_group_request(names, groups)
            self.template = None

    async def exec(self) -> str:
        document = await iallocator.cluster_data(self, self.template)
        document["request"] = self.request
        if self.op.direction == "in":
            return json.dumps(document, indent=2)
        return json.dumps(await iallocator.ask(self.allocator, document))
