"""A disk as a node gets it: the part every template shares.

Below both instance_common (which adds the per-node view of a mirrored disk) and drbd
(which builds that view from this part), so neither imports the other's module back.
"""

from __future__ import annotations

from typing import Any

from cardume import objects


def disk_spec(disk: objects.Disk) -> dict[str, Any]:
    """A disk as a node gets it."""
    return {"uuid": disk.uuid, "name": disk.name, "dev_type": disk.dev_type,
            "logical_id": list(disk.logical_id), "size": disk.size, "mode": disk.mode,
            "iv_name": disk.iv_name, "params": dict(disk.params)}
