"""Logical units that change an existing instance: reinstall, rename, grow-disk,
activate/deactivate disks, modify, and moving it to another node (failover, migrate, move).
"""

from __future__ import annotations

import contextlib
from typing import Any

from cardume import constants, errors, objects, opcodes
from cardume.cmdlib import common, drbd, instance_convert
from cardume.cmdlib import instance_common as ic
from cardume.cmdlib.base import register
from cardume.cmdlib.instance import _InstanceLU
from cardume.jobs import locks

PROBE_TIMEOUT = 5.0  # seconds a live node daemon takes at most to answer 'version'
# Templates whose local disks a live migration can copy to the target (--mirror-disks).
_MIRRORABLE = (constants.DT_FILE, constants.DT_PLAIN)
# Templates whose disks every node can reach, so the instance can run anywhere.
_SHARED = (constants.DT_DISKLESS, constants.DT_SHARED_FILE)


def _check_stopped(lu: _InstanceLU, running: bool, what: str) -> None:
    if running:
        raise errors.WrongState(f"instance {lu.inst.name} is running; stop it before {what}",
                                f"gnt-instance shutdown {lu.inst.name}")


@register
class LUInstanceReinstall(_InstanceLU):
    OP = opcodes.OpInstanceReinstall

    async def check_prereq(self) -> None:
        await super().check_prereq()
        _check_stopped(self, await self.running_on_primary(), "reinstalling it")
        self.os_name = self.op.os_type or self.inst.os
        if not self.os_name:
            raise errors.WrongInput(f"instance {self.inst.name} has no OS; give one with -o")
        self.osparams = self.op.osparams if self.op.osparams is not None else self.inst.osparams
        await self.rpc.call(self.pnode, "os_validate",
                            {"os": self.os_name, "osparams": dict(self.osparams)})

    async def exec(self) -> None:
        edited = self.cfg.edit(self.inst)
        edited.os = self.os_name
        edited.osparams = dict(self.osparams)
        spec = ic.instance_spec(self.cfg, edited)
        await self.activate_mirrors()  # a drbd disk is written with its mirror connected
        self.log_info(f"Running the OS create script of {edited.os} on {self.pnode.name}")
        await self.rpc.call(self.pnode, "instance_os_add", {"instance": spec, "reinstall": True})
        await self.release_mirrors(ignore_errors=True)
        edited = self.cfg.edit(self.cfg.instances[edited.uuid])
        edited.os = self.os_name
        edited.osparams = dict(self.osparams)
        if edited.os != self.inst.os or edited.osparams != self.inst.osparams:
            await self.cfg.commit(update=[edited])


@register
class LUInstanceRename(_InstanceLU):
    OP = opcodes.OpInstanceRename
    NODE_LOCKS_SHARED = False

    def check_arguments(self) -> None:
        common.check_hostname(self.op.new_name, "instance")
        if not self.op.name_check and self.op.ip_check:
            raise errors.WrongInput("cannot do the IP check without the name check")

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        plan = super().declare_locks()
        names, _ = plan[locks.LEVEL_INSTANCE]
        plan[locks.LEVEL_INSTANCE] = ([*names, self.op.new_name], False)
        return plan

    async def check_prereq(self) -> None:
        await super().check_prereq()
        self.new_name = self.op.new_name
        if self.op.name_check:
            self.new_name = common.check_hostname(
                self.ctx.resolver.resolve(self.op.new_name).name, "instance")
        if self.cfg.find_instance(self.new_name) is not None:
            raise errors.AlreadyExists(f"instance '{self.new_name}' already exists")
        _check_stopped(self, await self.running_on_primary(), "renaming it")

    async def exec(self) -> str:
        old = self.inst
        edited = self.cfg.edit(old)
        edited.name = self.new_name
        renamed: list[tuple[objects.Disk, list[Any]]] = []
        try:
            for disk in edited.disks:
                if disk.dev_type not in (constants.DT_FILE, constants.DT_SHARED_FILE):
                    continue
                new_id = [disk.logical_id[0],
                          ic.renamed_file_path(disk.logical_id[1], self.new_name)]
                await self.rpc.call(self.pnode, "blockdev_rename",
                                    {"disk": ic.disk_spec(disk), "new_logical_id": new_id})
                renamed.append((disk, list(disk.logical_id)))
                disk.logical_id = new_id
            await self.cfg.commit(update=[edited])
        except BaseException:
            for disk, old_id in reversed(renamed):  # put the files back where they were
                with contextlib.suppress(errors.CardumeError):
                    await self.rpc.call(self.pnode, "blockdev_rename",
                                        {"disk": ic.disk_spec(disk), "new_logical_id": old_id})
            raise
        if old.os:
            try:
                await self.rpc.call(self.pnode, "instance_os_rename",
                                    {"instance": ic.instance_spec(self.cfg, edited),
                                     "old_name": old.name})
            except errors.CardumeError as err:
                self.log_warning(f"the OS rename script failed: {err}")
        return edited.name


@register
class LUInstanceGrowDisk(_InstanceLU):
    OP = opcodes.OpInstanceGrowDisk

    async def check_prereq(self) -> None:
        await super().check_prereq()
        if self.inst.disk_template == constants.DT_DISKLESS:
            raise errors.WrongInput(f"instance {self.inst.name} is diskless")
        if self.op.disk >= len(self.inst.disks):
            raise errors.WrongInput(f"instance {self.inst.name} has no disk {self.op.disk} "
                                    f"(it has {len(self.inst.disks)})")
        disk = self.inst.disks[self.op.disk]
        self.amount = (self.op.amount - disk.size) if self.op.absolute else self.op.amount
        if self.amount <= 0:
            raise errors.WrongInput(
                f"disk {self.op.disk} is {disk.size} MiB; growing to {self.op.amount} MiB "
                "would shrink it (shrinking is not supported)" if self.op.absolute else
                "the amount to grow must be positive")
        if disk.dev_type == constants.DT_DRBD8:  # the data LV grows on both nodes
            vg = str(disk.children[0].logical_id[0])
            for node_uuid in disk.nodes:
                await ic.check_vg_space(self.rpc, self.cfg.nodes[node_uuid],
                                        {vg: self.amount}, f"growing disk {self.op.disk}")
            self.running = await self.running_on_primary()
            return
        info = await self.rpc.call(self.pnode, "node_info", {})
        for item in info.get("storage", []):
            if item.get("type") == constants.TEMPLATE_STORAGE.get(disk.dev_type, disk.dev_type) \
                    and int(item.get("free", 0)) < self.amount:
                raise errors.InsufficientResources(
                    f"not enough disk space on node {self.pnode.name}: needed {self.amount} "
                    f"MiB, available {item.get('free')} MiB")

    async def exec(self) -> None:
        edited = self.cfg.edit(self.inst)
        disk = edited.disks[self.op.disk]
        self.log_info(f"Growing disk {self.op.disk} of {edited.name} by {self.amount} MiB")
        if disk.dev_type == constants.DT_DRBD8:
            await self._grow_drbd(edited, disk)
            return
        await self.rpc.call(self.pnode, "blockdev_grow",
                            {"disk": ic.disk_spec(disk), "amount": self.amount})
        disk.size += self.amount
        await self.cfg.commit(update=[edited])

    async def _grow_drbd(self, edited: objects.Instance, disk: objects.Disk) -> None:
        """As Ganeti: the mirror up on both nodes, the data LV grown on each, then the DRBD
        device resized (from the primary: DRBD carries it to the peer) and the new space
        synced; the disks go down again if they were down before."""
        was_active = self.inst.disks_active or self.running
        await drbd.assemble(self, self.inst, None)
        for node_uuid in disk.nodes:
            await self.rpc.call(self.cfg.nodes[node_uuid], "blockdev_grow",
                                {"disk": ic.node_disk(self.cfg, disk, node_uuid),
                                 "amount": self.amount, "backingstore": True})
        disk.size += self.amount
        disk.children[0].size += self.amount
        await self.rpc.call(self.pnode, "blockdev_grow",
                            {"disk": ic.node_disk(self.cfg, disk, self.pnode.uuid),
                             "amount": self.amount, "backingstore": False})
        await self.cfg.commit(update=[edited])
        self.inst = edited
        if self.op.wait_for_sync:
            await drbd.wait_for_sync(self, edited, self.pnode.uuid)
        if not was_active:
            for problem in await drbd.shutdown(self, edited, ignore_errors=True):
                self.log_warning(problem)


@register
class LUInstanceActivateDisks(_InstanceLU):
    OP = opcodes.OpInstanceActivateDisks

    async def exec(self) -> list[tuple[str, str, str]]:
        if self.inst.disk_template == constants.DT_DRBD8:
            result = await drbd.assemble(self, self.inst, None)
        else:
            result = []
            for disk in self.inst.disks:
                reply = await self.rpc.call(self.pnode, "blockdev_assemble",
                                            {"disk": ic.disk_spec(disk)})
                result.append((self.pnode.name, disk.iv_name, reply["path"]))
        await self.update_instance(disks_active=True)
        if self.op.wait_for_sync and self.inst.disk_template == constants.DT_DRBD8:
            await drbd.wait_for_sync(self, self.inst, self.pnode.uuid)
        return result


@register
class LUInstanceDeactivateDisks(_InstanceLU):
    OP = opcodes.OpInstanceDeactivateDisks

    async def check_prereq(self) -> None:
        await super().check_prereq()
        if not self.op.force:
            _check_stopped(self, await self.running_on_primary(), "deactivating its disks")

    async def exec(self) -> None:
        if self.inst.disk_template == constants.DT_DRBD8:
            await drbd.shutdown(self, self.inst)
        else:
            for disk in self.inst.disks:
                await self.rpc.call(self.pnode, "blockdev_shutdown",
                                    {"disk": ic.disk_spec(disk)})
        await self.update_instance(disks_active=False)


@register
class LUInstanceSetParams(_InstanceLU):
    OP = opcodes.OpInstanceSetParams
    NODE_LOCKS_SHARED = False

    def check_arguments(self) -> None:
        op = self.op
        self.beparams = common.check_beparams(op.beparams)
        self.nic_changes = list(op.nics)
        self.disk_changes = list(op.disks)
        if op.disk_template is not None and op.disk_template not in constants.DISK_TEMPLATES:
            raise errors.WrongInput(f"unknown disk template '{op.disk_template}' (expected "
                                    f"{', '.join(constants.DISK_TEMPLATES)})")
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
        self.running = await self.running_on_primary()
        self._removed: list[tuple[objects.Node, dict[str, Any]]] = []
        if op.offline is True and inst.admin_state != "down":
            raise errors.WrongState(f"instance {inst.name} must be down (not "
                                    f"{inst.admin_state}) to be marked offline")
        if op.offline is True:
            _check_stopped(self, self.running, "marking it offline")
        if op.offline is False and inst.admin_state == "up":
            raise errors.WrongState(f"instance {inst.name} is up, not offline")
        if op.os_name:
            await self.rpc.call(self.pnode, "os_validate",
                                {"os": op.os_name,
                                 "osparams": dict(op.osparams or inst.osparams)})
        if self.disk_changes and inst.disk_template == constants.DT_DISKLESS:
            raise errors.WrongInput(f"instance {inst.name} is diskless; it can't get disks "
                                    "(converting from diskless is not possible)")
        if any(action == "remove" for action, _, _ in self.disk_changes):
            # as in Ganeti: new disks and changed modes wait for the next start, but a disk
            # can't go away under a running instance
            _check_stopped(self, self.running, "removing a disk")
        if op.runtime_mem is not None and not self.running:
            raise errors.WrongState(f"instance {inst.name} is not running, so its memory "
                                    "can't be changed at runtime")
        self.new_snode = None
        if op.disk_template:
            self.new_snode = await instance_convert.check(self, op.disk_template)
        elif self.disk_changes and inst.disk_template == constants.DT_DRBD8:
            offline = [self.cfg.nodes[u].name for u in inst.secondary_nodes
                       if self.cfg.nodes[u].offline]
            if offline and any(a in ("add", "remove") for a, _, _ in self.disk_changes):
                raise errors.WrongState(f"secondary node {', '.join(offline)} of {inst.name} "
                                        "is offline: disks can't be added or removed on it")

    async def exec(self) -> list[tuple[str, str]]:
        op = self.op
        changes: list[tuple[str, str]] = []
        if op.disk_template == constants.DT_DRBD8:
            assert self.new_snode is not None
            await instance_convert.to_drbd(self, self.new_snode)
            changes.append(("disk_template", f"drbd, secondary {self.new_snode.name}"))
        elif op.disk_template == constants.DT_PLAIN:
            await instance_convert.to_plain(self)
            changes.append(("disk_template", "plain"))
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
        created: list[tuple[objects.Node, dict[str, Any]]] = []
        with drbd.allocating(self.cfg) as self.alloc:  # a new drbd disk's port and minors
            try:
                for action, index, params in self.disk_changes:
                    changes.append(await self._change_disk(edited, str(action), int(index),
                                                           dict(params), created))
                await self.cfg.commit(update=[edited])
            except BaseException:
                for node, disk in created:
                    with contextlib.suppress(errors.CardumeError):
                        await self.rpc.call(node, "blockdev_remove", {"disk": disk})
                raise
        for node, disk in self._removed:  # only once the config no longer points at them
            with contextlib.suppress(errors.CardumeError):
                await self.rpc.call(node, "blockdev_remove", {"disk": disk})
        if created and edited.disk_template == constants.DT_DRBD8:
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
            mac = spec["mac"] or ic.generate_mac(self.cfg, {n.mac for n in inst.nics})
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
                             created: list[tuple[objects.Node, dict[str, Any]]],
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

        async def create(node: objects.Node, node_spec: dict[str, Any]) -> None:
            await self.rpc.call(node, "blockdev_create", {"disk": node_spec})
            created.append((node, node_spec))
        await drbd.on_both(*(create(node, node_spec) for node, node_spec in sides))
        await drbd.on_both(*(self.rpc.call(node, "drbd_connect", {"disks": [node_spec]})
                             for node, node_spec in sides))
        await self.rpc.call(self.pnode, "drbd_set_role",
                            {"disks": [sides[1][1]], "role": "primary", "force": True})
        return disk

    async def _change_disk(self, inst: objects.Instance, action: str, index: int,
                           params: dict[str, Any],
                           created: list[tuple[objects.Node, dict[str, Any]]],
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
            if inst.disk_template == constants.DT_DRBD8:
                disk = await self._add_drbd_disk(inst, spec, position, created)
                inst.disks.insert(position, disk)
                self._renumber(inst)
                return (f"disk/{position}", f"add:size={disk.size}")
            disk = objects.Disk(name=spec.get("name"), dev_type=inst.disk_template,
                                size=spec["size"], mode=spec["mode"],
                                iv_name=f"disk/{position}", nodes=[inst.primary_node])
            if inst.disk_template in (constants.DT_FILE, constants.DT_SHARED_FILE):
                disk.logical_id = ["loop", ic.file_disk_path(
                    self.cfg.get_cluster(), inst.disk_template, inst.name, disk.uuid, position)]
            elif inst.disk_template == constants.DT_PLAIN:
                disk.logical_id = ic.plain_disk_id(self.cfg.get_cluster(), spec, disk.uuid,
                                                   position)
            await self.rpc.call(self.pnode, "blockdev_create", {"disk": ic.disk_spec(disk)})
            created.append((self.pnode, ic.disk_spec(disk)))
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


class _MoveLU(_InstanceLU):
    """Shared checks of failover and migrate for templates whose storage is shared."""

    NODE_LOCKS_SHARED = False

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
        inst = self.inst
        if inst.disk_template == constants.DT_DRBD8:
            return self._drbd_target()
        mirrored = inst.disk_template in _MIRRORABLE and getattr(self.op, "mirror_disks", False)
        if inst.disk_template in _MIRRORABLE and isinstance(self, LUInstanceMigrate) \
                and not mirrored:
            raise errors.WrongInput(
                f"instance {inst.name} keeps its {inst.disk_template} disks on "
                f"{self.pnode.name} only, so a migration must copy them",
                f"migrate it live with --mirror-disks (the disks are mirrored to the target "
                f"while it runs), or move it offline with 'gnt-instance move -n NODE "
                f"{inst.name}'")
        if mirrored and inst.hypervisor != constants.HT_KVM:
            raise errors.WrongInput(f"--mirror-disks needs the kvm hypervisor; instance "
                                    f"{inst.name} runs on {inst.hypervisor}")
        if inst.disk_template not in _SHARED and not mirrored:
            raise errors.WrongInput(
                f"instance {inst.name} uses the {inst.disk_template} template, whose disks "
                "live on one node; it can't fail over or migrate",
                f"use 'gnt-instance move -n NODE {inst.name}' to copy it")
        if self.op.target_node:
            target = self.cfg.expand_node(self.op.target_node)
        else:
            candidates = [n for n in self.cfg.sorted_nodes()
                          if n.uuid != inst.primary_node and not n.offline and not n.drained
                          and n.vm_capable]
            if not candidates:
                raise errors.WrongState(f"no other node can take instance {inst.name}")
            target = candidates[0]
        if target.uuid == inst.primary_node:
            raise errors.WrongInput(f"instance {inst.name} is already on {target.name}")
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
        if inst.disk_template == constants.DT_DRBD8:
            await self._failover_drbd(target, was_up, ignore_consistency, shutdown_timeout)
            return
        if not source.offline:
            self.log_info(f"Shutting down instance {inst.name} on {source.name}")
            try:
                await self.rpc.call(source, "instance_shutdown",
                                    {"instance": self.spec(), "timeout": shutdown_timeout})
            except errors.CardumeError as err:
                if not ignore_consistency:
                    raise errors.ExecError(
                        f"could not stop {inst.name} on {source.name}: {err}",
                        "use --ignore-consistency if that node is dead") from None
                self.log_warning(f"could not stop it on {source.name}: {err}")
        moved = await self.set_primary(target)
        if was_up:
            self.log_info(f"Starting instance {inst.name} on {target.name}")
            await self.rpc.call(target, "instance_start",
                                {"instance": ic.instance_spec(self.cfg, moved)})

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
                await self.rpc.call(source, "version", {}, timeout=PROBE_TIMEOUT)
            except errors.CardumeError as err:
                self.log_warning(f"{source.name} does not answer ({err}); treating it as "
                                 "dead (--ignore-consistency)")
                source_alive = False
        if source_alive:
            self.log_info(f"Shutting down instance {inst.name} on {source.name}")
            try:
                await self.rpc.call(source, "instance_shutdown",
                                    {"instance": self.spec(), "timeout": shutdown_timeout})
                await self.rpc.call(source, "drbd_connect",
                                    {"disks": drbd.disks_for(self.cfg, inst, source.uuid)})
                await self.rpc.call(source, "drbd_set_role",
                                    {"disks": drbd.disks_for(self.cfg, inst, source.uuid),
                                     "role": "secondary"})
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
        await self.rpc.call(target, "drbd_connect", {"disks": target_disks})
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
            await self.rpc.call(target, "drbd_set_role",
                                {"disks": target_disks, "role": "primary"})
        except errors.CardumeError as err:
            if not ignore_consistency:
                raise errors.WrongState(
                    f"DRBD refused to make {target.name} primary for {inst.name}: {err}",
                    "--ignore-consistency forces it (the copy there may be stale)") from None
            self.log_warning(f"forcing {target.name} to be primary: {err}")
            await self.rpc.call(target, "drbd_set_role",
                                {"disks": target_disks, "role": "primary", "force": True})
        moved = await self.set_primary(target)
        if was_up:
            self.log_info(f"Starting instance {inst.name} on {target.name}")
            await self.rpc.call(target, "instance_start",
                                {"instance": ic.instance_spec(self.cfg, moved)})
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
            if disk.dev_type == constants.DT_DRBD8:  # the old primary keeps the mirror
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
            info = await self.rpc.call(self.target, "node_info", {})
            memory = int(self.spec()["beparams"]["maxmem"])
            ic.check_free_memory(self.target.name, info, memory, self.inst.name)

    async def exec(self) -> None:
        await self.failover(self.target, self.was_up, self.op.ignore_consistency,
                            self.op.shutdown_timeout)


@register
class LUInstanceMigrate(_MoveLU):
    OP = opcodes.OpInstanceMigrate

    async def check_prereq(self) -> None:
        await super().check_prereq()
        if self.op.cleanup:
            self._check_cleanup()
            return
        self.target = await self.choose_target()
        running = await self.running_on_primary()
        always = bool(self.spec()["beparams"].get("always_failover"))
        # As in Ganeti: always_failover turns every migration into a failover, and
        # --allow-failover lets a migration that can't happen (stopped) fail over.
        self.as_failover = always or (not running and self.op.allow_failover)
        self.copy_disks = self.inst.disk_template in _MIRRORABLE
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
        info = await self.rpc.call(self.target, "node_info", {})
        memory = int(self.spec()["beparams"]["maxmem"])
        ic.check_free_memory(self.target.name, info, memory, self.inst.name)
        if self.inst.disk_template == constants.DT_DRBD8:
            await self._check_mirror_in_sync()
        if self.copy_disks:
            await self._check_target_space(info)

    async def _check_target_space(self, info: dict[str, Any]) -> None:
        """Room on the target for the disks the migration copies."""
        inst = self.inst
        if inst.disk_template == constants.DT_PLAIN:
            needs: dict[str, int] = {}
            for disk in inst.disks:
                needs[str(disk.logical_id[0])] = needs.get(str(disk.logical_id[0]), 0) \
                    + disk.size
            await ic.check_vg_space(self.rpc, self.target, needs, "the mirrored disks")
            return
        needed = sum(d.size for d in inst.disks)
        for item in info.get("storage", []):
            if item.get("type") == constants.ST_FILE and int(item.get("free", 0)) < needed:
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
        if inst.disk_template == constants.DT_DRBD8:
            self.target = self._drbd_target()
        elif self.op.target_node:
            self.target = self.cfg.expand_node(self.op.target_node)
        else:
            raise errors.WrongInput("--cleanup needs the node the migration went to: "
                                    "-n NODE")
        if self.target.uuid == inst.primary_node:
            raise errors.WrongInput(f"--cleanup: {self.target.name} is the primary of "
                                    f"{inst.name}; name the migration's target node")

    async def _side(self, node: objects.Node, role: str, spec: dict[str, Any]) -> str:
        if node.offline:
            return "absent"
        return str(await self.rpc.call(node, "instance_migration_state",
                                       {"instance": spec, "role": role}))

    async def _cleanup(self) -> None:
        """Ask both sides where the interrupted migration left them, decide with the
        migration engine's table, carry it out, and record where the instance runs."""
        import asyncio

        from cardume.node.hypervisor import kvm_migrate
        inst, source, target = self.inst, self.pnode, self.target
        spec, target_spec = self.spec(), self.spec(node_uuid=target.uuid)
        plan = None
        for _ in range(10):  # a target still loading the last of the state: let it finish
            states = (await self._side(source, "source", spec),
                      await self._side(target, "target", target_spec))
            plan = kvm_migrate.decide_cleanup(*states)
            if states != (kvm_migrate.HANDED_OVER, kvm_migrate.WAITING):
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
                await self.rpc.call(node, "instance_migration_cleanup",
                                    {"instance": node_spec, "role": role, "action": action})
        if plan.error:
            raise errors.WrongState(f"--cleanup of {inst.name}: {plan.error}")
        mirrored = inst.disk_template == constants.DT_DRBD8
        if plan.runs_on == "target":
            await self.set_primary(target)
            loser = source
        else:
            loser = target
        if mirrored and not loser.offline:  # one writer again: the other side secondary
            await self.rpc.call(loser, "drbd_set_role",
                                {"disks": drbd.disks_for(self.cfg, self.inst, loser.uuid),
                                 "role": "secondary"})
            await self._reconnect(dual_primary=False)
        where = self.cfg.node_name(self.cfg.instances[inst.uuid].primary_node)
        self.log_info(f"Instance {inst.name} runs on {where}")

    async def exec(self) -> None:
        if self.op.cleanup:
            await self._cleanup()
            return
        if self.as_failover:
            self.log_info(f"Failing over instance {self.inst.name} instead of migrating it")
            await self.failover(self.target, self.was_up, False, 120)
            return
        inst, source, target = self.inst, self.pnode, self.target
        live = self.op.mode != "non-live" and self.op.live is not False
        mirrored = inst.disk_template == constants.DT_DRBD8
        if mirrored:
            self.log_info("Switching the disks to dual-primary mode")
            await self._reconnect(dual_primary=True)
        self.log_info(f"Migrating instance {inst.name} from {source.name} to {target.name}")
        spec, target_spec = self.spec(), self.spec(node_uuid=target.uuid)
        copies: list[dict[str, Any]] = []
        if self.copy_disks:  # empty disks of the same size, which the migration fills
            target_spec = dict(target_spec, mirror_disks=True)
            for disk in inst.disks:
                self.log_info(f"Creating disk {disk.iv_name} ({disk.size} MiB) on "
                              f"{target.name} for the mirror")
                try:
                    await self.rpc.call(target, "blockdev_create",
                                        {"disk": ic.disk_spec(disk)})
                except errors.CardumeError:
                    await self._remove_copies(target, copies)
                    raise
                copies.append(ic.disk_spec(disk))
        try:
            accepted = await self.rpc.call(target, "accept_instance",
                                           {"instance": target_spec,
                                            "source": source.primary_ip})
            await self.rpc.call(source, "instance_migrate",
                                {"instance": spec, "target": target.primary_ip,
                                 "info": accepted or {}, "live": live})
        except errors.CardumeError as err:
            with contextlib.suppress(errors.CardumeError):
                await self.rpc.call(target, "instance_finalize_migration_dst",
                                    {"instance": target_spec, "success": False})
            await self._remove_copies(target, copies)
            if mirrored:  # the target must not stay primary: back to one writer
                with contextlib.suppress(errors.CardumeError):
                    await self.rpc.call(target, "drbd_set_role",
                                        {"disks": drbd.disks_for(self.cfg, inst, target.uuid),
                                         "role": "secondary"})
                    await self._reconnect(dual_primary=False)
            raise errors.ExecError(f"migration of {inst.name} failed: {err}; it still runs "
                                   f"on {source.name}") from None
        await self.rpc.call(target, "instance_finalize_migration_dst",
                            {"instance": target_spec, "success": True})
        await self.set_primary(target)
        await self.rpc.call(source, "instance_finalize_migration_src",
                            {"instance": spec, "success": True})
        for disk in inst.disks if self.copy_disks else []:  # the target has them now
            try:
                await self.rpc.call(source, "blockdev_remove", {"disk": ic.disk_spec(disk)})
            except errors.CardumeError as err:
                self.log_warning(f"could not remove the old copy of {disk.iv_name} on "
                                 f"{source.name}: {err}")
        if mirrored:
            self.log_info("Back to single-primary mode, the old primary as secondary")
            await self.rpc.call(source, "drbd_set_role",
                                {"disks": drbd.disks_for(self.cfg, self.inst, source.uuid),
                                 "role": "secondary"})
            await self._reconnect(dual_primary=False)
        self.log_info(f"Instance {inst.name} now runs on {target.name}")

    async def _remove_copies(self, target: objects.Node,
                             copies: list[dict[str, Any]]) -> None:
        for spec in copies:
            with contextlib.suppress(errors.CardumeError):
                await self.rpc.call(target, "blockdev_remove", {"disk": spec})

    async def _reconnect(self, dual_primary: bool) -> None:
        """Disconnect and reconnect both sides with or without dual-primary mode (as Ganeti
        does; DRBD keeps the bitmap meanwhile, so nothing is resynced whole)."""
        inst = self.cfg.instances[self.inst.uuid]
        nodes = [self.cfg.nodes[u] for u in (inst.primary_node, *inst.secondary_nodes)]
        for node in nodes:
            await self.rpc.call(node, "drbd_disconnect",
                                {"disks": drbd.disks_for(self.cfg, inst, node.uuid)})
        for node in nodes:
            await self.rpc.call(node, "drbd_connect",
                                {"disks": drbd.disks_for(self.cfg, inst, node.uuid),
                                 "dual_primary": dual_primary})
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
        if inst.disk_template not in (constants.DT_FILE, constants.DT_PLAIN):
            raise errors.WrongInput(f"instance {inst.name} uses the {inst.disk_template} "
                                    "template; only file and plain instances can be moved",
                                    "use failover or migrate for shared storage")
        self.target = self.cfg.expand_node(self.op.target_node)
        if self.target.uuid == inst.primary_node:
            raise errors.WrongInput(f"instance {inst.name} is already on {self.target.name}")
        ic.check_node_usable(self.target, "target")
        self.was_up = inst.admin_state == "up"
        info = await self.rpc.call(self.target, "node_info", {})
        if self.was_up:
            ic.check_free_memory(self.target.name, info,
                                 int(self.spec()["beparams"]["maxmem"]), inst.name)
        needed = sum(d.size for d in inst.disks)
        for item in info.get("storage", []):
            if item.get("type") == constants.TEMPLATE_STORAGE.get(
                    inst.disk_template, inst.disk_template) and int(item.get("free", 0)) < needed:
                raise errors.InsufficientResources(
                    f"not enough disk space on node {self.target.name}: needed {needed} MiB, "
                    f"available {item.get('free')} MiB")

    async def exec(self) -> None:
        inst, source, target = self.inst, self.pnode, self.target
        self.log_info(f"Shutting down instance {inst.name} on {source.name}")
        await self.rpc.call(source, "instance_shutdown",
                            {"instance": self.spec(), "timeout": self.op.shutdown_timeout})
        copied: list[dict[str, Any]] = []
        try:
            for disk in inst.disks:
                spec = ic.disk_spec(disk)
                self.log_info(f"Copying disk {disk.iv_name} ({disk.size} MiB) to {target.name}")
                await self.rpc.call(target, "blockdev_create", {"disk": spec})
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
                    await self.rpc.call(target, "blockdev_remove", {"disk": spec})
            if self.was_up:
                with contextlib.suppress(errors.CardumeError):
                    await self.rpc.call(source, "instance_start", {"instance": self.spec()})
            raise
        for disk in inst.disks:
            with contextlib.suppress(errors.CardumeError):
                await self.rpc.call(source, "blockdev_remove", {"disk": ic.disk_spec(disk)})
        if self.was_up:
            self.log_info(f"Starting instance {inst.name} on {target.name}")
            await self.rpc.call(target, "instance_start",
                                {"instance": ic.instance_spec(self.cfg, edited)})

    async def _copy(self, spec: dict[str, Any], source: objects.Node,
                    target: objects.Node) -> None:
        """Copy a disk chunk by chunk through the master; holes stay holes."""
        offset = 0
        total = spec["size"] * 1024 * 1024
        while offset < total:
            length = min(COPY_CHUNK, total - offset)
            chunk = await self.rpc.call(source, "blockdev_read",
                                        {"disk": spec, "offset": offset, "length": length})
            if chunk["data"] is not None:
                await self.rpc.call(target, "blockdev_write",
                                    {"disk": spec, "offset": offset, "data": chunk["data"]})
            elif spec["dev_type"] == constants.DT_PLAIN and chunk["length"]:
                # a new LV holds whatever its extents held before: zeros must be written
                await self.rpc.call(target, "blockdev_write",
                                    {"disk": spec, "offset": offset,
                                     "zeros": int(chunk["length"])})
            offset += int(chunk["length"])
            if chunk["eof"] or not chunk["length"]:
                break
