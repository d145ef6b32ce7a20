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
