"""The kvm hypervisor without QEMU: its command line, parameter checks, NIC commands (on a
FakeRunner), and what a failed start leaves behind (nothing)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cardume import errors
from cardume.cmdlib import common
from cardume.node.cmd import FakeRunner
from cardume.node.hypervisor import kvm, kvm_cmdline, kvm_nics
from cardume.node.hypervisor.kvm import KvmHypervisor
from cardume.node.hypervisor.kvm_cmdline import build_command

MAC = "aa:00:00:12:34:56"


def spec(name: str = "vm1", **hv: Any) -> dict[str, Any]:
    hvparams = {"kernel_path": "", "kernel_args": "ro", "initrd_path": "",
                "root_path": "/dev/vda1", "serial_console": True, "serial_speed": 38400,
                "boot_order": "disk", "disk_type": "paravirtual", "disk_cache": "default",
                "nic_type": "paravirtual", "vnc_bind_address": "", "acpi": True,
                "reboot_behavior": "reboot", "kvm_flag": "disabled", "kvm_extra": ""}
    hvparams.update(hv)
    return {"name": name, "uuid": "0d9c3f4e-7c59-4c1e-9f57-3a4b5c6d7e8f", "hypervisor": "kvm",
            "hvparams": hvparams, "beparams": {"maxmem": 192, "minmem": 128, "vcpus": 2},
            "disks": [], "nics": []}


def argv(s: dict[str, Any], **kw: Any) -> list[str]:
    nics = kvm_nics.plan(s["name"], s["nics"], s["hvparams"]["nic_type"])
    return build_command(s, qmp="/r/x.qmp", serial=kw.pop("serial", "/r/x.serial"),
                         pidfile="/r/x.pid", accel=kw.pop("accel", "tcg"), nics=nics, **kw)


def after(args: list[str], option: str) -> list[str]:
    return [b for a, b in zip(args, args[1:], strict=False) if a == option]


def test_basic_command_line() -> None:
    args = argv(spec())
    assert args[0] == "qemu-system-x86_64"
    assert after(args, "-name") == ["vm1,process=kvm:vm1"]
    assert after(args, "-uuid") == ["0d9c3f4e-7c59-4c1e-9f57-3a4b5c6d7e8f"]
    assert after(args, "-m") == ["192"] and after(args, "-smp") == ["2"]
    assert after(args, "-accel") == ["tcg"]
    assert "-nodefaults" in args and "-no-user-config" in args
    assert after(args, "-display") == ["none"]
    assert after(args, "-qmp") == ["unix:/r/x.qmp,server=on,wait=off"]
    assert after(args, "-chardev") == ["socket,id=serial0,path=/r/x.serial,server=on,wait=off"]
    assert after(args, "-serial") == ["chardev:serial0"]
    assert "-daemonize" in args and after(args, "-pidfile") == ["/r/x.pid"]
    assert after(args, "-boot") == ["order=c"]
    assert "-no-reboot" not in args and "-no-acpi" not in args and "-kernel" not in args


def test_kernel_boot_and_options() -> None:
    s = spec(kernel_path="/boot/k", initrd_path="/boot/i", root_path="/dev/vda",
             kernel_args="quiet x=1", serial_speed=115200, cpu_type="qemu64",
             machine_version="pc-i440fx-7.2", acpi=False, reboot_behavior="exit",
             kvm_extra="-device virtio-rng-pci -global kvm-pit.lost_tick_policy=delay",
             usb_mouse="tablet", boot_order="network")
    args = argv(s)
    assert after(args, "-kernel") == ["/boot/k"] and after(args, "-initrd") == ["/boot/i"]
    assert after(args, "-append") == ["root=/dev/vda quiet x=1 console=ttyS0,115200"]
    assert after(args, "-cpu") == ["qemu64"] and after(args, "-machine") == ["pc-i440fx-7.2"]
    assert "-no-acpi" in args and "-no-reboot" in args
    assert args[-4:] == ["-device", "virtio-rng-pci", "-global",
                         "kvm-pit.lost_tick_policy=delay"]
    assert "usb-tablet" in after(args, "-device")
    assert "-boot" not in args  # the kernel boots directly
    no_serial = argv(spec(kernel_path="/boot/k"), serial=None)
    assert "-chardev" not in no_serial
    assert after(no_serial, "-append") == ["root=/dev/vda1 ro"]


def test_vnc() -> None:
    args = argv(spec(keymap="de"), vnc={"address": "127.0.0.1", "display": 3, "port": 5903})
    assert after(args, "-vnc") == ["127.0.0.1:3"] and after(args, "-k") == ["de"]
    assert "-display" not in args


def test_disks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "disk,0"
    image.write_bytes(b"")
    s = spec()
    s["disks"] = [{"path": str(image), "mode": "rw"}, {"path": "/dev/xenvg/lv1", "mode": "ro"}]
    monkeypatch.setattr(kvm_cmdline, "_is_block", lambda path: path.startswith("/dev/"))
    args = argv(s)
    drives = after(args, "-drive")
    assert drives[0] == (f"file={str(image).replace(',', ',,')},format=raw,if=none,"
                         "id=disk0,cache=writeback")
    assert drives[1] == ("file=/dev/xenvg/lv1,format=raw,if=none,id=disk1,cache=none,"
                         "readonly=on,aio=native")
    devices = after(args, "-device")
    assert "virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=1" in devices
    assert "virtio-blk-pci,drive=disk1,id=virtio-disk1" in devices
    s["disks"][1]["mode"] = "rw"
    s["hvparams"].update(disk_type="ide", disk_cache="writethrough",
                         cdrom_image_path="/iso/x.iso")
    args = argv(s)
    assert "ide-hd,drive=disk1,bus=ide.0,unit=1,id=ide-disk1" in after(args, "-device")
    assert "ide-cd,drive=cdrom0,bus=ide.1,unit=1,id=cdrom" in after(args, "-device")
    assert all("cache=writethrough" in d for d in after(args, "-drive")[:2])
    s["hvparams"].update(disk_type="scsi", cdrom_image_path="")
    devices = after(argv(s), "-device")
    assert "virtio-scsi-pci,id=scsi0" in devices
    assert "scsi-hd,drive=disk0,bus=scsi0.0,scsi-id=0,lun=0,id=scsi-disk0,bootindex=1" \
        in devices


def test_nics_command_line() -> None:
    s = spec(nic_type="e1000")
    s["nics"] = [{"mac": MAC, "mode": "bridged", "link": "br0"},
                 {"mac": "aa:00:00:00:00:02", "mode": "routed", "link": "", "ip": "10.0.0.5"}]
    args = argv(s)
    taps = [kvm_nics.tap_name("vm1", 0), kvm_nics.tap_name("vm1", 1)]
    assert after(args, "-netdev") == [
        f"tap,id=net0,ifname={taps[0]},script=no,downscript=no",
        f"tap,id=net1,ifname={taps[1]},script=no,downscript=no"]
    assert f"e1000,mac={MAC},netdev=net0,id=nic0" in after(args, "-device")
    vhost = kvm_nics.qemu_args(kvm_nics.plan("vm1", s["nics"], "paravirtual"), vhost=True)
    assert vhost[1].endswith(",vhost=on") and vhost[3].startswith("virtio-net-pci,")


def test_tap_names_differ_between_nodes_of_one_host() -> None:
    assert kvm_nics.tap_name("vm1", 0, "/a/nodes/node1/hv/kvm") != \
        kvm_nics.tap_name("vm1", 0, "/a/nodes/node2/hv/kvm")


def test_tap_names() -> None:
    names = {kvm_nics.tap_name(f"instance{i}.example.com", j) for i in range(50)
             for j in range(4)}
    assert len(names) == 200
    assert all(len(n) <= 15 and n.startswith("tapc-") for n in names)


def test_bad_nics_refused() -> None:
    with pytest.raises(errors.WrongInput, match="routed mode needs an IP"):
        kvm_nics.plan("vm1", [{"mac": MAC, "mode": "routed"}], "paravirtual")
    with pytest.raises(errors.WrongInput, match="openvswitch is not supported"):
        kvm_nics.plan("vm1", [{"mac": MAC, "mode": "openvswitch", "link": "x"}],
                      "paravirtual")
    with pytest.raises(errors.WrongInput, match="invalid MAC"):
        kvm_nics.plan("vm1", [{"mac": "zz", "mode": "bridged", "link": "br0"}], "paravirtual")
    with pytest.raises(errors.WrongInput, match="unknown nic_type"):
        kvm_nics.plan("vm1", [], "floppy")


def test_tap_setup_bridged_and_routed() -> None:
    runner = FakeRunner(default=(0, "", ""))
    taps = kvm_nics.TapManager(runner)
    planned = kvm_nics.plan("vm1", [{"mac": MAC, "mode": "bridged", "link": "br0"},
                                    {"mac": MAC, "mode": "routed", "ip": "10.1.2.3"},
                                    {"mac": MAC, "mode": "routed", "ip": "fd00::5",
                                     "link": "100"}], "paravirtual")
    t0, t1, t2 = (n["tap"] for n in planned)
    taps.setup(planned)
    assert runner.argvs == [
        ["ip", "link", "show", "dev", "br0"],
        ["ip", "link", "delete", "dev", t0],
        ["ip", "tuntap", "add", "dev", t0, "mode", "tap"],
        ["ip", "link", "set", "dev", t0, "master", "br0", "up"],
        ["ip", "link", "delete", "dev", t1],
        ["ip", "tuntap", "add", "dev", t1, "mode", "tap"],
        ["ip", "link", "set", "dev", t1, "up"],
        ["ip", "route", "replace", "10.1.2.3/32", "dev", t1],
        ["sysctl", "-q", "-w", f"net.ipv4.conf.{t1}.proxy_arp=1"],
        ["sysctl", "-q", "-w", f"net.ipv4.conf.{t1}.forwarding=1"],
        ["ip", "link", "delete", "dev", t2],
        ["ip", "tuntap", "add", "dev", t2, "mode", "tap"],
        ["ip", "link", "set", "dev", t2, "up"],
        ["ip", "-6", "route", "replace", "fd00::5/128", "dev", t2, "table", "100"],
        ["sysctl", "-q", "-w", f"net.ipv6.conf.{t2}.proxy_ndp=1"],
        ["sysctl", "-q", "-w", f"net.ipv6.conf.{t2}.forwarding=1"],
    ]


def test_tap_setup_in_netns_and_failure_cleans_up() -> None:
    runner = FakeRunner(default=(0, "", ""))
    runner.on(["ip", "netns", "exec", "ns1", "ip", "route"], rc=2, stderr="RTNETLINK: nope")
    taps = kvm_nics.TapManager(runner, netns="ns1")
    planned = kvm_nics.plan("vm1", [{"mac": MAC, "mode": "routed", "ip": "10.1.2.3"}],
                            "paravirtual")
    with pytest.raises(errors.ExecError, match="RTNETLINK: nope"):
        taps.setup(planned)
    assert all(a[:4] == ["ip", "netns", "exec", "ns1"] for a in runner.argvs)
    assert runner.argvs[-1][4:] == ["ip", "link", "delete", "dev", planned[0]["tap"]]


def test_missing_bridge_refused() -> None:
    runner = FakeRunner()
    runner.on("ip link show dev br9", rc=1, stderr='Device "br9" does not exist.')
    taps = kvm_nics.TapManager(runner)
    planned = kvm_nics.plan("vm1", [{"mac": MAC, "mode": "bridged", "link": "br9"}],
                            "paravirtual")
    with pytest.raises(errors.EnvironmentProblem, match="bridge br9 does not exist"):
        taps.setup(planned)
    assert len(runner.argvs) == 1  # nothing created


@pytest.mark.parametrize(("values", "message"), [
    ({"disk_type": "floppy"}, "kvm:disk_type: expected one of paravirtual, ide, scsi"),
    ({"boot_order": "xyz"}, "kvm:boot_order: expected one of disk, cdrom"),
    ({"migration_downtime": -1}, "kvm:migration_downtime: expected an integer from 1"),
    ({"migration_port": 70000}, "kvm:migration_port"),
    ({"kvm_extra": "foo"}, "kvm:kvm_extra: expected QEMU options"),
    ({"kvm_extra": "-device 'x"}, "kvm:kvm_extra: expected shell-quoted"),
    ({"nic_type": "vmxnet"}, "kvm:nic_type"),
    ({"disk_cache": "unsafe"}, "kvm:disk_cache"),
    ({"security_model": "selinux"}, "kvm:security_model: expected one of none, user, pool"),
    ({"security_model": "user", "security_domain": ""},
     "security_model=user needs kvm:security_domain"),
    ({"security_model": "pool", "security_domain": "nobody"},
     "security_domain=nobody only applies to security_model=user"),
    ({"security_model": "user", "security_domain": "-rf"}, "kvm:security_domain"),
    ({"kernel_path": "vmlinuz"}, "kvm:kernel_path: expected an absolute path"),
    ({"vnc_bind_address": "localhost"}, "kvm:vnc_bind_address: expected an IP"),
    ({"kvm_flag": "yes"}, "kvm:kvm_flag"),
    ({"reboot_behavior": "halt"}, "kvm:reboot_behavior"),
])
def test_bad_values_refused_at_submission(values: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.WrongInput, match=message):
        common.check_instance_hvparams("kvm", values)


def test_good_values_accepted() -> None:
    values = {"disk_type": "scsi", "boot_order": "cdrom", "migration_downtime": 30,
              "kvm_extra": "-device virtio-rng-pci", "vnc_bind_address": "0.0.0.0",
              "kernel_path": "/boot/vmlinuz", "kvm_flag": "", "usb_mouse": "",
              "security_model": "user", "security_domain": "qemu-vm1"}
    assert common.check_instance_hvparams("kvm", values) == values


# --- the hypervisor object, with a FakeRunner as its command runner --------------------------

def make(tmp_path: Path, runner: FakeRunner) -> KvmHypervisor:
    return KvmHypervisor(str(tmp_path / "hv" / "kvm"), runner=runner, netns="")


def test_missing_kernel_or_disk_refused_before_anything_runs(tmp_path: Path) -> None:
    runner = FakeRunner()
    hv = make(tmp_path, runner)
    with pytest.raises(errors.WrongInput, match="kernel_path /nonexistent/k does not exist"):
        hv.start(spec(kernel_path="/nonexistent/k"))
    s = spec()
    s["disks"] = [{"path": str(tmp_path / "missing.img")}]
    with pytest.raises(errors.WrongInput, match="disk 0: .*missing.img does not exist"):
        hv.start(s)
    assert runner.argvs == [] and hv.list_instances() == []


def test_qemu_failing_leaves_nothing(tmp_path: Path) -> None:
    runner = FakeRunner(default=(0, "", ""))
    runner.on("qemu-system-x86_64", rc=1,
              stderr="qemu-system-x86_64: -drive file=/x: Could not open '/x': Permission "
                     "denied\n")
    hv = make(tmp_path, runner)
    s = spec()
    s["nics"] = [{"mac": MAC, "mode": "routed", "ip": "10.0.0.9"}]
    with pytest.raises(errors.ExecError) as caught:
        hv.start(s)
    assert str(caught.value) == ("instance vm1: QEMU failed to start: -drive file=/x: Could "
                                 "not open '/x': Permission denied")
    tap = kvm_nics.tap_name("vm1", 0, hv.dir)
    assert ["ip", "tuntap", "add", "dev", tap, "mode", "tap"] in runner.argvs
    assert runner.argvs[-1] == ["ip", "link", "delete", "dev", tap]  # the tap is gone
    assert hv.list_instances() == [] and not os.path.exists(hv.runtime_path("vm1"))


def test_dead_instance_is_cleaned_up(tmp_path: Path) -> None:
    runner = FakeRunner(default=(0, "", ""))
    hv = make(tmp_path, runner)
    tap = kvm_nics.tap_name("vm1", 0)
    with open(hv.runtime_path("vm1"), "w", encoding="utf-8") as handle:
        json.dump({"name": "vm1", "pid": 2 ** 22 + 7, "taps": [tap],
                   "qmp": str(tmp_path / "q"), "serial": None}, handle)
    assert hv.instance_info("vm1") is None
    assert hv.list_instances() == []
    assert not os.path.exists(hv.runtime_path("vm1"))
    assert runner.argvs == [["ip", "link", "delete", "dev", tap]]
    hv.stop("vm1", 1, False)  # stopping what is not running is fine


def test_a_live_process_that_is_not_the_instance_does_not_count(tmp_path: Path) -> None:
    hv = make(tmp_path, FakeRunner(default=(0, "", "")))
    with open(hv.runtime_path("vm1"), "w", encoding="utf-8") as handle:
        json.dump({"name": "vm1", "pid": os.getpid(), "taps": []}, handle)  # pytest's pid
    assert hv.list_instances() == []


def test_socket_dir_is_short(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90)
    hv = KvmHypervisor(str(deep), runner=FakeRunner(), netns="")
    assert hv.sock_dir.startswith("/run/cardume-kvm/")
    assert all(len(p) <= kvm.SOCKET_MAX for p in hv._files("x" * 200).values())


def test_kvm_flag_chooses_the_accelerator(tmp_path: Path) -> None:
    runner = FakeRunner(default=(0, "", ""))
    hv = make(tmp_path, runner)
    with pytest.raises(errors.ExecError, match="QEMU exited at once"):
        hv.start(spec(kvm_flag="enabled"))  # the fake QEMU writes no pidfile
    qemu = runner.commands("qemu-system-x86_64")[0]
    assert after(qemu, "-accel") == ["kvm"]


def test_read_only_ide_disk_refused() -> None:
    s = spec(disk_type="ide")
    s["disks"] = [{"path": "/dev/xenvg/lv1", "mode": "ro"}]
    with pytest.raises(errors.WrongInput, match="disk 0: read-only disks can't be IDE"):
        argv(s)


def test_security_model_runs_qemu_as_another_user(tmp_path: Path) -> None:
    """user: -runas the security domain (which must exist); pool: -runas UID:UID, a uid of
    the pool that no process of the node has, and none: no -runas."""
    hv = make(tmp_path, FakeRunner())
    assert hv._runas(spec()) == (None, None)
    assert hv._runas(spec(security_model="user", security_domain="root")) == ("root", 0)
    with pytest.raises(errors.WrongInput, match="user 'no-such-user-x' does not exist"):
        hv._runas(spec(security_model="user", security_domain="no-such-user-x"))
    busy = os.getuid()  # this test's own process runs as it
    pooled = spec(security_model="pool")
    pooled["uid_pool"] = [[busy, busy], [4000, 4001]]
    assert hv._runas(pooled) == ("4000:4000", 4000)
    # chosen but not started yet: the next start gets another uid
    assert hv._runas(pooled) == ("4001:4001", 4001)
    with pytest.raises(errors.InsufficientResources, match="every uid of the uid pool"):
        hv._runas(pooled)
    hv._release_uid(4000)
    assert hv._runas(pooled) == ("4000:4000", 4000)
    pooled["uid_pool"] = []
    with pytest.raises(errors.WrongInput, match="uid pool is empty"):
        hv._runas(pooled)
    assert after(argv(spec(), runas="4000:4000"), "-runas") == ["4000:4000"]
