"""The operation table: opcodes.py declares every parameter once, the opcode checks agree
with it, and cli/optable.py (the gnt-* commands' copy) is that table, up to date."""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cardume import constants, errors, opcodes, opcodes_gen
from cardume.cli import optable

OP_IDS = sorted(opcodes.REGISTRY)
ALL_PARAMS = [(op_id, name) for op_id in OP_IDS for name in opcodes.REGISTRY[op_id]._ALL]
CHOICE_PARAMS = [(op_id, name) for op_id, name in ALL_PARAMS
                 if opcodes.REGISTRY[op_id]._ALL[name].choices is not None]
OUTSIDE = "no-such-value"

# Values tried, in order, when a test needs some valid value of a parameter's type.
_CANDIDATES: tuple[Any, ...] = ("x", 1, 1.0, True, ["x"], [1], [{}], {}, [["add", 0, {}]])


def _param(op_id: str, name: str) -> opcodes.Param:
    return opcodes.REGISTRY[op_id]._ALL[name]


def _valid(param: opcodes.Param) -> Any:
    if param.choices:
        return param.choices[0]
    for value in _CANDIDATES:
        if param.type.check(value):
            return value
    raise AssertionError(f"no sample value of type {param.type.name} ({param.name})")


def _required(op_id: str) -> dict[str, Any]:
    """The smallest valid body of an opcode: its required parameters, each a valid value."""
    cls = opcodes.REGISTRY[op_id]
    return {p.name: _valid(p) for p in cls._ALL.values() if p.required}


# --- the generated copy --------------------------------------------------------------------


def test_optable_is_generated_from_opcodes() -> None:
    current = opcodes_gen.TARGET.read_text(encoding="utf-8")
    assert opcodes_gen.render(current) == current, (
        f"src/cardume/cli/optable.py is stale: run `{opcodes_gen.COMMAND}`")


def test_a_changed_table_makes_the_copy_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    current = opcodes_gen.TARGET.read_text(encoding="utf-8")
    changed = opcodes.Param("timeout", opcodes.TNonNegInt, 121, "seconds")
    params = tuple(changed if p.name == "timeout" else p
                   for p in opcodes.OpInstanceShutdown.PARAMS)
    monkeypatch.setattr(opcodes.OpInstanceShutdown, "PARAMS", params)
    fresh = opcodes_gen.render(current)
    assert fresh != current
    assert '"timeout": ("non-negative int", 121, None, False, "seconds"),' in fresh


def test_the_check_command_says_whether_the_copy_is_stale() -> None:
    done = subprocess.run([sys.executable, "-m", "cardume.opcodes_gen", "--check"],
                          capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")


def test_every_accessor_answers_as_the_table() -> None:
    for op_id, name in ALL_PARAMS:
        param = _param(op_id, name)
        assert (optable.default(op_id, name), optable.choices(op_id, name),
                optable.doc(op_id, name), optable.type_name(op_id, name),
                optable.required(op_id, name)) == (
            param.default, param.choices, param.doc, param.type.name, param.required), (
            f"{op_id}.{name}")


def test_the_copy_lists_every_operation_and_parameter() -> None:
    assert optable.op_ids() == OP_IDS
    for op_id in OP_IDS:
        cls = opcodes.REGISTRY[op_id]
        own_then_common = [p.name for p in (*cls.PARAMS, *opcodes.COMMON_PARAMS)]
        assert optable.names(op_id) == own_then_common, op_id
        assert optable.op_doc(op_id) == opcodes.REGISTRY[op_id].DOC


def test_defaults_from_the_copy_are_fresh_each_time() -> None:
    first = optable.default("OP_INSTANCE_CREATE", "disks")
    first.append({"size": 1})
    assert optable.default("OP_INSTANCE_CREATE", "disks") == []


def test_unknown_names_are_a_key_error_naming_them() -> None:
    with pytest.raises(KeyError, match="OP_NOPE"):
        optable.default("OP_NOPE", "force")
    with pytest.raises(KeyError, match="OP_INSTANCE_REBOOT has no parameter 'bogus'"):
        optable.choices("OP_INSTANCE_REBOOT", "bogus")


def test_help_text_carries_choices_and_default() -> None:
    assert optable.help_text("OP_INSTANCE_REBOOT", "reboot_type") == (
        "reboot type (one of soft, hard, full; default hard)")
    assert optable.help_text("OP_INSTANCE_SHUTDOWN", "timeout") == (
        "seconds to wait for a clean shutdown (default 120)")
    assert optable.help_text("OP_INSTANCE_SHUTDOWN", "force") == "force"


def test_help_text_is_safe_for_argparse() -> None:
    for op_id, name in ALL_PARAMS:
        parser = argparse.ArgumentParser(
            prog="x", formatter_class=lambda prog: argparse.HelpFormatter(prog, width=500))
        parser.add_argument("--opt", help=optable.help_text(op_id, name))
        shown = parser.format_help()  # argparse expands the '%'s of help texts here
        assert optable.doc(op_id, name) in shown, f"{op_id}.{name}"


def test_a_percent_in_a_doc_is_kept_for_argparse(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = ("non-negative int", 10, None, False, "share of the disk, in %")
    monkeypatch.setitem(optable.COMMON, "share", entry)
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--share", help=optable.help_text("OP_INSTANCE_REBOOT", "share"))
    assert "share of the disk, in % (default 10)" in parser.format_help()


def test_the_copy_imports_nothing_of_cardume() -> None:
    """The CLI imports the copy so as not to import opcodes.py (dataclasses, typing)."""
    tree = ast.parse(opcodes_gen.TARGET.read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(node) for node in top_level] == ["from __future__ import annotations"]
    code = ("import sys; before = set(sys.modules); import cardume.cli.optable; "
            "print(sorted(set(sys.modules) - before))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    loaded = ast.literal_eval(done.stdout)
    assert set(loaded) <= {"__future__", "cardume", "cardume.cli", "cardume.cli.optable"}


# --- the table checks itself ----------------------------------------------------------------


def test_defaults_satisfy_their_own_type_and_choices() -> None:
    for op_id, name in ALL_PARAMS:
        param = _param(op_id, name)
        if param.required:
            assert param.default is None, f"{op_id}.{name}: required, with a default"
        elif param.default is None:
            assert param.type.check(None), f"{op_id}.{name}: None default, type refuses None"
        else:
            param.check(op_id, param.default)  # raises WrongInput naming both


@pytest.mark.parametrize(("op_id", "name"), CHOICE_PARAMS)
def test_choices_satisfy_the_type(op_id: str, name: str) -> None:
    param = _param(op_id, name)
    assert param.choices
    assert all(param.type.check(choice) for choice in param.choices)
    assert len(set(param.choices)) == len(param.choices)


def test_the_shutdown_timeout_default_is_one_constant() -> None:
    timeouts = [(op_id, name) for op_id, name in ALL_PARAMS
                if name in ("timeout", "shutdown_timeout")]
    assert len(timeouts) >= 5
    for op_id, name in timeouts:
        assert optable.default(op_id, name) == 120 == constants.DEFAULT_SHUTDOWN_TIMEOUT


@pytest.mark.parametrize("op_id", OP_IDS)
def test_an_opcode_with_only_required_parameters_gets_the_table_defaults(op_id: str) -> None:
    body = _required(op_id)
    op = opcodes.OpCode.from_dict({"OP_ID": op_id, **body})
    for name in opcodes.REGISTRY[op_id]._ALL:
        expected = body[name] if name in body else optable.default(op_id, name)
        assert getattr(op, name) == expected, name


# --- validation and the table agree: every choice accepted, nothing else ----------------------


@pytest.mark.parametrize(("op_id", "name"), CHOICE_PARAMS)
def test_every_choice_is_accepted(op_id: str, name: str) -> None:
    for choice in optable.choices(op_id, name) or ():
        op = opcodes.OpCode.from_dict({"OP_ID": op_id, **_required(op_id), name: choice})
        assert getattr(op, name) == choice


@pytest.mark.parametrize(("op_id", "name"), CHOICE_PARAMS)
def test_a_value_outside_the_choices_is_refused_naming_both(op_id: str, name: str) -> None:
    with pytest.raises(errors.WrongInput) as info:
        opcodes.OpCode.from_dict({"OP_ID": op_id, **_required(op_id), name: OUTSIDE})
    allowed = ", ".join(map(str, optable.choices(op_id, name) or ()))
    assert str(info.value) == (
        f"{op_id}: parameter '{name}' must be one of {allowed}, not '{OUTSIDE}'")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("op_id", "name"), [
    ("OP_INSTANCE_REBOOT", "reboot_type"),
    ("OP_INSTANCE_MIGRATE", "mode"),
    ("OP_INSTANCE_CREATE", "disk_template"),
    ("OP_INSTANCE_REPLACE_DISKS", "mode"),
    ("OP_NODE_EVACUATE", "mode"),
    ("OP_TAGS_SET", "kind"),
    ("OP_GROUP_ADD", "alloc_policy"),
])
def test_the_fixed_sets_are_declared(op_id: str, name: str) -> None:
    assert optable.choices(op_id, name)


def test_a_value_of_the_wrong_type_is_refused_before_the_choices() -> None:
    with pytest.raises(errors.WrongInput) as info:
        opcodes.OpCode.from_dict({"OP_ID": "OP_INSTANCE_REBOOT", "instance_name": "vm1",
                                  "reboot_type": 3})
    assert str(info.value) == "OP_INSTANCE_REBOOT: parameter 'reboot_type' must be string, not 3"


def test_an_unset_optional_choice_is_accepted() -> None:
    op = opcodes.OpCode.from_dict({"OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": "vm1",
                                   "mode": None})
    assert op.mode is None


# --- the gnt-* parsers and the table agree ----------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            yield action


def _accepts(convert: Callable[[str], Any], text: str) -> bool:
    try:
        convert(text)
    except (errors.CardumeError, ValueError, argparse.ArgumentTypeError):
        return False
    return True


_RAW_ACTIONS = (argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction)
_FLAG_ACTIONS = (argparse._StoreTrueAction, argparse._StoreFalseAction,
                 argparse._StoreConstAction)


def parser_disagreements(parser: argparse.ArgumentParser, op_id: str,
                         dests: dict[str, str | None] | None = None,
                         ) -> tuple[list[str], list[str]]:
    """Compare a subcommand's options with the table of the operation it submits.

    An option whose ``dest`` (renamed by ``dests``; a rename to None skips the option)
    names a parameter of ``op_id`` must default to the table's default or to None (left out,
    the master applies the table's); a flag may default to False/True where the table's is
    None (unset unless given); options that gather raw text (append, count) are parsed later
    and not compared. A parameter with choices must accept exactly those: argparse
    ``choices``, or a ``type`` converter that accepts each and refuses anything else.
    Returns (the parameters compared, one line per disagreement).
    """
    dests = dests or {}
    table = set(optable.names(op_id))
    compared: list[str] = []
    problems: list[str] = []
    for action in _options(parser):
        name = dests.get(action.dest, action.dest)
        if name not in table or isinstance(action, _RAW_ACTIONS):
            continue
        compared.append(name)
        flag = "/".join(action.option_strings)
        want = optable.default(op_id, name)
        unset_flag = want is None and isinstance(action, _FLAG_ACTIONS)
        if action.default is not None and action.default != want and not unset_flag:
            problems.append(f"{flag}: default {action.default!r}, table {want!r}")
        allowed = optable.choices(op_id, name)
        if allowed is None or isinstance(action, _FLAG_ACTIONS):
            continue
        if action.choices is not None:
            if set(action.choices) != set(allowed):
                problems.append(f"{flag}: choices {sorted(action.choices)}, "
                                f"table {sorted(allowed)}")
        elif callable(action.type):
            convert = action.type
            refused = [c for c in allowed if not _accepts(convert, str(c))]
            if refused:
                problems.append(f"{flag}: refuses {refused} of the table's choices")
            if _accepts(convert, OUTSIDE):
                problems.append(f"{flag}: accepts {OUTSIDE!r}, outside the table's choices")
        else:
            problems.append(f"{flag}: takes any value, the table allows only {allowed}")
    return compared, problems


def _reboot_parser(types: Any = None, default: Any = "hard") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gnt-instance reboot")
    parser.add_argument("-t", "--type", dest="reboot_type", default=default, type=types)
    parser.add_argument("--shutdown-timeout", type=int, default=120)
    parser.add_argument("-f", "--force", action="store_true")  # not a reboot parameter
    return parser


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in allowed:
            raise errors.WrongInput(f"invalid value {text!r}")
        return text
    return convert


def test_the_parser_check_passes_an_agreeing_parser() -> None:
    parser = _reboot_parser(_choice(("soft", "hard", "full")))
    compared, problems = parser_disagreements(parser, "OP_INSTANCE_REBOOT")
    assert (sorted(compared), problems) == (["reboot_type", "shutdown_timeout"], [])


@pytest.mark.parametrize(("parser", "problem"), [
    (_reboot_parser(_choice(("soft", "hard"))), "--type: refuses ['full']"),
    (_reboot_parser(str), "--type: accepts 'no-such-value'"),
    (_reboot_parser(None), "--type: takes any value"),
    (_reboot_parser(_choice(("soft", "hard", "full")), default="soft"),
     "-t/--type: default 'soft', table 'hard'"),
])
def test_the_parser_check_finds_disagreements(parser: argparse.ArgumentParser,
                                              problem: str) -> None:
    _, problems = parser_disagreements(parser, "OP_INSTANCE_REBOOT")
    assert len(problems) == 1 and problem in problems[0], problems


def test_the_parser_check_reads_argparse_choices_renames_and_flags() -> None:
    parser = argparse.ArgumentParser(prog="gnt-instance migrate")
    parser.add_argument("--migration-mode", dest="migration_mode", choices=["live"])
    parser.add_argument("--cleanup", action="store_true")  # table: False
    parser.add_argument("--target-node", action="append", default=[])  # raw: not compared
    compared, problems = parser_disagreements(parser, "OP_INSTANCE_MIGRATE",
                                              {"migration_mode": "mode"})
    assert compared == ["mode", "cleanup"]
    assert problems == ["--migration-mode: choices ['live'], table ['live', 'non-live']"]


#: (gnt-* family module, subcommand, the operation it submits, {dest: parameter} renames,
#: the parameters that must be among those compared). One row per subcommand that submits
#: one opcode; the parsers' choices and defaults are held to the table for each.
CLI_COMMANDS: list[tuple[str, str, str, dict[str, str | None], list[str]]] = [
    ("cardume.cli.instance", "add", "OP_INSTANCE_CREATE", {},
     ["disk_template", "file_driver"]),
    ("cardume.cli.instance", "reboot", "OP_INSTANCE_REBOOT", {},
     ["reboot_type", "shutdown_timeout"]),
    ("cardume.cli.instance", "shutdown", "OP_INSTANCE_SHUTDOWN", {}, ["timeout"]),
    ("cardume.cli.instance", "startup", "OP_INSTANCE_STARTUP", {}, ["force"]),
    ("cardume.cli.instance", "remove", "OP_INSTANCE_REMOVE", {}, ["shutdown_timeout"]),
    ("cardume.cli.backup", "export", "OP_BACKUP_EXPORT", {"node": "target_node"},
     ["shutdown_timeout", "remove_instance"]),
    ("cardume.cli.instance", "migrate", "OP_INSTANCE_MIGRATE", {"migration_mode": "mode"},
     ["mode", "cleanup"]),
    ("cardume.cli.instance", "failover", "OP_INSTANCE_FAILOVER", {}, ["shutdown_timeout"]),
    ("cardume.cli.instance", "move", "OP_INSTANCE_MOVE", {}, ["shutdown_timeout"]),
    ("cardume.cli.instance", "modify", "OP_INSTANCE_SET_PARAMS", {}, ["disk_template"]),
    ("cardume.cli.instance", "replace-disks", "OP_INSTANCE_REPLACE_DISKS", {},
     ["early_release"]),
    ("cardume.cli.instance", "grow-disk", "OP_INSTANCE_GROW_DISK", {}, ["absolute"]),
    ("cardume.cli.instance", "reinstall", "OP_INSTANCE_REINSTALL", {}, ["force_variant"]),
    ("cardume.cli.instance", "activate-disks", "OP_INSTANCE_ACTIVATE_DISKS", {},
     ["ignore_size"]),
    ("cardume.cli.instance", "deactivate-disks", "OP_INSTANCE_DEACTIVATE_DISKS", {},
     ["force"]),
    ("cardume.cli.node", "add", "OP_NODE_ADD", {}, ["readd"]),
    ("cardume.cli.node", "modify", "OP_NODE_SET_PARAMS", {}, ["auto_promote"]),
    ("cardume.cli.node", "evacuate", "OP_NODE_EVACUATE", {}, ["early_release"]),
    ("cardume.cli.group", "add", "OP_GROUP_ADD", {}, ["alloc_policy"]),
    ("cardume.cli.group", "modify", "OP_GROUP_SET_PARAMS", {}, ["alloc_policy"]),
    ("cardume.cli.cluster", "verify", "OP_CLUSTER_VERIFY", {}, ["verbose"]),
    ("cardume.cli.cluster", "modify", "OP_CLUSTER_SET_PARAMS", {}, ["vg_name"]),
    # gnt-debug delay sends no_locks=False unless -l is given, as Ganeti's command does,
    # while a raw OP_TEST_DELAY defaults to True, as Ganeti's opcode does: kept apart.
    ("cardume.cli.debug", "delay", "OP_TEST_DELAY", {"no_locks": None}, ["repeat"]),
]


@pytest.mark.parametrize(("module", "command", "op_id", "dests", "expected"), CLI_COMMANDS)
def test_the_gnt_parsers_agree_with_the_table(module: str, command: str, op_id: str,
                                              dests: dict[str, str | None],
                                              expected: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="gnt")
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(module).build(sub)
    compared, problems = parser_disagreements(sub.choices[command], op_id, dests)
    assert set(expected) <= set(compared), f"{command}: options not tied to {op_id}"
    assert problems == []
