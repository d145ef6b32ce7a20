"""Options every gnt-* family shares, each defined once (as Ganeti's command-line library
defines FORCE_OPT, SUBMIT_OPT, SHUTDOWN_TIMEOUT_OPT, ...).

An :class:`Option` is a recipe for ``add_argument``; ``OPTION.add(parser)`` puts it on a
parser. An option that sets an opcode parameter names it (``param``): given the opcode
(``OPTION.add(parser, "OP_INSTANCE_REBOOT")``) its default, its choices and its help come
from the operation table (:mod:`cardume.cli.optable`, a cheap generated copy of
:mod:`cardume.opcodes`), so the CLI never states them a second time.

Only the standard library and cardume's leaf modules are imported: the CLI must start fast.
"""

from __future__ import annotations

import argparse

from cardume import constants, errors

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


# --- value types (they raise WrongInput while the arguments are parsed) ----------------------


class choice:  # noqa: N801 - used like a function: type=choice("reboot type", ...)
    """A value that must be one of ``choices``; refused as 'invalid WHAT ...: expected ...'
    (a one-line WrongInput, not argparse's usage error)."""

    def __init__(self, what: str, choices: Sequence[str]) -> None:
        self.__name__ = what
        self.choices = tuple(choices)

    def __call__(self, value: str) -> str:
        if value not in self.choices:
            raise errors.WrongInput(
                f"invalid {self.__name__} {value!r}: expected one of {', '.join(self.choices)}")
        return value


def seconds(what: str) -> Callable[[str], int]:
    """A whole number of seconds, 0 or more."""
    def convert(value: str) -> int:
        if not value.strip().isdigit():
            raise errors.WrongInput(
                f"invalid {what} {value!r}: expected a whole number of seconds (0 or more)")
        return int(value)
    convert.__name__ = what
    return convert


def yes_no(value: str) -> bool:
    from cardume.cli.params import parse_bool
    return parse_bool(value)


def spell_choices(choices: Sequence[str], default: Any = None) -> str:
    """'soft, hard (default) or full': the choices for a help text."""
    words = [f"{c} (default)" if c == default else c for c in choices]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


# --- the option recipe -------------------------------------------------------------------------

#: How an option bound to the table reads its value: one of the table's values, refused
#: with a one-line WrongInput (CHOICE) or by argparse (CHOICES: exit 2, argparse's words);
#: whole seconds (SECONDS).
CHOICE = "choice"
CHOICES = "choices"
SECONDS = "seconds"


class Option:
    """One option: its flags and ``add_argument`` settings, and, when it sets an opcode
    parameter, which one (``param``) and how its value is read (``kind``: a choice of the
    table's values, whole seconds, or as argparse reads it)."""

    __slots__ = ("flags", "settings", "param", "kind", "what")

    def __init__(self, *flags: str, param: str | None = None, kind: str | None = None,
                 what: str = "", **settings: Any) -> None:
        self.flags = flags
        self.settings = settings
        self.param = param
        self.kind = kind
        self.what = what

    def add(self, parser: Any, op_id: str | None = None, kind: str | None = None,
            **overrides: Any) -> None:
        """Put the option on ``parser``; with ``op_id``, its default, choices and help
        are that opcode's (read as ``kind``, if given, instead of the option's own);
        ``overrides`` are add_argument settings for this one use."""
        if not isinstance(parser, argparse._ActionsContainer):
            return  # a stand-in for a subcommand not being run: don't read the table for it
        settings = dict(self.settings)
        if op_id is not None:
            settings.update(self.from_table(op_id, kind or self.kind))
        settings.update(overrides)
        parser.add_argument(*self.flags, **settings)

    def from_table(self, op_id: str, kind: str | None = None) -> dict[str, Any]:
        """The add_argument settings the operation table gives for this option."""
        from cardume.cli import optable
        if self.param is None:
            raise errors.InternalError(f"option {self.flags[-1]} sets no opcode parameter")
        default = optable.default(op_id, self.param)
        settings: dict[str, Any] = {"default": default}
        if kind in (CHOICE, CHOICES):
            choices = optable.choices(op_id, self.param)
            if not choices:
                raise errors.InternalError(f"{op_id} {self.param}: the table has no choices")
            if kind == CHOICE:
                settings["type"] = choice(self.what, choices)
            else:
                settings["choices"] = choices
            settings["help"] = (f"{optable.doc(op_id, self.param)}: "
                                f"{spell_choices(choices, default)}")
        elif kind == SECONDS:
            settings["type"] = seconds(self.what)
            settings["help"] = f"{optable.doc(op_id, self.param)} (default {default})"
        return settings

    @property
    def dest(self) -> str:
        """The attribute the parsed value lands in."""
        dest = self.settings.get("dest")
        if dest:
            return str(dest)
        longs = [f for f in self.flags if f.startswith("--")]
        return (longs[0] if longs else self.flags[0]).lstrip("-").replace("-", "_")


def add(parser: argparse.ArgumentParser | Any, *options: Option) -> None:
    for option in options:
        option.add(parser)


# --- job options: every command that submits a job ---------------------------------------------

DRY_RUN = Option("--dry-run", action="store_true",
                 help="check the prerequisites only; change nothing")
SUBMIT = Option("--submit", action="store_true",
                help="submit the job and print its id without waiting")
PRINT_JOBID = Option("--print-jobid", action="store_true",
                     help="print the job id, then wait for the job")
PRIORITY = Option("--priority", choices=sorted(constants.PRIORITY_NAMES), help="job priority")
REASON = Option("--reason", help="reason for the change, kept with the job")


def add_job_options(parser: argparse.ArgumentParser | Any, dry_run: bool = True) -> None:
    if dry_run:
        DRY_RUN.add(parser)
    add(parser, SUBMIT, PRINT_JOBID, PRIORITY, REASON)


# --- list options ------------------------------------------------------------------------------

NO_HEADERS = Option("--no-headers", action="store_true", help="don't print column headers")
SEPARATOR = Option("--separator", help="separate columns with this text (no padding)")
ROMAN = Option("--roman", action="store_true", help="accepted for compatibility")
#: Ganeti's -F: a flag, the filter itself being the command's (one) argument.
FILTER = Option("-F", "--filter", dest="force_filter", action="store_true",
                help="read the argument as a query filter, e.g. "
                     "'pnode == \"node1\" and not admin_up'")


# --- options of many operations ----------------------------------------------------------------

FORCE = Option("-f", "--force", action="store_true", help="don't ask for confirmation")
SHUTDOWN_TIMEOUT = Option("--shutdown-timeout", param="shutdown_timeout", kind=SECONDS,
                          what="shutdown timeout")
#: gnt-instance shutdown's own name for it (Ganeti's TIMEOUT_OPT).
TIMEOUT = Option("--timeout", param="timeout", kind=SECONDS, what="timeout")
NO_WAIT_FOR_SYNC = Option("--no-wait-for-sync", dest="wait_for_sync", action="store_false",
                          help="don't wait for mirrored disks to sync")
IGNORE_CONSISTENCY = Option("--ignore-consistency", action="store_true",
                            help="ignore disk consistency errors")
IGNORE_OFFLINE = Option("--ignore-offline", action="store_true",
                        help="ignore offline nodes and do as much as possible")
NO_REMEMBER = Option("--no-remember", action="store_true",
                     help="don't record the instance's new state (the watcher won't act)")
IALLOCATOR = Option("-I", "--iallocator", help="allocator choosing the target node")
TARGET_NODE = Option("-n", "--target-node", dest="target_node", help="target node")
EARLY_RELEASE = Option("--early-release", action="store_true",
                       help="release the locks early (accepted for compatibility)")
CLEANUP = Option("--cleanup", action="store_true", help="recover from a failed migration")
NONLIVE = Option("--non-live", dest="non_live", action="store_true",
                 help="non-live migration (same as --migration-mode=non-live)")
MIGRATION_MODE = Option("--migration-mode", param="mode", kind=CHOICE, what="migration mode")
ALLOW_FAILOVER = Option("--allow-failover", action="store_true",
                        help="fail over if the instance cannot be migrated")
REBOOT_TYPE = Option("-t", "--type", dest="reboot_type", param="reboot_type", kind=CHOICE,
                     what="reboot type")
DISK_TEMPLATE = Option("-t", "--disk-template", param="disk_template", kind=CHOICE,
                       what="disk template", help="disk template")
FILE_DRIVER = Option("--file-driver", param="file_driver", kind=CHOICE, what="file driver")

BACKEND_PARAMS = Option("-B", "--backend-parameters", dest="beparams", help="k=v,...")
HYPERVISOR_PARAMS = Option("-H", "--hypervisor-parameters", dest="hvparams", help="k=v,...")
OS_PARAMS = Option("-O", "--os-parameters", dest="osparams", help="OS parameters k=v,...")
OS_TYPE = Option("-o", "--os-type", dest="os", help="OS[+VARIANT]")
FORCE_VARIANT = Option("--force-variant", action="store_true", help="accept an unknown variant")
NODE_PARAMS = Option("--node-parameters", dest="ndparams", help="node parameters k=v,...")
DISK_PARAMS = Option("-D", "--disk-parameters", dest="diskparams", action="append", default=[],
                     help="TEMPLATE:k=v,...")
NO_NAME_CHECK = Option("--no-name-check", action="store_true",
                       help="don't check that the name resolves (needs --no-ip-check)")
NO_IP_CHECK = Option("--no-ip-check", action="store_true",
                     help="don't check that the resolved address is unused")
#: argparse's choices: a bad policy exits 2 with argparse's words, as it always has.
ALLOC_POLICY = Option("--alloc-policy", param="alloc_policy", kind=CHOICES)
MASTER_CAPABLE = Option("--master-capable", type=yes_no, help="yes|no")
VM_CAPABLE = Option("--vm-capable", type=yes_no, help="yes|no")
SECONDARY_IP = Option("-s", "--secondary-ip", help="replication address")
YES_DO_IT = Option("--yes-do-it", action="store_true", help="confirm")
