"""The plain template on LVM2, through the FakeRunner: exact command lines, name checks
before any command, space refusals, idempotent removal, inventory parsing; and the runner."""

from __future__ import annotations

import sys

import pytest

from cardume import errors
from cardume.node import storage
from cardume.node.cmd import FakeRunner, SubprocessRunner, UnexpectedCommand, redact
from cardume.node.storage import lvm
from cardume.node.storage.lvm import SCAN_CONFIG, LogicalVolume, LvmTool

REPORT = ["--noheadings", "--units", "m", "--nosuffix", "--separator=|"]
CFG = ["--config", SCAN_CONFIG]  # a node with udev: only the scanning settings
MISSING_LV = '  Failed to find logical volume "xenvg/gone"\n'
MISSING_VG = '  Volume group "novg" not found\n  Cannot process volume group novg\n'


def tool(fake: FakeRunner) -> LvmTool:
    return LvmTool(fake, udev=True)


def lv(fake: FakeRunner, name: str = "d0", size: int = 256, vg: str = "xenvg",
       **params: object) -> LogicalVolume:
    return LogicalVolume([vg, name], size, dict(params), tool=tool(fake))


def vgs_says(fake: FakeRunner, free: str, vg: str = "xenvg") -> None:
    fake.on(["vgs"], stdout=f"  {vg}|1020.00|{free}\n")


def test_create_checks_space_then_runs_lvcreate_without_prompts() -> None:
    fake = FakeRunner()
    vgs_says(fake, "764.00")
    fake.on(["lvcreate"], stderr='  Logical volume "d0" created.\n')
    dev = lv(fake)
    dev.create()
    assert fake.argvs == [
        ["vgs", *CFG, *REPORT, "-o", "vg_name,vg_size,vg_free", "xenvg"],
        ["lvcreate", *CFG, "--yes", "--wipesignatures", "n", "-L256m", "-n", "d0", "xenvg"],
    ]
    assert dev.path == "/dev/xenvg/d0"


def test_stripes_are_passed_to_lvcreate() -> None:
    fake = FakeRunner()
    vgs_says(fake, "764.00")
    fake.on(["lvcreate"])
    lv(fake, stripes=2).create()
    assert fake.commands("lvcreate")[0][-2:] == ["-i2", "xenvg"]


def test_without_udev_lvm_creates_its_own_device_nodes() -> None:
    fake = FakeRunner()
    vgs_says(fake, "764.00")
    fake.on(["lvcreate"])
    LogicalVolume(["xenvg", "d0"], 8, {}, tool=LvmTool(fake, udev=False)).create()
    config = fake.commands("lvcreate")[0][2]
    assert "udev_sync = 0" in config and "udev_rules = 0" in config
    assert "r|^/dev/drbd[0-9]+$|" in config and "scan_lvs = 0" in config


def test_create_refuses_when_the_vg_lacks_space() -> None:
    fake = FakeRunner()
    vgs_says(fake, "100.00")
    with pytest.raises(errors.InsufficientResources) as err:
        lv(fake, size=256).create()
    assert "xenvg" in err.value.message and "256 MiB needed" in err.value.message
    assert "100 MiB free" in err.value.message
    assert fake.commands("lvcreate") == []


def test_create_refuses_a_missing_vg_clearly() -> None:
    fake = FakeRunner().on(["vgs"], rc=5, stderr=MISSING_VG)
    with pytest.raises(errors.WrongState, match="volume group 'novg' does not exist"):
        lv(fake, vg="novg").create()
    assert fake.commands("lvcreate") == []


def test_create_maps_lvcreate_errors() -> None:
    fake = FakeRunner()
    vgs_says(fake, "764.00")
    fake.on(["lvcreate"], rc=5, stderr='  Logical Volume "d0" already exists in volume group '
                                       '"xenvg"\n')
    with pytest.raises(errors.AlreadyExists, match="xenvg/d0"):
        lv(fake).create()
    fake = FakeRunner()
    vgs_says(fake, "764.00")
    fake.on(["lvcreate"], rc=5, stderr='  Volume group "xenvg" has insufficient free space '
                                       '(3 extents): 64 required.\n')
    with pytest.raises(errors.InsufficientResources, match="insufficient free space"):
        lv(fake).create()


@pytest.mark.parametrize("logical_id", [
    ["xenvg", "-rf"], ["xenvg", "."], ["xenvg", ".."], ["xenvg", "a b"], ["xenvg", "a/b"],
    ["xenvg", "x;rm"], ["xenvg", ""], ["-vg", "d0"], ["..", "d0"], ["xen/vg", "d0"],
    ["xenvg", "snapshot1"], ["xenvg", "d0_mlog"], ["xenvg", "x" * 128], ["xenvg", 5],
    ["xenvg"], "xenvg/d0"])
def test_bad_names_are_refused_before_any_command(logical_id: object) -> None:
    fake = FakeRunner()
    with pytest.raises(errors.WrongInput):
        LogicalVolume(logical_id, 8, {}, tool=tool(fake))  # type: ignore[arg-type]
    assert fake.calls == []


def test_good_names_are_accepted() -> None:
    fake = FakeRunner()
    dev = lv(fake, name="0f1e2d3c-aaaa.disk0_data", vg="xen+vg_1.x")
    assert dev.logical_id == ["xen+vg_1.x", "0f1e2d3c-aaaa.disk0_data"]
    assert fake.calls == []


def test_rename_and_inventory_refuse_bad_names_before_any_command() -> None:
    fake = FakeRunner()
    dev = lv(fake)
    with pytest.raises(errors.WrongInput):
        dev.rename(["xenvg", "--help"])
    with pytest.raises(errors.WrongInput):
        tool(fake).vg_info("-a")
    with pytest.raises(errors.WrongInput):
        tool(fake).list_volumes("../x")
    assert fake.calls == []


def test_remove_is_idempotent() -> None:
    fake = FakeRunner()
    fake.on(["lvremove"], stderr='  Logical volume "d0" successfully removed.\n')
    fake.on(["lvremove"], rc=5, stderr=MISSING_LV)
    dev = lv(fake)
    dev.remove()
    dev.remove()  # already gone: not an error
    assert fake.argvs == [["lvremove", *CFG, "-f", "xenvg/d0"]] * 2


def test_remove_reports_real_failures() -> None:
    fake = FakeRunner().on(["lvremove"], rc=5, stderr='  Logical volume xenvg/d0 in use.\n'
                                                      '  WARNING: This metadata update is NOT '
                                                      'backed up.\n')
    with pytest.raises(errors.ExecError) as err:
        lv(fake).remove()
    assert "lvremove" in err.value.message and "in use" in err.value.message
    assert "\n" not in err.value.message


def test_exists_and_actual_size() -> None:
    fake = FakeRunner()
    fake.on(["lvs"], stdout="  d0|256.00|-wi-a-----\n")
    fake.on(["lvs"], rc=5, stderr=MISSING_LV)
    dev = lv(fake)
    assert dev.exists() is True
    assert fake.argvs[0] == ["lvs", *CFG, *REPORT, "-o", "lv_name,lv_size,lv_attr", "xenvg/d0"]
    assert dev.exists() is False
    with pytest.raises(errors.WrongState, match="does not exist"):
        dev.actual_size()
    fake = FakeRunner().on(["lvs"], stdout="  d0|300.00|-wi-a-----\n")
    assert lv(fake).actual_size() == 300
    assert lv(fake).status() == {"path": "/dev/xenvg/d0", "exists": True, "size": 300,
                                 "attr": "-wi-a-----", "active": True, "virtual": False}


def test_exists_raises_when_the_vg_is_missing() -> None:
    fake = FakeRunner().on(["lvs"], rc=5, stderr=MISSING_VG)
    with pytest.raises(errors.WrongState, match="novg"):
        lv(fake, vg="novg").exists()


def test_assemble_activates_and_shutdown_does_nothing() -> None:
    fake = FakeRunner().on(["lvchange"])
    dev = lv(fake)
    assert dev.assemble() == "/dev/xenvg/d0"
    dev.shutdown()
    assert fake.argvs == [["lvchange", *CFG, "-ay", "xenvg/d0"]]
    fake = FakeRunner().on(["lvchange"], rc=5, stderr=MISSING_LV)
    with pytest.raises(errors.WrongState, match="does not exist"):
        lv(fake).assemble()


def test_grow_checks_space_then_extends() -> None:
    fake = FakeRunner()
    fake.on(["lvs"], stdout="  d0|256.00|-wi-a-----\n")
    vgs_says(fake, "764.00")
    fake.on(["lvextend"])
    dev = lv(fake)
    dev.grow(128)
    assert fake.commands("lvextend") == [["lvextend", *CFG, "-L+128m", "xenvg/d0"]]
    assert dev.size == 384
    fake = FakeRunner()
    fake.on(["lvs"], stdout="  d0|256.00|-wi-a-----\n")
    vgs_says(fake, "64.00")
    with pytest.raises(errors.InsufficientResources, match="128 MiB needed, 64 MiB free"):
        lv(fake).grow(128)
    assert fake.commands("lvextend") == []
    with pytest.raises(errors.WrongInput):
        lv(FakeRunner()).grow(0)


def test_rename_and_its_retry() -> None:
    fake = FakeRunner()
    fake.on(["lvs", *CFG, *REPORT, "-o", "lv_name,lv_size,lv_attr", "xenvg/d0"],
            stdout="  d0|256.00|-wi-a-----\n")
    fake.on(["lvrename"])
    dev = lv(fake)
    dev.rename(["xenvg", "d1"])
    assert fake.commands("lvrename") == [["lvrename", *CFG, "xenvg", "d0", "d1"]]
    assert dev.logical_id == ["xenvg", "d1"] and dev.path == "/dev/xenvg/d1"
    # a retry after the rename happened: the old name is gone, the new one exists
    fake = FakeRunner()
    fake.on(["lvs", *CFG, *REPORT, "-o", "lv_name,lv_size,lv_attr", "xenvg/d0"], rc=5,
            stderr=MISSING_LV)
    fake.on(["lvs", *CFG, *REPORT, "-o", "lv_name,lv_size,lv_attr", "xenvg/d1"],
            stdout="  d1|256.00|-wi-a-----\n")
    dev = lv(fake)
    dev.rename(["xenvg", "d1"])
    assert fake.commands("lvrename") == [] and dev.logical_id == ["xenvg", "d1"]
    with pytest.raises(errors.WrongInput, match="stays in its volume group"):
        lv(FakeRunner()).rename(["othervg", "d0"])


def test_vg_info_and_inventory_parse_real_lvm_output() -> None:
    fake = FakeRunner()
    fake.on(["vgs"], stdout="  xenvg|1020.00|764.00\n")
    fake.on(["lvs"], stdout="  xenvg|disk0|256.00|-wi-a-----\n  xenvg|d1|128.00|-wi-a-----\n"
                            "  rootvg|root|8192.00|-wi-ao----\n")
    fake.on(["pvs"], stdout="  /dev/vda|xenvg|1020.00|764.00|a--\n  /dev/vdb||2048.00|2048.00|"
                            "---\n")
    assert lvm.vg_info("xenvg", fake) == {"total": 1020, "free": 764}
    assert lvm.list_volumes(runner=fake) == [
        {"vg": "xenvg", "name": "disk0", "size": 256, "attr": "-wi-a-----"},
        {"vg": "xenvg", "name": "d1", "size": 128, "attr": "-wi-a-----"},
        {"vg": "rootvg", "name": "root", "size": 8192, "attr": "-wi-ao----"}]
    assert lvm.list_pvs(fake) == [
        {"name": "/dev/vda", "vg": "xenvg", "size": 1020, "used": 256, "free": 764,
         "allocatable": True},
        {"name": "/dev/vdb", "vg": "", "size": 2048, "used": 0, "free": 2048,
         "allocatable": False}]
    assert fake.commands("vgs")[0][-3:] == ["-o", "vg_name,vg_size,vg_free", "xenvg"]
    assert fake.commands("lvs")[0][-7:] == [*REPORT, "-o", "vg_name,lv_name,lv_size,lv_attr"]
    assert fake.commands("pvs")[0][-2:] == ["-o", "pv_name,vg_name,pv_size,pv_free,pv_attr"]
    assert all(argv[1] == "--config" for argv in fake.argvs)  # never a bare, scanning call


def test_garbled_output_is_an_error_not_a_guess() -> None:
    fake = FakeRunner().on(["vgs"], stdout="  xenvg 1020.00 764.00\n")
    with pytest.raises(errors.ExecError, match="unexpected LVM output"):
        lvm.vg_info("xenvg", fake)


def test_factory_builds_plain_disks() -> None:
    dev = storage.from_spec({"dev_type": "plain", "logical_id": ["xenvg", "u1.disk0"],
                             "size": 1024, "params": {"stripes": 1}}, {}, {})
    assert isinstance(dev, LogicalVolume) and dev.path == "/dev/xenvg/u1.disk0"
    with pytest.raises(errors.WrongInput):
        storage.from_spec({"dev_type": "plain", "logical_id": ["xenvg", "-x"], "size": 1},
                          {}, {})


# --- the runners --------------------------------------------------------------------------

def test_fake_runner_prefers_the_longest_prefix_and_replays_in_order() -> None:
    fake = FakeRunner()
    fake.on(["a"], stdout="short")
    fake.on(["a", "b"], stdout="first")
    fake.on(["a", "b"], stdout="second")
    assert fake.run(["a", "x"]).stdout == "short"
    assert [fake.run(["a", "b", "c"]).stdout for _ in range(3)] == ["first", "second", "second"]
    with pytest.raises(UnexpectedCommand):
        fake.run(["zzz"])
    assert FakeRunner(default=(0, "ok", "")).run(["zzz"]).stdout == "ok"


def test_failures_name_the_command_and_hide_secrets() -> None:
    fake = FakeRunner().on(["drbdsetup"], rc=10, stderr="first\nlast line\n")
    with pytest.raises(errors.ExecError) as err:
        fake.run(["drbdsetup", "connect", "--shared-secret=s3cret", "--shared-secret", "s3"])
    assert "drbdsetup connect" in err.value.message and "last line" in err.value.message
    assert "s3" not in err.value.message and "exit code 10" in err.value.message
    assert redact(["x", "--shared-secret", "a", "b"]) == ["x", "--shared-secret", "<hidden>",
                                                          "b"]
    assert fake.run(["drbdsetup"], check=False).rc == 10


def test_subprocess_runner_runs_argument_lists_with_a_time_limit() -> None:
    runner = SubprocessRunner(search_path="/usr/bin:/bin")
    result = runner.run([sys.executable, "-c",
                         "import os,sys; print(sys.stdin.read().upper(), os.environ['LC_ALL'])"],
                        input="a;b $(x)")
    assert result.ok and result.stdout.strip() == "A;B $(X) C"
    with pytest.raises(errors.ExecError, match="boom"):
        runner.run([sys.executable, "-c", "import sys; sys.exit('boom')"])
    with pytest.raises(errors.ExecError, match="did not finish in 0.3 s"):
        runner.run([sys.executable, "-c", "import time; time.sleep(10)"], timeout=0.3)
    with pytest.raises(errors.EnvironmentProblem, match="not available"):
        runner.run(["no-such-command-cardume"])
