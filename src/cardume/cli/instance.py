"""gnt-instance: create, list, inspect, start, stop, change, move and remove instances."""

# (The docstring above is the description of gnt-instance --help.) This module is the
# family's table of subcommands; each subcommand's options, opcode building and handler
# live in a module per command family (instance_add, instance_lifecycle, instance_migrate,
# instance_disks, instance_modify, instance_info), imported only when that subcommand's
# parser is really built: cardume.cli.main builds only the parser of the command being run,
# so a command imports the one module it runs.

from __future__ import annotations

import argparse
import importlib

from cardume.cli import common

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_FIELDS = ["name", "hypervisor", "os", "pnode", "status", "oper_ram"]

#: Every subcommand, in the order --help lists them: (name, aliases, help, module); the
#: module's PARSERS[name] adds the options and the handler (None: this module's).
COMMANDS: tuple[tuple[str, tuple[str, ...], str, str | None], ...] = (
    ("add", (), "create an instance", "instance_add"),
    ("batch-create", (), "create several instances from a JSON file, placed together",
     "instance_add"),
    ("list", (), "list instances", None),
    ("list-fields", (), "describe the fields of gnt-instance list", None),
    ("info", ("show",), "show instance details", "instance_info"),
    ("watch-disks", (), "watch the DRBD replication of instances' disks, live, across nodes",
     None),
    ("startup", ("start",), "start instances", "instance_lifecycle"),
    ("shutdown", ("stop",), "stop instances", "instance_lifecycle"),
    ("reboot", (), "reboot instances", "instance_lifecycle"),
    ("reinstall", (), "reinstall the OS of stopped instances", "instance_lifecycle"),
    ("remove", (), "stop an instance and remove it with its disks", "instance_add"),
    ("rename", (), "rename an instance", "instance_add"),
    ("modify", (), "change an instance's parameters, disks and NICs", "instance_modify"),
    ("grow-disk", (), "grow one disk of an instance", "instance_disks"),
    ("activate-disks", (), "make an instance's disks usable on its nodes", "instance_disks"),
    ("deactivate-disks", (), "release an instance's disks", "instance_disks"),
    ("move", (), "copy an instance's disks to another node and run it there",
     "instance_migrate"),
    ("failover", (), "stop an instance and start it on another node", "instance_migrate"),
    ("migrate", (), "move a running instance to another node", "instance_migrate"),
    ("change-group", (), "move an instance to another node group (an allocator places it)",
     "instance_migrate"),
    ("replace-disks", (), "replace the storage under a drbd instance's mirror, or its "
     "secondary node", "instance_disks"),
    ("console", (), "connect to the console of an instance", "instance_info"),
    *((action, (), f"{action.replace('-', ' ')} of an instance", "instance_modify")
      for action in common.TAG_ACTIONS),
)


def _list_parser(p: argparse.ArgumentParser) -> None:
    common.add_list_options(p)
    p.set_defaults(func=lambda a: common.run_list(a, "instance", DEFAULT_FIELDS,
                                                  "GNT_INSTANCE_LIST"))


def _list_fields_parser(p: argparse.ArgumentParser) -> None:
    common.add_list_fields_options(p)
    p.set_defaults(func=lambda a: common.run_list_fields(a, "instance"))


def _watch_disks_parser(p: argparse.ArgumentParser) -> None:
    from cardume.cli import drbd
    drbd.add_watch_options(p)
    p.set_defaults(func=drbd.watch)


_OWN: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "list": _list_parser, "list-fields": _list_fields_parser,
    "watch-disks": _watch_disks_parser}


def build(sub: Any) -> None:
    for name, aliases, text, module in COMMANDS:
        p = sub.add_parser(name, aliases=list(aliases), help=text)
        if not isinstance(p, argparse.ArgumentParser):
            continue  # a subcommand that is not being run: its module stays unimported
        if module is None:
            _OWN[name](p)
        else:
            importlib.import_module(f"cardume.cli.{module}").PARSERS[name](p)
