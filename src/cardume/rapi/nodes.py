"""/2/nodes and /2/nodes/NAME with role, evacuate, migrate, modify, storage and tags."""

from __future__ import annotations

from typing import Any

from cardume import constants
from cardume.rapi import bodies, query, tags
from cardume.rapi.base import Call, RapiError

N_FIELDS = [
    "name", "offline", "master_candidate", "drained", "dtotal", "dfree", "sptotal", "spfree",
    "mtotal", "mnode", "mfree", "pinst_cnt", "sinst_cnt", "ctotal", "cnos", "cnodes",
    "csockets", "pip", "sip", "role", "pinst_list", "sinst_list", "master_capable",
    "vm_capable", "ndparams", "group.uuid",
    "ctime", "mtime", "uuid", "serial_no", "tags",
]
"""Ganeti's bulk node keys, in its order (one node's GET adds ``secondary_ip``)."""

ROLE_NAMES = {
    constants.NR_MASTER: "master", constants.NR_MCANDIDATE: "master-candidate",
    constants.NR_REGULAR: "regular", constants.NR_DRAINED: "drained",
    constants.NR_OFFLINE: "offline",
}
"""The role field's letters as /role names them."""

# What setting a role asks of OpNodeSetParams (master_candidate, offline, drained): None
# leaves a flag as it is; "regular" clears all three.
ROLE_FLAGS: dict[str, tuple[bool | None, bool | None, bool | None]] = {
    "regular": (False, False, False),
    "master-candidate": (True, None, None),
    "drained": (None, None, True),
    "offline": (None, True, None),
}

MIGRATE_KEYS = ("mode", "live", "target_node", "iallocator", "ignore_ipolicy")
"""node-migrate-reqv1's body: what each primary instance's migration takes."""

NAME = "node_name"


async def list_nodes(call: Call) -> Any:
    return await query.listing(call, "node", N_FIELDS, "/2/nodes")


async def get_node(call: Call) -> Any:
    row = await query.one_row(call.master, "node", N_FIELDS, call.params[NAME])
    row["secondary_ip"] = row["sip"]
    return row


async def get_role(call: Call) -> Any:
    row = await query.one_row(call.master, "node", ["role"], call.params[NAME])
    return ROLE_NAMES.get(row["role"], row["role"])


async def set_role(call: Call) -> Any:
    """PUT with the role as a bare JSON string; ``force=1`` and ``auto-promote=1``."""
    role = call.body
    flags = ROLE_FLAGS.get(role) if isinstance(role, str) else None
    if flags is None:
        raise RapiError(400, f"Can't set {role!r} role: expected one of "
                             f"{', '.join(ROLE_FLAGS)} as a JSON string")
    candidate, offline, drained = flags
    return await bodies.submit_op(call, "OP_NODE_SET_PARAMS", static=bodies.strip_none({
        NAME: call.params[NAME], "master_candidate": candidate, "offline": offline,
        "drained": drained, "force": call.flag("force"),
        "auto_promote": bodies.bool_arg(call, "auto-promote")}))


async def evacuate(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_NODE_EVACUATE", bodies.body_dict(call),
                                  {NAME: call.params[NAME]})


async def migrate(call: Call) -> Any:
    """node-migrate-reqv1: one job migrating each primary instance of the node in turn
    (cardume has no node-migrate opcode; each instance's migration is the instance
    opcode, with the body's mode, live, target_node, iallocator and ignore_ipolicy).
    The older form takes ``mode=`` and ``live=`` query arguments."""
    body = bodies.body_dict(call)
    if not body:
        body = bodies.strip_none({"mode": call.arg("mode"),
                                  "live": bodies.bool_arg(call, "live")})
    unknown = sorted(set(body) - set(MIGRATE_KEYS))
    if unknown:
        raise RapiError(400, f"Invalid body parameters: node migration has no parameter "
                             f"'{unknown[0]}' (expected {', '.join(MIGRATE_KEYS)})")
    node = (await query.one_row(call.master, "node", ["name"], call.params[NAME]))["name"]
    reply = await call.master.call("Query", "instance", ["name", "pnode"], [])
    names = sorted(name for name, pnode in reply["data"] if pnode == node)
    ops = [bodies.build_op("OP_INSTANCE_MIGRATE", body, {"instance_name": name})
           for name in names]
    if not ops:
        # nothing to migrate: check the body anyway, and answer a job that moves nothing
        # off the node, as Ganeti's node migration of an empty node succeeds doing nothing
        bodies.build_op("OP_INSTANCE_MIGRATE", body, {"instance_name": node})
        ops = [bodies.build_op("OP_NODE_EVACUATE", {}, {NAME: node, "mode": "primary-only"})]
    return await bodies.submit(call, ops)


async def modify(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_NODE_SET_PARAMS", bodies.body_dict(call),
                                  {NAME: call.params[NAME]})


async def storage(call: Call) -> Any:
    """A job listing the node's storage units (OP_NODE_QUERY_STORAGE): ``storage_type=``
    (unset: the cluster's default) and ``output_fields=a,b``; the job's result is one row
    per unit, the fields' values in that order."""
    fields = call.arg("output_fields")
    if not fields:
        raise RapiError(400, "Missing the required 'output_fields' parameter")
    return await bodies.submit_op(call, "OP_NODE_QUERY_STORAGE", static=bodies.strip_none({
        "nodes": [call.params[NAME]], "storage_type": call.arg("storage_type") or None,
        "output_fields": fields.split(",")}))


get_tags = tags.object_getter("node", NAME)
put_tags = tags.setter("node", NAME)
delete_tags = tags.deleter("node", NAME)

powercycle = bodies.not_implemented("node power-cycling is not in cardume yet")
storage_modify = bodies.not_implemented(
    "changing storage units (OP_NODE_MODIFY_STORAGE) is not in cardume yet")
storage_repair = bodies.not_implemented(
    "repairing storage units (OP_REPAIR_NODE_STORAGE) is not in cardume yet")
