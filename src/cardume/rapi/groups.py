"""/2/groups and /2/groups/NAME with modify, rename, assign-nodes and tags."""

from __future__ import annotations

from typing import Any

from cardume.rapi import bodies, query, tags
from cardume.rapi.base import Call

G_FIELDS = [
    "alloc_policy", "name", "node_cnt", "node_list", "ipolicy", "custom_ipolicy",
    "diskparams", "custom_diskparams", "ndparams", "custom_ndparams",
    "ctime", "mtime", "uuid", "serial_no", "tags",
]
"""Ganeti's bulk group keys, in its order."""

NAME = "group_name"


async def list_groups(call: Call) -> Any:
    return await query.listing(call, "group", G_FIELDS, "/2/groups")


async def create(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_GROUP_ADD", bodies.body_dict(call),
                                  rename={"name": NAME})


async def get_group(call: Call) -> Any:
    return await query.one_row(call.master, "group", G_FIELDS, call.params[NAME])


async def delete(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_GROUP_REMOVE", static={NAME: call.params[NAME]})


async def modify(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_GROUP_SET_PARAMS", bodies.body_dict(call),
                                  {NAME: call.params[NAME]})


async def rename(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_GROUP_RENAME", bodies.body_dict(call),
                                  {NAME: call.params[NAME]})


async def assign_nodes(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_GROUP_ASSIGN_NODES", bodies.body_dict(call),
                                  bodies.strip_none({NAME: call.params[NAME],
                                                     "force": bodies.bool_arg(call, "force")}))


get_tags = tags.object_getter("group", NAME)
put_tags = tags.setter("nodegroup", NAME)
delete_tags = tags.deleter("nodegroup", NAME)
