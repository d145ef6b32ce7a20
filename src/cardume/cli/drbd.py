"""Watching DRBD replication from the master: ``gnt-instance watch-disks`` (also
``gnt-cluster watch-disks``), ``gnt-node list-drbd`` and the DRBD lines of
``gnt-instance info``.

Everything here renders the answer of the master's ``QueryDrbd`` (see
:mod:`cardume.master.drbd_query` for its shape): per instance, disk and node, the config's view
(node, role, minor) next to the node's ``/proc/drbd`` status. The progress bar is drawn
the way ``/proc/drbd`` draws it, so an operator used to ``watch cat /proc/drbd`` reads it
at a glance. The rendering functions are pure (tests feed them parsed real samples); the
handlers only add the socket and the redraw loop.

Only the standard library is imported: the CLI must start fast.
"""

from __future__ import annotations

import argparse
import sys
import time

from cardume import errors
from cardume.cli import listing, options

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

BAR_WIDTH = 20  # as /proc/drbd
CLEAR_SCREEN = "\x1b[H\x1b[2J"
DEFAULT_INTERVAL = 2.0
NO_DRBD = "No instances with drbd disks."

WATCH_FIELDS = (
    listing.Field("instance", "Instance"), listing.Field("disk", "Disk"),
    listing.Field("node", "Node"), listing.Field("minor", "Minor", "number"),
    listing.Field("role", "Role"), listing.Field("state", "State"),
    listing.Field("disks", "Disk/Peer"))
LIST_DRBD_FIELDS = (
    listing.Field("node", "Node"), listing.Field("minor", "Minor", "number"),
    listing.Field("instance", "Instance"), listing.Field("disk", "Disk", "number"),
    listing.Field("role", "Role"), listing.Field("peer", "PeerNode"))

# Local disk states that no waiting repairs: the disk was detached (I/O error) or is gone.
_LOST_DISK = frozenset({"Diskless", "Failed"})


# --- pieces of text -------------------------------------------------------------------------

def progress_bar(percent: float) -> str:
    """``[=========>..........]``, drawn as DRBD 8.4 draws it in /proc/drbd (one ``=`` per
    5 % done, then ``>``, dots for the rest)."""
    done = max(0, min(BAR_WIDTH, int(round(percent * 10)) // 50))
    return "[" + "=" * max(0, done - 1) + ">" + "." * (BAR_WIDTH - done) + "]"


def format_speed(kib_s: int | float | None) -> str:
    if kib_s is None:
        return "? KiB/s"
    if kib_s >= 1024:
        return f"{kib_s / 1024:.1f} MiB/s"
    return f"{kib_s:.0f} KiB/s"


def format_left(seconds: int | None) -> str:
    """``0:00:04``, as /proc/drbd's ``finish:``."""
    if seconds is None:
        return "?:??:??"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def sync_progress(status: dict[str, Any]) -> str | None:
    """``[=========>..........] 50.8%  31.8 MiB/s  0:00:04 left`` while a resync runs."""
    percent = status.get("sync_percent")
    if percent is None:
        return None
    return (f"{progress_bar(percent)} {percent:.1f}%  "
            f"{format_speed(status.get('sync_speed_kib_s'))}  "
            f"{format_left(status.get('sync_finish_s'))} left")


def _pair(first: Any, second: Any) -> str:
    return f"{first or '?'}/{second or '?'}"


def side_problem(inst: str, disk: dict[str, Any], side: dict[str, Any]) -> str | None:
    """Why this side of a disk will not get in sync by waiting (None: it may)."""
    where = f"disk {disk['iv_name']} of {inst} on {side['node']}"
    if side.get("error"):
        return f"{where}: no status ({side['error']})"
    status = side.get("status")
    if status is None:
        return (f"{where} is not active (minor {side['minor']} not set up): "
                f"gnt-instance activate-disks {inst}")
    if status.get("cstate") == "StandAlone":
        return (f"{where} is StandAlone, not connected to its peer (refused, or the data "
                "diverged: split brain): see gnt-cluster verify-disks")
    if status.get("disk") in _LOST_DISK:
        return f"{where} has lost its local disk ({status['disk']}): see gnt-instance " \
               "replace-disks"
    return None


def disk_state(inst: str, disk: dict[str, Any]) -> str:
    """``problem``, ``syncing``, ``degraded`` or ``ok`` for one disk (both sides)."""
    sides = disk.get("sides") or []
    if any(side_problem(inst, disk, side) for side in sides):
        return "problem"
    statuses = [side["status"] for side in sides]
    if any(st.get("resyncing") for st in statuses):
        return "syncing"
    if any(st.get("degraded") for st in statuses):
        return "degraded"
    return "ok"


# --- gnt-instance watch-disks ---------------------------------------------------------------

def watch_rows(data: dict[str, Any]) -> tuple[list[list[Any]], dict[int, list[str]]]:
    """Table rows (one per disk side) and, by row number, the lines shown under a row:
    the resync progress, or why the node gave no status."""
    rows: list[list[Any]] = []
    extra: dict[int, list[str]] = {}
    for inst in data.get("instances") or []:
        for disk in inst.get("disks") or []:
            for side in disk.get("sides") or []:
                status, error = side.get("status"), side.get("error")
                if error:
                    state, disks, notes = "(no data)", "-", [f"! {error}"]
                elif status is None:
                    state, disks, notes = "(not active)", "-", []
                else:
                    state = str(status.get("cstate"))
                    disks = _pair(status.get("disk"), status.get("peer_disk"))
                    progress = sync_progress(status)
                    notes = [progress] if progress else []
                if notes:
                    extra[len(rows)] = notes
                rows.append([inst["name"], disk["iv_name"], side["node"], side["minor"],
                             side["role"], state, disks])
    return rows, extra


def summary(data: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    total = 0
    for inst in data.get("instances") or []:
        for disk in inst.get("disks") or []:
            total += 1
            state = disk_state(inst["name"], disk)
            counts[state] = counts.get(state, 0) + 1
    words = {"ok": "in sync", "syncing": "syncing", "degraded": "degraded",
             "problem": "with problems"}
    parts = [f"{counts[k]} {w}" for k, w in words.items() if counts.get(k)]
    return f"{total} disk{'s' if total != 1 else ''}: {', '.join(parts) or 'none'}"


def format_snapshot(data: dict[str, Any], headers: bool = True,
                    interval: float | None = None, now: float | None = None) -> str:
    """One frame of watch-disks: a title line and the table (only the rows with
    ``--no-headers``), with the progress bars under the rows of syncing nodes."""
    rows, extra = watch_rows(data)
    text = listing.format_table(WATCH_FIELDS, rows, headers=headers)
    table = text.split("\n") if text else []
    offset = 1 if headers else 0
    lines: list[str] = []
    if headers:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        every = f" (every {interval:g}s, Ctrl-C to stop)" if interval else ""
        lines.append(f"DRBD at {stamp}: {summary(data)}{every}")
        lines.append(table[0])
    for number, line in enumerate(table[offset:]):
        lines.append(line)
        lines.extend(f"    {note}" for note in extra.get(number, []))
    return "\n".join(lines)


def assess(data: dict[str, Any]) -> tuple[bool, str | None]:
    """``(in sync, problem)``: every disk connected and UpToDate on both sides, or the
    first thing waiting will not fix (with how many more there are)."""
    problems = []
    synced = True
    for inst in data.get("instances") or []:
        for disk in inst.get("disks") or []:
            for side in disk.get("sides") or []:
                problem = side_problem(inst["name"], disk, side)
                if problem:
                    problems.append(problem)
                elif side["status"].get("resyncing") or side["status"].get("degraded"):
                    synced = False
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return False, problems[0] + more
    return synced, None


def check_selection(data: dict[str, Any], names: list[str]) -> None:
    """A named instance without drbd disks is a mistake worth saying, not an empty view."""
    if not names:
        return
    for inst in data.get("instances") or []:
        if not inst.get("disks"):
            raise errors.WrongInput(f"instance '{inst['name']}' has no drbd disks (disk "
                                    f"template {inst.get('disk_template')})")


def positive_interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise errors.WrongInput(f"invalid interval {value!r}: expected a positive number "
                                "of seconds")
    return seconds


def add_watch_options(p: argparse.ArgumentParser, names: bool = True) -> None:
    p.add_argument("--interval", type=positive_interval, default=DEFAULT_INTERVAL,
                   help="seconds between redraws (default 2)")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--until-synced", action="store_true",
                   help="exit 0 once every disk is in sync; non-zero at once if a disk "
                   "cannot get there by waiting (StandAlone, not active, node unreachable)")
    options.NO_HEADERS.add(p, help="only the table rows: no title, no column headers")
    if names:
        p.add_argument("instances", nargs="*", help="instances (default: every instance "
                       "with drbd disks)")


def run_watch(fetch: Callable[[], dict[str, Any]], *, interval: float, once: bool,
              until_synced: bool, headers: bool, names: list[str], out: TextIO,
              tty: bool, sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.monotonic) -> int:
    """The redraw loop; ``fetch`` returns one QueryDrbd answer. On a terminal each frame
    replaces the last; elsewhere (a pipe, a log) frames follow one another."""
    first = True
    try:
        while True:
            started = clock()
            data = fetch()
            check_selection(data, names)
            if not data.get("instances"):
                out.write(NO_DRBD + "\n")
                return 0
            frame = format_snapshot(data, headers, None if once else interval)
            if tty and not once:
                out.write(CLEAR_SCREEN)
            elif not first:
                out.write("\n")
            out.write(frame + "\n")
            out.flush()
            first = False
            if until_synced:
                synced, problem = assess(data)
                if problem:
                    raise errors.WrongState(problem)
                if synced:
                    return 0
                if once:
                    raise errors.WrongState(f"not in sync yet: {summary(data)}")
            if once:
                return 0
            sleep(max(0.0, interval - (clock() - started)))
    except KeyboardInterrupt:  # the way out of a watch: not an error
        if tty:
            out.write("\n")
        return 0


def watch(args: argparse.Namespace) -> int:
    from cardume.master.client import Client
    names = list(getattr(args, "instances", None) or [])
    with Client() as client:
        return run_watch(lambda: client.call("QueryDrbd", names or None, None),
                         interval=args.interval, once=args.once,
                         until_synced=args.until_synced, headers=not args.no_headers,
                         names=names, out=sys.stdout, tty=sys.stdout.isatty())


# --- gnt-instance info ----------------------------------------------------------------------

DRBD_MAJOR = 147
"""The block major number of every DRBD device (the kernel's, fixed)."""


def info_status(side: dict[str, Any]) -> str:
    """Ganeti's ``on primary:`` text: ``/dev/drbd0 (147:0) in sync, status ok`` (the
    device, its major:minor numbers, its sync and health)."""
    if side.get("error"):
        return f"no data ({side['error']})"
    status = side.get("status")
    if status is None:
        return "not active"
    text = f"/dev/drbd{side['minor']} ({DRBD_MAJOR}:{side['minor']})"
    if status.get("sync_percent") is not None:
        finish = status.get("sync_finish_s")
        eta = f"{finish}s" if finish is not None else "unknown"
        sync = f"*RECOVERING* {status['sync_percent']:.1f}%, ETA {eta}"
    elif not status.get("connected"):
        sync = f"*NOT CONNECTED* ({status.get('cstate')})"
    elif status.get("disk") == status.get("peer_disk") == "UpToDate":
        sync = "in sync"
    else:
        sync = _pair(status.get("disk"), status.get("peer_disk"))
    health = "*DEGRADED*" if status.get("degraded") else "ok"
    if status.get("disk") in _LOST_DISK:
        health += " *MISSING DISK*"
    return f"{text} {sync}, status {health}"


def _info_node(side: dict[str, Any]) -> list[tuple[str, Any]]:
    data: list[tuple[str, Any]] = [
        ("node", f"{side['node']} ({side['role']}, minor {side['minor']})")]
    status = side.get("status")
    if side.get("error"):
        return [*data, ("error", str(side["error"]))]
    if status is None:
        return [*data, ("state", "not set up on this node")]
    data.extend([("role", _pair(status.get("role"), status.get("peer_role"))),
                 ("connection", str(status.get("cstate"))),
                 ("disk", _pair(status.get("disk"), status.get("peer_disk")))])
    if status.get("sync_percent") is not None:
        data.append(("resync", f"{status['sync_percent']:.1f}% done, "
                               f"{format_speed(status.get('sync_speed_kib_s'))}, "
                               f"{format_left(status.get('sync_finish_s'))} left"))
    return data


def info_lines(disk: dict[str, Any]) -> list[tuple[str, Any]]:
    """What ``gnt-instance info`` adds under a drbd disk: one ``on primary/secondary``
    line per side, then a ``drbd`` block with each node's view."""
    sides = disk.get("sides") or []
    lines: list[tuple[str, Any]] = [(f"on {side['role']}", info_status(side)) for side in sides]
    if sides:
        lines.append(("drbd", [_info_node(side) for side in sides]))
    return lines


# --- gnt-node list-drbd ---------------------------------------------------------------------

def list_drbd_rows(data: dict[str, Any], node: str) -> tuple[list[list[Any]], list[str]]:
    """Rows of ``list-drbd`` for ``node``, by minor, and the notes about its orphans."""
    rows: list[list[Any]] = []
    for inst in data.get("instances") or []:
        for disk in inst.get("disks") or []:
            sides = disk.get("sides") or []
            for side in sides:
                if side["node"] != node:
                    continue
                peers = [s["node"] for s in sides if s is not side]
                rows.append([node, side["minor"], inst["name"], disk["index"], side["role"],
                             peers[0] if peers else "-"])
    notes = []
    for orphan in (data.get("nodes") or {}).get(node, {}).get("orphans") or []:
        minor, status = orphan["minor"], orphan.get("status") or {}
        rows.append([node, minor, "-", "-", "-", "-"])
        notes.append(f"Note: minor {minor} on {node} ({status.get('cstate')}, "
                     f"{_pair(status.get('disk'), status.get('peer_disk'))}) belongs to "
                     "no disk of the cluster (left over by a failed job or set up by hand); "
                     f"once nothing uses it, 'drbdsetup down resource{minor}' on the node "
                     "releases it")
    rows.sort(key=lambda row: int(row[1]))
    return rows, notes


def add_list_drbd_options(p: argparse.ArgumentParser) -> None:
    options.add(p, options.NO_HEADERS, options.SEPARATOR)
    p.add_argument("node", help="name of the node")


def list_drbd(args: argparse.Namespace) -> int:
    from cardume.master.client import Client
    with Client() as client:
        data = client.call("QueryDrbd", None, [args.node])
    node = (data.get("asked") or [args.node])[0]  # the full name of a short one
    error = (data.get("nodes") or {}).get(node, {}).get("error")
    if error:
        print(f"Warning: can't get data from node {node}: {error}; orphan minors not "
              "checked", file=sys.stderr)
    rows, notes = list_drbd_rows(data, node)
    text = listing.format_table(LIST_DRBD_FIELDS, rows, headers=not args.no_headers,
                                separator=args.separator)
    if text:
        print(text)
    for note in notes:
        print(note, file=sys.stderr)
    return 0
