"""The built-in allocator against Debian's hail on the same generated requests.

Each request goes to hail (as Ganeti runs it: ``hail REQUEST_FILE``) and to the built-in
allocator; both placements are applied to the request's cluster and scored with the
built-in score (which reproduces hail's own: the peer's allocate gives the same figure). The
built-in placement must score no worse, and where hail finds nothing the built-in one must
find nothing or a placement an independent check finds valid.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
import alloc_kit as kit  # noqa: E402

from cardume.allocator import protocol  # noqa: E402
from cardume.allocator.model import parse  # noqa: E402
from cardume.allocator.score import request_score  # noqa: E402

HAIL = Path("/usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators/hail")
pytestmark = pytest.mark.skipif(not HAIL.exists(),
                                reason=f"Debian's hail is not installed ({HAIL} is missing)")
SIZES = (3, 5, 10, 20, 40)
SEEDS = (11, 12, 13)
EPS = 1e-9


def hail(req: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(req))
    run = subprocess.run([str(HAIL), str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"hail refused the request: {run.stderr.strip()}"
    return json.loads(run.stdout)


def score_after_alloc(req: dict[str, Any], nodes: list[str]) -> float:
    placed = copy.deepcopy(req)
    body = req["request"]
    kit.add_instance(placed, body["name"], nodes, template=body["disk_template"],
                     memory=body["memory"], vcpus=body["vcpus"], disk=body["disks"][0]["size"]
                     if body["disks"] else 0, tags=body["tags"])
    return request_score(parse(placed)[0])


def score_after_moves(req: dict[str, Any], moves: dict[str, list[str]]) -> float:
    """The cluster after instances moved: memory and disk follow them."""
    after = copy.deepcopy(req)
    for name, nodes in moves.items():
        inst = after["instances"].pop(name)
        for n in inst["nodes"]:
            if inst["disk_template"] in ("plain", "drbd", "file"):
                after["nodes"][n]["free_disk"] += inst["disk_space_total"]
        if inst["admin_state"] == "up":
            after["nodes"][inst["nodes"][0]]["free_memory"] += inst["memory"]
        kit.add_instance(after, name, nodes, template=inst["disk_template"],
                         memory=inst["memory"], vcpus=inst["vcpus"],
                         disk=inst["disks"][0]["size"] if inst["disks"] else 0,
                         admin_state=inst["admin_state"], tags=inst["tags"])
        after["instances"][name]["disk_space_total"] = inst["disk_space_total"]
    return request_score(parse(after)[0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("template", ["drbd", "plain", "sharedfile", "diskless"])
def test_allocate_no_worse_than_hail(size: int, seed: int, template: str,
                                     tmp_path: Path) -> None:
    data = kit.random_cluster(seed, size, size * 3)
    req = kit.allocate(data, template=template, memory=[512, 4096, 12000][seed % 3],
                       disk=4096)
    theirs, ours = hail(req, tmp_path), protocol.answer(req)
    if ours["success"]:
        assert kit.placement_problems(req, "new1", ours["result"], req["request"]) == []
    if not theirs["success"]:
        return  # ours failed too, or its placement is valid (checked above)
    assert ours["success"], f"hail placed it on {theirs['result']}, we did not: {ours['info']}"
    hail_score = score_after_alloc(req, theirs["result"])
    our_score = score_after_alloc(req, ours["result"])
    assert our_score <= hail_score + EPS, (ours["result"], theirs["result"])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("size", SIZES)
def test_relocate_no_worse_than_hail(size: int, seed: int, tmp_path: Path) -> None:
    data = kit.random_cluster(seed, size, size * 3, templates=("drbd",))
    name, inst = next(iter(data["instances"].items()))
    data["request"] = {"name": name, "required_nodes": 1,
                       "disk_space_total": inst["disk_space_total"],
                       "relocate_from": [inst["nodes"][1]], "type": "relocate"}
    theirs, ours = hail(data, tmp_path), protocol.answer(data)
    if not theirs["success"]:
        if ours["success"]:
            new = [inst["nodes"][0], ours["result"][0]]
            assert ours["result"][0] not in inst["nodes"]
            assert data["nodes"][new[1]]["group"] == data["nodes"][new[0]]["group"]
        return
    assert ours["success"], ours["info"]
    hail_score = score_after_moves(data, {name: [inst["nodes"][0], theirs["result"][0]]})
    our_score = score_after_moves(data, {name: [inst["nodes"][0], ours["result"][0]]})
    assert our_score <= hail_score + EPS


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["secondary-only", "all", "primary-only"])
def test_node_evacuate_against_hail(size: int, seed: int, mode: str, tmp_path: Path) -> None:
    data = kit.random_cluster(seed, size, size * 3,
                              templates=("drbd", "sharedfile", "diskless", "plain"))
    # the node with the most instances is evacuated (a generated node may hold none)
    count: dict[str, int] = {}
    for inst in data["instances"].values():
        for node in inst["nodes"][:2]:
            count[node] = count.get(node, 0) + 1
    evacuated = max(sorted(count), key=lambda n: count[n])
    names = [n for n, i in data["instances"].items() if evacuated in i["nodes"][:2]]
    data["request"] = {"instances": names, "evac_mode": mode, "type": "node-evacuate"}
    theirs, ours = hail(data, tmp_path), protocol.answer(data)
    assert ours["success"] and theirs["success"]
    our_moved = {m[0]: m[2] for m in ours["result"][0]}
    hail_moved = {m[0]: m[2] for m in theirs["result"][0]}
    assert set(our_moved) >= set(hail_moved), ours["result"][1]
    for name, nodes in our_moved.items():
        inst = data["instances"][name]
        if mode == "primary-only":
            assert nodes[0] != inst["nodes"][0]
        elif mode == "secondary-only":
            assert nodes[1] not in inst["nodes"]
        else:
            assert evacuated not in nodes
    if set(our_moved) == set(hail_moved) and our_moved:
        assert score_after_moves(data, our_moved) <= score_after_moves(data, hail_moved) + 1e-6
