"""Ganeti's iallocator protocol (version 2), the master's side: the request and who answers.

A logical unit that must choose nodes describes the cluster and what it needs as Ganeti's
request document (cluster, node groups, nodes with their free resources, instances, and one
``request``), asks an allocator, and reads its answer ``{success, info, result}``.

The allocator is named as in Ganeti (``-I NAME``, or the cluster's default allocator):
:data:`BUILTIN` is cardume's own (``cardume.allocator``, run in this process, in a thread);
any other name is a program found on :data:`SEARCH_PATH` (Debian's ``hail`` among them),
run with the request file as its only argument, as Ganeti runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
from typing import TYPE_CHECKING, Any

from cardume import constants, errors, objects
from cardume.cmdlib import drbd
from cardume.rules import disk_templates

if TYPE_CHECKING:
    from cardume.cmdlib.base import LogicalUnit

BUILTIN = "cardume"
"""The built-in allocator's name: the default of a new cluster."""

SEARCH_PATH = ("/usr/local/lib/ganeti/iallocators", "/usr/lib/ganeti/iallocators",
               # Debian's ganeti-htools-3.0 installs hail here; the link in
               # /usr/lib/ganeti/iallocators comes only with the ganeti package
               "/usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators")

TIMEOUT = 300.0
"""Seconds an external allocator may take."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def check_name(name: str) -> str:
    """An allocator name is a program name on the search path, never a path."""
    if not _NAME.fullmatch(name or ""):
        raise errors.WrongInput(f"allocator name '{name}' is not valid (expected a program "
                                f"name from {', '.join(SEARCH_PATH)}, or '{BUILTIN}')")
    return name


def find(name: str, search_path: tuple[str, ...] = SEARCH_PATH) -> str | None:
    """The allocator program's path, BUILTIN for the built-in one, None if not found."""
    check_name(name)
    if name == BUILTIN:
        return BUILTIN
    for folder in search_path:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def chosen(lu: LogicalUnit, asked: str | None) -> str:
    """The allocator an operation uses: the one asked for, else the cluster's default."""
    name = asked or lu.cfg.get_cluster().default_iallocator
    if not name:
        raise errors.WrongInput("no nodes given and the cluster has no default allocator",
                                "give the nodes, or -I ALLOCATOR, or set one with "
                                "gnt-cluster modify --default-iallocator")
    return check_name(name)


# --- the request ------------------------------------------------------------------------------

def disk_space_total(template: str, sizes: list[int]) -> int:
    """MiB of node storage the disks take, as Ganeti counts it in a request."""
    if template == constants.DT_DISKLESS:
        return 0
    extra = drbd.META_SIZE if template == constants.DT_DRBD8 else 0
    return sum(size + extra for size in sizes)


def _instance(cfg: Any, cluster: objects.Cluster, inst: objects.Instance) -> dict[str, Any]:
    group = cfg.group_of(cfg.nodes[inst.primary_node]) if inst.primary_node in cfg.nodes \
        else None
    be = objects.fill_beparams(cluster, group, inst.beparams)
    nics = []
    for nic in inst.nics:
        params = objects.fill_nicparams(cluster, group, nic.nicparams)
        nics.append({"mac": nic.mac, "ip": nic.ip, "mode": params.get("mode"),
                     "link": params.get("link"),
                     "bridge": params.get("link") if params.get("mode") == "bridged"
                     else None})
    return {
        "tags": list(inst.tags), "admin_state": inst.admin_state,
        "vcpus": int(be.get("vcpus", 1)), "memory": int(be.get("maxmem", 128)),
        "spindle_use": int(be.get("spindle_use", 1)), "os": inst.os,
        "nodes": [cfg.node_name(u) for u in (inst.primary_node, *inst.secondary_nodes)],
        "nics": nics,
        "disks": [{"dev_type": d.dev_type, "size": d.size, "mode": d.mode,
                   "spindles": d.spindles} for d in inst.disks],
        "disk_template": inst.disk_template, "disks_active": inst.disks_active,
        "hypervisor": inst.hypervisor,
        "disk_space_total": disk_space_total(inst.disk_template, [d.size for d in inst.disks]),
    }


def storage_kind(cluster: objects.Cluster, template: str | None) -> str | None:
    """The node storage a request's free disk is measured on: the template's own, else the
    first enabled template's that has node storage (shared storage counts as none)."""
    names = ([template] if template else []) + list(cluster.enabled_disk_templates)
    for name in names:
        row = disk_templates.TABLE.get(name)
        if row is not None and row.storage_type is not None and not row.shared:
            return row.storage_type
        if name == template:
            return None
    return None


def _disk_space(units: Any, kind: str, vg: str) -> tuple[int, int]:
    rows = [u for u in units or [] if isinstance(u, dict)]
    if kind == constants.ST_LVM_VG:
        rows = [u for u in rows if u.get("name") == vg]
    return (sum(int(u.get("size", 0)) for u in rows), sum(int(u.get("free", 0)) for u in rows))


async def cluster_data(lu: LogicalUnit, template: str | None = None) -> dict[str, Any]:
    """Everything of the request but ``request``: the cluster as an allocator sees it.
    Nodes that are offline, not vm-capable, or do not answer carry no resources (an
    allocator leaves them out); the others report memory and CPUs, and the free space of
    the storage ``template`` uses."""
    cfg = lu.cfg
    cluster = cfg.get_cluster()
    kind = storage_kind(cluster, template)
    live = [n for n in cfg.sorted_nodes() if not n.offline and n.vm_capable]

    async def facts(node: objects.Node) -> tuple[Any, Any]:
        info = await lu.rpc.node_info(node)
        units = await lu.rpc.node_storage(node, kind) if kind else []
        return info, units
    answers = await lu.ask_each(live, facts, "node {node} did not report its resources: "
                                             "{error}; it gets no new instances")
    primaries: dict[str, list[objects.Instance]] = {}
    for inst in cfg.instances.values():
        primaries.setdefault(inst.primary_node, []).append(inst)
    nodes: dict[str, Any] = {}
    for node in cfg.sorted_nodes():
        group = cfg.group_of(node)
        entry: dict[str, Any] = {
            "tags": list(node.tags), "primary_ip": node.primary_ip,
            "secondary_ip": node.secondary_ip or node.primary_ip, "offline": node.offline,
            "drained": node.drained, "master_candidate": node.master_candidate,
            "group": node.group, "master_capable": node.master_capable,
            "vm_capable": node.vm_capable,
            "ndparams": objects.fill_ndparams(cluster, group, node.ndparams)}
        if node.uuid in answers:
            info, units = answers[node.uuid]
            total_disk, free_disk = _disk_space(units, kind or "", cluster.volume_group_name)
            mine = primaries.get(node.uuid, [])
            be = [objects.fill_beparams(cluster, group, i.beparams) for i in mine]
            entry.update({
                "total_memory": int(info.get("memory_total", 0)),
                "reserved_memory": int(info.get("memory_dom0", 0)),
                "free_memory": int(info.get("memory_free", 0)),
                "total_disk": total_disk, "free_disk": free_disk,
                "total_spindles": int(info.get("spindles_total", 0)),
                "free_spindles": int(info.get("spindles_free", 0)),
                "total_cpus": int(info.get("cpu_total", 1)),
                "reserved_cpus": int(info.get("cpu_dom0", 0)),
                "i_pri_memory": sum(int(b.get("maxmem", 0)) for b in be),
                "i_pri_up_memory": sum(int(b.get("maxmem", 0))
                                       for i, b in zip(mine, be, strict=True)
                                       if i.admin_state == "up")})
        elif not node.offline and node.vm_capable:
            entry["offline"] = True  # did not answer: nothing may be placed there
        nodes[node.name] = entry
    groups = {
        g.uuid: {"name": g.name, "alloc_policy": g.alloc_policy,
                 "networks": sorted(g.networks), "ipolicy": objects.fill_ipolicy(cluster, g),
                 "tags": list(g.tags)}
        for g in sorted(cfg.groups.values(), key=lambda g: g.name)}
    return {
        "version": 2, "cluster_name": cluster.cluster_name, "cluster_tags": list(cluster.tags),
        "enabled_hypervisors": list(cluster.enabled_hypervisors),
        "ipolicy": objects.fill_ipolicy(cluster, None), "nodegroups": groups, "nodes": nodes,
        "instances": {i.name: _instance(cfg, cluster, i)
                      for i in sorted(cfg.instances.values(), key=lambda i: i.name)},
    }


def allocate_request(*, name: str, template: str, disks: list[dict[str, Any]],
                     nics: list[dict[str, Any]], memory: int, vcpus: int, os: str,
                     hypervisor: str, tags: list[str], spindle_use: int = 1,
                     group_name: str | None = None) -> dict[str, Any]:
    """The ``allocate`` request for one new instance."""
    sizes = [int(d["size"]) for d in disks]
    return {
        "type": "allocate", "name": name, "disk_template": template,
        "group_name": group_name, "tags": list(tags), "os": os, "vcpus": vcpus,
        "memory": memory, "spindle_use": spindle_use,
        "disks": [{"size": int(d["size"]), "mode": d.get("mode", "rw"), "dev_type": template}
                  for d in disks],
        "disk_space_total": disk_space_total(template, sizes),
        "nics": [{"mac": n.get("mac") or "auto", "ip": n.get("ip"), "mode": n.get("mode"),
                  "link": n.get("link")} for n in nics],
        "required_nodes": 2 if disk_templates.of(template).needs_secondary else 1,
        "hypervisor": hypervisor,
    }


def relocate_request(cfg: Any, inst: objects.Instance) -> dict[str, Any]:
    """Another node for an instance (``relocate``): a new secondary for a mirrored one, a
    new primary for one on shared storage."""
    mirrored = disk_templates.of(inst.disk_template).network_mirrored
    away = inst.secondary_nodes if mirrored else [inst.primary_node]
    return {"type": "relocate", "name": inst.name, "required_nodes": 1,
            "disk_space_total": disk_space_total(inst.disk_template,
                                                 [d.size for d in inst.disks]),
            "relocate_from": [cfg.node_name(u) for u in away]}


def evacuate_request(instances: list[str], evac_mode: str) -> dict[str, Any]:
    """Where instances go when their nodes are emptied (``node-evacuate``)."""
    return {"type": "node-evacuate", "instances": list(instances), "evac_mode": evac_mode}


def change_group_request(instances: list[str], target_groups: list[str]) -> dict[str, Any]:
    """Instances moved to other node groups (``change-group``; groups by uuid)."""
    return {"type": "change-group", "instances": list(instances),
            "target_groups": list(target_groups)}


def multi_allocate_request(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """Several new instances at once (``multi-allocate``)."""
    return {"type": "multi-allocate", "instances": list(requests)}


# --- asking an allocator ----------------------------------------------------------------------

def _read_answer(name: str, text: str) -> dict[str, Any]:
    try:
        answer = json.loads(text)
    except ValueError:
        raise errors.ExecError(f"allocator '{name}' did not answer in JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
        raise errors.ExecError(f"allocator '{name}' answered without a success flag")
    if "result" not in answer and "nodes" in answer:  # the protocol's older key
        answer["result"] = answer.pop("nodes")
    answer.setdefault("info", "")
    return answer


async def _run_program(name: str, path: str, request: dict[str, Any]) -> dict[str, Any]:
    handle, request_file = tempfile.mkstemp(prefix="cardume-ialloc-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(request, out)
        proc = await asyncio.create_subprocess_exec(
            path, request_file, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(TIMEOUT):
                stdout, stderr = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise errors.ExecError(f"allocator '{name}' did not answer within "
                                   f"{TIMEOUT:.0f}s") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(request_file)
    if proc.returncode != 0:
        lines = stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise errors.ExecError(f"allocator '{name}' failed (exit code {proc.returncode}): "
                               f"{lines[-1]}")
    return _read_answer(name, stdout.decode(errors="replace"))


async def ask(name: str, request: dict[str, Any]) -> dict[str, Any]:
    """The answer of allocator ``name`` to ``request`` (a whole request document)."""
    path = find(name)
    if path is None:
        raise errors.WrongInput(f"allocator '{name}' not found (searched "
                                f"{', '.join(SEARCH_PATH)}; '{BUILTIN}' is built in)")
    if path == BUILTIN:
        from cardume.allocator import protocol  # (only operations that allocate need it)
        answer = await asyncio.to_thread(protocol.answer, request)
        return _read_answer(name, json.dumps(answer))
    return await _run_program(name, path, request)


async def choose_nodes(lu: LogicalUnit, name: str, request: dict[str, Any],
                       template: str | None, what: str) -> list[objects.Node]:
    """Ask ``name`` for nodes (an ``allocate`` or ``relocate`` request, whose answer is a
    list of ``required_nodes`` node names); ``what`` names the purpose in messages."""
    document = await cluster_data(lu, template)
    document["request"] = request
    answer = await ask(name, document)
    if not answer["success"]:
        raise errors.InsufficientResources(
            f"can't find nodes for {what} with allocator '{name}': {answer['info']}")
    result = answer.get("result")
    wanted = int(request["required_nodes"])
    if not isinstance(result, list) or len(result) != wanted or \
            not all(isinstance(n, str) for n in result):
        raise errors.ExecError(f"allocator '{name}' answered {result!r}, expected a list of "
                               f"{wanted} node name(s)")
    nodes = [lu.cfg.expand_node(n) for n in result]
    lu.log_info(f"Selected nodes for {what} via allocator {name}: "
                f"{', '.join(n.name for n in nodes)}")
    return nodes


async def allocate(lu: LogicalUnit, name: str, request: dict[str, Any]) -> list[objects.Node]:
    """Where a new instance goes (an ``allocate`` request)."""
    return await choose_nodes(lu, name, request, request.get("disk_template"),
                              f"instance {request['name']}")


async def relocate(lu: LogicalUnit, name: str, inst: objects.Instance) -> objects.Node:
    """The new secondary of a mirrored instance, or the new primary of one on shared
    storage (a ``relocate`` request)."""
    role = "secondary" if disk_templates.of(inst.disk_template).network_mirrored \
        else "primary"
    [node] = await choose_nodes(lu, name, relocate_request(lu.cfg, inst), inst.disk_template,
                                f"the new {role} of {inst.name}")
    return node
