"""Where file disks may live (issue 11, item 6) and what cluster verify finds in the storage
(item 8): the rules of cardume.storage_paths, the node's side of them (its path confinement
and the file_storage_list call) and the master's (gnt-cluster modify refusing a bad or
stranding directory, verify naming disks outside the storage paths and orphan disk files
and volumes). Logical units run through the real opcode path (tests/unit/lu_kit.py) against
node daemons answering with their real handlers, each node with its own state directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lu_kit
import pytest

from cardume import errors, objects, storage_paths
from cardume.cmdlib import cluster as cluster_lu
from cardume.node import storage
from cardume.node.blockdev_calls import MAX_LISTED_FILES
from cardume.node.storage.filestorage import FileDisk
from cardume.rpc.http import PeerInfo

PEER = PeerInfo(address="127.0.0.1", cert_der=None, fingerprint=None, verified=True)
FILE_DIR = "/srv/ganeti/file-storage"  # the cluster path; each node maps it under its prefix
BAD_VALUES = {
    "/etc": "'/etc' is a system directory",
    "/": "'/' is a system directory",
    "/proc/x": "'/proc/x' is inside the system directory /proc",
    "/srv/../etc": "'/srv/../etc' goes through '..' (it means '/etc', a system directory)",
    "srv/ganeti": "'srv/ganeti' is not an absolute path",
    "/usr/lib/x": "'/usr/lib/x' is inside the system directory /usr/lib",
}


# --- the rules ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", sorted(BAD_VALUES))
def test_bad_storage_dirs_are_refused_naming_the_value(value: str) -> None:
    with pytest.raises(storage_paths.PathRefused) as caught:
        storage_paths.check_syntax(value)
    message = str(caught.value)
    assert message.startswith(BAD_VALUES[value]) and "expected" in message
    assert "\n" not in message


def test_good_storage_dirs_come_back_normalised() -> None:
    assert storage_paths.check_syntax(FILE_DIR) == FILE_DIR
    assert storage_paths.check_syntax("/srv/ganeti/file-storage/") == FILE_DIR
    assert storage_paths.check_syntax("//srv//ganeti/./file-storage") == FILE_DIR


def test_dotdot_is_refused_even_when_it_lands_somewhere_harmless() -> None:
    with pytest.raises(storage_paths.PathRefused, match=r"'/srv/x/\.\./y' goes through "
                       r"'\.\.' \(it means '/srv/y'\): expected a path without"):
        storage_paths.check_syntax("/srv/x/../y")


@pytest.mark.parametrize("value", ["", None, 3, "/srv/a\0b"])
def test_what_is_not_a_path_is_refused(value: Any) -> None:
    with pytest.raises(storage_paths.PathRefused, match="expected"):
        storage_paths.check_syntax(value)


def test_the_nodes_state_directory_its_parents_and_inside_are_refused() -> None:
    state = "/var/lib/cardume-node"
    reason = storage_paths.node_reason
    assert reason(state, state, None) == f"'{state}' is the node's state directory"
    assert reason("/var/lib/cardume-node/disks", state, None) == (
        f"'/var/lib/cardume-node/disks' is inside the node's state directory {state}")
    assert reason("/data", "/data/cardume", None) == (
        "'/data' is a parent of the node's state directory /data/cardume")
    assert reason("/var/lib/cardume-disks", state, None) is None  # a sibling is fine


def test_allowed_paths_file_is_parsed_with_comments_and_bad_entries_left_out() -> None:
    allowed, problems = storage_paths.parse_allowed_paths(
        "# where file disks may go\n/srv/ganeti/file-storage  # local\n\n/mnt/nfs/shared/\n"
        "/\n/srv/../etc\nrelative\n/mnt/nfs/shared\n")
    assert allowed == [FILE_DIR, "/mnt/nfs/shared"]
    assert [p.split(":", 1)[0] for p in problems] == ["line 5", "line 6", "line 7"]
    assert "'/' is a system directory" in problems[0]


def test_a_dir_outside_the_allowed_list_is_refused_and_one_inside_accepted() -> None:
    allowed = [FILE_DIR, "/mnt/nfs"]
    assert storage_paths.node_reason(f"{FILE_DIR}/sub", None, allowed) is None
    assert storage_paths.node_reason("/mnt/nfs", None, allowed) is None
    assert storage_paths.node_reason("/data/disks", None, allowed) == (
        "'/data/disks' is not in the node's allowed file storage paths "
        f"({FILE_DIR}, /mnt/nfs; see file-storage-paths in its state directory)")
    # an empty list allows nothing; no list at all leaves only the fixed rules
    assert "allowed file storage paths (nothing;" in str(
        storage_paths.node_reason(FILE_DIR, None, []))
    assert storage_paths.node_reason("/data/disks", None, None) is None


def test_an_unreadable_allowed_list_allows_nothing(tmp_path: Path) -> None:
    (tmp_path / storage_paths.ALLOWED_PATHS_FILE).mkdir()  # a directory: can't be read
    allowed, problems = storage_paths.read_allowed_paths(str(tmp_path))
    assert allowed == [] and "can't read" in problems[0]
    assert storage_paths.read_allowed_paths(str(tmp_path / "none")) == (None, [])


# --- the node's side -----------------------------------------------------------------------

def test_confinement_to_a_system_directory_confines_to_nothing(tmp_path: Path) -> None:
    """With '/' as the storage directory every path used to be 'inside' it."""
    for base in ("/", "/etc", "relative"):
        with pytest.raises(errors.WrongInput, match="outside the storage directories "
                           r"\(none configured\)"):
            FileDisk(["loop", "/etc/shadow"], 8, {}, allowed=[base])
    disk = FileDisk(["loop", f"{tmp_path}/vm1/d0"], 8, {}, allowed=["/", str(tmp_path)])
    assert disk.path == f"{tmp_path}/vm1/d0"


def test_node_refuses_to_use_a_bad_cluster_dir(tmp_path: Path) -> None:
    spec = {"dev_type": "sharedfile", "logical_id": ["loop", "/etc/vm1/d0"], "size": 8}
    with pytest.raises(errors.WrongInput) as caught:
        storage.from_spec(spec, {"shared_file_storage_dir": "/etc"}, {},
                          node_root=str(tmp_path / "node1"))
    assert str(caught.value) == (
        "this node refuses the cluster's shared file storage dir: '/etc' is a system "
        "directory: expected a directory of its own such as /srv/ganeti/file-storage "
        "(change it with gnt-cluster modify --shared-file-storage-dir)")


def test_node_refuses_a_dir_that_links_into_the_system(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "disks").symlink_to("/etc")
    reason = storage.refused_dir("shared_file_storage_dir", str(tmp_path / "srv" / "disks"),
                                 str(tmp_path / "node1"))
    assert reason == (f"'{tmp_path}/srv/disks' leads to /etc through a symbolic link, "
                      "a system directory")


def test_node_refuses_a_dir_outside_its_allowed_list(tmp_path: Path) -> None:
    root = tmp_path / "node1"
    root.mkdir()
    (root / storage_paths.ALLOWED_PATHS_FILE).write_text(f"{tmp_path}/allowed\n")
    spec = {"dev_type": "sharedfile", "logical_id": ["loop", f"{tmp_path}/other/vm1/d0"],
            "size": 8}
    with pytest.raises(errors.WrongInput, match=f"'{tmp_path}/other' is not in the node's "
                       "allowed file storage paths"):
        storage.from_spec(spec, {"shared_file_storage_dir": f"{tmp_path}/other"}, {},
                          node_root=str(root))
    spec["logical_id"] = ["loop", f"{tmp_path}/allowed/x/vm1/d0"]
    dev = storage.from_spec(spec, {"shared_file_storage_dir": f"{tmp_path}/allowed/x"}, {},
                            node_root=str(root))
    assert dev.path == f"{tmp_path}/allowed/x/vm1/d0"


# --- a small cluster: config, nodes with their real handlers -------------------------------

class Cluster(lu_kit.LuKit):
    """Two nodes, each with its own state directory and storage prefix, and no volumes."""

    def __init__(self, root: Path) -> None:
        self.shared = root / "shared"
        super().__init__(root, ["node1", "node2"],
                         templates=["file", "sharedfile", "plain", "diskless"],
                         file_storage_dir=FILE_DIR, shared_file_storage_dir=str(self.shared),
                         volume_group_name="xenvg", runner_default=(0, "", ""))

    def allow(self, node: str, *dirs: str) -> None:
        """Give a node an allowed-paths list."""
        path = Path(storage_paths.allowed_paths_file(str(self.root / node)))
        path.write_text("".join(f"{d}\n" for d in dirs))

    def add_instance(self, name: str, template: str, paths: list[str],
                     node: int = 0) -> objects.Instance:
        pnode = self.nodes[node].uuid
        disks = [objects.Disk(dev_type=template, logical_id=["loop", path], size=1,
                              nodes=[pnode]) for path in paths]
        inst = objects.Instance(name=name, primary_node=pnode, disk_template=template,
                                disks=disks)
        self.sync(self.cfg.commit(add=[inst]))
        return inst

    def modify(self, **values: Any) -> Any:
        return self.run(cluster_lu.LUClusterSetParams, **values)

    def verify(self) -> tuple[bool, list[str]]:
        ok = self.run(cluster_lu.LUClusterVerify)
        return ok, [line.removeprefix("  - ") for line in self.log()
                    if line.startswith("  - ")]

    def dirs(self) -> tuple[str, str]:
        cluster = self.cfg.get_cluster()
        return cluster.file_storage_dir, cluster.shared_file_storage_dir


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    kit = Cluster(tmp_path / "kit")
    try:
        yield kit
    finally:
        kit.close()


def test_file_storage_list_judges_and_lists(cluster: Cluster) -> None:
    disk = cluster.local("node1", f"{FILE_DIR}/vm1/u1.file.disk0")
    disk.parent.mkdir(parents=True)
    disk.write_bytes(b"x")
    (disk.parent / "link").symlink_to(disk)  # not a disk file of its own
    reply = cluster.call("node1", "file_storage_list",
                         dirs={"file_storage_dir": FILE_DIR, "shared_file_storage_dir": "/etc"})
    assert reply["files"] == {"file_storage_dir": [
        {"path": f"{FILE_DIR}/vm1/u1.file.disk0", "local": str(disk), "size": 0}]}
    assert reply["refused"] == {"shared_file_storage_dir": "'/etc' is a system directory: "
                                "expected a directory of its own such as "
                                "/srv/ganeti/file-storage"}
    assert reply["allowed"] is None and reply["truncated"] == {"file_storage_dir": False}
    with pytest.raises(errors.WrongInput, match="argument 'dirs'"):
        cluster.call("node1", "file_storage_list", dirs={"nodes": "/x"})


def test_file_storage_list_stops_at_its_limit(cluster: Cluster,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from cardume.node import blockdev_calls
    monkeypatch.setattr(blockdev_calls, "MAX_LISTED_FILES", 2)
    assert cluster.shared.is_dir()  # the nodes made it when the summary came
    for name in ("a", "b", "c"):
        (cluster.shared / name).write_bytes(b"")
    reply = cluster.call("node1", "file_storage_list",
                         dirs={"shared_file_storage_dir": str(cluster.shared)})
    assert [f["path"] for f in reply["files"]["shared_file_storage_dir"]] == [
        f"{cluster.shared}/a", f"{cluster.shared}/b"]
    assert reply["truncated"]["shared_file_storage_dir"] is True
    assert MAX_LISTED_FILES == 10000


# --- gnt-cluster modify ----------------------------------------------------------------------

@pytest.mark.parametrize("option", ["file_storage_dir", "shared_file_storage_dir"])
@pytest.mark.parametrize("value", sorted(BAD_VALUES))
def test_modify_refuses_a_bad_dir_and_changes_nothing(cluster: Cluster, option: str,
                                                      value: str) -> None:
    before, serial = cluster.dirs(), cluster.cfg.serial
    with pytest.raises(errors.WrongInput) as caught:
        cluster.modify(**{option: value})
    assert str(caught.value).startswith(
        f"invalid {storage_paths.label(option)}: {BAD_VALUES[value]}")
    assert cluster.dirs() == before and cluster.cfg.serial == serial


def test_modify_refuses_a_dir_outside_a_nodes_allowed_list(cluster: Cluster) -> None:
    cluster.allow("node2", FILE_DIR, str(cluster.shared))
    before = cluster.dirs()
    with pytest.raises(errors.WrongInput) as caught:
        cluster.modify(file_storage_dir="/data/disks")
    assert str(caught.value) == (
        "node node2 refuses the file storage dir: '/data/disks' is not in the node's "
        f"allowed file storage paths ({FILE_DIR}, {cluster.shared}; see file-storage-paths "
        "in its state directory) (choose a directory every node allows)")
    assert cluster.dirs() == before
    cluster.modify(file_storage_dir=f"{FILE_DIR}/v2")  # inside an allowed one: fine
    assert cluster.dirs()[0] == f"{FILE_DIR}/v2"


def test_modify_refuses_the_nodes_state_directory(cluster: Cluster) -> None:
    with pytest.raises(errors.WrongInput, match=r"^node node1 refuses the shared file "
                       rf"storage dir: '{cluster.root}' is a parent of the node's state "
                       rf"directory {cluster.root}/node1 \(node2 too; choose a directory "
                       r"every node allows\)$"):
        cluster.modify(shared_file_storage_dir=str(cluster.root))


def test_modify_refuses_to_strand_instances(cluster: Cluster) -> None:
    cluster.add_instance("vm1", "file", [f"{FILE_DIR}/vm1/u1.file.disk0"])
    cluster.add_instance("vm2", "sharedfile", [f"{cluster.shared}/vm2/u2.file.disk0"])
    before = cluster.dirs()
    with pytest.raises(errors.WrongState) as caught:
        cluster.modify(file_storage_dir="/srv/cardume/disks")
    assert str(caught.value) == (
        "changing the file storage dir to '/srv/cardume/disks' would strand instance(s) "
        f"vm1: their disks are in '{FILE_DIR}', outside it, and could no longer be used "
        "(remove those instances first (gnt-instance remove), or choose a directory that "
        f"contains '{FILE_DIR}')")
    with pytest.raises(errors.WrongState, match="would strand instance.s. vm2:"):
        cluster.modify(shared_file_storage_dir=str(cluster.root / "shared2"))
    assert cluster.dirs() == before
    # a directory that contains the old one keeps every disk inside it
    cluster.modify(file_storage_dir="/srv/ganeti")
    assert cluster.dirs()[0] == "/srv/ganeti"


def test_modify_names_a_few_stranded_instances_and_counts_the_rest(cluster: Cluster) -> None:
    for i in range(7):
        cluster.add_instance(f"vm{i}", "file", [f"{FILE_DIR}/vm{i}/d0"])
    with pytest.raises(errors.WrongState, match=r"instance\(s\) vm0, vm1, vm2, vm3, vm4 and "
                       "2 more:"):
        cluster.modify(file_storage_dir="/srv/other")


def test_modify_refuses_an_empty_dir_while_its_template_is_enabled(cluster: Cluster) -> None:
    with pytest.raises(errors.WrongInput, match="the file storage dir can't be empty while "
                       "the file disk template is enabled"):
        cluster.modify(file_storage_dir="")
    cluster.modify(file_storage_dir="", enabled_disk_templates=["sharedfile", "diskless"])
    assert cluster.dirs()[0] == ""


def test_modify_stores_the_normal_form_and_warns_about_a_silent_node(
        cluster: Cluster) -> None:
    cluster.transport.down.add("node2")
    changes = cluster.run(cluster_lu.LUClusterSetParams, file_storage_dir="/srv/cardume//disks/")
    log = cluster.log()
    assert cluster.dirs()[0] == "/srv/cardume/disks"
    assert ("file_storage_dir", "/srv/cardume/disks") in changes
    assert any("could not check the storage directories on node2" in line for line in log)


def test_enabling_a_template_asks_the_nodes_about_its_dir(cluster: Cluster) -> None:
    cluster.modify(enabled_disk_templates=["plain", "diskless"])
    cluster.allow("node1", FILE_DIR)
    with pytest.raises(errors.WrongInput, match="node node1 refuses the shared file "
                       "storage dir"):
        cluster.modify(enabled_disk_templates=["plain", "sharedfile"])
    assert cluster.cfg.get_cluster().enabled_disk_templates == ["plain", "diskless"]


def test_init_check_normalises_and_applies_the_nodes_rules(tmp_path: Path) -> None:
    class Opts:
        enabled_disk_templates = ["file"]
        file_storage_dir = "/srv/ganeti/file-storage/"
        shared_file_storage_dir = ""
    opts = Opts()
    cluster_lu.check_init_storage_dirs(opts, str(tmp_path / "node1"))
    assert opts.file_storage_dir == FILE_DIR
    opts.file_storage_dir = "/srv/../etc"
    with pytest.raises(errors.WrongInput, match="^invalid file storage dir: '/srv/../etc' "
                       "goes through"):
        cluster_lu.check_init_storage_dirs(opts)
    opts.file_storage_dir = str(tmp_path)
    with pytest.raises(errors.WrongInput, match="a parent of the node's state directory"):
        cluster_lu.check_init_storage_dirs(opts, str(tmp_path / "node1"))
    opts.file_storage_dir = ""
    with pytest.raises(errors.WrongInput, match="can't be empty while the file disk "
                       "template is enabled"):
        cluster_lu.check_init_storage_dirs(opts)


# --- gnt-cluster verify ----------------------------------------------------------------------

def _make(path: Path, size: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)


def test_verify_is_quiet_when_every_file_belongs_to_a_disk(cluster: Cluster) -> None:
    path = f"{FILE_DIR}/vm1/u1.file.disk0"
    cluster.add_instance("vm1", "file", [path])
    _make(cluster.local("node1", path))
    shared = f"{cluster.shared}/vm2/u2.file.disk0"
    cluster.add_instance("vm2", "sharedfile", [shared], node=1)
    _make(Path(shared))
    assert cluster.verify() == (True, [])


def test_verify_reports_a_disk_outside_the_storage_paths(cluster: Cluster) -> None:
    cluster.add_instance("vm1", "file", ["/srv/old-place/vm1/u1.file.disk0"])
    ok, problems = cluster.verify()
    assert not ok
    assert problems == [
        "ERROR: instance vm1: disk/0 '/srv/old-place/vm1/u1.file.disk0' is outside the "
        f"file storage dir '{FILE_DIR}', so its node refuses it and the instance can't "
        "start (gnt-cluster modify --file-storage-dir with a directory that holds it)"]


def test_verify_reports_orphan_disk_files_once_for_shared_storage(cluster: Cluster) -> None:
    left = f"{FILE_DIR}/vm9/u9.file.disk0"
    _make(cluster.local("node2", left), 1024 * 1024)
    # vm1's disk file is on node1; a copy of its path on node2 is an orphan there
    cluster.add_instance("vm1", "file", [f"{FILE_DIR}/vm1/u1.file.disk0"])
    _make(cluster.local("node1", f"{FILE_DIR}/vm1/u1.file.disk0"))
    _make(cluster.local("node2", f"{FILE_DIR}/vm1/u1.file.disk0"))
    _make(cluster.shared / "vm8" / "u8.file.disk0")
    ok, problems = cluster.verify()
    assert ok  # orphans are warnings, as Ganeti's ENODEORPHANLV
    local = cluster.local("node2", "")
    assert problems == [
        f"WARNING: node node1: disk file {cluster.shared}/vm8/u8.file.disk0 is unknown: no "
        "instance's disk uses it (if nothing else does, remove it with "
        f"'rm -- {cluster.shared}/vm8/u8.file.disk0' on node1)",
        f"WARNING: node node2: disk file {FILE_DIR}/vm1/u1.file.disk0 is unknown: no "
        f"instance's disk uses it (if nothing else does, remove it with "
        f"'rm -- {local}{FILE_DIR}/vm1/u1.file.disk0' on node2)",
        f"WARNING: node node2: disk file {left} is unknown: no instance's disk uses it (if "
        f"nothing else does, remove it with 'rm -- {local}{left}' on node2)"]


def test_verify_reports_a_dir_a_node_refuses(cluster: Cluster) -> None:
    cluster.allow("node2", "/srv/elsewhere", "/srv/../etc")
    ok = cluster.run(cluster_lu.LUClusterVerify, error_codes=True)
    log = cluster.log()
    problems = [line.strip() for line in log if line.startswith("  - ")]
    assert not ok
    assert problems == [
        "- WARNING:ENODEFILESTORAGEPATHS:node:node2:file-storage-paths: line 2: "
        "'/srv/../etc' goes through '..' (it means '/etc', a system directory): expected a "
        "path without '..' (entry ignored)",
        "- ERROR:ENODEFILESTORAGEPATHS:node:node2:the file storage dir is refused here: "
        f"'{FILE_DIR}' is not in the node's allowed file storage paths (/srv/elsewhere; "
        "see file-storage-paths in its state directory)",
        "- ERROR:ENODEFILESTORAGEPATHS:node:node2:the shared file storage dir is refused "
        f"here: '{cluster.shared}' is not in the node's allowed file storage paths "
        "(/srv/elsewhere; see file-storage-paths in its state directory)"]


def test_verify_reports_orphan_volumes_from_the_nodes_reply(cluster: Cluster) -> None:
    cluster.add_instance("vm1", "file", [f"{FILE_DIR}/vm1/u1.file.disk0"])
    _make(cluster.local("node1", f"{FILE_DIR}/vm1/u1.file.disk0"))
    plain = objects.Disk(dev_type="plain", logical_id=["xenvg", "u2.disk0"], size=4,
                         nodes=[cluster.nodes[0].uuid])
    drbd = objects.Disk(dev_type="drbd", logical_id=[], size=4,
                        nodes=[cluster.nodes[0].uuid, cluster.nodes[1].uuid],
                        children=[objects.Disk(dev_type="plain",
                                               logical_id=["xenvg", "u3.disk0_data"]),
                                  objects.Disk(dev_type="plain",
                                               logical_id=["xenvg", "u3.disk0_meta"])])
    cluster.sync(cluster.cfg.commit(add=[
        objects.Instance(name="vm2", primary_node=cluster.nodes[0].uuid,
                         disk_template="plain", disks=[plain]),
        objects.Instance(name="vm3", primary_node=cluster.nodes[0].uuid,
                         disk_template="drbd", disks=[drbd])]))
    # node1 holds vm2's and vm3's volumes, and one no disk claims (on two PVs: two rows);
    # node2 holds vm3's and a copy of vm2's volume name, which is not vm2's disk there
    cluster.runners["node1"].on(["lvs"], stdout=(
        "  xenvg|u2.disk0|4.00|/dev/sdb(0)\n  xenvg|u3.disk0_data|4.00|/dev/sdb(1)\n"
        "  xenvg|u3.disk0_meta|128.00|/dev/sdb(2)\n  xenvg|gone.disk0|8.00|/dev/sdb(9)\n"
        "  xenvg|gone.disk0|8.00|/dev/sdc(0)\n"))
    cluster.runners["node2"].on(["lvs"], stdout=(
        "  xenvg|u3.disk0_data|4.00|/dev/sdb(1)\n  xenvg|u3.disk0_meta|128.00|/dev/sdb(2)\n"
        "  xenvg|u2.disk0|4.00|/dev/sdb(3)\n"))
    ok = cluster.run(cluster_lu.LUClusterVerify, error_codes=True)
    log = cluster.log()
    assert ok
    assert [line.strip() for line in log if "ORPHANLV" in line] == [
        "- WARNING:ENODEORPHANLV:node:node1:volume xenvg/gone.disk0 is unknown: no "
        "instance's disk uses it (if nothing else does, remove it with 'lvremove "
        "xenvg/gone.disk0' on node1)",
        "- WARNING:ENODEORPHANLV:node:node2:volume xenvg/u2.disk0 is unknown: no instance's "
        "disk uses it (if nothing else does, remove it with 'lvremove xenvg/u2.disk0' on "
        "node2)"]
    assert cluster.runners["node1"].commands("lvs")[-1][-1] == "xenvg"  # the cluster's VG


def test_verify_reports_a_node_that_cannot_list_its_volumes(cluster: Cluster) -> None:
    cluster.runners["node2"].on(["lvs"], rc=5,
                                stderr='  Volume group "xenvg" not found\n')
    ok, problems = cluster.verify()
    assert not ok
    assert problems == ["ERROR: node node2: can't list the logical volumes of xenvg: volume "
                        "group 'xenvg' does not exist on this node"]


def test_verify_leaves_volumes_alone_without_an_lvm_template(cluster: Cluster) -> None:
    cluster.modify(enabled_disk_templates=["file", "sharedfile", "diskless"])
    cluster.runners["node1"].on(["lvs"], stdout="  xenvg|gone.disk0|8.00|/dev/sdb(9)\n")
    assert cluster.verify() == (True, [])
    assert not any(name == "node_volumes" for _, name, _ in cluster.asked)


def test_claims_walk_drbd_children_on_both_nodes() -> None:
    child = objects.Disk(dev_type="plain", logical_id=["vg", "d_data"])
    drbd = objects.Disk(dev_type="drbd", nodes=["n1", "n2"], children=[child])
    inst = objects.Instance(name="vm", primary_node="n1", disks=[drbd])
    assert cluster_lu.volume_claims([inst]) == {"n1": {("vg", "d_data")},
                                                "n2": {("vg", "d_data")}}
