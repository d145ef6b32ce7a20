"""What each disk template can do: the one table the logical units (and the node) ask
instead of testing template names.

A question such as "can this instance fail over?" is a property here
(:attr:`Template.can_failover`), not a tuple of template names written out where it is
asked. Adding a template is adding a row.

Templates that cardume can't create yet (``blockdev``, ``rbd``, ``ext``, ``gluster``) have
their capabilities off (only what a check of the request needs, such as ``blockdev``
adoption, is on): no instance of them exists, and nothing must take one for granted.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardume import constants, errors


@dataclass(frozen=True)
class Template:
    """One disk template's capabilities."""

    name: str
    supported: bool
    """cardume can create instances of it."""
    has_disks: bool = True
    """False for diskless: no disk to add, grow or activate."""
    storage_type: str | None = None
    """The node storage type its disks take space from (node_info's ``storage`` items,
    gnt-node list-storage); None when it takes none."""
    lvm: bool = False
    """Its disks are (or sit on) LVM logical volumes in a volume group."""
    file_dir: str | None = None
    """The cluster attribute naming the directory its disk files live under (in a
    directory named after the instance: a rename moves them); None if not file-based."""
    shared: bool = False
    """Every node reaches its disks: failover and migration go to any node, nothing is
    copied."""
    network_mirrored: bool = False
    """Its disks are mirrored over the network to one secondary node (DRBD): each node gets
    its own spec of a disk, failover and migration go to the secondary only, and the disks
    are brought up on both nodes before a start."""
    copied_to_migrate: bool = False
    """Its disks live on one node; a live migration copies them to the target
    (``--mirror-disks``). Failover is impossible."""
    movable: bool = False
    """gnt-instance move copies its disks to another node, the instance stopped."""
    new_disk_zeroed: bool = True
    """A newly created disk reads as zeros (a sparse file); an LV holds whatever its extents
    held before, so a copy must write zeros as well as data."""
    adoptable: bool = False
    """An existing volume can become a disk of a new instance (``--disk N:adopt=NAME``)."""
    converts_to: frozenset[str] = frozenset()
    """The templates gnt-instance modify -t converts it to."""

    @property
    def needs_secondary(self) -> bool:
        """An instance of it has a secondary node (-n pnode:snode at creation)."""
        return self.network_mirrored

    @property
    def can_failover(self) -> bool:
        """Another node can start it from the same disks."""
        return self.shared or self.network_mirrored

    @property
    def can_migrate(self) -> bool:
        """It can migrate live (with --mirror-disks when its disks are copied)."""
        return self.can_failover or self.copied_to_migrate


TABLE: dict[str, Template] = {t.name: t for t in (
    Template(constants.DT_DISKLESS, supported=True, has_disks=False, shared=True),
    Template(constants.DT_FILE, supported=True, storage_type=constants.ST_FILE,
             file_dir="file_storage_dir", copied_to_migrate=True, movable=True),
    Template(constants.DT_SHARED_FILE, supported=True, storage_type=constants.ST_SHARED_FILE,
             file_dir="shared_file_storage_dir", shared=True),
    Template(constants.DT_PLAIN, supported=True, storage_type=constants.ST_LVM_VG, lvm=True,
             copied_to_migrate=True, movable=True, new_disk_zeroed=False, adoptable=True,
             converts_to=frozenset({constants.DT_DRBD8})),
    Template(constants.DT_DRBD8, supported=True, storage_type=constants.ST_LVM_VG, lvm=True,
             network_mirrored=True, new_disk_zeroed=False,
             converts_to=frozenset({constants.DT_PLAIN})),
    Template(constants.DT_BLOCK, supported=False, adoptable=True),
    Template(constants.DT_RBD, supported=False),
    Template(constants.DT_EXT, supported=False),
    Template(constants.DT_GLUSTER, supported=False),
)}

SUPPORTED = tuple(name for name, t in TABLE.items() if t.supported)
"""The templates instances can be created with, in the table's order."""


def of(name: str) -> Template:
    """The capabilities of template ``name``; WrongInput names the templates there are."""
    found = TABLE.get(name)
    if found is None:
        raise errors.WrongInput(f"unknown disk template '{name}' (expected "
                                f"{', '.join(constants.DISK_TEMPLATES)})")
    return found
