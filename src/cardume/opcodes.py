"""Opcodes: one declarative class per operation.

An opcode's parameter table is the single source of truth: it validates what the CLI
builds, what a REST body carries and what a stored job holds, and documents itself
(``gnt-debug`` can list them). Field names and OP_IDs are Ganeti's, so jobs written for
Ganeti (``gnt-debug submit-job``) and RAPI bodies keep working.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from cardume import constants, errors

Check = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class Type:
    """A parameter type: a name for the docs and a check."""

    name: str
    check: Check

    def __or__(self, other: Type) -> Type:
        return Type(f"{self.name} | {other.name}", lambda v: self.check(v) or other.check(v))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


TNone = Type("None", lambda v: v is None)
TBool = Type("bool", lambda v: isinstance(v, bool))
TInt = Type("int", _is_int)
TNonNegInt = Type("non-negative int", lambda v: _is_int(v) and v >= 0)
TFloat = Type("finite number", lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                                          and math.isfinite(v)))
TNonNegFloat = Type("non-negative float", lambda v: TFloat.check(v) and v >= 0)
TString = Type("string", lambda v: isinstance(v, str))
TNonEmptyString = Type("non-empty string", lambda v: isinstance(v, str) and bool(v))
TDict = Type("dict", lambda v: isinstance(v, dict))
TList = Type("list", lambda v: isinstance(v, list))
TStringList = Type("list of strings",
                   lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
TMaybeString = TString | TNone
TMaybeBool = TBool | TNone
TMaybeInt = TInt | TNone
TMaybeDict = TDict | TNone
TMaybeStringList = TStringList | TNone


def one_of(*values: Any) -> Type:
    allowed = frozenset(values)
    return Type("one of " + ", ".join(map(str, values)), lambda v: v in allowed)


TPriority = Type("priority -20..19", lambda v: _is_int(v) and -20 <= v <= 19)
TAllocPolicy = one_of(*constants.ALLOC_POLICIES) | TNone


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: Type
    default: Any = None
    doc: str = ""
    required: bool = False
    secret: bool = False
    """Never shown (job info, queries, logs) and dropped from the stored job once it ended."""


REDACTED = "<redacted>"


COMMON_PARAMS = (
    Param("dry_run", TBool, False, "check prerequisites only, change nothing"),
    Param("debug_level", TNonNegInt, 0, "debug level"),
    Param("priority", TPriority, constants.OP_PRIO_NORMAL, "job priority, -20 (high)..19"),
    Param("depends", TList | TNone, None, "jobs this one waits for: [[job_id, [statuses]]]"),
    Param("comment", TMaybeString, None, "free-form comment"),
    Param("reason", TList, [], "reason trail: [[source, reason, timestamp]]"),
)

REGISTRY: dict[str, type[OpCode]] = {}


class OpCode:
    """Base of every opcode. Subclasses declare OP_ID, PARAMS and optionally OP_DSC_FIELD."""

    OP_ID: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[Param, ...]] = ()
    OP_DSC_FIELD: ClassVar[str | None] = None
    DOC: ClassVar[str] = ""
    _ALL: ClassVar[dict[str, Param]] = {}
    SECRETS: ClassVar[tuple[str, ...]] = ()
    unchecked = False
    """Read back from the store without passing today's checks (see from_stored)."""
    CANCELABLE: ClassVar[bool] = False
    """A running job may be canceled while it runs this opcode (it changes nothing)."""

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._ALL = {p.name: p for p in (*COMMON_PARAMS, *cls.PARAMS)}
        cls.SECRETS = tuple(p.name for p in cls._ALL.values() if p.secret)
        if cls.OP_ID:
            REGISTRY[cls.OP_ID] = cls

    def __init__(self, **values: Any) -> None:
        for name, param in self._ALL.items():
            if name in values and values[name] is not None:
                value = values.pop(name)
            elif param.required:
                raise errors.WrongInput(f"{self.OP_ID}: parameter '{name}' is required")
            else:
                values.pop(name, None)
                value = _copy_default(param.default)
            if value is not None and not param.type.check(value):
                raise errors.WrongInput(
                    f"{self.OP_ID}: parameter '{name}' must be {param.type.name}, "
                    f"not {value!r}")
            setattr(self, name, value)
        if values:
            unknown = ", ".join(sorted(values))
            raise errors.WrongInput(f"{self.OP_ID}: unknown parameter(s) {unknown}")

    def __getattr__(self, name: str) -> Any:  # for mypy: parameters are set dynamically
        raise AttributeError(name)

    def to_dict(self, redact: bool = False) -> dict[str, Any]:
        """The opcode as data; with ``redact`` its secret parameters read ``<redacted>``."""
        data = {name: getattr(self, name) for name in self._ALL}
        if redact:
            for name in self.SECRETS:
                if data.get(name) is not None:
                    data[name] = REDACTED
        data["OP_ID"] = self.OP_ID
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> OpCode:
        values = dict(data)
        op_id = values.pop("OP_ID", None)
        cls = REGISTRY.get(str(op_id))
        if cls is None:
            raise errors.WrongInput(f"unknown opcode {op_id!r}")
        return cls(**values)

    @staticmethod
    def from_stored(data: dict[str, Any]) -> OpCode:
        """An opcode read back from the job store. What an older version stored is kept as
        it was even where today's checks refuse it, so that every old job can still be
        listed; a queued one is checked again before it runs (jobs/queue.py)."""
        try:
            return OpCode.from_dict(data)
        except errors.WrongInput:
            cls = REGISTRY.get(str(data.get("OP_ID"))) or _UnknownOp
            op = object.__new__(cls)
            for name, param in cls._ALL.items():
                setattr(op, name, data.get(name, _copy_default(param.default)))
            op.unchecked = True
            return op

    def summary(self) -> str:
        """Ganeti's job summary: the OP_ID without its prefix, and the described field."""
        text = self.OP_ID.removeprefix("OP_")
        if self.OP_DSC_FIELD:
            value = getattr(self, self.OP_DSC_FIELD)
            if isinstance(value, (list, tuple)):
                value = ",".join(map(str, value))
            text += f"({value})"
        return text


class _UnknownOp(OpCode):
    """Stands for a stored opcode this version does not know (its summary says so)."""

    OP_ID = ""  # not registered: it is never submitted
    DOC = "An opcode this version of cardume does not know."

    def summary(self) -> str:
        return "UNKNOWN"


def _copy_default(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return type(value)(value)
    return value


# --- cluster -----------------------------------------------------------------------------

class OpClusterVerify(OpCode):
    OP_ID = "OP_CLUSTER_VERIFY"
    DOC = "Check the health of the cluster and report every problem found."
    PARAMS = (
        Param("group_name", TMaybeString, None, "verify only this node group"),
        Param("error_codes", TBool, False, "print machine-parsable error codes"),
        Param("skip_checks", TStringList, [], "checks to skip"),
        Param("ignore_errors", TStringList, [], "error codes to report as warnings"),
        Param("verbose", TBool, False, "verbose output"),
    )


class OpClusterSetParams(OpCode):
    OP_ID = "OP_CLUSTER_SET_PARAMS"
    DOC = "Change cluster-wide parameters and defaults."
    PARAMS = (
        Param("vg_name", TMaybeString, None, "volume group for plain and drbd disks"),
        Param("enabled_hypervisors", TMaybeStringList, None, "hypervisors instances may use"),
        Param("enabled_disk_templates", TMaybeStringList, None, "disk templates allowed"),
        Param("hvparams", TMaybeDict, None, "hypervisor defaults {hv: {k: v}}"),
        Param("beparams", TMaybeDict, None, "backend defaults"),
        Param("nicparams", TMaybeDict, None, "NIC defaults"),
        Param("ndparams", TMaybeDict, None, "node defaults"),
        Param("diskparams", TMaybeDict, None, "disk defaults {template: {k: v}}"),
        Param("osparams", TMaybeDict, None, "OS defaults {os: {k: v}}"),
        Param("ipolicy", TMaybeDict, None, "instance policy"),
        Param("file_storage_dir", TMaybeString, None, "file storage directory"),
        Param("shared_file_storage_dir", TMaybeString, None, "shared file storage directory"),
        Param("master_netdev", TMaybeString, None, "network device of the master IP"),
        Param("candidate_pool_size", TMaybeInt, None, "number of master candidates wanted"),
        Param("mac_prefix", TMaybeString, None, "prefix of generated MAC addresses"),
        Param("max_running_jobs", TMaybeInt, None, "jobs allowed to run at once"),
        Param("max_tracked_jobs", TMaybeInt, None, "jobs tracked at once"),
        Param("default_iallocator", TMaybeString, None, "default instance allocator"),
        Param("drbd_helper", TMaybeString, None, "DRBD user-mode helper"),
        Param("os_search_path", TMaybeStringList, None, "directories searched for OSes"),
        Param("uid_pool", TList | TNone, None, "uid ranges [[low, high], ...] (replaces)"),
        Param("add_uids", TList | TNone, None, "uid ranges added to the pool"),
        Param("remove_uids", TList | TNone, None, "uid ranges removed from the pool"),
        Param("add_tags", TMaybeStringList, None, "tags to add"),
        Param("remove_tags", TMaybeStringList, None, "tags to remove"),
    )


class OpClusterRedistConf(OpCode):
    OP_ID = "OP_CLUSTER_REDIST_CONF"
    DOC = "Push the configuration to every master candidate and ssconf to every node again."


class OpClusterDestroy(OpCode):
    OP_ID = "OP_CLUSTER_DESTROY"
    DOC = "Destroy the cluster: forget every node and stop the master."


# --- nodes -------------------------------------------------------------------------------

class OpNodeAdd(OpCode):
    OP_ID = "OP_NODE_ADD"
    OP_DSC_FIELD = "node_name"
    DOC = "Add a node to the cluster; the node daemon must be running on it."
    PARAMS = (
        Param("node_name", TNonEmptyString, required=True, doc="name of the node"),
        Param("primary_ip", TMaybeString, None, "primary address (default: resolved name)"),
        Param("secondary_ip", TMaybeString, None, "replication address"),
        Param("readd", TBool, False, "re-add a node that is already in the config"),
        Param("group", TMaybeString, None, "node group (default: the default group)"),
        Param("master_capable", TMaybeBool, None, "may become master candidate"),
        Param("vm_capable", TMaybeBool, None, "may host instances"),
        Param("ndparams", TMaybeDict, None, "node parameters"),
        Param("port", TMaybeInt, None, "port of the node daemon"),
        Param("join_token", TMaybeString, None, "the node's join token (fingerprint+secret)",
              secret=True),
    )


class OpNodeRemove(OpCode):
    OP_ID = "OP_NODE_REMOVE"
    OP_DSC_FIELD = "node_name"
    DOC = "Remove a node from the cluster."
    PARAMS = (Param("node_name", TNonEmptyString, required=True, doc="name of the node"),)


class OpNodeSetParams(OpCode):
    OP_ID = "OP_NODE_SET_PARAMS"
    OP_DSC_FIELD = "node_name"
    DOC = "Change a node's roles (candidate, drained, offline) and parameters."
    PARAMS = (
        Param("node_name", TNonEmptyString, required=True, doc="name of the node"),
        Param("force", TBool, False, "force the change"),
        Param("master_candidate", TMaybeBool, None, "master candidate role"),
        Param("offline", TMaybeBool, None, "offline flag"),
        Param("drained", TMaybeBool, None, "drained flag"),
        Param("auto_promote", TBool, False, "promote other nodes to keep the pool full"),
        Param("master_capable", TMaybeBool, None, "master_capable flag"),
        Param("vm_capable", TMaybeBool, None, "vm_capable flag"),
        Param("secondary_ip", TMaybeString, None, "replication address"),
        Param("ndparams", TMaybeDict, None, "node parameters"),
        Param("powered", TMaybeBool, None, "powered flag"),
    )


# --- node groups -------------------------------------------------------------------------

class OpGroupAdd(OpCode):
    OP_ID = "OP_GROUP_ADD"
    OP_DSC_FIELD = "group_name"
    DOC = "Create a node group."
    PARAMS = (
        Param("group_name", TNonEmptyString, required=True, doc="name of the group"),
        Param("alloc_policy", TAllocPolicy, None, "allocation policy"),
        Param("ndparams", TMaybeDict, None, "node parameters"),
        Param("diskparams", TMaybeDict, None, "disk parameters"),
        Param("ipolicy", TMaybeDict, None, "instance policy"),
    )


class OpGroupRemove(OpCode):
    OP_ID = "OP_GROUP_REMOVE"
    OP_DSC_FIELD = "group_name"
    DOC = "Remove an empty node group."
    PARAMS = (Param("group_name", TNonEmptyString, required=True, doc="name of the group"),)


class OpGroupRename(OpCode):
    OP_ID = "OP_GROUP_RENAME"
    OP_DSC_FIELD = "group_name"
    DOC = "Rename a node group."
    PARAMS = (
        Param("group_name", TNonEmptyString, required=True, doc="current name"),
        Param("new_name", TNonEmptyString, required=True, doc="new name"),
    )


class OpGroupAssignNodes(OpCode):
    OP_ID = "OP_GROUP_ASSIGN_NODES"
    OP_DSC_FIELD = "group_name"
    DOC = "Move nodes into a node group."
    PARAMS = (
        Param("group_name", TNonEmptyString, required=True, doc="target group"),
        Param("nodes", TStringList, required=True, doc="nodes to move"),
        Param("force", TBool, False, "allow splitting instances across groups"),
    )


class OpGroupSetParams(OpCode):
    OP_ID = "OP_GROUP_SET_PARAMS"
    OP_DSC_FIELD = "group_name"
    DOC = "Change a node group's parameters."
    PARAMS = (
        Param("group_name", TNonEmptyString, required=True, doc="name of the group"),
        Param("alloc_policy", TAllocPolicy, None, "allocation policy"),
        Param("ndparams", TMaybeDict, None, "node parameters"),
        Param("diskparams", TMaybeDict, None, "disk parameters"),
        Param("hvparams", TMaybeDict, None, "hypervisor parameters"),
        Param("ipolicy", TMaybeDict, None, "instance policy"),
    )


# --- tags and tests ----------------------------------------------------------------------

TTagKind = one_of("cluster", "node", "nodegroup", "instance", "network")


class OpTagsSet(OpCode):
    OP_ID = "OP_TAGS_SET"
    DOC = "Add tags to an object."
    PARAMS = (
        Param("kind", TTagKind, required=True, doc="object kind"),
        Param("name", TMaybeString, None, "object name (not for the cluster)"),
        Param("tags", TStringList, required=True, doc="tags"),
    )


class OpTagsDel(OpCode):
    OP_ID = "OP_TAGS_DEL"
    DOC = "Remove tags from an object."
    PARAMS = (
        Param("kind", TTagKind, required=True, doc="object kind"),
        Param("name", TMaybeString, None, "object name (not for the cluster)"),
        Param("tags", TStringList, required=True, doc="tags"),
    )


MAX_DELAY = 86400.0
"""The longest test delay: a day (a node daemon refuses longer sleeps too)."""
TDelay = Type(f"seconds, 0 to {MAX_DELAY:g}", lambda v: TFloat.check(v) and 0 <= v <= MAX_DELAY)


class OpTestDelay(OpCode):
    OP_ID = "OP_TEST_DELAY"
    OP_DSC_FIELD = "duration"
    DOC = "Sleep for a while, on the master and/or nodes; the unit of job benchmarks."
    CANCELABLE = True
    PARAMS = (
        Param("duration", TDelay, required=True, doc="seconds to sleep"),
        Param("on_master", TBool, True, "sleep on the master"),
        Param("on_nodes", TStringList, [], "nodes to sleep on (through their daemons)"),
        Param("on_node_uuids", TMaybeStringList, None, "node uuids to sleep on"),
        Param("repeat", Type("int 0..1000", lambda v: _is_int(v) and 0 <= v <= 1000), 0,
              "repeat the sleep this many times"),
        Param("interruptible", TBool, False, "may be canceled while sleeping"),
        Param("no_locks", TBool, True, "take no locks"),
    )


# --- instances ---------------------------------------------------------------------------

TDiskTemplate = one_of(*constants.DISK_TEMPLATES)
TMaybeNonNegInt = TNonNegInt | TNone
TMaybeFloat = TNonNegFloat | TNone
TListOfDicts = Type("list of dicts",
                    lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v))
TChangeList = Type("list of [op, index, params]",
                   lambda v: isinstance(v, list) and all(
                       isinstance(x, (list, tuple)) and len(x) == 3 for x in v))


def _instance_name() -> Param:
    return Param("instance_name", TNonEmptyString, required=True, doc="name of the instance")


class OpInstanceCreate(OpCode):
    OP_ID = "OP_INSTANCE_CREATE"
    OP_DSC_FIELD = "instance_name"
    DOC = "Create an instance: disks, OS installation, config entry, start."
    PARAMS = (
        _instance_name(),
        Param("mode", one_of("create", "import", "remote-import"), "create", "creation mode"),
        Param("disk_template", TDiskTemplate, required=True, doc="disk template"),
        Param("disks", TListOfDicts, [], "disks: [{size, mode, name, vg, adopt}]"),
        Param("nics", TListOfDicts, [], "NICs: [{mac, ip, mode, link, name, network}]"),
        Param("beparams", TDict, {}, "backend parameters"),
        Param("hvparams", TDict, {}, "hypervisor parameters"),
        Param("hypervisor", TMaybeString, None, "hypervisor (default: the cluster's first)"),
        Param("osparams", TDict, {}, "OS parameters"),
        Param("os_type", TMaybeString, None, "OS, as name+variant"),
        Param("force_variant", TBool, False, "accept an unknown OS variant"),
        Param("pnode", TMaybeString, None, "primary node"),
        Param("snode", TMaybeString, None, "secondary node"),
        Param("iallocator", TMaybeString, None, "allocator choosing the nodes"),
        Param("group_name", TMaybeString, None, "node group to allocate in"),
        Param("name_check", TBool, True, "check the name resolves"),
        Param("ip_check", TBool, True, "check the resolved address is not in use"),
        Param("conflicts_check", TBool, True, "check for conflicting IPs"),
        Param("start", TBool, True, "start the instance after creation"),
        Param("no_install", TBool, False, "don't run the OS create script"),
        Param("wait_for_sync", TBool, True, "wait for mirrored disks to sync"),
        Param("file_storage_dir", TMaybeString, None, "directory below the storage dir"),
        Param("file_driver", TMaybeString, None, "file driver (loop)"),
        Param("tags", TStringList, [], "tags"),
        Param("src_node", TMaybeString, None, "import: source node"),
        Param("src_path", TMaybeString, None, "import: source path"),
    )


class OpInstanceRemove(OpCode):
    OP_ID = "OP_INSTANCE_REMOVE"
    OP_DSC_FIELD = "instance_name"
    DOC = "Remove an instance and its disks."
    PARAMS = (
        _instance_name(),
        Param("ignore_failures", TBool, False, "remove from the config even if cleanup fails"),
        Param("shutdown_timeout", TNonNegInt, 120, "seconds to wait for a clean shutdown"),
    )


class OpInstanceStartup(OpCode):
    OP_ID = "OP_INSTANCE_STARTUP"
    OP_DSC_FIELD = "instance_name"
    DOC = "Start an instance."
    PARAMS = (
        _instance_name(),
        Param("force", TBool, False, "force"),
        Param("ignore_offline_nodes", TBool, False, "ignore offline nodes"),
        Param("hvparams", TDict, {}, "temporary hypervisor parameters"),
        Param("beparams", TDict, {}, "temporary backend parameters"),
        Param("no_remember", TBool, False, "don't record the instance as up"),
        Param("startup_paused", TBool, False, "start paused"),
    )


class OpInstanceShutdown(OpCode):
    OP_ID = "OP_INSTANCE_SHUTDOWN"
    OP_DSC_FIELD = "instance_name"
    DOC = "Stop an instance."
    PARAMS = (
        _instance_name(),
        Param("force", TBool, False, "force"),
        Param("ignore_offline_nodes", TBool, False, "ignore offline nodes"),
        Param("timeout", TNonNegInt, 120, "seconds to wait for a clean shutdown"),
        Param("no_remember", TBool, False, "don't record the instance as down"),
    )


class OpInstanceReboot(OpCode):
    OP_ID = "OP_INSTANCE_REBOOT"
    OP_DSC_FIELD = "instance_name"
    DOC = "Reboot an instance."
    PARAMS = (
        _instance_name(),
        Param("reboot_type", one_of("soft", "hard", "full"), "hard", "reboot type"),
        Param("shutdown_timeout", TNonNegInt, 120, "seconds to wait for a clean shutdown"),
        Param("ignore_secondaries", TBool, False, "ignore secondary node errors"),
    )


class OpInstanceReinstall(OpCode):
    OP_ID = "OP_INSTANCE_REINSTALL"
    OP_DSC_FIELD = "instance_name"
    DOC = "Reinstall an instance's OS."
    PARAMS = (
        _instance_name(),
        Param("os_type", TMaybeString, None, "new OS"),
        Param("osparams", TMaybeDict, None, "new OS parameters"),
        Param("force_variant", TBool, False, "accept an unknown variant"),
    )


class OpInstanceRename(OpCode):
    OP_ID = "OP_INSTANCE_RENAME"
    OP_DSC_FIELD = "instance_name"
    DOC = "Rename an instance."
    PARAMS = (
        _instance_name(),
        Param("new_name", TNonEmptyString, required=True, doc="new name"),
        Param("ip_check", TBool, False, "check the new address is not in use"),
        Param("name_check", TBool, True, "check the new name resolves"),
    )


class OpInstanceSetParams(OpCode):
    OP_ID = "OP_INSTANCE_SET_PARAMS"
    OP_DSC_FIELD = "instance_name"
    DOC = "Change an instance's parameters, disks and NICs."
    PARAMS = (
        _instance_name(),
        Param("beparams", TDict, {}, "backend parameters"),
        Param("hvparams", TDict, {}, "hypervisor parameters"),
        Param("osparams", TMaybeDict, None, "OS parameters"),
        Param("os_name", TMaybeString, None, "new OS (applies at next reinstall)"),
        Param("force_variant", TBool, False, "accept an unknown variant"),
        Param("disks", TChangeList, [], "disk changes: [[op, index, params]]"),
        Param("nics", TChangeList, [], "NIC changes: [[op, index, params]]"),
        Param("offline", TMaybeBool, None, "mark offline (True) or online (False)"),
        Param("disk_template", TMaybeString, None, "convert to this disk template"),
        Param("remote_node", TMaybeString, None, "secondary node for a conversion"),
        Param("wait_for_sync", TBool, True, "wait for mirrored disks to sync"),
        Param("runtime_mem", TMaybeNonNegInt, None, "balloon the running instance (MiB)"),
        Param("force", TBool, False, "force"),
    )


class OpInstanceGrowDisk(OpCode):
    OP_ID = "OP_INSTANCE_GROW_DISK"
    OP_DSC_FIELD = "instance_name"
    DOC = "Grow one disk of an instance."
    PARAMS = (
        _instance_name(),
        Param("disk", TNonNegInt, required=True, doc="disk index"),
        Param("amount", TNonNegInt, required=True, doc="MiB to add (or the new size)"),
        Param("absolute", TBool, False, "amount is the new size"),
        Param("wait_for_sync", TBool, True, "wait for mirrored disks to sync"),
    )


class OpInstanceActivateDisks(OpCode):
    OP_ID = "OP_INSTANCE_ACTIVATE_DISKS"
    OP_DSC_FIELD = "instance_name"
    DOC = "Make an instance's disks usable on its nodes."
    PARAMS = (
        _instance_name(),
        Param("ignore_size", TBool, False, "ignore recorded sizes"),
        Param("wait_for_sync", TBool, False, "wait for mirrored disks to sync"),
    )


class OpInstanceDeactivateDisks(OpCode):
    OP_ID = "OP_INSTANCE_DEACTIVATE_DISKS"
    OP_DSC_FIELD = "instance_name"
    DOC = "Release an instance's disks on its nodes."
    PARAMS = (_instance_name(), Param("force", TBool, False, "even if the instance runs"))


class OpInstanceMove(OpCode):
    OP_ID = "OP_INSTANCE_MOVE"
    OP_DSC_FIELD = "instance_name"
    DOC = "Copy an instance's disks to another node and make it the primary."
    PARAMS = (
        _instance_name(),
        Param("target_node", TNonEmptyString, required=True, doc="new primary node"),
        Param("shutdown_timeout", TNonNegInt, 120, "seconds to wait for a clean shutdown"),
        Param("ignore_consistency", TBool, False, "ignore disk consistency"),
    )


class OpInstanceFailover(OpCode):
    OP_ID = "OP_INSTANCE_FAILOVER"
    OP_DSC_FIELD = "instance_name"
    DOC = "Stop an instance and start it on another node."
    PARAMS = (
        _instance_name(),
        Param("ignore_consistency", TBool, False, "the old primary is dead"),
        Param("shutdown_timeout", TNonNegInt, 120, "seconds to wait for a clean shutdown"),
        Param("target_node", TMaybeString, None, "target node (shared storage)"),
        Param("iallocator", TMaybeString, None, "allocator choosing the target"),
        Param("cleanup", TBool, False, "clean up after a failed failover"),
    )


class OpInstanceMigrate(OpCode):
    OP_ID = "OP_INSTANCE_MIGRATE"
    OP_DSC_FIELD = "instance_name"
    DOC = "Move a running instance to another node without stopping it."
    PARAMS = (
        _instance_name(),
        Param("mode", one_of("live", "non-live") | TNone, None, "migration mode"),
        Param("live", TMaybeBool, None, "old spelling of mode"),
        Param("target_node", TMaybeString, None, "target node (shared storage)"),
        Param("iallocator", TMaybeString, None, "allocator choosing the target"),
        Param("cleanup", TBool, False, "recover from an interrupted migration"),
        Param("allow_failover", TBool, False, "fail over if migration is impossible"),
        Param("ignore_ipolicy", TBool, False, "ignore the instance policy"),
        Param("mirror_disks", TBool, False,
              "copy local (file, plain) disks to the target during a live migration"),
    )


TIntList = Type("list of ints", lambda v: isinstance(v, list) and all(_is_int(x) for x in v))
REPLACE_MODES = ("replace_on_primary", "replace_on_secondary", "replace_new_secondary",
                 "replace_auto")


class OpInstanceReplaceDisks(OpCode):
    OP_ID = "OP_INSTANCE_REPLACE_DISKS"
    OP_DSC_FIELD = "instance_name"
    DOC = "Replace the storage under a mirrored instance's disks, or its secondary node."
    PARAMS = (
        _instance_name(),
        Param("mode", one_of(*REPLACE_MODES), required=True, doc="where to replace"),
        Param("disks", TIntList, [], "disk indices (all when empty)"),
        Param("remote_node", TMaybeString, None, "new secondary node"),
        Param("iallocator", TMaybeString, None, "allocator choosing the new secondary"),
        Param("early_release", TBool, False, "release locks early"),
        Param("ignore_ipolicy", TBool, False, "ignore the instance policy"),
    )


class OpClusterVerifyDisks(OpCode):
    OP_ID = "OP_CLUSTER_VERIFY_DISKS"
    DOC = "Find mirrored disks that are degraded or disconnected, and reconnect them."
    PARAMS = (Param("group_name", TMaybeString, None, "only this node group"),)


class OpNodeEvacuate(OpCode):
    OP_ID = "OP_NODE_EVACUATE"
    OP_DSC_FIELD = "node_name"
    DOC = "Move instances off a node: secondaries to other nodes, primaries by failover."
    PARAMS = (
        Param("node_name", TNonEmptyString, required=True, doc="node to evacuate"),
        Param("mode", one_of("primary-only", "secondary-only", "all"), "all", "what to move"),
        Param("remote_node", TMaybeString, None, "new secondary for every instance"),
        Param("iallocator", TMaybeString, None, "allocator choosing the new nodes"),
        Param("early_release", TBool, False, "release locks early"),
    )
