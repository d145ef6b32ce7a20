"""gnt-job: list, inspect, watch and cancel jobs."""

from __future__ import annotations

import argparse
import time
from typing import Any

from cardume import errors
from cardume.cli import common
from cardume.jobs import ids
from cardume.master.client import Client

DEFAULT_FIELDS = ["id", "status", "summary"]


def build(sub: Any) -> None:
    p = sub.add_parser("list", help="list jobs")
    common.add_list_options(p, names=False)
    p.add_argument("job_ids", nargs="*", help="job ids (default: all not archived)")
    p.add_argument("--running", action="store_true", help="only running jobs")
    p.add_argument("--pending", action="store_true", help="only queued or waiting jobs")
    p.add_argument("--error", action="store_true", help="only failed jobs")
    p.set_defaults(func=list_jobs)
    p = sub.add_parser("list-fields", help="describe the fields of gnt-job list")
    common.add_list_fields_options(p)
    p.set_defaults(func=lambda a: common.run_list_fields(a, "job"))
    for name in ("info", "show"):
        p = sub.add_parser(name, help="show the details of jobs")
        p.add_argument("job_ids", nargs="+", help="job ids")
        p.set_defaults(func=info)
    p = sub.add_parser("watch", help="follow a job's log until it ends")
    p.add_argument("job_id", help="job id")
    p.set_defaults(func=watch)
    p = sub.add_parser("wait", help="wait for a job to end, printing nothing")
    p.add_argument("job_id", help="job id")
    p.set_defaults(func=wait)
    p = sub.add_parser("cancel", help="cancel queued or waiting jobs")
    p.add_argument("job_ids", nargs="+", help="job ids")
    p.set_defaults(func=cancel)
    p = sub.add_parser("autoarchive", help="archive jobs finished longer ago than AGE")
    p.add_argument("age", help="AGE like 3600, 30m, 6h, 2d or 'all'")
    p.set_defaults(func=autoarchive)
    p = sub.add_parser("archive", help="archive finished jobs")
    p.add_argument("job_ids", nargs="+", help="job ids")
    p.set_defaults(func=archive)


def list_jobs(args: argparse.Namespace) -> int:
    from cardume.cli import qlang
    if qlang.is_filter(args.job_ids, args.force_filter):  # the argument is a query filter
        if args.running or args.pending or args.error:
            raise errors.WrongInput("--running, --pending and --error don't combine with a "
                                    "filter: put the status in it (status == \"running\")")
        args.names = list(args.job_ids)
        return common.run_list(args, "job", DEFAULT_FIELDS)
    args.names = [str(ids.parse(i)) for i in args.job_ids]
    wanted = {s for s, flag in (("running", args.running), ("queued", args.pending),
                                ("waiting", args.pending), ("error", args.error)) if flag}
    if not wanted:
        return common.run_list(args, "job", DEFAULT_FIELDS)
    fields = common.fields_of(args.output, DEFAULT_FIELDS)
    rows = common.query_objects("job", [*fields, "status"], args.names)
    keep = [str(r["id"]) for r in rows if r["status"] in wanted]
    if not keep:
        if not args.no_headers:  # nothing matches: the header alone, as Ganeti prints
            with Client() as client:
                defs = client.call("QueryFields", "job", fields)["fields"]
            print(" ".join(f["title"] for f in defs))
        return 0
    args.names = keep
    return common.run_list(args, "job", DEFAULT_FIELDS)


def _fmt_ts(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "N/A"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) + \
        f".{int((value % 1) * 1e6):06d}"


def info(args: argparse.Namespace) -> int:
    fields = ["id", "status", "priority", "received_ts", "start_ts", "end_ts", "ops",
              "opresult", "opstatus", "oplog", "opstart", "opend", "waiting_for"]
    rows = common.query_objects("job", fields, [str(ids.parse(i)) for i in args.job_ids])
    for job in rows:
        print(f"Job ID: {job['id']}")
        print(f"  Status: {job['status']}")
        print(f"  Priority: {job['priority']}")
        if job["waiting_for"] != "-":
            print(f"  Waiting for: {job['waiting_for']}")
        print(f"  Received:         {_fmt_ts(job['received_ts'])}")
        start, end, received = job["start_ts"], job["end_ts"], job["received_ts"]
        if isinstance(start, (int, float)):
            print(f"  Processing start: {_fmt_ts(start)} (delta {start - received:.6f}s)")
        else:
            print("  Processing start: unknown (not started)")
        if isinstance(end, (int, float)) and isinstance(start, (int, float)):
            print(f"  Processing end:   {_fmt_ts(end)} (delta {end - start:.6f}s)")
        else:
            print("  Processing end:   unknown (not finished)")
        print("  Opcodes:")
        for index, op in enumerate(job["ops"]):
            print(f"    OP_ID: {op['OP_ID']}")
            print(f"      Status: {job['opstatus'][index]}")
            print(f"      Processing start: {_fmt_ts(job['opstart'][index])}")
            print(f"      Processing end:   {_fmt_ts(job['opend'][index])}")
            print("      Input fields:")
            for key in sorted(op):
                if key != "OP_ID":
                    print(f"        {key}: {op[key]}")
            result = job["opresult"][index]
            if isinstance(result, dict) and "message" in result and "code" in result:
                print(f"      Result: {result['code']}: {result['message']}")
            else:
                print(f"      Result: {result}")
        print("      Execution log:")
        for serial, timestamp, _kind, message in job["oplog"]:
            print(f"        {serial}:{_fmt_ts(timestamp)} {message}")
    return 0


def watch(args: argparse.Namespace) -> int:
    job_id = ids.parse(args.job_id)
    print(f"Output from job {job_id} follows")
    print("-----------------------------------")
    with Client() as client:
        client.wait_job(job_id)
    return 0


def wait(args: argparse.Namespace) -> int:
    with Client() as client:
        client.wait_job(ids.parse(args.job_id), feedback=False)
    return 0


def cancel(args: argparse.Namespace) -> int:
    failed = 0
    with Client() as client:
        for text in args.job_ids:
            ok, message = client.call("CancelJob", ids.parse(text))
            print(message)
            failed += 0 if ok else 1
    return 1 if failed else 0


def archive(args: argparse.Namespace) -> int:
    with Client() as client:
        for text in args.job_ids:
            if not client.call("ArchiveJob", ids.parse(text)):
                print(f"Job {text} is not finished or does not exist; not archived")
    return 0


def autoarchive(args: argparse.Namespace) -> int:
    text = args.age.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        if text == "all":
            age = -1.0
        elif text and text[-1] in units:
            age = float(text[:-1]) * units[text[-1]]
        else:
            age = float(text)
    except ValueError:
        raise errors.WrongInput(f"invalid age '{args.age}': expected seconds, a number with "
                                "s/m/h/d/w, or 'all'") from None
    with Client() as client:
        count = client.call("AutoArchiveJobs", age)
    print(f"Archived {count} jobs")
    return 0
