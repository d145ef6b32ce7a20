"""The table of master→node calls: each call's name, timeout class, who may make it, its
arguments and its result, declared once.

Each call is a method of :class:`NodeCalls` whose signature *is* the declaration: the
parameters after ``node`` are the call's arguments (their annotations say what travels,
their defaults make them optional), the return annotation is its result, the docstring says
what it does, and :func:`declare` adds the timeout class and the caller rule. From it:

- the master's client (rpc/client.NodeRpc) inherits the typed methods, so a logical unit
  writes ``await rpc.instance_reboot(node, spec, "hard", 120)`` and mypy checks it;
- the node daemon registers its handlers from the same table (:func:`handlers`): each
  declared call is served by exactly one method marked :func:`serves`, with the same
  argument names, and gets its arguments checked against the declaration first (a missing,
  unknown or wrong-typed argument is an HTTP 400 naming it, not a traceback);
- ``CALLS`` maps names to :class:`Call` for the generic path (undo records keep a call's
  name and arguments in the job; see ``NodeRpc.call``).

``caller`` says who may make a call, as the node daemon sees the caller's certificate
(signed by the cluster CA, named after its node) against its own view of the roles:
``public`` anyone (before a node has joined), ``master`` the master only, ``candidate`` the
master or a master candidate (what ``gnt-cluster master-failover`` needs), ``node`` any node
of the cluster (what a master daemon asks at start-up). A call that only
reads is ``readonly``: the client may resend it after a connection drops; any other call is
sent once (see rpc/http.py).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from cardume import errors, objects
from cardume.rpc.http import BadArguments, Handler, PeerInfo
from cardume.rpc.transport import Result
from cardume.rpc.wire import DiskSpec, InstanceSpec, Kind, kind_of

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

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
N = TypeVar("N", bound="NodeCalls")
P = ParamSpec("P")
T = TypeVar("T")
_REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    kind: Kind
    default: Any = _REQUIRED  # _REQUIRED: the caller must send it

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    timeout: str
    doc: str
    caller: str = MASTER
    readonly: bool = False
    args: tuple[Arg, ...] = ()
    result: Kind | None = None  # None: the reply carries nothing

    @property
    def public(self) -> bool:
        """Served before the node has joined a cluster, to anyone."""
        return self.caller == PUBLIC

    @property
    def seconds(self) -> float:
        return TIMEOUTS[self.timeout]

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)

    def encode_args(self, values: dict[str, Any]) -> dict[str, Any]:
        """The JSON body of a typed call: every argument, but those left at a default of
        None (the node fills those in the same way, and bodies stay as they were)."""
        return {a.name: a.kind.encode(values[a.name]) for a in self.args
                if not (a.default is None and values[a.name] is None)}

    def decode_args(self, body: dict[str, Any]) -> dict[str, Any]:
        """The handler's keyword arguments from a request body; WrongInput names the first
        argument that is unknown, missing or of the wrong kind."""
        known = self.arg_names
        unknown = [k for k in body if k not in known]
        if unknown:
            takes = ", ".join(known) if known else "no arguments"
            raise errors.WrongInput(f"call '{self.name}': unknown argument '{unknown[0]}' "
                                    f"(it takes {takes})")
        out: dict[str, Any] = {}
        for arg in self.args:
            if arg.name not in body:
                if arg.required:
                    raise errors.WrongInput(f"call '{self.name}': missing argument "
                                            f"'{arg.name}' ({arg.kind.name})")
                out[arg.name] = arg.default
                continue
            out[arg.name] = arg.kind.decode(body[arg.name],
                                            f"call '{self.name}': argument '{arg.name}'")
        return out

    def checked_result(self, node: objects.Node, value: Any) -> Any:
        """:meth:`decode_result`, a malformed reply being the node's error."""
        try:
            return self.decode_result(value)
        except errors.WrongInput as err:
            raise errors.RpcError(f"node {node.name} sent a malformed reply: {err.message}",
                                  node=node.name) from None

    def decode_result(self, value: Any) -> Any:
        """The reply checked against the declared result (WrongInput when it isn't one)."""
        if self.result is None:
            return None
        return self.result.decode(value, f"the reply to '{self.name}'")


CALLS: dict[str, Call] = {}


def _declaration(stub: Callable[..., Any], timeout: str, caller: str,
                 readonly: bool) -> Call:
    if timeout not in TIMEOUTS or caller not in (PUBLIC, MASTER, CANDIDATE, NODE):
        raise TypeError(f"{stub.__name__}: bad timeout class or caller")
    hints = typing.get_type_hints(stub)
    params = list(inspect.signature(stub).parameters.values())
    if [p.name for p in params[:2]] != ["self", "node"]:
        raise TypeError(f"{stub.__name__}: a call's parameters start with self, node")
    args = []
    for param in params[2:]:
        if param.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
            raise TypeError(f"{stub.__name__}: argument {param.name} must be a plain one")
        if param.default is not _REQUIRED and not isinstance(
                param.default, str | int | float | bool | type(None)):
            raise TypeError(f"{stub.__name__}: argument {param.name} has a mutable default")
        args.append(Arg(param.name, kind_of(hints[param.name]), param.default))
    returns = hints.get("return")
    result = None if returns in (None, type(None)) else kind_of(returns)
    doc = " ".join((stub.__doc__ or "").split())
    return Call(stub.__name__, timeout, doc, caller, readonly, tuple(args), result)


def declare(timeout: str, *, caller: str = MASTER,
            readonly: bool = False) -> Callable[[F], F]:
    """Enter a stub method of NodeCalls into the table and make it send the call."""
    def wrap(stub: F) -> F:
        call = _declaration(stub, timeout, caller, readonly)
        if call.name in CALLS:
            raise TypeError(f"call {call.name} declared twice")
        CALLS[call.name] = call
        signature = inspect.signature(stub)
        names = call.arg_names

        @functools.wraps(stub)
        async def send(self: NodeCalls, node: objects.Node, *args: Any, **kwargs: Any) -> Any:
            if not kwargs and len(args) == len(names):
                # every argument given, in order (node_info to 100 nodes: binding them
                # was a sixth of the master's time)
                values: dict[str, Any] = dict(zip(names, args, strict=True))
            else:
                bound = signature.bind(self, node, *args, **kwargs)
                bound.apply_defaults()
                values = bound.arguments
            return await self.invoke(node, call, call.encode_args(values))
        send.call = call  # type: ignore[attr-defined]
        return send  # type: ignore[return-value]
    return wrap


async def each(nodes: Iterable[objects.Node],
               one: Callable[[objects.Node], Awaitable[Any]]) -> dict[str, Result]:
    """``one(node)`` on every node in parallel; a node's error is its Result's error."""
    nodes = list(nodes)

    async def run(node: objects.Node) -> Result:
        try:
            return Result(value=await one(node))
        except errors.CardumeError as err:
            return Result(error=err)

    results = await asyncio.gather(*(run(n) for n in nodes))
    return {n.name: r for n, r in zip(nodes, results, strict=True)}


# --- serving the table on the node ----------------------------------------------------------

def serves(method: F) -> F:
    """Mark a node daemon method as the handler of the call of the same name.

    It is called as ``method(peer, **arguments)``: the arguments the declaration names, in
    its order, already checked and with their defaults filled in."""
    method.__rpc_handler__ = True  # type: ignore[attr-defined]
    return method


def served_by(provider: object) -> dict[str, Callable[..., Awaitable[Any]]]:
    """The methods of ``provider`` marked with :func:`serves`, by name."""
    found = {}
    for name in dir(type(provider)):
        if getattr(getattr(type(provider), name, None), "__rpc_handler__", False):
            found[name] = getattr(provider, name)
    return found


def handlers(*providers: object, complete: bool = True) -> dict[str, Handler]:
    """The node daemon's handler table: every declared call served by the one method of
    its name among ``providers`` (``complete``: every declared call must be served)."""
    methods: dict[str, Callable[..., Awaitable[Any]]] = {}
    for provider in providers:
        for name, method in served_by(provider).items():
            if name not in CALLS:
                raise errors.InternalError(f"{type(provider).__name__}.{name} serves a call "
                                           "that is not in the call table")
            if name in methods:
                raise errors.InternalError(f"call {name} has two handlers")
            methods[name] = method
    missing = sorted(set(CALLS) - set(methods)) if complete else []
    if missing:
        raise errors.InternalError(f"node daemon lacks handlers for {missing}")
    return {name: _checked(CALLS[name], method) for name, method in methods.items()}


def _checked(call: Call, method: Callable[..., Awaitable[Any]]) -> Handler:
    params = list(inspect.signature(method).parameters)
    if params[:1] != ["peer"] or tuple(params[1:]) != call.arg_names:
        raise errors.InternalError(
            f"handler of {call.name} takes ({', '.join(params)}), but the call table "
            f"declares (peer, {', '.join(call.arg_names)})")

    async def handle(body: dict[str, Any], peer: PeerInfo) -> Any:
        try:
            kwargs = call.decode_args(body)
        except errors.WrongInput as err:
            raise BadArguments(err.message, err.hint) from None
        return await method(peer, **kwargs)
    return handle


# --- the calls ------------------------------------------------------------------------------

class NodeCalls:
    """Every call a node daemon serves, as a typed method; the client refuses names that
    are not here, so a typo fails at once instead of as a 404 from every node.

    A subclass sends calls by name with :meth:`call` (rpc/client.NodeRpc over mutual TLS;
    tests may answer them in-process); the typed methods, :meth:`timed` and :meth:`each`
    come with it."""

    rpc_timeout: float | None = None  # None: each call's timeout class

    async def call(self, node: objects.Node, call: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        """One call to one node by name, with its arguments as JSON values."""
        raise NotImplementedError

    async def invoke(self, node: objects.Node, call: Call, args: dict[str, Any]) -> Any:
        """A typed call: sent by name, its reply checked against the declared result."""
        return call.checked_result(node, await self.call(node, call.name, args,
                                                          self.rpc_timeout))

    def timed(self: N, seconds: float) -> N:
        """The same sender, waiting ``seconds`` for each reply instead of the call's
        timeout class (``rpc.timed(10).drbd_status(node)``)."""
        view = copy.copy(self)
        view.rpc_timeout = seconds
        return view

    async def each(self, nodes: Iterable[objects.Node],
                   method: Callable[Concatenate[objects.Node, P], Awaitable[T]],
                   *args: P.args, **kwargs: P.kwargs) -> dict[str, Result]:
        """A typed call on many nodes at once (``rpc.each(nodes, rpc.node_info)``); one
        result (value or error) per node name."""
        return await each(nodes, lambda node: method(node, *args, **kwargs))

    # --- the node and the cluster -------------------------------------------------------------

    @declare("urgent", caller=PUBLIC, readonly=True)
    async def version(self, node: objects.Node) -> dict[str, Any]:
        """protocol and software version of the node daemon"""
        raise NotImplementedError

    @declare("fast", caller=PUBLIC)
    async def join(self, node: objects.Node, secret: str, cluster_name: str, node_name: str,
                   ca_cert: str, node_cert: str, ssconf: dict[str, Any]) -> dict[str, Any]:
        """join the cluster: install the CA, the node certificate, ssconf"""
        raise NotImplementedError

    @declare("fast")
    async def leave(self, node: objects.Node, destroy: bool = False) -> None:
        """forget the cluster: drop certificates, replica (unless destroy) and ssconf"""
        raise NotImplementedError

    @declare("urgent", readonly=True)
    async def node_info(self, node: objects.Node) -> dict[str, Any]:
        """memory, CPUs, storage space, hypervisors of the node"""
        raise NotImplementedError

    @declare("fast", readonly=True)
    async def node_verify(self, node: objects.Node, cluster_name: str | None = None,
                          dirs: dict[str, str] | None = None,
                          ca_cert: str | None = None) -> dict[str, Any]:
        """run the node-local checks of cluster verify"""
        raise NotImplementedError

    # a new master pushes its summary before the nodes know it is master
    @declare("fast", caller=CANDIDATE)
    async def ssconf_write(self, node: objects.Node, ssconf: dict[str, Any]) -> None:
        """store the cluster summary every node keeps"""
        raise NotImplementedError

    @declare("urgent", caller=NODE, readonly=True)
    async def master_info(self, node: objects.Node) -> dict[str, Any]:
        """who this node believes is master, and its summary's serial"""
        raise NotImplementedError

    # the master sends a pause to itself and the candidates: whichever becomes master has it
    @declare("fast")
    async def watcher_pause_write(self, node: objects.Node, until: float | None = None) -> None:
        """pause the watcher until a time (seconds since the epoch), or end the pause"""
        raise NotImplementedError

    @declare("fast")
    async def config_apply(self, node: objects.Node, change: dict[str, Any],
                           schema: int = 0) -> dict[str, Any]:
        """apply one config change set to the local replica (schema: the sender's config
        schema version; the node refuses another than its own)"""
        raise NotImplementedError

    @declare("normal")
    async def config_replace(self, node: objects.Node, serial: int,
                             objects: list[Any], schema: int = 0) -> dict[str, Any]:
        """replace the local replica whole (objects: [kind, uuid, data] rows)"""
        raise NotImplementedError

    # master failover runs on a candidate: it compares replicas, takes the newest one and
    # stops the old master
    @declare("urgent", caller=CANDIDATE, readonly=True)
    async def config_serial(self, node: objects.Node) -> int:
        """serial number of the local replica"""
        raise NotImplementedError

    @declare("normal", caller=CANDIDATE, readonly=True)
    async def config_dump(self, node: objects.Node) -> dict[str, Any]:
        """the local replica as one document"""
        raise NotImplementedError

    @declare("fast")
    async def queue_apply(self, node: objects.Node, change: dict[str, Any],
                          reset: bool = False, schema: int = 0) -> dict[str, Any]:
        """apply job queue changes to the local replica (schema: the sender's job queue
        schema version; the node refuses another than its own)"""
        raise NotImplementedError

    @declare("urgent", caller=CANDIDATE, readonly=True)
    async def queue_serial(self, node: objects.Node) -> dict[str, Any]:
        """epoch and serial of the local job queue (replica or the master's own)"""
        raise NotImplementedError

    @declare("normal", caller=CANDIDATE, readonly=True)
    async def queue_dump(self, node: objects.Node) -> dict[str, Any]:
        """the local job queue as one document"""
        raise NotImplementedError

    @declare("fast", caller=CANDIDATE)
    async def master_stop(self, node: objects.Node) -> bool:
        """stop the master daemon on this node"""
        raise NotImplementedError

    @declare("normal")
    async def test_delay(self, node: objects.Node, duration: float = 0.0) -> None:
        """sleep for a while (gnt-debug delay -n)"""
        raise NotImplementedError

    # --- block devices (node/blockdev_calls.py) ------------------------------------------------

    @declare("normal")
    async def blockdev_create(self, node: objects.Node, disk: DiskSpec,
                              data_exists: bool = False) -> dict[str, Any]:
        """create a disk's storage (data_exists, drbd only: keep the data LV, add the
        metadata); its path"""
        raise NotImplementedError

    @declare("normal")
    async def blockdev_remove(self, node: objects.Node, disk: DiskSpec) -> None:
        """remove a disk's storage (idempotent)"""
        raise NotImplementedError

    @declare("normal")
    async def blockdev_assemble(self, node: objects.Node, disk: DiskSpec,
                                primary: bool = False) -> dict[str, Any]:
        """make a disk usable on the node (a DRBD disk primary when asked); its local path"""
        raise NotImplementedError

    @declare("normal")
    async def blockdev_shutdown(self, node: objects.Node, disk: DiskSpec) -> None:
        """stop using a disk on the node (data stays)"""
        raise NotImplementedError

    @declare("normal")
    async def blockdev_grow(self, node: objects.Node, disk: DiskSpec, amount: int,
                            backingstore: bool = True) -> None:
        """grow a disk by some MiB (DRBD: its data LVs first, then the device)"""
        raise NotImplementedError

    @declare("normal")
    async def blockdev_rename(self, node: objects.Node, disk: DiskSpec,
                              new_logical_id: list[Any]) -> None:
        """move a disk's storage to a new logical id"""
        raise NotImplementedError

    @declare("fast", readonly=True)
    async def blockdev_info(self, node: objects.Node,
                            disks: list[DiskSpec]) -> list[dict[str, Any]]:
        """path, existence and size of disks"""
        raise NotImplementedError

    @declare("normal", readonly=True)
    async def blockdev_read(self, node: objects.Node, disk: DiskSpec, offset: int,
                            length: int) -> dict[str, Any]:
        """read a chunk of a disk (copying it to another node)"""
        raise NotImplementedError

    @declare("normal")
    async def blockdev_write(self, node: objects.Node, disk: DiskSpec, offset: int,
                             data: str | None = None, zeros: int | None = None) -> None:
        """write a chunk of a disk (copying it from another node): data in base64, or
        that many zero bytes"""
        raise NotImplementedError

    @declare("urgent", readonly=True)
    async def drbd_status(self, node: objects.Node,
                          minors: list[int] | None = None) -> dict[str, Any]:
        """state of DRBD minors from /proc/drbd (all, or those named)"""
        raise NotImplementedError

    @declare("normal")
    async def drbd_connect(self, node: objects.Node, disks: list[DiskSpec],
                           dual_primary: bool = False) -> None:
        """attach DRBD disks and connect them to their peers"""
        raise NotImplementedError

    @declare("normal")
    async def drbd_disconnect(self, node: objects.Node, disks: list[DiskSpec]) -> None:
        """disconnect DRBD disks from their peers"""
        raise NotImplementedError

    @declare("normal")
    async def drbd_set_role(self, node: objects.Node, disks: list[DiskSpec], role: str,
                            force: bool = False) -> None:
        """make DRBD disks primary or secondary"""
        raise NotImplementedError

    @declare("normal")
    async def drbd_replace_local(self, node: objects.Node, disks: list[DiskSpec], suffix: str,
                                 standalone: bool = False) -> list[list[list[str]]]:
        """put new LVs under DRBD disks (synced from the peer)"""
        raise NotImplementedError

    @declare("fast", readonly=True)
    async def node_volumes(self, node: objects.Node,
                           vg: str | None = None) -> list[dict[str, Any]]:
        """the LVs of the cluster's volume group (gnt-node volumes)"""
        raise NotImplementedError

    @declare("fast", readonly=True)
    async def node_storage(self, node: objects.Node,
                           type: str = "lvm-vg") -> list[dict[str, Any]]:
        """space of one storage type (gnt-node list-storage)"""
        raise NotImplementedError

    @declare("fast", readonly=True)
    async def file_storage_list(self, node: objects.Node, dirs: dict[str, str] | None = None,
                                files: bool = True) -> dict[str, Any]:
        """the disk files in the node's file storage directories"""
        raise NotImplementedError

    # --- instances and their OS (node/instance_calls.py, node/os_calls.py) --------------------

    @declare("4hrs")
    async def instance_os_add(self, node: objects.Node, instance: InstanceSpec,
                              reinstall: bool = False) -> None:
        """install an instance's OS (the OS create script)"""
        raise NotImplementedError

    @declare("slow")
    async def instance_os_rename(self, node: objects.Node, instance: InstanceSpec,
                                 old_name: str) -> None:
        """run the OS rename script of a renamed instance"""
        raise NotImplementedError

    @declare("normal")
    async def instance_start(self, node: objects.Node, instance: InstanceSpec) -> None:
        """assemble an instance's disks and start it"""
        raise NotImplementedError

    @declare("normal")
    async def instance_shutdown(self, node: objects.Node, instance: InstanceSpec,
                                timeout: float | None = None) -> None:
        """stop an instance (nothing to do if not running)"""
        raise NotImplementedError

    @declare("normal")
    async def instance_reboot(self, node: objects.Node, instance: InstanceSpec,
                              reboot_type: str = "soft",
                              shutdown_timeout: float | None = None) -> None:
        """reboot a running instance (soft, hard or full)"""
        raise NotImplementedError

    @declare("urgent", readonly=True)
    async def instance_list(self, node: objects.Node,
                            hypervisors: list[str] | None = None) -> list[str]:
        """names of the instances running on the node"""
        raise NotImplementedError

    @declare("urgent", readonly=True)
    async def instance_info_all(self, node: objects.Node,
                                hypervisors: list[str] | None = None) -> dict[str, Any]:
        """state, memory, vcpus of the running instances"""
        raise NotImplementedError

    @declare("urgent", readonly=True)
    async def instance_list_incoming(self, node: objects.Node,
                                     hypervisors: list[str] | None = None) -> list[str]:
        """instances held as unfinished migration targets"""
        raise NotImplementedError

    @declare("normal")
    async def accept_instance(self, node: objects.Node, instance: InstanceSpec,
                              source: str = "") -> dict[str, Any] | None:
        """migration target: get ready to receive an instance"""
        raise NotImplementedError

    @declare("slow")
    async def instance_migrate(self, node: objects.Node, instance: InstanceSpec, target: str,
                               info: dict[str, Any] | None = None,
                               live: bool = True) -> None:
        """migration source: send a running instance"""
        raise NotImplementedError

    @declare("normal")
    async def instance_finalize_migration_dst(self, node: objects.Node,
                                              instance: InstanceSpec,
                                              success: bool = False) -> None:
        """migration target: finish (or undo)"""
        raise NotImplementedError

    @declare("normal")
    async def instance_finalize_migration_src(self, node: objects.Node,
                                              instance: InstanceSpec,
                                              success: bool = False) -> None:
        """migration source: finish (or undo)"""
        raise NotImplementedError

    @declare("fast", readonly=True)
    async def instance_migration_state(self, node: objects.Node, instance: InstanceSpec,
                                       role: str) -> str:
        """one side of an interrupted migration (--cleanup)"""
        raise NotImplementedError

    @declare("normal")
    async def instance_migration_cleanup(self, node: objects.Node, instance: InstanceSpec,
                                         role: str, action: str | None = None) -> None:
        """one side's part of a migration cleanup"""
        raise NotImplementedError

    @declare("urgent")
    async def instance_console(self, node: objects.Node, instance: str,
                               hypervisor: str | None = None,
                               kind: str = "serial") -> dict[str, Any]:
        """attach to an instance's serial console or VNC display (the connection then
        carries the console)"""
        raise NotImplementedError

    @declare("fast", readonly=True)
    async def os_diagnose(self, node: objects.Node) -> list[dict[str, Any]]:
        """every OS definition in the search path, valid or not"""
        raise NotImplementedError

    @declare("fast", readonly=True)
    async def os_validate(self, node: objects.Node, os: str,
                          osparams: dict[str, Any] | None = None) -> None:
        """check an OS, its variant and parameters (verify script)"""
        raise NotImplementedError

    # --- backups (node/backup_calls.py) -----------------------------------------------------
    # An export is built in a staging directory (".tmp-" and 32 hex digits) of the node's
    # export directory and renamed into place at the end; disk dumps travel between nodes
    # chunk by chunk through the master (export_read / export_write), never whole.

    @declare("normal")
    async def export_snapshot(self, node: objects.Node, instance: InstanceSpec, index: int,
                              work: str) -> dict[str, Any]:
        """snapshot one disk of an instance into a staging directory where its template
        allows (a file disk: a copy); {"snapshot": name or null}"""
        raise NotImplementedError

    @declare("4hrs")
    async def export_disk(self, node: objects.Node, instance: InstanceSpec, index: int,
                          work: str, snapshot: str | None = None) -> dict[str, Any]:
        """run the OS export script for one disk (or its snapshot), its output becoming a
        dump file in the staging directory; {"dump": file name, "size": bytes}"""
        raise NotImplementedError

    @declare("normal")
    async def export_stream_read(self, node: objects.Node, instance: InstanceSpec, index: int,
                                 work: str, offset: int, length: int,
                                 snapshot: str | None = None) -> dict[str, Any]:
        """the next chunk of the OS export script's output for one disk (or its snapshot),
        the script started by the first call (offset 0) and ended by the last (eof)"""
        raise NotImplementedError

    @declare("normal")
    async def import_stream_write(self, node: objects.Node, instance: InstanceSpec,
                                  index: int, work: str, offset: int,
                                  data: str | None = None, zeros: int | None = None,
                                  eof: bool = False) -> None:
        """feed a chunk of a dump to the OS import script of one disk (started by the first
        call, offset 0; eof: its input ends, and the script's end is waited for)"""
        raise NotImplementedError

    @declare("normal", readonly=True)
    async def export_read(self, node: objects.Node, directory: str, name: str, offset: int,
                          length: int) -> dict[str, Any]:
        """read a chunk of a file of an export or staging directory (base64 data, or null
        when all zero; length; eof)"""
        raise NotImplementedError

    @declare("normal")
    async def export_write(self, node: objects.Node, work: str, name: str, offset: int,
                           data: str | None = None, zeros: int | None = None) -> None:
        """write a chunk of a file in a staging directory (base64 data, or zero bytes)"""
        raise NotImplementedError

    @declare("normal")
    async def export_finalize(self, node: objects.Node, work: str, name: str,
                              config: str) -> None:
        """write config.ini into a staging directory and rename it to the export NAME,
        replacing an older export of that name"""
        raise NotImplementedError

    @declare("normal")
    async def export_abort(self, node: objects.Node, work: str) -> None:
        """remove a staging directory and what it holds (idempotent)"""
        raise NotImplementedError

    @declare("fast", readonly=True)
    async def export_list(self, node: objects.Node) -> list[str]:
        """names of the exports in the node's export directory"""
        raise NotImplementedError

    @declare("normal")
    async def export_remove(self, node: objects.Node, name: str) -> None:
        """remove an export (idempotent)"""
        raise NotImplementedError

    @declare("fast", readonly=True)
    async def export_info(self, node: objects.Node, path: str) -> dict[str, Any]:
        """an export's config.ini (path: its name, or its directory); {"name", "config"}"""
        raise NotImplementedError

    @declare("4hrs")
    async def import_disk(self, node: objects.Node, instance: InstanceSpec, index: int,
                          directory: str, dump: str) -> None:
        """run the OS import script for one disk, fed a dump file of an export or staging
        directory"""
        raise NotImplementedError
