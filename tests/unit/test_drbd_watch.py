"""Watching DRBD replication from the master: QueryDrbd's data (cardume.master.drbd_query, with a
fake node RPC answering from real /proc/drbd samples), and what gnt-instance watch-disks,
gnt-instance info and gnt-node list-drbd print from it (cardume.cli.drbd).

The statuses are parsed from the DRBD 8.4.11 captures of the QA cluster
(tests/fixtures/drbd); this machine has no DRBD."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fakes_kit import DRBD_FIXTURES, FakeClient, drbd_sections

from cardume import errors, objects
from cardume.cli import drbd as view
from cardume.cli import instance, instance_info, main
from cardume.config.store import ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.master.drbd_query import query_drbd
from cardume.node.storage.drbd import parse_proc_drbd
from cardume.rpc.calls import NodeCalls

SECRET = "5ecre7" * 6


def sample_text(part: str, name: str = "proc-drbd-samples.txt") -> str:
    [text] = [t for h, t in drbd_sections(name).items() if part in h]
    return text


def status(part: str, minor: int = 0, name: str = "proc-drbd-samples.txt",
           swap: tuple[str, str] | None = None) -> dict[str, Any]:
    """Minor 0 of a real sample, renumbered; ``swap`` rewrites its state line first (the
    captures hold the SyncSource side only: its SyncTarget peer shows the same progress)."""
    text = sample_text(part, name)
    if swap:
        text = text.replace(*swap)
    found = parse_proc_drbd(text)[0]
    found["minor"] = minor
    return found


SYNCING = "during initial sync, t+4.4s"  # 50.8 %, 32,512 K/s, 0:00:04
TARGET = ("cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent",
          "cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate")
PEER_IN_SYNC = "peer after sync"  # Connected Secondary/Primary UpToDate/UpToDate
PRIMARY_IN_SYNC = "after write, connected"  # Connected Primary/Secondary UpToDate/UpToDate
STANDALONE = "after disconnect (drbd1 Secondary, StandAlone)"
WFCONNECTION = "after hard failover"


# --- pieces of text -------------------------------------------------------------------------

def test_progress_bar_is_drawn_as_proc_drbd_draws_it() -> None:
    seen = 0
    for name in sorted(os.listdir(DRBD_FIXTURES)):
        for text in drbd_sections(name).values():
            bar = re.search(r"(\[[=>.]+\]) sync'ed", text)
            if bar:
                seen += 1
                st = parse_proc_drbd(text)[0]
                assert view.progress_bar(st["sync_percent"]) == bar.group(1)
    assert seen >= 10


def test_sync_progress_line_from_a_real_sample() -> None:
    assert view.sync_progress(status(SYNCING)) == \
        "[=========>..........] 50.8%  31.8 MiB/s  0:00:04 left"
    assert view.sync_progress(status(PRIMARY_IN_SYNC)) is None
    assert view.format_left(3725) == "1:02:05"
    assert view.format_speed(512) == "512 KiB/s"


# --- QueryDrbd on the master ----------------------------------------------------------------

class FakeRpc(NodeCalls):
    """Answers drbd_status as a node daemon does, from a table of /proc/drbd statuses per
    node; a node listed in ``down`` does not answer."""

    def __init__(self, tables: dict[str, dict[int, dict[str, Any]]],
                 down: tuple[str, ...] = ()) -> None:
        self.tables, self.down = tables, down
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def call(self, node: objects.Node, call: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        self.calls.append((node.name, call, dict(args or {})))
        if node.name in self.down:
            raise errors.RpcError(f"node {node.name}: connection refused", node=node.name)
        table = self.tables.get(node.name, {})
        wanted = (args or {}).get("minors")
        minors = table if wanted is None else {m: table[m] for m in wanted if m in table}
        return {"version": "8.4.11", "minors": {str(m): st for m, st in minors.items()}}


def drbd_disk(pnode: objects.Node, snode: objects.Node, port: int, pminor: int,
              sminor: int, index: int = 0) -> objects.Disk:
    return objects.Disk(dev_type="drbd", size=256, iv_name=f"disk/{index}",
                        nodes=[pnode.uuid, snode.uuid],
                        logical_id=[pnode.uuid, snode.uuid, port, pminor, sminor, SECRET],
                        children=[objects.Disk(dev_type="plain", size=256,
                                               logical_id=["xenvg", f"d{port}_data"]),
                                  objects.Disk(dev_type="plain", size=128,
                                               logical_id=["xenvg", f"d{port}_meta"])])


@pytest.fixture
def cfg(tmp_path: Path) -> ConfigWriter:
    """node1..node3 (node3 offline); vm1 node1→node2 resyncing; vm2 created on node1 with
    node2, failed over to node2; vm3 node1→node3; vm4 plain."""
    cfg = ConfigWriter(ConfigStore(os.path.join(tmp_path, "config.db")))
    group = objects.NodeGroup(name="default")
    n1, n2, n3 = (objects.Node(name=f"node{i}", primary_ip=f"127.0.0.{i}", group=group.uuid,
                               offline=(i == 3)) for i in (1, 2, 3))
    cluster = objects.Cluster(cluster_name="c", master_node=n1.uuid)
    vm1 = objects.Instance(name="vm1", primary_node=n1.uuid, disk_template="drbd",
                           disks=[drbd_disk(n1, n2, 11000, 0, 0)])
    vm2 = objects.Instance(name="vm2", primary_node=n2.uuid, disk_template="drbd",
                           disks=[drbd_disk(n1, n2, 11001, 1, 1)])
    vm2.disks[0].nodes = [n2.uuid, n1.uuid]
    vm3 = objects.Instance(name="vm3", primary_node=n1.uuid, disk_template="drbd",
                           disks=[drbd_disk(n1, n3, 11002, 2, 0)])
    vm4 = objects.Instance(name="vm4", primary_node=n1.uuid, disk_template="plain",
                           disks=[objects.Disk(dev_type="plain", size=64, iv_name="disk/0",
                                               logical_id=["xenvg", "vm4"],
                                               nodes=[n1.uuid])])
    asyncio.run(cfg.commit(add=[cluster, group, n1, n2, n3, vm1, vm2, vm3, vm4]))
    return cfg


def node_tables() -> dict[str, dict[int, dict[str, Any]]]:
    return {
        "node1": {0: status(SYNCING, 0), 1: status(PEER_IN_SYNC, 1),
                  2: status(WFCONNECTION, 2), 7: status(STANDALONE, 7)},
        "node2": {0: status(SYNCING, 0, swap=TARGET), 1: status(PRIMARY_IN_SYNC, 1)},
    }


def query(cfg: ConfigWriter, rpc: FakeRpc, instances: list[str] | None = None,
          nodes: list[str] | None = None) -> dict[str, Any]:
    data = asyncio.run(query_drbd(cfg, rpc, instances, nodes))
    return json.loads(json.dumps(data))  # what crosses the socket


def test_query_asks_each_node_once_for_the_minors_it_needs(cfg: ConfigWriter) -> None:
    rpc = FakeRpc(node_tables())
    data = query(cfg, rpc)
    # one drbd_status per online node; the offline node3 is not contacted
    assert sorted(rpc.calls) == [("node1", "drbd_status", {"minors": [0, 1, 2]}),
                                 ("node2", "drbd_status", {"minors": [0, 1]})]
    assert [i["name"] for i in data["instances"]] == ["vm1", "vm2", "vm3"]  # no plain vm4
    vm1, vm2, vm3 = data["instances"]
    [disk] = vm1["disks"]
    assert (disk["iv_name"], disk["port"], disk["index"]) == ("disk/0", 11000, 0)
    primary, secondary = disk["sides"]
    assert (primary["node"], primary["role"], primary["minor"]) == ("node1", "primary", 0)
    assert primary["status"]["cstate"] == "SyncSource"
    assert primary["status"]["sync_percent"] == 50.8
    assert (secondary["node"], secondary["role"]) == ("node2", "secondary")
    assert secondary["status"]["cstate"] == "SyncTarget"
    # after the failover the primary is node2, though logical_id still starts with node1
    assert [(s["node"], s["role"], s["status"]["role"]) for s in vm2["disks"][0]["sides"]] \
        == [("node2", "primary", "Primary"), ("node1", "secondary", "Secondary")]
    # node3 is offline: its side carries the reason, not a status
    assert vm3["disks"][0]["sides"][1] == {"node": "node3", "role": "secondary", "minor": 0,
                                          "status": None,
                                          "error": "node node3 is marked offline"}
    assert data["nodes"]["node1"]["orphans"] is None  # not asked: minors filtered
    assert SECRET not in json.dumps(data)


def test_query_for_a_node_finds_its_orphans(cfg: ConfigWriter) -> None:
    rpc = FakeRpc(node_tables())
    data = query(cfg, rpc, nodes=["node1"])
    # the named node is asked for every minor; its peers for theirs only
    assert sorted(rpc.calls) == [("node1", "drbd_status", {}),
                                 ("node2", "drbd_status", {"minors": [0, 1]})]
    assert data["asked"] == ["node1"]
    [orphan] = data["nodes"]["node1"]["orphans"]
    assert orphan["minor"] == 7 and orphan["status"]["cstate"] == "StandAlone"
    assert data["nodes"]["node2"]["orphans"] is None


def test_query_tolerates_a_node_that_does_not_answer(cfg: ConfigWriter) -> None:
    data = query(cfg, FakeRpc(node_tables(), down=("node2",)), ["vm1"])
    primary, secondary = data["instances"][0]["disks"][0]["sides"]
    assert primary["status"]["cstate"] == "SyncSource" and primary["error"] is None
    assert secondary["status"] is None
    assert secondary["error"] == "node node2: connection refused"


def test_query_refuses_an_unknown_name_naming_it(cfg: ConfigWriter) -> None:
    with pytest.raises(errors.UnknownEntity, match="instance 'vm9' is not known"):
        query(cfg, FakeRpc({}), ["vm1", "vm9"])
    with pytest.raises(errors.UnknownEntity, match="node 'node9' is not known"):
        query(cfg, FakeRpc({}), nodes=["node9"])


def test_query_minor_not_set_up_is_none(cfg: ConfigWriter) -> None:
    tables = node_tables()
    del tables["node2"][1]  # vm2's disk is down on its primary
    data = query(cfg, FakeRpc(tables), ["vm2"])
    primary, secondary = data["instances"][0]["disks"][0]["sides"]
    assert (primary["node"], primary["status"], primary["error"]) == ("node2", None, None)
    assert secondary["status"]["cstate"] == "Connected"


# --- gnt-instance watch-disks ---------------------------------------------------------------

def disk_data(primary: dict[str, Any] | None, secondary: dict[str, Any] | None,
              error: str | None = None) -> dict[str, Any]:
    return {"instances": [{"name": "vm1", "primary": "node1", "secondaries": ["node2"],
                           "disk_template": "drbd", "disks": [{
                               "index": 0, "iv_name": "disk/0", "name": None, "uuid": "d1",
                               "size": 256, "port": 11000, "sides": [
                                   {"node": "node1", "role": "primary", "minor": 0,
                                    "status": primary, "error": None},
                                   {"node": "node2", "role": "secondary", "minor": 0,
                                    "status": secondary, "error": error}]}]}],
            "nodes": {}, "asked": []}


def in_sync() -> dict[str, Any]:
    return disk_data(status(PRIMARY_IN_SYNC), status(PEER_IN_SYNC))


def syncing() -> dict[str, Any]:
    return disk_data(status(SYNCING), status(SYNCING, swap=TARGET))


def test_watch_snapshot_during_a_resync() -> None:
    text = view.format_snapshot(syncing(), interval=2.0)
    title, *table = text.splitlines()
    assert title.startswith("DRBD at ")
    assert title.endswith(": 1 disk: 1 syncing (every 2s, Ctrl-C to stop)")
    assert table == [
        "Instance Disk   Node  Minor Role      State      Disk/Peer",
        "vm1      disk/0 node1     0 primary   SyncSource UpToDate/Inconsistent",
        "    [=========>..........] 50.8%  31.8 MiB/s  0:00:04 left",
        "vm1      disk/0 node2     0 secondary SyncTarget Inconsistent/UpToDate",
        "    [=========>..........] 50.8%  31.8 MiB/s  0:00:04 left",
    ]


def test_watch_snapshot_without_headers_and_a_node_down() -> None:
    data = disk_data(status(WFCONNECTION), None, error="node node2: connection refused")
    assert view.format_snapshot(data, headers=False).splitlines() == [
        "vm1 disk/0 node1 0 primary   WFConnection UpToDate/DUnknown",
        "vm1 disk/0 node2 0 secondary (no data)    -",
        "    ! node node2: connection refused",
    ]


class Out(io.StringIO):
    pass


def watch(frames: list[Any], tty: bool = False, **options: Any) -> tuple[int, str, list[float]]:
    """run_watch over a list of QueryDrbd answers (an exception in it is raised instead)."""
    out, sleeps = Out(), []
    answers = iter(frames)

    def fetch() -> dict[str, Any]:
        answer = next(answers)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]

    values = {"interval": 2.0, "once": False, "until_synced": False, "headers": True,
              "names": [], **options}
    code = view.run_watch(fetch, out=out, tty=tty, sleep=sleeps.append,
                          clock=lambda: 100.0, **values)
    return code, out.getvalue(), sleeps


def test_until_synced_exits_0_when_the_resync_ends() -> None:
    code, out, sleeps = watch([syncing(), syncing(), in_sync()], until_synced=True)
    assert code == 0
    assert sleeps == [2.0, 2.0]
    frames = out.split("\n\n")  # not a terminal: frames follow one another
    assert len(frames) == 3 and "\x1b" not in out
    assert "1 syncing" in frames[0] and "1 in sync" in frames[2]
    assert "vm1      disk/0 node2     0 secondary Connected UpToDate/UpToDate" in frames[2]


def test_on_a_terminal_each_frame_replaces_the_last() -> None:
    code, out, _ = watch([syncing(), in_sync()], tty=True, until_synced=True)
    assert code == 0 and out.count(view.CLEAR_SCREEN) == 2


@pytest.mark.parametrize("data, reason", [
    (disk_data(status(STANDALONE), status(PEER_IN_SYNC)),
     "disk disk/0 of vm1 on node1 is StandAlone"),
    (disk_data(status(WFCONNECTION), None, error="node node2 is marked offline"),
     "disk disk/0 of vm1 on node2: no status (node node2 is marked offline)"),
    (disk_data(status(PRIMARY_IN_SYNC), None),
     "disk disk/0 of vm1 on node2 is not active"),
])
def test_until_synced_fails_at_once_when_waiting_cannot_help(data: dict[str, Any],
                                                            reason: str) -> None:
    with pytest.raises(errors.WrongState) as caught:
        watch([data, in_sync()], until_synced=True)
    assert str(caught.value).startswith(reason)
    assert "\n" not in str(caught.value)


def test_until_synced_waits_through_a_reconnect() -> None:
    waiting = disk_data(status(WFCONNECTION), status(PEER_IN_SYNC))
    code, _, sleeps = watch([waiting, syncing(), in_sync()], until_synced=True)
    assert code == 0 and len(sleeps) == 2


def test_once_prints_one_snapshot() -> None:
    code, out, sleeps = watch([syncing()], once=True, headers=False)
    assert code == 0 and sleeps == []
    assert out.splitlines()[0] == "vm1 disk/0 node1 0 primary   SyncSource UpToDate/Inconsistent"
    with pytest.raises(errors.WrongState, match="not in sync yet: 1 disk: 1 syncing"):
        watch([syncing()], once=True, until_synced=True)


def test_ctrl_c_ends_the_watch_quietly() -> None:
    code, out, _ = watch([syncing(), KeyboardInterrupt()])
    assert code == 0 and "Traceback" not in out and "SyncSource" in out


def test_no_drbd_instances_says_so() -> None:
    code, out, _ = watch([{"instances": [], "nodes": {}, "asked": []}])
    assert (code, out) == (0, "No instances with drbd disks.\n")


def test_a_named_instance_without_drbd_disks_is_refused() -> None:
    plain = {"instances": [{"name": "vm4", "disk_template": "plain", "disks": []}]}
    with pytest.raises(errors.WrongInput, match="instance 'vm4' has no drbd disks"):
        watch([plain], names=["vm4"])


def parse_instance(*argv: str) -> Any:
    import argparse
    parser = argparse.ArgumentParser(prog="gnt-instance")
    instance.build(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


def test_watch_options() -> None:
    args = parse_instance("watch-disks", "vm1", "vm2")
    assert (args.instances, args.interval, args.once) == (["vm1", "vm2"], 2.0, False)
    assert parse_instance("watch-disks", "--interval", "0.5").interval == 0.5
    for bad in ("0", "-1", "abc", "nan", "inf"):
        with pytest.raises(errors.WrongInput, match="expected a positive number"):
            parse_instance("watch-disks", "--interval", bad)


# --- gnt-instance info ----------------------------------------------------------------------

NODES = [{"name": "node1", "uuid": "u1", "group": "default", "group.uuid": "g-1"},
         {"name": "node2", "uuid": "u2", "group": "default", "group.uuid": "g-1"}]
DRBD_ROW: dict[str, Any] = {
    "name": "vm1", "uuid": "6c79", "serial_no": 3, "ctime": None, "mtime": None,
    "admin_state": "up", "oper_state": True, "pnode": "node1", "snodes": ["node2"],
    "os": "trivial+default", "osparams": {}, "custom_osparams": {}, "network_port": None,
    "hypervisor": "fake", "hvparams": {}, "custom_hvparams": {}, "beparams": {},
    "custom_beparams": {}, "nics": [], "disk_template": "drbd",
    "disks": [{"iv_name": "disk/0", "name": None, "uuid": "d1", "size": 256, "mode": "rw",
               "dev_type": "drbd", "logical_id": ["u1", "u2", 11000, 0, 0, SECRET],
               "path": None,
               "children": [{"dev_type": "plain", "size": 256, "path": "/dev/xenvg/d1_data",
                             "logical_id": ["xenvg", "d1_data"]},
                            {"dev_type": "plain", "size": 128, "path": "/dev/xenvg/d1_meta",
                             "logical_id": ["xenvg", "d1_meta"]}]}],
}


def info_text(drbd: dict[str, Any] | None, static: bool = False) -> str:
    entry = drbd["instances"][0] if drbd else None
    return instance_info.format_info([instance_info.format_instance_info(DRBD_ROW, NODES, static,
                                                               entry)])


def disk_block(text: str) -> list[str]:
    return text.split("  Disks: \n", 1)[1].splitlines()


def test_info_drbd_disk_in_sync() -> None:
    text = info_text(in_sync())
    assert disk_block(text) == [
        "    - disk/0: drbd, size 256M",
        "      access mode: rw",
        "      nodeA: node1, minor=0",
        "      nodeB: node2, minor=0",
        "      port: 11000",
        "      on primary: /dev/drbd0 (147:0) in sync, status ok",
        "      on secondary: /dev/drbd0 (147:0) in sync, status ok",
        "      drbd: ",
        "        - node: node1 (primary, minor 0)",
        "          role: Primary/Secondary",
        "          connection: Connected",
        "          disk: UpToDate/UpToDate",
        "        - node: node2 (secondary, minor 0)",
        "          role: Secondary/Primary",
        "          connection: Connected",
        "          disk: UpToDate/UpToDate",
        "      name: None",
        "      UUID: d1",
        "      child devices: ",
        "        - child 0: plain, size 256M",
        "          logical_id: xenvg/d1_data",
        "          on primary: /dev/xenvg/d1_data (N/A:N/A)",
        "          on secondary: /dev/xenvg/d1_data (N/A:N/A)",
        "        - child 1: plain, size 128M",
        "          logical_id: xenvg/d1_meta",
        "          on primary: /dev/xenvg/d1_meta (N/A:N/A)",
        "          on secondary: /dev/xenvg/d1_meta (N/A:N/A)",
    ]
    assert SECRET not in text


def test_info_drbd_disk_resyncing() -> None:
    lines = disk_block(info_text(syncing()))
    assert "      on primary: /dev/drbd0 (147:0) *RECOVERING* 50.8%, ETA 4s, " \
           "status *DEGRADED*" in lines
    assert "      on secondary: /dev/drbd0 (147:0) *RECOVERING* 50.8%, ETA 4s, " \
           "status *DEGRADED*" in lines
    assert lines.count("          resync: 50.8% done, 31.8 MiB/s, 0:00:04 left") == 2
    assert "          connection: SyncTarget" in lines


def test_info_drbd_secondary_unreachable() -> None:
    data = disk_data(status(WFCONNECTION), None, error="node node2: connection refused")
    lines = disk_block(info_text(data))
    assert "      on primary: /dev/drbd0 (147:0) *NOT CONNECTED* (WFConnection), " \
           "status *DEGRADED*" in lines
    assert "      on secondary: no data (node node2: connection refused)" in lines
    assert lines[lines.index("        - node: node2 (secondary, minor 0)") + 1] == \
        "          error: node node2: connection refused"


def test_info_static_shows_only_the_config() -> None:
    lines = disk_block(info_text(None, static=True))
    assert lines[4] == "      port: 11000"
    assert not any("on primary" in line or "drbd:" in line for line in lines)


# --- gnt-node list-drbd ---------------------------------------------------------------------

def test_list_drbd_rows_with_an_orphan(cfg: ConfigWriter) -> None:
    data = query(cfg, FakeRpc(node_tables()), nodes=["node1"])
    rows, notes = view.list_drbd_rows(data, "node1")
    assert rows == [["node1", 0, "vm1", 0, "primary", "node2"],
                    ["node1", 1, "vm2", 0, "secondary", "node2"],
                    ["node1", 2, "vm3", 0, "primary", "node3"],
                    ["node1", 7, "-", "-", "-", "-"]]
    [note] = notes
    assert note.startswith("Note: minor 7 on node1 (StandAlone, UpToDate/DUnknown) "
                           "belongs to no disk of the cluster")


@pytest.fixture
def master(cfg: ConfigWriter, fake_client: type[FakeClient]) -> type[FakeClient]:
    """The master socket: QueryDrbd runs the real assembly on a fake RPC."""
    rpc = FakeRpc(node_tables())
    fake_client.replies["QueryDrbd"] = lambda *args: query(cfg, rpc, *args)
    return fake_client


def test_gnt_node_list_drbd(master: type[FakeClient],
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run("gnt-node", ["list-drbd", "node1"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "Node  Minor Instance Disk Role      PeerNode",
        "node1     0 vm1         0 primary   node2",
        "node1     1 vm2         0 secondary node2",
        "node1     2 vm3         0 primary   node3",
        "node1     7 -           - -         -",
    ]
    assert "minor 7 on node1" in err
    assert main.run("gnt-node", ["list-drbd", "--no-headers", "--separator=|",
                                 "node2"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["node2|0|vm1|0|secondary|node1", "node2|1|vm2|0|primary|node1"]
    assert err == ""


def test_gnt_node_list_drbd_unknown_node(master: type[FakeClient],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run("gnt-node", ["list-drbd", "node9"]) != 0
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "node 'node9' is not known" in err


def test_gnt_instance_watch_disks_once(master: type[FakeClient],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run("gnt-instance", ["watch-disks", "--once", "--no-headers", "vm1"]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines() == [
        "vm1 disk/0 node1 0 primary   SyncSource UpToDate/Inconsistent",
        "    [=========>..........] 50.8%  31.8 MiB/s  0:00:04 left",
        "vm1 disk/0 node2 0 secondary SyncTarget Inconsistent/UpToDate",
        "    [=========>..........] 50.8%  31.8 MiB/s  0:00:04 left",
    ]
    # the cluster-wide view: vm3's secondary is on the offline node3
    assert main.run("gnt-cluster", ["watch-disks", "--once", "--until-synced"]) == 1
    out, err = capsys.readouterr()
    assert "vm2" in out and "vm3" in out
    assert err == ("Failure: wrong_state: disk disk/0 of vm3 on node3: no status "
                   "(node node3 is marked offline)\n")


def test_instance_queries_never_carry_the_drbd_secret(cfg: ConfigWriter) -> None:
    from cardume.master import fields_instance
    disks_field = next(f for f in fields_instance.instance_fields() if f.name == "disks")
    vm1 = cfg.expand_instance("vm1")

    class NoPaths:
        def disk_path(self, inst: Any, disk: Any) -> None:
            return None

    [shown] = disks_field.get(NoPaths(), vm1)
    assert shown["logical_id"][2:5] == [11000, 0, 0]
    assert SECRET not in json.dumps(shown)
