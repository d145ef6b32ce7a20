"""Ganeti OS definitions on the node: validity, variants, parameters, script environment,
logs, failures, time limits, and file disks exposed as loop devices."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from loop_kit import attached, loop_works

from cardume import errors
from cardume.node import osapi
from cardume.node.storage import loop

DUMMY = Path(__file__).resolve().parents[1] / "fixtures" / "os" / "dummy"
SCRIPTS = ("create", "import", "export", "rename", "verify")


def make_os(top: Path, name: str, *, api: str = "20\n", scripts: tuple[str, ...] = SCRIPTS,
            variants: str | None = "default\nother\n",
            parameters: str | None = "flavour the flavour\n",
            body: str = "#!/bin/sh\nexit 0\n") -> Path:
    """A small OS definition written into top/name."""
    path = top / name
    path.mkdir(parents=True)
    if api is not None:
        (path / "ganeti_api_version").write_text(api)
    for script in scripts:
        (path / script).write_text(body)
        (path / script).chmod(0o755)
    if variants is not None:
        (path / "variants.list").write_text(variants)
    if parameters is not None:
        (path / "parameters.list").write_text(parameters)
    return path


def by_name(search: list[str]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in osapi.diagnose(search)}


def spec(name: str = "vm1", os_name: str = "dummy+default", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name, "uuid": "inst-uuid", "os": os_name, "hypervisor": "fake",
        "hvparams": {"migration_mode": "live"},
        "beparams": {"maxmem": 256, "minmem": 128, "vcpus": 2, "auto_balance": True},
        "osparams": {}, "disk_template": "diskless", "disks": [], "nics": [],
        "debug_level": 0,
    }
    data.update(extra)
    return data


def read_record(text: str, script: str) -> dict[str, str]:
    """The environment the dummy OS recorded for script (the last record of it)."""
    begin = f"dummy-os {script} "
    assert begin in text, text[:400]
    body = text.rsplit(begin, 1)[1].split("\n", 1)[1].split("dummy-os end\n", 1)[0]
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


@pytest.fixture
def dummy_search(tmp_path: Path) -> list[str]:
    top = tmp_path / "os"
    top.mkdir()
    shutil.copytree(DUMMY, top / "dummy")
    return [str(top)]


# --- validity -------------------------------------------------------------------------------


def test_valid_os_is_reported_with_variants_parameters_and_versions(tmp_path: Path) -> None:
    make_os(tmp_path, "good", api="20\n15\n10\n", variants="# comment\ndefault\n\nother\n",
            parameters="flavour the flavour to use\nsize  a size\nbare\n")
    entry = by_name([str(tmp_path)])["good"]
    assert entry["status"] is True and entry["diagnose"] == ""
    assert entry["path"] == str(tmp_path / "good")
    assert entry["variants"] == ["default", "other"]
    assert entry["parameters"] == [["flavour", "the flavour to use"], ["size", "a size"],
                                   ["bare", ""]]
    assert entry["api_versions"] == [20, 15, 10]


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"scripts": ("create", "import", "export", "verify")}, "missing script 'rename'"),
    ({"scripts": ("import", "export", "rename", "verify")}, "missing script 'create'"),
    ({"scripts": ("create", "import", "export", "rename")}, "missing script 'verify'"),
    ({"api": "4\n"}, "unsupported API versions [4]"),
    ({"api": "twenty\n"}, "not a version: 'twenty'"),
    ({"api": "\n"}, "lists no API version"),
    ({"api": None}, "missing file 'ganeti_api_version'"),
    ({"parameters": None}, "missing file 'parameters.list'"),
])
def test_invalid_os_says_why(tmp_path: Path, kwargs: dict[str, Any], reason: str) -> None:
    make_os(tmp_path, "broken", **kwargs)
    entry = by_name([str(tmp_path)])["broken"]
    assert entry["status"] is False
    assert reason in entry["diagnose"]
    assert entry["variants"] == [] and entry["api_versions"] == []


def test_script_that_is_not_executable_or_not_a_file(tmp_path: Path) -> None:
    make_os(tmp_path, "noexec")
    (tmp_path / "noexec" / "export").chmod(0o644)
    make_os(tmp_path, "dirscript")
    (tmp_path / "dirscript" / "import").unlink()
    (tmp_path / "dirscript" / "import").mkdir()
    (tmp_path / "stray-file").write_text("not an OS")
    (tmp_path / ".hidden").mkdir()
    found = by_name([str(tmp_path)])
    assert found["noexec"]["diagnose"] == "script 'export' is not executable"
    assert found["dirscript"]["diagnose"] == "script 'import' is not a regular file"
    assert found["stray-file"]["diagnose"] == "not a directory"
    assert ".hidden" not in found


def test_older_api_versions_need_fewer_files(tmp_path: Path) -> None:
    make_os(tmp_path, "api10", api="10\n", scripts=("create", "import", "export", "rename"),
            variants="default\n", parameters=None)
    make_os(tmp_path, "api15", api="15\n", scripts=("create", "import", "export", "rename"),
            variants=None, parameters=None)
    make_os(tmp_path, "api5", api="5\n", scripts=("create", "import", "export", "rename"),
            variants=None, parameters=None)
    found = by_name([str(tmp_path)])
    assert found["api10"]["status"] and found["api10"]["variants"] == []  # not read before 15
    assert found["api15"]["status"] and found["api15"]["variants"] == []
    assert found["api5"]["status"]


def test_mixed_api_versions_use_the_newest_common_one(tmp_path: Path) -> None:
    make_os(tmp_path, "future", api="25\n20\n15\n")
    osdef = osapi.find("future+default", [str(tmp_path)])
    assert osdef.api_version == 20


def test_untrusted_only_os_is_refused(tmp_path: Path) -> None:
    make_os(tmp_path, "untrusted", scripts=("create_untrusted", "import", "export", "rename",
                                            "verify"))
    assert "untrusted" in by_name([str(tmp_path)])["untrusted"]["diagnose"]


def test_search_path_order_and_missing_dirs(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    make_os(first, "same", api="4\n")
    make_os(second, "same")
    search = [str(tmp_path / "missing"), str(first), str(second)]
    entries = [e for e in osapi.diagnose(search) if e["name"] == "same"]
    assert [e["status"] for e in entries] == [False, True]  # both listed, in search order
    with pytest.raises(errors.WrongInput, match="not valid on this node: unsupported"):
        osapi.find("same+default", search)  # the first one found is the one used
    with pytest.raises(errors.WrongInput, match="not installed"):
        osapi.find("nosuch+default", search)
    for bad in ("../etc", "", ".hidden"):
        with pytest.raises(errors.WrongInput, match="invalid OS name"):
            osapi.find(bad, search)


def test_search_path_from_ssconf() -> None:
    assert osapi.search_path({}) == osapi.DEFAULT_SEARCH_PATH
    assert osapi.search_path({"os_search_path": ["/x", "/y"]}) == ["/x", "/y"]
    assert osapi.search_path({"os_search_path": "/x:/y"}) == ["/x", "/y"]


# --- variants and parameters ------------------------------------------------------------


def test_variant_rules(tmp_path: Path) -> None:
    make_os(tmp_path, "withvar")
    make_os(tmp_path, "novar", variants=None)
    withvar = osapi.find("withvar", [str(tmp_path)])
    novar = osapi.find("novar", [str(tmp_path)])
    assert osapi.split_name("debootstrap+default") == ("debootstrap", "default")
    assert osapi.split_name("debootstrap") == ("debootstrap", "")
    osapi.check_variant(withvar, "withvar+other")
    with pytest.raises(errors.WrongInput, match="must include a variant"):
        osapi.check_variant(withvar, "withvar")
    with pytest.raises(errors.WrongInput, match="does not support variant 'nope'"):
        osapi.check_variant(withvar, "withvar+nope")
    osapi.check_variant(novar, "novar")
    with pytest.raises(errors.WrongInput, match="does not support variants"):
        osapi.check_variant(novar, "novar+default")
    # for a script run, no variant means the first one (as Ganeti does)
    assert osapi.script_variant(withvar, "withvar") == "default"
    assert osapi.script_variant(withvar, "withvar+other") == "other"
    assert osapi.script_variant(novar, "novar") == ""


def test_validate_checks_parameters_and_runs_verify(dummy_search: list[str]) -> None:
    osapi.validate("dummy+default", {"flavour": "plain"}, dummy_search)
    osapi.validate("dummy+other", {}, dummy_search)
    with pytest.raises(errors.WrongInput, match="does not support the parameter colour"):
        osapi.validate("dummy+default", {"colour": "red"}, dummy_search)
    with pytest.raises(errors.WrongInput, match="must include a variant"):
        osapi.validate("dummy", {}, dummy_search)
    with pytest.raises(errors.WrongInput, match="does not support variant 'third'"):
        osapi.validate("dummy+third", {}, dummy_search)
    with pytest.raises(errors.WrongInput) as refused:
        osapi.validate("dummy+default", {"flavour": "invalid"}, dummy_search)
    assert refused.value.message == ("OS 'dummy' refuses the parameters: dummy-os: invalid "
                                     "flavour 'invalid'")
    with pytest.raises(errors.WrongInput, match="not installed"):
        osapi.validate("other+default", {}, dummy_search)


def test_verify_gets_the_parameters_check_and_core_env(tmp_path: Path) -> None:
    out = tmp_path / "verify.out"
    body = f'#!/bin/sh\necho "$@" > {out}\nenv >> {out}\nexit 0\n'
    make_os(tmp_path / "os", "probe", body=body)
    osapi.validate("probe+other", {"flavour": "x"}, [str(tmp_path / "os")])
    lines = out.read_text().splitlines()
    assert lines[0] == "parameters"
    env = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    assert env["OSP_FLAVOUR"] == "x" and env["OS_VARIANT"] == "other"
    assert env["OS_NAME"] == "probe" and env["OS_API_VERSION"] == "20"


# --- environment ------------------------------------------------------------------------


def test_instance_environment(dummy_search: list[str], tmp_path: Path) -> None:
    osdef = osapi.find("dummy+other", dummy_search)
    image = tmp_path / "disk1.img"
    image.write_bytes(b"")
    data = spec(os_name="dummy+other", osparams={"flavour": "x", "with-dash": 1},
                hvparams={"disk_type": "paravirtual", "nic_type": "e1000", "acpi": True},
                disks=[{"uuid": "d0", "name": "root", "dev_type": "file", "mode": "rw",
                        "logical_id": ["loop", "/s/vm1/d0.file.disk0"], "size": 1024},
                       {"uuid": "d1", "name": None, "dev_type": "file", "mode": "ro",
                        "logical_id": ["loop", "/s/vm1/d1.file.disk1"], "size": 512}],
                nics=[{"uuid": "n0", "name": "eth", "mac": "aa:00:00:11:22:33",
                       "ip": "192.0.2.5", "mode": "bridged", "link": "br0", "vlan": "",
                       "network": "net1"},
                      {"uuid": "n1", "name": None, "mac": "aa:00:00:11:22:34", "ip": None,
                       "mode": "routed", "link": "", "vlan": "", "network": None}],
                debug_level=1)
    env = osapi.instance_env(osdef, data, ["/dev/null", str(image)], node_name="node1")
    expected = {
        "OS_API_VERSION": "20", "OS_NAME": "dummy", "OS_VARIANT": "other",
        "INSTANCE_NAME": "vm1", "INSTANCE_OS": "dummy+other", "INSTANCE_UUID": "inst-uuid",
        "INSTANCE_PRIMARY_NODE": "node1", "HYPERVISOR": "fake", "DEBUG_LEVEL": "1",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "OSP_FLAVOUR": "x", "OSP_WITH_DASH": "1",
        "DISK_COUNT": "2",
        "DISK_0_PATH": "/dev/null", "DISK_0_ACCESS": "rw", "DISK_0_SIZE": "1024",
        "DISK_0_UUID": "d0", "DISK_0_NAME": "root", "DISK_0_FRONTEND_TYPE": "paravirtual",
        "DISK_1_PATH": str(image), "DISK_1_ACCESS": "ro", "DISK_1_SIZE": "512",
        "DISK_1_UUID": "d1", "DISK_1_BACKEND_TYPE": "file:loop",
        "NIC_COUNT": "2",
        "NIC_0_MAC": "aa:00:00:11:22:33", "NIC_0_IP": "192.0.2.5", "NIC_0_MODE": "bridged",
        "NIC_0_LINK": "br0", "NIC_0_BRIDGE": "br0", "NIC_0_UUID": "n0", "NIC_0_NAME": "eth",
        "NIC_0_NETWORK_NAME": "net1", "NIC_0_FRONTEND_TYPE": "e1000",
        "NIC_1_MAC": "aa:00:00:11:22:34", "NIC_1_MODE": "routed", "NIC_1_UUID": "n1",
        "INSTANCE_BE_maxmem": "256", "INSTANCE_BE_vcpus": "2",
        "INSTANCE_BE_auto_balance": "True", "INSTANCE_HV_acpi": "True",
        "INSTANCE_HV_disk_type": "paravirtual",
    }
    for key, value in expected.items():
        assert env.get(key) == value, key
    # /dev/null is a character device, not a block device: only real block devices say block
    assert env["DISK_0_BACKEND_TYPE"] == "file:loop"
    for absent in ("DISK_1_NAME", "NIC_1_IP", "NIC_1_LINK", "NIC_1_BRIDGE", "NIC_1_NAME",
                   "NIC_1_NETWORK_NAME", "INSTANCE_REINSTALL", "OLD_INSTANCE_NAME"):
        assert absent not in env


def test_scripts_get_a_clean_environment_and_log(dummy_search: list[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDUME_SECRET_TEST", "leak")
    record = tmp_path / "record.env"
    logs = tmp_path / "log" / "os"
    data = spec(osparams={"flavour": "plain", "record": str(record)})
    logfile = osapi.install(data, dummy_search, [], log_dir=str(logs), reinstall=True,
                            node_name="node1")
    env = read_record(record.read_text(), "create")
    assert env["INSTANCE_NAME"] == "vm1" and env["INSTANCE_REINSTALL"] == "1"
    assert env["OS_VARIANT"] == "default" and env["DISK_COUNT"] == "0"
    assert env["PATH"] == osapi.SCRIPT_PATH
    assert "CARDUME_SECRET_TEST" not in env and "HOME" not in env
    name = os.path.basename(logfile)
    assert os.path.dirname(logfile) == str(logs)
    assert name.startswith("create-vm1-") and name.endswith(".log")
    assert "dummy-os: create vm1 variant=default flavour=plain" in Path(logfile).read_text()

    osapi.rename(spec(name="vm2", osparams={"record": str(record)}), "vm1", dummy_search, [],
                 log_dir=str(logs))
    env = read_record(record.read_text(), "rename")
    assert env["OLD_INSTANCE_NAME"] == "vm1" and env["INSTANCE_NAME"] == "vm2"
    assert "INSTANCE_REINSTALL" not in env


def test_unknown_variant_is_refused_before_running(dummy_search: list[str],
                                                   tmp_path: Path) -> None:
    with pytest.raises(errors.WrongInput, match="does not support variant 'x'"):
        osapi.install(spec(os_name="dummy+x"), dummy_search, [], log_dir=str(tmp_path / "log"))
    assert not (tmp_path / "log").exists()


def test_script_failure_carries_the_log_tail(dummy_search: list[str], tmp_path: Path) -> None:
    with pytest.raises(errors.ExecError) as failed:
        osapi.install(spec(osparams={"flavour": "fail"}), dummy_search, [],
                      log_dir=str(tmp_path))
    err = failed.value
    assert err.message == "OS create script failed for instance vm1 (exited with exit code 3)"
    assert "\n" not in err.message
    assert err.hint is not None
    hint_lines = err.hint.splitlines()
    assert hint_lines[0].startswith(f"last lines of {tmp_path}/create-vm1-")
    assert hint_lines[-1] == "dummy-os: create failing on purpose (flavour=fail)"
    assert "dummy-os: create: still fine" in hint_lines


def test_log_tail_is_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert osapi.tail(str(log)) == [f"line {i}" for i in range(80, 100)]
    assert osapi.tail(str(tmp_path / "missing")) == []


def test_script_time_limit_kills_the_script_and_its_children(dummy_search: list[str],
                                                              tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(errors.ExecError, match=r"timed out after 0.5 s"):
        osapi.install(spec(osparams={"flavour": "sleep30"}), dummy_search, [],
                      log_dir=str(tmp_path), timeout=0.5)
    assert time.monotonic() - started < 10
    # exactly the script's child: "sleep 300" in some other shell is not ours
    leftover = subprocess.run(["pgrep", "-xf", "sleep 30"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_script_killed_by_a_signal(tmp_path: Path) -> None:
    make_os(tmp_path / "os", "suicide", body="#!/bin/sh\nkill -KILL $$\n")
    with pytest.raises(errors.ExecError, match=r"killed by signal SIGKILL"):
        osapi.install(spec(os_name="suicide+default"), [str(tmp_path / "os")], [],
                      log_dir=str(tmp_path))


# --- file disks through loop devices ------------------------------------------------------


def test_file_disks_reach_scripts_as_loop_devices(dummy_search: list[str],
                                                  tmp_path: Path) -> None:
    if not loop_works(tmp_path):
        pytest.skip("losetup can't attach loop devices here (needs root and /dev/loop*)")
    image = tmp_path / "vm1" / "d0.file.disk0"
    image.parent.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(4 * 1024 * 1024)
    data = spec(disks=[{"uuid": "d0", "name": None, "dev_type": "file", "mode": "rw",
                        "logical_id": ["loop", str(image)], "size": 4,
                        "iv_name": "disk/0", "params": {}}])
    osapi.install(data, dummy_search, [str(image)], log_dir=str(tmp_path / "log"))
    content = image.read_bytes()[:65536].split(b"\0", 1)[0].decode()
    assert content.startswith("dummy-os create vm1\n")
    env = read_record(content, "create")
    assert env["DISK_0_PATH"].startswith("/dev/loop")
    assert env["DISK_0_BACKEND_TYPE"] == "block"
    assert env["DISK_0_SIZE"] == "4"
    assert attached(image) == ""

    # a failing script releases its loop devices too
    data["osparams"] = {"flavour": "fail"}
    with pytest.raises(errors.ExecError):
        osapi.install(data, dummy_search, [str(image)], log_dir=str(tmp_path / "log"))
    assert attached(image) == ""

    # and so does a script killed for taking too long
    data["osparams"] = {"flavour": "sleep30"}
    with pytest.raises(errors.ExecError, match="timed out"):
        osapi.install(data, dummy_search, [str(image)], log_dir=str(tmp_path / "log"),
                      timeout=0.5)
    assert attached(image) == ""

    # the rename script finds the same disk
    osapi.rename(spec(name="vm2", disks=data["disks"]), "vm1", dummy_search, [str(image)],
                 log_dir=str(tmp_path / "log"))
    content = image.read_bytes()[65536:131072].split(b"\0", 1)[0].decode()
    assert read_record(content, "rename")["OLD_INSTANCE_NAME"] == "vm1"
    assert attached(image) == ""


def test_concurrent_installs_keep_every_write(dummy_search: list[str], tmp_path: Path) -> None:
    """Many scripts at once: each one's writes reach its own image (the loop devices are
    flushed before they are detached, even when a concurrent losetup held them open)."""
    if not loop_works(tmp_path):
        pytest.skip("losetup can't attach loop devices here (needs root and /dev/loop*)")

    def one(index: int) -> bytes:
        image = tmp_path / f"img{index}"
        with open(image, "wb") as handle:
            handle.truncate(1024 * 1024)
        data = spec(name=f"vm{index}", disks=[{"uuid": "d0", "dev_type": "file", "mode": "rw",
                                               "size": 1, "logical_id": ["loop", str(image)]}])
        osapi.install(data, dummy_search, [str(image)], log_dir=str(tmp_path / "log"))
        return image.read_bytes()[:64]

    with ThreadPoolExecutor(12) as pool:
        heads = list(pool.map(one, range(24)))
    for index, head in enumerate(heads):
        assert head.startswith(f"dummy-os create vm{index}\n".encode()), index
    assert all(attached(tmp_path / f"img{i}") == "" for i in range(24))


def test_missing_losetup_is_an_environment_problem(dummy_search: list[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "SEARCH_PATH", str(tmp_path / "empty"))
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 1024)
    data = spec(disks=[{"uuid": "d0", "dev_type": "file", "mode": "rw", "size": 1,
                        "logical_id": ["loop", str(image)]}])
    with pytest.raises(errors.EnvironmentProblem, match="losetup is not available"):
        osapi.install(data, dummy_search, [str(image)], log_dir=str(tmp_path / "log"))


def test_bad_parameter_names_and_values_are_refused(dummy_search: list[str],
                                                    tmp_path: Path) -> None:
    with pytest.raises(errors.WrongInput, match="invalid OS parameter name"):
        osapi.install(spec(osparams={"a=b": "x"}), dummy_search, [], log_dir=str(tmp_path))
    with pytest.raises(errors.WrongInput, match="can't run"):
        osapi.install(spec(osparams={"flavour": "a\0b"}), dummy_search, [],
                      log_dir=str(tmp_path))
