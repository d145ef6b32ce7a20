"""The cluster, its nodes and node groups, tags, and the test operations."""

from __future__ import annotations

from cardume import constants
from cardume.opcodes.base import OpCode, Param
from cardume.rules.paramtypes import (
    TBool,
    TListOfDicts,
    TMaybeBool,
    TMaybeDict,
    TMaybeInt,
    TMaybeList,
    TMaybeNonNegInt,
    TMaybeString,
    TMaybeStringList,
    TNonEmptyString,
    TNonNegFloat,
    TString,
    TStringList,
    int_range,
    number_range,
)

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
        Param("uid_pool", TMaybeList, None, "uid ranges [[low, high], ...] (replaces)"),
        Param("add_uids", TMaybeList, None, "uid ranges added to the pool"),
        Param("remove_uids", TMaybeList, None, "uid ranges removed from the pool"),
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


class OpNodeQueryStorage(OpCode):
    OP_ID = "OP_NODE_QUERY_STORAGE"
    DOC = "Report the storage units of nodes (what gnt-node list-storage shows), as rows."
    PARAMS = (
        Param("output_fields", TStringList, required=True,
              doc="columns: node, type, name, size, used, free, allocatable"),
        Param("storage_type", TMaybeString, None,
              "storage type; unset: the first enabled disk template's",
              choices=constants.STORAGE_TYPES),
        Param("nodes", TStringList, [], "nodes to ask (all when empty)"),
        Param("name", TMaybeString, None, "only the storage unit of this name"),
    )


# --- node groups -------------------------------------------------------------------------

class OpGroupAdd(OpCode):
    OP_ID = "OP_GROUP_ADD"
    OP_DSC_FIELD = "group_name"
    DOC = "Create a node group."
    PARAMS = (
        Param("group_name", TNonEmptyString, required=True, doc="name of the group"),
        Param("alloc_policy", TMaybeString, None, "allocation policy",
              choices=constants.ALLOC_POLICIES),
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
        Param("alloc_policy", TMaybeString, None, "allocation policy",
              choices=constants.ALLOC_POLICIES),
        Param("ndparams", TMaybeDict, None, "node parameters"),
        Param("diskparams", TMaybeDict, None, "disk parameters"),
        Param("hvparams", TMaybeDict, None, "hypervisor parameters"),
        Param("ipolicy", TMaybeDict, None, "instance policy"),
    )


# --- tags and tests ----------------------------------------------------------------------

class OpTagsSet(OpCode):
    OP_ID = "OP_TAGS_SET"
    DOC = "Add tags to an object."
    PARAMS = (
        Param("kind", TNonEmptyString, required=True, doc="object kind",
              choices=constants.TAG_KINDS),
        Param("name", TMaybeString, None, "object name (not for the cluster)"),
        Param("tags", TStringList, required=True, doc="tags"),
    )


class OpTagsDel(OpCode):
    OP_ID = "OP_TAGS_DEL"
    DOC = "Remove tags from an object."
    PARAMS = (
        Param("kind", TNonEmptyString, required=True, doc="object kind",
              choices=constants.TAG_KINDS),
        Param("name", TMaybeString, None, "object name (not for the cluster)"),
        Param("tags", TStringList, required=True, doc="tags"),
    )


MAX_DELAY = 86400.0
"""The longest test delay: a day (a node daemon refuses longer sleeps too)."""
TDelay = number_range(0, MAX_DELAY, f"seconds, 0 to {MAX_DELAY:g}")


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
        Param("repeat", int_range(0, 1000), 0, "repeat the sleep this many times"),
        Param("interruptible", TBool, False, "may be canceled while sleeping"),
        Param("no_locks", TBool, True, "take no locks"),
    )


IALLOCATOR_MODES = ("allocate", "multi-allocate", "relocate", "node-evacuate", "change-group")
EVAC_MODES = ("primary-only", "secondary-only", "all")


class OpTestAllocator(OpCode):
    OP_ID = "OP_TEST_ALLOCATOR"
    OP_DSC_FIELD = "name"
    DOC = "Show an allocator request (direction in) or ask the allocator (direction out)."
    PARAMS = (
        Param("direction", TString, "in", "in: the request; out: the allocator's answer",
              choices=("in", "out")),
        Param("mode", TString, "allocate", "request type", choices=IALLOCATOR_MODES),
        Param("name", TNonEmptyString, required=True, doc="instance name"),
        Param("iallocator", TMaybeString, None, "allocator; unset: the cluster's default"),
        Param("memory", TMaybeNonNegInt, None, "memory of the instance (MiB)"),
        Param("vcpus", TMaybeNonNegInt, None, "CPU count of the instance"),
        Param("disks", TListOfDicts, [], "disks: [{size, mode}]"),
        Param("disk_template", TMaybeString, None, "disk template",
              choices=constants.DISK_TEMPLATES),
        Param("nics", TListOfDicts, [], "NICs: [{mac, ip, link}]"),
        Param("os", TMaybeString, None, "OS, as name+variant"),
        Param("hypervisor", TMaybeString, None, "hypervisor", choices=constants.HYPER_TYPES),
        Param("tags", TStringList, [], "tags"),
        Param("spindle_use", TMaybeNonNegInt, None, "spindles the instance uses"),
        Param("group_name", TMaybeString, None, "node group to allocate in"),
        Param("evac_mode", TMaybeString, None, "node-evacuate: which instances move",
              choices=EVAC_MODES),
        Param("instances", TMaybeStringList, None, "node-evacuate, change-group: instances"),
        Param("target_groups", TMaybeStringList, None, "change-group: target groups"),
        Param("count", TMaybeNonNegInt, None, "multi-allocate: how many instances"),
    )


class OpClusterBalance(OpCode):
    OP_ID = "OP_CLUSTER_BALANCE"
    DOC = "Plan the moves that even out a node group's load (hbal); nothing moves."
    PARAMS = (
        Param("max_moves", TMaybeNonNegInt, None, "at most this many moves; unset: no limit"),
        Param("min_gain", TNonNegFloat, 0.01,
              "smallest gain of a move (hbal -g) under min_gain_limit"),
        Param("min_gain_limit", TNonNegFloat, 0.1, "score under which min_gain applies"),
        Param("group_name", TMaybeString, None, "only this node group; unset: every group"),
    )


class OpClusterCapacity(OpCode):
    OP_ID = "OP_CLUSTER_CAPACITY"
    DOC = "Count how many more instances of a spec fit, per node group (hspace)."
    PARAMS = (
        Param("spec", TMaybeDict, None,
              "memory-size, disk-size (MiB), cpu-count; unset: the std spec's"),
        Param("disk_template", TMaybeString, None, "disk template; unset: the policy's first",
              choices=constants.DISK_TEMPLATES),
        Param("group_name", TMaybeString, None, "only this node group; unset: every group"),
    )


# --- cluster-wide operations on instances ---------------------------------------------

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
        Param("mode", TString, "all", "what to move", choices=constants.NODE_EVAC_MODES),
        Param("remote_node", TMaybeString, None, "new secondary for every instance"),
        Param("iallocator", TMaybeString, None, "allocator choosing the new nodes"),
        Param("early_release", TBool, False, "release locks early"),
    )
