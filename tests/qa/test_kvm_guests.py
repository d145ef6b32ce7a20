"""The kvm hypervisor on real LVM and DRBD (issue 5, points 1 and 4): real guests (the tiny
guest of tests/kvmguest) run by QEMU inside the QA nodes, on logical volumes and DRBD
devices, moved between nodes live.

The nodes are themselves software-emulated, so their QEMU emulates in software inside
software emulation: slow to boot, but the disks, the migration stream and DRBD are all
real. What the guest writes to its disk is written from inside the guest (through its
serial console, relayed by the node daemons), and read back from inside the guest after
each move; the nodes' kernels are asked who is primary.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qaharness.cardume import ROOT, VG, CardumeCluster
from qaharness.checks import lv_sizes, proc_drbd, run
from qaharness.vm import Node

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for kvmguest

pytestmark = pytest.mark.qa

OS = "qa-os+default"
GUEST_DIR = "/srv/cardume-guest"
MARKER = "cardume-guest: up"
KVM_DIR = f"{ROOT}/hv/kvm"
# nested software emulation: a boot takes tens of seconds where the host takes two
BOOT_TIMEOUT = 600.0
COMMON = ("-B memory=96 --no-nics --no-name-check --no-ip-check "
          f"-o {OS} -H kvm:kernel_path={GUEST_DIR}/vmlinuz,initrd_path={GUEST_DIR}/initrd.cpio,"
          "root_path=,kernel_args=quiet")


@pytest.fixture(scope="module")
def kvm_cluster(qa_cardume: CardumeCluster) -> Iterator[CardumeCluster]:
    """The QA cluster with kvm enabled beside fake (the other modules' default) and the tiny
    guest's kernel and initramfs on every node; kvm is disabled again at the end."""
    import kvmguest
    guest = kvmguest.build()
    cc = qa_cardume
    for node in cc.nodes:
        node.put(f"{GUEST_DIR}/vmlinuz", guest.kernel.read_bytes())
        node.put(f"{GUEST_DIR}/initrd.cpio", guest.initrd.read_bytes())
    cc.gnt("gnt-cluster modify --enabled-hypervisors=fake,kvm")
    yield cc
    # what a failed test left behind, so that kvm can be disabled again
    for line in cc.gnt("gnt-instance list --no-headers -o name,hypervisor").splitlines():
        name, hypervisor = line.split()
        if hypervisor == "kvm":
            cc.gnt(f"gnt-instance remove -f {name}", check=False)
    cc.gnt("gnt-cluster modify --enabled-hypervisors=fake")


def _node(cc: CardumeCluster, name: str) -> Node:
    return next(node for node in cc.nodes if node.name == name)


def _field(cc: CardumeCluster, instance: str, field: str) -> str:
    return cc.gnt(f"gnt-instance list --no-headers -o {field} {instance}").strip()


def _qemu_pids(node: Node, instance: str) -> list[int]:
    # [q]: the pattern must not match the shell running pgrep, whose command line has it
    pattern = f"[q]emu-system-x86_64 .*process=kvm:{instance}( |$)"
    out = node.run(f"pgrep -f {shlex.quote(pattern)} || true").out
    return [int(pid) for pid in out.split()]


def _serial(node: Node, instance: str) -> str:
    return node.run(f"cat {KVM_DIR}/{instance}.serial.log 2>/dev/null || true").out


def _wait_booted(cc: CardumeCluster, instance: str) -> float:
    """Seconds until the guest on its primary prints its marker on the serial console."""
    node = _node(cc, _field(cc, instance, "pnode"))
    t0 = time.monotonic()
    while MARKER not in _serial(node, instance):
        assert _qemu_pids(node, instance), f"{instance}: QEMU died on {node.name}:\n" \
            + _serial(node, instance)[-2000:]
        assert time.monotonic() - t0 < BOOT_TIMEOUT, f"{instance} did not boot:\n" \
            + _serial(node, instance)[-2000:]
        time.sleep(2)
    return time.monotonic() - t0


def _console(cc: CardumeCluster, instance: str, text: str, expect: str,
             timeout: float = 600.0) -> str:
    """Type ``text`` on the guest's serial console through ``gnt-instance console`` (the
    command it shows, run on the master) until the output has ``expect``."""
    command = cc.gnt(f"gnt-instance console --show-cmd {instance}").strip()
    deadline = time.monotonic() + timeout
    out = ""
    while expect not in out:
        if time.monotonic() >= deadline:
            raise AssertionError(f"{instance}: no {expect!r} on the console:\n{out}\n"
                                 + _diagnosis(cc, instance))
        # a guest emulated inside an emulated node may answer minutes late on a loaded host
        res = cc.master.run(f"{command} --linger 8", input=text, timeout=60)
        out = res.out + res.err
    return out


def _diagnosis(cc: CardumeCluster, instance: str) -> str:
    """What a silent console leaves to look at: the instance's state, its QEMU processes
    on every node and the end of the serial log on its primary."""
    state = cc.gnt(f"gnt-instance list --no-headers -o pnode,status,oper_state {instance}",
                   check=False).strip()
    pids = {node.name: _qemu_pids(node, instance) for node in cc.nodes}
    primary = next((n for n in cc.nodes if state.startswith(n.name + " ")), None)
    log = _serial(primary, instance)[-1500:] if primary else "(no primary)"
    qmp = ""
    if primary is not None:
        res = primary.run(f"python3 -c {shlex.quote(_QMP_STATUS)} {KVM_DIR}/{instance}.json",
                          timeout=30)
        qmp = res.out + res.err
    return f"state: {state}\nqemu pids: {pids}\nqmp: {qmp}\nserial log (end):\n{log}"


# QEMU's own view of the guest (run state, serial chardev), asked on its QMP socket
_QMP_STATUS = """
import json, socket, sys
path = json.load(open(sys.argv[1]))["qmp"]
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(path)
f = s.makefile("rw")
f.readline()
for cmd in ("qmp_capabilities", "query-status", "query-chardev"):
    f.write(json.dumps({"execute": cmd}) + "\n")
    f.flush()
    print(cmd, f.readline().strip())
"""


def _disk_arg(node: Node, instance: str) -> str:
    """The file= of QEMU's first -drive on ``node``: the block device the guest's vda is."""
    [pid] = _qemu_pids(node, instance)
    argv = run(node, f"tr '\\0' '\\n' </proc/{pid}/cmdline").splitlines()
    drive = argv[argv.index("-drive") + 1]
    found = re.search(r"file=([^,]+)", drive)
    assert found, drive
    return found.group(1)


def test_kvm_guest_on_a_logical_volume(kvm_cluster: CardumeCluster) -> None:
    """A plain instance: its LV is the guest's disk (no host cache), what the guest writes
    is in the LV, and a block-mirrored live migration moves the LV's content with it."""
    cc = kvm_cluster
    node1, node2 = cc.nodes[0], cc.nodes[1]
    name = "vmk-plain"
    cc.gnt(f"gnt-instance add -t plain --disk 0:size=32m {COMMON} -n {node1.name} {name}")
    print(f"\n{name} booted in {_wait_booted(cc, name):.0f}s (nested emulation)")
    uuid = cc.disk_uuids(name)[0]
    lv = f"{uuid}.disk0"
    assert lv_sizes(node1)[lv] == 32.0
    assert _disk_arg(node1, name) == f"/dev/{VG}/{lv}"
    # the guest sees a 32 MiB disk (65536 sectors), and writes to it
    out = _console(cc, name, "echo sectors=$(cat /sys/block/vda/size); "
                   "echo on-lv-$((6*7)) | dd of=/dev/vda conv=fsync 2>/dev/null; "
                   "echo written-$((1+1))\n", "written-2")
    assert "sectors=65536" in out
    assert run(node1, f"dd if=/dev/{VG}/{lv} bs=8 count=1 status=none") == "on-lv-42"

    # a local disk moves only when asked: mirrored to an LV on node2 during the migration
    res = cc.master.run(f"gnt-instance migrate -f -n {node2.name} {name}")
    assert not res.ok and "--mirror-disks" in res.err, res.err
    t0 = time.monotonic()
    cc.gnt(f"gnt-instance migrate -f --mirror-disks -n {node2.name} {name}", timeout=900)
    print(f"block-mirrored migration of {name} took {time.monotonic() - t0:.1f}s")
    assert _field(cc, name, "pnode") == node2.name
    assert _field(cc, name, "status") == "running"
    assert not _qemu_pids(node1, name) and len(_qemu_pids(node2, name)) == 1
    assert lv in lv_sizes(node2) and lv not in lv_sizes(node1)
    assert _disk_arg(node2, name) == f"/dev/{VG}/{lv}"
    out = _console(cc, name, "head -c 8 /dev/vda; echo; echo alive-$((2+3))\n", "alive-5")
    assert "on-lv-42" in out

    cc.gnt(f"gnt-instance remove -f {name}")
    assert not _qemu_pids(node2, name) and lv not in lv_sizes(node2)


def test_kvm_guest_on_drbd_migrates_live(kvm_cluster: CardumeCluster) -> None:
    """The seed's HA instance under kvm: the guest's disk is the DRBD device; live migration
    (both primaries only during the move) and failover keep what the guest wrote; the
    nodes' kernels agree on who is primary after each move."""
    cc = kvm_cluster
    node1, node2 = cc.nodes[0], cc.nodes[1]
    name = "vmk-drbd"
    cc.gnt(f"gnt-instance add -t drbd --disk 0:size=32m {COMMON} "
           f"-n {node1.name}:{node2.name} {name}", timeout=600)
    print(f"\n{name} booted in {_wait_booted(cc, name):.0f}s (nested emulation)")
    dev1 = _disk_arg(node1, name)
    assert re.fullmatch(r"/dev/drbd\d+", dev1), dev1
    m1 = int(dev1.removeprefix("/dev/drbd"))
    assert proc_drbd(node1)[m1] == ("Connected", "Primary/Secondary", "UpToDate/UpToDate")
    _console(cc, name, "echo drbd-$((6*7)) | dd of=/dev/vda conv=fsync 2>/dev/null; "
             "echo written-$((1+1))\n", "written-2")

    t0 = time.monotonic()
    cc.gnt(f"gnt-instance migrate -f {name}", timeout=900)
    print(f"live migration of {name} node1 -> node2 took {time.monotonic() - t0:.1f}s")
    assert (_field(cc, name, "pnode"), _field(cc, name, "snodes")) == (node2.name, node1.name)
    assert _field(cc, name, "status") == "running"
    assert not _qemu_pids(node1, name) and len(_qemu_pids(node2, name)) == 1
    dev2 = _disk_arg(node2, name)
    m2 = int(dev2.removeprefix("/dev/drbd"))
    # one primary again, and it is where the guest runs
    assert proc_drbd(node2)[m2] == ("Connected", "Primary/Secondary", "UpToDate/UpToDate")
    assert proc_drbd(node1)[m1] == ("Connected", "Secondary/Primary", "UpToDate/UpToDate")
    out = _console(cc, name, "head -c 7 /dev/vda; echo; "
                   "echo moved | dd of=/dev/vda bs=1 seek=100 conv=fsync 2>/dev/null; "
                   "echo alive-$((2+3))\n", "alive-5")
    assert "drbd-42" in out

    # back, and a failover (stop, promote the other side, start): the guest's writes follow
    cc.gnt(f"gnt-instance migrate -f {name}", timeout=900)
    assert _field(cc, name, "pnode") == node1.name
    assert proc_drbd(node1)[m1][1] == "Primary/Secondary"
    out = _console(cc, name, "dd if=/dev/vda bs=1 skip=100 count=5 2>/dev/null; echo; "
                   "echo back-$((3+4))\n", "back-7")
    assert "moved" in out
    cc.gnt(f"gnt-instance failover -f --shutdown-timeout 0 {name}", timeout=900)
    assert _field(cc, name, "pnode") == node2.name
    print(f"{name} booted again after failover in {_wait_booted(cc, name):.0f}s")
    # the marker is computed by the guest's shell: the console's echo of the typed line
    # must not pass for the answer (it came before head's output once, in CI)
    out = _console(cc, name, "head -c 7 /dev/vda; echo; echo failed-over-$((4+4))\n",
                   "failed-over-8")
    assert "drbd-42" in out

    cc.gnt(f"gnt-instance remove -f {name}")
    assert not _qemu_pids(node2, name)
    assert m2 not in proc_drbd(node2) and m1 not in proc_drbd(node1)
