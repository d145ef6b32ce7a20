"""Instances: creation, lifecycle, disks, moves, queries."""

from __future__ import annotations

from cardume import constants
from cardume.opcodes.base import OpCode, Param
from cardume.rules.paramtypes import (
    TBool,
    TDict,
    TIntList,
    TListOfDicts,
    TMaybeBool,
    TMaybeDict,
    TMaybeNonNegInt,
    TMaybeString,
    TMaybeStringList,
    TNonEmptyString,
    TNonNegInt,
    TString,
    TStringList,
    Type,
)

# --- instances ---------------------------------------------------------------------------

TChangeList = Type("list of [op, index, params]",
                   lambda v: isinstance(v, list) and all(
                       isinstance(x, (list, tuple)) and len(x) == 3 for x in v))


def _instance_name() -> Param:
    return Param("instance_name", TNonEmptyString, required=True, doc="name of the instance")


def _shutdown_timeout(name: str) -> Param:
    return Param(name, TNonNegInt, constants.DEFAULT_SHUTDOWN_TIMEOUT,
                 "seconds to wait for a clean shutdown")


class OpInstanceCreate(OpCode):
    OP_ID = "OP_INSTANCE_CREATE"
    OP_DSC_FIELD = "instance_name"
    DOC = "Create an instance: disks, OS installation, config entry, start."
    PARAMS = (
        _instance_name(),
        Param("mode", TString, "create", "creation mode",
              choices=constants.INSTANCE_CREATE_MODES),
        Param("disk_template", TMaybeString, None,
              "disk template (required, but for an import: the export's)",
              choices=constants.DISK_TEMPLATES),
        Param("disks", TListOfDicts, [], "disks: [{size, mode, name, vg, adopt}]"),
        Param("nics", TListOfDicts, [], "NICs: [{mac, ip, mode, link, name, network}]"),
        Param("beparams", TDict, {}, "backend parameters"),
        Param("hvparams", TDict, {}, "hypervisor parameters"),
        Param("hypervisor", TMaybeString, None, "hypervisor; unset: the cluster's first",
              choices=constants.HYPER_TYPES),
        Param("osparams", TDict, {}, "OS parameters"),
        Param("os_type", TMaybeString, None, "OS, as name+variant"),
        Param("force_variant", TBool, False, "accept an unknown OS variant"),
        Param("pnode", TMaybeString, None, "primary node"),
        Param("snode", TMaybeString, None, "secondary node"),
        Param("iallocator", TMaybeString, None, "allocator choosing the nodes"),
        Param("group_name", TMaybeString, None, "node group to allocate in"),
        Param("ignore_ipolicy", TBool, False, "create it even if it breaks the policy"),
        Param("name_check", TBool, True, "check the name resolves"),
        Param("ip_check", TBool, True, "check the resolved address is not in use"),
        Param("conflicts_check", TBool, True, "check for conflicting IPs"),
        Param("start", TBool, True, "start the instance after creation"),
        Param("no_install", TBool, False, "don't run the OS create script"),
        Param("wait_for_sync", TBool, True, "wait for mirrored disks to sync"),
        Param("file_storage_dir", TMaybeString, None, "directory below the storage dir"),
        Param("file_driver", TMaybeString, None, "file driver (only loop works yet)",
              choices=constants.FILE_DRIVERS),
        Param("tags", TStringList, [], "tags"),
        Param("src_node", TMaybeString, None, "import: source node"),
        Param("src_path", TMaybeString, None, "import: source path"),
    )


class OpInstanceMultiAlloc(OpCode):
    OP_ID = "OP_INSTANCE_MULTI_ALLOC"
    DOC = "Place several new instances at once with an allocator, then create each."
    PARAMS = (
        Param("instances", TListOfDicts, required=True,
              doc="the instances: OP_INSTANCE_CREATE parameters without nodes"),
        Param("iallocator", TMaybeString, None, "allocator; unset: the cluster's default"),
        Param("opportunistic_locking", TBool, False, "accepted for Ganeti's clients"),
    )


class OpInstanceChangeGroup(OpCode):
    OP_ID = "OP_INSTANCE_CHANGE_GROUP"
    OP_DSC_FIELD = "instance_name"
    DOC = "Move an instance to another node group, where an allocator places it."
    PARAMS = (
        _instance_name(),
        Param("iallocator", TMaybeString, None, "allocator; unset: the cluster's default"),
        Param("target_groups", TMaybeStringList, None,
              "groups it may go to; unset: any group but its own"),
        Param("early_release", TBool, False, "accepted for Ganeti's clients"),
    )


class OpInstanceRemove(OpCode):
    OP_ID = "OP_INSTANCE_REMOVE"
    OP_DSC_FIELD = "instance_name"
    DOC = "Remove an instance and its disks."
    PARAMS = (
        _instance_name(),
        Param("ignore_failures", TBool, False, "remove from the config even if cleanup fails"),
        _shutdown_timeout("shutdown_timeout"),
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
        _shutdown_timeout("timeout"),
        Param("no_remember", TBool, False, "don't record the instance as down"),
    )


class OpInstanceReboot(OpCode):
    OP_ID = "OP_INSTANCE_REBOOT"
    OP_DSC_FIELD = "instance_name"
    DOC = "Reboot an instance."
    PARAMS = (
        _instance_name(),
        Param("reboot_type", TString, "hard", "reboot type",
              choices=constants.INSTANCE_REBOOT_TYPES),
        _shutdown_timeout("shutdown_timeout"),
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


class OpInstanceQueryData(OpCode):
    OP_ID = "OP_INSTANCE_QUERY_DATA"
    DOC = "Describe instances: configuration, and unless static their run and disk state."
    PARAMS = (
        Param("use_locking", TBool, False, "hold shared locks on the instances and nodes"),
        Param("instances", TStringList, [], "instances to describe (all when empty)"),
        Param("static", TBool, False, "only the configuration: ask no node"),
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
        Param("disk_template", TMaybeString, None, "convert to this disk template",
              choices=constants.DISK_TEMPLATES),
        Param("remote_node", TMaybeString, None, "secondary node for a conversion"),
        Param("wait_for_sync", TBool, True, "wait for mirrored disks to sync"),
        Param("runtime_mem", TMaybeNonNegInt, None, "balloon the running instance (MiB)"),
        Param("force", TBool, False, "force"),
        Param("ignore_ipolicy", TBool, False, "ignore the instance policy"),
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
        _shutdown_timeout("shutdown_timeout"),
        Param("ignore_consistency", TBool, False, "ignore disk consistency"),
    )


class OpInstanceFailover(OpCode):
    OP_ID = "OP_INSTANCE_FAILOVER"
    OP_DSC_FIELD = "instance_name"
    DOC = "Stop an instance and start it on another node."
    PARAMS = (
        _instance_name(),
        Param("ignore_consistency", TBool, False, "the old primary is dead"),
        _shutdown_timeout("shutdown_timeout"),
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
        Param("mode", TMaybeString, None, "migration mode; unset: the hypervisor's",
              choices=constants.HT_MIGRATION_MODES),
        Param("live", TMaybeBool, None, "old spelling of mode"),
        Param("target_node", TMaybeString, None, "target node (shared storage)"),
        Param("iallocator", TMaybeString, None, "allocator choosing the target"),
        Param("cleanup", TBool, False, "recover from an interrupted migration"),
        Param("allow_failover", TBool, False, "fail over if migration is impossible"),
        Param("ignore_ipolicy", TBool, False, "ignore the instance policy"),
        Param("mirror_disks", TBool, False,
              "copy local (file, plain) disks to the target during a live migration"),
        # what Ganeti's htools send with every move (hbal -X): accepted, with cardume's
        # behaviour (the instance's memory is never changed to fit; versions are not held)
        Param("allow_runtime_changes", TBool, True, "accepted for Ganeti's clients"),
        Param("ignore_hvversions", TBool, False, "accepted for Ganeti's clients"),
    )


REPLACE_MODES = constants.REPLACE_DISK_MODES


class OpInstanceReplaceDisks(OpCode):
    OP_ID = "OP_INSTANCE_REPLACE_DISKS"
    OP_DSC_FIELD = "instance_name"
    DOC = "Replace the storage under a mirrored instance's disks, or its secondary node."
    PARAMS = (
        _instance_name(),
        Param("mode", TString, required=True, doc="where to replace", choices=REPLACE_MODES),
        Param("disks", TIntList, [], "disk indices (all when empty)"),
        Param("remote_node", TMaybeString, None, "new secondary node"),
        Param("iallocator", TMaybeString, None, "allocator choosing the new secondary"),
        Param("early_release", TBool, False, "release locks early"),
        Param("ignore_ipolicy", TBool, False, "ignore the instance policy"),
    )
