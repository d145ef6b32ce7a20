"""Block devices of a node, built from the disk specs the master sends (see base.py)."""

from __future__ import annotations

import os
from typing import Any

from cardume import constants, errors, storage_paths
from cardume.node.cmd import CommandRunner
from cardume.node.storage.base import BlockDev
from cardume.node.storage.filestorage import FileDisk
from cardume.node.storage.lvm import LogicalVolume, LvmTool

__all__ = ["BlockDev", "FileDisk", "LogicalVolume", "from_spec", "refused_dir",
           "storage_dirs"]

DIR_KEYS = {constants.DT_FILE: "file_storage_dir",
            constants.DT_SHARED_FILE: "shared_file_storage_dir"}


def refused_dir(key: str, path: Any, node_root: str | None, prefix: str = "") -> str | None:
    """Why this node refuses ``path`` as its ``key`` storage directory, or None.

    The rules of cardume.storage_paths on the cluster path, then, if the directory exists
    here, on where its symbolic links lead (``prefix``: where this node maps cluster paths,
    for ``file`` only)."""
    allowed = storage_paths.read_allowed_paths(node_root)[0] if node_root else None
    reason = storage_paths.node_reason(path, node_root, allowed)
    if reason:
        return reason
    cluster_path = storage_paths.normal(str(path))
    local = prefix.rstrip("/") + cluster_path if prefix else cluster_path
    if not os.path.exists(local):
        return None
    real = os.path.realpath(local)
    if real == os.path.abspath(local):
        return None
    reason = storage_paths.system_reason(real)
    if reason is None and node_root and not (
            prefix and storage_paths.is_within(real, os.path.realpath(prefix))):
        reason = storage_paths.state_dir_reason(real, os.path.realpath(node_root))
    if reason:
        return f"'{cluster_path}' leads to {real} through a symbolic link, {reason}"
    return None


def storage_dirs(dev_type: str, ssconf: dict[str, Any], node_root: str | None = None,
                 prefix: str = "") -> list[str]:
    """The directories a disk of this template may live in: the cluster's, once this node
    has checked it (a refused one is an error naming it, not an empty list, so the admin
    learns why a disk can't be used)."""
    key = DIR_KEYS.get(dev_type)
    value = ssconf.get(key) if key else None
    if not key or not value:
        return []
    reason = refused_dir(key, value, node_root, prefix)
    if reason:
        raise errors.WrongInput(f"this node refuses the cluster's {storage_paths.label(key)}: "
                                f"{reason}", "change it with gnt-cluster modify "
                                f"{storage_paths.OPTIONS[key]}")
    return [storage_paths.normal(str(value))]


def from_spec(spec: dict[str, Any], ssconf: dict[str, Any],
              identity: dict[str, Any], runner: CommandRunner | None = None,
              node_root: str | None = None) -> BlockDev:
    """The block device a DiskSpec names on this node.

    ``file`` disks map under the node's optional ``storage_prefix`` (node.json);
    ``sharedfile`` disks never do: every node must see the same file. ``plain`` disks are
    LVs, ``[vg, lv_name]`` (lvm.py), run through ``runner`` (tests pass a FakeRunner).
    ``drbd`` disks are built by ``drbd.from_spec`` from the master's dynamic parameters
    (addresses and minors as seen from this node) and their two LV children.
    ``node_root`` is the node's state directory, which file disks stay out of (and where
    its list of allowed storage paths is).
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
        prefix = str(identity.get("storage_prefix") or "")
        return FileDisk(logical_id, size, params,
                        allowed=storage_dirs(dev_type, ssconf, node_root, prefix),
                        node_prefix=prefix)
    if dev_type == constants.DT_SHARED_FILE:
        return FileDisk(logical_id, size, params,
                        allowed=storage_dirs(dev_type, ssconf, node_root))
    if dev_type == constants.DT_PLAIN:
        return LogicalVolume(logical_id, size, params,
                             tool=LvmTool(runner) if runner is not None else None)
    if dev_type == constants.DT_DRBD8:
        from cardume.node.storage import drbd  # only nodes with drbd disks need it
        return drbd.from_spec(spec, identity, tool=LvmTool(runner) if runner else None)
    if dev_type == constants.DT_DISKLESS:
        raise errors.WrongInput("a diskless instance has no disks to act on")
    raise errors.WrongInput(f"disk template '{dev_type}' is not supported on this node")
