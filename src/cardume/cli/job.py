"""gnt-job: list, inspect, watch and cancel jobs."""

from __future__ import annotations

import argparse
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


INFO_FIELDS = ["id", "status", "ops", "opresult", "opstatus", "oplog", "opstart", "opexec",
               "opend", "received_ts", "start_ts", "end_ts", "waiting_for"]


def info(args: argparse.Namespace) -> int:
    from cardume.cli import infodoc
    rows = common.query_objects("job", INFO_FIELDS, [str(ids.parse(i)) for i in args.job_ids])
    print(infodoc.render([format_job_info(job) for job in rows]))
    return 0


def format_job_info(job: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One job's document, in Ganeti's order, from one row of a job query; timestamps
    are epochs or Ganeti's ``(seconds, microseconds)`` pairs."""
    from cardume.cli import infodoc
    received, start, end = job.get("received_ts"), job.get("start_ts"), job.get("end_ts")
    data: list[tuple[Any, ...]] = [("Job ID", job["id"]), ("Status", job["status"])]
    waiting = job.get("waiting_for")
    if waiting and waiting != "-":  # cardume's lock plan: who holds what this job waits for
        data.append(("Waiting for", waiting))
    data.extend([
        _job_time("Received", received, None),
        _job_time("Processing start", start, received),
        _job_time("Processing end", end, start),
        ("Total processing time", f"{_delta(received, end):.6f} seconds"
         if _delta(received, end) is not None else "N/A"),
    ])
    opcodes = []
    ops = job.get("ops") or []
    columns = [job.get(name) or [None] * len(ops)
               for name in ("opresult", "opstatus", "opstart", "opexec", "opend")]
    columns.insert(2, _logs_by_opcode(job.get("oplog") or [], columns[2], len(ops)))
    for op, result, status, log, started, executed, ended in zip(ops, *columns, strict=False):
        opcodes.append([
            ("Opcode", op.get("OP_ID")),
            ("Status", status),
            ("Processing start", infodoc.timestamp_usecs(started), "opcode"),
            ("Execution start", infodoc.timestamp_usecs(executed), "opcode"),
            ("Processing end", infodoc.timestamp_usecs(ended), "opcode"),
            ("Input fields", dict(op)),
            ("Result", _result(result)),
            ("Execution log", [[("Time", infodoc.timestamp_usecs(entry[1])),
                                ("Content", (entry[0], entry[2], entry[3]))]
                               for entry in log or []]),
        ])
    data.append(("Opcodes", opcodes))
    return data


def _logs_by_opcode(oplog: list[Any], starts: list[Any], count: int) -> list[list[Any]]:
    """The log entries of each opcode. Ganeti's table gives one list per opcode; a flat
    list of the job's entries (``[serial, time, kind, message]``) is split by time: an
    entry belongs to the last opcode started before it."""
    from cardume.cli import infodoc
    if not oplog or not isinstance(oplog[0], list) or not oplog[0] \
            or isinstance(oplog[0][0], list):
        return [list(entries or []) for entries in oplog] + [[]] * (count - len(oplog))
    per_op: list[list[Any]] = [[] for _ in range(max(count, 1))]
    begun = [infodoc.split_usecs(start) for start in starts]
    for entry in oplog:
        when = infodoc.split_usecs(entry[1])
        index = 0
        for position, start in enumerate(begun):
            if start is not None and when is not None and start <= when:
                index = position
        per_op[index].append(entry)
    return per_op


def _delta(earlier: Any, later: Any) -> float | None:
    from cardume.cli import infodoc
    first, second = infodoc.split_usecs(earlier), infodoc.split_usecs(later)
    if first is None or second is None:
        return None
    return second[0] - first[0] + (second[1] - first[1]) / 1e6


def _job_time(name: str, value: Any, prior: Any) -> tuple[str, str, str]:
    """A job's time line: the moment, and the time since ``prior``; ``unknown (None)``
    while it has not happened (Ganeti's words)."""
    from cardume.cli import infodoc
    if infodoc.split_usecs(value) is None:
        return (name, f"unknown ({value})", "job")
    text = infodoc.timestamp_usecs(value)
    delta = _delta(prior, value)
    if delta is not None:
        text += f" (delta {delta:.6f}s)"
    return (name, text, "job")


def _result(result: Any) -> Any:
    """An opcode's result; a failure as Ganeti encodes one: its kind, then the message and
    the error code."""
    if isinstance(result, dict) and "code" in result and "message" in result:
        message = str(result["message"])
        if result.get("hint"):
            message += f" ({result['hint']})"
        return [str(result.get("type") or "Error"), [message, str(result["code"])]]
    return result


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
