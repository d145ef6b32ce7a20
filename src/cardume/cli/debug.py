"""gnt-debug: test jobs, raw job submission, and the lock table."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cardume import errors
from cardume.cli import common, listing, options
from cardume.master.client import MASTER_RESTART_WAIT, Client


def build(sub: Any) -> None:
    p = sub.add_parser("delay", help="run a job that only waits (job-throughput unit)")
    p.add_argument("duration", type=float, help="seconds to wait")
    p.add_argument("--no-master", dest="on_master", action="store_false",
                   help="don't wait on the master")
    p.add_argument("-n", "--node", dest="nodes", action="append", default=[],
                   help="also wait on this node (repeatable)")
    p.add_argument("-r", "--repeat", type=int, default=0, help="repeat the wait this many times")
    p.add_argument("-i", "--interruptible", action="store_true",
                   help="allow canceling the job while it waits")
    p.add_argument("-l", "--no-locks", action="store_true",
                   help="don't lock the nodes given with -n while waiting")
    options.add_job_options(p, dry_run=False)
    p.set_defaults(func=delay)

    p = sub.add_parser("submit-job", help="submit jobs of raw opcodes from a JSON file")
    p.add_argument("opcodes_file", help="JSON list of opcodes")
    p.add_argument("--job-repeat", type=int, default=1, help="submit this many jobs")
    p.add_argument("--op-repeat", type=int, default=1, help="repeat the opcodes in each job")
    p.add_argument("--timing-stats", action="store_true", help="print timings")
    p.add_argument("--each", action="store_true", help="one job per opcode")
    p.set_defaults(func=submit_job)

    for name in ("allocator", "iallocator"):
        p = sub.add_parser(name, help="show an allocator's request (--dir in) or its "
                                      "answer (--dir out)")
        p.add_argument("--dir", dest="direction", choices=("in", "out"), default="in",
                       help="in: the request document; out: the allocator's answer")
        p.add_argument("-m", "--mode", default="allocate",
                       choices=("allocate", "multi-allocate", "relocate", "node-evacuate",
                                "change-group"), help="request type")
        p.add_argument("-I", "--iallocator", help="allocator (default: the cluster's)")
        p.add_argument("--memory", help="memory of the instance (MiB, or with a unit)")
        p.add_argument("--disks", help="comma-separated disk sizes (MiB, or with a unit)")
        p.add_argument("-t", "--disk-template", help="disk template")
        p.add_argument("--nics", help="comma-separated NICs, each mac/ip/link")
        p.add_argument("-o", "--os-type", help="OS, as name+variant")
        p.add_argument("-p", "--vcpus", type=int, help="CPU count of the instance")
        p.add_argument("--tags", help="comma-separated tags")
        p.add_argument("--evac-mode", choices=("all", "secondary-only", "primary-only"),
                       help="node-evacuate: which instances move")
        p.add_argument("--target-groups", help="change-group: comma-separated groups")
        p.add_argument("--spindle-use", type=int, help="spindles the instance uses")
        p.add_argument("--count", type=int, help="multi-allocate: how many instances")
        p.add_argument("-g", "--node-group", dest="group_name", help="group to allocate in")
        p.add_argument("name", help="instance name (several, comma-separated, for "
                                    "node-evacuate and change-group)")
        p.set_defaults(func=allocator)

    p = sub.add_parser("locks", help="show who holds and who waits for each lock")
    options.NO_HEADERS.add(p)
    options.SEPARATOR.add(p, help="separate columns with this text")
    p.add_argument("-o", "--output", help="fields: name,mode,owner,pending")
    p.set_defaults(func=locks)


def delay(args: argparse.Namespace) -> int:
    if args.duration < 0:
        raise errors.WrongInput(f"invalid duration {args.duration}: expected seconds >= 0")
    if args.repeat < 0:
        raise errors.WrongInput(f"invalid repeat count {args.repeat}: expected >= 0")
    op = {"OP_ID": "OP_TEST_DELAY", "duration": args.duration, "on_master": args.on_master,
          "on_nodes": args.nodes, "repeat": args.repeat, "interruptible": args.interruptible,
          "no_locks": args.no_locks}
    common.run_job(args, [op])
    return 0


def allocator(args: argparse.Namespace) -> int:
    from cardume.cli.params import parse_names_list, parse_size
    op: dict[str, Any] = {
        "OP_ID": "OP_TEST_ALLOCATOR", "direction": args.direction, "mode": args.mode,
        "name": args.name, "iallocator": args.iallocator,
        "disk_template": args.disk_template, "os": args.os_type, "vcpus": args.vcpus,
        "tags": parse_names_list(args.tags or ""), "evac_mode": args.evac_mode,
        "spindle_use": args.spindle_use, "count": args.count, "group_name": args.group_name,
        "memory": parse_size(args.memory, multiple=1) if args.memory else None,
        "disks": [{"size": parse_size(size), "mode": "rw"}
                  for size in parse_names_list(args.disks or "")],
        "nics": [dict(zip(("mac", "ip", "link"), [v or None for v in (n.split("/") + [""] * 3)[:3]],
                          strict=True)) for n in parse_names_list(args.nics or "")],
    }
    if args.mode in ("node-evacuate", "change-group"):
        op["instances"] = parse_names_list(args.name)
    if args.target_groups:
        op["target_groups"] = parse_names_list(args.target_groups)
    result = common.run_job(args, [op], feedback=False)
    if result is not None:
        print(result[0])
    return 0


def submit_job(args: argparse.Namespace) -> int:
    import time
    try:
        with open(args.opcodes_file, encoding="utf-8") as handle:
            ops = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise errors.WrongInput(f"can't read opcodes from {args.opcodes_file}: {err}") from None
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise errors.WrongInput(f"{args.opcodes_file} must hold a JSON list of opcodes")
    ops = ops * args.op_repeat
    jobs = [[op] for op in ops] if args.each else [ops]
    jobs = jobs * args.job_repeat
    start = time.monotonic()
    with Client() as client:
        results = client.call("SubmitManyJobs", jobs)
        submitted = time.monotonic()
        ids = []
        for ok, value in results:
            if not ok:
                raise errors.WrongInput(f"job refused: {value}")
            ids.append(int(value))
        failed = 0
        for index, job_id in enumerate(ids):
            try:
                # across a master restart: requeued jobs run then, and their outcome counts
                client.wait_job(job_id, feedback=False, reconnect=MASTER_RESTART_WAIT)
            except errors.MasterUnreachable as err:
                unknown = ids[index:]
                failed += len(unknown)
                print(f"job{'s' if len(unknown) > 1 else ''} "
                      f"{', '.join(map(str, unknown))}: outcome unknown: {err}")
                break
            except errors.CardumeError as err:
                failed += 1
                print(f"job {job_id} failed: {err}")
    done = time.monotonic()
    print(f"Job IDs: {', '.join(map(str, ids))}" if len(ids) <= 20 else
          f"Job IDs: {ids[0]}..{ids[-1]} ({len(ids)} jobs)")
    if args.timing_stats:
        print(f"Submitted {len(ids)} jobs in {submitted - start:.3f}s; all finished after "
              f"{done - start:.3f}s ({len(ids) / max(done - start, 1e-9):.1f} jobs/s)")
    return 1 if failed else 0


def locks(args: argparse.Namespace) -> int:
    with Client() as client:
        rows = client.call("QueryLocks")
    fields = {"name": listing.Field("name", "Name"), "mode": listing.Field("mode", "Mode"),
              "owner": listing.Field("owner", "Owner", "list"),
              "pending": listing.Field("pending", "Pending")}
    wanted = common.fields_of(args.output, ["name", "mode", "owner", "pending"])
    for name in wanted:
        if name not in fields:
            raise errors.WrongInput(f"unknown field '{name}' (known: {', '.join(fields)})")
    table = []
    for row in rows:
        pending = "; ".join(f"{mode}:{','.join(owners)}" for mode, owners in row["pending"])
        values = {"name": row["name"], "mode": row["mode"] or "-",
                  "owner": row["owner"] or ["-"], "pending": pending or "-"}
        table.append([values[n] for n in wanted])
    text = listing.format_table([fields[n] for n in wanted], table,
                                headers=not args.no_headers, separator=args.separator)
    if text:
        print(text)
    return 0
