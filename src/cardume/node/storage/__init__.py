"""Block devices of a node, built from the disk specs the master sends (see base.py)."""

from __future__ import annotations

from typing import Any

from cardume import constants, errors
from cardume.node.cmd import CommandRunner
from cardume.node.storage.base import BlockDev
from cardume.node.storage.filestorage import FileDisk
from cardume.node.storage.lvm import LogicalVolume, LvmTool

__all__ = ["BlockDev", "FileDisk", "LogicalVolume", "from_spec", "storage_dirs"]


def storage_dirs(dev_type: str, ssconf: dict[str, Any]) -> list[str]:
    """The directories a disk of this template may live in."""
    key = {constants.DT_FILE: "file_storage_dir",
           constants.DT_SHARED_FILE: "shared_file_storage_dir"}.get(dev_type)
    value = ssconf.get(key) if key else None
    return [str(value)] if value else []


def from_spec(spec: dict[str, Any], ssconf: dict[str, Any],
              identity: dict[str, Any], runner: CommandRunner | None = None) -> BlockDev:
    """The block device a DiskSpec names on this node.

    ``file`` disks map under the node's optional ``storage_prefix`` (node.json);
    ``sharedfile`` disks never do: every node must see the same file. ``plain`` disks are
    LVs, ``[vg, lv_name]`` (lvm.py), run through ``runner`` (tests pass a FakeRunner).
    ``drbd`` disks are built by ``drbd.from_spec`` from the master's dynamic parameters
    (addresses and minors as seen from this node) and their two LV children.
    """
    if not isinstance(spec, dict):
        raise errors.WrongInput(f"bad disk spec {spec!r}: expected an object")
    dev_type = spec.get("dev_type")
    try:
        size = int(spec.get("size") or 0)
    except (TypeError, ValueError):
        raise errors.WrongInput(f"bad disk size {spec.get('size')!r}") from None
    logical_id = list(spec.get("logical_id") or [])
    params = dict(spec.get("params") or {})
    if dev_type == constants.DT_FILE:
        return FileDisk(logical_id, size, params, allowed=storage_dirs(dev_type, ssconf),
                        node_prefix=str(identity.get("storage_prefix") or ""))
    if dev_type == constants.DT_SHARED_FILE:
        return FileDisk(logical_id, size, params, allowed=storage_dirs(dev_type, ssconf))
    if dev_type == constants.DT_PLAIN:
        return LogicalVolume(logical_id, size, params,
                             tool=LvmTool(runner) if runner is not None else None)
    if dev_type == constants.DT_DRBD8:
        from cardume.node.storage import drbd  # only nodes with drbd disks need it
        return drbd.from_spec(spec, identity, tool=LvmTool(runner) if runner else None)
    if dev_type == constants.DT_DISKLESS:
        raise errors.WrongInput("a diskless instance has no disks to act on")
    raise errors.WrongInput(f"disk template '{dev_type}' is not supported on this node")
