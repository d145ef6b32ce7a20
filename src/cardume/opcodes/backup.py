"""Backups (gnt-backup): exports of an instance to a node's export directory, their
listing and removal. Imports are OP_INSTANCE_CREATE with mode "import"."""

from __future__ import annotations

from cardume import constants
from cardume.opcodes.base import OpCode, Param
from cardume.rules.paramtypes import (
    TBool,
    TMaybeNonNegInt,
    TMaybeString,
    TMaybeStringList,
    TNonEmptyString,
    TNonNegInt,
)

EXPORT_MODES = ("local", "remote")
COMPRESSION_MODES = ("none",)


def _instance_name() -> Param:
    return Param("instance_name", TNonEmptyString, required=True, doc="name of the instance")


class OpBackupPrepare(OpCode):
    OP_ID = "OP_BACKUP_PREPARE"
    OP_DSC_FIELD = "instance_name"
    DOC = "Prepare an instance's export (what a remote export needs first)."
    PARAMS = (
        _instance_name(),
        Param("mode", TNonEmptyString, required=True, doc="export mode",
              choices=EXPORT_MODES),
    )


class OpBackupExport(OpCode):
    OP_ID = "OP_BACKUP_EXPORT"
    OP_DSC_FIELD = "instance_name"
    DOC = "Export an instance's configuration and disks to a node's export directory."
    PARAMS = (
        _instance_name(),
        Param("target_node", TMaybeString, None, "node receiving the export (mode local)"),
        Param("shutdown", TBool, True, "stop the instance while its disks are read"),
        Param("shutdown_timeout", TNonNegInt, constants.DEFAULT_SHUTDOWN_TIMEOUT,
              "seconds to wait for a clean shutdown"),
        Param("remove_instance", TBool, False, "remove the instance after the export"),
        Param("ignore_remove_failures", TBool, False,
              "remove it from the config even if removing its disks fails"),
        Param("mode", TNonEmptyString, "local", "export mode", choices=EXPORT_MODES),
        Param("compress", TNonEmptyString, "none", "compression of the disk dumps",
              choices=COMPRESSION_MODES),
        Param("zero_free_space", TBool, False, "zero the free space first (not supported)"),
        Param("zeroing_timeout_fixed", TMaybeNonNegInt, None, "zeroing: fixed timeout"),
        Param("zeroing_timeout_per_mib", TMaybeNonNegInt, None, "zeroing: timeout per MiB"),
        Param("long_sleep", TBool, False,
              "allow the instance to stay down while disks without snapshots are read"),
        Param("x509_key_name", TMaybeStringList, None, "remote mode: the key's name"),
        Param("destination_x509_ca", TMaybeString, None, "remote mode: destination CA"),
    )


class OpBackupRemove(OpCode):
    OP_ID = "OP_BACKUP_REMOVE"
    OP_DSC_FIELD = "instance_name"
    DOC = "Remove an instance's exports from every node."
    PARAMS = (_instance_name(),)


class OpBackupQuery(OpCode):
    OP_ID = "OP_BACKUP_QUERY"
    DOC = "The exports on each node (gnt-backup list)."
    PARAMS = (
        Param("nodes", TMaybeStringList, None, "nodes to ask (default: all)"),
        Param("use_locking", TBool, False, "accepted for Ganeti's clients"),
    )
