"""cardume-watcher: one pass of the cluster watcher, then exit (a systemd timer runs it every
5 minutes on every node; it acts only on the master).

A pass, as Ganeti's ganeti-watcher: nothing while paused (``gnt-cluster watcher pause``);
archive the jobs that ended more than 6 hours ago; start again the instances that should
run but don't (ERROR_down, a few attempts each); after a node rebooted, activate the disks
of the instances on it that should be up; verify-disks. Each decision goes to the log file
(``/var/log/cardume/watcher.log``) and, with the last pass's time, to the state file that
``gnt-cluster watcher info`` shows.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from cardume import __version__, errors, paths
from cardume.rules.watcher_pause import read_pause
from cardume.watcher import decide, run, state

log = logging.getLogger("cardume.watcher")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cardume-watcher", description="cardume cluster watcher: "
                                "one pass, on the master node")
    p.add_argument("--version", action="version", version=f"cardume-watcher {__version__}")
    p.add_argument("-d", "--debug", action="store_true", help="log debug messages (also to "
                   "standard error)")
    p.add_argument("-A", "--job-age", default="6h", metavar="JOB_AGE",
                   help="archive jobs that ended longer ago than this (default 6h)")
    p.add_argument("--ignore-pause", action="store_true", help="run even if paused")
    p.add_argument("--no-verify-disks", action="store_true", help="do not verify disks")
    p.add_argument("--max-tries", type=int, default=decide.MAX_TRIES, metavar="N",
                   help=f"start attempts per instance (default {decide.MAX_TRIES})")
    p.add_argument("--wait", type=float, default=run.Options.wait, metavar="SECONDS",
                   help="how long the pass waits for its jobs' ends")
    return p


def setup_logging(node: paths.NodePaths, debug: bool) -> None:
    """The node's watcher.log (private) at info (debug with -d); warnings to stderr too."""
    logfile = node.logfile("watcher")
    for handler in list(log.handlers):  # a second main() in one process logs once
        log.removeHandler(handler)
        handler.close()
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False
    formatter = logging.Formatter("%(asctime)s: cardume-watcher pid=%(process)d "
                                  "%(levelname)s %(message)s")
    try:
        os.makedirs(node.log_dir, mode=0o700, exist_ok=True)
        os.close(os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                         0o600))
        to_file = logging.FileHandler(logfile, encoding="utf-8")
        to_file.setFormatter(formatter)
        log.addHandler(to_file)
    except OSError as err:
        print(f"cardume-watcher: can't write {logfile}: {err}", file=sys.stderr)
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.DEBUG if debug else logging.WARNING)
    to_stderr.setFormatter(logging.Formatter("cardume-watcher: %(levelname)s %(message)s"))
    log.addHandler(to_stderr)


def _log_decision(decision: decide.Decision) -> None:
    failed = decision.outcome is not None and decision.outcome != "success"
    level = logging.WARNING if failed or decision.action == "give-up" else logging.INFO
    log.log(level, "%s", decision.line())


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        job_age = decide.parse_timespec(args.job_age)
    except ValueError as err:
        print(f"cardume-watcher: invalid --job-age {args.job_age!r}: {err}", file=sys.stderr)
        return 2
    if args.max_tries < 1:
        print(f"cardume-watcher: invalid --max-tries {args.max_tries}: expected 1 or more",
              file=sys.stderr)
        return 2
    node = paths.local_node_paths()
    setup_logging(node, args.debug)
    ssconf = node.read_ssconf() or {}
    me = node.read_identity().get("name")
    if not ssconf.get("master_node"):
        log.debug("this node (%s) is not part of a cluster: nothing to do", me)
        return 0
    if ssconf["master_node"] != me:
        log.debug("this node (%s) is not the master (%s): nothing to do", me,
                  ssconf["master_node"])
        return 0
    until = read_pause(node.watcher_pause)
    if until is not None and not args.ignore_pause:
        log.info("paused until %s: nothing done", time.ctime(until))
        return 0
    opts = run.Options(job_age=job_age, max_tries=args.max_tries,
                       verify_disks=not args.no_verify_disks, wait=max(args.wait, 0.0))
    try:
        with state.locked(node.watcher_state):
            return _pass(node, opts)
    except state.Busy:
        log.info("another watcher pass is running: nothing done")
        return 0


def _pass(node: paths.NodePaths, opts: run.Options) -> int:
    from cardume.master.client import Client
    memory = state.load(node.watcher_state)
    began = time.time()
    log.debug("pass begins on master %s", node.read_identity().get("name"))
    try:
        with Client(node.master_socket) as client:
            decisions = run.run_pass(client, memory, opts)
    except errors.CardumeError as err:
        log.error("pass abandoned: %s", err)
        return 1
    for decision in decisions:
        _log_decision(decision)
    memory.last_pass = {"start": began, "end": time.time(),
                        "master": node.read_identity().get("name"),
                        "decisions": [d.to_dict() for d in decisions]}
    state.save(node.watcher_state, memory)
    log.info("pass done: %d decision(s)", len(decisions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
