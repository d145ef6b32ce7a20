"""The disk-template capability table: every template has a row, and the rows say what
the logical units allowed before the table (failover, migration, move, adoption,
conversion) and what the node's storage types are."""

from __future__ import annotations

import pytest

from cardume import constants, errors
from cardume.rules import disk_templates as dt


def having(capability: str) -> set[str]:
    return {name for name, t in dt.TABLE.items() if getattr(t, capability)}


def test_every_template_has_one_row_under_its_own_name() -> None:
    assert list(dt.TABLE) == list(constants.DISK_TEMPLATES)
    assert all(t.name == name for name, t in dt.TABLE.items())


def test_supported_templates_are_the_five_cardume_creates() -> None:
    assert dt.SUPPORTED == ("diskless", "file", "sharedfile", "plain", "drbd")


def test_what_moves_where() -> None:
    # shared storage (or no disks): any node; drbd: its secondary; file/plain: live only,
    # copying the disks (--mirror-disks), or offline with gnt-instance move
    assert having("can_failover") == {"diskless", "sharedfile", "drbd"}
    assert having("shared") == {"diskless", "sharedfile"}
    assert having("network_mirrored") == having("needs_secondary") == {"drbd"}
    assert having("copied_to_migrate") == {"file", "plain"}
    assert having("can_migrate") == {"diskless", "sharedfile", "drbd", "file", "plain"}
    assert having("movable") == {"file", "plain"}


def test_what_the_disks_are() -> None:
    assert {n for n, t in dt.TABLE.items() if not t.has_disks} == {"diskless"}
    assert {n: t.file_dir for n, t in dt.TABLE.items() if t.file_dir} == {
        "file": "file_storage_dir", "sharedfile": "shared_file_storage_dir"}
    assert having("adoptable") == {"plain", "blockdev"}
    # an LV is not zeroed when made: a copy onto one writes the holes too
    assert {n for n in dt.SUPPORTED if not dt.of(n).new_disk_zeroed} == {"plain", "drbd"}
    conversions = {(n, to) for n, t in dt.TABLE.items() for to in t.converts_to}
    assert conversions == {("plain", "drbd"), ("drbd", "plain")}


def test_the_storage_each_template_takes_is_one_the_node_reports() -> None:
    """The table is the only template -> storage map: the node's node_info measures what it
    names, gnt-instance add checks free space against it and list-storage takes its default
    from it, so a row naming a storage type the node doesn't report would make them
    disagree."""
    assert {n: t.storage_type for n, t in dt.TABLE.items() if t.storage_type} == {
        "file": constants.ST_FILE, "sharedfile": constants.ST_SHARED_FILE,
        "plain": constants.ST_LVM_VG, "drbd": constants.ST_LVM_VG}
    # LVM templates take the volume group; file-based ones the storage of their directory
    assert having("lvm") == {"plain", "drbd"}
    assert {dt.of(n).storage_type for n in having("lvm")} == {constants.ST_LVM_VG}
    assert {dt.of(n).storage_type for n in having("file_dir")} == {
        constants.ST_FILE, constants.ST_SHARED_FILE}
    assert having("file_dir") <= set(constants.DTS_FILEBASED)


def test_templates_cardume_cannot_create_have_no_capability_taken_for_granted() -> None:
    for name in set(constants.DISK_TEMPLATES) - set(dt.SUPPORTED):
        t = dt.of(name)
        assert not (t.can_migrate or t.can_failover or t.movable or t.converts_to
                    or t.storage_type), name


def test_an_unknown_template_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(errors.WrongInput) as caught:
        dt.of("floppy")
    message = str(caught.value)
    assert "'floppy'" in message and "plain, drbd" in message and "\n" not in message
