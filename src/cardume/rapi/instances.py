"""/2/instances and /2/instances/NAME with its actions (reboot, shutdown, migrate, ...).

Each action is one opcode of the table built from the body (Ganeti's RAPI renames applied)
and the values the path and query arguments fix; the reply is the job id.
"""

from __future__ import annotations

from typing import Any

from cardume.rapi import bodies, query, tags
from cardume.rapi.base import Call, RapiError

I_FIELDS = [
    "name", "admin_state", "os", "pnode", "snodes", "disk_template", "nic.ips", "nic.macs",
    "nic.modes", "nic.uuids", "nic.names", "nic.links", "nic.networks", "nic.networks.names",
    "nic.bridges", "network_port", "disk.sizes", "disk.spindles", "disk_usage", "disk.uuids",
    "disk.names", "beparams", "hvparams", "oper_state", "oper_ram", "oper_vcpus", "status",
    "custom_hvparams", "custom_beparams", "custom_nicparams",
    "ctime", "mtime", "uuid", "serial_no", "tags",
]
"""Ganeti's bulk instance keys, in its order."""

CREATE_RENAMES = {"name": "instance_name", "os": "os_type"}
"""Ganeti's create body names that differ from OpInstanceCreate's parameters."""

REQ_VERSION_KEY = "__version__"
REQ_VERSION = 1

NAME = "instance_name"


def _static(call: Call, **values: Any) -> dict[str, Any]:
    return bodies.strip_none({NAME: call.params[NAME], **values})


async def list_instances(call: Call) -> Any:
    return await query.listing(call, "instance", I_FIELDS, "/2/instances")


async def create(call: Call) -> Any:
    body = bodies.body_dict(call)
    version = body.pop(REQ_VERSION_KEY, 0)
    if version != REQ_VERSION:
        raise RapiError(400, f"Unsupported request data version {version!r}: instance "
                             f"creation takes {REQ_VERSION_KEY} {REQ_VERSION} "
                             "(feature instance-create-reqv1)")
    return await bodies.submit_op(call, "OP_INSTANCE_CREATE", body, rename=CREATE_RENAMES)


async def get_instance(call: Call) -> Any:
    return await query.one_row(call.master, "instance", I_FIELDS, call.params[NAME])


async def delete(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_INSTANCE_REMOVE", bodies.body_dict(call),
                                  _static(call))


async def reboot(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_INSTANCE_REBOOT", bodies.body_dict(call), _static(
        call, reboot_type=call.arg("type"),
        ignore_secondaries=bodies.bool_arg(call, "ignore_secondaries")))


async def shutdown(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_INSTANCE_SHUTDOWN", bodies.body_dict(call),
                                  _static(call, no_remember=bodies.bool_arg(call, "no_remember")))


async def startup(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_INSTANCE_STARTUP", bodies.body_dict(call), _static(
        call, force=bodies.bool_arg(call, "force"),
        no_remember=bodies.bool_arg(call, "no_remember")))


_REINSTALL_KEYS = {"os", "start", "osparams"}


async def reinstall(call: Call) -> Any:
    """instance-reinstall-reqv1: body ``{os, start, osparams}``; the old form takes ``os=``
    and ``nostartup=1`` query arguments. The job stops the instance, reinstalls it, and
    starts it again unless ``start`` is false (as Ganeti's)."""
    body = bodies.body_dict(call)
    legacy = {k for k in call.args if k in ("os", "nostartup")}
    if body and legacy:
        raise RapiError(400, "Can't combine query and body parameters: give os/start in "
                             "the body only")
    if legacy:
        body = {"os": call.arg("os"), "start": not call.flag("nostartup")}
    unknown = sorted(set(body) - _REINSTALL_KEYS)
    if unknown:
        raise RapiError(400, f"Invalid body parameters: reinstall has no parameter "
                             f"'{unknown[0]}' (expected os, start, osparams)")
    start = body.get("start", True)
    if not isinstance(start, bool):
        raise RapiError(400, f"Invalid body parameters: 'start' must be true or false, "
                             f"not {start!r}")
    name = {NAME: call.params[NAME]}
    ops = [bodies.build_op("OP_INSTANCE_SHUTDOWN", {}, name),
           bodies.build_op("OP_INSTANCE_REINSTALL", {}, bodies.strip_none(
               {**name, "os_type": body.get("os"), "osparams": body.get("osparams")}))]
    if start:
        ops.append(bodies.build_op("OP_INSTANCE_STARTUP", {}, {**name, "force": False}))
    return await bodies.submit(call, ops)


def _disk_indices(value: Any) -> list[int] | None:
    if value is None or value == "":
        return None
    if isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool)
                                       for i in value):
        return value
    try:
        return [int(part) for part in str(value).split(",")]
    except ValueError:
        raise RapiError(400, f"Invalid disks: expected disk indices like 0,1, not "
                             f"{value!r}") from None


async def replace_disks(call: Call) -> Any:
    """The body's parameters, or (Ganeti's older form) the query arguments mode, disks,
    remote_node, iallocator and early_release."""
    body = bodies.body_dict(call)
    if not body:
        body = bodies.strip_none({
            "mode": call.arg("mode"), "disks": call.arg("disks"),
            "remote_node": call.arg("remote_node"), "iallocator": call.arg("iallocator"),
            "early_release": bodies.bool_arg(call, "early_release")})
    if "disks" in body:
        disks = _disk_indices(body.pop("disks"))
        if disks is not None:
            body["disks"] = disks
    body.setdefault("mode", "replace_auto")
    return await bodies.submit_op(call, "OP_INSTANCE_REPLACE_DISKS", body, _static(call))


async def activate_disks(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_INSTANCE_ACTIVATE_DISKS", bodies.body_dict(call),
                                  _static(call, ignore_size=bodies.bool_arg(call, "ignore_size")))


async def deactivate_disks(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_INSTANCE_DEACTIVATE_DISKS",
                                  bodies.body_dict(call),
                                  _static(call, force=bodies.bool_arg(call, "force")))


async def grow_disk(call: Call) -> Any:
    index = call.params["disk_index"]
    if not (index.isascii() and index.isdigit()):
        raise RapiError(400, f"invalid disk index {index!r}: expected a number")
    return await bodies.submit_op(call, "OP_INSTANCE_GROW_DISK", bodies.body_dict(call),
                                  _static(call, disk=int(index)))


def _body_op(op_id: str) -> Any:
    """A handler whose body is the opcode's parameters, the instance from the path."""
    async def handler(call: Call) -> Any:
        return await bodies.submit_op(call, op_id, bodies.body_dict(call), _static(call))
    return handler


migrate = _body_op("OP_INSTANCE_MIGRATE")
failover = _body_op("OP_INSTANCE_FAILOVER")
rename = _body_op("OP_INSTANCE_RENAME")
modify = _body_op("OP_INSTANCE_SET_PARAMS")


async def console(call: Call) -> Any:
    """Ganeti's console description: ``msg`` (nothing to connect to, and why) or ``ssh``
    (the command to run on the primary node)."""
    data = await call.master.call("InstanceConsole", call.params[NAME])
    instance = data.get("instance", call.params[NAME])
    if data.get("kind") == "command":
        return {"instance": instance, "kind": "ssh", "host": data.get("node"),
                "user": "root", "command": list(data.get("command") or [])}
    return {"instance": instance, "kind": "msg", "message": data.get("message", "")}


async def info(call: Call) -> Any:
    """A job describing the instance (OP_INSTANCE_QUERY_DATA); clients read its result,
    ``{name: description}``, from /2/jobs/ID. ``static=1``: the configuration only. Live
    data is read under shared locks, so the job says so (as Ganeti's job shows it)."""
    static = call.flag("static")
    return await bodies.submit_op(call, "OP_INSTANCE_QUERY_DATA", static={
        "instances": [call.params[NAME]], "static": static, "use_locking": not static})


get_tags = tags.object_getter("instance", NAME)
put_tags = tags.setter("instance", NAME)
delete_tags = tags.deleter("instance", NAME)

recreate_disks = bodies.not_implemented(
    "cardume has no OP_INSTANCE_RECREATE_DISKS yet")


async def prepare_export(call: Call) -> Any:
    """OP_BACKUP_PREPARE with the ``mode`` query argument (Ganeti's): a job id."""
    mode = call.arg("mode")
    if not mode:
        raise RapiError(400, "query argument 'mode' is required (local or remote)")
    return await bodies.submit_op(call, "OP_BACKUP_PREPARE", static=_static(call, mode=mode))


async def export(call: Call) -> Any:
    """OP_BACKUP_EXPORT from the body; Ganeti's ``destination`` is the target node."""
    return await bodies.submit_op(call, "OP_BACKUP_EXPORT", bodies.body_dict(call),
                                  _static(call), rename={"destination": "target_node"})
async def multi_alloc(call: Call) -> Any:
    """Several instances placed by one allocator request; each is then created by its own
    job, which the job's result names (``jobs``)."""
    body = bodies.body_dict(call)
    given = body.get("instances")
    if not isinstance(given, list) or not all(isinstance(i, dict) for i in given):
        raise RapiError(400, "the body needs 'instances', a list of instance creation "
                             "bodies")
    version = body.pop(REQ_VERSION_KEY, REQ_VERSION)
    if version != REQ_VERSION:
        raise RapiError(400, f"Unsupported request data version {version!r}: multi-"
                             f"allocation takes {REQ_VERSION_KEY} {REQ_VERSION}")
    body["instances"] = [{CREATE_RENAMES.get(k, k): v for k, v in inst.items()
                          if k != REQ_VERSION_KEY} for inst in given]
    return await bodies.submit_op(call, "OP_INSTANCE_MULTI_ALLOC", body)
