"""The master's Unix-socket protocol (Ganeti's LUXI framing): JSON messages ended by 0x03.

Requests are ``{"method", "args", "version"}``; replies ``{"success", "result"}``, where a
failed request's result is the error as ``{"code", "type", "message", "hint"}``. One
connection can carry many requests, so a CLI that submits a job and then waits for it
pays for one connect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cardume import __version__, constants, errors, objects
from cardume.jobs import ids
from cardume.master import bulk, luxi_ganeti, query, storage_query
from cardume.master.client import RAW_REPLY_PREFIX
from cardume.rpc.calls import each

if TYPE_CHECKING:
    from cardume.master.view import MasterView

log = logging.getLogger(__name__)

EOM = b"\x03"
MAX_MESSAGE = 64 * 1024 * 1024


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > ids.MAX_JOB_ID:
        raise errors.WrongInput(f"invalid {what} {value!r}: expected an integer")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or abs(value) > ids.MAX_JOB_ID:
        raise errors.WrongInput(f"invalid {what} {value!r}: expected a finite number")
    return float(value)


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise errors.WrongInput(f"{what} must be a list, not {type(value).__name__}")
    return value


class RawJson(bytes):
    """A result that is JSON text already (a bulk listing of some megabytes)."""


def encode_reply(reply: dict[str, Any]) -> list[bytes]:
    """A reply as the bytes that carry it (without the end-of-message mark)."""
    result = reply["result"]
    if isinstance(result, RawJson):  # encoded already: not parsed, not again
        return [RAW_REPLY_PREFIX, result, b"}"]
    return [json.dumps(reply, separators=(",", ":")).encode()]


class LuxiServer:
    def __init__(self, daemon: MasterView) -> None:
        self.daemon = daemon
        self.methods: dict[str, Callable[..., Awaitable[Any]]] = {
            "SubmitJob": self.submit_job,
            "SubmitManyJobs": self.submit_many_jobs,
            "WaitForJobChange": self.wait_for_job_change,
            "CancelJob": self.cancel_job,
            "ArchiveJob": self.archive_job,
            "AutoArchiveJobs": self.autoarchive_jobs,
            "Query": self.query,
            "QueryBulk": self.query_bulk,
            "QueryFields": self.query_fields,
            "QueryClusterInfo": self.query_cluster_info,
            "QueryConfigValues": self.query_config_values,
            "SetDrainFlag": self.set_drain_flag,
            "SetWatcherPause": self.set_watcher_pause,
            "QueueInfo": self.queue_info,
            "QueryLocks": self.query_locks,
            "Ping": self.ping,
            "QueryOs": self.query_os,
            "QueryNodeVolumes": self.query_node_volumes,
            "QueryNodeStorage": self.query_node_storage,
            "QueryDrbd": self.query_drbd,
            "InstanceConsole": self.instance_console,
            "QueryMetrics": self.query_metrics,
        }
        # Ganeti's clients (htools -L) get Ganeti's arguments and shapes: see luxi_ganeti
        self.ganeti_methods: dict[str, Callable[..., Awaitable[Any]]] = {
            "Query": self.ganeti_query,
            "QueryClusterInfo": self.ganeti_cluster_info,
        }

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await reader.readuntil(EOM)
                except asyncio.IncompleteReadError:
                    return
                except asyncio.LimitOverrunError:
                    error = errors.WrongInput(
                        f"request larger than {MAX_MESSAGE // (1024 * 1024)} MiB refused")
                    writer.write(json.dumps({"success": False, "result": error.to_dict()})
                                 .encode() + EOM)
                    await writer.drain()
                    return
                writer.writelines([*encode_reply(await self._dispatch(raw[:-1])), EOM])
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _dispatch(self, raw: bytes) -> dict[str, Any]:
        ganeti = False  # a request that does not parse gets cardume's shape of error
        try:
            request = json.loads(raw)
            ganeti = isinstance(request, dict) and luxi_ganeti.is_ganeti_request(request)
            name = request.get("method")
            method = (ganeti and self.ganeti_methods.get(name)) or self.methods.get(name)
            if method is None:
                raise errors.WrongInput(f"unknown request method {request.get('method')!r}")
            args = request.get("args") or []
            if not isinstance(args, list):
                raise errors.WrongInput("request arguments must be a list")
            return {"success": True, "result": await method(*args)}
        except errors.CardumeError as err:
            failure: errors.CardumeError = err
        except RecursionError:  # JSON nested deeper than the parser goes
            failure = errors.WrongInput("malformed request: nested too deep")
        except (ValueError, TypeError, AttributeError, OverflowError) as err:
            failure = errors.WrongInput(f"malformed request: {err}")
        except Exception as err:
            log.exception("request failed")
            failure = errors.InternalError(f"{type(err).__name__}: {err}")
        return {"success": False,
                "result": luxi_ganeti.error(failure) if ganeti else failure.to_dict()}

    # --- jobs ------------------------------------------------------------------------------

    # A job id, once given, names that job forever: the submission is on the master
    # candidates (those keeping up) before the id is returned, so a master failover right
    # after cannot lose the job or hand its id to another.

    async def submit_job(self, ops: list[dict[str, Any]]) -> int:
        job_id = self.daemon.queue.submit(_list(ops, "a job's opcodes"))
        await self.daemon.queue_replicator.synced()
        return job_id

    async def submit_many_jobs(self, jobs: list[list[dict[str, Any]]]) -> list[Any]:
        results = self.daemon.queue.submit_many(_list(jobs, "the jobs"))
        await self.daemon.queue_replicator.synced()
        return results

    async def wait_for_job_change(self, job_id: int, prev_status: str | None,
                                  prev_log_serial: int, timeout: float) -> Any:
        timeout = min(max(_number(timeout, "timeout"), 0.0), 60.0)
        change = await self.daemon.queue.wait_for_change(
            ids.parse(job_id), prev_status, _int(prev_log_serial, "log serial"), timeout)
        if change is None:
            return "nochange"
        if change["status"] in constants.JOBS_FINALIZED:
            # the end of a job is told once the candidates have it (see submit_job)
            await self.daemon.queue_replicator.synced()
            job = self.daemon.queue.get(ids.parse(job_id))
            change["opresult"] = job.op_result
            change["opstatus"] = job.op_status
        return change

    async def cancel_job(self, job_id: int) -> list[Any]:
        return list(self.daemon.queue.cancel(ids.parse(job_id)))

    async def archive_job(self, job_id: int) -> bool:
        return self.daemon.queue.archive([ids.parse(job_id)]) > 0

    async def autoarchive_jobs(self, age: float) -> int:
        return self.daemon.queue.autoarchive(_number(age, "age"))

    async def set_drain_flag(self, drained: bool) -> bool:
        if not isinstance(drained, bool):  # "false" is a true value in Python
            raise errors.WrongInput(f"drain flag must be true or false, not {drained!r}")
        self.daemon.queue.set_drained(drained)
        await self.daemon.queue_replicator.synced()  # a new master keeps the flag
        return True

    async def set_watcher_pause(self, until: float | None) -> dict[str, Any]:
        """Pause the watcher until ``until`` (None: end the pause) on the master and the
        master candidates, as Ganeti does: a new master's watcher keeps the pause. A
        candidate that can't be reached is named in ``failed``; the master must answer."""
        if until is not None:
            until = float(_number(until, "pause end"))
        cfg, rpc = self.daemon.cfg, self.daemon.rpc
        results = await rpc.each(cfg.candidates(), rpc.watcher_pause_write, until)
        failed = {name: str(r.error) for name, r in results.items() if r.error is not None}
        master = cfg.master_node().name
        if master in failed:
            raise errors.ExecError(f"could not set the watcher's pause on the master "
                                   f"{master}: {failed[master]}")
        for name, message in sorted(failed.items()):
            log.warning("watcher pause not written on %s: %s", name, message)
        return {"until": until, "failed": failed}

    async def queue_info(self) -> dict[str, Any]:
        queue = self.daemon.queue
        return {"drained": queue.drained, "max_running": queue.max_running,
                "counts": queue.stats(), "replicas": self.daemon.queue_replicator.status()}

    # --- queries ---------------------------------------------------------------------------

    async def query(self, what: str, fields: list[str], names: list[str] | None = None,
                    qfilter: Any = None) -> RawJson:
        """Rows of ``what``: those ``names`` (all if none) that match ``qfilter`` (Ganeti's
        query filter language; None: no filter). Encoded already, as query.encoded_query
        explains."""
        return RawJson(await query.encoded_query(self.daemon, what, list(fields), names,
                                                 qfilter))

    async def query_bulk(self, what: str, keys: list[str],
                         names: list[str] | None = None) -> RawJson:
        """The REST API's bulk listing of ``what`` (objects keyed by ``keys``), already
        encoded: it goes out as the reply's result as is (see master/bulk.py)."""
        return RawJson(await bulk.bulk(self.daemon, str(what),
                                       [str(k) for k in _list(keys, "bulk fields")],
                                       None if names is None else _list(names, "names")))

    async def ganeti_query(self, what: str, fields: list[str],
                           qfilter: Any = None) -> dict[str, Any]:
        """Query as Ganeti's clients call it (``[what, fields, qfilter]``) and read it
        (``[status, value]`` cells; fields cardume lacks reported unknown, not refused)."""
        fields = [str(f) for f in _list(fields, "query fields")]
        table = query.FIELDS.get(what)
        known = set(fields) & set(table) if table is not None else set(fields)
        answer = await query.run_query(self.daemon, what, [f for f in fields if f in known],
                                       None, qfilter)
        return luxi_ganeti.query_result(fields, known, answer)

    async def ganeti_cluster_info(self) -> dict[str, Any]:
        return luxi_ganeti.cluster_info(await self.query_cluster_info())

    async def query_fields(self, what: str, fields: list[str] | None = None) -> dict[str, Any]:
        return {"fields": query.field_definitions(what, fields)}

    async def query_cluster_info(self) -> dict[str, Any]:
        cfg = self.daemon.cfg
        cluster = cfg.get_cluster()
        data = cluster.to_dict()
        master = cfg.master_node()
        data.update({
            "name": cluster.cluster_name,
            "master": master.name,
            "software_version": __version__,
            "protocol_version": constants.PROTOCOL_VERSION,
            "config_serial": cfg.serial,
            "default_hypervisor": cluster.enabled_hypervisors[0],
            "default_disk_template": cluster.enabled_disk_templates[0],
            "node_count": len(cfg.nodes),
            "group_count": len(cfg.groups),
            "instance_count": len(cfg.instances),
            "candidates": sorted(n.name for n in cfg.candidates()),
        })
        from cardume import objects
        data["beparams_filled"] = objects.fill_beparams(cluster, None)
        data["nicparams_filled"] = objects.fill_nicparams(cluster, None)
        data["ndparams_filled"] = objects.fill_ndparams(cluster, None)
        data["hvparams_filled"] = {hv: objects.fill_hvparams(cluster, None, hv)
                                   for hv in cluster.enabled_hypervisors}
        # every disk template's, enabled or not, as Ganeti's cluster info and /2/info show
        data["diskparams_filled"] = {t: objects.fill_diskparams(cluster, None, t)
                                     for t in sorted(constants.DISK_DT_DEFAULTS)}
        data["ipolicy_filled"] = objects.fill_ipolicy(cluster, None)
        import platform
        import struct
        # the master's word size and machine, Ganeti's pair: ["64bits", "x86_64"]
        data["architecture"] = [f"{struct.calcsize('P') * 8}bits", platform.machine()]
        return data

    async def query_config_values(self, names: list[str]) -> list[Any]:
        cluster = self.daemon.cfg.get_cluster()
        values = {"cluster_name": cluster.cluster_name,
                  "master_node": self.daemon.cfg.master_node().name,
                  "drain_flag": self.daemon.queue.drained,
                  "config_serial": self.daemon.cfg.serial}
        return [values.get(n) for n in names]

    async def query_locks(self) -> list[dict[str, Any]]:
        result = []
        for info in self.daemon.locks.snapshot():
            result.append({"name": info.name, "mode": info.mode, "owner": info.owners,
                           "pending": [[mode, owners] for mode, owners in info.pending]})
        return result

    async def query_os(self) -> list[dict[str, Any]]:
        """Every OS definition found on the vm-capable nodes, merged by name."""
        cfg = self.daemon.cfg
        nodes = [n for n in cfg.sorted_nodes() if not n.offline and n.vm_capable]
        results = await self.daemon.rpc.each(nodes, self.daemon.rpc.os_diagnose)
        merged: dict[str, dict[str, Any]] = {}
        answered = [n.name for n in nodes if results[n.name].error is None]
        for node in answered:
            for entry in results[node].value:
                item = merged.setdefault(entry["name"], {"name": entry["name"],
                                                         "node_status": {}})
                item["node_status"].setdefault(node, []).append(entry)
        for item in merged.values():
            for node in answered:  # a node that answered without this OS lacks it
                item["node_status"].setdefault(node, [])
            firsts = [entries[0] for entries in item["node_status"].values() if entries]
            item["valid"] = (len(firsts) == len(answered)
                             and all(e["status"] for e in firsts))
            item["variants"] = sorted(set.intersection(
                *(set(e.get("variants") or []) for e in firsts))) if firsts else []
            item["parameters"] = firsts[0].get("parameters", []) if firsts else []
            item["api_versions"] = sorted(set.intersection(
                *(set(e.get("api_versions") or []) for e in firsts))) if firsts else []
        return sorted(merged.values(), key=lambda i: i["name"])

    def _storage_nodes(self, names: list[str] | None) -> list[Any]:
        cfg = self.daemon.cfg
        if names:
            nodes = [cfg.expand_node(str(n)) for n in names]
        else:
            nodes = cfg.sorted_nodes()
        return [n for n in nodes if not n.offline]

    async def query_node_volumes(self, names: list[str] | None = None) -> dict[str, Any]:
        """gnt-node volumes: ``{"rows": [...], "errors": {node: message}}``."""
        owners = objects.lv_owners(self.daemon.cfg.instances.values())
        rpc = self.daemon.rpc
        return await self._per_node_rows(
            names, lambda node: rpc.node_volumes(node),
            lambda node, value: storage_query.volume_rows(node, value, owners))

    async def query_node_storage(self, names: list[str] | None = None,
                                 kind: str | None = None) -> dict[str, Any]:
        """gnt-node list-storage: ``{"rows": [...], "errors": {node: message}}``."""
        kind = storage_query.check_storage_type(
            kind or storage_query.default_storage_type(self.daemon.cfg.get_cluster()))
        rpc = self.daemon.rpc
        return await self._per_node_rows(
            names, lambda node: rpc.node_storage(node, kind),
            lambda node, value: storage_query.storage_rows(node, kind, value))

    async def _per_node_rows(self, names: list[str] | None,
                             ask: Callable[[objects.Node], Awaitable[list[Any]]],
                             to_rows: Callable[[str, list[Any]], list[dict[str, Any]]],
                             ) -> dict[str, Any]:
        """One call (``ask``) on every online node; rows from those that answered, errors
        by node."""
        nodes = self._storage_nodes(names)
        results = await each(nodes, ask)
        rows: list[dict[str, Any]] = []
        failed: dict[str, str] = {}
        for node in nodes:
            result = results[node.name]
            if result.error is not None:
                failed[node.name] = str(result.error)
            else:
                rows.extend(to_rows(node.name, result.value or []))
        return {"rows": rows, "errors": failed}

    async def query_metrics(self) -> str:
        """The cluster's Prometheus metrics, as text (see cardume.master.metrics)."""
        from cardume.master import metrics  # only a scrape needs it
        return await metrics.exposition(self.daemon)

    async def query_drbd(self, instances: list[str] | None = None,
                         nodes: list[str] | None = None) -> dict[str, Any]:
        """watch-disks, list-drbd, info: the DRBD state of instances' disks and nodes' minors,
        one drbd_status per involved node (see cardume.master.drbd_query)."""
        from cardume.master import drbd_query  # master-only, and only when DRBD is asked about
        for what, value in (("instances", instances), ("nodes", nodes)):
            if value is not None and not isinstance(value, list):
                raise errors.WrongInput(f"QueryDrbd: {what} must be a list of names or null")
        return await drbd_query.query_drbd(self.daemon.cfg, self.daemon.rpc,
                                           instances, nodes)

    async def instance_console(self, name: str) -> dict[str, Any]:
        inst = self.daemon.cfg.expand_instance(str(name))
        if inst.hypervisor == "fake":
            return {"kind": "message", "instance": inst.name,
                    "message": f"Console not available for the fake hypervisor "
                               f"(instance {inst.name})"}
        if inst.hypervisor == constants.HT_KVM:
            return await self._kvm_console(inst)
        raise errors.WrongInput(f"no console for hypervisor '{inst.hypervisor}' yet")

    async def _kvm_console(self, inst: Any) -> dict[str, Any]:
        """The serial console through the node daemon (``cardume console``), or where VNC
        listens when the instance has no serial console."""
        import os
        import sys

        from cardume import objects
        cfg = self.daemon.cfg
        node = cfg.nodes.get(inst.primary_node)
        if node is None:
            raise errors.WrongState(f"instance {inst.name} has no primary node")
        if node.offline:
            raise errors.WrongState(f"node {node.name}, primary of {inst.name}, is offline")
        running = await self.daemon.rpc.instance_info_all(node, [constants.HT_KVM])
        info = (running or {}).get(inst.name)
        if info is None:
            if inst.admin_state == "up":
                raise errors.WrongState(f"instance {inst.name} is marked to be up but isn't "
                                        f"running on {node.name}",
                                        f"gnt-instance startup {inst.name}")
            raise errors.WrongState(f"instance {inst.name} isn't running",
                                    f"gnt-instance startup {inst.name}")
        group = cfg.groups.get(node.group)
        hvparams = objects.fill_hvparams(cfg.get_cluster(), group, inst.hypervisor,
                                         inst.hvparams)
        if not hvparams.get("serial_console", True):
            if info.get("vnc"):
                return {"kind": "message", "instance": inst.name,
                        "message": f"Instance {inst.name} has no serial console; its VNC "
                                   f"display listens on {info['vnc']} (node {node.name})"}
            raise errors.WrongState(f"instance {inst.name} has neither a serial console nor "
                                    "VNC", f"gnt-instance modify -H serial_console=true "
                                    f"{inst.name}, then restart it")
        tool = os.path.join(os.path.dirname(sys.executable), "cardume")
        if not os.path.exists(tool):
            tool = "cardume"
        return {"kind": "command", "instance": inst.name, "node": node.name,
                "vnc": info.get("vnc"),
                "command": [tool, "console", "--node", node.name, "--instance", inst.name]}

    async def ping(self) -> dict[str, Any]:
        return {"time": time.time(), "version": __version__}


