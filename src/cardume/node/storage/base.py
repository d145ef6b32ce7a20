"""The block-device seam: one interface for every disk template's storage.

A disk's ``logical_id`` (stored in the config) says where its data lives; the node turns it
into a BlockDev and calls the operation. ``path`` is what a hypervisor or an OS script gets:
a file for the file templates (exposed as a loop device to scripts that need a block
device), a device node for LVM and DRBD.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from cardume import errors


class BlockDev(ABC):
    def __init__(self, logical_id: list[Any], size: int, params: dict[str, Any]) -> None:
        self.logical_id = logical_id
        self.size = size  # MiB
        self.params = params

    @property
    @abstractmethod
    def path(self) -> str:
        """Where the data is (file or device node)."""

    @abstractmethod
    def create(self) -> None:
        """Create the storage; refuse if it exists already."""

    @abstractmethod
    def remove(self) -> None:
        """Remove the storage; removing something already gone is not an error."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the storage exists."""

    def assemble(self) -> str:
        """Make the device usable on this node; returns its path."""
        return self.path

    def shutdown(self) -> None:  # noqa: B027 (most devices have nothing to release)
        """Stop using the device on this node (the data stays)."""

    @abstractmethod
    def grow(self, amount: int) -> None:
        """Grow by ``amount`` MiB."""

    @abstractmethod
    def rename(self, new_id: list[Any]) -> None:
        """Move the storage to a new logical id."""

    @abstractmethod
    def actual_size(self) -> int:
        """The size on disk, in MiB."""

    def status(self) -> dict[str, Any]:
        exists = self.exists()
        return {"path": self.path, "exists": exists,
                "size": self.actual_size() if exists else None}

    # Raw data access, used to copy a disk from one node to another (gnt-instance move).
    def read_chunk(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer at the end of the device)."""
        if not self.exists():
            raise errors.WrongState(f"disk {self.path} does not exist on this node")
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    def write_chunk(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset``, inside the device's current size."""
        if not self.exists():
            raise errors.WrongState(f"disk {self.path} does not exist on this node")
        with open(self.path, "r+b") as handle:
            size = handle.seek(0, 2)
            if offset + len(data) > size:
                raise errors.WrongInput(f"write past the end of {self.path} "
                                        f"({offset + len(data)} > {size} bytes)")
            handle.seek(offset)
            handle.write(data)
