"""Helpers every gnt-* family shares: submitting and waiting for jobs (one job, or one per
instance), list commands, confirmations, output. The shared options are in
:mod:`cardume.cli.options`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from cardume import constants, errors
from cardume.cli import listing, options
from cardume.master.client import Client

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

Handler = Callable[[argparse.Namespace], int]


def add_list_options(parser: argparse.ArgumentParser, names: bool = True,
                     query_filter: bool = True) -> None:
    options.add(parser, options.NO_HEADERS, options.SEPARATOR)
    if query_filter:
        options.FILTER.add(parser)
    parser.add_argument("--units", choices=listing.UNITS,
                        help="units for sizes: h(uman), m, g, t")
    parser.add_argument("-o", "--output", dest="output", metavar="FIELDS",
                        help="comma-separated fields to show; +FIELDS adds to the defaults")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="spell out special values")
    if names:
        parser.add_argument("names", nargs="*", help="names to list (default: all)")


def add_list_fields_options(parser: argparse.ArgumentParser) -> None:
    options.NO_HEADERS.add(parser)
    options.SEPARATOR.add(parser, help="separate columns with this text")
    parser.add_argument("fields", nargs="*", help="fields to describe (default: all)")


def op_common(args: argparse.Namespace) -> dict[str, Any]:
    """Common opcode fields from the common options."""
    values: dict[str, Any] = {}
    if getattr(args, "dry_run", False):
        values["dry_run"] = True
    priority = getattr(args, "priority", None)
    if priority:
        values["priority"] = constants.PRIORITY_NAMES[priority]
    reason = getattr(args, "reason", None)
    if reason:
        values["reason"] = [["gnt:user", reason, 0]]
    return values


def run_job(args: argparse.Namespace, ops: list[dict[str, Any]],
            feedback: bool = True) -> list[Any] | None:
    """Submit a job made of ops; with --submit print its id and return None."""
    common = op_common(args)
    ops = [{**common, **op} for op in ops]
    with Client() as client:
        job_id = client.submit(ops)
        if getattr(args, "print_jobid", False):  # the bare id first, also with --submit
            print(job_id, flush=True)
        if getattr(args, "submit", False):
            print(f"JobID: {job_id}", file=sys.stderr)  # where Ganeti prints it
            return None
        return client.wait_job(job_id, feedback=feedback)


def run_many(args: argparse.Namespace, names: Sequence[str],
             build_op: Callable[[str, argparse.Namespace], dict[str, Any]],
             verbose: bool) -> list[str]:
    """One job per instance, all submitted at once (they may run side by side); then wait
    for each in turn, reporting its outcome. Returns the instances whose job failed or was
    refused. With --submit only the ids are printed, as 'ID: INSTANCE'."""
    extra = op_common(args)
    jobs = [[{**extra, **build_op(name, args)}] for name in names]
    failed: list[str] = []
    with Client() as client:
        submitted = client.call("SubmitManyJobs", jobs)
        if getattr(args, "print_jobid", False):
            for ok, data in submitted:
                if ok:
                    print(data, flush=True)
        if getattr(args, "submit", False):
            for (ok, data), name in zip(submitted, names, strict=True):
                if ok:
                    print(f"{data}: {name}")
                else:
                    print(f"Failure for {name}: {data}", file=sys.stderr)
                    failed.append(name)
            return failed
        ids = [str(data) for ok, data in submitted if ok]
        if verbose and ids:
            print(f"Submitted jobs {', '.join(ids)}", flush=True)
        for (ok, data), name in zip(submitted, names, strict=True):
            if not ok:
                print(f"Failed to submit job for {name}: {data}", file=sys.stderr)
                failed.append(name)
        for (ok, data), name in zip(submitted, names, strict=True):
            if not ok:
                continue
            print(f"Waiting for job {data} for {name} ...", flush=True)
            try:
                client.wait_job(int(data))
            except errors.CardumeError as err:
                print(f"Job {data} for {name} has failed: {err}", file=sys.stderr, flush=True)
                failed.append(name)
    return failed


def wait_for_jobs(jobs: Sequence[tuple[str, Any]]) -> list[str]:
    """Wait for jobs that a job submitted (multi-allocation, change-group): each is
    ``(label, [ok, job id or refusal])``. Prints each outcome; returns the labels of those
    refused or failed."""
    failed: list[str] = []
    with Client() as client:
        for label, (ok, job) in jobs:
            if not ok:
                print(f"{label}: refused: {job}", file=sys.stderr)
                failed.append(label)
                continue
            print(f"Waiting for job {job} for {label} ...", flush=True)
            try:
                client.wait_job(int(job))
            except errors.CardumeError as err:
                print(f"Job {job} for {label} has failed: {err}", file=sys.stderr, flush=True)
                failed.append(label)
    return failed


def fields_of(spec: str | None, default: Sequence[str]) -> list[str]:
    if not spec:
        return list(default)
    if spec.startswith("+"):
        return [*default, *[f for f in spec[1:].split(",") if f]]
    return [f for f in spec.split(",") if f]


def run_list(args: argparse.Namespace, resource: str, default: Sequence[str],
             env_var: str | None = None) -> int:
    spec = args.output
    if env_var and not spec:
        spec = os.environ.get(env_var) or None
    fields = fields_of(spec, default)
    from cardume.cli import qlang
    names, qfilter = qlang.names_and_filter(list(getattr(args, "names", []) or []),
                                            getattr(args, "force_filter", False),
                                            "id" if resource == "job" else "name",
                                            numeric=resource == "job")
    with Client() as client:
        reply = client.call("Query", resource, fields, names,
                            *([] if qfilter is None else [qfilter]))
    defs = [listing.query_field(resource, f) for f in reply["fields"]]
    # the rows as they came: format_table reads a {"_rs": ...} cell as its mark
    text = listing.format_table(defs, reply["data"], headers=not args.no_headers,
                                separator=args.separator, units=args.units,
                                verbose=args.verbose)
    if text:
        print(text)
    return 0


def run_list_fields(args: argparse.Namespace, resource: str) -> int:
    with Client() as client:
        reply = client.call("QueryFields", resource, list(args.fields) or None)
    defs = [listing.Field(f["name"], f["title"], f["kind"], f["doc"]) for f in reply["fields"]]
    if not args.fields:
        defs = listing.describe_fields({f.name: f for f in defs})
    print(listing.format_fields_list(defs, headers=not args.no_headers,
                                     separator=args.separator))
    return 0


def query_objects(resource: str, fields: list[str], names: list[str]) -> list[dict[str, Any]]:
    """Rows of a query as dicts keyed by field name (for the info commands)."""
    with Client() as client:
        reply = client.call("Query", resource, fields, names)
    return [dict(zip(fields, row, strict=True)) for row in reply["data"]]


TAG_ACTIONS = ("add-tags", "remove-tags", "list-tags")


def add_tag_commands(sub: Any, what: str, target: str | None, func: Handler) -> None:
    """Ganeti's add-tags, remove-tags and list-tags of a family; ``target`` names the
    object's argument (None: the cluster, which has no name to give)."""
    for action in TAG_ACTIONS:
        p = sub.add_parser(action, help=f"{action.replace('-', ' ')} of {what}")
        if target is not None:
            p.add_argument(target, help=f"name of the {target}")
        if action != "list-tags":
            p.add_argument("tags", nargs="+", help="tags")
            options.add_job_options(p)
        p.set_defaults(func=func, action=action)


def run_tags(args: argparse.Namespace, resource: str, kind: str, name: str) -> int:
    """List an object's tags (query ``resource``), or add/remove them (tag kind ``kind``)."""
    if args.action == "list-tags":
        rows = query_objects(resource, ["tags"], [name])
        for tag in rows[0]["tags"]:
            print(tag)
        return 0
    op_id = "OP_TAGS_SET" if args.action == "add-tags" else "OP_TAGS_DEL"
    run_job(args, [{"OP_ID": op_id, "kind": kind, "name": name, "tags": args.tags}])
    return 0


def print_changes(what: str, name: str, result: list[Any] | None) -> None:
    """Ganeti's report of a modify: 'Modified node X' and one '- param -> value' per change."""
    if not result:
        return
    changes = result[0] or []
    if not changes:
        print(f"Nothing changed for {what} {name}")
        return
    print(f"Modified {what} {name}")
    for param, value in changes:
        print(f" - {param} -> {value}")


def print_tree(data: Any, indent: int = 0, sorted_keys: bool = False) -> None:
    """Print nested dicts the way Ganeti's info commands do: 'key: value', indented."""
    pad = "  " * indent
    if isinstance(data, dict):
        for key, value in data.items() if not sorted_keys else sorted(data.items()):
            if isinstance(value, dict):
                print(f"{pad}{key}:")
                print_tree(value, indent + 1, sorted_keys)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                print(f"{pad}{key}:")
                for item in value:
                    print_tree(item, indent + 1, sorted_keys)
            else:
                print(f"{pad}{key}: {format_value(value)}")
    else:
        print(f"{pad}{format_value(data)}")


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "(none)"
    if value is None:
        return "(none)"
    return str(value)


def confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"{question} y/[n]: ")
    return answer.strip().lower() in ("y", "yes")


def require_confirmation(question: str, refusal: str) -> None:
    """Ask on a terminal; without one (or on 'no'), refuse with a one-line error."""
    if not confirm(question):
        raise errors.WrongInput(refusal)
