"""The cluster as Prometheus metrics: the text a scrape of the REST daemon's ``/metrics`` gets
(exposition format 0.0.4), made on the master from the same queries `gnt-node list` and
`gnt-instance list` answer, the DRBD status `gnt-instance watch-disks` shows, and what the
job queue and the node calls count.

Names follow Prometheus' conventions: the ``cardume_`` prefix, base units (bytes, seconds),
``_total`` for counters. Label sets stay bounded: nodes, instances, disks, statuses and
operation names, never a job id. A value a node did not give (offline, not answering) is
left out rather than reported as zero; ``cardume_node_up`` says which nodes answered.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cardume import __version__, constants
from cardume.master import query

if TYPE_CHECKING:
    from cardume.master.view import MasterView

MIB = 1024 * 1024
KIB = 1024

NODE_FIELDS = ["name", "role", "group", "mtotal", "mfree", "dtotal", "dfree", "ctotal"]
INSTANCE_FIELDS = ["name", "status", "pnode", "snodes", "disk_template", "hypervisor",
                   "be/vcpus", "be/maxmem", "oper_state"]
ROLES = {"M": "master", "C": "candidate", "R": "regular", "D": "drained", "O": "offline"}


class Family:
    """One metric: its name, type, help line and samples (labels, value)."""

    def __init__(self, name: str, kind: str, doc: str) -> None:
        self.name, self.kind, self.doc = name, kind, doc
        self.samples: list[str] = []

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        # rendered now: a page at 10,000 instances has some 40,000 samples
        self.samples.append(f"{self.name}{suffix}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join([f"# HELP {self.name} {self.doc}", f"# TYPE {self.name} {self.kind}",
                          *self.samples])


def _escape(value: str) -> str:
    if "\\" not in value and "\n" not in value and '"' not in value:
        return value  # names: the usual case
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if value.__class__ is int:
        return str(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if value == float("inf"):
        return "+Inf"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _have(value: Any) -> bool:
    """A cell that carries a number (not a mark of a missing value)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


async def exposition(daemon: MasterView) -> str:
    reply = await query.run_query(daemon, "node", NODE_FIELDS, None)
    nodes = [dict(zip(NODE_FIELDS, row, strict=True)) for row in reply["data"]]
    # instances stay rows (INSTANCE_FIELDS' order): a page may list 10,000 of them
    instances = (await query.run_query(daemon, "instance", INSTANCE_FIELDS, None))["data"]
    families = [_build_info(daemon), *_node_families(nodes, instances),
                *_instance_families(instances)]
    if any(row[4] == constants.DT_DRBD8 for row in instances):
        from cardume.master import drbd_query  # only clusters with DRBD disks pay for it
        families.extend(_drbd_families(await drbd_query.query_drbd(daemon.cfg, daemon.rpc)))
    families.extend(_job_families(daemon))
    families.extend(_rpc_families(daemon))
    return "\n".join(f.text() for f in families) + "\n"


def _build_info(daemon: MasterView) -> Family:
    cluster = daemon.cfg.get_cluster()
    info = Family("cardume_build_info", "gauge",
                  "cardume's version and the Python that runs the master (always 1)")
    info.add(1, version=__version__, python=platform.python_version(),
             cluster=cluster.cluster_name)
    return info


def _node_families(nodes: list[dict[str, Any]],
                   instances: list[list[Any]]) -> Iterable[Family]:
    up = Family("cardume_node_up", "gauge",
                "whether the node answered the master for this scrape (1) or not (0)")
    role = Family("cardume_node_info", "gauge",
                  "the node's role (master, candidate, regular, drained, offline) and group")
    gauges = {
        "mtotal": Family("cardume_node_memory_total_bytes", "gauge",
                         "memory of the node"),
        "mfree": Family("cardume_node_memory_free_bytes", "gauge",
                        "memory of the node that instances may still use"),
        "dtotal": Family("cardume_node_disk_total_bytes", "gauge",
                         "space of the node's default storage for disks"),
        "dfree": Family("cardume_node_disk_free_bytes", "gauge",
                        "free space of the node's default storage for disks"),
    }
    cpus = Family("cardume_node_cpus", "gauge", "CPUs of the node")
    vcpus = Family("cardume_node_vcpus_used", "gauge",
                   "virtual CPUs of the instances running on the node")
    counts = Family("cardume_node_instances", "gauge",
                    "instances whose primary (role=primary) or secondary node it is")
    used: dict[str, int] = {}
    primaries: dict[str, int] = {}
    secondaries: dict[str, int] = {}
    for _name, status, pnode, snodes, _template, _hv, vcpu, _mem, _oper in instances:
        primaries[pnode] = primaries.get(pnode, 0) + 1
        for snode in snodes:
            secondaries[snode] = secondaries.get(snode, 0) + 1
        if status == "running" and _have(vcpu):
            used[pnode] = used.get(pnode, 0) + int(vcpu)
    for node in nodes:
        name = node["name"]
        up.add(1 if _have(node["mtotal"]) else 0, node=name)
        role.add(1, node=name, role=ROLES.get(str(node["role"]), str(node["role"])),
                 group=str(node["group"]))
        for key, family in gauges.items():
            if _have(node[key]):
                family.add(int(node[key]) * MIB, node=name)
        if _have(node["ctotal"]):
            cpus.add(node["ctotal"], node=name)
        vcpus.add(used.get(name, 0), node=name)
        counts.add(primaries.get(name, 0), node=name, role="primary")
        counts.add(secondaries.get(name, 0), node=name, role="secondary")
    return [up, role, *gauges.values(), cpus, vcpus, counts]


def _instance_families(instances: list[list[Any]]) -> Iterable[Family]:
    status = Family("cardume_instance_status", "gauge",
                    "the instance's status as gnt-instance list shows it (always 1), with "
                    "its nodes and disk template")
    running = Family("cardume_instance_running", "gauge",
                     "whether the hypervisor runs the instance (1) or not (0)")
    memory = Family("cardume_instance_memory_bytes", "gauge", "the instance's maximum memory")
    vcpus = Family("cardume_instance_vcpus", "gauge", "the instance's virtual CPUs")
    # the lines written here, not through Family.add: four per instance, 40,000 at 10,000
    for name, state, pnode, snodes, template, hypervisor, vcpu, maxmem, oper in instances:
        who = f'instance="{_escape(name)}"'
        status.samples.append(
            f'cardume_instance_status{{{who},status="{state}",primary_node="{_escape(pnode)}",'
            f'secondary_nodes="{_escape(",".join(snodes))}",disk_template="{template}",'
            f'hypervisor="{hypervisor}"}} 1')
        if oper.__class__ is bool:
            running.samples.append(f"cardume_instance_running{{{who}}} {1 if oper else 0}")
        if _have(maxmem):
            memory.samples.append(f"cardume_instance_memory_bytes{{{who}}} {int(maxmem) * MIB}")
        if _have(vcpu):
            vcpus.samples.append(f"cardume_instance_vcpus{{{who}}} {int(vcpu)}")
    return [status, running, memory, vcpus]


def _drbd_families(answer: dict[str, Any]) -> Iterable[Family]:
    oos = Family("cardume_drbd_out_of_sync_bytes", "gauge",
                 "data of the disk not yet the same on both nodes, as each node sees it")
    speed = Family("cardume_drbd_resync_bytes_per_second", "gauge",
                   "speed of the running resync (absent when none runs)")
    done = Family("cardume_drbd_sync_ratio", "gauge",
                  "share of the disk in sync during a resync (0 to 1; absent when none runs)")
    connected = Family("cardume_drbd_connected", "gauge",
                       "whether the disk's side is connected to its peer (1) or not (0)")
    for inst in answer.get("instances", []):
        for disk in inst.get("disks", []):
            for side in disk.get("sides", []):
                status = side.get("status")
                if not status:
                    continue
                labels = {"instance": inst["name"], "disk": str(disk["index"]),
                          "node": side["node"], "role": side["role"]}
                if status.get("oos_kib") is not None:
                    oos.add(int(status["oos_kib"]) * KIB, **labels)
                if status.get("sync_speed_kib_s") is not None:
                    speed.add(int(status["sync_speed_kib_s"]) * KIB, **labels)
                if status.get("sync_percent") is not None:
                    done.add(float(status["sync_percent"]) / 100, **labels)
                connected.add(bool(status.get("connected")), **labels)
    return [oos, speed, done, connected]


def _job_families(daemon: MasterView) -> Iterable[Family]:
    queue = daemon.queue
    current = Family("cardume_jobs", "gauge",
                     "jobs the master holds now, by status (ended ones until archived "
                     "from memory)")
    for status, count in sorted(queue.stats().items()):
        current.add(count, status=status)
    ended = Family("cardume_jobs_ended_total", "counter",
                   "jobs that ended since the master daemon started, by status")
    for status, count in sorted(queue.metrics.ended.items()):
        ended.add(count, status=status)
    durations = Family("cardume_job_duration_seconds", "histogram",
                       "how long each operation of a job ran, by operation")
    for op_id, histogram in sorted(queue.metrics.durations.items()):
        for bound, count in histogram.cumulative():
            durations.add(count, "_bucket", operation=op_id, le=_number(bound))
        durations.add(histogram.count, "_bucket", operation=op_id, le="+Inf")
        durations.add(histogram.total, "_sum", operation=op_id)
        durations.add(histogram.count, "_count", operation=op_id)
    return [current, ended, durations]


def _rpc_families(daemon: MasterView) -> Iterable[Family]:
    calls = Family("cardume_node_rpc_calls_total", "counter",
                   "calls the master made to the node since it started")
    failures = Family("cardume_node_rpc_errors_total", "counter",
                      "calls to the node that failed in transport (no answer, refused, "
                      "timed out) since the master started")
    rpc = daemon.rpc
    for name in sorted(node.name for node in daemon.cfg.nodes.values()):
        calls.add(rpc.calls.get(name, 0), node=name)
        failures.add(rpc.failures.get(name, 0), node=name)
    return [calls, failures]
