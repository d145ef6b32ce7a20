"""gnt-instance and gnt-os on the client side: Ganeti's syntax → opcode dicts, refusals,
selectors, and the output shapes of info/os (cardume.cli.instance, cardume.cli.os)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from fakes_kit import FakeClient

from cardume import errors
from cardume.cli import (
    common,
    instance,
    instance_add,
    instance_disks,
    instance_info,
    instance_lifecycle,
    instance_migrate,
    instance_modify,
    main,
)
from cardume.cli import os as gnt_os


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gnt-instance")
    sub = parser.add_subparsers(dest="command")
    instance.build(sub)
    return parser.parse_args(list(argv))


def create(*argv: str) -> dict[str, Any]:
    return instance_add.build_create_op(parse("add", *argv))


def refused(build: Any, *argv: str) -> str:
    """The one-line WrongInput message parsing/building ``argv`` gives."""
    with pytest.raises(errors.WrongInput) as caught:
        build(*argv)
    message = str(caught.value)
    assert "\n" not in message
    return message


CREATE_DEFAULTS: dict[str, Any] = {
    "OP_ID": "OP_INSTANCE_CREATE", "mode": "create", "nics": [{}], "beparams": {},
    "hvparams": {}, "hypervisor": None, "osparams": {}, "os_type": None, "pnode": None,
    "snode": None, "iallocator": None, "ignore_ipolicy": False, "name_check": True,
    "ip_check": True, "start": True,
    "no_install": False, "file_storage_dir": None, "file_driver": None,
    "wait_for_sync": True, "tags": [], "force_variant": False, "group_name": None,
}


# --- add ------------------------------------------------------------------------------------


def test_seed_command_plain() -> None:
    op = create("-t", "plain", "--disk", "0:size=5g", "-B", "memory=128", "-o",
                "debootstrap+default", "-n", "node1", "vm1")
    assert op == {**CREATE_DEFAULTS, "instance_name": "vm1", "disk_template": "plain",
                  "disks": [{"size": 5120}], "beparams": {"memory": "128"},
                  "os_type": "debootstrap+default", "pnode": "node1"}


def test_seed_command_drbd() -> None:
    op = create("-t", "drbd", "--disk", "0:size=5g", "-B", "memory=128", "-o",
                "debootstrap+default", "-n", "node1:node2", "vm2")
    assert op == {**CREATE_DEFAULTS, "instance_name": "vm2", "disk_template": "drbd",
                  "disks": [{"size": 5120}], "beparams": {"memory": "128"},
                  "os_type": "debootstrap+default", "pnode": "node1", "snode": "node2"}


def test_two_disks_with_options() -> None:
    op = create("-t", "file", "--disk", "1:size=512,mode=ro,name=data,vg=vg2",
                "--disk", "0:size=1.5g", "-o", "dummy", "vm1")
    assert op["disks"] == [{"size": 1536},
                           {"size": 512, "mode": "ro", "name": "data", "vg": "vg2"}]


def test_single_disk_shorthand_and_rounding() -> None:
    assert create("-t", "file", "-s", "10g", "vm1")["disks"] == [{"size": 10240}]
    assert create("-t", "file", "-s", "5", "vm1")["disks"] == [{"size": 8}]


def test_adopt_and_spindles() -> None:
    op = create("-t", "plain", "--disk", "0:adopt=lv0", "--disk", "1:size=1g,spindles=2",
                "vm1")
    assert op["disks"] == [{"adopt": "lv0", "size": 0}, {"size": 1024, "spindles": 2}]


def test_diskless_takes_no_disks() -> None:
    assert create("-t", "diskless", "vm1")["disks"] == []


def test_no_nics() -> None:
    assert create("-t", "diskless", "--no-nics", "vm1")["nics"] == []


def test_nics_with_options() -> None:
    op = create("-t", "diskless", "--net",
                "0:mac=generate,ip=10.0.0.5,mode=routed,link=br1,name=eth0,network=net1,"
                "vlan=.100", "--net", "1:link=br2", "vm1")
    assert op["nics"] == [
        {"mac": "generate", "ip": "10.0.0.5", "mode": "routed", "link": "br1",
         "name": "eth0", "network": "net1", "vlan": ".100"},
        {"link": "br2"},
    ]


def test_nic_index_left_out_is_a_default_nic() -> None:
    # as in Ganeti: --net 1:... alone gives a default nic/0 and the described nic/1
    assert create("-t", "diskless", "--net", "1:mode=openvswitch", "vm1")["nics"] == [
        {}, {"mode": "openvswitch"}]


def test_every_other_option() -> None:
    op = create("-t", "sharedfile", "--disk", "0:size=1g", "-H", "kvm:serial_console=false",
                "-O", "filesystem=ext3,flag", "-o", "debootstrap+buster", "--force-variant",
                "-I", "hail", "-g", "rack1", "--no-name-check", "--no-ip-check", "--no-start",
                "--no-install", "--file-storage-dir", "sub/dir", "--file-driver", "loop",
                "--no-wait-for-sync", "--tags", "a,b", "-B", "maxmem=1g,vcpus=2", "vm1")
    assert op == {**CREATE_DEFAULTS, "instance_name": "vm1", "disk_template": "sharedfile",
                  "disks": [{"size": 1024}], "hypervisor": "kvm",
                  "hvparams": {"serial_console": "false"},
                  "osparams": {"filesystem": "ext3", "flag": True},
                  "os_type": "debootstrap+buster", "force_variant": True,
                  "iallocator": "hail", "group_name": "rack1", "name_check": False,
                  "ip_check": False, "start": False, "no_install": True,
                  "file_storage_dir": "sub/dir", "file_driver": "loop",
                  "wait_for_sync": False, "tags": ["a", "b"],
                  "beparams": {"maxmem": "1g", "vcpus": "2"}}


def test_hypervisor_without_parameters() -> None:
    op = create("-t", "diskless", "-H", "fake", "vm1")
    assert (op["hypervisor"], op["hvparams"]) == ("fake", {})


@pytest.mark.parametrize(("argv", "message"), [
    (["-t", "file", "--disk", "0:size=5q"], "invalid size '5q' in --disk 0:size=5q"),
    (["-t", "file", "-s", "lots"], "invalid size 'lots' in -s"),
    (["-t", "file", "--disk", "0:size=0"], "a disk needs a size > 0"),
    (["-t", "file", "--disk", "0:size=1g", "--disk", "2:size=1g"],
     "disk 1 is missing (given: 0, 2)"),
    (["-t", "file", "--disk", "1:size=1g"], "disk 0 is missing (given: 1)"),
    (["-t", "file", "--disk", "0:size=1g", "--disk", "0:size=2g"], "disk 0 is given twice"),
    (["-t", "diskless", "--disk", "0:size=1g"], "the diskless template takes no disks"),
    (["-t", "diskless", "-s", "1g"], "-s 1g: the diskless template takes no disks"),
    ([f"--disk={i}:size=1g" for i in range(17)] + ["-t", "file"],
     "index 16 is out of range: an instance has at most 16 disks (0..15)"),
    (["-t", "file", "--disk", "x:size=1g"], "the index 'x' must be a number 0..15"),
    (["-t", "file", "--disk", "size=1g"], "the index 'size=1g' must be a number"),
    (["-t", "file", "--disk", "0:size=1g", "-s", "1g"], "either --disk or -s"),
    (["-t", "file"], "no disk given"),
    (["-t", "file", "--disk", "0:mode=ro"], "disk 0 needs size=SIZE"),
    (["-t", "file", "--disk", "0:size=1g,mode=rx"], "invalid disk mode 'rx': expected rw or ro"),
    (["-t", "file", "--disk", "0:size=1g,colour=red"], "unknown disk parameter 'colour'"),
    (["-t", "file", "--disk", "0:size"], "'size' needs a value"),
    (["-t", "plain", "--disk", "0:size=1g,adopt=lv"], "either size or adopt"),
    (["-t", "file", "--disk", "no_0"], "expected N:size=SIZE"),
    (["-t", "file", "-s", "1g", "-n", "a:b:c"],
     "invalid node specification 'a:b:c': expected PNODE or PNODE:SNODE"),
    (["-t", "file", "-s", "1g", "-n", "a:"], "invalid node specification 'a:'"),
    (["-t", "file", "-s", "1g", "-n", "a", "-I", "hail"], "either -n a or -I hail"),
    (["-t", "file", "-s", "1g", "-H", "serial_console=true"],
     "invalid -H 'serial_console=true': expected HYPERVISOR[:key=value,...]"),
    (["-t", "file", "-s", "1g", "-H", "no_kvm"], "invalid -H 'no_kvm'"),
    (["-t", "file", "-s", "1g", "-H", "kvm:bogus=1"],
     "unknown hypervisor kvm parameter 'bogus'"),
    (["-t", "file", "-s", "1g", "-H", "kvm:serial_speed=fast"],
     "hypervisor kvm parameter 'serial_speed' must be an integer, not 'fast'"),
    (["-t", "file", "-s", "1g", "-B", "memory=lots"],
     "backend parameter 'memory' must be a size"),
    (["-t", "file", "-s", "1g", "-B", "colour=red"], "unknown backend parameter 'colour'"),
    (["-t", "file", "-s", "1g", "--no-name-check"],
     "--no-name-check needs --no-ip-check as well"),
    (["-t", "file", "-s", "1g", "--net", "8:link=br0"],
     "index 8 is out of range: an instance has at most 8 NICs (0..7)"),
    (["-t", "file", "-s", "1g", "--net", "0:mode=bogus"],
     "invalid NIC mode 'bogus': expected one of bridged, routed, openvswitch"),
    (["-t", "file", "-s", "1g", "--net", "0:speed=10g"], "unknown NIC parameter 'speed'"),
    (["-t", "file", "-s", "1g", "--net", "0:link=a", "--net", "0:link=b"],
     "NIC 0 is given twice"),
    (["-t", "file", "-s", "1g", "--net", "0:link=a", "--no-nics"],
     "--net 0:link=a and --no-nics cannot be combined"),
    (["-t", "bogus", "-s", "1g"],
     "invalid disk template 'bogus': expected one of diskless, file, sharedfile"),
    (["-t", "file", "-s", "1g", "--file-driver", "nbd"],
     "invalid file driver 'nbd': expected one of loop, blktap, blktap2"),
])
def test_add_refusals(argv: list[str], message: str) -> None:
    assert message in refused(create, *argv, "vm1")


def test_refusal_exits_non_zero_before_submitting(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def no_client(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing may be sent for bad input")
    monkeypatch.setattr("cardume.master.client.Client", no_client)
    monkeypatch.setattr("cardume.cli.common.Client", no_client)
    rc = main.run("gnt-instance", ["add", "-t", "file", "--disk", "0:size=1g", "--disk",
                                   "2:size=1g", "-o", "dummy", "-n", "node1", "vm9"])
    assert rc != 0
    err = capsys.readouterr().err
    assert err == ("Failure: wrong_input: --disk indexes must be 0..N-1 without gaps: disk 1 "
                   "is missing (given: 0, 2)\n")
    assert main.run("gnt-instance", ["reboot", "-t", "medium", "vm1"]) != 0
    assert "invalid reboot type 'medium'" in capsys.readouterr().err


# --- modify ---------------------------------------------------------------------------------


def modify(*argv: str) -> dict[str, Any]:
    return instance_modify.build_modify_op(parse("modify", *argv))


MODIFY_DEFAULTS: dict[str, Any] = {
    "OP_ID": "OP_INSTANCE_SET_PARAMS", "instance_name": "vm1", "beparams": {},
    "hvparams": {}, "osparams": None, "os_name": None, "disks": [], "nics": [],
    "offline": None, "disk_template": None, "remote_node": None, "wait_for_sync": True,
}


def test_modify_parameters() -> None:
    assert modify("-B", "maxmem=256,vcpus=default", "-H", "kernel_path=/k,-initrd_path",
                  "-O", "filesystem=xfs", "-o", "debootstrap+buster", "vm1") == {
        **MODIFY_DEFAULTS, "beparams": {"maxmem": "256", "vcpus": None},
        "hvparams": {"kernel_path": "/k", "initrd_path": None},
        "osparams": {"filesystem": "xfs"}, "os_name": "debootstrap+buster"}


def test_modify_disk_changes() -> None:
    op = modify("--disk", "add:size=1g", "--disk", "3:add,size=512m,mode=ro,name=x",
                "--disk", "2:remove", "--disk", "remove", "--disk", "1:modify,mode=ro,name=data",
                "--disk", "0:name=root", "--disk", "data:remove", "vm1")
    assert op["disks"] == [
        ["add", -1, {"size": 1024}],
        ["add", 3, {"size": 512, "mode": "ro", "name": "x"}],
        ["remove", 2, {}],
        ["remove", -1, {}],
        ["modify", 1, {"mode": "ro", "name": "data"}],
        ["modify", 0, {"name": "root"}],
        ["remove", "data", {}],
    ]
    assert op["nics"] == []


def test_modify_nic_changes() -> None:
    op = modify("--net", "add", "--net", "add:mac=generate,link=br1,mode=routed,ip=10.0.0.9",
                "--net", "1:remove", "--net", "0:modify,ip=10.0.0.8", "--net", "0:link=br2",
                "--net", "2:add,name=eth2", "vm1")
    assert op["nics"] == [
        ["add", -1, {}],
        ["add", -1, {"mac": "generate", "link": "br1", "mode": "routed", "ip": "10.0.0.9"}],
        ["remove", 1, {}],
        ["modify", 0, {"ip": "10.0.0.8"}],
        ["modify", 0, {"link": "br2"}],
        ["add", 2, {"name": "eth2"}],
    ]


def test_modify_state_and_template() -> None:
    assert modify("--offline", "vm1")["offline"] is True
    assert modify("--online", "vm1")["offline"] is False
    op = modify("-t", "drbd", "-n", "node2", "--no-wait-for-sync", "vm1")
    assert op == {**MODIFY_DEFAULTS, "disk_template": "drbd", "remote_node": "node2",
                  "wait_for_sync": False}


@pytest.mark.parametrize(("argv", "message"), [
    ([], "nothing to change"),
    (["--disk", "add"], "the new disk needs size=SIZE"),
    (["--disk", "add:size=1x"], "invalid size '1x'"),
    (["--disk", "0:remove,size=1g"], "removal takes no parameters"),
    (["--disk", "0:add,remove,size=1g"], "give only one of add, remove"),
    (["--disk", "0:modify,size=2g"], "unknown disk parameter 'size' (known: mode, name)"),
    (["--disk", "0:modify"], "nothing to modify"),
    (["--disk", "0:mode=rx"], "invalid disk mode 'rx'"),
    (["--disk", "x:add,size=1g"], "adding needs a numeric index"),
    (["--disk", "attach:name=x"], "expected add, remove"),
    (["--net", "0:remove,link=br0"], "removal takes no parameters"),
    (["--net", "0:mode=bogus"], "invalid NIC mode 'bogus'"),
    (["--net", "0:speed=1"], "unknown NIC parameter 'speed'"),
    (["--offline", "--online"], "either --offline or --online"),
    (["-n", "node2"], "give -t TEMPLATE with it"),
    (["-t", "plainish"], "invalid disk template 'plainish'"),
    (["-B", "maxmem=lots"], "backend parameter 'maxmem' must be a size"),
    (["-H", "no_such_param=1"], "unknown hypervisor parameter 'no_such_param'"),
])
def test_modify_refusals(argv: list[str], message: str) -> None:
    assert message in refused(modify, *argv, "vm1")


# --- the other single-instance operations ---------------------------------------------------


def test_remove_rename_ops() -> None:
    assert instance_add.build_remove_op(parse("remove", "-f", "vm1")) == {
        "OP_ID": "OP_INSTANCE_REMOVE", "instance_name": "vm1", "ignore_failures": False,
        "shutdown_timeout": 120}
    assert instance_add.build_remove_op(parse("remove", "--ignore-failures", "--shutdown-timeout",
                                          "5", "vm1"))["shutdown_timeout"] == 5
    assert instance_add.build_rename_op(parse("rename", "vm1", "vm2")) == {
        "OP_ID": "OP_INSTANCE_RENAME", "instance_name": "vm1", "new_name": "vm2",
        "ip_check": True, "name_check": True}
    assert instance_add.build_rename_op(parse("rename", "--no-name-check", "--no-ip-check",
                                          "vm1", "vm2"))["name_check"] is False
    assert "--no-name-check needs --no-ip-check" in refused(
        lambda *a: instance_add.build_rename_op(parse(*a)), "rename", "--no-name-check", "a", "b")
    assert "invalid shutdown timeout 'soon'" in refused(
        parse, "remove", "--shutdown-timeout", "soon", "vm1")


def test_grow_disk_ops() -> None:
    assert instance_disks.build_grow_disk_op(parse("grow-disk", "vm1", "0", "1g")) == {
        "OP_ID": "OP_INSTANCE_GROW_DISK", "instance_name": "vm1", "disk": 0, "amount": 1024,
        "absolute": False}
    assert instance_disks.build_grow_disk_op(parse("grow-disk", "--absolute", "vm1", "1", "10g"))[
        "absolute"] is True
    grow = lambda *a: instance_disks.build_grow_disk_op(parse("grow-disk", *a))  # noqa: E731
    assert "invalid disk index 'x'" in refused(grow, "vm1", "x", "1g")
    assert "invalid amount 'lots'" in refused(grow, "vm1", "0", "lots")


def test_disk_activation_move_failover_migrate_ops() -> None:
    assert instance_disks.build_activate_disks_op(parse("activate-disks", "vm1")) == {
        "OP_ID": "OP_INSTANCE_ACTIVATE_DISKS", "instance_name": "vm1", "ignore_size": False,
        "wait_for_sync": False}
    assert instance_disks.build_deactivate_disks_op(parse("deactivate-disks", "-f", "vm1")) == {
        "OP_ID": "OP_INSTANCE_DEACTIVATE_DISKS", "instance_name": "vm1", "force": True}
    assert instance_migrate.build_move_op(parse("move", "-n", "node2", "vm1")) == {
        "OP_ID": "OP_INSTANCE_MOVE", "instance_name": "vm1", "target_node": "node2",
        "shutdown_timeout": 120}
    assert instance_migrate.build_failover_op(parse("failover", "-f", "--ignore-consistency",
                                            "--shutdown-timeout", "30", "-n", "node3",
                                            "vm1")) == {
        "OP_ID": "OP_INSTANCE_FAILOVER", "instance_name": "vm1", "ignore_consistency": True,
        "shutdown_timeout": 30, "target_node": "node3", "cleanup": False}
    assert instance_migrate.build_migrate_op(parse("migrate", "-f", "vm1")) == {
        "OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": "vm1", "mode": None,
        "target_node": None, "cleanup": False, "allow_failover": False}
    assert instance_migrate.build_migrate_op(
        parse("migrate", "--non-live", "vm1"))["mode"] == "non-live"
    op = instance_migrate.build_migrate_op(parse("migrate", "--migration-mode", "live",
                                                 "--cleanup", "--allow-failover", "-n", "node2",
                                                 "vm1"))
    assert (op["mode"], op["cleanup"], op["allow_failover"], op["target_node"]) == (
        "live", True, True, "node2")
    migrate = lambda *a: instance_migrate.build_migrate_op(parse("migrate", *a))  # noqa: E731
    assert "either --non-live or --migration-mode" in refused(
        migrate, "--non-live", "--migration-mode", "live", "vm1")
    assert "invalid migration mode 'warp'" in refused(migrate, "--migration-mode", "warp", "vm1")
    assert "either a target node (-n node2) or an allocator (-I hail)" in refused(
        migrate, "-n", "node2", "-I", "hail", "vm1")


def test_tags_ops(tmp_path: Any) -> None:
    assert instance_modify.build_tags_op(parse("add-tags", "vm1", "a", "b")) == {
        "OP_ID": "OP_TAGS_SET", "kind": "instance", "name": "vm1", "tags": ["a", "b"]}
    source = tmp_path / "tags"
    source.write_text("c\n\nd\n")
    assert instance_modify.build_tags_op(
            parse("remove-tags", "--from", str(source), "vm1", "a")) == {
        "OP_ID": "OP_TAGS_DEL", "kind": "instance", "name": "vm1", "tags": ["a", "c", "d"]}
    assert "no tags given" in refused(
        lambda *a: instance_modify.build_tags_op(parse(*a)), "add-tags", "vm1")


def test_per_instance_ops() -> None:
    args = parse("startup", "vm1")
    assert instance_lifecycle.build_startup_op("vm1", args) == {
        "OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "vm1", "force": False,
        "no_remember": False, "hvparams": {}, "beparams": {}, "ignore_offline_nodes": False}
    args = parse("start", "-f", "--no-remember", "--ignore-offline", "-B", "maxmem=256",
                 "-H", "kernel_args=quiet", "vm1")
    assert instance_lifecycle.build_startup_op("vm1", args) == {
        "OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "vm1", "force": True,
        "no_remember": True, "hvparams": {"kernel_args": "quiet"},
        "beparams": {"maxmem": "256"}, "ignore_offline_nodes": True}
    assert instance_lifecycle.build_shutdown_op("vm1", parse("stop", "--timeout", "7", "vm1")) == {
        "OP_ID": "OP_INSTANCE_SHUTDOWN", "instance_name": "vm1", "timeout": 7,
        "no_remember": False, "force": False, "ignore_offline_nodes": False}
    assert instance_lifecycle.build_reboot_op("vm1", parse("reboot", "-t", "soft", "vm1")) == {
        "OP_ID": "OP_INSTANCE_REBOOT", "instance_name": "vm1", "reboot_type": "soft",
        "shutdown_timeout": 120, "ignore_secondaries": False}
    assert instance_lifecycle.build_reinstall_op("vm1", parse("reinstall", "vm1")) == {
        "OP_ID": "OP_INSTANCE_REINSTALL", "instance_name": "vm1", "os_type": None,
        "osparams": None, "force_variant": False}
    assert instance_lifecycle.build_reinstall_op(
        "vm1", parse("reinstall", "-o", "dummy+other", "-O", "flavour=x", "vm1")) == {
        "OP_ID": "OP_INSTANCE_REINSTALL", "instance_name": "vm1", "os_type": "dummy+other",
        "osparams": {"flavour": "x"}, "force_variant": False}
    assert "invalid timeout '-3'" in refused(parse, "shutdown", "--timeout", "-3", "vm1")


# --- selectors ------------------------------------------------------------------------------

ROWS = {
    "instance": [
        {"name": "vm1", "pnode": "node1", "snodes": [], "tags": ["web"]},
        {"name": "vm2", "pnode": "node2", "snodes": ["node1"], "tags": []},
        {"name": "vm3", "pnode": "node2", "snodes": [], "tags": ["web", "db"]},
    ],
    "node": [
        {"name": "node1", "tags": ["rack1"]},
        {"name": "node2", "tags": ["rack2"]},
    ],
}


def stub_query(resource: str, fields: list[str], names: list[str]) -> list[dict[str, Any]]:
    rows = ROWS[resource]
    if names:
        known = {row["name"] for row in rows}
        for name in names:
            if name not in known:
                raise errors.UnknownEntity(f"{resource} '{name}' not known")
        rows = [row for name in names for row in rows if row["name"] == name]
    return [{field: row[field] for field in fields} for row in rows]


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "confirm", lambda question: False)


def select(*argv: str) -> tuple[list[str], bool]:
    return instance_lifecycle.select_instances(parse("shutdown", *argv), "shutdown", stub_query)


def test_selectors() -> None:
    assert select("vm2") == (["vm2"], False)
    assert select("--force-multiple", "vm1", "vm3") == (["vm1", "vm3"], True)
    assert select("--force-multiple", "--all") == (["vm1", "vm2", "vm3"], True)
    assert select("--force-multiple", "--node", "node1") == (["vm1", "vm2"], True)
    assert select("--force-multiple", "--primary", "node2") == (["vm2", "vm3"], True)
    assert select("--force-multiple", "--secondary", "node1") == (["vm2"], True)
    assert select("--force-multiple", "--tags", "db") == (["vm3"], True)
    assert select("--force-multiple", "--node-tags", "rack2") == (["vm2", "vm3"], True)
    assert select("--force-multiple", "--pri-node-tags", "rack1") == (["vm1"], True)
    assert select("--force-multiple", "--sec-node-tags", "rack1") == (["vm2"], True)


def test_selectors_need_force_multiple() -> None:
    assert refused(select, "vm1", "vm2") == (
        "shutdown would act on 2 instances (vm1, vm2); pass --force-multiple to confirm")
    # like Ganeti, any selector but plain names counts as "multiple", even for one match
    assert refused(select, "--secondary", "node1") == (
        "shutdown would act on 1 instance (vm2); pass --force-multiple to confirm")
    assert "would act on 3 instances" in refused(select, "--all")


def test_selector_refusals() -> None:
    assert "no instance names given" in refused(select)
    assert "--all takes no names" in refused(select, "--all", "vm1")
    assert "does not match any instance" in refused(select, "--tags", "nosuchtag")
    assert "no node names given" in refused(select, "--node")
    with pytest.raises(errors.UnknownEntity):
        select("nosuchvm")


def test_run_many_submits_at_once_and_reports(fake_client: type[FakeClient],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    fake_client.outcomes = {101: errors.WrongState("instance vm2 is not running")}
    args = parse("shutdown", "--force-multiple", "--timeout", "5", "vm1", "vm2")
    failed = common.run_many(args, ["vm1", "vm2"], instance_lifecycle.build_shutdown_op, True)
    assert failed == ["vm2"]
    method, (jobs,) = fake_client.calls[0]
    assert method == "SubmitManyJobs"
    assert jobs == [[instance_lifecycle.build_shutdown_op(name, args)] for name in ("vm1", "vm2")]
    out, err = capsys.readouterr()
    assert out == ("Submitted jobs 100, 101\nWaiting for job 100 for vm1 ...\n"
                   "Waiting for job 101 for vm2 ...\n")
    assert err == "Job 101 for vm2 has failed: instance vm2 is not running\n"


def test_run_many_submit_only(fake_client: type[FakeClient],
                              capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("reboot", "--submit", "--dry-run", "vm1")
    assert common.run_many(args, ["vm1"], instance_lifecycle.build_reboot_op, False) == []
    assert fake_client.calls[0][1][0][0][0]["dry_run"] is True
    assert capsys.readouterr().out == "100: vm1\n"


def test_console(fake_client: type[FakeClient], monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> None:
    fake_client.replies["InstanceConsole"] = {"kind": "message",
                                              "message": "Console not available"}
    assert main.run("gnt-instance", ["console", "vm1"]) == 0
    assert capsys.readouterr().out == "Console not available\n"
    fake_client.replies["InstanceConsole"] = {"kind": "command", "message": "",
                                              "command": ["socat", "stdio", "unix:/a b"]}
    assert main.run("gnt-instance", ["console", "--show-cmd", "vm1"]) == 0
    assert capsys.readouterr().out == "socat stdio 'unix:/a b'\n"
    executed: list[Any] = []
    monkeypatch.setattr("os.execvp", lambda path, argv: executed.append((path, argv)))
    main.run("gnt-instance", ["console", "vm1"])
    assert executed == [("socat", ["socat", "stdio", "unix:/a b"])]
    assert fake_client.calls[0] == ("InstanceConsole", ("vm1",))


def test_remove_without_force_is_refused_without_a_terminal(
        fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run("gnt-instance", ["remove", "vm1"]) != 0
    assert "pass -f to confirm" in capsys.readouterr().err
    assert fake_client.calls == []


# --- info -----------------------------------------------------------------------------------

NODES = [{"name": "node2.gnt.test", "uuid": "n2", "group": "default", "group.uuid": "g-1"}]
ROW: dict[str, Any] = {
    "name": "vmxcli2", "uuid": "6c79", "serial_no": 3, "ctime": None, "mtime": None,
    "admin_state": "up", "oper_state": True, "pnode": "node2.gnt.test", "snodes": [],
    "os": "trivial+default", "osparams": {}, "custom_osparams": {}, "network_port": None,
    "hypervisor": "fake", "hvparams": {"migration_mode": "live"}, "custom_hvparams": {},
    "beparams": {"always_failover": False, "auto_balance": True, "maxmem": 128,
                 "minmem": 128, "spindle_use": 1, "vcpus": 2},
    "custom_beparams": {"vcpus": 2},
    "nics": [{"mac": "aa:00:00:e9:d3:d8", "ip": "10.1.2.3", "mode": "bridged",
              "link": "br0", "vlan": "", "network": None, "uuid": "8160", "name": "eth0"}],
    "disk_template": "file",
    "disks": [{"iv_name": "disk/0", "name": None, "uuid": "375e", "size": 1024,
               "mode": "rw", "dev_type": "file",
               "logical_id": ["loop", "/srv/file/vmxcli2/a.file.disk0"],
               "path": "/srv/file/vmxcli2/a.file.disk0"}],
}

# Ganeti 3.0.2's layout (captured on the peer cluster), times left out
EXPECTED_INFO = """\
- Instance name: vmxcli2
  UUID: 6c79
  Serial number: 3
  Creation time: N/A
  Modification time: N/A
  State: configured to be up, actual state is up
  Nodes: 
    - primary: node2.gnt.test
      group: default (UUID g-1)
    - secondaries: 
  Operating system: trivial+default
  Operating system parameters: 
  Allocated network port: None
  Hypervisor: fake
  Hypervisor parameters: 
  Back-end parameters: 
    always_failover: default (False)
    auto_balance: default (True)
    maxmem: default (128)
    memory: default (128)
    minmem: default (128)
    spindle_use: default (1)
    vcpus: 2
  NICs: 
    - nic/0: 
      MAC: aa:00:00:e9:d3:d8
      IP: 10.1.2.3
      mode: bridged
      link: br0
      vlan: 
      network: None
      UUID: 8160
      name: eth0
  Disk template: file
  Disks: 
    - disk/0: file, size 1.0G
      access mode: rw
      logical_id: ['loop', '/srv/file/vmxcli2/a.file.disk0']
      on primary: /srv/file/vmxcli2/a.file.disk0 (N/A:N/A)
      name: None
      UUID: 375e"""  # noqa: W291


def test_info_layout_matches_ganeti() -> None:
    text = instance_info.format_info([instance_info.format_instance_info(ROW, NODES, static=False)])
    assert text == EXPECTED_INFO


def test_info_static_and_custom_parameters() -> None:
    row = {**ROW, "custom_hvparams": {"kernel_path": "/k"},
           "hvparams": {"kernel_path": "/k", "kernel_args": "ro", "migration_port": 8102},
           "snodes": ["node3"], "disks": [], "nics": []}
    text = instance_info.format_info([instance_info.format_instance_info(row, NODES, static=True)])
    assert "  State: configured to be up\n" in text
    assert "  Hypervisor parameters: \n    kernel_args: default (ro)\n    kernel_path: /k\n" \
        in text
    assert "migration_port" not in text
    assert "    - secondaries: node3 (group None, group UUID None)\n" in text
    assert text.endswith("  Disks: ")


def test_info_needs_names_or_all() -> None:
    assert "pass --all" in refused(lambda *a: instance_info.info(parse(*a)), "info")
    assert "--all cannot be combined" in refused(
        lambda *a: instance_info.info(parse(*a)), "info", "--all", "vm1")


# --- gnt-os ---------------------------------------------------------------------------------


def entry(path: str, status: bool = True, diagnose: str = "",
          variants: list[str] | None = None, parameters: list[list[str]] | None = None,
          api: list[int] | None = None) -> dict[str, Any]:
    return {"path": path, "status": status, "diagnose": diagnose,
            "variants": variants or [], "parameters": parameters or [],
            "api_versions": api if api is not None else [20]}


OSES: list[dict[str, Any]] = [
    {"name": "debootstrap", "valid": True, "variants": ["default"],
     "parameters": [["filesystem", "The filesystem type."]], "api_versions": [20, 15, 10, 5],
     "node_status": {
         node: [entry("/usr/share/ganeti/os/debootstrap", variants=["default"],
                      parameters=[["filesystem", "The filesystem type."]],
                      api=[20, 15, 10, 5])]
         for node in ("node10", "node2")}},
    {"name": "broken", "valid": False, "variants": [], "parameters": [], "api_versions": [],
     "node_status": {"node1": [entry("/srv/ganeti/os/broken", False, "missing create script",
                                     api=[])],
                     "node2": [],
                     "node3": [entry("/srv/ganeti/os/broken", variants=["a"]),
                               entry("/usr/share/ganeti/os/broken", False, "shadowed")]}},
    {"name": "trivial", "valid": True, "variants": ["default", "minimal"], "parameters": [],
     "api_versions": [20],
     "node_status": {"node1": [entry("/srv/ganeti/os/trivial",
                                     variants=["default", "minimal"])]}},
]


def test_os_list() -> None:
    assert gnt_os.format_list(OSES) == ["Name", "debootstrap+default", "trivial+default",
                                        "trivial+minimal"]
    assert gnt_os.format_list([{"name": "plain", "valid": True, "variants": []}],
                              headers=False) == ["plain"]


def test_os_info() -> None:
    assert gnt_os.format_info(OSES, ["trivial", "broken", "nosuch"]) == [
        "broken:", "  - valid: False", "  - hidden: False", "  - blacklisted: False",
        "  - trusted: True", "",
        "trivial:", "  - valid: True", "  - hidden: False", "  - blacklisted: False",
        "  - API versions:", "    - 20", "  - variants:", "    - default", "    - minimal",
        "  - parameters:", "  - trusted: True", "",
        "nosuch: ", "",
    ]
    lines = gnt_os.format_info(OSES[:1])
    assert lines[4:11] == ["  - API versions:", "    - 5", "    - 10", "    - 15", "    - 20",
                           "  - variants:", "    - default"]
    assert lines[11:13] == ["  - parameters:", "    - filesystem: The filesystem type."]


def test_os_diagnose() -> None:
    lines, has_bad = gnt_os.format_diagnose(OSES)
    assert has_bad
    assert lines == [
        "OS: debootstrap [global status: valid]",
        "  Variants: [default]",
        "  Node: node2, status: valid (path: /usr/share/ganeti/os/debootstrap) "
        "[API versions: 20, 15, 10, 5] [variants: default] [parameters: filesystem] [trusted]",
        "  Node: node10, status: valid (path: /usr/share/ganeti/os/debootstrap) "
        "[API versions: 20, 15, 10, 5] [variants: default] [parameters: filesystem] [trusted]",
        "",
        "OS: broken [global status: partial valid]",
        "  Node: node3, status: valid (path: /srv/ganeti/os/broken) [API versions: 20] "
        "[variants: a] [no parameters] [trusted]",
        "    [hidden] path: /usr/share/ganeti/os/broken, status: invalid - shadowed",
        "  Node: node1, status: invalid - missing create script (path: /srv/ganeti/os/broken)"
        " [no API versions declared] [trusted]",
        "  Node: node2, status: OS not found",
        "",
        "OS: trivial [global status: valid]",
        "  Variants: [default, minimal]",
        "  Node: node1, status: valid (path: /srv/ganeti/os/trivial) [API versions: 20] "
        "[variants: default, minimal] [no parameters] [trusted]",
        "",
    ]
    assert gnt_os.format_diagnose(OSES[2:]) == (lines[-4:], False)


def test_os_commands_through_main(fake_client: type[FakeClient],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    fake_client.replies["QueryOs"] = list(reversed(OSES))
    assert main.run("gnt-os", ["list", "--no-headers"]) == 0
    assert capsys.readouterr().out.split() == ["debootstrap+default", "trivial+default",
                                               "trivial+minimal"]
    assert main.run("gnt-os", ["diagnose"]) == 1
    assert main.run("gnt-os", ["show", "trivial"]) == 0
    assert capsys.readouterr().out.endswith("trivial:\n  - valid: True\n  - hidden: False\n"
                                            "  - blacklisted: False\n  - API versions:\n"
                                            "    - 20\n  - variants:\n    - default\n"
                                            "    - minimal\n  - parameters:\n"
                                            "  - trusted: True\n\n")


# --- agreement with the opcode table ---------------------------------------------------------


def test_every_built_op_is_accepted_by_the_opcode_table() -> None:
    from cardume import opcodes
    ops = [
        create("-t", "drbd", "--disk", "0:size=5g,mode=ro,name=x,vg=v", "--net",
               "0:mac=generate,ip=10.0.0.1,mode=routed,link=br1,name=n,network=net,vlan=.1",
               "-H", "kvm:serial_console=false", "-B", "memory=128", "-O", "a=b", "-o",
               "debootstrap+default", "-n", "node1:node2", "--tags", "x,y",
               "--no-conflicts-check", "vm1"),
        create("-t", "diskless", "vm1"),
        instance_add.build_remove_op(parse("remove", "vm1")),
        instance_add.build_rename_op(parse("rename", "vm1", "vm2")),
        modify("-B", "maxmem=1g,vcpus=default", "-H", "kernel_path=/k", "-O", "a=b", "-o", "x",
               "--disk", "add:size=1g", "--disk", "0:remove", "--disk", "data:modify,name=y",
               "--net", "add", "--offline", "-t", "drbd", "-n", "node2", "--force-variant",
               "-f", "-m", "512", "vm1"),
        instance_disks.build_grow_disk_op(
            parse("grow-disk", "--no-wait-for-sync", "vm1", "0", "1g")),
        instance_disks.build_activate_disks_op(parse("activate-disks", "vm1")),
        instance_disks.build_deactivate_disks_op(parse("deactivate-disks", "vm1")),
        instance_migrate.build_move_op(parse("move", "-n", "node2", "--ignore-consistency", "vm1")),
        instance_migrate.build_failover_op(parse("failover", "-I", "hail", "--cleanup", "vm1")),
        instance_migrate.build_migrate_op(parse("migrate", "--non-live", "-I", "hail", "vm1")),
        instance_modify.build_tags_op(parse("add-tags", "vm1", "a")),
        instance_modify.build_tags_op(parse("remove-tags", "vm1", "a")),
        instance_lifecycle.build_startup_op(
            "vm1", parse("startup", "--paused", "-B", "maxmem=1g", "vm1")),
        instance_lifecycle.build_shutdown_op("vm1", parse("shutdown", "vm1")),
        instance_lifecycle.build_reboot_op("vm1", parse("reboot", "vm1")),
        instance_lifecycle.build_reinstall_op("vm1", parse("reinstall", "-O", "a=b", "vm1")),
    ]
    for op in ops:
        opcodes.OpCode.from_dict(op)
