"""Node RPC handlers for disks: create, remove, assemble, grow, rename, copy chunks; and the
node's storage inventory (gnt-node volumes, list-storage, the file storage directories)."""

from __future__ import annotations

import base64
import os
import stat
from typing import Any

from cardume import constants, errors, storage_paths
from cardume.node import facts, storage
from cardume.node.callkit import NodeContext, blocking
from cardume.node.storage import drbd, lvm
from cardume.rpc.calls import serves
from cardume.rpc.http import PeerInfo
from cardume.rpc.wire import DiskSpec

MAX_CHUNK = 16 * 1024 * 1024
MAX_LISTED_FILES = 10000  # per storage directory in file_storage_list: a reply stays small


def _check_chunk(offset: int, length: int) -> None:
    if offset < 0 or not 0 < length <= MAX_CHUNK:
        raise errors.WrongInput(f"bad chunk {offset}+{length}: at most {MAX_CHUNK} bytes")


class BlockdevCalls:
    def __init__(self, node: NodeContext) -> None:
        self.node = node

    @serves
    async def blockdev_create(self, peer: PeerInfo, disk: DiskSpec,
                              data_exists: bool) -> dict[str, Any]:
        """data_exists (drbd only) keeps the existing data LV and adds the metadata
        beside it."""
        dev = self.node.disk(disk)
        if data_exists:
            if not isinstance(dev, drbd.DrbdDisk):
                raise errors.WrongInput("data_exists only applies to drbd disks")
            await blocking(dev.create, True)
        else:
            await blocking(dev.create)
        return {"path": dev.path}

    @serves
    async def blockdev_remove(self, peer: PeerInfo, disk: DiskSpec) -> None:
        await blocking(self.node.disk(disk).remove)

    @serves
    async def blockdev_assemble(self, peer: PeerInfo, disk: DiskSpec,
                                primary: bool) -> dict[str, Any]:
        """A DRBD disk is attached and connected, and made primary when asked; the others
        are just checked and made usable."""
        dev = self.node.disk(disk)

        def assemble() -> str:
            path = dev.assemble()
            if primary and isinstance(dev, drbd.DrbdDisk):
                dev.primary()
            return path
        return {"path": await blocking(assemble)}

    @serves
    async def blockdev_shutdown(self, peer: PeerInfo, disk: DiskSpec) -> None:
        await blocking(self.node.disk(disk).shutdown)

    @serves
    async def blockdev_grow(self, peer: PeerInfo, disk: DiskSpec, amount: int,
                            backingstore: bool) -> None:
        """A DRBD disk grows in two steps, its data volume on each node (backingstore
        true), then the device on the primary, whose spec carries the new size
        (backingstore false)."""
        dev = self.node.disk(disk)
        if isinstance(dev, drbd.DrbdDisk) and not backingstore:
            await blocking(dev.resize)
            return
        await blocking(dev.grow, amount)

    @serves
    async def blockdev_rename(self, peer: PeerInfo, disk: DiskSpec,
                              new_logical_id: list[Any]) -> None:
        await blocking(self.node.disk(disk).rename, new_logical_id)

    @serves
    async def blockdev_info(self, peer: PeerInfo, disks: list[DiskSpec]) -> list[dict[str, Any]]:
        devs = self.node.disks(disks)
        return await blocking(lambda: [d.status() for d in devs])

    @serves
    async def blockdev_read(self, peer: PeerInfo, disk: DiskSpec, offset: int,
                            length: int) -> dict[str, Any]:
        """-> {"data": base64 or null when all zero, "length", "eof"}: zero chunks travel
        as their length only, so sparse disks stay sparse."""
        dev = self.node.disk(disk)
        _check_chunk(offset, length)
        data = await blocking(dev.read_chunk, offset, length)
        encoded = None if data.count(0) == len(data) else base64.b64encode(data).decode()
        return {"data": encoded, "length": len(data), "eof": len(data) < length}

    @serves
    async def blockdev_write(self, peer: PeerInfo, disk: DiskSpec, offset: int,
                             data: str | None, zeros: int | None) -> None:
        """Write a chunk (base64 ``data``) inside the disk, or ``zeros`` zero bytes
        instead (a new LV, unlike a new file, is not zero-filled, so a copy can't skip
        the holes)."""
        dev = self.node.disk(disk)
        if data is None and zeros is not None:
            _check_chunk(offset, zeros)
            await blocking(dev.write_chunk, offset, bytes(zeros))
            return
        if data is None:
            raise errors.WrongInput("blockdev_write needs 'data' or 'zeros'")
        try:
            chunk = base64.b64decode(data, validate=True)
        except ValueError:
            raise errors.WrongInput("argument 'data' is not base64") from None
        if offset < 0 or len(chunk) > MAX_CHUNK:
            raise errors.WrongInput(f"bad chunk {offset}+{len(chunk)}: at most {MAX_CHUNK} "
                                    "bytes")
        await blocking(dev.write_chunk, offset, chunk)

    # --- storage inventory (gnt-node volumes, list-storage) --------------------------------

    @serves
    async def node_volumes(self, peer: PeerInfo, vg: str | None) -> list[dict[str, Any]]:
        """The LVs of the volume group (default: the cluster's), one row per PV:
        ``{"vg", "name", "size", "dev"}``. A node without the volume group has none."""
        vg = vg or self.node.ssconf().get("volume_group_name")
        if vg is not None and not isinstance(vg, str):
            raise errors.WrongInput("the cluster's volume group name is not a string")
        return await blocking(lvm.list_volume_devices, vg or None, self.node.runner)

    @serves
    async def node_storage(self, peer: PeerInfo, type: str) -> list[dict[str, Any]]:
        """lvm-vg|lvm-pv|file|sharedfile -> ``[{"name", "size", "used", "free",
        "allocatable"}]`` (MiB), as gnt-node list-storage shows them."""
        kind = type
        if kind not in constants.STORAGE_TYPES:
            raise errors.WrongInput(f"unknown storage type {kind!r} (expected "
                                    f"{', '.join(constants.STORAGE_TYPES)})")
        runner = self.node.runner
        if kind == constants.ST_LVM_VG:
            vgs = await blocking(lvm.list_vgs, runner)
            return [{"name": v["name"], "size": v["size"], "used": v["size"] - v["free"],
                     "free": v["free"], "allocatable": True} for v in vgs]
        if kind == constants.ST_LVM_PV:
            pvs = await blocking(lvm.list_pvs, runner)
            return [{k: p[k] for k in ("name", "size", "used", "free", "allocatable")}
                    for p in pvs]
        key = {constants.ST_FILE: "file_storage_dir",
               constants.ST_SHARED_FILE: "shared_file_storage_dir"}[kind]
        path = self.node.ssconf().get(key)
        if not path:
            return []
        measured = str(path)
        prefix = self.node.storage_prefix
        if kind == constants.ST_FILE and prefix:
            measured = os.path.normpath(prefix) + os.path.normpath(measured)
        found = await blocking(facts.space, measured)
        if found is None:
            return []
        return [{"name": str(path), "size": found["total"],
                 "used": found["total"] - found["free"], "free": found["free"],
                 "allocatable": True}]

    @serves
    async def file_storage_list(self, peer: PeerInfo, dirs: dict[str, str] | None,
                                files: bool) -> dict[str, Any]:
        """{file_storage_dir|shared_file_storage_dir: cluster path} -> ``{"allowed": [dir]
        | null, "allowed_problems": [str], "refused": {key: reason}, "files": {key:
        [{"path", "local", "size"}]}, "truncated": {key: bool}}``.

        Judges each directory as this node would before using it (cluster verify and
        gnt-cluster modify ask), and lists the regular files below the accepted ones
        (``files``): cluster verify compares them with the disks it knows. ``path`` is the
        cluster path, ``local`` where it is on this node, ``size`` MiB."""
        dirs = dirs or {}
        if not all(k in storage_paths.LABELS for k in dirs):
            raise errors.WrongInput("argument 'dirs' must map file_storage_dir or "
                                    "shared_file_storage_dir to a path")
        root = self.node.paths.root
        storage_prefix = self.node.storage_prefix

        def scan() -> dict[str, Any]:
            allowed, problems = storage_paths.read_allowed_paths(root)
            reply: dict[str, Any] = {"allowed": allowed, "allowed_problems": problems,
                                     "refused": {}, "files": {}, "truncated": {}}
            for key, path in sorted(dirs.items()):
                prefix = storage_prefix if key == "file_storage_dir" else ""
                reason = storage.refused_dir(key, path, root, prefix)
                if reason:
                    reply["refused"][key] = reason
                elif files:
                    found, cut = _disk_files(storage_paths.normal(path), prefix)
                    reply["files"][key], reply["truncated"][key] = found, cut
            return reply
        return await blocking(scan)


def _disk_files(cluster_dir: str, prefix: str) -> tuple[list[dict[str, Any]], bool]:
    """The regular files below a storage directory (symbolic links not followed), as
    ``{"path": cluster path, "local": path here, "size": MiB}``; and whether the list was
    cut at MAX_LISTED_FILES."""
    local_dir = prefix.rstrip("/") + cluster_dir if prefix else cluster_dir
    found: list[dict[str, Any]] = []
    for top, subdirs, names in os.walk(local_dir):
        subdirs.sort()
        for name in sorted(names):
            local = os.path.join(top, name)
            try:
                info = os.lstat(local)
            except OSError:
                continue  # removed while we walked
            if not stat.S_ISREG(info.st_mode):
                continue
            if len(found) >= MAX_LISTED_FILES:
                return found, True
            cluster_path = cluster_dir + local[len(local_dir):]
            found.append({"path": cluster_path, "local": local,
                          "size": info.st_size // (1024 * 1024)})
    return found, False
