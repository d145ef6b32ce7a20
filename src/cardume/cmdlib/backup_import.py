"""gnt-backup import: OP_INSTANCE_CREATE with mode "import" (cmdlib/instance_create.py
calls these). The export's config.ini gives every value the opcode leaves unset; the new
disks are created as for an add, then each disk's dump is fed to the OS import script on
the primary node: read there when the export is on it, else streamed from the source node
chunk by chunk through the master.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from cardume import constants, errors, objects
from cardume.cmdlib import backup_config, backup_transfer
from cardume.rpc.wire import InstanceSpec

if TYPE_CHECKING:
    from cardume.cmdlib.base import LogicalUnit


class Source:
    """Where an import reads from: the node, its export directory's name, the config."""

    def __init__(self, node: objects.Node, directory: str,
                 info: backup_config.ExportInfo) -> None:
        self.node = node
        self.directory = directory
        self.info = info


def check_arguments(op: Any) -> None:
    """No I/O: the source's names look sane."""
    if op.src_path is not None and (not op.src_path or "\0" in op.src_path):
        raise errors.WrongInput(f"bad source directory {op.src_path!r}")
    if op.src_path and not os.path.isabs(op.src_path) and "/" in op.src_path:
        raise errors.WrongInput(f"bad source directory '{op.src_path}' (expected an "
                                "export's name or its absolute path)")


async def read_export(lu: LogicalUnit) -> Source:
    """Find the export (on src_node, or on the first node that has it) and read it."""
    op, cfg, rpc = lu.op, lu.cfg, lu.rpc
    path = op.src_path or op.instance_name
    if op.src_node:
        node = cfg.expand_node(op.src_node)
        if node.offline:
            raise errors.WrongState(f"source node {node.name} is offline")
    else:
        name = os.path.basename(path)
        nodes = [n for n in cfg.sorted_nodes() if not n.offline]
        found = await lu.ask_each(nodes, rpc.export_list,
                                  "could not list the exports of node {node}: {error}")
        holders = [n for n in nodes if name in found.get(n.uuid, [])]
        if not holders:
            raise errors.UnknownEntity(f"no export named '{name}' on any node",
                                       "see gnt-backup list, or give --src-node")
        node = holders[0]
    reply = await rpc.export_info(node, path)
    info = backup_config.parse(str(reply["config"]),
                               f"the export {reply['name']} on {node.name}")
    return Source(node, str(reply["name"]), info)


def apply_defaults(lu: LogicalUnit, source: Source) -> None:
    """Fill the opcode's unset values from the export."""
    op, cfg, info = lu.op, lu.cfg, source.info
    cluster = cfg.get_cluster()
    if op.disk_template is None:
        op.disk_template = info.disk_template
    if not op.disks:
        op.disks = [{"size": d["size"], **({"name": d["name"]} if d["name"] else {})}
                    for d in info.disks]
    elif len(op.disks) != len(info.disks):
        raise errors.WrongInput(f"the export has {len(info.disks)} disk(s) but "
                                f"{len(op.disks)} were given")
    if not op.nics and info.nics:
        op.nics = []
        for nic in info.nics:
            mac = nic.get("mac")
            if mac in cfg.macs:  # the exported instance still has it: a new one
                lu.log_warning(f"MAC address {mac} is in use, the imported NIC gets a "
                               "new one")
                mac = None
            op.nics.append({k: v for k, v in (
                ("mac", mac), ("ip", nic.get("ip")), ("name", nic.get("name")),
                ("mode", nic.get("mode")), ("link", nic.get("link")),
                ("vlan", nic.get("vlan") or None)) if v is not None})
    if op.os_type is None:
        op.os_type = info.os or None
    if op.hypervisor is None and info.hypervisor in cluster.enabled_hypervisors:
        op.hypervisor = info.hypervisor
    # the export's parameters equal to this cluster's defaults are not made the
    # instance's own, so it follows later changes of the defaults (--identify-defaults)
    if op.hypervisor is not None and op.hypervisor == info.hypervisor:
        defaults = objects.fill_hvparams(cluster, None, op.hypervisor)
        op.hvparams = {**{k: v for k, v in info.hvparams.items()
                          if v is not None and defaults.get(k) != v}, **op.hvparams}
    known = constants.BES_PARAMETER_TYPES
    be_defaults = objects.fill_beparams(cluster, None)
    op.beparams = {**{k: v for k, v in info.beparams.items()
                      if k in known and v is not None and be_defaults.get(k) != v},
                   **op.beparams}
    op.osparams = {**info.osparams, **op.osparams}
    if not op.tags:
        op.tags = list(info.tags)


async def import_disks(lu: LogicalUnit, source: Source, node: objects.Node,
                       inst: objects.Instance, spec: InstanceSpec) -> None:
    """Each disk's dump into the OS import script on ``node`` (the new primary)."""
    rpc = lu.rpc
    for index, disk in enumerate(source.info.disks):
        if index >= len(inst.disks):
            break
        dump = str(disk["dump"])
        lu.log_info(f"Importing disk/{index} from {source.node.name} to {node.name}")
        if source.node.uuid == node.uuid:
            await rpc.import_disk(node, spec, index, source.directory, dump)
            continue
        work = backup_transfer.new_work()
        lu.undo_later(node, "export_abort", {"work": work},
                      f"the import stream of a disk on {node.name}")
        try:  # streamed: the new primary keeps no copy of the dump
            await backup_transfer.stream_import(rpc, source.node, source.directory, dump,
                                                node, spec, index, work)
        finally:
            await rpc.export_abort(node, work)
