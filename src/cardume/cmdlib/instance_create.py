"""gnt-instance add: check everything, create the disks, install the OS, commit, start.

Nothing changes before exec. In exec, a failure before the commit removes every disk this
job created, so a failed add leaves no debris and the config as it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

from cardume import constants, errors, objects, opcodes
from cardume.cmdlib import backup_import, common, drbd, iallocator, instance_policy, network_nics
from cardume.cmdlib import instance_common as ic
from cardume.cmdlib.base import LogicalUnit, register
from cardume.jobs import locks
from cardume.rpc.wire import DiskSpec
from cardume.rules import disk_templates, ipolicy


@register
class LUInstanceCreate(LogicalUnit):
    OP = opcodes.OpInstanceCreate

    def check_arguments(self) -> None:
        op = self.op
        common.check_hostname(op.instance_name, "instance")
        if op.mode not in ("create", "import"):
            raise errors.WrongInput(f"instance creation mode '{op.mode}' is not supported "
                                    "yet; only 'create' and 'import'")
        importing = op.mode == "import"
        if not importing and op.disk_template is None:
            raise errors.WrongInput("no disk template given: use -t TEMPLATE")
        if not op.name_check and op.ip_check:
            raise errors.WrongInput("cannot do the IP address check without the name check "
                                    "(add --no-ip-check to --no-name-check)")
        if not op.os_type and not op.no_install and not importing:
            raise errors.WrongInput("no OS given: use -o OS+VARIANT (or --no-install)")
        if op.pnode and op.iallocator:
            raise errors.WrongInput(f"give either the nodes ({op.pnode}) or an allocator "
                                    f"({op.iallocator}), not both")
        # no nodes given: an allocator chooses them in check_prereq
        self.allocator = None if op.pnode else iallocator.chosen(self, op.iallocator)
        if op.snode and not op.pnode:
            raise errors.WrongInput(f"a secondary node ({op.snode}) needs a primary node")
        if importing:  # the rest, once the export is read (check_prereq)
            backup_import.check_arguments(op)
        else:
            self._check_request()

    def _check_request(self) -> None:
        """The checks that need the disk template, disks and parameters (an import's come
        from its export)."""
        op = self.op
        template = disk_templates.of(op.disk_template)
        if self.allocator is None and template.needs_secondary and not op.snode:
            raise errors.WrongInput(f"the {op.disk_template} template needs a secondary "
                                    "node: -n PRIMARY:SECONDARY")
        if op.snode and not template.needs_secondary:
            raise errors.WrongInput(f"the {op.disk_template} template takes no secondary "
                                    f"node (got '{op.snode}')")
        self.disks = ic.check_disks(op.disk_template, list(op.disks))
        self.nics = ic.check_nics(list(op.nics))
        self.beparams = common.check_beparams(op.beparams)
        common.check_tags(list(op.tags))
        hv_params = dict(op.hvparams)
        self.hypervisor = op.hypervisor
        self.hvparams = {}
        if hv_params:
            if not self.hypervisor:
                raise errors.WrongInput("hypervisor parameters need the hypervisor's name: "
                                        "-H HYPERVISOR:key=value")
            self.hvparams = common.check_instance_hvparams(self.hypervisor, hv_params)
        for key, value in op.osparams.items():
            if not isinstance(value, (str, int, float, bool)):
                raise errors.WrongInput(f"OS parameter '{key}' must be a simple value")
        self.subdir = ic.check_subdir(op.file_storage_dir) if op.file_storage_dir else None
        self.adopt = any("adopt" in d for d in self.disks)
        if self.adopt and not (template.supported and template.adoptable):
            adoptable = [n for n in disk_templates.SUPPORTED
                         if disk_templates.of(n).adoptable]
            raise errors.WrongInput(f"disk adoption is not supported for the "
                                    f"{op.disk_template} template (only "
                                    f"{', '.join(adoptable)})")
        if op.file_driver not in (None, "loop"):
            raise errors.WrongInput(f"unsupported file driver '{op.file_driver}' "
                                    "(expected loop)")

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        nodes: Any
        if self.allocator is not None:
            nodes = locks.ALL_SET  # the allocator weighs every node's free resources
        else:
            names = [self.op.pnode] + ([self.op.snode] if self.op.snode else [])
            if self.op.mode == "import" and self.op.src_node:
                names.append(self.op.src_node)
            nodes = [getattr(self.cfg.find_node(n), "name", n) for n in names]
        return {locks.LEVEL_INSTANCE: ([self.op.instance_name], False),
                locks.LEVEL_NODE: (nodes, False), locks.LEVEL_NODE_RES: (nodes, False)}

    async def check_prereq(self) -> None:
        op, cfg = self.op, self.cfg
        if op.mode == "import":
            self.source = await backup_import.read_export(self)
            backup_import.apply_defaults(self, self.source)
            self._check_request()
        cluster = cfg.get_cluster()
        template = op.disk_template
        if template not in cluster.enabled_disk_templates:
            raise errors.WrongInput(
                f"disk template '{template}' is not enabled on this cluster (enabled: "
                f"{', '.join(cluster.enabled_disk_templates)})",
                "enable it with gnt-cluster modify --enabled-disk-templates")
        if not disk_templates.of(template).supported:
            raise errors.WrongInput(f"disk template '{template}' is not supported yet "
                                    f"(supported: {', '.join(disk_templates.SUPPORTED)})")
        self.hypervisor = self.hypervisor or cluster.enabled_hypervisors[0]
        if self.hypervisor not in cluster.enabled_hypervisors:
            raise errors.WrongInput(
                f"hypervisor '{self.hypervisor}' is not enabled on this cluster (enabled: "
                f"{', '.join(cluster.enabled_hypervisors)})")
        self.name = op.instance_name
        self.ip: str | None = None
        if op.name_check:
            resolved = self.ctx.resolver.resolve(op.instance_name)
            # what the resolver says may be longer than what was typed (a canonical name)
            self.name = common.check_hostname(resolved.name, "instance")
            self.ip = resolved.ip
        if cfg.find_instance(self.name) is not None or \
                cfg.find_instance(op.instance_name) is not None:
            raise errors.AlreadyExists(f"instance '{self.name}' already exists")
        if self.ip and op.ip_check:
            await self._check_ip_free(self.ip)
        if self.allocator is not None:
            await self._allocate(cluster)
        self.pnode = cfg.expand_node(str(op.pnode))
        ic.check_node_usable(self.pnode)
        self.filled_be = objects.fill_beparams(cluster, cfg.group_of(self.pnode), self.beparams)
        # values fine alone may not be with the defaults (kvm's security model and domain)
        hypervisor = self.hypervisor or cluster.enabled_hypervisors[0]
        common.check_hvparams({hypervisor: objects.fill_hvparams(
            cluster, cfg.group_of(self.pnode), hypervisor, self.hvparams)})
        # NICs on networks: the connection's mode and link, addresses from the pools
        network_nics.assign_nic_ips(self, cfg, cfg.group_of(self.pnode), self.nics, self.name)
        for nic in self.nics:
            owner = cfg.nic_ips.get(nic["ip"]) if nic["ip"] else None
            if owner is not None:
                raise errors.AlreadyExists(f"IP address {nic['ip']} is already used by "
                                           f"instance {cfg.instances[owner].name}")
        if not op.no_install:
            await self.rpc.os_validate(self.pnode, op.os_type, dict(op.osparams))
        if template == constants.DT_PLAIN:
            for disk in self.disks:
                disk["vg"] = ic.plain_vg(cluster, disk)
            if self.adopt:
                await self._check_adoption()
        self.snode: objects.Node | None = None
        if template == constants.DT_DRBD8:
            await self._check_drbd(cluster)
        # (after adoption, which gives adopted disks their sizes)
        instance_policy.check_policy(cfg, cfg.group_of(self.pnode), ipolicy.InstanceSpec(
            memory=int(self.filled_be["maxmem"]), cpus=int(self.filled_be["vcpus"]),
            disk_sizes=tuple(int(d.get("size", 0)) for d in self.disks),
            nic_count=len(self.nics), spindles=int(self.filled_be.get("spindle_use", 1)),
            disk_template=template), op.ignore_ipolicy, self.log_warning)
        info = await self.rpc.node_info(self.pnode)
        if op.start:
            ic.check_free_memory(self.pnode.name, info, int(self.filled_be["maxmem"]),
                                 self.name)
        if template != constants.DT_DRBD8:  # drbd: checked per volume group on both nodes
            self._check_disk_space(info)

    def allocate_request(self, name: str) -> dict[str, Any]:
        """The allocator's ``allocate`` request for this instance (after check_arguments;
        multi-allocation asks it of each instance it places)."""
        cluster = self.cfg.get_cluster()
        be = objects.fill_beparams(cluster, None, self.beparams)
        return iallocator.allocate_request(
            name=name, template=self.op.disk_template, disks=self.disks, nics=self.nics,
            memory=int(be["maxmem"]), vcpus=int(be["vcpus"]), os=self.op.os_type or "",
            hypervisor=self.hypervisor or cluster.enabled_hypervisors[0],
            tags=list(self.op.tags), spindle_use=int(be.get("spindle_use", 1)),
            group_name=self.op.group_name)

    async def _allocate(self, cluster: objects.Cluster) -> None:
        """Let the allocator choose the primary (and secondary) node, as if given with -n."""
        assert self.allocator is not None
        nodes = await iallocator.allocate(self, self.allocator, self.allocate_request(self.name))
        self.op.pnode = nodes[0].name
        self.op.snode = nodes[1].name if len(nodes) > 1 else None

    async def _check_drbd(self, cluster: objects.Cluster) -> None:
        """Both nodes usable and different, DRBD loaded on both, and room for every disk's
        data and metadata volume in the volume groups of both."""
        self.snode = self.cfg.expand_node(str(self.op.snode))
        if self.snode.uuid == self.pnode.uuid:
            raise errors.WrongInput(f"the primary and the secondary node must be different "
                                    f"(both are {self.pnode.name})")
        ic.check_node_usable(self.snode, "secondary")
        needs: dict[str, int] = {}
        for disk in self.disks:
            disk["vg"] = ic.plain_vg(cluster, disk)
            default_metavg = cluster.diskparams.get(constants.DT_DRBD8, {}).get("metavg")
            disk["metavg"] = ic.check_lvm_name(disk.get("metavg") or default_metavg
                                               or disk["vg"], "volume group")
            needs[disk["vg"]] = needs.get(disk["vg"], 0) + disk["size"]
            needs[disk["metavg"]] = needs.get(disk["metavg"], 0) + drbd.META_SIZE
        async def check(node: objects.Node) -> None:
            await drbd.require_loaded(self.rpc, node)
            await ic.check_vg_space(self.rpc, node, needs, "drbd disks (data and metadata)")
        await drbd.on_both(check(self.pnode), check(self.snode))

    async def _check_ip_free(self, ip: str) -> None:
        """Ganeti's IP check: something answering on the address means it is taken."""
        port = self.cfg.get_cluster().noded_port
        try:
            async with asyncio.timeout(1.0):
                _, writer = await asyncio.open_connection(ip, port)
        except (OSError, TimeoutError):
            return
        writer.close()
        raise errors.WrongState(f"IP address {ip} of instance {self.name} is already in use",
                                "use --no-ip-check to skip this check")

    async def _check_adoption(self) -> None:
        """Ganeti's rules for ``--disk N:adopt=LV``: the LVs exist on the primary node, are
        not open (in use), are named once and belong to no instance; each disk takes its
        LV's size."""
        wanted = [(d["vg"], ic.check_lvm_name(d["adopt"], "logical volume"))
                  for d in self.disks]
        if len(set(wanted)) != len(wanted):
            raise errors.WrongInput("the same logical volume is given more than once for "
                                    "adoption")
        used = objects.lv_owners(self.cfg.instances.values())  # drbd children too
        for vg, lv in wanted:
            if (vg, lv) in used:
                raise errors.WrongInput(f"logical volume {vg}/{lv} is used by instance "
                                        f"{used[(vg, lv)]}")
        specs = [DiskSpec(dev_type=constants.DT_PLAIN, logical_id=[vg, lv])
                 for vg, lv in wanted]
        found = await self.rpc.blockdev_info(self.pnode, specs)
        missing = [f"{vg}/{lv}" for (vg, lv), st in zip(wanted, found, strict=True)
                   if not st.get("exists")]
        if missing:
            raise errors.WrongInput(f"missing logical volume(s) on node {self.pnode.name}: "
                                    f"{', '.join(missing)}")
        online = [f"{vg}/{lv}" for (vg, lv), st in zip(wanted, found, strict=True)
                  if len(str(st.get("attr", ""))) > 5 and str(st["attr"])[5] == "o"]
        if online:
            raise errors.WrongState(f"logical volume(s) in use (open), cannot adopt them: "
                                    f"{', '.join(online)}")
        for disk, st in zip(self.disks, found, strict=True):
            disk["size"] = int(st["size"])

    def _check_disk_space(self, info: dict[str, Any]) -> None:
        if not self.disks:
            return
        disks = self.disks
        if self.op.disk_template == constants.DT_PLAIN:
            # adopted LVs take no new space; the node reports the cluster's VG only
            vgs = {str(item.get("key")) for item in info.get("storage", [])}
            disks = [d for d in disks if "adopt" not in d and d["vg"] in vgs]
            if not disks:
                return
        needed = sum(d["size"] for d in disks)
        kind = disk_templates.of(self.op.disk_template).storage_type or self.op.disk_template
        for item in info.get("storage", []):
            if item.get("type") == kind:
                free = int(item.get("free", 0))
                where = (f" in volume group {item.get('key')}"
                         if kind == constants.ST_LVM_VG and item.get("key") else "")
                if free < needed:
                    raise errors.InsufficientResources(
                        f"not enough disk space on node {self.pnode.name}{where} for "
                        f"{self.op.disk_template} disks: needed {needed} MiB, available "
                        f"{free} MiB (short by {needed - free} MiB)")

    def _build_instance(self, alloc: drbd.Allocator | None = None) -> objects.Instance:
        op, cfg = self.op, self.cfg
        cluster = cfg.get_cluster()
        inst = objects.Instance(name=self.name, primary_node=self.pnode.uuid, os=op.os_type or "",
                                hypervisor=self.hypervisor, hvparams=self.hvparams,
                                beparams=self.beparams, osparams=dict(op.osparams),
                                disk_template=op.disk_template, tags=sorted(set(op.tags)))
        # Ganeti's layout: STORAGE_DIR/[--file-storage-dir/]INSTANCE/
        subdir = os.path.join(self.subdir, self.name) if self.subdir else self.name
        for index, spec in enumerate(self.disks):
            disk = objects.Disk(name=spec.get("name"), dev_type=op.disk_template,
                                size=spec["size"], mode=spec["mode"], iv_name=f"disk/{index}",
                                nodes=[self.pnode.uuid])
            if disk_templates.of(op.disk_template).file_dir:
                disk.logical_id = [op.file_driver or "loop", ic.file_disk_path(
                    cluster, op.disk_template, subdir, disk.uuid, index)]
            elif op.disk_template == constants.DT_PLAIN:
                disk.logical_id = ic.plain_disk_id(cluster, spec, disk.uuid, index)
            elif op.disk_template == constants.DT_DRBD8:
                assert alloc is not None and self.snode is not None
                disk = drbd.make_disk(alloc, self.pnode, self.snode, size=spec["size"],
                                      vg=spec["vg"], metavg=spec["metavg"], index=index,
                                      mode=spec["mode"], name=spec.get("name"))
            inst.disks.append(disk)
        taken: set[str] = set()
        for spec in self.nics:
            mac = spec["mac"] or ic.generate_mac(cfg, taken, network_nics.mac_prefix(cfg, spec))
            taken.add(mac)
            inst.nics.append(objects.NIC(name=spec["name"], mac=mac, ip=spec["ip"],
                                         network=spec["network"], nicparams=spec["nicparams"]))
        if self.nics and len({n.mac for n in inst.nics}) != len(inst.nics):
            raise errors.WrongInput("the NICs' MAC addresses must be different")
        for nic in inst.nics:
            if nic.mac in cfg.macs:
                raise errors.AlreadyExists(f"MAC address {nic.mac} is already in use")
        return inst

    async def exec(self) -> list[str]:
        if self.op.disk_template == constants.DT_DRBD8:
            with drbd.allocating(self.cfg) as alloc:  # ports and minors held until commit
                inst = self._build_instance(alloc)
                await self._create_drbd(inst)
        else:
            inst = self._build_instance()
            await self._create(inst)
        spec = ic.instance_spec(self.cfg, inst)
        if self.op.start:
            self.log_info(f"Starting instance {inst.name} on {self.pnode.name}")
            try:
                await self.rpc.instance_start(self.pnode, spec)
            except errors.CardumeError as err:
                edited = self.cfg.edit(self.cfg.instances[inst.uuid])
                edited.admin_state = "down"
                await self.cfg.commit(update=[edited])
                raise errors.ExecError(
                    f"instance {inst.name} was created but did not start: {err}",
                    f"fix the cause, then 'gnt-instance startup {inst.name}'") from None
        elif inst.disk_template == constants.DT_DRBD8 and self.op.wait_for_sync:
            await drbd.shutdown(self, self.cfg.instances[inst.uuid], ignore_errors=True)
            edited = self.cfg.edit(self.cfg.instances[inst.uuid])
            edited.disks_active = False
            await self.cfg.commit(update=[edited])
        return [self.pnode.name]

    async def _create_drbd(self, inst: objects.Instance) -> None:
        """Both sides of every disk (secondary first), connected, the primary forced to be
        the sync source, the initial sync waited for (unless --no-wait-for-sync), the OS
        installed, then the commit. Any failure before the commit removes both sides."""
        assert self.snode is not None
        nodes = (self.snode, self.pnode)

        async def create_side(node: objects.Node) -> None:
            for disk in inst.disks:
                spec = drbd.node_disk_spec(self.cfg, disk, node.uuid)
                self.undo_later(node, "blockdev_remove", {"disk": spec},
                                f"disk {disk.iv_name} of {inst.name} on {node.name}",
                                unless_instance=inst.uuid)
                self.log_info(f"Creating disk {disk.iv_name} ({disk.size} MiB, minor "
                              f"{drbd.minor_on(disk, node.uuid)}) on {node.name}")
                await self.rpc.blockdev_create(node, spec)

        async def connect(node: objects.Node) -> None:
            await self.rpc.drbd_connect(node, drbd.disks_for(self.cfg, inst, node.uuid))
        try:
            await drbd.on_both(*(create_side(node) for node in nodes))
            await drbd.on_both(*(connect(node) for node in nodes))
            await drbd.wait_connected(self, inst, self.pnode.uuid, timeout=30.0)
            await self.rpc.drbd_set_role(
                self.pnode, drbd.disks_for(self.cfg, inst, self.pnode.uuid), "primary",
                force=True)
            if self.op.wait_for_sync:
                await drbd.wait_for_sync(self, inst, self.pnode.uuid)
            else:
                self.log_info("Not waiting for the initial sync (--no-wait-for-sync): the "
                              "secondary is not a usable copy until it ends")
            if not self.op.no_install:
                await self._install(self.pnode, inst)
            inst.admin_state = "up" if self.op.start else "down"
            inst.disks_active = True
            await self.cfg.commit(add=[inst])
        except BaseException:
            await self.undo_now()
            raise
        self.undo_done()

    async def _create(self, inst: objects.Instance) -> None:
        spec = ic.instance_spec(self.cfg, inst)
        node = self.pnode
        try:
            for disk, asked in zip(spec.disks, self.disks, strict=True):
                what = f"disk {disk.iv_name} of {inst.name} on {node.name}"
                if "adopt" in asked:
                    old_id = [asked["vg"], asked["adopt"]]
                    # undone by giving the volume its name back
                    self.undo_later(node, "blockdev_rename",
                                    {"disk": disk, "new_logical_id": old_id},
                                    f"the adoption of {'/'.join(old_id)} as {what}",
                                    unless_instance=inst.uuid)
                    self.log_info(f"Adopting {'/'.join(old_id)} as disk {disk.iv_name} "
                                  f"({disk.size} MiB) on {node.name}")
                    await self.rpc.blockdev_rename(
                        node, dataclasses.replace(disk, logical_id=old_id), disk.logical_id)
                    continue
                self.undo_later(node, "blockdev_remove", {"disk": disk}, what,
                                unless_instance=inst.uuid)
                self.log_info(f"Creating disk {disk.iv_name} ({disk.size} MiB) on "
                              f"{node.name}")
                await self.rpc.blockdev_create(node, disk)
            if not self.op.no_install and not self.adopt:  # adopted disks keep their data
                await self._install(node, inst)
            inst.admin_state = "up" if self.op.start else "down"
            await self.cfg.commit(add=[inst])
        except BaseException:
            await self.undo_now()
            raise
        self.undo_done()

    async def _install(self, node: objects.Node, inst: objects.Instance) -> None:
        """The OS create script, or for an import the import script with each disk's dump."""
        spec = ic.instance_spec(self.cfg, inst)
        if self.op.mode == "import":
            await backup_import.import_disks(self, self.source, node, inst, spec)
            return
        self.log_info(f"Running the OS create script of {inst.os} on {node.name}")
        await self.rpc.instance_os_add(node, spec, reinstall=False)
