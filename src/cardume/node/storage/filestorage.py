"""The ``file`` and ``sharedfile`` templates: sparse image files, one directory per instance.

``logical_id`` is ``[driver, path]`` with ``path`` under the cluster's file (or shared file)
storage directory, as Ganeti stores it. A node may map cluster paths under a prefix of its
own (``node_prefix``): local clusters use it to give each node its own "disk" for ``file``
while ``sharedfile`` stays one directory every node sees, as NFS would.
"""

from __future__ import annotations

import os
from typing import Any

from cardume import errors
from cardume.node.storage.base import BlockDev

MIB = 1024 * 1024


def check_within(path: str, allowed: list[str]) -> str:
    """The normalized path, if it lies inside one of the allowed directories."""
    if not os.path.isabs(path):
        raise errors.WrongInput(f"file disk path '{path}' is not absolute")
    normal = os.path.normpath(path)
    for base in allowed:
        base = os.path.normpath(base)
        if base and normal.startswith(base + os.sep):
            return normal
    raise errors.WrongInput(f"file disk path '{path}' is outside the storage directories "
                            f"({', '.join(allowed) or 'none configured'})")


class FileDisk(BlockDev):
    def __init__(self, logical_id: list[Any], size: int, params: dict[str, Any], *,
                 allowed: list[str], node_prefix: str = "") -> None:
        super().__init__(logical_id, size, params)
        if len(logical_id) != 2:
            raise errors.WrongInput(f"bad file disk id {logical_id!r}: expected [driver, path]")
        self.driver = str(logical_id[0])
        self.cluster_path = check_within(str(logical_id[1]), allowed)
        self.allowed = allowed
        self.prefix = node_prefix

    def _local(self, cluster_path: str) -> str:
        return self.prefix + cluster_path if self.prefix else cluster_path

    @property
    def path(self) -> str:
        return self._local(self.cluster_path)

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    def create(self) -> None:
        if self.size <= 0:
            raise errors.WrongInput(f"invalid disk size {self.size} MiB")
        if os.path.exists(self.path):
            raise errors.AlreadyExists(f"file disk {self.cluster_path} already exists")
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o750, exist_ok=True)
        stat = os.statvfs(directory)
        free = stat.f_bavail * stat.f_frsize // MIB
        if free < self.size:
            where = os.path.dirname(self.cluster_path)
            raise errors.InsufficientResources(
                f"not enough space for a {self.size} MiB disk in {where}: {free} MiB free")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, self.size * MIB)  # sparse: space is taken as data is written
        finally:
            os.close(fd)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        directory = os.path.dirname(self.path)
        try:
            os.rmdir(directory)  # the instance's directory, once its last disk is gone
        except OSError:
            pass

    def grow(self, amount: int) -> None:
        if amount <= 0:
            raise errors.WrongInput(f"invalid growth {amount} MiB: expected a positive size")
        current = os.path.getsize(self.path)
        with open(self.path, "r+b") as handle:
            handle.truncate(current + amount * MIB)
        self.size = (current // MIB) + amount

    def rename(self, new_id: list[Any]) -> None:
        new_path = check_within(str(new_id[1]), self.allowed)
        target = self._local(new_path)
        if os.path.exists(target):
            raise errors.AlreadyExists(f"file disk {new_path} already exists")
        os.makedirs(os.path.dirname(target), mode=0o750, exist_ok=True)
        os.rename(self.path, target)
        old_dir = os.path.dirname(self.path)
        self.cluster_path = new_path
        self.logical_id = [self.driver, new_path]
        try:
            os.rmdir(old_dir)
        except OSError:
            pass

    def actual_size(self) -> int:
        return os.path.getsize(self.path) // MIB
