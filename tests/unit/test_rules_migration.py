"""The migrate --cleanup decision table, which the master runs on the states its nodes
report and the kvm hypervisor runs with both QEMUs at hand."""

from __future__ import annotations

import pytest

from cardume.node.hypervisor import kvm_migrate
from cardume.rules import migration as m


@pytest.mark.parametrize(("source", "target", "runs_on", "src_action", "dst_action"), [
    (m.RUNNING, m.ABSENT, "source", m.KEEP, None),
    (m.RUNNING, m.WAITING, "source", m.KEEP, m.KILL),
    (m.MIGRATING, m.WAITING, "source", m.RESUME, m.KILL),
    (m.STOPPED, m.ABSENT, "source", m.RESUME, None),
    (m.STOPPED, m.LOADED, "source", m.RESUME, m.KILL),
    (m.RUNNING, m.LOADED, "source", m.KEEP, m.KILL),
    (m.HANDED_OVER, m.RUNNING, "target", m.QUIT, m.KEEP),
    (m.HANDED_OVER, m.LOADED, "target", m.QUIT, m.RESUME),
    (m.HANDED_OVER, m.WAITING, "source", m.RESUME, m.KILL),
    (m.HANDED_OVER, m.ABSENT, None, m.LEAVE, None),
    (m.ABSENT, m.RUNNING, "target", None, m.KEEP),
    (m.ABSENT, m.LOADED, "target", None, m.RESUME),
    (m.ABSENT, m.WAITING, None, None, m.KILL),
    (m.ABSENT, m.ABSENT, None, None, None),
    (m.RUNNING, m.RUNNING, None, m.LEAVE, m.LEAVE),
    (m.MIGRATING, m.RUNNING, None, m.LEAVE, m.LEAVE),
    (m.STOPPED, m.RUNNING, None, m.LEAVE, m.LEAVE),
])
def test_cleanup_decision_table(source: str, target: str, runs_on: str | None,
                                src_action: str | None, dst_action: str | None) -> None:
    plan = m.decide_cleanup(source, target)
    assert (plan.runs_on, plan.source, plan.target) == (runs_on, src_action, dst_action)
    assert (plan.error is None) == (runs_on is not None)
    assert plan.states == {"source": source, "target": target}
    if plan.error is not None:
        assert "\n" not in plan.error


def test_only_a_completed_handover_to_a_loading_target_waits() -> None:
    states = (m.RUNNING, m.MIGRATING, m.HANDED_OVER, m.STOPPED, m.WAITING, m.LOADED,
              m.ABSENT)
    waiting = {(s, t) for s in states for t in states if m.settling(s, t)}
    assert waiting == {(m.HANDED_OVER, m.WAITING)}


def test_the_hypervisor_decides_with_the_same_table() -> None:
    assert kvm_migrate.decide_cleanup is m.decide_cleanup
    assert (kvm_migrate.ABSENT, kvm_migrate.KILL) == (m.ABSENT, m.KILL)
