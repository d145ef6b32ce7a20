"""File and sharedfile disks: sparse images, path confinement, grow, rename, remove, the
per-node prefix, and the DiskSpec factory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cardume import errors
from cardume.node import storage
from cardume.node.storage.filestorage import MIB, FileDisk, check_within


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "file-storage"
    path.mkdir()
    return path


def disk(base: Path, rel: str = "vm1/d0.file.disk0", size: int = 8,
         prefix: str = "") -> FileDisk:
    return FileDisk(["loop", f"{base}/{rel}"], size, {}, allowed=[str(base)],
                    node_prefix=prefix)


def test_create_makes_a_sparse_file_of_the_right_size(base: Path) -> None:
    dev = disk(base, size=64)
    assert not dev.exists()
    dev.create()
    assert dev.exists() and dev.path == f"{base}/vm1/d0.file.disk0"
    st = os.stat(dev.path)
    assert st.st_size == 64 * MIB
    assert st.st_blocks * 512 < MIB  # sparse: nothing written yet
    assert st.st_mode & 0o777 == 0o600
    assert dev.actual_size() == 64
    assert dev.status() == {"path": dev.path, "exists": True, "size": 64}
    with pytest.raises(errors.AlreadyExists):
        disk(base, size=64).create()


def test_create_refuses_bad_sizes_and_missing_space(base: Path) -> None:
    with pytest.raises(errors.WrongInput, match="invalid disk size"):
        disk(base, size=0).create()
    with pytest.raises(errors.InsufficientResources, match="not enough disk space") as short:
        disk(base, size=1 << 40).create()  # a whole EiB
    assert "MiB free" in short.value.message
    assert not (base / "vm1").exists()  # no debris: the instance directory is gone again


@pytest.mark.parametrize("path", [
    "{base}/../escape.disk",
    "{base}/vm1/../../escape.disk",
    "{base}",
    "{base}/",
    "/etc/passwd",
    "relative/disk0",
    "{base}-sibling/disk0",
])
def test_confinement_refuses_paths_outside_the_dirs(base: Path, path: str) -> None:
    with pytest.raises(errors.WrongInput):
        FileDisk(["loop", path.format(base=base)], 8, {}, allowed=[str(base)])


def test_confinement_accepts_paths_inside(base: Path) -> None:
    assert check_within(f"{base}/vm1/./d0", [str(base)]) == f"{base}/vm1/d0"
    assert check_within(f"{base}/vm1/x/../d0", ["/elsewhere", str(base)]) == f"{base}/vm1/d0"
    with pytest.raises(errors.WrongInput, match="none configured"):
        check_within(f"{base}/vm1/d0", [])


def test_confinement_refuses_symlink_escapes(base: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (base / "vm1").symlink_to(outside)
    with pytest.raises(errors.WrongInput, match="symbolic link"):
        disk(base).create()
    assert not list(outside.iterdir())
    (outside / "d0.file.disk0").write_bytes(b"precious")
    for action in (lambda d: d.remove(), lambda d: d.grow(1), lambda d: d.assemble(),
                   lambda d: d.rename(["loop", f"{base}/vm2/d0"])):
        with pytest.raises(errors.WrongInput, match="symbolic link"):
            action(disk(base))
    assert (outside / "d0.file.disk0").read_bytes() == b"precious"


def test_bad_logical_ids(base: Path) -> None:
    for bad in (["loop"], ["loop", f"{base}/a", "extra"], "not-a-list"):
        with pytest.raises(errors.WrongInput):
            FileDisk(bad, 8, {}, allowed=[str(base)])  # type: ignore[arg-type]


def test_grow(base: Path) -> None:
    dev = disk(base, size=8)
    dev.create()
    dev.grow(24)
    assert os.path.getsize(dev.path) == 32 * MIB and dev.actual_size() == 32
    with pytest.raises(errors.WrongInput):
        dev.grow(0)
    with pytest.raises(errors.InsufficientResources):
        dev.grow(1 << 40)
    with pytest.raises(errors.WrongState, match="does not exist"):
        disk(base, rel="vm2/missing").grow(8)


def test_rename_moves_to_the_new_instance_dir(base: Path) -> None:
    dev = disk(base)
    dev.create()
    with open(dev.path, "r+b") as handle:
        handle.write(b"data")
    new_id = ["loop", f"{base}/vm2/d0.file.disk0"]
    dev.rename(new_id)
    assert dev.logical_id == new_id and dev.path == new_id[1]
    assert Path(new_id[1]).read_bytes()[:4] == b"data"
    assert not (base / "vm1").exists()  # the old, now empty, instance dir is gone
    dev.rename(new_id)  # the same id again: nothing to do
    # a retried rename (the first one went through) is not an error
    again = disk(base)
    again.rename(new_id)
    assert again.path == new_id[1]
    with pytest.raises(errors.WrongInput):
        dev.rename(["loop", "/tmp/elsewhere.disk"])
    other = disk(base, rel="vm3/d1.file.disk0")
    other.create()
    with pytest.raises(errors.AlreadyExists):
        other.rename(new_id)
    with pytest.raises(errors.WrongState):
        disk(base, rel="vm4/none").rename(["loop", f"{base}/vm5/none"])


def test_remove_is_idempotent_and_removes_the_empty_instance_dir(base: Path) -> None:
    first, second = disk(base, rel="vm1/d0.file.disk0"), disk(base, rel="vm1/d1.file.disk1")
    first.create()
    second.create()
    first.remove()
    assert not first.exists() and (base / "vm1").is_dir()  # the other disk is still there
    second.remove()
    assert not (base / "vm1").exists()
    second.remove()  # gone already: fine
    assert base.is_dir()  # the storage directory itself stays
    flat = disk(base, rel="d9.file.disk0")
    flat.create()
    flat.remove()
    assert base.is_dir()


def test_nested_subdirectories_are_pruned_up_to_the_base(base: Path) -> None:
    dev = disk(base, rel="sub/dir/vm1/d0.file.disk0")
    dev.create()
    dev.remove()
    assert list(base.iterdir()) == []


def test_prefix_maps_cluster_paths_under_the_node_dir(base: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "node1" / "disk"
    dev = disk(base, prefix=str(prefix) + "/")
    assert dev.cluster_path == f"{base}/vm1/d0.file.disk0"
    assert dev.path == f"{prefix}{base}/vm1/d0.file.disk0"
    dev.create()
    assert os.path.isfile(dev.path)
    assert not (base / "vm1").exists()  # nothing at the cluster path itself
    dev.rename(["loop", f"{base}/vm2/d0.file.disk0"])
    assert os.path.isfile(f"{prefix}{base}/vm2/d0.file.disk0")
    dev.remove()
    assert not os.path.exists(f"{prefix}{base}/vm2")
    assert os.path.isdir(f"{prefix}{base}")
    with pytest.raises(errors.WrongInput, match="not absolute"):
        disk(base, prefix="relative/prefix")


def test_chunks_read_and_write(base: Path) -> None:
    dev = disk(base, size=1)
    dev.create()
    dev.write_chunk(10, b"hello")
    assert dev.read_chunk(8, 9) == b"\0\0hello\0\0"
    assert len(dev.read_chunk(MIB - 4, 100)) == 4
    with pytest.raises(errors.WrongInput, match="past the end"):
        dev.write_chunk(MIB - 2, b"abc")
    assert os.path.getsize(dev.path) == MIB


def _spec(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"uuid": "d0", "name": None, "dev_type": "file",
                            "logical_id": ["loop", "/srv/fs/vm1/d0.file.disk0"], "size": 16,
                            "mode": "rw", "iv_name": "disk/0", "params": {}}
    data.update(extra)
    return data


def test_from_spec_uses_the_template_dir_and_the_prefix() -> None:
    ssconf = {"file_storage_dir": "/srv/fs", "shared_file_storage_dir": "/srv/shared"}
    ident = {"storage_prefix": "/nodes/n1/disk"}
    dev = storage.from_spec(_spec(), ssconf, ident)
    assert isinstance(dev, FileDisk) and dev.size == 16
    assert dev.path == "/nodes/n1/disk/srv/fs/vm1/d0.file.disk0"
    shared = storage.from_spec(
        _spec(dev_type="sharedfile", logical_id=["loop", "/srv/shared/vm1/d0"]), ssconf, ident)
    assert shared.path == "/srv/shared/vm1/d0"  # shared storage is never prefixed
    with pytest.raises(errors.WrongInput, match="outside"):  # file disks live in the file dir
        storage.from_spec(_spec(logical_id=["loop", "/srv/shared/vm1/d0"]), ssconf, ident)
    with pytest.raises(errors.WrongInput, match="none configured"):
        storage.from_spec(_spec(), {}, {})
    with pytest.raises(errors.WrongInput, match="drbd disk id"):  # a file disk's id
        storage.from_spec(_spec(dev_type="drbd"), ssconf, ident)
    with pytest.raises(errors.WrongInput, match="not supported"):
        storage.from_spec(_spec(dev_type="blockdev"), ssconf, ident)
    with pytest.raises(errors.WrongInput, match="diskless"):
        storage.from_spec(_spec(dev_type="diskless"), ssconf, ident)
