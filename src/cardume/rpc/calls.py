"""The table of master→node calls: name, timeout class, who may make it, and what it does.

Every call a node daemon serves is listed here; the client refuses names that are not,
so a typo fails at once instead of as a 404 from every node.

``caller`` says who may make a call, as the node daemon sees the caller's certificate
(signed by the cluster CA, named after its node) against its own view of the roles:
``public`` anyone (before a node has joined), ``master`` the master only, ``candidate`` the
master or a master candidate (what ``gnt-cluster master-failover`` needs), ``node`` any node
of the cluster (what a master daemon asks at start-up). A call that only
reads is ``readonly``: the client may resend it after a connection drops; any other call is
sent once (see rpc/http.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# Timeout classes, in seconds. A node that is down refuses the connection at once; these
# bound how long a node that hangs can hold up a job.
TIMEOUTS = {
    "urgent": 10.0,
    "fast": 60.0,
    "normal": 900.0,
    "slow": 1800.0,
    "4hrs": 4 * 3600.0,
    "1day": 86400.0,
}


PUBLIC = "public"
MASTER = "master"
CANDIDATE = "candidate"
NODE = "node"


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    timeout: str
    doc: str
    caller: str = MASTER
    readonly: bool = False

    @property
    def public(self) -> bool:
        """Served before the node has joined a cluster, to anyone."""
        return self.caller == PUBLIC

    @property
    def seconds(self) -> float:
        return TIMEOUTS[self.timeout]


CALLS: dict[str, Call] = {c.name: c for c in (
    Call("version", "urgent", "protocol and software version of the node daemon",
         caller=PUBLIC, readonly=True),
    Call("join", "fast", "join the cluster: install the CA, the node certificate, ssconf",
         caller=PUBLIC),
    Call("leave", "fast", "forget the cluster: drop certificates, replica and ssconf"),
    Call("node_info", "urgent", "memory, CPUs, storage space, hypervisors of the node",
         readonly=True),
    Call("node_verify", "fast", "run the node-local checks of cluster verify", readonly=True),
    # a new master pushes its summary before the nodes know it is master
    Call("ssconf_write", "fast", "store the cluster summary every node keeps", caller=CANDIDATE),
    Call("master_info", "urgent", "who this node believes is master, and its summary's serial",
         caller=NODE, readonly=True),
    Call("config_apply", "fast", "apply one config change set to the local replica"),
    Call("config_replace", "normal", "replace the local replica whole"),
    # master failover runs on a candidate: it compares replicas, takes the newest one and
    # stops the old master
    Call("config_serial", "urgent", "serial number of the local replica",
         caller=CANDIDATE, readonly=True),
    Call("config_dump", "normal", "the local replica as one document",
         caller=CANDIDATE, readonly=True),
    Call("queue_apply", "fast", "apply job queue changes to the local replica"),
    Call("queue_serial", "urgent", "epoch and serial of the local job queue (replica or "
         "the master's own)", caller=CANDIDATE, readonly=True),
    Call("queue_dump", "normal", "the local job queue as one document",
         caller=CANDIDATE, readonly=True),
    Call("master_stop", "fast", "stop the master daemon on this node", caller=CANDIDATE),
    Call("test_delay", "normal", "sleep for a while (gnt-debug delay -n)"),
    # block devices (args carry DiskSpecs: see node/storage/__init__.py)
    Call("blockdev_create", "normal", "create a disk's storage"),
    Call("blockdev_remove", "normal", "remove a disk's storage (idempotent)"),
    Call("blockdev_assemble", "normal", "make a disk usable on the node; its local path"),
    Call("blockdev_shutdown", "normal", "stop using a disk on the node (data stays)"),
    Call("blockdev_grow", "normal", "grow a disk by some MiB"),
    Call("blockdev_rename", "normal", "move a disk's storage to a new logical id"),
    Call("blockdev_info", "fast", "path, existence and size of disks", readonly=True),
    Call("blockdev_read", "normal", "read a chunk of a disk (copying it to another node)",
         readonly=True),
    Call("blockdev_write", "normal", "write a chunk of a disk (copying it from another node)"),
    Call("drbd_status", "urgent", "state of DRBD minors from /proc/drbd (all, or those named)",
         readonly=True),
    Call("drbd_connect", "normal", "attach DRBD disks and connect them to their peers"),
    Call("drbd_disconnect", "normal", "disconnect DRBD disks from their peers"),
    Call("drbd_set_role", "normal", "make DRBD disks primary or secondary"),
    Call("drbd_replace_local", "normal", "put new LVs under DRBD disks (synced from the peer)"),
    Call("node_volumes", "fast", "the LVs of the cluster's volume group (gnt-node volumes)",
         readonly=True),
    Call("node_storage", "fast", "space of one storage type (gnt-node list-storage)",
         readonly=True),
    Call("file_storage_list", "fast", "the disk files in the node's file storage directories",
         readonly=True),
    # instances and their OS
    Call("instance_os_add", "4hrs", "install an instance's OS (the OS create script)"),
    Call("instance_os_rename", "slow", "run the OS rename script of a renamed instance"),
    Call("instance_start", "normal", "assemble an instance's disks and start it"),
    Call("instance_shutdown", "normal", "stop an instance (nothing to do if not running)"),
    Call("instance_reboot", "normal", "reboot a running instance (soft, hard or full)"),
    Call("instance_list", "urgent", "names of the instances running on the node", readonly=True),
    Call("instance_info_all", "urgent", "state, memory, vcpus of the running instances",
         readonly=True),
    Call("instance_list_incoming", "urgent", "instances held as unfinished migration targets",
         readonly=True),
    Call("accept_instance", "normal", "migration target: get ready to receive an instance"),
    Call("instance_migrate", "slow", "migration source: send a running instance"),
    Call("instance_finalize_migration_dst", "normal", "migration target: finish (or undo)"),
    Call("instance_finalize_migration_src", "normal", "migration source: finish (or undo)"),
    Call("instance_migration_state", "fast", "one side of an interrupted migration (--cleanup)",
         readonly=True),
    Call("instance_migration_cleanup", "normal", "one side's part of a migration cleanup"),
    Call("instance_console", "urgent", "attach to an instance's serial console (the "
         "connection then carries the console)"),
    Call("os_diagnose", "fast", "every OS definition in the search path, valid or not",
         readonly=True),
    Call("os_validate", "fast", "check an OS, its variant and parameters (verify script)",
         readonly=True),
)}
