#!/usr/bin/env python3
"""DRBD figures on the QA cluster (issue 4): the initial sync rate beside plain ``dd`` on the
same virtual disk (the limit), and how long failover, migration and a hard failover take.

Run as root with the project's interpreter (it boots QEMU nodes like ``./dev qa``):
    .venv/bin/python bench/drbd.py [--size MIB] [--json PATH] [--no-hard]

It boots its own 2 QA nodes in a temporary directory, brings a cardume cluster up on them,
measures, and stops them. No Ganeti peer here: Debian's Ganeti runs only with the fake
hypervisor on this machine, whose kernel has no DRBD. Figures only: nothing is asserted.
Under QEMU's software emulation (TCG) every figure is CPU-bound; they compare cardume with
``dd`` on the same nodes, not with real hardware.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "qa"))

from qaharness import cardume, images, vm  # noqa: E402  (the QA harness, not a package)

OS = "qa-os+default"
DEFAULT_JSON = REPO / "bench" / "results" / "drbd-latest.json"
_LINE_RE = re.compile(r"^\s*(\d+): cs:(\S+) ro:(\S+) ds:(\S+)", re.MULTILINE)


def run(node: vm.Node, cmd: str, timeout: float = 600.0) -> str:
    res = node.run(cmd, timeout=timeout)
    if not res.ok:
        raise SystemExit(f"{node.name}: {cmd!r} exited {res.rc}: {res.out}{res.err}")
    return res.out


def timed(node: vm.Node, cmd: str) -> float:
    t0 = time.monotonic()
    run(node, cmd)
    return time.monotonic() - t0


def proc(node: vm.Node) -> dict[int, tuple[str, str, str]]:
    return {int(m): (cs, ro, ds) for m, cs, ro, ds in _LINE_RE.findall(run(node, "cat /proc/drbd"))}


def minors(cc: cardume.CardumeCluster, name: str) -> dict[str, int]:
    out = cc.gnt(f"gnt-instance info -s {name}")
    return {node: int(minor) for node, minor in re.findall(r"node[AB]: (\S+), minor=(\d+)", out)}


def wait_synced(node: vm.Node, minor: int, timeout: float = 900.0) -> float:
    """Seconds until the minor is Connected and UpToDate on both sides (polled in the
    guest, so the poll costs no round trip to the host per sample)."""
    script = (f"import re, sys, time\nt0 = time.monotonic()\n"
              f"while time.monotonic() - t0 < {timeout}:\n"
              f"    text = open('/proc/drbd').read()\n"
              f"    m = re.search(r'^\\s*{minor}: cs:(\\S+) ro:\\S+ ds:(\\S+)', text, re.M)\n"
              f"    if m and m.group(1) == 'Connected' and m.group(2) == 'UpToDate/UpToDate':\n"
              f"        print(time.monotonic() - t0); sys.exit(0)\n"
              f"    time.sleep(0.05)\nsys.exit('timeout')\n")
    return float(node.run("python3 -", input=script, timeout=timeout + 30).out.strip())


def measure(size: int, hard: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {"size_mib": size}
    built = images.build()
    with tempfile.TemporaryDirectory(prefix="cardume-bench-drbd-") as tmp:
        cluster = vm.boot(built, Path(tmp), 2)
        try:
            t0 = time.monotonic()
            cc = cardume.cluster_up(cluster)
            figures["cluster_up_s"] = time.monotonic() - t0
            node1, node2 = cc.nodes
            vg = cardume.VG
            # the limit: dd writing the same amount to an LV of the same virtual disk
            run(node2, f"lvcreate -q -y --wipesignatures n -L {size}m -n bench-dd {vg}")
            seconds = timed(node2, f"dd if=/dev/zero of=/dev/{vg}/bench-dd bs=1M count={size} "
                                   "oflag=direct status=none")
            run(node2, f"lvremove -q -y {vg}/bench-dd")
            figures["dd_write_mib_s"] = size / seconds

            # the initial sync: create without waiting, then time the sync itself
            t0 = time.monotonic()
            cc.gnt(f"gnt-instance add -t drbd --disk 0:size={size}m -B memory=64 -o {OS} "
                   f"-n {node1.name}:{node2.name} --no-wait-for-sync --no-name-check "
                   "--no-ip-check bench-sync")
            figures["add_no_wait_s"] = time.monotonic() - t0
            sync = wait_synced(node1, minors(cc, "bench-sync")[node1.name])
            figures["initial_sync_s"] = sync
            figures["initial_sync_mib_s"] = size / sync
            # the same with DRBD's resync rate unbounded (Ganeti's default caps it at
            # 60 MiB/s), to see what the nodes themselves allow
            cc.gnt("gnt-cluster modify -D drbd:resync-rate=4194304")
            cc.gnt(f"gnt-instance add -t drbd --disk 0:size={size}m -B memory=64 -o {OS} "
                   f"-n {node1.name}:{node2.name} --no-wait-for-sync --no-name-check "
                   "--no-ip-check --no-start bench-fast")
            fast = wait_synced(node1, minors(cc, "bench-fast")[node1.name])
            figures["initial_sync_unbounded_mib_s"] = size / fast
            cc.gnt("gnt-instance remove -f bench-fast")
            cc.gnt("gnt-cluster modify -D drbd:resync-rate=61440")
            figures["tcp_mib_s"] = tcp_throughput(node1, node2, size)
            # the whole add as an admin types it: create, sync, OS, start
            t0 = time.monotonic()
            cc.gnt(f"gnt-instance add -t drbd --disk 0:size={size}m -B memory=64 -o {OS} "
                   f"-n {node2.name}:{node1.name} --no-name-check --no-ip-check bench-add")
            figures["add_with_sync_s"] = time.monotonic() - t0
            cc.gnt("gnt-instance remove -f bench-add")

            t0 = time.monotonic()
            cc.gnt("gnt-instance failover -f bench-sync")
            figures["failover_s"] = time.monotonic() - t0
            t0 = time.monotonic()
            cc.gnt("gnt-instance migrate -f bench-sync")
            figures["migrate_s"] = time.monotonic() - t0
            if hard:
                figures.update(hard_failover(cc))
            cc.gnt("gnt-instance remove -f bench-sync")
        finally:
            cluster.stop()
    return figures


def tcp_throughput(sender: vm.Node, receiver: vm.Node, size: int) -> float:
    """MiB/s of one TCP stream between the nodes (python sockets): the network's share of
    the limit, as the nodes' virtual NICs and the emulated CPUs allow."""
    serve = ("import socket, time\n"
             "s = socket.create_server(('0.0.0.0', 7788)); c, _ = s.accept()\n"
             "n = 0; t0 = None\n"
             "while True:\n"
             "    b = c.recv(1 << 20)\n"
             "    if t0 is None: t0 = time.monotonic()\n"
             "    if not b: break\n"
             "    n += len(b)\n"
             "open('/tmp/bench-tcp', 'w').write(f'{n} {time.monotonic() - t0}')\n")
    receiver.put("/tmp/bench-tcp-serve.py", serve.encode())
    run(receiver, "rm -f /tmp/bench-tcp; python3 /tmp/bench-tcp-serve.py >/dev/null 2>&1 &")
    send = (f"import socket, time\n"
            f"for _ in range(100):\n"
            f"    try:\n"
            f"        c = socket.create_connection(('{receiver.ip}', 7788), 5); break\n"
            f"    except OSError: time.sleep(0.1)\n"
            f"chunk = bytes(1 << 20)\n"
            f"for _ in range({size}): c.sendall(chunk)\n"
            f"c.close()\n")
    sender.run("python3 -", input=send, timeout=600)
    for _ in range(600):
        out = receiver.run("cat /tmp/bench-tcp 2>/dev/null").out.split()
        if len(out) == 2:
            return int(out[0]) / (1 << 20) / float(out[1])
        time.sleep(0.1)
    return float("nan")


def hard_failover(cc: cardume.CardumeCluster) -> dict[str, float]:
    """Pull the plug on the primary's node: the seconds from then until the instance runs
    on the survivor (DRBD noticing the loss, marking the node offline, the failover)."""
    node1, node2 = cc.nodes
    restart = getattr(cardume, "restart_node", None)
    if restart is None or not hasattr(node2, "kill"):
        return {}
    cc.gnt("gnt-instance migrate -f bench-sync")  # primary on node2, which dies
    t0 = time.monotonic()
    node2.kill()
    cc.gnt(f"gnt-node modify -O yes {node2.name}")
    cc.gnt("gnt-instance failover -f --ignore-consistency bench-sync", timeout=300)
    seconds = time.monotonic() - t0
    restart(cc, node2)
    cc.gnt(f"gnt-node modify -O no {node2.name}")
    return {"hard_failover_s": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="disk size in MiB (default 256)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the figures")
    parser.add_argument("--no-hard", action="store_true", help="skip the hard failover")
    args = parser.parse_args(argv)
    if args.size <= 0:
        parser.error(f"--size must be a positive number of MiB, not {args.size}")
    figures = measure(args.size, not args.no_hard)
    rows = [
        (f"dd write, {args.size} MiB to an LV (the limit)", figures.get("dd_write_mib_s"),
         "MiB/s"),
        (f"DRBD initial sync of {args.size} MiB", figures.get("initial_sync_mib_s"), "MiB/s"),
        ("  sync time", figures.get("initial_sync_s"), "s"),
        ("DRBD initial sync, resync-rate unbounded", figures.get("initial_sync_unbounded_mib_s"),
         "MiB/s"),
        ("one TCP stream between the nodes", figures.get("tcp_mib_s"), "MiB/s"),
        ("gnt-instance add -t drbd --no-wait-for-sync", figures.get("add_no_wait_s"), "s"),
        ("gnt-instance add -t drbd (waits for the sync)", figures.get("add_with_sync_s"), "s"),
        ("gnt-instance failover (running, graceful)", figures.get("failover_s"), "s"),
        ("gnt-instance migrate (live, dual-primary)", figures.get("migrate_s"), "s"),
        ("hard failover: kill -9 the primary's VM to running", figures.get("hard_failover_s"),
         "s"),
        ("cluster up on 2 QA nodes", figures.get("cluster_up_s"), "s"),
    ]
    for label, value, unit in rows:
        shown = "-" if value is None else f"{value:.1f} {unit}"
        print(f"{label:<55} {shown:>12}")
    if figures.get("dd_write_mib_s") and figures.get("initial_sync_mib_s"):
        print(f"{'sync rate / dd rate':<55} "
              f"{figures['initial_sync_mib_s'] / figures['dd_write_mib_s']:>11.2f}x")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
