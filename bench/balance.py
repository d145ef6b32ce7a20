#!/usr/bin/env python3
"""Balancing and capacity on a simulated cluster, cardume beside Debian's hbal and hspace.

Run with the project's interpreter:  .venv/bin/python bench/balance.py [--nodes 100]
    [--instances 2000] [--seed 1]

A one-group cluster of varied nodes is generated with its instances (drbd, plain,
sharedfile, diskless) crowded onto the first third of the nodes. The same cluster is given
to cardume as Ganeti's iallocator document (``cardume.allocator.model.parse``) and to htools
in their text format (``-t FILE``: groups, nodes, instances, cluster tags, policies). Timed:
cardume's ``balance`` against ``hbal -t FILE -C`` (its initial and final score lines), and
cardume's ``capacity`` against ``hspace -t FILE --machine-readable`` (HTS_ALLOC_INSTANCES),
both with the policy's std spec and first disk template. Figures only; nothing asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "unit"))

import alloc_kit  # noqa: E402  (the generated iallocator documents the unit tests use)

from cardume.allocator import balance, capacity, model  # noqa: E402

HTOOLS = Path("/usr/lib/ganeti/3.0/usr/bin")
STATUS = {"up": "running", "down": "ADMIN_down", "offline": "ADMIN_offline"}


def simulate(seed: int, n_nodes: int, n_instances: int) -> dict[str, Any]:
    rng = random.Random(seed)
    data = alloc_kit.cluster(0)
    for i in range(n_nodes):
        data["nodes"][f"node{i + 1}"] = alloc_kit.node(
            i, memory=rng.choice([65536, 131072]), disk=rng.choice([1048576, 2097152]),
            cpus=rng.choice([16, 32]))
    names = list(data["nodes"])
    crowded = names[:max(2, n_nodes // 3)]
    placed = 0
    while placed < n_instances:
        template = rng.choice(["drbd", "drbd", "plain", "sharedfile", "diskless"])
        memory = rng.choice([512, 1024, 2048])
        pool = crowded if rng.random() < 0.8 else names
        nodes = rng.sample(pool, 1) + (rng.sample([n for n in names if n not in pool[:0]], 1)
                                       if template == "drbd" else [])
        if len(set(nodes)) != len(nodes):
            continue
        pri = data["nodes"][nodes[0]]
        if pri["free_memory"] < memory + 4096:
            continue
        alloc_kit.add_instance(data, f"inst{placed + 1}", nodes, template=template,
                               memory=memory, disk=rng.choice([2048, 4096, 10240]))
        placed += 1
    return data


# --- htools' text format ----------------------------------------------------------------

def _ispec(spec: dict[str, Any]) -> str:
    keys = ("memory-size", "cpu-count", "disk-size", "disk-count", "nic-count", "spindle-use")
    return ",".join(str(int(spec.get(key, 0))) for key in keys)


def _policy(owner: str, policy: dict[str, Any]) -> str:
    minmax = ";".join(f"{_ispec(p['min'])};{_ispec(p['max'])}" for p in policy["minmax"])
    return "|".join([owner, _ispec(policy["std"]), minmax, ",".join(policy["disk-templates"]),
                     repr(float(policy["vcpu-ratio"])), repr(float(policy["spindle-ratio"]))])


def htools_text(data: dict[str, Any]) -> str:
    """The cluster in the text format hbal/hspace read with -t."""
    groups = [f"{g['name']}|{uuid}|{g['alloc_policy']}|{','.join(g['tags'])}|"
              f"{','.join(g['networks'])}" for uuid, g in data["nodegroups"].items()]
    nodes = []
    for name, n in data["nodes"].items():
        unusable = n["offline"] or n["drained"] or not n.get("vm_capable", True)
        nd = n["ndparams"]
        nodes.append("|".join(str(v) for v in (
            name, n["total_memory"], n["reserved_memory"], n["free_memory"], n["total_disk"],
            n["free_disk"], n["total_cpus"], "Y" if unusable else "N", n["group"],
            nd.get("spindle_count", 1), ",".join(n["tags"]),
            "Y" if nd.get("exclusive_storage") else "N", n.get("free_spindles", 0),
            n.get("reserved_cpus", 0), float(nd.get("cpu_speed", 1)))))
    instances = []
    for name, i in data["instances"].items():
        secondary = i["nodes"][1] if len(i["nodes"]) > 1 else ""
        instances.append("|".join(str(v) for v in (
            name, i["memory"], i["disk_space_total"], i["vcpus"], STATUS[i["admin_state"]],
            "Y", i["nodes"][0], secondary, i["disk_template"], ",".join(i["tags"]),
            i.get("spindle_use", 1), "-", "N")))
    policies = [_policy("", data["ipolicy"])] + [_policy(g["name"], g["ipolicy"])
                                                 for g in data["nodegroups"].values()]

    def section(rows: list[str]) -> str:
        return "".join(row + "\n" for row in rows)
    return "\n".join([section(groups), section(nodes), section(instances),
                      section(list(data["cluster_tags"])), section(policies)])


# --- the runs ---------------------------------------------------------------------------

def _timed(argv: list[str], timeout: float) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, f"(did not finish within {timeout:g} s)"
    return time.perf_counter() - start, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--htools-timeout", type=float, default=900,
                        help="seconds hbal and hspace may each take")
    args = parser.parse_args()
    data = simulate(args.seed, args.nodes, args.instances)
    doc = dict(data, request={"type": "change-group", "instances": [], "target_groups": []})
    print(f"simulated cluster: {args.nodes} nodes, {len(data['instances'])} instances "
          f"(seed {args.seed})")

    start = time.perf_counter()
    cluster = model.parse(doc)[0]
    [plan] = balance.balance(cluster)
    ours = time.perf_counter() - start
    print(f"cardume balance: {ours:8.2f} s  score {plan.initial_score:.8f} -> "
          f"{plan.final_score:.8f}  moves {len(plan.moves)}  job sets {len(plan.job_sets)}")

    start = time.perf_counter()
    report = capacity.capacity(model.parse(doc)[0])
    ours_cap = time.perf_counter() - start
    group = report.groups[0]
    print(f"cardume capacity: {ours_cap:7.2f} s  {report.total} more instances of "
          f"{group.spec.memory} MiB / {group.spec.disk} MiB / {group.spec.vcpus} vCPU "
          f"({group.spec.template}); limit {group.limit}")

    if not (HTOOLS / "hbal").exists():
        print(f"htools not found in {HTOOLS}: no comparison")
        return 0
    with tempfile.TemporaryDirectory(prefix="cardume-bench-") as tmp:
        path = os.path.join(tmp, "cluster.txt")
        Path(path).write_text(htools_text(data), encoding="utf-8")
        took, out = _timed([str(HTOOLS / "hbal"), "-t", path, "-C"],
                           args.htools_timeout)
        ini = re.search(r"Initial score: ([\d.]+)", out)
        fin = re.search(r"Cluster score improved from [\d.]+ to ([\d.]+)", out)
        length = re.search(r"Solution length=(\d+)", out)
        sets = len(re.findall(r"echo jobset", out))
        if "did not finish" in out:
            print(f"hbal -t -C: {out}")
        print(f"hbal -t -C:      {took:8.2f} s  score {ini.group(1) if ini else '?'} -> "
              f"{fin.group(1) if fin else '(no improvement)'}  moves "
              f"{length.group(1) if length else '?'}  job sets {sets}")
        took, out = _timed([str(HTOOLS / "hspace"), "-t", path, "--machine-readable"],
                           args.htools_timeout)
        if "did not finish" in out:
            print(f"hspace -t: {out}")
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        print(f"hspace -t:        {took:7.2f} s  {values.get('HTS_ALLOC_INSTANCES', '?')} more "
              f"instances of {values.get('HTS_SPEC_MEM')} MiB / {values.get('HTS_SPEC_DSK')} "
              f"MiB / {values.get('HTS_SPEC_CPU')} vCPU "
              f"({values.get('HTS_SPEC_DISK_TEMPLATE')}); reason "
              f"{values.get('HTS_ALLOC_FAIL_REASON')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
