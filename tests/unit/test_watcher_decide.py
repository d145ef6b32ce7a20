"""The watcher's decisions (cardume.watcher.decide) as Ganeti's watcher makes them, plus
cardume's rule that an instance a job is pending on is left alone."""

from __future__ import annotations

import pytest

from cardume.watcher import decide
from cardume.watcher.decide import Instance, Job, Node


def inst(name: str, status: str, **values: object) -> Instance:
    return Instance(name=name, status=status, **values)  # type: ignore[arg-type]


def actions(plan: decide.RestartPlan) -> list[tuple[str, str]]:
    return [(d.target, d.action) for d in plan.decisions]


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("30s", 30), ("30m", 1800), ("1h", 3600), ("2d", 172800), ("1w", 604800),
    ("0", 0), ("-5", -5)])
def test_time_specifications_as_ganeti_reads_them(text: str, seconds: int) -> None:
    assert decide.parse_timespec(text) == seconds


@pytest.mark.parametrize(("text", "message"), [
    ("1x", "Invalid time specification '1x'"), ("1.5h", "Invalid time specification '1.5'"),
    ("1H", "Invalid time specification '1H'"),
    ("h", "Invalid time specification (only suffix passed)"),
    ("", "Empty time specification passed")])
def test_bad_time_specifications_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        decide.parse_timespec(text)
    assert str(caught.value) == message


# --- restarts -----------------------------------------------------------------------------

def test_an_error_down_instance_is_started_and_its_attempt_counted() -> None:
    plan = decide.plan_restarts([inst("vm1", "ERROR_down")], {}, {})
    assert plan.start == ["vm1"] and plan.restarts == {"vm1": 1}
    assert plan.decisions[0].reason == "marked up but not running (ERROR_down); attempt 1 of 5"
    plan = decide.plan_restarts([inst("vm1", "ERROR_down")], {"vm1": 4}, {})
    assert plan.start == ["vm1"] and plan.restarts == {"vm1": 5}


def test_after_five_attempts_the_watcher_gives_up_once_then_leaves_it() -> None:
    plan = decide.plan_restarts([inst("vm1", "ERROR_down")], {"vm1": 5}, {})
    assert plan.start == [] and actions(plan) == [("instance vm1", "give-up")]
    assert plan.restarts == {"vm1": 6}
    plan = decide.plan_restarts([inst("vm1", "ERROR_down")], {"vm1": 6}, {})
    assert plan.start == [] and actions(plan) == [("instance vm1", "leave")]
    assert plan.restarts == {"vm1": 6}
    plan = decide.plan_restarts([inst("vm1", "ERROR_down")], {"vm1": 2}, {}, max_tries=2)
    assert plan.start == [] and actions(plan) == [("instance vm1", "give-up")]


def test_seen_running_the_count_is_forgotten() -> None:
    plan = decide.plan_restarts([inst("vm1", "running")], {"vm1": 3}, {})
    assert plan.restarts == {}
    assert [d.line() for d in plan.decisions] == [
        "instance vm1: reset (running again after 3 start attempt(s))"]
    # nothing to say of a running instance the watcher never started
    assert decide.plan_restarts([inst("vm1", "running")], {}, {}).decisions == []


@pytest.mark.parametrize("status", ["ADMIN_down", "ADMIN_offline"])
def test_what_the_admin_chose_is_never_started(status: str) -> None:
    plan = decide.plan_restarts([inst("vm1", status, admin_state="down")], {}, {})
    assert plan.start == [] and plan.decisions == []


@pytest.mark.parametrize(("status", "words"), [
    ("USER_down", "its guest shut itself down"),
    ("ERROR_nodedown", "does not answer"),
    ("ERROR_nodeoffline", "offline"),
    ("ERROR_wrongnode", "gnt-instance migrate --cleanup"),
    ("ERROR_up", "runs though marked down")])
def test_unknown_or_odd_states_are_left_alone_saying_why(status: str, words: str) -> None:
    plan = decide.plan_restarts([inst("vm1", status)], {}, {})
    assert plan.start == [] and actions(plan) == [("instance vm1", "leave")]
    assert words in plan.decisions[0].reason


def test_a_node_down_keeps_the_count_another_state_forgets_it() -> None:
    plan = decide.plan_restarts([inst("vm1", "ERROR_nodedown"), inst("vm2", "ADMIN_down")],
                                {"vm1": 2, "vm2": 2}, {})
    assert plan.restarts == {"vm1": 2}
    assert ("instance vm2", "reset") in actions(plan)


def test_an_instance_gone_from_the_cluster_is_forgotten() -> None:
    assert decide.plan_restarts([], {"gone": 3}, {}).restarts == {}


def test_a_pending_job_keeps_a_start_from_being_queued() -> None:
    plan = decide.plan_restarts([inst("vm1", "ERROR_down")], {"vm1": 2}, {"vm1": 17})
    assert plan.start == [] and plan.restarts == {"vm1": 2}
    assert plan.decisions[0].line() == (
        "instance vm1: leave (marked up but not running, and job 17 is pending on it: not "
        "queueing a start behind it)")


# --- which jobs make an instance busy ----------------------------------------------------

def test_jobs_pending_on_an_instance_by_name_or_through_its_nodes() -> None:
    insts = [inst("vm1.example.com", "ERROR_down", pnode="node1", snodes=("node2",)),
             inst("vm2.example.com", "ERROR_down", pnode="node3"),
             inst("vm3.example.com", "ERROR_down", pnode="node3")]
    jobs = [
        Job(1, "success", ({"OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": "vm3"},)),
        Job(2, "waiting", ({"OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": "vm1"},)),
        Job(3, "running", ({"OP_ID": "OP_NODE_EVACUATE", "node_name": "node2"},)),
        Job(4, "queued", ({"OP_ID": "OP_TEST_DELAY", "node_name": "node3"},)),
        Job(5, "queued", ({"OP_ID": "OP_INSTANCE_MULTI_ALLOC",
                           "instances": [{"instance_name": "vm2.example.com"}]},)),
    ]
    assert decide.busy_instances(jobs, insts) == {"vm1.example.com": 2, "vm2.example.com": 5}


def test_a_short_name_matches_only_at_a_dot() -> None:
    insts = [inst("vm10", "ERROR_down")]
    jobs = [Job(1, "running", ({"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "vm1"},))]
    assert decide.busy_instances(jobs, insts) == {}


# --- reboots and disks --------------------------------------------------------------------

def test_a_changed_boot_id_is_a_reboot_a_first_sight_is_not() -> None:
    nodes = [Node("node1", "a"), Node("node2", "b2"), Node("node3", "c"),
             Node("node4", None), Node("node5", "e2", offline=True)]
    known = {"node1": "a", "node2": "b", "node4": "d", "node5": "e"}
    assert decide.rebooted_nodes(nodes, known) == ["node2"]
    kept = decide.boot_ids_to_keep(nodes, known)
    assert kept == {"node1": "a", "node2": "b2", "node3": "c", "node4": "d", "node5": "e"}
    assert decide.boot_ids_to_keep(nodes, known, retry=["node2"])["node2"] == "b"
    assert "gone" not in decide.boot_ids_to_keep(nodes, {**known, "gone": "x"})


def test_disks_of_instances_that_should_be_up_on_a_rebooted_node() -> None:
    nodes = [Node("node1", "a"), Node("node2", "b"), Node("node3", "c", offline=True)]
    insts = [
        inst("up-primary", "running", pnode="node2"),
        inst("up-secondary", "running", pnode="node1", snodes=("node2",),
             disk_template="drbd"),
        inst("activated", "ADMIN_down", admin_state="down", disks_active=True, pnode="node2"),
        inst("stopped", "ADMIN_down", admin_state="down", pnode="node2"),
        inst("diskless", "running", pnode="node2", disk_template="diskless"),
        inst("elsewhere", "running", pnode="node1"),
        inst("started", "ERROR_down", pnode="node2"),
        inst("busy", "running", pnode="node2"),
        inst("offline-peer", "running", pnode="node2", snodes=("node3",),
             disk_template="drbd"),
    ]
    names, decisions, retry = decide.plan_disk_activations(
        insts, nodes, ["node2"], started=["started"], busy={"busy": 9})
    assert names == ["activated", "up-primary", "up-secondary"]
    by_name = {d.target.split()[1]: d for d in decisions}
    assert by_name["started"].action == "leave" and "its start" in by_name["started"].reason
    assert by_name["busy"].action == "leave" and "job 9" in by_name["busy"].reason
    assert by_name["offline-peer"].action == "leave"
    assert {"stopped", "diskless", "elsewhere"}.isdisjoint(by_name)
    assert retry == {"node2"}


def test_verify_disks_after_a_reboot_or_while_mirrors_should_be_up() -> None:
    plain = [inst("vm1", "running")]
    drbd = [inst("vm2", "running", disk_template="drbd")]
    assert decide.wants_verify_disks(plain, []) is None
    assert decide.wants_verify_disks(plain, ["node1"]) == "after a node reboot"
    assert decide.wants_verify_disks(drbd, []) == "mirrored disks should be up"
    down = [inst("vm2", "ADMIN_down", admin_state="down", disk_template="drbd")]
    assert decide.wants_verify_disks(down, []) is None


def test_a_decision_round_trips_through_the_state_file() -> None:
    made = decide.Decision("instance vm1", "start", "why", job=3, outcome="success")
    assert decide.Decision.from_dict(made.to_dict()) == made
    assert made.line() == "instance vm1: start (why); job 3: success"
