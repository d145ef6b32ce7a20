"""The ``file`` and ``sharedfile`` templates: sparse image files, one directory per instance.

``logical_id`` is ``[driver, path]`` with ``path`` under the cluster's file (or shared file)
storage directory, as Ganeti stores it. A node may map cluster paths under a prefix of its
own (``node_prefix``): local clusters use it to give each node its own "disk" for ``file``
while ``sharedfile`` stays one directory every node sees, as NFS would.

Every path is confined twice: the cluster path must lie strictly inside one of the allowed
directories (no ``..`` escape, not the directory itself), and the local path, once symbolic
links are resolved, must still lie inside that directory's local counterpart. The allowed
directories themselves pass cardume.storage_paths' rules (storage/__init__.py checks them
with this node's state directory and allowed list; here, at least, no system directory).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from cardume import errors, storage_paths
from cardume.node.storage.base import BlockDev

MIB = 1024 * 1024


def check_within(path: str, allowed: list[str]) -> str:
    """The normalized path, if it lies inside one of the allowed directories."""
    return _confine(path, allowed)[0]


def _confine(path: str, allowed: list[str]) -> tuple[str, str]:
    """(normalized path, the allowed directory it lies in).

    An allowed directory that storage_paths refuses (``/``, ``/etc``, relative...) counts
    as none: confinement to ``/`` would be no confinement at all."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise errors.WrongInput(f"file disk path '{path}' is not absolute")
    if "\0" in path:
        raise errors.WrongInput("file disk path contains a NUL byte")
    normal = storage_paths.normal(path)
    usable = []
    for base in allowed:
        try:
            usable.append(storage_paths.check_syntax(base))
        except storage_paths.PathRefused:
            continue
    for base in usable:
        if storage_paths.is_below(normal, base):
            return normal, base
    raise errors.WrongInput(f"file disk path '{path}' is outside the storage directories "
                            f"({', '.join(usable) or 'none configured'})")


def normal_prefix(prefix: str | None) -> str:
    """A node's storage prefix as used to map paths: absolute, no trailing slash ('' = none)."""
    if not prefix:
        return ""
    if not os.path.isabs(prefix):
        raise errors.WrongInput(f"storage prefix '{prefix}' is not absolute")
    return os.path.normpath(prefix).rstrip(os.sep)


class FileDisk(BlockDev):
    def __init__(self, logical_id: list[Any], size: int, params: dict[str, Any], *,
                 allowed: list[str], node_prefix: str = "") -> None:
        super().__init__(logical_id, size, params)
        if not isinstance(logical_id, list | tuple) or len(logical_id) != 2:
            raise errors.WrongInput(f"bad file disk id {logical_id!r}: expected [driver, path]")
        self.driver = str(logical_id[0])
        self.allowed = list(allowed)
        self.prefix = normal_prefix(node_prefix)
        self.cluster_path, self.base = _confine(logical_id[1], self.allowed)

    def _local(self, cluster_path: str) -> str:
        return self.prefix + cluster_path if self.prefix else cluster_path

    @property
    def path(self) -> str:
        return self._local(self.cluster_path)

    def _check_real(self, local_path: str, base: str) -> None:
        """Refuse a local path that symbolic links lead out of its storage directory."""
        local_base = self._local(base)
        if not os.path.exists(local_base):
            return
        real_base = os.path.realpath(local_base)
        real = os.path.realpath(local_path)
        if not real.startswith(real_base.rstrip(os.sep) + os.sep):
            raise errors.WrongInput(f"file disk path '{local_path}' leads outside the storage "
                                    f"directory {base} (through a symbolic link)")

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    def _require(self) -> None:
        self._check_real(self.path, self.base)
        if not self.exists():
            raise errors.WrongState(f"file disk {self.cluster_path} does not exist on this node")

    def create(self) -> None:
        if self.size <= 0:
            raise errors.WrongInput(f"invalid disk size {self.size} MiB")
        path = self.path
        self._check_real(path, self.base)
        if os.path.lexists(path):
            raise errors.AlreadyExists(f"file disk {self.cluster_path} already exists")
        directory = os.path.dirname(path)
        free = _free_mib(directory)
        if free is not None and free < self.size:
            where = os.path.dirname(self.cluster_path)
            raise errors.InsufficientResources(
                f"not enough disk space in {where} for a {self.size} MiB disk: {free} MiB "
                "free", f"short by {self.size - free} MiB")
        made = _makedirs(directory)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            raise errors.AlreadyExists(f"file disk {self.cluster_path} already exists") from None
        except BaseException:
            _remove_dirs(made)
            raise
        try:
            os.ftruncate(fd, self.size * MIB)  # sparse: space is taken as data is written
        except BaseException:
            os.close(fd)
            os.unlink(path)
            _remove_dirs(made)
            raise
        os.close(fd)

    def remove(self) -> None:
        self._check_real(self.path, self.base)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._prune(os.path.dirname(self.cluster_path), self.base)

    def _prune(self, cluster_dir: str, base: str) -> None:
        """Remove empty directories from cluster_dir up to (not including) base."""
        while cluster_dir != base and cluster_dir.startswith(base + os.sep):
            try:
                os.rmdir(self._local(cluster_dir))
            except FileNotFoundError:
                pass
            except OSError:
                return  # not empty: another disk of the instance still lives there
            cluster_dir = os.path.dirname(cluster_dir)

    def assemble(self) -> str:
        self._require()
        return self.path

    def grow(self, amount: int) -> None:
        if amount <= 0:
            raise errors.WrongInput(f"invalid growth {amount} MiB: expected a positive size")
        self._require()
        free = _free_mib(os.path.dirname(self.path))
        if free is not None and free < amount:
            raise errors.InsufficientResources(
                f"not enough disk space to grow {self.cluster_path} by {amount} MiB: "
                f"{free} MiB free", f"short by {amount - free} MiB")
        current = os.path.getsize(self.path)
        with open(self.path, "r+b") as handle:
            handle.truncate(current + amount * MIB)
        self.size = (current // MIB) + amount

    def rename(self, new_id: list[Any]) -> None:
        if not isinstance(new_id, list | tuple) or len(new_id) != 2:
            raise errors.WrongInput(f"bad file disk id {new_id!r}: expected [driver, path]")
        new_path, new_base = _confine(new_id[1], self.allowed)
        target = self._local(new_path)
        self._check_real(self.path, self.base)
        self._check_real(target, new_base)
        if new_path == self.cluster_path:
            self._require()
            return
        if not self.exists():
            if os.path.isfile(target):
                self._adopt(new_id, new_path, new_base)  # renamed before: a retry
                return
            self._require()
        if os.path.lexists(target):
            raise errors.AlreadyExists(f"file disk {new_path} already exists")
        made = _makedirs(os.path.dirname(target))
        try:
            os.rename(self.path, target)
        except BaseException:
            _remove_dirs(made)
            raise
        old_dir, old_base = os.path.dirname(self.cluster_path), self.base
        self._adopt(new_id, new_path, new_base)
        self._prune(old_dir, old_base)

    def _adopt(self, new_id: list[Any], new_path: str, new_base: str) -> None:
        self.driver = str(new_id[0])
        self.cluster_path, self.base = new_path, new_base
        self.logical_id = [self.driver, new_path]

    def actual_size(self) -> int:
        return os.path.getsize(self.path) // MIB


def _free_mib(directory: str) -> int | None:
    """Free MiB on the file system that holds directory (or its nearest existing parent)."""
    path = directory
    while path and not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize // MIB


def _makedirs(directory: str) -> list[str]:
    """Create directory and missing parents; return the ones created, deepest first."""
    missing = []
    path = directory
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    os.makedirs(directory, mode=0o750, exist_ok=True)
    return missing


def _remove_dirs(created: list[str]) -> None:
    for path in created:  # deepest first
        try:
            os.rmdir(path)
        except OSError:
            return
