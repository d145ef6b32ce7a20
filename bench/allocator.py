#!/usr/bin/env python3
"""The built-in allocator's time to place one instance, beside Debian's hail.

Run with the project's interpreter:  .venv/bin/python bench/allocator.py [--sizes 10,100,1000]
    [--repeat 5]

For each cluster size it generates one request (tests/unit/alloc_kit.py: varied nodes, three
instances per node, a new drbd instance to place and a plain one), writes it to a file and
times: the built-in allocator in process (``protocol.answer``, request already parsed from
JSON), the ``cardume-iallocator`` program on the file, and ``hail`` on the same file (the
median of --repeat). Then, on a 3-node local cluster (bench/run.py's), ``gnt-instance add``
of a diskless instance as an admin types it: with ``-n NODE``, without nodes (the built-in
default allocator) and with ``-I hail`` (--adds of each, the median; the master builds the
request from every node's live resources each time). Figures only: nothing here asserts a
time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "unit"))
import alloc_kit as kit  # noqa: E402

from cardume.allocator import protocol  # noqa: E402

HAIL = Path("/usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators/hail")
OURS = REPO / ".venv" / "bin" / "cardume-iallocator"


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(argv: list[str], timeout: float | None = None) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {out.stderr.strip()}")


def local_adds(count: int) -> None:
    """gnt-instance add on a local cluster: named node, built-in allocator, hail."""
    import run as bench  # bench/run.py: the local cluster
    cluster = bench.LocalCluster(bench.NODES)
    try:
        cluster.up()
        gnt = cluster.cmd("gnt-instance")
        common = ["add", "-t", "diskless", "--no-start", "--no-install", "--no-name-check",
                  "--no-ip-check", "-o", "debootstrap+default"]
        print("\ngnt-instance add on a 3-node local cluster (diskless, no start; median of "
              f"{count})")
        modes = [("-n node1", ["-n", "node1"]), ("no node (built-in)", []),
                 ("-I hail", ["-I", "hail"])]
        for index, (label, extra) in enumerate(modes):
            if "hail" in label and not HAIL.exists():
                print(f"  {label:<20} hail missing")
                continue
            times = []
            for i in range(count):
                argv = [gnt, *common, *extra, f"b{index}x{i}"]
                start = time.perf_counter()
                done = subprocess.run(argv, env=cluster.env, capture_output=True, text=True)
                times.append((time.perf_counter() - start) * 1000)
                if done.returncode != 0:
                    raise SystemExit(f"{' '.join(argv[1:])} failed: {done.stderr.strip()}")
            print(f"  {label:<20} {statistics.median(times):7.1f} ms")
    finally:
        cluster.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--adds", type=int, default=20,
                        help="gnt-instance adds of each kind on the local cluster (0: none)")
    parser.add_argument("--hail-timeout", type=float, default=30.0,
                        help="seconds before hail is given up on (it is timed once)")
    args = parser.parse_args()
    print(f"{'nodes':>6} {'template':>8} {'in-process':>11} {'program':>9} {'hail':>9} "
          f"{'hail/ours':>9}  same choice")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            data = kit.random_cluster(7, size, size * 3)
            for template in ("drbd", "plain"):
                req = kit.allocate(data, template=template)
                path = Path(tmp) / f"req-{size}-{template}.json"
                path.write_text(json.dumps(req))
                inproc = median_ms(lambda r=req: protocol.answer(r), args.repeat)
                prog = median_ms(lambda p=path: run([str(OURS), str(p)]), args.repeat)
                ours = protocol.answer(req)["result"]
                if HAIL.exists():
                    start = time.perf_counter()
                    try:
                        done = subprocess.run([str(HAIL), str(path)], capture_output=True,
                                              text=True, timeout=args.hail_timeout)
                    except subprocess.TimeoutExpired:
                        hail_txt = f">{args.hail_timeout:g}s"
                        ratio = f">{args.hail_timeout * 1000 / prog:.0f}x"
                        same = "-"
                    else:
                        hail = (time.perf_counter() - start) * 1000
                        theirs = json.loads(done.stdout)["result"]
                        ratio = f"{hail / prog:8.2f}x"
                        same = "yes" if theirs == ours else f"no ({ours} vs {theirs})"
                        hail_txt = f"{hail:7.1f}ms"
                else:
                    hail_txt, ratio, same = "missing", "-", "-"
                print(f"{size:>6} {template:>8} {inproc:9.1f}ms {prog:7.1f}ms {hail_txt:>9} "
                      f"{ratio:>9}  {same}")
    if args.adds > 0:
        local_adds(args.adds)


if __name__ == "__main__":
    main()
