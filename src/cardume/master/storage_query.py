"""``gnt-node volumes`` and ``gnt-node list-storage`` on the master: ask the nodes, name the
owners.

The master asks each node for its LVs (``node_volumes``) or the space of one storage type
(``node_storage``) and turns the answers into rows; an LV that holds a disk of an instance
(a plain disk, or a child of a drbd disk) is shown with that instance's name. A node that
does not answer is left out and reported apart, as Ganeti warns and goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cardume import constants, errors, objects
from cardume.rules import disk_templates

VOLUME_COLUMNS = ("node", "phys", "vg", "name", "size", "instance")
STORAGE_COLUMNS = ("node", "type", "name", "size", "used", "free", "allocatable")


def volume_rows(node: str, volumes: Iterable[Mapping[str, Any]],
                owners: Mapping[tuple[str, str], str]) -> list[dict[str, Any]]:
    """One node's answer to ``node_volumes`` as ``gnt-node volumes`` rows."""
    rows = [{"node": node, "phys": str(v.get("dev", "")), "vg": str(v.get("vg", "")),
             "name": str(v.get("name", "")), "size": int(v.get("size", 0)),
             "instance": owners.get((str(v.get("vg", "")), str(v.get("name", ""))), "-")}
            for v in volumes]
    return sorted(rows, key=lambda r: (r["phys"], r["vg"], r["name"]))


def storage_rows(node: str, kind: str,
                 items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One node's answer to ``node_storage`` as ``gnt-node list-storage`` rows."""
    rows = [{"node": node, "type": kind, "name": str(i.get("name", "")),
             "size": int(i.get("size", 0)), "used": int(i.get("used", 0)),
             "free": int(i.get("free", 0)), "allocatable": bool(i.get("allocatable", True))}
            for i in items]
    return sorted(rows, key=lambda r: r["name"])


def check_storage_type(kind: Any) -> str:
    if kind not in constants.STORAGE_TYPES:
        raise errors.WrongInput(f"unknown storage type {kind!r} (expected "
                                f"{', '.join(constants.STORAGE_TYPES)})")
    return str(kind)


def default_storage_type(cluster: objects.Cluster) -> str:
    """Ganeti's default for list-storage: the storage of the first enabled template that has
    one (lvm-vg for plain and drbd)."""
    for name in cluster.enabled_disk_templates:
        template = disk_templates.TABLE.get(name)
        if template is not None and template.storage_type is not None:
            return template.storage_type
    return constants.ST_LVM_VG
