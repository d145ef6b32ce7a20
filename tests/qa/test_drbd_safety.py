"""Never lose data (issue 4, point 5): a DRBD primary loses its power mid-write.

node2 (the primary) writes numbered blocks to its DRBD device and reports each one to
node1 once the write returned; then its VM is killed like a power cut. Every block node2
was told had been written must be on node1 after the failover (protocol C), and when node2
comes back it must resync from node1, never the reverse. node1 is the master and is never
killed. These tests run after the other DRBD tests (file order) and leave every node up
and online with no instance left, whatever happens.

Each power cut is one story run whole by a module-scoped fixture (a VM killed and brought
back can't be shared in pieces between tests that may run in any order): the fixture
records how each phase went, and each test reports one phase. So any test runs alone or in
any order, and the cluster is back in shape after each story.
"""

from __future__ import annotations

import json
import re
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from qaharness.cardume import NODED_LOG, VG, CardumeCluster, restart_node
from qaharness.checks import lv_sizes, proc_drbd
from qaharness.checks import run as _run
from qaharness.vm import AgentError, Node

pytestmark = pytest.mark.qa

OS = "qa-os+default"
NAME = "vmsafe1"  # failed over after its primary is marked offline
NAME2 = "vmsafe2"  # failed over with --ignore-consistency, the primary not marked offline
BLOCK = 4096
ACK_PORT = 7790
ACK_FILE = "/root/qa-safety-acks"
ACK_PID = "/run/qa-safety-ack.pid"
FAILOVER_BOUND = 120.0  # seconds a failover away from a dead node may take
MARKER_BLOCK = 5  # the writer wrote there first: node2's old copy differs from the marker

# The content of block N (the writer's and the checker's definition).
_BLOCK_PY = """
def block(n):
    head = b"cardume-qa-safety block %08d |" % n
    return (head * (4096 // len(head) + 1))[:4096]
"""

# On node1: appends whatever the writer reports (one block number a line) to ACK_FILE.
_ACK_LISTENER = """
import os, socket, sys
port, path, pidfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
srv = socket.create_server(("0.0.0.0", port))
with open(pidfile, "w") as f:
    f.write(str(os.getpid()))
out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
conn, _ = srv.accept()
while True:
    chunk = conn.recv(65536)
    if not chunk:
        break
    os.write(out, chunk)
"""

# On node2: writes blocks 0, 1, 2... with O_DIRECT (the write returns once DRBD has it on
# both nodes' disks, protocol C), then reports the number to node1's listener.
_WRITER = _BLOCK_PY + """
import mmap, os, socket, sys, time
dev, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 30
while True:
    try:
        ack = socket.create_connection((host, port), 5)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
ack.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
count = os.lseek(fd, 0, os.SEEK_END) // 4096
buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
for n in range(count):
    buf[:] = block(n)
    if os.pwrite(fd, buf, n * 4096) != 4096:
        sys.exit("short write at block %d" % n)
    ack.sendall(b"%d\\n" % n)
print("wrote all", count, "blocks")
"""

# On node1: reads back every acknowledged block; prints a JSON summary.
_CHECKER = _BLOCK_PY + """
import json, os, sys
dev, path = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    lines = f.read().split(b"\\n")[:-1]  # a last line without its newline is no ack
acked = [int(x) for x in lines]
fd = os.open(dev, os.O_RDONLY)
bad = [n for n in acked if os.pread(fd, 4096, n * 4096) != block(n)]
print(json.dumps({"acked": len(acked), "max": max(acked, default=-1),
                  "sequential": acked == list(range(len(acked))), "bad": bad[:20],
                  "bad_count": len(bad)}))
"""

def lvs(node: Node) -> set[str]:
    return set(lv_sizes(node))


def _field(cc: CardumeCluster, name: str, field: str) -> str:
    return cc.gnt(f"gnt-instance list --no-headers -o {field} {name}").strip()


def _minors(cc: CardumeCluster, name: str) -> dict[str, int]:
    out = cc.gnt(f"gnt-instance info -s {name}")
    return {node: int(minor) for node, minor in re.findall(r"node[AB]: (\S+), minor=(\d+)",
                                                             out)}


def evidence(cc: CardumeCluster) -> str:
    """What to look at when something went wrong: DRBD, noded logs and dmesg, per node."""
    out = []
    for node in cc.nodes:
        try:
            text = node.run(f"cat /proc/drbd; echo '--- {NODED_LOG}'; tail -n 40 {NODED_LOG}; "
                            "echo '--- dmesg'; dmesg | grep -i drbd | tail -n 40",
                            timeout=30).out
        except AgentError as exc:
            text = f"(unreachable: {exc})"
        out.append(f"===== {node.name}\n{text}")
    return "\n".join(out)


def _gnt(cc: CardumeCluster, cmd: str, timeout: float = 300.0) -> tuple[bool, str, float]:
    t0 = time.monotonic()
    res = cc.master.run(cmd, timeout=timeout)
    took = time.monotonic() - t0
    text = (res.out + res.err).strip()
    print(f"$ {cmd}  [rc={res.rc}, {took:.1f}s]\n{text}")
    return res.ok, text, took


def _alive(node: Node) -> bool:
    return node.proc is not None and node.proc.poll() is None and node._sock is not None


@pytest.fixture(scope="module")
def cc(qa_cardume: CardumeCluster) -> Iterator[CardumeCluster]:
    """The cluster, put back in shape afterwards."""
    yield qa_cardume
    problems = _restore(qa_cardume)
    assert not problems, "\n".join(problems)


def _restore(cc: CardumeCluster) -> list[str]:
    """node2 running and online, the test instances gone, the acknowledgement listener
    stopped; what could not be done."""
    node1, node2 = cc.nodes[0], cc.nodes[1]
    problems = []
    if not _alive(node2):
        try:
            restart_node(cc, node2)
        except AgentError as exc:
            problems.append(f"restart of {node2.name}: {exc}")
    if cc.gnt(f"gnt-node list --no-headers -o offline {node2.name}", check=False).strip() \
            not in ("N", "False", "no"):
        ok, text, _ = _gnt(cc, f"gnt-node modify -O no {node2.name}")
        if not ok:
            problems.append(text)
    existing = cc.gnt("gnt-instance list --no-headers -o name", check=False).split()
    for name in (NAME, NAME2):
        if name in existing:
            # (waits for a failover job still stuck on the dead node, if any)
            ok, text, _ = _gnt(cc, f"gnt-instance remove -f {name}", timeout=900)
            if not ok:
                problems.append(text)
    _stop_listener(node1)
    return problems


def _stop_listener(node1: Node) -> None:
    node1.run(f"test -s {ACK_PID} && kill $(cat {ACK_PID}); rm -f {ACK_PID}")


def _add_on_node2(cc: CardumeCluster, name: str) -> tuple[int, int, str]:
    """A running drbd instance, primary node2 and secondary node1: (m1, m2, disk uuid)."""
    node1, node2 = cc.nodes[0], cc.nodes[1]
    _run(node1, f"gnt-instance add -t drbd --disk 0:size=64m -B memory=64 -o {OS} "
                f"-n {node2.name}:{node1.name} --no-name-check --no-ip-check {name}",
         timeout=300)
    minors = _minors(cc, name)
    m1, m2 = minors[node1.name], minors[node2.name]
    assert proc_drbd(node2)[m2] == ("Connected", "Primary/Secondary", "UpToDate/UpToDate")
    assert proc_drbd(node1)[m1] == ("Connected", "Secondary/Primary", "UpToDate/UpToDate")
    return m1, m2, cc.disk_uuids(name)[0]


def _write_then_kill(cc: CardumeCluster, m2: int, min_acks: int = 300) -> float:
    """Run the writer on node2 against /dev/drbd<m2>, acknowledgements logged on node1;
    once ``min_acks`` blocks are acknowledged, kill node2's VM. Returns when it died."""
    node1, node2 = cc.nodes[0], cc.nodes[1]
    _stop_listener(node1)
    node1.put("/root/qa-ack-listener.py", _ACK_LISTENER.encode())
    _run(node1, f"rm -f {ACK_FILE}; "
                f"setsid python3 /root/qa-ack-listener.py {ACK_PORT} {ACK_FILE} {ACK_PID} "
                "</dev/null >/root/qa-ack-listener.log 2>&1 &")
    node2.put("/root/qa-writer.py", _WRITER.encode())
    _run(node2, f"setsid python3 /root/qa-writer.py /dev/drbd{m2} {node1.ip} {ACK_PORT} "
                "</dev/null >/root/qa-writer.log 2>&1 &")
    deadline = time.monotonic() + 120
    while True:
        acks = int(_run(node1, f"cat {ACK_FILE} 2>/dev/null | wc -l").split()[0])
        if acks >= min_acks:
            break
        assert time.monotonic() < deadline, (
            f"only {acks} blocks acknowledged after 120s; writer: "
            + node2.run("cat /root/qa-writer.log").out)
        time.sleep(0.2)
    writer = _run(node2, "pgrep -f qa-writer.py || echo none").strip()
    assert writer != "none", "the writer finished before the power cut"
    node2.kill()  # the power cord, mid-write
    print(f"{node2.name} killed mid-write, {acks}+ blocks acknowledged")
    return time.monotonic()


def _check_acknowledged(cc: CardumeCluster, m1: int) -> dict[str, object]:
    """Every block node2 was told was written is on node1's device, intact."""
    node1 = cc.nodes[0]
    res = node1.run(f"python3 - /dev/drbd{m1} {ACK_FILE}", input=_CHECKER, timeout=120)
    assert res.ok, res.out + res.err
    summary: dict[str, object] = json.loads(res.out)
    print(f"blocks acknowledged before the power cut: {summary['acked']} "
          f"(last {summary['max']}); damaged or missing on {node1.name}: "
          f"{summary['bad_count']}")
    assert int(summary["acked"]) >= 300 and summary["sequential"], summary  # type: ignore[call-overload]
    assert summary["bad_count"] == 0, f"{summary}\n{evidence(cc)}"
    return summary


def _after_failover(cc: CardumeCluster, name: str, m1: int) -> None:
    node1 = cc.nodes[0]
    assert _field(cc, name, "pnode") == node1.name
    assert _field(cc, name, "status") == "running"
    cs, ro, ds = proc_drbd(node1)[m1]
    assert ro.startswith("Primary/") and ds.startswith("UpToDate/"), (cs, ro, ds)


def _kernel_log_since(node: Node, since: float) -> str:
    """The node's DRBD kernel messages stamped after ``since`` (seconds since boot)."""
    lines = []
    for line in _run(node, "dmesg | grep -i drbd || true").splitlines():
        stamp = re.match(r"^\[\s*([\d.]+)\]", line)
        if stamp and float(stamp.group(1)) >= since:
            lines.append(line)
    return "".join(line + "\n" for line in lines)


def _resync_from_node1(cc: CardumeCluster, name: str, m1: int, m2: int, uuid: str) -> None:
    """Change a block on node1 that node2 also wrote, bring node2 back and the mirror up:
    node1 must stay primary and be the sync source; both copies end up identical."""
    node1, node2 = cc.nodes[0], cc.nodes[1]
    data_lv = f"/dev/{VG}/{uuid}.disk0_data"
    marker = (b"cardume-qa-survivor-marker|" * (BLOCK // 27 + 1))[:BLOCK]
    node1.put("/root/qa-marker", marker)
    _run(node1, f"dd if=/root/qa-marker of=/dev/drbd{m1} bs={BLOCK} seek={MARKER_BLOCK} "
                "oflag=direct conv=notrunc,fsync status=none")

    t0 = time.monotonic()
    restart_node(cc, node2)
    print(f"{node2.name} restarted (boot, LVM, node daemon) in {time.monotonic() - t0:.1f}s")
    assert f"{uuid}.disk0_data" in lvs(node2)
    assert m2 not in proc_drbd(node2)
    offline = cc.gnt(f"gnt-node list --no-headers -o offline {node2.name}").strip()
    if offline not in ("N", "False", "no"):
        ok, text, _ = _gnt(cc, f"gnt-node modify -O no {node2.name}")
        assert ok, f"gnt-node modify -O no {node2.name} failed:\n{text}\n{evidence(cc)}"
    # the kernel's clock, not a line count: a full ring buffer (a long QA session logs a
    # lot of DRBD) drops old lines as new ones come
    since = float(_run(node1, "cut -d' ' -f1 /proc/uptime"))
    ok, text, _ = _gnt(cc, f"gnt-instance activate-disks {name}")
    assert ok, f"activate-disks failed:\n{text}\n{evidence(cc)}"

    # node2 syncs from node1, which stays primary all along
    seen: list[tuple[tuple[str, str, str] | None, tuple[str, str, str] | None]] = []
    deadline = time.monotonic() + 180
    while True:
        s1, s2 = proc_drbd(node1).get(m1), proc_drbd(node2).get(m2)
        if not seen or seen[-1] != (s1, s2):
            seen.append((s1, s2))
        assert s1 is not None and s1[1].startswith("Primary/"), (seen, evidence(cc))
        assert s1[0] != "SyncTarget" and (s2 is None or s2[0] != "SyncSource"), (
            f"wrong sync direction: {seen}\n{evidence(cc)}")
        if s1 == ("Connected", "Primary/Secondary", "UpToDate/UpToDate"):
            break
        assert time.monotonic() < deadline, f"no sync in 180s: {seen}\n{evidence(cc)}"
        time.sleep(0.5)
    print("DRBD states seen (node1, node2): " + "; ".join(map(str, seen)))
    assert proc_drbd(node2)[m2] == ("Connected", "Secondary/Primary", "UpToDate/UpToDate")
    # the kernels' own account of the resync, which polling could miss
    log1 = _kernel_log_since(node1, since)
    log2 = _run(node2, "dmesg | grep -i drbd || true")
    print(f"--- {node1.name} dmesg\n{log1}--- {node2.name} dmesg\n{log2}")
    assert "-> SyncSource" in log1 and "-> SyncTarget" not in log1, log1
    assert "-> SyncTarget" in log2 and "-> SyncSource" not in log2, log2

    md5_1 = _run(node1, f"md5sum < /dev/drbd{m1}").split()[0]
    md5_2 = _run(node2, f"md5sum < {data_lv}").split()[0]
    assert md5_1 == md5_2, f"the mirrors differ after the resync\n{evidence(cc)}"
    back = _run(node2, f"dd if={data_lv} bs={BLOCK} skip={MARKER_BLOCK} count=1 "
                       "iflag=direct status=none")
    assert back.encode() == marker, back[:100]

    _run(node1, f"gnt-instance remove -f {name}", timeout=300)
    for node, minor in ((node1, m1), (node2, m2)):
        assert minor not in proc_drbd(node)
        assert not {lv for lv in lvs(node) if lv.startswith(uuid)}, node.name
    offline = cc.gnt(f"gnt-node list --no-headers -o offline {node2.name}").strip()
    assert offline in ("N", "False", "no"), offline


@dataclass
class Story:
    """How each phase of a power-cut story went: None when it passed, else its failure."""

    phases: dict[str, str | None] = field(default_factory=dict)

    def run(self, phase: str, step: Callable[[], None]) -> None:
        if any(self.phases.values()):
            self.phases[phase] = "not run: an earlier phase failed"
            return
        try:
            step()
            self.phases[phase] = None
        except (Exception, pytest.fail.Exception):
            self.phases[phase] = traceback.format_exc()

    def check(self, phase: str) -> None:
        failure = self.phases[phase]
        if failure is not None:
            pytest.fail(f"phase {phase!r} of the power cut:\n{failure}", pytrace=False)


@pytest.fixture(scope="module")
def offline_failover(cc: CardumeCluster) -> Story:
    """Power cut on node2, the primary of NAME; the admin marks node2 offline and fails
    over (phase 'failover'); node2 comes back and resyncs from node1 (phase 'resync')."""
    node1, node2 = cc.nodes[0], cc.nodes[1]
    story = Story()
    made: list[tuple[int, int, str]] = []  # the instance's minors and disk uuid

    def failover() -> None:
        made.append(_add_on_node2(cc, NAME))
        m1, m2, _ = made[0]
        t_kill = _write_then_kill(cc, m2)
        # the master stops talking to the dead node, then moves the instance to node1
        ok, text, _ = _gnt(cc, f"gnt-node modify -O yes {node2.name}")
        assert ok, f"gnt-node modify -O yes refused while {node2.name} is dead:\n{text}"
        print(f"{node1.name} DRBD before the failover: {proc_drbd(node1).get(m1)}")
        ok, text, took = _gnt(cc, f"gnt-instance failover -f {NAME}")
        print(f"failover command: {took:.1f}s; power cut to instance running on "
              f"{node1.name}: {time.monotonic() - t_kill:.1f}s")
        assert ok, (f"failover of {NAME} (primary {node2.name} dead and offline) without "
                    f"--ignore-consistency failed:\n{text}\n{evidence(cc)}")
        _after_failover(cc, NAME, m1)
        _check_acknowledged(cc, m1)

    def resync() -> None:
        _resync_from_node1(cc, NAME, *made[0])

    story.run("failover", failover)
    story.run("resync", resync)
    if any(story.phases.values()):
        problems = _restore(cc)  # the next story starts from a whole cluster
        assert not problems, "\n".join(problems)
    return story


def test_kill_primary_mid_write_loses_no_acknowledged_block(offline_failover: Story) -> None:
    """Power cut on the primary, the admin marks it offline and fails over: every
    acknowledged write is on the new primary."""
    offline_failover.check("failover")


def test_stale_primary_resyncs_from_the_survivor(offline_failover: Story) -> None:
    """The dead primary comes back: it resyncs from the survivor, never the reverse."""
    offline_failover.check("resync")


def test_kill_primary_failover_with_ignore_consistency(cc: CardumeCluster) -> None:
    """The same power cut, failed over at once with --ignore-consistency and the dead node
    not marked offline: no acknowledged write lost, and the same resync when it returns."""
    try:
        _ignore_consistency_story(cc)
    except BaseException:
        _restore(cc)  # whatever test comes next starts from a whole cluster
        raise


def _ignore_consistency_story(cc: CardumeCluster) -> None:
    node1, node2 = cc.nodes[0], cc.nodes[1]
    m1, m2, uuid = _add_on_node2(cc, NAME2)
    t_kill = _write_then_kill(cc, m2)
    print(f"{node1.name} DRBD before the failover: {proc_drbd(node1).get(m1)}")
    # the admin's recovery for a dead primary: it must not wait on that node for long
    ok, text, took = _gnt(cc, f"gnt-instance failover -f --ignore-consistency {NAME2}",
                          timeout=FAILOVER_BOUND)
    print(f"failover command: {took:.1f}s; power cut to instance running on "
          f"{node1.name}: {time.monotonic() - t_kill:.1f}s")
    if not ok:
        probe = node1.run(f"ss -tno dst {node2.ip}; python3 -c 'import socket, time; "
                          f"t = time.time()\ntry: socket.create_connection((\"{node2.ip}\", "
                          "1811), 20)\nexcept OSError as e: print(\"fresh connect:\", e, "
                          "round(time.time() - t, 1), \"s\")'", timeout=60)
        pytest.fail(f"failover --ignore-consistency of {NAME2} ({node2.name} dead, not "
                    f"marked offline) did not end within {FAILOVER_BOUND}s:\n{text}\n"
                    f"--- connections from {node1.name} to {node2.name}\n"
                    f"{probe.out}{probe.err}\n{evidence(cc)}")
    _after_failover(cc, NAME2, m1)
    _check_acknowledged(cc, m1)
    _resync_from_node1(cc, NAME2, m1, m2, uuid)
