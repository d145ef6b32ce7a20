"""The master's side of the drbd template (cmdlib/drbd.py) and the node operations added
for replace-disks and conversions: what the real DRBD runs in the QA suite (tests/qa/
test_drbd.py) rests on the allocations and specs checked here."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from cardume import constants, errors, objects
from cardume.cmdlib import drbd
from cardume.config.store import ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.node.cmd import FakeRunner
from cardume.node.storage import drbd as node_drbd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "drbd"


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.cfg = ConfigWriter(ConfigStore(os.path.join(tmp, "config.db")))
        self.group = objects.NodeGroup(name="default")
        self.nodes = [objects.Node(name=f"node{i}.example.com", primary_ip=f"192.0.2.{i}",
                                   secondary_ip=f"198.51.100.{i}" if i == 2 else "",
                                   group=self.group.uuid) for i in (1, 2, 3)]
        cluster = objects.Cluster(cluster_name="c.example.com", master_node=self.nodes[0].uuid,
                                  diskparams={"drbd": {"resync-rate": 1000}})
        asyncio.run(self.cfg.commit(add=[cluster, self.group, *self.nodes]))

    def add_instance(self, disks: list[objects.Disk]) -> objects.Instance:
        inst = objects.Instance(name=f"vm{len(self.cfg.instances)}", disks=disks,
                                primary_node=disks[0].nodes[0], disk_template="drbd")
        asyncio.run(self.cfg.commit(add=[inst]))
        return inst


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(tmp_path)


def _disk(alloc: drbd.Allocator, c: Cluster, p: int = 0, s: int = 1,
          index: int = 0) -> objects.Disk:
    return drbd.make_disk(alloc, c.nodes[p], c.nodes[s], size=256, vg="xenvg", metavg=None,
                          index=index)


# --- allocation ----------------------------------------------------------------------------

def test_new_disk_takes_the_lowest_free_port_and_minors(cluster: Cluster) -> None:
    with drbd.allocating(cluster.cfg) as alloc:
        first = _disk(alloc, cluster)
        second = _disk(alloc, cluster, index=1)
    pnode, snode = cluster.nodes[0].uuid, cluster.nodes[1].uuid
    assert first.logical_id[:5] == [pnode, snode, 11000, 0, 0]
    assert second.logical_id[:5] == [pnode, snode, 11001, 1, 1]
    assert first.logical_id[5] != second.logical_id[5]  # a secret per disk
    assert len(first.logical_id[5]) == 40
    data, meta = first.children
    assert (data.logical_id, data.size) == (["xenvg", f"{first.uuid}.disk0_data"], 256)
    assert (meta.logical_id, meta.size) == (["xenvg", f"{first.uuid}.disk0_meta"], 128)
    assert first.nodes == data.nodes == meta.nodes == [pnode, snode]


def test_committed_disks_and_running_jobs_are_never_given_twice(cluster: Cluster) -> None:
    with drbd.allocating(cluster.cfg) as alloc:
        cluster.add_instance([_disk(alloc, cluster)])  # ports 11000, minors 0 on node1/2
    with drbd.allocating(cluster.cfg) as job1, drbd.allocating(cluster.cfg) as job2:
        a = _disk(job1, cluster)            # node1:node2
        b = _disk(job2, cluster, p=2, s=0)  # node3:node1, at the same time
    assert (a.logical_id[2], b.logical_id[2]) == (11001, 11002)
    assert a.logical_id[3:5] == [1, 1]
    assert b.logical_id[3:5] == [0, 2]  # node3's first minor; node1's 0 and 1 are taken
    # a job's reservations end with it: a failed create gives its port back
    with drbd.allocating(cluster.cfg) as alloc:
        assert _disk(alloc, cluster).logical_id[2] == 11001
    assert drbd.reservations(cluster.cfg).ports == set()


def test_an_exhausted_port_pool_is_a_clear_error(cluster: Cluster) -> None:
    with drbd.allocating(cluster.cfg) as hog:
        for _ in range(drbd.PORT_LAST - drbd.PORT_FIRST + 1):
            hog.port()
        with drbd.allocating(cluster.cfg) as alloc, \
                pytest.raises(errors.InsufficientResources) as err:
            _disk(alloc, cluster)
        assert "11000-14999" in err.value.message and "4000" in err.value.message
        assert err.value.code == "insufficient_resources"


# --- what each node gets -------------------------------------------------------------------

def test_each_node_gets_its_own_minor_and_the_replication_addresses(cluster: Cluster) -> None:
    with drbd.allocating(cluster.cfg) as alloc:
        _disk(alloc, cluster)  # takes minor 0 on node1 and node2
        disk = _disk(alloc, cluster, p=0, s=1)
        disk.logical_id[4] = 7  # the secondary's minor differs from the primary's
    p, s = cluster.nodes[0], cluster.nodes[1]
    on_p = drbd.node_disk_spec(cluster.cfg, disk, p.uuid)
    on_s = drbd.node_disk_spec(cluster.cfg, disk, s.uuid)
    # node2 has a secondary (replication) IP: DRBD uses it, not the primary IP
    assert on_p.dynamic_params == {"local_ip": "192.0.2.1", "remote_ip": "198.51.100.2",
                                      "local_minor": 1, "remote_minor": 7}
    assert on_s.dynamic_params == {"local_ip": "198.51.100.2", "remote_ip": "192.0.2.1",
                                      "local_minor": 7, "remote_minor": 1}
    assert [c.logical_id[1] for c in on_p.children or []] == [
        f"{disk.uuid}.disk0_data", f"{disk.uuid}.disk0_meta"]
    # cluster-level -D drbd:resync-rate=1000 reaches the node, the rest are defaults
    assert on_p.params["resync-rate"] == 1000
    assert on_p.params["protocol"] == "C"
    with pytest.raises(errors.InternalError, match="no side"):
        drbd.node_disk_spec(cluster.cfg, disk, cluster.nodes[2].uuid)


def test_node_builds_the_device_from_the_master_spec(cluster: Cluster) -> None:
    with drbd.allocating(cluster.cfg) as alloc:
        disk = _disk(alloc, cluster)
    spec = drbd.node_disk_spec(cluster.cfg, disk, cluster.nodes[1].uuid)
    dev = node_drbd.from_spec(spec.to_dict(), {"name": "node2.example.com"})
    assert dev.path == "/dev/drbd0"
    assert (dev.local_ip, dev.remote_ip, dev.port) == ("198.51.100.2", "192.0.2.1", 11000)
    assert dev.data.path == f"/dev/xenvg/{disk.uuid}.disk0_data"


def test_a_plain_disk_becomes_the_data_side_of_a_mirror(cluster: Cluster) -> None:
    plain = objects.Disk(dev_type=constants.DT_PLAIN, size=512, logical_id=["xenvg", "x.disk0"],
                         nodes=[cluster.nodes[0].uuid], iv_name="disk/0", name="root")
    with drbd.allocating(cluster.cfg) as alloc:
        disk = drbd.drbd_disk_of(plain, cluster.nodes[1], alloc, cluster.nodes[0], 0)
    assert (disk.uuid, disk.name, disk.size) == (plain.uuid, "root", 512)
    assert disk.children[0].logical_id == ["xenvg", "x.disk0"]  # kept as it is: no copy
    assert disk.children[1].logical_id == ["xenvg", f"{plain.uuid}.disk0_meta"]


# --- split brain from the kernel log --------------------------------------------------------

def test_split_brain_is_found_in_the_real_kernel_log() -> None:
    text = (FIXTURES / "kmsg-split-brain.txt").read_text()
    before, _, after = text.partition("##### resolved by hand")
    assert node_drbd.split_brain_minors(before) == {0}
    # resolved by hand with --discard-my-data: connected since, no longer a split brain
    assert node_drbd.split_brain_minors(text) == set()
    assert node_drbd.split_brain_minors(after) == set()


def test_split_brain_of_one_minor_is_not_another_minors() -> None:
    log = ("block drbd3: Split-Brain detected but unresolved, dropping connection!\n"
           "drbd resource4: conn( WFReportParams -> Connected ) pdsk( DUnknown -> UpToDate )\n")
    assert node_drbd.split_brain_minors(log) == {3}


# --- replace-disks -p/-s on the node --------------------------------------------------------

VERSION = "version: 8.4.11 (api:1/proto:86-101)\n"


def _proc(cs: str, ds: str) -> str:
    return VERSION + f" 3: cs:{cs} ro:Secondary/Primary ds:{ds} C r-----\n    ns:0 nr:0\n"


def _dev(fake: FakeRunner, proc: str, detached: str | None = None) -> node_drbd.DrbdDisk:
    """A device whose /proc/drbd line is ``proc``, then ``detached`` once detached."""
    from cardume.node.storage.lvm import LogicalVolume, LvmTool
    tool = LvmTool(fake, udev=True)
    data = LogicalVolume(["xenvg", "u1.disk0_data"], 256, {}, tool=tool)
    meta = LogicalVolume(["xenvg", "u1.disk0_meta"], 128, {}, tool=tool)
    return node_drbd.DrbdDisk(["n1", "n2", 11000, 3, 3, "s3cret"], 256, {}, data=data,
                              meta=meta, local_ip="192.0.2.2", remote_ip="192.0.2.1",
                              local_minor=3, runner=fake,
                              read_proc=lambda: detached if detached and any(
                                  a[:2] == ["drbdsetup", "detach"] for a in fake.argvs)
                              else proc)


def test_replace_local_keeps_the_old_volumes_until_the_caller_removes_them() -> None:
    fake = FakeRunner(default=(0, "", ""))
    fake.on(["vgs"], stdout="  xenvg|4000.00|3000.00\n")
    fake.on(["lvs"], stdout="  u1.disk0_data|256.00|-wi-ao----\n"
                            "  u1.disk0_meta|128.00|-wi-ao----\n")
    dev = _dev(fake, _proc("Connected", "UpToDate/UpToDate"),
               detached=_proc("Connected", "Diskless/UpToDate"))
    old = dev.replace_local("_replaced-1")
    assert old == [["xenvg", "u1.disk0_data_replaced-1"], ["xenvg", "u1.disk0_meta_replaced-1"]]
    steps = [[a for a in argv if not a.startswith(("--config", "devices {", "devices{"))][:2]
             for argv in fake.argvs if argv[0] not in ("vgs", "lvs")]
    assert steps == [["drbdsetup", "detach"], ["lvrename", "xenvg"], ["lvrename", "xenvg"],
                     ["lvcreate", "--yes"], ["lvcreate", "--yes"], ["drbdmeta", "--force"],
                     ["lvchange", "-ay"], ["lvchange", "-ay"],
                     ["drbdmeta", "/dev/drbd3"], ["drbdsetup", "attach"]]
    renamed = [argv[-2:] for argv in fake.commands("lvrename")]
    assert renamed == [["u1.disk0_data", "u1.disk0_data_replaced-1"],
                       ["u1.disk0_meta", "u1.disk0_meta_replaced-1"]]
    assert fake.commands("lvremove") == []  # nothing is lost before the new copy is complete


def test_replace_local_refuses_without_a_good_peer() -> None:
    for proc, reason in ((_proc("StandAlone", "UpToDate/DUnknown"), "not connected"),
                         (_proc("SyncTarget", "Inconsistent/Inconsistent"), "not up to date")):
        fake = FakeRunner(default=(0, "", ""))
        with pytest.raises(errors.WrongState, match=reason):
            _dev(fake, proc).replace_local("_replaced-1")
        assert fake.calls == []


def test_create_on_existing_data_only_adds_the_metadata() -> None:
    fake = FakeRunner(default=(0, "", ""))
    fake.on(["vgs"], stdout="  xenvg|4000.00|3000.00\n")
    fake.on(["lvs"], stdout="  u1.disk0_data|256.00|-wi-a-----\n")
    _dev(fake, VERSION).create(data_exists=True)
    created = [argv[-2] for argv in fake.commands("lvcreate")]
    assert created == ["u1.disk0_meta"]
    assert fake.commands("drbdmeta")[0][-1] == "create-md"
    assert fake.commands("lvremove") == []
