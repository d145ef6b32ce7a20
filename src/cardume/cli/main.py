"""Entry points of the gnt-* commands and of ``cardume``: a lazy table of families.

Only the module of the family being run is imported, and that module imports only what
its parser needs, so a command starts in a few tens of milliseconds.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from cardume import errors

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any, NoReturn

FAMILIES = {
    "gnt-cluster": "cardume.cli.cluster",
    "gnt-node": "cardume.cli.node",
    "gnt-group": "cardume.cli.group",
    "gnt-instance": "cardume.cli.instance",
    "gnt-os": "cardume.cli.os",
    "gnt-job": "cardume.cli.job",
    "gnt-debug": "cardume.cli.debug",
    "gnt-network": "cardume.cli.network",
    "gnt-backup": "cardume.cli.backup",
    "cardume": "cardume.cli.tool",
}


class _Formatter(argparse.HelpFormatter):
    """argparse asks shutil for the terminal width when it builds any parser, and shutil
    drags in bz2 and lzma: the same answer from os keeps ~2.5 ms off every command."""

    def __init__(self, prog: str) -> None:
        try:
            width = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(1).columns
        except (ValueError, OSError):
            width = 80
        super().__init__(prog, width=width - 2)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """A bad option is bad input like any other: one line naming it, and where the
        usage is (argparse would print the whole usage block first), exit code 2."""
        self.exit(2, f"Failure: wrong_input: {message} (see '{self.prog} --help')\n")


class _NullParser:
    """Stands in for the parsers of subcommands that are not being run: every call is a
    no-op, so a family with 20 subcommands doesn't build 20 parsers to run one."""

    def __getattr__(self, name: str) -> Any:
        return self._nothing

    def _nothing(self, *args: Any, **kwargs: Any) -> _NullParser:
        return self


class _OnlySubparsers:
    def __init__(self, real: Any, wanted: str) -> None:
        self.real = real
        self.wanted = wanted
        self.matched = False

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self.wanted or self.wanted in kwargs.get("aliases", ()):
            self.matched = True
            return self.real.add_parser(name, **kwargs)
        return _NullParser()


def _parser(prog: str, module: Any, wanted: str | None) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=module.__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    if wanted is not None:
        only = _OnlySubparsers(sub, wanted)
        module.build(only)
        if only.matched:
            return parser
        parser = _Parser(prog=prog, description=module.__doc__)
        sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    module.build(sub)  # every subcommand: for --help and for "invalid choice" messages
    return parser


def run(prog: str, argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    module = importlib.import_module(FAMILIES[prog])
    wanted = argv[0] if argv and not argv[0].startswith("-") else None
    parser = _parser(prog, module, wanted)
    try:
        # Option types such as yes/no raise our own errors while the arguments are parsed.
        args = parser.parse_args(argv)
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return 1
        return int(func(args) or 0)
    except errors.CardumeError as err:
        print(f"Failure: {err.code}: {err}", file=sys.stderr)
        return err.exit_code
    except PermissionError as err:
        # A user who may not read this node's state (ssconf, keys, the local cluster's
        # directories): one line saying who may, not a traceback.
        from cardume.master.client import permission_error
        failure = permission_error(err.filename or "a file of this node", prog)
        print(f"Failure: {failure.code}: {failure}", file=sys.stderr)
        return failure.exit_code
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


def gnt_cluster() -> int:
    return run("gnt-cluster")


def gnt_node() -> int:
    return run("gnt-node")


def gnt_group() -> int:
    return run("gnt-group")


def gnt_instance() -> int:
    return run("gnt-instance")


def gnt_os() -> int:
    return run("gnt-os")


def gnt_job() -> int:
    return run("gnt-job")


def gnt_debug() -> int:
    return run("gnt-debug")


def gnt_backup() -> int:
    return run("gnt-backup")


def gnt_network() -> int:
    return run("gnt-network")


def cardume_main() -> int:
    return run("cardume")
