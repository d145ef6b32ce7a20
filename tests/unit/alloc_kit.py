"""Generated iallocator requests (protocol version 2, every key Ganeti 3.0 writes)."""

from __future__ import annotations

import copy
import random
from typing import Any

GROUP_UUID = "d770ad8f-e2ed-40ab-ba3b-f514c25fb9d7"
TEMPLATES = ["file", "sharedfile", "diskless", "plain", "drbd"]


def ipolicy(**over: Any) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "minmax": [{"min": {"memory-size": 128, "disk-size": 1024, "disk-count": 1,
                            "cpu-count": 1, "nic-count": 1, "spindle-use": 1},
                    "max": {"memory-size": 32768, "disk-size": 1048576, "disk-count": 16,
                            "cpu-count": 8, "nic-count": 8, "spindle-use": 12}}],
        "std": {"cpu-count": 1, "disk-count": 1, "disk-size": 1024, "memory-size": 128,
                "nic-count": 1, "spindle-use": 1},
        "spindle-ratio": 32, "vcpu-ratio": 4, "disk-templates": list(TEMPLATES)}
    policy.update(over)
    return policy


def group(name: str, policy: str = "preferred", **ipol: Any) -> dict[str, Any]:
    return {"name": name, "alloc_policy": policy, "networks": [], "ipolicy": ipolicy(**ipol),
            "tags": []}


def node(index: int, group_uuid: str = GROUP_UUID, memory: int = 16384, disk: int = 204800,
         cpus: int = 8, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "total_memory": memory, "reserved_memory": 512, "free_memory": memory - 512,
        "total_disk": disk, "free_disk": disk, "total_spindles": 0, "free_spindles": 0,
        "total_cpus": cpus, "reserved_cpus": 1, "i_pri_memory": 0, "i_pri_up_memory": 0,
        "tags": [], "primary_ip": f"127.0.0.{10 + index % 200}",
        "secondary_ip": f"127.0.0.{10 + index % 200}", "offline": False, "drained": False,
        "master_candidate": index < 3, "group": group_uuid, "master_capable": True,
        "vm_capable": True,
        "ndparams": {"cpu_speed": 1, "exclusive_storage": False, "oob_program": "",
                     "ovs": False, "ovs_link": "", "ovs_name": "switch1", "spindle_count": 1,
                     "ssh_port": 22}}
    data.update(over)
    return data


def spec(name: str, template: str = "drbd", memory: int = 512, vcpus: int = 1,
         disk: int = 2048, tags: list[str] | None = None) -> dict[str, Any]:
    """The instance fields an allocate request and the instances dict share."""
    total = disk + 128 if template == "drbd" else (0 if template == "diskless" else disk)
    return {"name": name, "disk_template": template, "tags": list(tags or []),
            "os": "debootstrap+default", "vcpus": vcpus, "memory": memory, "spindle_use": 1,
            "disks": [] if template == "diskless" else
            [{"size": disk, "mode": "rw", "dev_type": template}],
            "disk_space_total": total,
            "nics": [{"mac": "aa:00:00:00:00:01", "ip": None, "mode": "bridged",
                      "link": "br0", "bridge": "br0"}],
            "hypervisor": "fake"}


def instance(name: str, nodes: list[str], template: str = "drbd", admin_state: str = "up",
             **kw: Any) -> dict[str, Any]:
    data = spec(name, template, **kw)
    del data["name"]
    data.update(admin_state=admin_state, nodes=nodes, disks_active=True)
    return data


def cluster(n_nodes: int, groups: dict[str, dict[str, Any]] | None = None,
            **node_kw: Any) -> dict[str, Any]:
    groups = groups or {GROUP_UUID: group("default")}
    uuids = list(groups)
    nodes = {f"node{i + 1}": node(i, uuids[i % len(uuids)], **node_kw) for i in range(n_nodes)}
    return {"version": 2, "cluster_name": "cluster.test", "cluster_tags": [],
            "enabled_hypervisors": ["fake"], "ipolicy": ipolicy(), "nodegroups": groups,
            "nodes": nodes, "instances": {}, "request": {}}


def add_instance(data: dict[str, Any], name: str, nodes: list[str], **kw: Any) -> None:
    """Put an existing instance on its nodes, taking its memory and disk from them."""
    inst = instance(name, nodes, **kw)
    data["instances"][name] = inst
    pri = data["nodes"][nodes[0]]
    if inst["admin_state"] == "up":
        pri["free_memory"] -= inst["memory"]
        pri["i_pri_memory"] += inst["memory"]
        pri["i_pri_up_memory"] += inst["memory"]
    if inst["disk_template"] in ("plain", "drbd", "file"):
        for n in nodes[:2]:
            data["nodes"][n]["free_disk"] -= inst["disk_space_total"]


def allocate(data: dict[str, Any], name: str = "new1", template: str = "drbd",
             group_name: str | None = None, **kw: Any) -> dict[str, Any]:
    req = copy.deepcopy(data)
    body = spec(name, template, **kw)
    body.update(group_name=group_name, required_nodes=2 if template == "drbd" else 1,
                type="allocate")
    req["request"] = body
    return req


def random_cluster(seed: int, n_nodes: int, n_instances: int,
                   templates: tuple[str, ...] = ("drbd", "plain", "sharedfile", "diskless"),
                   ) -> dict[str, Any]:
    """A one-group cluster of varied nodes holding ``n_instances`` placed at random."""
    rng = random.Random(seed)
    data = cluster(0)
    for i in range(n_nodes):
        data["nodes"][f"node{i + 1}"] = node(
            i, memory=rng.choice([8192, 16384, 32768]), disk=rng.choice([102400, 204800]),
            cpus=rng.choice([4, 8, 16]))
    names = list(data["nodes"])
    for j in range(n_instances):
        template = rng.choice(templates)
        mem = rng.choice([256, 512, 1024, 2048])
        disk = rng.choice([1024, 2048, 4096])
        for _ in range(20):
            picked = rng.sample(names, 2 if template == "drbd" else 1)
            need = mem + 600
            if data["nodes"][picked[0]]["free_memory"] > need and all(
                    data["nodes"][n]["free_disk"] > disk + 1000 for n in picked):
                add_instance(data, f"inst{j + 1}", picked, template=template, memory=mem,
                             disk=disk, admin_state=rng.choice(["up", "up", "up", "down"]))
                break
    return data


def placement_problems(req: dict[str, Any], name: str, nodes: list[str],
                       spec_: dict[str, Any]) -> list[str]:
    """Independent check of a placement against the raw request: what an admin would verify
    (usable nodes, one group, memory, disk, N+1 of every secondary, policy templates)."""
    problems = []
    ndata = req["nodes"]
    if len(set(nodes)) != len(nodes):
        problems.append(f"{name}: nodes repeat: {nodes}")
    groups = {ndata[n]["group"] for n in nodes}
    if len(groups) != 1:
        problems.append(f"{name}: nodes span groups {groups}")
    for n in nodes:
        d = ndata[n]
        if d["offline"] or d["drained"] or not d.get("vm_capable", True):
            problems.append(f"{name}: {n} is not usable")
    group_ = req["nodegroups"][ndata[nodes[0]]["group"]]
    if group_["alloc_policy"] == "unallocable":
        problems.append(f"{name}: group {group_['name']} is unallocable")
    if spec_["disk_template"] not in group_["ipolicy"]["disk-templates"]:
        problems.append(f"{name}: template not allowed")
    used = {n: 0 for n in ndata}
    for inst in req["instances"].values():
        if inst["admin_state"] == "up":
            used[inst["nodes"][0]] += inst["memory"]
    pri = ndata[nodes[0]]
    free = min(pri["free_memory"],
               pri["total_memory"] - pri["reserved_memory"] - used[nodes[0]])
    if spec_["memory"] >= free:
        problems.append(f"{name}: {nodes[0]} lacks memory ({free} free)")
    if spec_["disk_template"] in ("plain", "drbd"):
        for n in nodes:
            if spec_["disk_space_total"] >= ndata[n]["free_disk"]:
                problems.append(f"{name}: {n} lacks disk")
    if len(nodes) == 2:  # N+1: the secondary must be able to start all it mirrors of pnode
        sec = ndata[nodes[1]]
        sec_free = min(sec["free_memory"],
                       sec["total_memory"] - sec["reserved_memory"] - used[nodes[1]])
        takeover = spec_["memory"] + sum(
            i["memory"] for i in req["instances"].values()
            if i["disk_template"] == "drbd" and i["nodes"][:2] == nodes
            and i["admin_state"] != "offline")
        if takeover >= sec_free:
            problems.append(f"{name}: {nodes[1]} could not take over {nodes[0]} "
                            f"({takeover} MiB needed, {sec_free} free)")
    return problems
