"""gnt-instance modify: parameters, OS, offline state, NICs and disks of an instance, and
its disk template (the conversions themselves are in instance_convert).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from cardume import constants, errors, objects, opcodes
from cardume.cmdlib import common, drbd, instance_convert, instance_policy, network_nics
from cardume.cmdlib import instance_common as ic
from cardume.cmdlib.base import register
from cardume.cmdlib.instance import _InstanceLU
from cardume.rpc.wire import DiskSpec
from cardume.rules import disk_templates

#: The backend parameters an instance policy looks at.
POLICY_BEPARAMS = {"maxmem", "minmem", "memory", "vcpus", "spindle_use"}


@register
class LUInstanceSetParams(_InstanceLU):
    OP = opcodes.OpInstanceSetParams
    NODE_LOCKS_SHARED = False

    def check_arguments(self) -> None:
        op = self.op
        self.beparams = common.check_beparams(op.beparams)
        self.nic_changes = list(op.nics)
        self.disk_changes = list(op.disks)
        if op.disk_template is not None:
            disk_templates.of(op.disk_template)  # an unknown name is refused here
        if not any((op.beparams, op.hvparams, op.osparams is not None, op.os_name, op.disks,
                    op.nics, op.offline is not None, op.runtime_mem is not None,
                    op.disk_template)):
            raise errors.WrongInput("please give at least one modification")

    async def check_prereq(self) -> None:
        await super().check_prereq()
        op, inst = self.op, self.inst
        self.hvparams = (common.check_instance_hvparams(inst.hypervisor, op.hvparams)
                         if op.hvparams else {})
        if self.hvparams:  # fine alone, and with the instance's others and the defaults?
            common.check_hvparams({inst.hypervisor: objects.fill_hvparams(
                self.cfg.get_cluster(), self.cfg.group_of(self.pnode), inst.hypervisor,
                objects.merge_params(inst.hvparams, self.hvparams))})
        if self.beparams:  # the values given may be fine alone and not with the others
            filled = objects.fill_beparams(self.cfg.get_cluster(), self.cfg.group_of(self.pnode),
                                           objects.merge_params(inst.beparams, self.beparams))
            if int(filled["minmem"]) > int(filled["maxmem"]):
                raise errors.WrongInput(
                    f"backend parameter minmem ({filled['minmem']}) would be bigger than maxmem "
                    f"({filled['maxmem']}) on instance {inst.name}")
        if any(action == "add" and isinstance(params, dict) and "adopt" in params
               for action, _, params in op.disks):
            raise errors.WrongInput("a disk can be adopted only when the instance is created")
        self._check_ipolicy()
        self.running = await self.running_on_primary()
        self._removed: list[tuple[objects.Node, DiskSpec]] = []
        if op.offline is True and inst.admin_state != "down":
            raise errors.WrongState(f"instance {inst.name} must be down (not "
                                    f"{inst.admin_state}) to be marked offline")
        if op.offline is True:
            self.check_stopped(self.running, "marking it offline")
        if op.offline is False and inst.admin_state == "up":
            raise errors.WrongState(f"instance {inst.name} is up, not offline")
        if op.os_name:
            await self.rpc.os_validate(self.pnode, op.os_name,
                                       dict(op.osparams or inst.osparams))
        if self.disk_changes and not self.template.has_disks:
            raise errors.WrongInput(f"instance {inst.name} is diskless; it can't get disks "
                                    "(converting from diskless is not possible)")
        if any(action == "remove" for action, _, _ in self.disk_changes):
            # as in Ganeti: new disks and changed modes wait for the next start, but a disk
            # can't go away under a running instance
            self.check_stopped(self.running, "removing a disk")
        if op.runtime_mem is not None and not self.running:
            raise errors.WrongState(f"instance {inst.name} is not running, so its memory "
                                    "can't be changed at runtime")
        self.new_snode = None
        if op.disk_template:
            self.new_snode = await instance_convert.check(
                self, op.disk_template, running=self.running,
                other_changes=bool(self.disk_changes or self.nic_changes))
        elif self.disk_changes and self.template.needs_secondary:
            offline = [self.cfg.nodes[u].name for u in inst.secondary_nodes
                       if self.cfg.nodes[u].offline]
            if offline and any(a in ("add", "remove") for a, _, _ in self.disk_changes):
                raise errors.WrongState(f"secondary node {', '.join(offline)} of {inst.name} "
                                        "is offline: disks can't be added or removed on it")

    def _check_ipolicy(self) -> None:
        """The instance as this change leaves it, against its group's policy (as Ganeti:
        maxmem and minmem both within the memory bounds); --ignore-ipolicy lets it be.
        Only changes the policy looks at are checked, so an instance already outside it
        can still have its other parameters changed."""
        op, inst = self.op, self.inst
        counted = ("add", "remove")
        if not (set(self.beparams) & POLICY_BEPARAMS or op.disk_template
                or any(a in counted for a, _, _ in self.disk_changes)
                or any(a in counted for a, _, _ in self.nic_changes)):
            return
        group = self.cfg.group_of(self.pnode)
        filled = objects.fill_beparams(self.cfg.get_cluster(), group,
                                       objects.merge_params(inst.beparams, self.beparams))
        sizes = [int(disk.size) for disk in inst.disks]
        for action, index, params in self.disk_changes:
            if action == "add":
                size = ic.check_disks(inst.disk_template, [dict(params)])[0]["size"]
                sizes.insert(len(sizes) if int(index) < 0 else int(index), int(size))
            elif action == "remove" and sizes:
                sizes.pop(int(index) if -len(sizes) <= int(index) < len(sizes) else -1)
        nics = len(inst.nics) + sum(1 if a == "add" else -1 if a == "remove" else 0
                                    for a, _, _ in self.nic_changes)
        changed = dataclasses.replace(
            instance_policy.instance_spec(inst, filled), disk_sizes=tuple(sizes),
            nic_count=nics, disk_template=op.disk_template or inst.disk_template)
        minmem = dataclasses.replace(changed, memory=int(filled["minmem"]))
        instance_policy.check_policy(self.cfg, group, [changed, minmem], op.ignore_ipolicy)

    async def exec(self) -> list[tuple[str, str]]:
        op = self.op
        changes: list[tuple[str, str]] = []
        if op.disk_template:
            changes.append(await instance_convert.convert(self, op.disk_template,
                                                          self.new_snode))
        self.inst = self.cfg.instances[self.inst.uuid]
        edited = self.cfg.edit(self.inst)
        if self.beparams:
            edited.beparams = objects.merge_params(edited.beparams, self.beparams)
            changes.extend((f"be/{k}", str(v)) for k, v in self.beparams.items())
        if self.hvparams:
            edited.hvparams = objects.merge_params(edited.hvparams, self.hvparams)
            changes.extend((f"hv/{k}", str(v)) for k, v in self.hvparams.items())
        if op.osparams is not None:
            edited.osparams = objects.merge_params(edited.osparams, op.osparams)
            changes.extend((f"os/{k}", str(v)) for k, v in op.osparams.items())
        if op.os_name:
            edited.os = op.os_name
            changes.append(("os", op.os_name))
        if op.offline is not None:
            edited.admin_state = "offline" if op.offline else "down"
            changes.append(("admin_state", edited.admin_state))
        for action, index, params in self.nic_changes:
            changes.append(self._change_nic(edited, str(action), int(index), dict(params)))
        created: list[tuple[objects.Node, DiskSpec]] = []
        with drbd.allocating(self.cfg) as self.alloc:  # a new drbd disk's port and minors
            try:
                for action, index, params in self.disk_changes:
                    changes.append(await self._change_disk(edited, str(action), int(index),
                                                           dict(params), created))
                await self.cfg.commit(update=[edited])
            except BaseException:
                for node, disk in created:
                    with contextlib.suppress(errors.CardumeError):
                        await self.rpc.blockdev_remove(node, disk)
                raise
        for node, disk in self._removed:  # only once the config no longer points at them
            with contextlib.suppress(errors.CardumeError):
                await self.rpc.blockdev_remove(node, disk)
        if created and disk_templates.of(edited.disk_template).network_mirrored:
            await self._settle_new_mirrors(edited)
        if changes and self.running:
            self.log_info("Most changes take effect at the next restart of the instance")
        return changes

    def _change_nic(self, inst: objects.Instance, action: str, index: int,
                    params: dict[str, Any]) -> tuple[str, str]:
        if action == "add":
            if len(inst.nics) >= ic.MAX_NICS:
                raise errors.WrongInput(f"instance {inst.name} already has {ic.MAX_NICS} NICs")
            spec = ic.check_nics([params])[0]
            network_nics.assign_nic_ips(self, self.cfg, self.cfg.group_of(self.pnode), [spec],
                                        inst.name)
            mac = spec["mac"] or ic.generate_mac(self.cfg, {n.mac for n in inst.nics},
                                                 network_nics.mac_prefix(self.cfg, spec))
            nic = objects.NIC(name=spec["name"], mac=mac, ip=spec["ip"],
                              network=spec["network"], nicparams=spec["nicparams"])
            position = len(inst.nics) if index < 0 else index
            self._check_nic_unique(inst, nic)
            inst.nics.insert(position, nic)
            return (f"nic.{position}", f"add:mac={mac}")
        nic = self._pick(inst.nics, index, "NIC")
        if action == "remove":
            inst.nics.remove(nic)
            return (f"nic.{index}", "remove")
        if action == "modify":
            spec = ic.check_nics([params])[0]
            if "network" in params or nic.network:  # address and mode/link from the network
                network_nics.change_nic(self, self.cfg, self.cfg.group_of(self.pnode), inst,
                                        nic, params, spec)
            if "mac" in params:  # mac=generate (or auto) asks for a new one
                nic.mac = spec["mac"] or ic.generate_mac(self.cfg, {n.mac for n in inst.nics})
            if "ip" in params:
                nic.ip = spec["ip"]
            if "name" in params:
                nic.name = spec["name"]
            nic.nicparams = objects.merge_params(nic.nicparams, spec["nicparams"])
            self._check_nic_unique(inst, nic)
            return (f"nic.{index}", "modify:" + ",".join(f"{k}={v}" for k, v in params.items()))
        raise errors.WrongInput(f"unknown NIC change '{action}' (expected add, remove, modify)")

    def _check_nic_unique(self, inst: objects.Instance, nic: objects.NIC) -> None:
        """A MAC (and an IP) belongs to one NIC of the cluster, as at creation."""
        cfg = self.cfg
        owners: list[tuple[str | None, str, str]] = [
            (cfg.macs.get(nic.mac), "MAC address", nic.mac)]
        if nic.ip:
            owners.append((cfg.nic_ips.get(nic.ip), "IP address", nic.ip))
        for owner, what, value in owners:
            if owner is not None and owner != inst.uuid:
                raise errors.AlreadyExists(f"{what} {value} is already used by instance "
                                           f"{cfg.instances[owner].name}")
        for other in inst.nics:
            if other is nic:
                continue
            if other.mac == nic.mac or (nic.ip and other.ip == nic.ip):
                what = "MAC address" if other.mac == nic.mac else "IP address"
                shown = nic.mac if other.mac == nic.mac else str(nic.ip)
                raise errors.AlreadyExists(f"{what} {shown} is already used by instance "
                                           f"{inst.name}")

    async def _settle_new_mirrors(self, inst: objects.Instance) -> None:
        """New drbd disks sync from the primary; then, if the instance is stopped and its
        disks were not active, they go down like its other disks."""
        self.inst = inst
        if self.op.wait_for_sync:
            await drbd.wait_for_sync(self, inst, inst.primary_node)
        if not (self.running or inst.disks_active):
            for problem in await drbd.shutdown(self, inst, ignore_errors=True):
                self.log_warning(problem)

    async def _add_drbd_disk(self, inst: objects.Instance, spec: dict[str, Any],
                             position: int,
                             created: list[tuple[objects.Node, DiskSpec]],
                             ) -> objects.Disk:
        """Both sides of a new mirrored disk, connected, the primary's the sync source."""
        cluster = self.cfg.get_cluster()
        snode = self.cfg.nodes[inst.secondary_nodes[0]]
        vg = ic.plain_vg(cluster, spec)
        metavg = spec.get("metavg") or cluster.diskparams.get(
            constants.DT_DRBD8, {}).get("metavg") or vg
        needs = {vg: spec["size"]}
        needs[metavg] = needs.get(metavg, 0) + drbd.META_SIZE
        for node in (self.pnode, snode):
            await ic.check_vg_space(self.rpc, node, needs, "the new drbd disk")
        disk = drbd.make_disk(self.alloc, self.pnode, snode, size=spec["size"], vg=vg,
                              metavg=str(metavg), index=position, mode=spec["mode"],
                              name=spec.get("name"))
        sides = [(node, drbd.node_disk_spec(self.cfg, disk, node.uuid))
                 for node in (snode, self.pnode)]

        async def create(node: objects.Node, node_spec: DiskSpec) -> None:
            await self.rpc.blockdev_create(node, node_spec)
            created.append((node, node_spec))
        await drbd.on_both(*(create(node, node_spec) for node, node_spec in sides))
        await drbd.on_both(*(self.rpc.drbd_connect(node, [node_spec])
                             for node, node_spec in sides))
        await self.rpc.drbd_set_role(self.pnode, [sides[1][1]], "primary", force=True)
        return disk

    async def _change_disk(self, inst: objects.Instance, action: str, index: int,
                           params: dict[str, Any],
                           created: list[tuple[objects.Node, DiskSpec]],
                           ) -> tuple[str, str]:
        if action == "add":
            if len(inst.disks) >= ic.MAX_DISKS:
                raise errors.WrongInput(f"instance {inst.name} already has {ic.MAX_DISKS} "
                                        "disks")
            spec = ic.check_disks(inst.disk_template, [params])[0]
            if "adopt" in spec:
                raise errors.WrongInput("a disk can be adopted only when the instance is "
                                        "created")
            position = len(inst.disks) if index < 0 else index
            kind = disk_templates.of(inst.disk_template)
            if kind.network_mirrored:
                disk = await self._add_drbd_disk(inst, spec, position, created)
                inst.disks.insert(position, disk)
                self._renumber(inst)
                return (f"disk/{position}", f"add:size={disk.size}")
            disk = objects.Disk(name=spec.get("name"), dev_type=inst.disk_template,
                                size=spec["size"], mode=spec["mode"],
                                iv_name=f"disk/{position}", nodes=[inst.primary_node])
            if kind.file_dir is not None:
                disk.logical_id = ["loop", ic.file_disk_path(
                    self.cfg.get_cluster(), inst.disk_template, inst.name, disk.uuid, position)]
            elif kind.lvm:
                disk.logical_id = ic.plain_disk_id(self.cfg.get_cluster(), spec, disk.uuid,
                                                   position)
            await self.rpc.blockdev_create(self.pnode, DiskSpec.of(disk))
            created.append((self.pnode, DiskSpec.of(disk)))
            inst.disks.insert(position, disk)
            self._renumber(inst)
            return (f"disk/{position}", f"add:size={disk.size}")
        disk = self._pick(inst.disks, index, "disk")
        if action == "remove":
            if len(inst.disks) == 1:
                raise errors.WrongInput(f"disk {index} is the last disk of {inst.name}; "
                                        "it can't be removed")
            inst.disks.remove(disk)
            self._removed.extend((self.cfg.nodes[node_uuid],
                                  ic.node_disk(self.cfg, disk, node_uuid))
                                 for node_uuid in disk.nodes or [inst.primary_node]
                                 if node_uuid in self.cfg.nodes)
            self._renumber(inst)
            return (f"disk/{index}", "remove")
        if action == "modify":
            unknown = set(params) - {"mode", "name"}
            if unknown:
                raise errors.WrongInput(f"disk {index}: only mode and name can be modified, "
                                        f"not {', '.join(sorted(unknown))}")
            if "mode" in params:
                if params["mode"] not in ("rw", "ro"):
                    raise errors.WrongInput(f"disk {index}: invalid mode '{params['mode']}'")
                disk.mode = params["mode"]
            if "name" in params:
                disk.name = params["name"] or None
            return (f"disk/{index}", "modify:" + ",".join(f"{k}={v}" for k, v in params.items()))
        raise errors.WrongInput(f"unknown disk change '{action}' (expected add, remove, modify)")

    @staticmethod
    def _pick(items: list[Any], index: int, what: str) -> Any:
        position = len(items) - 1 if index == -1 else index
        if not 0 <= position < len(items):
            raise errors.WrongInput(f"invalid {what} index {index}: the instance has "
                                    f"{len(items)} {what}(s)")
        return items[position]

    @staticmethod
    def _renumber(inst: objects.Instance) -> None:
        for position, disk in enumerate(inst.disks):
            disk.iv_name = f"disk/{position}"
