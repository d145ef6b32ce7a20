"""gnt-instance replace-disks: new storage under a drbd instance's mirror.

``-p`` / ``-s`` put new LVs under one side (the primary's or the secondary's) and let DRBD
copy the other side's data onto them; ``-n NODE`` moves the secondary side to another node;
``-a`` finds the side whose disk failed and replaces it. The old LVs are removed only after
the new copy is complete, so a second failure during the operation never leaves the
instance without a good copy.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from cardume import constants, errors, objects, opcodes
from cardume.cmdlib import drbd, iallocator
from cardume.cmdlib import instance_common as ic
from cardume.cmdlib.base import register
from cardume.cmdlib.instance import _InstanceLU
from cardume.jobs import locks
from cardume.rpc.wire import DiskSpec
from cardume.rules import disk_templates

ON_PRIMARY, ON_SECONDARY, NEW_SECONDARY, AUTO = opcodes.REPLACE_MODES
_GOOD_DISK = ("UpToDate",)


@register
class LUInstanceReplaceDisks(_InstanceLU):
    OP = opcodes.OpInstanceReplaceDisks
    NODE_LOCKS_SHARED = False

    def check_arguments(self) -> None:
        op = self.op
        if op.iallocator and op.remote_node:
            raise errors.WrongInput(f"give either the new secondary ({op.remote_node}) or an "
                                    f"allocator ({op.iallocator}), not both")
        if op.iallocator and op.mode != NEW_SECONDARY:
            raise errors.WrongInput("an allocator (-I) only goes with replacing the "
                                    "secondary: it chooses the new one")
        self.allocator = iallocator.check_name(op.iallocator) if op.iallocator else None
        if op.mode == NEW_SECONDARY and not (op.remote_node or op.iallocator):
            raise errors.WrongInput("replacing the secondary needs the new node: -n NODE "
                                    "(or -I ALLOCATOR to have one chosen)")
        if op.mode != NEW_SECONDARY and op.remote_node:
            raise errors.WrongInput("a new node (-n) only goes with replacing the secondary")
        if op.mode in (NEW_SECONDARY, AUTO) and op.disks:
            raise errors.WrongInput("--disks only goes with -p or -s: the other modes "
                                    "replace every disk that needs it")

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        plan = super().declare_locks()
        if self.allocator is not None:  # any node may become the new secondary
            plan[locks.LEVEL_NODE] = (locks.ALL_SET, False)
        elif self.op.remote_node:
            names, _ = plan[locks.LEVEL_NODE]
            node = self.cfg.find_node(self.op.remote_node)
            plan[locks.LEVEL_NODE] = ([*names, node.name if node else self.op.remote_node],
                                      False)
        return plan

    async def check_prereq(self) -> None:
        await super().check_prereq()
        inst = self.inst
        if not disk_templates.of(inst.disk_template).network_mirrored:
            raise errors.WrongInput(f"instance {inst.name} uses the {inst.disk_template} "
                                    "template: only drbd disks are mirrored and can be "
                                    "replaced")
        for index in self.op.disks:
            if not 0 <= index < len(inst.disks):
                raise errors.WrongInput(f"invalid disk index {index}: instance {inst.name} "
                                        f"has {len(inst.disks)} disk(s)")
        self.secondary = self.cfg.nodes[inst.secondary_nodes[0]]
        self.new_node: objects.Node | None = None
        if self.op.mode == NEW_SECONDARY:
            await self._check_new_secondary()
        elif self.op.mode in (ON_PRIMARY, ON_SECONDARY):
            node = self.pnode if self.op.mode == ON_PRIMARY else self.secondary
            peer = self.secondary if self.op.mode == ON_PRIMARY else self.pnode
            for each in (node, peer):
                if each.offline:
                    raise errors.WrongState(
                        f"node {each.name} is offline: both sides are needed to replace "
                        f"the disks on {node.name}",
                        f"gnt-instance replace-disks -n NODE {inst.name} replaces a lost "
                        "secondary" if each is self.secondary else
                        f"gnt-instance failover {inst.name} first")
            await ic.check_vg_space(self.rpc, node, self._needs(self._indices()),
                                    "the new volumes")
        self.running = await self.running_on_primary() if not self.pnode.offline else False

    async def _check_new_secondary(self) -> None:
        inst = self.inst
        if self.allocator is not None:
            self.op.remote_node = (await iallocator.relocate(self, self.allocator, inst)).name
        new = self.cfg.expand_node(str(self.op.remote_node))
        if new.uuid == inst.primary_node:
            raise errors.WrongInput(f"node {new.name} is the primary of {inst.name}; the "
                                    "secondary must be another node")
        if new.uuid == self.secondary.uuid:
            raise errors.WrongInput(f"node {new.name} is already the secondary of "
                                    f"{inst.name}")
        ic.check_node_usable(new, "new secondary")
        if self.pnode.offline:
            raise errors.WrongState(f"primary node {self.pnode.name} is offline: the new "
                                    "secondary would have nothing to copy from")
        await drbd.require_loaded(self.rpc, new)
        await ic.check_vg_space(self.rpc, new, self._needs(range(len(inst.disks))),
                                "drbd disks (data and metadata)")
        self.new_node = new

    def _indices(self) -> list[int]:
        return list(self.op.disks) or list(range(len(self.inst.disks)))

    def _needs(self, indices: Any) -> dict[str, int]:
        return drbd.volume_needs(self.inst.disks[index] for index in indices)

    async def exec(self) -> None:
        was_active = self.inst.disks_active or self.running
        if not was_active:
            self.log_info(f"Activating the disks of {self.inst.name} for the replacement")
            await drbd.assemble(self, self.inst, None, ignore_secondaries=True)
        try:
            mode = self.op.mode
            if mode == AUTO:
                mode = await self._faulty_side()
                if mode is None:
                    self.log_info(f"No faulty disk found on the nodes of {self.inst.name}; "
                                  "nothing to replace")
                    return
            if mode == NEW_SECONDARY:
                assert self.new_node is not None
                await self._change_secondary(self.new_node)
            else:
                node = self.pnode if mode == ON_PRIMARY else self.secondary
                await self._replace_on(node, self._indices())
        finally:
            if not was_active:
                for problem in await drbd.shutdown(self, self.cfg.instances[self.inst.uuid],
                                                   ignore_errors=True):
                    self.log_warning(problem)

    async def _faulty_side(self) -> str | None:
        """The side whose local disks failed (Ganeti's auto mode), or None."""
        faulty = {}
        for mode, node in ((ON_PRIMARY, self.pnode), (ON_SECONDARY, self.secondary)):
            states = await drbd.status(self, self.inst, node.uuid)
            bad = [st for st in states if st is None or st["disk"] not in _GOOD_DISK]
            if bad:
                faulty[mode] = node
        if len(faulty) == 2:
            raise errors.WrongState(f"the disks of {self.inst.name} are faulty on both "
                                    "nodes; no good copy to replace from",
                                    "check the nodes' storage (gnt-cluster verify-disks)")
        if not faulty:
            return None
        mode, node = next(iter(faulty.items()))
        self.log_info(f"The disks of {self.inst.name} are faulty on {node.name}: replacing "
                      "them there")
        return mode

    async def _replace_on(self, node: objects.Node, indices: list[int]) -> None:
        inst = self.inst
        disks = [inst.disks[i] for i in indices]
        peer = self.secondary if node.uuid == self.pnode.uuid else self.pnode
        suffix = f"_replaced-{int(time.time())}"
        split = await self._split_from(node, peer, indices)
        self.log_info(f"Replacing disk(s) {', '.join(d.iv_name for d in disks)} of "
                      f"{inst.name} on {node.name}: new volumes, filled from {peer.name}")
        old_ids = await self.rpc.drbd_replace_local(
            node, [drbd.node_disk_spec(self.cfg, d, node.uuid) for d in disks], suffix,
            standalone=split)
        if split:  # the peer stood alone too: it listens again for the new side
            await self.rpc.drbd_connect(
                peer, [drbd.node_disk_spec(self.cfg, d, peer.uuid) for d in disks])
        await drbd.wait_for_sync(self, inst, node.uuid)
        self.log_info(f"Removing the old volumes on {node.name}")
        for ids in old_ids:
            for vg, lv in ids:
                try:
                    await self.rpc.blockdev_remove(
                        node, DiskSpec(dev_type=constants.DT_PLAIN, logical_id=[vg, lv]))
                except errors.CardumeError as err:
                    self.log_warning(f"could not remove the old volume {vg}/{lv} on "
                                     f"{node.name}: {err}")

    async def _split_from(self, node: objects.Node, peer: objects.Node,
                          indices: list[int]) -> bool:
        """Whether ``node``'s side stands alone (after a split brain, or a disconnect); it
        may then be replaced only from a peer whose own disk is UpToDate, and the changes
        made on ``node`` since the split are dropped (the old volumes are kept until the
        new copy is complete)."""
        mine = await drbd.status(self, self.inst, node.uuid)
        theirs = await drbd.status(self, self.inst, peer.uuid)
        alone = [i for i in indices if not (mine[i] or {}).get("connected")]
        if not alone:
            return False
        bad = [self.inst.disks[i].iv_name for i in alone
               if (theirs[i] or {}).get("disk") != "UpToDate"]
        if bad:
            raise errors.WrongState(
                f"disk(s) {', '.join(bad)} of {self.inst.name} are not connected and the "
                f"copy on {peer.name} is not up to date: there is no good copy to replace "
                f"{node.name}'s from")
        if node.uuid == self.inst.primary_node and self.running:
            raise errors.WrongState(
                f"{self.inst.name} runs on {node.name}, whose disks are not connected: "
                "replacing them would change the data under the running instance",
                f"stop it first (gnt-instance shutdown {self.inst.name})")
        self.log_warning(f"the disks of {self.inst.name} on {node.name} are not connected "
                         f"to {peer.name}: their changes since then are dropped, "
                         f"{peer.name}'s data is kept")
        return True

    async def _change_secondary(self, new: objects.Node) -> None:
        """The new secondary's side created, the old one taken down (if its node lives),
        the primary reconnected to the new peer, the config committed, the sync waited
        for, then the old side's LVs removed."""
        inst, old, primary = self.inst, self.secondary, self.pnode
        self.log_info(f"Replacing the secondary of {inst.name}: {old.name} -> {new.name}")
        old_specs = {d.uuid: drbd.node_disk_spec(self.cfg, d, old.uuid) for d in inst.disks}
        with drbd.allocating(self.cfg) as alloc:
            edited = self.cfg.edit(self.cfg.instances[inst.uuid])
            for disk in edited.disks:
                minor = alloc.minor(new)
                ids = list(disk.logical_id)
                slot = 0 if ids[0] == old.uuid else 1
                ids[slot], ids[3 + slot] = new.uuid, minor
                disk.logical_id = ids
                disk.nodes = [primary.uuid, new.uuid]
                for child in disk.children:
                    child.nodes = list(disk.nodes)
            created: list[DiskSpec] = []
            disconnected = False
            try:
                for disk in edited.disks:
                    spec = drbd.node_disk_spec(self.cfg, disk, new.uuid)
                    self.log_info(f"Creating disk {disk.iv_name} on {new.name} (minor "
                                  f"{drbd.minor_on(disk, new.uuid)})")
                    await self.rpc.blockdev_create(new, spec)
                    created.append(spec)
                if not old.offline:
                    for spec in old_specs.values():
                        try:
                            await self.rpc.blockdev_shutdown(old, spec)
                        except errors.CardumeError as err:
                            self.log_warning(f"could not take the old secondary's disk down "
                                             f"on {old.name}: {err}")
                await self.rpc.drbd_disconnect(
                    primary, [drbd.node_disk_spec(self.cfg, d, primary.uuid)
                              for d in inst.disks])
                disconnected = True
                await self.cfg.commit(update=[edited])
            except BaseException:
                for spec in created:
                    with contextlib.suppress(errors.CardumeError):
                        await self.rpc.blockdev_remove(new, spec)
                if disconnected or not old.offline:  # back to the old pair
                    with contextlib.suppress(errors.CardumeError):
                        await drbd.assemble(self, inst, None, ignore_secondaries=True)
                raise
        self.inst = edited
        for node in (primary, new):
            await self.rpc.drbd_connect(node, drbd.disks_for(self.cfg, edited, node.uuid))
        await drbd.wait_for_sync(self, edited, primary.uuid)
        if old.offline:
            names = ", ".join(f"{c.logical_id[0]}/{c.logical_id[1]}"
                              for spec in old_specs.values() for c in spec.children or [])
            self.log_warning(f"node {old.name} is offline: remove the old volumes there "
                             f"once it is back ({names})")
            return
        for spec in old_specs.values():
            try:
                await self.rpc.blockdev_remove(old, spec)
            except errors.CardumeError as err:
                self.log_warning(f"could not remove the old disk on {old.name}: {err}")
