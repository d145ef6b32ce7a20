"""gnt-instance modify and the instance tag commands: change an instance's parameters,
disks, NICs, state and tags."""

from __future__ import annotations

import argparse
import re
import sys

from cardume import errors
from cardume.cli import common, options
from cardume.cli.instance_specs import (
    DISK_PARAMS,
    disk_params,
    disk_size,
    nic_params,
    parse_beparams,
    parse_flat_hvparams,
)
from cardume.cli.params import parse_ident_kv, parse_kv

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

SET_PARAMS = "OP_INSTANCE_SET_PARAMS"

#: What ``modify --disk N:modify,...`` may change.
DISK_MODIFIABLE = ("mode", "name")

#: Actions of ``modify --disk/--net``.
DDM_ADD = "add"
DDM_REMOVE = "remove"
DDM_MODIFY = "modify"
_DDM_ACTIONS = (DDM_ADD, DDM_REMOVE, DDM_MODIFY)

_INT_RE = re.compile(r"-?[0-9]+", re.ASCII)


# --- parsers ----------------------------------------------------------------------------------


def _modify_parser(p: argparse.ArgumentParser) -> None:
    options.BACKEND_PARAMS.add(p)
    options.HYPERVISOR_PARAMS.add(p)
    options.OS_PARAMS.add(p, help="k=v,...")
    options.OS_TYPE.add(p, help="new OS (used at the next reinstall)")
    options.FORCE_VARIANT.add(p)
    p.add_argument("--disk", dest="disks", action="append", default=[],
                   help="add[:size=S,...] | N:add,size=S,... | N:remove | N:modify,mode=,name=")
    p.add_argument("--net", dest="nics", action="append", default=[],
                   help="add[:mac=,ip=,mode=,link=,...] | N:add,... | N:remove | N:modify,...")
    options.DISK_TEMPLATE.add(p, SET_PARAMS,
                              help="convert the disks to this template (instance stopped)")
    p.add_argument("-n", "--node", help="secondary node for a conversion to drbd")
    options.NO_WAIT_FOR_SYNC.add(p)
    p.add_argument("-m", "--runtime-memory", dest="runtime_mem",
                   help="change the memory of the running instance")
    p.add_argument("--offline", action="store_true", help="mark the (stopped) instance offline")
    p.add_argument("--online", action="store_true", help="mark the instance online")
    options.FORCE.add(p, help="force the change")
    p.add_argument("--ignore-ipolicy", action="store_true",
                   help="ignore instance policy violations")
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=modify)


def _tags_parser(action: str) -> Callable[[argparse.ArgumentParser], None]:
    def setup(p: argparse.ArgumentParser) -> None:
        p.add_argument("instance", help="name of the instance")
        if action != "list-tags":
            p.add_argument("--from", dest="tags_file",
                           help="read more tags from this file ('-' for stdin)")
            p.add_argument("tags", nargs="*", help="tags")
            options.add_job_options(p)
        p.set_defaults(func=tags, action=action)
    return setup


PARSERS = {"modify": _modify_parser,
           **{action: _tags_parser(action) for action in common.TAG_ACTIONS}}


# --- opcodes ----------------------------------------------------------------------------------


def build_modify_op(args: argparse.Namespace) -> dict[str, Any]:
    """OP_INSTANCE_SET_PARAMS from the options of ``gnt-instance modify``."""
    if args.offline and args.online:
        raise errors.WrongInput("give either --offline or --online, not both")
    if args.node and not args.disk_template:
        raise errors.WrongInput(
            f"-n {args.node} names the new secondary of a disk template conversion; "
            "give -t TEMPLATE with it")
    op: dict[str, Any] = {
        "OP_ID": SET_PARAMS,
        "instance_name": args.instance,
        "beparams": parse_beparams(args.beparams, allow_default=True),
        "hvparams": parse_flat_hvparams(args.hvparams, allow_default=True),
        "osparams": dict(parse_kv(args.osparams)) if args.osparams is not None else None,
        "os_name": args.os,
        "disks": parse_modifications(args.disks, "disk"),
        "nics": parse_modifications(args.nics, "nic"),
        "offline": True if args.offline else False if args.online else None,
        "disk_template": args.disk_template,
        "remote_node": args.node,
        "wait_for_sync": args.wait_for_sync,
    }
    if args.force_variant:
        op["force_variant"] = True
    if args.force:
        op["force"] = True
    if args.ignore_ipolicy:
        op["ignore_ipolicy"] = True
    if args.runtime_mem is not None:
        op["runtime_mem"] = disk_size(args.runtime_mem, "-m", "the memory")
    if not (op["beparams"] or op["hvparams"] or op["osparams"] or op["os_name"]
            or op["disks"] or op["nics"] or op["offline"] is not None or op["disk_template"]
            or "runtime_mem" in op):
        raise errors.WrongInput(
            "nothing to change: give at least one of -B, -H, -O, -o, --disk, --net, -t, "
            "-m, --offline, --online")
    return op


def parse_modifications(specs: Sequence[str], kind: str) -> list[list[Any]]:
    """``modify --disk/--net`` values → ``[[action, index_or_-1, params], ...]``.

    ``add[:k=v]`` appends (index -1), ``remove`` drops the last one; ``N:add,k=v`` inserts at
    N, ``ID:remove`` removes, ``ID:modify,k=v`` or ``ID:k=v`` changes (ID: an index, or a name
    or UUID, passed as a string).
    """
    option = "--disk" if kind == "disk" else "--net"
    changes: list[list[Any]] = []
    for text in specs:
        where = f"{option} {text}"
        ident, values = parse_ident_kv(text)
        if not isinstance(values, dict):
            raise errors.WrongInput(
                f"invalid {where}: expected add[:k=v,...], N:add,k=v,..., ID:remove or "
                "ID:modify,k=v,...")
        params: dict[str, Any] = dict(values)
        identifier: int | str
        if ident in (DDM_ADD, DDM_REMOVE):
            action, identifier = ident, -1
            if any(a in params for a in _DDM_ACTIONS):
                raise errors.WrongInput(f"invalid {where}: more than one action given")
        elif ident in ("attach", "detach", DDM_MODIFY):
            raise errors.WrongInput(
                f"invalid {where}: expected add, remove, N:add, ID:remove or ID:modify")
        else:
            identifier = int(ident) if _INT_RE.fullmatch(ident) else ident
            actions = [a for a in _DDM_ACTIONS if a in params]
            if len(actions) > 1:
                raise errors.WrongInput(
                    f"invalid {where}: give only one of {', '.join(actions)}")
            action = actions[0] if actions else DDM_MODIFY
            if actions and params.pop(action) is not True:
                raise errors.WrongInput(
                    f"invalid {where}: {action!r} is an action and takes no value")
            if action == DDM_ADD and not isinstance(identifier, int):
                raise errors.WrongInput(
                    f"invalid {where}: adding needs a numeric index, not {ident!r}")
            if isinstance(identifier, int) and identifier < -1:
                raise errors.WrongInput(
                    f"invalid {where}: index {identifier} is out of range (-1 means the last)")
        if action == DDM_REMOVE:
            if params:
                raise errors.WrongInput(f"invalid {where}: removal takes no parameters")
        elif kind == "disk":
            label = "the new disk" if identifier == -1 else f"disk {identifier}"
            if action == DDM_ADD:
                allowed = [k for k in DISK_PARAMS if k != "adopt"]
                params = disk_params(params, text, label, allowed)
            else:
                if not params:
                    raise errors.WrongInput(f"invalid {where}: nothing to modify")
                params = disk_params(params, text, label, DISK_MODIFIABLE)
        else:
            if action == DDM_MODIFY and not params:
                raise errors.WrongInput(f"invalid {where}: nothing to modify")
            params = nic_params(params, where)
        changes.append([action, identifier, params])
    return changes


def build_tags_op(args: argparse.Namespace) -> dict[str, Any]:
    names = list(args.tags)
    if args.tags_file:
        names.extend(_read_tags(args.tags_file))
    if not names:
        raise errors.WrongInput(f"{args.action}: no tags given")
    op_id = "OP_TAGS_SET" if args.action == "add-tags" else "OP_TAGS_DEL"
    return {"OP_ID": op_id, "kind": "instance", "name": args.instance, "tags": names}


def _read_tags(path: str) -> list[str]:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as err:
        raise errors.WrongInput(f"cannot read tags from {path}: {err.strerror}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


# --- handlers ---------------------------------------------------------------------------------


def modify(args: argparse.Namespace) -> int:
    op = build_modify_op(args)
    result = common.run_job(args, [op])
    if result and result[0]:
        print(f"Modified instance {args.instance}")
        for param, value in result[0]:
            print(f" - {param:<5} -> {value}")
        print("Most changes apply when the cluster next starts the instance "
              "(gnt-instance reboot); a reboot from inside the guest does not apply them.")
        if op["hvparams"]:
            print("Until then the running instance keeps its old hypervisor parameters, and "
                  "a live migration uses those.")
    return 0


def tags(args: argparse.Namespace) -> int:
    if args.action == "list-tags":
        rows = common.query_objects("instance", ["tags"], [args.instance])
        for tag in sorted(rows[0]["tags"] if rows else []):
            print(tag)
        return 0
    common.run_job(args, [build_tags_op(args)])
    return 0

