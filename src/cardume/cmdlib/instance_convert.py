"""Disk template conversions of gnt-instance modify -t: plain -> drbd and drbd -> plain.

Both need the instance stopped, as in Ganeti. plain -> drbd keeps the primary's LVs as the
data side (no copy, no rename): it adds a metadata LV beside each, a data and a metadata LV
on the new secondary, makes the primary the sync source and lets DRBD copy. drbd -> plain
keeps the primary's data LVs and removes the rest once the config no longer names them.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from cardume import constants, errors, objects
from cardume.cmdlib import drbd
from cardume.cmdlib import instance_common as ic
from cardume.rpc.wire import DiskSpec
from cardume.rules import disk_templates

if TYPE_CHECKING:  # (the base class only: the modify LU imports this module)
    from cardume.cmdlib.instance import _InstanceLU


async def check(lu: _InstanceLU, target: str, *, running: bool,
                other_changes: bool) -> objects.Node | None:
    """Refuse what can't be converted (``running``: the instance runs; ``other_changes``:
    the same modify changes disks or NICs too); returns the new secondary of a
    plain -> drbd."""
    inst, op = lu.inst, lu.op
    if inst.disk_template == target:
        raise errors.WrongInput(f"instance {inst.name} already uses the {target} template")
    if target not in disk_templates.of(inst.disk_template).converts_to:
        raise errors.WrongInput(f"converting {inst.name} from {inst.disk_template} to {target} "
                                "is not supported (plain <-> drbd only)")
    if target not in lu.cfg.get_cluster().enabled_disk_templates:
        raise errors.WrongInput(f"disk template '{target}' is not enabled on this cluster",
                                "enable it with gnt-cluster modify --enabled-disk-templates")
    if running:
        raise errors.WrongState(f"instance {inst.name} is running; stop it before changing "
                                "its disk template", f"gnt-instance shutdown {inst.name}")
    if other_changes:
        raise errors.WrongInput("change the disk template alone, not with disk or NIC changes")
    if not disk_templates.of(target).needs_secondary:
        if op.remote_node:
            raise errors.WrongInput("-n names the new secondary of a conversion to drbd; a "
                                    "conversion to plain takes none")
        return None
    if not op.remote_node:
        raise errors.WrongInput("a conversion to drbd needs the secondary node: -n NODE")
    snode = lu.cfg.expand_node(op.remote_node)
    if snode.uuid == inst.primary_node:
        raise errors.WrongInput(f"the secondary node must differ from the primary "
                                f"({snode.name})")
    ic.check_node_usable(snode, "secondary")
    for node in (lu.pnode, snode):
        await drbd.require_loaded(lu.rpc, node)
    meta: dict[str, int] = {}
    data: dict[str, int] = {}
    for disk in inst.disks:
        vg = str(disk.logical_id[0])
        meta[vg] = meta.get(vg, 0) + drbd.META_SIZE
        data[vg] = data.get(vg, 0) + disk.size
    await ic.check_vg_space(lu.rpc, lu.pnode, meta, "the DRBD metadata volumes")
    both = {vg: data.get(vg, 0) + meta.get(vg, 0) for vg in {*data, *meta}}
    await ic.check_vg_space(lu.rpc, snode, both, "the mirror's volumes")
    return snode


async def convert(lu: _InstanceLU, target: str,
                  snode: objects.Node | None) -> tuple[str, str]:
    """Convert the (checked) instance to ``target``; returns the change as modify reports
    it."""
    if disk_templates.of(target).needs_secondary:
        assert snode is not None
        await to_drbd(lu, snode)
        return ("disk_template", f"{target}, secondary {snode.name}")
    await to_plain(lu)
    return ("disk_template", target)


async def to_drbd(lu: _InstanceLU, snode: objects.Node) -> None:
    inst, pnode = lu.inst, lu.pnode
    with drbd.allocating(lu.cfg) as alloc:
        edited = lu.cfg.edit(lu.cfg.instances[inst.uuid])
        edited.disks = [drbd.drbd_disk_of(d, snode, alloc, pnode, i)
                        for i, d in enumerate(inst.disks)]
        edited.disk_template = constants.DT_DRBD8
        created: list[tuple[objects.Node, DiskSpec]] = []
        try:
            for disk in edited.disks:
                spec = drbd.node_disk_spec(lu.cfg, disk, pnode.uuid)
                lu.log_info(f"Adding a metadata volume to {disk.iv_name} on {pnode.name}")
                await lu.rpc.blockdev_create(pnode, spec, data_exists=True)
                created.append((pnode, spec))
                spec = drbd.node_disk_spec(lu.cfg, disk, snode.uuid)
                lu.log_info(f"Creating the mirror of {disk.iv_name} on {snode.name}")
                await lu.rpc.blockdev_create(snode, spec)
                created.append((snode, spec))
            await lu.cfg.commit(update=[edited])
        except BaseException:
            for node, spec in reversed(created):
                with contextlib.suppress(errors.CardumeError):
                    if node is pnode:  # only the metadata volume is ours to remove
                        assert spec.children is not None
                        spec = spec.children[1]
                    await lu.rpc.blockdev_remove(node, spec)
            raise
    lu.inst = edited
    for node in (snode, pnode):
        await lu.rpc.drbd_connect(node, drbd.disks_for(lu.cfg, edited, node.uuid))
    await drbd.wait_connected(lu, edited, pnode.uuid, timeout=30.0)
    await lu.rpc.drbd_set_role(pnode, drbd.disks_for(lu.cfg, edited, pnode.uuid), "primary",
                               force=True)
    if lu.op.wait_for_sync:
        await drbd.wait_for_sync(lu, edited, pnode.uuid)
        for problem in await drbd.shutdown(lu, edited, ignore_errors=True):
            lu.log_warning(problem)
    else:
        edited = lu.cfg.edit(lu.cfg.instances[inst.uuid])
        edited.disks_active = True  # the sync goes on; verify-disks watches it
        await lu.cfg.commit(update=[edited])


async def to_plain(lu: _InstanceLU) -> None:
    inst, pnode = lu.inst, lu.pnode
    snode_uuid = inst.secondary_nodes[0]
    snode = lu.cfg.nodes[snode_uuid]
    old = {d.uuid: d for d in inst.disks}
    for problem in await drbd.shutdown(lu, inst, ignore_errors=True):
        lu.log_warning(problem)
    edited = lu.cfg.edit(lu.cfg.instances[inst.uuid])
    plain = []
    for disk in edited.disks:
        data = disk.children[0]
        plain.append(objects.Disk(uuid=disk.uuid, name=disk.name, dev_type=constants.DT_PLAIN,
                                  logical_id=list(data.logical_id), size=disk.size,
                                  mode=disk.mode, iv_name=disk.iv_name,
                                  nodes=[pnode.uuid]))
    edited.disks = plain
    edited.disk_template = constants.DT_PLAIN
    edited.disks_active = False
    await lu.cfg.commit(update=[edited])
    lu.inst = edited
    for disk in old.values():  # only once the config names them no more
        try:
            await lu.rpc.blockdev_remove(pnode, DiskSpec.of(disk.children[1]))
        except errors.CardumeError as err:
            lu.log_warning(f"could not remove the metadata volume of {disk.iv_name} on "
                           f"{pnode.name}: {err}")
        if snode.offline:
            lu.log_warning(f"node {snode.name} is offline: remove the volumes of "
                           f"{disk.iv_name} there once it is back")
            continue
        try:
            await lu.rpc.blockdev_remove(snode, drbd.node_disk_spec(lu.cfg, disk, snode_uuid))
        except errors.CardumeError as err:
            lu.log_warning(f"could not remove the mirror of {disk.iv_name} on {snode.name}: "
                           f"{err}")
