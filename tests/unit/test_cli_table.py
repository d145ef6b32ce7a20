"""Every gnt-* command that submits opcodes, run end to end (``cli.main.run``) against a
client that keeps what is submitted: the master's opcode checks accept each opcode, every
value the command sends without being asked is the operation table's default (or left out
for the master to fill), and the modes picked by flags (replace-disks, evacuate) are the
table's. tests/unit/test_optable.py holds each parser's options to the table; this module
holds the opcodes the commands really send."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from cardume import opcodes
from cardume.cli import common, main, optable

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

#: A tiny cluster the fake answers queries from.
ROWS: dict[str, list[dict[str, Any]]] = {
    "instance": [{"name": "vm1", "pnode": "node1", "snodes": ["node2"], "tags": []},
                 {"name": "vm2", "pnode": "node1", "snodes": [], "tags": []}],
    "node": [{"name": "node1", "tags": []}, {"name": "node2", "tags": []}],
}


class CapturingClient:
    """Stands in for the LUXI client: keeps every submitted job's opcodes, answers queries
    from ROWS, and every job succeeds with no result."""

    jobs: list[list[dict[str, Any]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> CapturingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def submit(self, ops: list[dict[str, Any]]) -> int:
        CapturingClient.jobs.append(ops)
        return len(CapturingClient.jobs)

    def call(self, method: str, *args: Any) -> Any:
        if method == "SubmitManyJobs":
            return [[True, self.submit(ops)] for ops in args[0]]
        if method == "Query":
            resource, fields, names = args
            rows = [r for r in ROWS[resource] if not names or r["name"] in names]
            return {"data": [[row[f] for f in fields] for row in rows]}
        raise AssertionError(f"unexpected call {method}")

    def wait_job(self, job_id: int, feedback: bool = True) -> list[Any]:
        return [None] * len(CapturingClient.jobs[job_id - 1])


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    CapturingClient.jobs = []
    monkeypatch.setattr("cardume.master.client.Client", CapturingClient)
    monkeypatch.setattr("cardume.cli.common.Client", CapturingClient)
    monkeypatch.setattr("cardume.cli.cluster.Client", CapturingClient)
    monkeypatch.setattr(common, "confirm", lambda question: True)
    return CapturingClient.jobs


#: (command line, the operation it submits, the parameters the command line sets: every
#: other parameter it sends must hold the table's default or None). One row per gnt-*
#: subcommand that submits opcodes.
COMMANDS: list[tuple[list[str], str, set[str]]] = [
    (["gnt-instance", "add", "-t", "plain", "--disk", "0:size=1g", "-o", "dummy", "-n",
      "node1", "vm3"], "OP_INSTANCE_CREATE",
     # one NIC with the cluster's defaults unless --net/--no-nics, as Ganeti's command does
     {"instance_name", "disk_template", "disks", "os_type", "pnode", "nics"}),
    (["gnt-instance", "remove", "vm1"], "OP_INSTANCE_REMOVE", {"instance_name"}),
    # rename checks the new address unless --no-ip-check, as Ganeti's command does, where
    # a raw OP_INSTANCE_RENAME leaves it unchecked, as Ganeti's opcode does
    (["gnt-instance", "rename", "vm1", "vm9"], "OP_INSTANCE_RENAME",
     {"instance_name", "new_name", "ip_check"}),
    (["gnt-instance", "modify", "-B", "vcpus=2", "vm1"], "OP_INSTANCE_SET_PARAMS",
     {"instance_name", "beparams"}),
    (["gnt-instance", "grow-disk", "vm1", "0", "1g"], "OP_INSTANCE_GROW_DISK",
     {"instance_name", "disk", "amount"}),
    (["gnt-instance", "activate-disks", "vm1"], "OP_INSTANCE_ACTIVATE_DISKS",
     {"instance_name"}),
    (["gnt-instance", "deactivate-disks", "vm1"], "OP_INSTANCE_DEACTIVATE_DISKS",
     {"instance_name"}),
    (["gnt-instance", "replace-disks", "-a", "vm1"], "OP_INSTANCE_REPLACE_DISKS",
     {"instance_name", "mode"}),
    (["gnt-instance", "move", "-n", "node2", "vm1"], "OP_INSTANCE_MOVE",
     {"instance_name", "target_node"}),
    (["gnt-instance", "failover", "vm1"], "OP_INSTANCE_FAILOVER", {"instance_name"}),
    (["gnt-instance", "migrate", "vm1"], "OP_INSTANCE_MIGRATE", {"instance_name"}),
    (["gnt-instance", "startup", "vm1"], "OP_INSTANCE_STARTUP", {"instance_name"}),
    (["gnt-instance", "shutdown", "vm1"], "OP_INSTANCE_SHUTDOWN", {"instance_name"}),
    (["gnt-instance", "reboot", "vm1"], "OP_INSTANCE_REBOOT", {"instance_name"}),
    (["gnt-instance", "reinstall", "vm1"], "OP_INSTANCE_REINSTALL", {"instance_name"}),
    (["gnt-instance", "add-tags", "vm1", "a"], "OP_TAGS_SET", {"kind", "name", "tags"}),
    (["gnt-instance", "remove-tags", "vm1", "a"], "OP_TAGS_DEL", {"kind", "name", "tags"}),
    (["gnt-node", "add", "node3"], "OP_NODE_ADD", {"node_name"}),
    (["gnt-node", "remove", "node2"], "OP_NODE_REMOVE", {"node_name"}),
    (["gnt-node", "modify", "-D", "yes", "node2"], "OP_NODE_SET_PARAMS",
     {"node_name", "drained"}),
    (["gnt-node", "evacuate", "node2"], "OP_NODE_EVACUATE", {"node_name"}),
    (["gnt-node", "failover", "node1"], "OP_INSTANCE_FAILOVER", {"instance_name"}),
    (["gnt-node", "migrate", "node1"], "OP_INSTANCE_MIGRATE", {"instance_name"}),
    (["gnt-node", "add-tags", "node1", "a"], "OP_TAGS_SET", {"kind", "name", "tags"}),
    (["gnt-group", "add", "g1"], "OP_GROUP_ADD", {"group_name"}),
    (["gnt-group", "remove", "g1"], "OP_GROUP_REMOVE", {"group_name"}),
    (["gnt-group", "rename", "g1", "g2"], "OP_GROUP_RENAME", {"group_name", "new_name"}),
    (["gnt-group", "assign-nodes", "g1", "node2"], "OP_GROUP_ASSIGN_NODES",
     {"group_name", "nodes"}),
    (["gnt-group", "modify", "--alloc-policy", "last_resort", "g1"], "OP_GROUP_SET_PARAMS",
     {"group_name", "alloc_policy"}),
    (["gnt-group", "remove-tags", "g1", "a"], "OP_TAGS_DEL", {"kind", "name", "tags"}),
    (["gnt-cluster", "modify", "--vg-name", "xenvg"], "OP_CLUSTER_SET_PARAMS", {"vg_name"}),
    (["gnt-cluster", "verify"], "OP_CLUSTER_VERIFY", set()),
    (["gnt-cluster", "balance"], "OP_CLUSTER_BALANCE", set()),
    (["gnt-cluster", "capacity"], "OP_CLUSTER_CAPACITY", set()),
    (["gnt-cluster", "verify-disks", "--submit"], "OP_CLUSTER_VERIFY_DISKS", set()),
    (["gnt-cluster", "redist-conf"], "OP_CLUSTER_REDIST_CONF", set()),
    (["gnt-cluster", "destroy", "--yes-do-it"], "OP_CLUSTER_DESTROY", set()),
    (["gnt-cluster", "add-tags", "a"], "OP_TAGS_SET", {"kind", "tags"}),
    # gnt-debug delay locks the nodes unless -l is given (no_locks=False), as Ganeti's
    # command does, where a raw OP_TEST_DELAY defaults to no locks, as Ganeti's opcode does
    (["gnt-debug", "delay", "0"], "OP_TEST_DELAY", {"duration", "no_locks"}),
    (["gnt-debug", "allocator", "vm9"], "OP_TEST_ALLOCATOR", {"name"}),
    (["gnt-instance", "change-group", "--to", "g2", "vm1"], "OP_INSTANCE_CHANGE_GROUP",
     {"instance_name", "target_groups"}),
    (["gnt-backup", "export", "-n", "node2", "vm1"], "OP_BACKUP_EXPORT",
     {"instance_name", "target_node"}),
    # an import leaves template, disks, NICs and OS to the export's config.ini
    (["gnt-backup", "import", "-n", "node2", "--src-node", "node1", "vm3"],
     "OP_INSTANCE_CREATE", {"instance_name", "mode", "pnode", "src_node"}),
    (["gnt-backup", "remove", "vm1"], "OP_BACKUP_REMOVE", {"instance_name"}),
    (["gnt-backup", "list"], "OP_BACKUP_QUERY", set()),
    (["gnt-network", "add", "--network", "192.0.2.0/24", "net1"], "OP_NETWORK_ADD",
     {"network_name", "network"}),
    (["gnt-network", "remove", "net1"], "OP_NETWORK_REMOVE", {"network_name"}),
    (["gnt-network", "modify", "--gateway", "192.0.2.1", "net1"], "OP_NETWORK_SET_PARAMS",
     {"network_name", "gateway"}),
    (["gnt-network", "connect", "-N", "mode=bridged,link=br0", "net1", "default"],
     "OP_NETWORK_CONNECT", {"network_name", "group_name", "network_mode", "network_link"}),
    (["gnt-network", "disconnect", "net1", "default"], "OP_NETWORK_DISCONNECT",
     {"network_name", "group_name"}),
    (["gnt-network", "rename", "net1", "net2"], "OP_NETWORK_RENAME",
     {"network_name", "new_name"}),
    (["gnt-instance", "batch-create", str(FIXTURES / "batch-create.json")],
     "OP_INSTANCE_MULTI_ALLOC", {"instances"}),
]


def _unasked(op: dict[str, Any], op_id: str, given: set[str]) -> dict[str, Any]:
    """The values ``op`` sends for parameters the command line did not set, where they
    differ from the table's default (None: left for the master to fill)."""
    return {name: value for name, value in op.items()
            if name != "OP_ID" and name not in given and value is not None
            and value != optable.default(op_id, name)}


@pytest.mark.parametrize(("argv", "op_id", "given"), COMMANDS,
                         ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_each_command_sends_what_the_table_accepts_with_its_defaults(
        sent: list[list[dict[str, Any]]], capsys: pytest.CaptureFixture[str],
        argv: list[str], op_id: str, given: set[str]) -> None:
    main.run(argv[0], argv[1:])
    assert "Failure" not in capsys.readouterr().err
    ops = [op for job in sent for op in job]
    assert ops, f"{' '.join(argv)} submitted nothing"
    for op in ops:
        assert op["OP_ID"] == op_id
        opcodes.OpCode.from_dict(op)  # the master's checks: raises WrongInput if refused
        assert _unasked(op, op_id, given) == {}


def test_the_unasked_check_finds_a_default_stated_differently() -> None:
    op = {"OP_ID": "OP_INSTANCE_REBOOT", "instance_name": "vm1", "reboot_type": "soft",
          "shutdown_timeout": 120, "ignore_secondaries": None}
    assert _unasked(op, "OP_INSTANCE_REBOOT", {"instance_name"}) == {"reboot_type": "soft"}


def test_the_command_options_reach_the_opcode(sent: list[list[dict[str, Any]]]) -> None:
    """The same run with options given: the values land in the opcode (so the defaults
    compared above are the options' defaults, not constants of the builders)."""
    assert main.run("gnt-instance", ["reboot", "-t", "full", "--shutdown-timeout", "7",
                                     "vm1"]) == 0
    assert main.run("gnt-instance", ["shutdown", "--timeout", "9", "vm1"]) == 0
    assert main.run("gnt-node", ["migrate", "--migration-mode", "non-live", "node1"]) == 0
    assert [(op["OP_ID"], op.get("reboot_type"), op.get("shutdown_timeout"),
             op.get("timeout"), op.get("mode")) for job in sent for op in job] == [
        ("OP_INSTANCE_REBOOT", "full", 7, None, None),
        ("OP_INSTANCE_SHUTDOWN", None, None, 9, None),
        ("OP_INSTANCE_MIGRATE", None, None, None, "non-live"),
        ("OP_INSTANCE_MIGRATE", None, None, None, "non-live"),
    ]


def _subparser(prog: str, command: str) -> argparse.ArgumentParser:
    import importlib
    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(main.FAMILIES[prog]).build(sub)
    return sub.choices[command]


def _consts(parser: argparse.ArgumentParser, dest: str) -> set[Any]:
    return {a.const for a in parser._actions
            if a.dest == dest and isinstance(a, argparse._StoreConstAction)}


def test_the_modes_flags_pick_are_the_tables() -> None:
    replace = "OP_INSTANCE_REPLACE_DISKS"
    modes = _consts(_subparser("gnt-instance", "replace-disks"), "replace_mode")
    from cardume.cli.instance_disks import NEW_SECONDARY
    assert modes | {NEW_SECONDARY} == set(optable.choices(replace, "mode") or ())
    evacuate = _subparser("gnt-node", "evacuate")
    assert _consts(evacuate, "evac_mode") | {evacuate.get_default("evac_mode")} == set(
        optable.choices("OP_NODE_EVACUATE", "mode") or ())
    assert evacuate.get_default("evac_mode") == optable.default("OP_NODE_EVACUATE", "mode")


def test_every_operation_a_gnt_command_builds_has_a_row() -> None:
    """A new command that submits an operation is held to the table too: every OP_ID the
    gnt-* modules name is the operation of some row above."""
    import re
    from pathlib import Path

    import cardume.cli
    named = set()
    for module in Path(cardume.cli.__file__).parent.glob("*.py"):
        if module.name != "optable.py":  # the table's copy names every operation
            named |= set(re.findall(r'"(OP_[A-Z_]+)"', module.read_text())) - {"OP_ID"}
    assert named, "found no operation in the gnt-* modules"
    assert named - {op_id for _, op_id, _ in COMMANDS} == set()
    assert named <= set(opcodes.REGISTRY)
