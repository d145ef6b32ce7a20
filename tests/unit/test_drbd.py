"""The drbd template: /proc/drbd parsing of the real DRBD 8.4.11 samples captured on the QA
cluster (tests/fixtures/drbd, copied from shared/research/qa-cluster/outputs), and the exact
drbdsetup/drbdmeta/LVM command lines of every operation, through the FakeRunner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes_kit import DRBD_FIXTURES, drbd_sections

from cardume import errors
from cardume.node.cmd import FakeRunner
from cardume.node.storage import drbd
from cardume.node.storage.drbd import DrbdDisk, parse_proc_drbd, parse_version
from cardume.node.storage.lvm import LogicalVolume, LvmTool

SECRET = "0123456789abcdef0123456789abcdef01234567"
VERSION = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: F73C670A7EC572DB9CF3E5B \n"


def one(name: str, heading_part: str) -> dict[str, Any]:
    matches = [text for heading, text in drbd_sections(name).items() if heading_part in heading]
    assert len(matches) == 1, heading_part
    status = parse_proc_drbd(matches[0])
    assert list(status) == [0]
    return status[0]


# --- /proc/drbd -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["proc-drbd-samples.txt", "drbd-scenario-256M.txt",
                                  "drbd-scenario-256M-run2.txt",
                                  "drbd-scenario-256M-rootfs.txt",
                                  "drbd-scenario-256M-tb64.txt"])
def test_every_real_sample_parses_completely(name: str) -> None:
    blocks = drbd_sections(name)
    assert len(blocks) >= 10
    for heading, text in blocks.items():
        assert parse_version(text) == {"version": "8.4.11", "major": 8, "minor": 4,
                                       "patch": 11, "api": 1, "proto": "86-101"}
        status = parse_proc_drbd(text)
        assert list(status) == [0], heading
        minor = status[0]
        for key in ("cstate", "role", "peer_role", "disk", "peer_disk", "io_flags"):
            assert minor[key], (heading, key)
        assert minor["oos_kib"] == minor["counters"]["oos"] >= 0
        assert set(minor["counters"]) >= {"ns", "nr", "dw", "dr", "al", "bm", "oos"}
        if "sync'ed:" in text:
            assert minor["cstate"] == "SyncSource" and minor["resyncing"]
            assert 0 < minor["sync_percent"] < 100
            assert minor["sync_left_kib"] == minor["oos_kib"]
            # the first sample of a sync shows "speed: 0 (0)" (rootfs capture)
            assert minor["sync_speed_kib_s"] >= 0 and minor["sync_finish_s"] is not None
        else:
            assert minor["sync_percent"] is None and minor["sync_speed_kib_s"] is None


def test_three_node_capture_parses() -> None:
    text = (DRBD_FIXTURES / "3nodes-hub.txt").read_text()
    status = parse_proc_drbd(text)[0]
    assert status["cstate"] == "Connected" and status["counters"]["wo"] == "f"
    assert not status["degraded"]


def test_connected_before_the_first_primary() -> None:
    status = one("proc-drbd-samples.txt", "connected, before primary")
    assert (status["cstate"], status["role"], status["peer_role"]) == \
        ("Connected", "Secondary", "Secondary")
    assert (status["disk"], status["peer_disk"]) == ("Inconsistent", "Inconsistent")
    assert status["protocol"] == "C" and status["io_flags"] == "r-----"
    assert status["oos_kib"] == 261888
    assert status["connected"] and not status["resyncing"] and status["degraded"]


def test_sync_source_with_percent_speed_and_finish() -> None:
    status = one("proc-drbd-samples.txt", "t+4.4s since primary --force")
    assert status["cstate"] == "SyncSource" and status["role"] == "Primary"
    assert (status["disk"], status["peer_disk"]) == ("UpToDate", "Inconsistent")
    assert status["sync_percent"] == 50.8
    assert (status["sync_left_kib"], status["sync_total_kib"]) == (132096, 262144)
    assert status["sync_finish_s"] == 4
    assert (status["sync_speed_kib_s"], status["sync_speed_avg_kib_s"]) == (32512, 32512)
    assert status["connected"] and status["resyncing"] and status["degraded"]
    assert status["counters"]["lo"] == 4 and status["counters"]["ua"] == 4


def test_connected_and_in_sync() -> None:
    status = one("proc-drbd-samples.txt", "peer after sync")
    assert (status["role"], status["peer_role"]) == ("Secondary", "Primary")
    assert (status["disk"], status["peer_disk"]) == ("UpToDate", "UpToDate")
    assert status["counters"]["nr"] == 262144 and status["oos_kib"] == 0
    assert status["connected"] and not status["degraded"] and status["local_uptodate"]


def test_standalone_after_disconnect_has_no_protocol() -> None:
    primary = one("proc-drbd-samples.txt", "after disconnect (drbd2 Primary")
    assert primary["cstate"] == "StandAlone" and primary["protocol"] is None
    assert (primary["role"], primary["peer_role"]) == ("Primary", "Unknown")
    assert (primary["disk"], primary["peer_disk"]) == ("UpToDate", "DUnknown")
    assert not primary["connected"] and primary["degraded"]
    degraded = one("proc-drbd-samples.txt", "degraded write of 32 MiB")
    assert degraded["oos_kib"] == 32768 and degraded["cstate"] == "StandAlone"


def test_wfconnection_after_the_peer_died() -> None:
    status = one("proc-drbd-samples.txt", "after hard failover")
    assert status["cstate"] == "WFConnection" and status["protocol"] == "C"
    assert (status["role"], status["peer_role"]) == ("Primary", "Unknown")
    assert not status["connected"] and status["degraded"] and status["local_uptodate"]


def test_incremental_resync_sample() -> None:
    status = one("proc-drbd-samples.txt", "during reconnect/resync t+1.2s")
    assert status["sync_percent"] == 44.5 and status["sync_total_kib"] == 32768
    assert status["sync_speed_kib_s"] == 12288 and status["sync_finish_s"] == 1


def test_formats_not_seen_on_the_qa_cluster() -> None:
    # Synthetic, in DRBD 8.4's documented format: an unconfigured minor, a SyncTarget with
    # "want:", sizes in M, and a diskless secondary.
    text = VERSION + (
        " 0: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----\n"
        "    ns:0 nr:1 dw:1 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:3145728\n"
        "\t[>....................] sync'ed:  1.6% (3072/3120)M\n"
        "\tfinish: 1:02:03 speed: 1,024 (2,048) want: 61,440 K/sec\n"
        " 1: cs:Unconfigured\n"
        " 2: cs:Connected ro:Secondary/Primary ds:Diskless/UpToDate C r-----\n")
    status = parse_proc_drbd(text)
    assert sorted(status) == [0, 1, 2]
    target = status[0]
    assert target["sync_percent"] == 1.6 and target["sync_left_kib"] == 3072 * 1024
    assert target["sync_finish_s"] == 3723 and target["sync_want_kib_s"] == 61440
    assert target["sync_speed_avg_kib_s"] == 2048 and target["resyncing"]
    assert status[1]["configured"] is False and status[1]["role"] is None
    assert status[2]["disk"] == "Diskless" and status[2]["degraded"]
    assert parse_proc_drbd("") == {} and parse_version("") is None


def test_missing_proc_drbd_is_an_environment_problem(tmp_path: Path) -> None:
    with pytest.raises(errors.EnvironmentProblem, match="not loaded"):
        drbd.read_proc_drbd(str(tmp_path / "nope"))
    assert drbd.list_minors(lambda: drbd.read_proc_drbd(str(tmp_path / "nope"))) == {}


# --- the device ---------------------------------------------------------------------------

class Proc:
    """A scripted /proc/drbd: each read returns the next text, the last one repeats."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts) or [VERSION]
        self.reads = 0

    def __call__(self) -> str:
        text = self.texts[min(self.reads, len(self.texts) - 1)]
        self.reads += 1
        return text


def proc_line(cs: str, ro: str = "Secondary/Secondary", ds: str = "UpToDate/UpToDate",
              minor: int = 3) -> str:
    return VERSION + f" {minor}: cs:{cs} ro:{ro} ds:{ds} C r-----\n    ns:0 nr:0 oos:0\n"


DATA = "/dev/xenvg/u1.disk0_data"
META = "/dev/xenvg/u1.disk0_meta"


def disk(fake: FakeRunner, proc: Proc | None = None, size: int = 256,
         **overrides: Any) -> DrbdDisk:
    tool = LvmTool(fake, udev=True)
    data = LogicalVolume(["xenvg", "u1.disk0_data"], size, {}, tool=tool)
    meta = LogicalVolume(["xenvg", "u1.disk0_meta"], 128, {}, tool=tool)
    kwargs: dict[str, Any] = {"local_ip": "192.168.77.1", "remote_ip": "192.168.77.2",
                              "local_minor": 3}
    kwargs.update(overrides)
    logical_id = kwargs.pop("logical_id", ["node1", "node2", 11000, 3, 5, SECRET])
    params = kwargs.pop("params", {"resync-rate": 61440, "protocol": "C"})
    return DrbdDisk(logical_id, size, params, data=data, meta=meta, runner=fake,
                    read_proc=proc or Proc(), sleep=lambda _: None, **kwargs)


def programs(fake: FakeRunner) -> list[list[str]]:
    """The calls, without LVM's --config argument."""
    return [[a for i, a in enumerate(argv) if not (i in (1, 2) and argv[1] == "--config")]
            for argv in fake.argvs]


def test_create_makes_both_lvs_and_the_metadata() -> None:
    fake = FakeRunner(default=(0, "", ""))
    fake.on(["vgs"], stdout="  xenvg|1020.00|764.00\n")
    dev = disk(fake)
    dev.create()
    assert programs(fake)[1:] == [
        ["vgs", "--noheadings", "--units", "m", "--nosuffix", "--separator=|", "-o",
         "vg_name,vg_size,vg_free", "xenvg"],
        ["lvcreate", "--yes", "--wipesignatures", "n", "-L256m", "-n", "u1.disk0_data",
         "xenvg"],
        ["vgs", "--noheadings", "--units", "m", "--nosuffix", "--separator=|", "-o",
         "vg_name,vg_size,vg_free", "xenvg"],
        ["lvcreate", "--yes", "--wipesignatures", "n", "-L128m", "-n", "u1.disk0_meta",
         "xenvg"],
        ["drbdmeta", "--force", "/dev/drbd3", "v08", META, "0", "create-md"]]
    assert fake.calls[-1].input == "yes\nyes\n"
    assert dev.path == "/dev/drbd3"


def test_create_refuses_when_data_and_meta_do_not_fit_together() -> None:
    fake = FakeRunner().on(["vgs"], stdout="  xenvg|1020.00|300.00\n")
    with pytest.raises(errors.InsufficientResources) as err:
        disk(fake, size=256).create()
    assert "xenvg" in err.value.message and "384 MiB needed" in err.value.message
    assert "300 MiB free" in err.value.message
    assert fake.commands("lvcreate") == []


def test_create_leaves_nothing_behind_when_the_metadata_fails() -> None:
    fake = FakeRunner(default=(0, "", ""))
    fake.on(["vgs"], stdout="  xenvg|1020.00|764.00\n")
    fake.on(["drbdmeta"], rc=20, stderr="Device '3' is configured!\n")
    with pytest.raises(errors.ExecError, match="Device '3' is configured"):
        disk(fake).create()
    removed = [argv[-1] for argv in fake.commands("lvremove")]
    assert removed == ["xenvg/u1.disk0_meta", "xenvg/u1.disk0_data"]


def test_create_removes_the_data_lv_when_the_meta_lv_fails() -> None:
    fake = FakeRunner(default=(0, "", ""))
    fake.on(["vgs"], stdout="  xenvg|1020.00|764.00\n")
    fake.on(["lvcreate"])
    fake.on(["lvcreate"], rc=5, stderr="  device-mapper: create ioctl failed\n")
    with pytest.raises(errors.ExecError, match="ioctl"):
        disk(fake).create()
    assert [argv[-1] for argv in fake.commands("lvremove")] == ["xenvg/u1.disk0_data"]
    assert fake.commands("drbdmeta") == []


def test_attach_and_connect_command_lines() -> None:
    fake = FakeRunner(default=(0, "", ""))
    proc = Proc(VERSION, proc_line("StandAlone", ds="UpToDate/DUnknown"))
    dev = disk(fake, proc)
    assert dev.assemble() == "/dev/drbd3"
    assert programs(fake) == [
        ["lvchange", "-ay", "xenvg/u1.disk0_data"],
        ["lvchange", "-ay", "xenvg/u1.disk0_meta"],
        ["drbdsetup", "new-resource", "resource3"],
        ["drbdsetup", "new-minor", "resource3", "3", "0"],
        ["drbdmeta", "/dev/drbd3", "v08", META, "0", "apply-al"],
        ["drbdsetup", "attach", "3", DATA, META, "0", "--on-io-error=detach", "--size=256m",
         "--c-plan-ahead=0", "--resync-rate=61440"],
        ["drbdsetup", "connect", "resource3", "ipv4:192.168.77.1:11000",
         "ipv4:192.168.77.2:11000", "--protocol=C", "--after-sb-0pri=discard-zero-changes",
         "--after-sb-1pri=consensus", "--after-sb-2pri=disconnect", "--cram-hmac-alg=sha1",
         f"--shared-secret={SECRET}"]]


def test_attach_options_follow_the_disk_parameters() -> None:
    fake = FakeRunner(default=(0, "", ""))
    params = {"dynamic-resync": True, "c-plan-ahead": 20, "c-fill-target": 0,
              "c-delay-target": 1, "c-max-rate": 61440, "c-min-rate": 4096,
              "disk-barriers": "bf", "meta-barriers": True, "disk-custom": "--al-extents=3389",
              "net-custom": "--ping-int=1 --ping-timeout=5", "protocol": "C"}
    dev = disk(fake, Proc(VERSION, proc_line("StandAlone")), params=params)
    dev.attach()
    attach = fake.commands("drbdsetup")[-1]
    assert attach[7:] == ["--size=256m", "--disk-barrier=no", "--disk-flushes=no",
                          "--md-flushes=no", "--c-plan-ahead=20", "--c-fill-target=0",
                          "--c-delay-target=1", "--c-max-rate=61440", "--c-min-rate=4096",
                          "--al-extents=3389"]
    dev.connect(dual_primary=True)
    assert fake.commands("drbdsetup")[-1][-3:] == ["--allow-two-primaries", "--ping-int=1",
                                                   "--ping-timeout=5"]
    with pytest.raises(errors.WrongInput, match="net-custom"):
        disk(FakeRunner(), Proc(proc_line("StandAlone")), params={"net-custom": "x; rm"}
             ).connect()


def test_attach_takes_the_minor_down_when_it_fails() -> None:
    fake = FakeRunner(default=(0, "", ""))
    fake.on(["drbdsetup", "attach"], rc=10, stderr="3: Failure: (114) Lower device is "
                                                    "already claimed.\n")
    with pytest.raises(errors.ExecError, match="already claimed"):
        disk(fake).attach()
    assert fake.commands("drbdsetup")[-1] == ["drbdsetup", "down", "resource3"]


def test_operations_are_idempotent_on_the_current_state() -> None:
    fake = FakeRunner()
    connected = proc_line("Connected", "Primary/Secondary")
    dev = disk(fake, Proc(connected))
    dev.attach()
    dev.connect()
    assert fake.calls == []  # already attached and connected: nothing to do
    dev = disk(fake, Proc(VERSION))
    dev.shutdown()
    dev.disconnect()
    dev.detach()
    assert fake.calls == []  # not configured: nothing to take down
    with pytest.raises(errors.WrongState, match="not set up"):
        dev.connect()


def test_roles_disconnect_detach_and_down() -> None:
    fake = FakeRunner(default=(0, "", ""))
    secondary, primary = proc_line("Connected"), proc_line("Connected", "Primary/Secondary")
    dev = disk(fake, Proc(secondary, secondary, primary, primary, primary, primary, primary))
    dev.primary(force=True)
    dev.primary()
    dev.primary()  # already primary: nothing to run
    dev.secondary()
    dev.disconnect()
    dev.detach()
    dev.shutdown()
    assert fake.argvs == [
        ["drbdsetup", "primary", "3", "--force"],
        ["drbdsetup", "primary", "3"],
        ["drbdsetup", "secondary", "3"],
        ["drbdsetup", "disconnect", "ipv4:192.168.77.1:11000", "ipv4:192.168.77.2:11000"],
        ["drbdsetup", "detach", "3"],
        ["drbdsetup", "down", "resource3"]]


def test_ipv6_addresses() -> None:
    fake = FakeRunner(default=(0, "", ""))
    dev = disk(fake, Proc(proc_line("StandAlone")), local_ip="fd00::1", remote_ip="fd00::2")
    dev.connect()
    assert fake.argvs[0][3:5] == ["ipv6:[fd00::1]:11000", "ipv6:[fd00::2]:11000"]


def test_remove_takes_the_device_down_then_removes_both_lvs() -> None:
    fake = FakeRunner(default=(0, "", ""))
    fake.on(["lvremove"], rc=5, stderr='  Failed to find logical volume "xenvg/x"\n')
    disk(fake, Proc(proc_line("WFConnection"))).remove()  # LVs already gone: still fine
    assert programs(fake) == [["drbdsetup", "down", "resource3"],
                              ["lvremove", "-f", "xenvg/u1.disk0_data"],
                              ["lvremove", "-f", "xenvg/u1.disk0_meta"]]


def test_grow_extends_the_data_lv_then_resize() -> None:
    fake = FakeRunner(default=(0, "", ""))
    fake.on(["lvs"], stdout="  u1.disk0_data|256.00|-wi-ao----\n")
    fake.on(["vgs"], stdout="  xenvg|1020.00|500.00\n")
    dev = disk(fake)
    dev.grow(256)
    dev.resize()
    assert programs(fake)[-2:] == [["lvextend", "-L+256m", "xenvg/u1.disk0_data"],
                                   ["drbdsetup", "resize", "3", "--size=512m"]]
    with pytest.raises(errors.WrongInput):
        dev.rename(["node1", "node3", 11001, 3, 5, SECRET])


@pytest.mark.parametrize("overrides", [
    {"logical_id": ["node1", "node2", 0, 3, 5, SECRET]},
    {"logical_id": ["node1", "node2", 11000, 3, 5, "has space"]},
    {"logical_id": ["node1", "node2", 11000, 3, 5, "x" * 65]},
    {"logical_id": ["node1", "node2", 11000, 3, 5, ""]},
    {"logical_id": ["node1", "node2", 11000]},
    {"local_minor": -1}, {"local_minor": "3; rm"}, {"local_ip": "node1"},
    {"remote_ip": "192.168.77.1"}, {"remote_ip": "fd00::2"},
    {"params": {"protocol": "D"}}, {"params": {"disk-barriers": "xz"}}])
def test_bad_parameters_are_refused_before_any_command(overrides: dict[str, Any]) -> None:
    fake = FakeRunner()
    with pytest.raises(errors.WrongInput):
        dev = disk(fake, Proc(VERSION), **overrides)
        dev.attach()
    assert fake.calls == []


def test_secrets_never_reach_error_messages() -> None:
    fake = FakeRunner().on(["drbdsetup"], rc=10, stderr="resource3: Failure: (102) Local "
                                                        "address(port) already in use.\n")
    with pytest.raises(errors.ExecError) as err:
        disk(fake, Proc(proc_line("StandAlone"))).connect()
    assert "already in use" in err.value.message and SECRET not in str(err.value)
    assert "--shared-secret=<hidden>" in err.value.message


def test_wait_for_sync_follows_the_real_initial_sync() -> None:
    during = drbd_sections("proc-drbd-samples.txt")
    order = [text for heading, text in during.items() if "since primary --force" in heading]
    done = [text for heading, text in during.items() if "after write, connected" in heading]
    proc = Proc(*order, *done)
    fake = FakeRunner()
    dev = disk(fake, proc, local_minor=0)
    status = dev.wait_for_sync(timeout=60)
    assert status["disk"] == status["peer_disk"] == "UpToDate"
    assert proc.reads == len(order) + 1 and fake.calls == []


def test_wait_for_sync_times_out_with_progress_and_stops_on_standalone() -> None:
    text = next(t for h, t in drbd_sections("proc-drbd-samples.txt").items() if "t+4.4s" in h)
    clock = iter(range(100))
    dev = disk(FakeRunner(), Proc(text), local_minor=0, clock=lambda: float(next(clock)))
    with pytest.raises(errors.ExecError, match=r"did not finish syncing in 5 s \(50.8% synced"):
        dev.wait_for_sync(timeout=5)
    standalone = next(t for h, t in drbd_sections("proc-drbd-samples.txt").items()
                      if "drbd1 Secondary, StandAlone" in h)
    with pytest.raises(errors.WrongState, match="StandAlone"):
        disk(FakeRunner(), Proc(standalone), local_minor=0).wait_for_sync(timeout=5)


def test_from_spec_picks_this_nodes_minor() -> None:
    child = {"dev_type": "plain", "size": 256, "logical_id": ["xenvg", "u1.disk0_data"]}
    meta = {"dev_type": "plain", "size": 128, "logical_id": ["xenvg", "u1.disk0_meta"]}
    spec = {"dev_type": "drbd", "size": 256, "logical_id": ["node1", "node2", 11000, 3, 5, SECRET],
            "children": [child, meta], "params": {},
            "dynamic_params": {"local_ip": "10.0.0.2", "remote_ip": "10.0.0.1"}}
    tool = LvmTool(FakeRunner(), udev=True)
    dev = drbd.from_spec(spec, {"name": "node2"}, tool=tool)
    assert dev.minor == 5 and dev.path == "/dev/drbd5"
    assert dev.local_address == "ipv4:10.0.0.2:11000"
    assert dev.data.path == "/dev/xenvg/u1.disk0_data" and dev.meta.size == 128
    with pytest.raises(errors.WrongInput, match="not a node"):
        drbd.from_spec(spec, {"name": "node3"}, tool=tool)
    with pytest.raises(errors.WrongInput, match="two children"):
        drbd.from_spec({**spec, "children": [child]}, {"name": "node2"}, tool=tool)
    with pytest.raises(errors.WrongInput, match="too small"):
        drbd.from_spec({**spec, "children": [child, {**meta, "size": 64}]}, {"name": "node2"},
                       tool=tool)
