"""gnt-cluster watcher {pause DURATION | continue | info}: Ganeti's syntax and lines.

The pause goes through the master, which writes it on itself and the master candidates (so
a new master's watcher keeps it). ``info`` reads the master node's own files: the pause,
then (cardume's addition, after Ganeti's line) when the watcher last ran and what it
decided.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from cardume import errors, paths

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any


def build(sub: Any) -> None:
    p = sub.add_parser("watcher", help="pause the watcher (maintenance), let it continue, "
                       "or show its state: watcher {pause DURATION | continue | info}",
                       usage="%(prog)s {pause DURATION | continue | info}")
    p.add_argument("words", nargs="*", metavar="{pause DURATION,continue,info}",
                   help="DURATION: a number of seconds, or with a suffix s, m, h, d or w")
    p.set_defaults(func=watcher)


def parse_timespec(text: str) -> int:
    """Seconds in Ganeti's time specification (``90``, ``30m``, ``1h``, ``2d``, ``1w``)."""
    from cardume.watcher.decide import parse_timespec as parse
    try:
        return parse(text)
    except ValueError as err:
        raise errors.WrongInput(str(err)) from None


def pause_line(until: float | None, now: float | None = None) -> str:
    if until is None or until < (time.time() if now is None else now):
        return "The watcher is not paused."
    return f"The watcher is paused until {time.ctime(until)}."


def watcher(args: argparse.Namespace) -> int:
    words = list(args.words)
    if not words:
        raise errors.WrongInput("Command watcher expects at least 1 argument(s)")
    if len(words) > 2:
        raise errors.WrongInput("Command watcher expects only 2 argument(s)")
    command = words[0]
    if command not in ("pause", "continue", "info"):
        raise errors.WrongInput(f"Command '{command}' is not valid.")
    if command == "pause" and len(words) < 2:
        raise errors.WrongInput("Missing pause duration")
    if command == "info":
        for line in info_lines(_master_paths()):
            print(line)
        return 0
    until = time.time() + parse_timespec(words[1]) if command == "pause" else None
    from cardume.master.client import Client
    with Client() as client:
        reply = client.call("SetWatcherPause", until)
    for node, message in sorted((reply.get("failed") or {}).items()):
        print(f"Warning: the pause could not be written on {node}: {message}",
              file=sys.stderr)
    print(pause_line(reply.get("until")) if command == "pause"
          else "The watcher is no longer paused.")
    return 0


def _master_paths() -> paths.NodePaths:
    """The master node's files (this node's, on a real cluster: commands run there)."""
    from cardume.master.client import master_socket_path
    master_socket_path()  # refuses, as every command does, when this isn't the master
    root = os.environ.get(paths.ENV_ROOT)
    found = paths.find_master_dir(root) if root else None
    return paths.NodePaths(found or paths.DEFAULT_STATE_DIR)


def info_lines(node: paths.NodePaths, now: float | None = None) -> list[str]:
    """Ganeti's pause line, then the last pass of the watcher on this master."""
    from cardume.rules.watcher_pause import read_pause
    lines = [pause_line(read_pause(node.watcher_pause, now), now)]
    last = _last_pass(node.watcher_state)
    if not last:
        lines.append("The watcher has not run on this master yet.")
        return lines
    start, end = float(last.get("start", 0)), float(last.get("end", 0))
    decisions = [d for d in last.get("decisions") or () if isinstance(d, dict)]
    lines.append(f"The watcher last ran at {time.ctime(start)} on {last.get('master')} "
                 f"({end - start:.1f}s), with {len(decisions)} decision(s)"
                 f"{':' if decisions else '.'}")
    from cardume.watcher.decide import Decision
    lines.extend(f"  {Decision.from_dict(d).line()}" for d in decisions)
    return lines


def _last_pass(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except ValueError:
        return {}
    last = data.get("last_pass") if isinstance(data, dict) else None
    return last if isinstance(last, dict) else {}
