"""The balancer (hbal's job), checked as an admin reads its plan."""

from __future__ import annotations

import alloc_kit
import balance_kit as kit
import pytest

from cardume.allocator import balance
from cardume.allocator.score import request_score


def _shared_on_node1(count: int = 12, template: str = "sharedfile") -> kit.Placement:
    return [(f"vm{i}", ["node1"], {"template": template, "memory": 1024, "disk": 1024})
            for i in range(count)]


def _plan(data: dict, **kw: object) -> balance.Plan:
    [plan] = balance.balance(kit.parse(data), **kw)  # type: ignore[arg-type]
    return plan


@pytest.mark.parametrize("template", ["sharedfile", "diskless"])
def test_unbalanced_cluster_gets_valid_moves_and_a_lower_score(template: str) -> None:
    placement = _shared_on_node1(template=template)
    data = kit.build(4, placement)
    plan = _plan(data)
    assert plan.moves and plan.final_score < plan.initial_score
    after = kit.moved(placement, plan.moves)
    assert kit.problems(data, after) == []
    counts = {n: sum(1 for _, w, _ in after if w[0] == n) for n in data["nodes"]}
    assert sorted(counts.values()) == [3, 3, 3, 3]
    # the plan's final score is the score of the cluster it leads to, computed afresh
    assert request_score(kit.parse(kit.build(4, after))) == pytest.approx(plan.final_score)
    for move in plan.moves:
        assert move.kind == f"fa:{move.new_nodes[0]}"
        assert move.score_after < move.score_before
        [op] = move.opcodes()
        assert op["OP_ID"] == "OP_INSTANCE_MIGRATE"
        assert op["target_node"] == move.new_nodes[0]
        assert move.commands() == [f"gnt-instance migrate -f -n {move.new_nodes[0]} "
                                   f"{move.instance}"]


def test_stopped_instances_move_by_failover() -> None:
    placement = [(f"vm{i}", ["node1"], {"template": "sharedfile", "admin_state": "down"})
                 for i in range(4)]
    plan = _plan(kit.build(2, placement))
    assert plan.moves
    assert all(m.opcodes()[0]["OP_ID"] == "OP_INSTANCE_FAILOVER" for m in plan.moves)
    assert plan.moves[0].commands()[0].startswith("gnt-instance failover -f -n node2 ")


def test_balanced_cluster_gets_no_moves() -> None:
    placement = [(f"vm{i}", [f"node{i + 1}"], {"template": "sharedfile"}) for i in range(4)]
    plan = _plan(kit.build(4, placement))
    assert plan.moves == [] and plan.job_sets == []
    assert plan.final_score == plan.initial_score


def test_max_moves_is_respected() -> None:
    plan = _plan(kit.build(4, _shared_on_node1()), max_moves=2)
    assert len(plan.moves) == 2


def test_min_gain_stops_small_steps_below_the_limit() -> None:
    data = kit.build(4, _shared_on_node1())
    full = _plan(data)
    # with the limit above every score, each step must gain at least min_gain
    strict = _plan(data, min_gain=5.0, min_gain_limit=1000.0)
    assert len(strict.moves) < len(full.moves)
    assert all(m.score_before - m.score_after >= 5.0 for m in strict.moves)


def test_job_sets_touch_disjoint_nodes_and_keep_the_order() -> None:
    data = alloc_kit.random_cluster(5, 10, 60)
    [plan] = balance.balance(kit.parse(data))
    assert plan.moves
    flat = [i for js in plan.job_sets for i in js]
    assert flat == list(range(len(plan.moves)))
    for js in plan.job_sets:
        seen: set[str] = set()
        for i in js:
            assert not seen & plan.moves[i].nodes
            seen |= plan.moves[i].nodes
    assert len(plan.job_sets) < len(plan.moves)  # some moves do run side by side


def test_drbd_moves_fix_n1_failures() -> None:
    # every mirror of node1 on node2: node2 could not start them all if node1 failed
    placement: kit.Placement = [(f"vm{i}", ["node1", "node2"], {"memory": 4096})
                                for i in range(3)]
    placement.append(("big", ["node2", "node3"], {"memory": 4096}))
    data = kit.build(4, placement, memory=16384)
    assert kit.problems(data, placement)  # node2 can't take over node1's 12 GiB
    plan = _plan(data)
    assert plan.moves and plan.final_score < plan.initial_score
    after = kit.moved(placement, plan.moves)
    assert kit.problems(data, after) == []
    kinds = {m.kind.split(":")[0] for m in plan.moves}
    assert kinds <= {"f", "r", "f r"}
    for move in plan.moves:
        ops = move.opcodes()
        assert {op["OP_ID"] for op in ops} <= {"OP_INSTANCE_MIGRATE",
                                               "OP_INSTANCE_REPLACE_DISKS"}
        for op in ops:
            if op["OP_ID"] == "OP_INSTANCE_REPLACE_DISKS":
                assert op["mode"] == "replace_new_secondary" and op["remote_node"]


def test_instances_leave_offline_nodes_and_never_go_to_unusable_ones() -> None:
    placement: kit.Placement = [("vm1", ["node1", "node2"], {"memory": 1024}),
                                ("vm2", ["node3"], {"template": "sharedfile"}),
                                ("vm3", ["node3"], {"template": "sharedfile"})]
    data = kit.build(5, placement)
    data["nodes"]["node1"]["offline"] = True
    data["nodes"]["node4"]["drained"] = True
    data["nodes"]["node5"]["vm_capable"] = False
    plan = _plan(data)
    assert plan.moves
    after = dict((n, w) for n, w, _ in kit.moved(placement, plan.moves))
    assert "node1" not in after["vm1"]
    for move in plan.moves:
        assert not set(move.new_nodes) - set(move.old_nodes) & {"node1", "node4", "node5"}


def test_exclusion_tags_are_spread() -> None:
    placement = [(f"vm{i}", ["node1"], {"template": "diskless", "tags": ["svc:web"]})
                 for i in range(3)]
    data = kit.build(3, placement)
    data["cluster_tags"] = ["htools:iextags:svc"]
    plan = _plan(data)
    after = kit.moved(placement, plan.moves)
    assert sorted(w[0] for _, w, _ in after) == ["node1", "node2", "node3"]


def test_vcpu_ratio_is_respected() -> None:
    placement = [(f"vm{i}", ["node1"], {"template": "diskless", "vcpus": 4}) for i in range(4)]
    data = kit.build(2, placement, cpus=4)
    for group in data["nodegroups"].values():
        group["ipolicy"]["vcpu-ratio"] = 3  # node2 (1 cpu reserved) takes 2 at most
    plan = _plan(data)
    after = kit.moved(placement, plan.moves)
    assert sum(1 for _, w, _ in after if w[0] == "node2") <= 2


def test_group_filter_and_unknown_group() -> None:
    data = kit.build(2, _shared_on_node1(2))
    assert [p.group for p in balance.balance(kit.parse(data), group="default")] == ["default"]
    with pytest.raises(ValueError, match="node group 'nope' not found"):
        balance.balance(kit.parse(data), group="nope")


def test_each_round_takes_the_best_move_of_a_full_search() -> None:
    for seed in range(3):
        cluster = kit.parse(alloc_kit.random_cluster(seed, 8, 40))
        [plan] = balance.balance(cluster)
        bal = balance.Balancer(cluster, next(iter(cluster.groups)))
        for move in plan.moves[:5]:
            best = min(c[0] for n in bal.nodes
                       if bal.movable(cluster.instances[n]) and (c := bal.best_for(n)))
            assert best == pytest.approx(move.score_after)
            bal.apply(move.instance, move.new_nodes)


def test_lazy_search_of_big_groups_ends_close_to_the_full_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = alloc_kit.random_cluster(7, 12, 90)
    [full] = balance.balance(kit.parse(data))
    monkeypatch.setattr(balance, "EXACT_LIMIT", 0)
    [lazy] = balance.balance(kit.parse(data))
    assert lazy.moves and lazy.final_score < lazy.initial_score
    assert lazy.final_score <= full.final_score * 1.1 + 0.05
    for move in lazy.moves:
        assert move.score_after < move.score_before
