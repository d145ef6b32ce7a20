"""gnt-cluster balance (hbal) and gnt-cluster capacity (hspace): the handlers."""

from __future__ import annotations

import argparse
import sys

from cardume import errors
from cardume.cli import common
from cardume.master.client import Client

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

SPEC_KEYS = ("memory-size", "disk-size", "cpu-count", "spindle-use")


def build(sub: Any) -> None:
    p = sub.add_parser("balance", help="plan (and with -X make) the moves that even out the "
                       "load of the nodes, as hbal")
    p.add_argument("-C", "--print-commands", action="store_true",
                   help="print the gnt-instance commands of the moves")
    p.add_argument("-X", "--exec", dest="execute", action="store_true",
                   help="make the moves: one job per move, job set after job set")
    p.add_argument("-l", "--max-moves", "--max-length", dest="max_moves", type=int,
                   help="at most this many moves")
    p.add_argument("-g", "--min-gain", type=float, default=0.01,
                   help="smallest gain of a move once the score is under --min-gain-limit "
                   "(default 0.01)")
    p.add_argument("--min-gain-limit", type=float, default=0.1,
                   help="score under which --min-gain applies (default 0.1)")
    p.add_argument("-G", "--group", help="only this node group")
    p.set_defaults(func=balance)

    p = sub.add_parser("capacity", help="how many more instances of a spec fit, as hspace")
    p.add_argument("--spec", help="memory-size=SIZE,disk-size=SIZE,cpu-count=N "
                   "(default: the instance policy's std spec)")
    p.add_argument("-t", "--disk-template", help="disk template (default: the policy's first)")
    p.add_argument("-G", "--group", help="only this node group")
    p.add_argument("--machine-readable", action="store_true",
                   help="hspace's HTS_KEY=value lines")
    p.set_defaults(func=capacity)


def _spec(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    spec: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in SPEC_KEYS:
            raise errors.WrongInput(f"invalid spec item {item!r}: expected KEY=VALUE with KEY "
                                    f"one of {', '.join(SPEC_KEYS)}")
        spec[key.strip()] = value.strip()
    return spec


def _print_plan(plan: dict[str, Any], commands: bool) -> None:
    moves = plan["moves"]
    print(f"Node group {plan['group']}")
    print(f"Initial score: {plan['initial_score']:.8f}")
    if moves:
        iwidth = max(len(m["instance"]) for m in moves)
        owidth = max(len(":".join(m["old_nodes"])) for m in moves)
        nwidth = max(len(":".join(m["new_nodes"])) for m in moves)
        for index, m in enumerate(moves, 1):
            print(f"  {index:3d}. {m['instance']:<{iwidth}} {':'.join(m['old_nodes']):<{owidth}}"
                  f" => {':'.join(m['new_nodes']):<{nwidth}} {m['score_after']:.8f} "
                  f"a={m['kind']}")
        print(f"Cluster score improved from {plan['initial_score']:.8f} to "
              f"{plan['final_score']:.8f}")
    else:
        print("No solution found")
    print(f"Solution length={len(moves)}")
    if commands and moves:
        print()
        print("Commands to run to reach the above solution:")
        for number, job_set in enumerate(plan["job_sets"], 1):
            print()
            print(f"  echo jobset {number}, {len(job_set)} jobs")
            for position, index in enumerate(job_set, 1):
                print(f"    echo job {position}/{len(job_set)}")
                for line in moves[index]["commands"]:
                    print(f"    {line}")


def _execute(plan: dict[str, Any]) -> int:
    failed = 0
    moves = plan["moves"]
    with Client() as client:
        for number, job_set in enumerate(plan["job_sets"], 1):
            print(f"Executing jobset {number} of {len(plan['job_sets'])} "
                  f"({len(job_set)} job(s))", flush=True)
            jobs = [moves[i]["opcodes"] for i in job_set]
            submitted = client.call("SubmitManyJobs", jobs)
            for (ok, job), index in zip(submitted, job_set, strict=True):
                move = moves[index]
                label = f"{move['instance']} ({move['kind']})"
                if not ok:
                    print(f"Move of {label} refused: {job}", file=sys.stderr)
                    failed += 1
                    continue
                try:
                    client.wait_job(int(job), feedback=False)
                    print(f"  job {job}: {label}: success", flush=True)
                except errors.CardumeError as err:
                    print(f"  job {job}: {label}: failed: {err}", file=sys.stderr, flush=True)
                    failed += 1
            if failed:  # later sets were planned on this one's outcome: stop (as hbal -X)
                print(f"{failed} move(s) failed; the remaining job sets were not run",
                      file=sys.stderr)
                return 1
    return 0


def balance(args: argparse.Namespace) -> int:
    op = {"OP_ID": "OP_CLUSTER_BALANCE", "max_moves": args.max_moves,
          "min_gain": float(args.min_gain), "min_gain_limit": float(args.min_gain_limit),
          "group_name": args.group}
    result = common.run_job(args, [op], feedback=False)
    if not result:  # --submit: the job id was printed
        return 0
    status = 0
    for plan in result[0] or []:
        _print_plan(plan, args.print_commands)
        if args.execute and plan["moves"]:
            status = _execute(plan) or status
            if status:
                break
    return status


def capacity(args: argparse.Namespace) -> int:
    from cardume.allocator.capacity import describe, machine_lines
    op = {"OP_ID": "OP_CLUSTER_CAPACITY", "spec": _spec(args.spec),
          "disk_template": args.disk_template, "group_name": args.group}
    result = common.run_job(args, [op], feedback=False)
    if not result or not result[0]:  # --submit: the job id was printed
        return 0
    lines = machine_lines(result[0]) if args.machine_readable else describe(result[0])
    print("\n".join(lines))
    return 0
