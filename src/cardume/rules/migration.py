"""The ``gnt-instance migrate --cleanup`` decision: where an interrupted migration left the
instance, and what happens to each side's QEMU.

Each node classifies its own side (node/hypervisor/kvm_migrate.side_state, from QEMU's
query-status and query-migrate); the master asks both, decides here, and sends each node
its action. kvm_migrate.cleanup runs the same decision when both QEMUs are at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Where a side stands, from query-status and query-migrate.
ABSENT = "absent"            # no QEMU process (the caller passes None)
RUNNING = "running"          # source/target: the guest runs (a migration may be in flight)
MIGRATING = "migrating"      # source: paused by an unfinished migration
HANDED_OVER = "handed-over"  # source: the outgoing migration completed
STOPPED = "stopped"          # source: paused, no migration under way or completed
WAITING = "waiting"          # target: still incoming (never ran the guest)
LOADED = "loaded"            # target: state received, paused (not running)

KEEP, RESUME, QUIT, KILL, LEAVE = "keep", "resume", "quit", "kill", "leave"


@dataclass
class CleanupPlan:
    """The decision: where the instance runs (``"source"``, ``"target"`` or None when it
    can't be decided safely, then ``error`` says why) and what happens to each side's QEMU
    (None for an absent one):

    * ``keep``: it keeps the instance; any migration, mirror job (source) or NBD server
      (target) left over is ended;
    * ``resume``: the same, then ``cont``;
    * ``quit`` (source) / ``kill`` (target): the caller ends the process (a target is
      killed: it never ran the guest, or holds a stale copy);
    * ``leave``: untouched, for an operator to look at."""
    runs_on: str | None
    source: str | None
    target: str | None
    reason: str
    error: str | None = None
    states: dict[str, str] = field(default_factory=dict)


def settling(source: str, target: str) -> bool:
    """True while the target may just be loading the last of a completed migration: it is
    about to run the guest, so the caller reads both sides again for a few seconds before
    it decides (deciding now would resume the source and kill the target)."""
    return source == HANDED_OVER and target == WAITING


def decide_cleanup(source: str, target: str) -> CleanupPlan:
    """The ``--cleanup`` decision table (source state x target state):

    ===========================  ==============  ========  ==========  =======
    source                       target          runs on   source      target
    ===========================  ==============  ========  ==========  =======
    running                      absent/waiting  source    keep¹       kill
    migrating/stopped            absent/waiting  source    resume¹     kill
    running/migrating/stopped    loaded          source    keep/res.¹  kill²
    handed-over                  running         target    quit        keep
    handed-over                  loaded          target    quit        resume
    handed-over                  waiting         source    resume      kill³
    handed-over                  absent          --        leave       --  ⁴
    absent                       running         target    --          keep
    absent                       loaded          target    --          resume
    absent                       waiting/absent  --        --          kill ⁵
    any but handed-over/absent   running         --        leave       leave ⁶
    ===========================  ==============  ========  ==========  =======

    ¹ after cancelling any migration and mirror job still under way (QEMU itself resumes
      a guest it paused for the switch-over when the migration is cancelled).
    ² a target that never ran the guest holds a stale copy; the source stayed authoritative.
    ³ the target never ran the guest, so the source's state (and, mirrored or not, its
      disks) is the latest. Callers first give such a target a few seconds
      (:func:`settling`): it may just be loading the last of the state.
    ⁴ refused: the target took the guest and is gone; it may have run and written to the
      disks, so the source's copy is not resumed: start the instance afresh.
    ⁵ refused: the guest runs nowhere; start it.
    ⁶ refused: the guest runs on the target while the source has not handed it over
      (running there too, or may resume): a split brain for an operator.
    """
    states = {"source": source, "target": target}
    if source in (RUNNING, MIGRATING, STOPPED) and target != RUNNING:
        return CleanupPlan("source", KEEP if source == RUNNING else RESUME,
                           None if target == ABSENT else KILL,
                           "the migration did not complete; the source is authoritative",
                           states=states)
    if source == HANDED_OVER and target in (RUNNING, LOADED):
        return CleanupPlan("target", QUIT, KEEP if target == RUNNING else RESUME,
                           "the migration completed; the target has the instance",
                           states=states)
    if source == HANDED_OVER and target == WAITING:
        return CleanupPlan("source", RESUME, KILL,
                           "the target never ran the instance; the source's state is the "
                           "latest", states=states)
    if source == HANDED_OVER:
        return CleanupPlan(None, LEAVE, None, "handed over to a target that is gone",
                           "the instance was handed over to the target, which is gone; it "
                           "may have run there, so it is not resumed on the source: start it "
                           "afresh", states=states)
    if source == ABSENT and target in (RUNNING, LOADED):
        return CleanupPlan("target", None, KEEP if target == RUNNING else RESUME,
                           "only the target has the instance", states=states)
    if source == ABSENT:
        return CleanupPlan(None, None, None if target == ABSENT else KILL,
                           "running nowhere",
                           "the instance runs on neither node; start it", states=states)
    return CleanupPlan(None, LEAVE, LEAVE, "running on both nodes",
                       f"the instance is {source} on the source and {target} on the target; "
                       "refusing to choose, check both and stop one", states=states)
