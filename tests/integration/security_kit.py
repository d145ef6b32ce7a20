"""Helpers of the security test (test_security_files.py): what a file under a cluster's
state holds (the scanner), what must be private to root, and a probe that tries every path
as an unprivileged user.

The probe is this very file, run by ``python -I -c`` under ``setpriv`` as uid/gid 65534
("nobody"): the part that runs there (``_probe_main``) uses the standard library only and
is given nothing secret. It gets the list of paths root sees, tries to list each directory,
open each file and connect to each socket, and hands back what it could read; root then
judges that content with the scanner, which knows the secrets to look for.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

NOBODY = 65534
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
READ_CAP = 16 * 1024 * 1024  # enough for any store of a test cluster; disk images get cut
PROBE_TIMEOUT = 120.0

SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_MAGICS = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
TOKEN_PREFIX = b"cardume-join:v1:"
STORE_NAME = re.compile(r"^(config|queue)\.db(-wal|-shm|-journal)?$")
CLEAR_JOIN_TOKEN = re.compile(rb"""["']join_token["']\s*:\s*["'](?!<redacted>)""")
PEM_KEY_BODY = re.compile(
    rb"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:\\n|\r?\n)([A-Za-z0-9+/=]{32,})")

# What each store is, as an admin would name it in a report.
_STORE_WHAT = {"config": "the configuration store", "queue": "the job queue store"}


# --- the scanner (root side) ------------------------------------------------------------


def what_it_holds(path: str, data: bytes | None, needles: dict[str, bytes]) -> list[str]:
    """What of a key, a token or the configuration the file at ``path`` holds, judged by
    its name and (when given) its content; an empty list for a file that holds none.
    ``needles`` maps a label (never the secret itself: it is printed) to a secret whose
    presence anywhere in the content is a leak."""
    found = []
    name = os.path.basename(path)
    parts = Path(path).parts
    if name == "join-secret":
        found.append("a node's join secret")
    store = STORE_NAME.match(name)
    if store:
        found.append(_STORE_WHAT[store.group(1)] + (f" ({store.group(2)} file)"
                                                    if store.group(2) else ""))
    if name.endswith(".log") or "log" in parts[:-1]:
        found.append("a log")
    if data is not None:
        if b"PRIVATE KEY" in data:
            found.append("a PEM private key")
        if data.startswith(SQLITE_MAGIC):
            found.append("an SQLite database")
        if data[:4] in WAL_MAGICS:
            found.append("an SQLite write-ahead log")
        if TOKEN_PREFIX in data:
            found.append("a join token")
        if CLEAR_JOIN_TOKEN.search(data):
            found.append("job data with a join_token in clear")
        if b"cluster-ca" in data:
            found.append("the configuration's cluster-ca secret")
        found.extend(label for label, needle in sorted(needles.items()) if needle in data)
    return found


def key_needles(data: bytes, label: str) -> dict[str, bytes]:
    """The first body line of each PEM private key in ``data`` (plain or JSON-escaped), a
    string random enough to be found only where that key was copied."""
    bodies = sorted({m.group(1)[:64] for m in PEM_KEY_BODY.finditer(data)})
    if len(bodies) == 1:
        return {label: bodies[0]}
    return {f"{label} #{i}": body for i, body in enumerate(bodies, 1)}


def read_capped(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(READ_CAP)


# --- what root sees -----------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    path: str
    kind: str  # "d" directory, "f" regular file, "s" socket, "l" symlink, "o" other
    mode: int  # permission bits


def _kind(st_mode: int) -> str:
    if stat.S_ISDIR(st_mode):
        return "d"
    if stat.S_ISREG(st_mode):
        return "f"
    if stat.S_ISSOCK(st_mode):
        return "s"
    if stat.S_ISLNK(st_mode):
        return "l"
    return "o"


def tree(top: str) -> list[Entry]:
    """Every path under ``top`` (``top`` included), as root sees it; symlinks not
    followed; what vanishes during the walk (a finished call's record) is left out."""
    entries = []
    paths = [top]
    for dirpath, dirnames, filenames in os.walk(top):
        paths.extend(os.path.join(dirpath, name) for name in dirnames + filenames)
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        entries.append(Entry(path, _kind(st.st_mode), stat.S_IMODE(st.st_mode)))
    return entries


def private_problems(entries: list[Entry], needles: dict[str, bytes],
                     always_private: re.Pattern[str] | None = None) -> list[str]:
    """As root: each file that holds a key, a token or the configuration (or that
    ``always_private`` matches: runtime files) yet has group or other permission bits, and
    each directory holding such a file that is not 0700 (no group/other bits), one line
    each: path, mode, what it holds."""
    problems = []
    holders: dict[str, list[str]] = {}
    for entry in entries:
        if entry.kind == "d":
            continue
        data = None
        if entry.kind == "f":
            try:
                data = read_capped(entry.path)
            except FileNotFoundError:
                continue
        held = what_it_holds(entry.path, data, needles)
        if entry.kind == "s":
            held.append("a socket (whoever may connect drives the daemon behind it)")
        if always_private is not None and always_private.search(entry.path):
            held.append("a runtime file")
        if not held:
            continue
        holders.setdefault(os.path.dirname(entry.path), []).extend(held)
        if entry.mode & 0o077:
            problems.append(f"{entry.path} mode {entry.mode:04o} holds {', '.join(held)}")
    modes = {e.path: e.mode for e in entries if e.kind == "d"}
    for directory, held in sorted(holders.items()):
        mode = modes.get(directory)
        if mode is not None and mode & 0o077:
            problems.append(f"{directory}/ mode {mode:04o} holds files with "
                            f"{', '.join(sorted(set(held)))}")
    return problems


# --- what nobody sees ---------------------------------------------------------------------


@dataclass
class Seen:
    """What the unprivileged probe got at one path."""
    path: str
    kind: str
    error: str = ""          # errno name of the refusal, "" when it worked
    data: bytes | None = None  # a file's content as read (capped)
    listed: bool = False     # a directory could be listed
    connected: bool = False  # a socket accepted the connection


@dataclass
class ProbeReport:
    uid: int
    gid: int
    groups: list[int]
    seen: dict[str, Seen] = field(default_factory=dict)

    def readable(self) -> list[Seen]:
        return [s for s in self.seen.values() if s.data is not None]


def probe_as_nobody(entries: list[Entry], top: str) -> ProbeReport:
    """Run the probe as uid/gid 65534 without supplementary groups over ``entries`` (and
    whatever else it finds listing ``top`` itself); fails if the probe itself fails."""
    request = json.dumps({"top": top, "paths": [[e.path, e.kind] for e in entries]})
    source = Path(__file__).read_text(encoding="utf-8")
    proc = subprocess.run([*SETPRIV, sys.executable, "-I", "-c", source, "probe"],
                          input=request, capture_output=True, text=True,
                          timeout=PROBE_TIMEOUT, cwd="/")
    if proc.returncode != 0:
        raise AssertionError(f"the unprivileged probe failed ({proc.returncode}):\n"
                             f"{proc.stderr}")
    answer = json.loads(proc.stdout)
    report = ProbeReport(answer["uid"], answer["gid"], answer["groups"])
    for item in answer["seen"]:
        data = item.pop("data")
        report.seen[item["path"]] = Seen(
            **item, data=None if data is None else base64.b64decode(data))
    return report


def readable_leaks(entries: list[Entry], report: ProbeReport,
                   needles: dict[str, bytes]) -> list[str]:
    """One line per path where the probe read a key, a token, the configuration or a log,
    or connected to a socket: path, mode, what it held."""
    modes = {e.path: e.mode for e in entries}
    lines = []
    for seen in sorted(report.seen.values(), key=lambda s: s.path):
        mode = modes.get(seen.path)
        if mode is None:  # found by the probe only: made after root's walk
            try:
                mode = stat.S_IMODE(os.lstat(seen.path).st_mode)
            except FileNotFoundError:
                mode = 0
        if seen.connected:
            lines.append(f"{seen.path} mode {mode:04o}: a socket uid {NOBODY} connected to")
        if seen.data is not None:
            held = what_it_holds(seen.path, seen.data, needles)
            if held:
                lines.append(f"{seen.path} mode {mode:04o}: uid {NOBODY} read "
                             f"{', '.join(held)}")
    return lines


def _try_path(path: str, kind: str) -> dict[str, object]:
    """As the unprivileged user: list a directory, connect to a socket, read anything
    else (non-blocking, so a FIFO cannot hang the probe)."""
    seen: dict[str, object] = {"path": path, "kind": kind, "error": "", "data": None,
                               "listed": False, "connected": False}
    try:
        if kind == "d":
            os.listdir(path)
            seen["listed"] = True
        elif kind == "s":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(path)
            seen["connected"] = True
        else:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
            with os.fdopen(fd, "rb") as handle:
                seen["data"] = base64.b64encode(handle.read(READ_CAP)).decode("ascii")
    except OSError as err:
        seen["error"] = errno.errorcode.get(err.errno or 0, str(err))
    return seen


def _probe_main() -> None:
    request = json.load(sys.stdin)
    paths = {path: kind for path, kind in request["paths"]}
    # What nobody finds by listing: anything made after root's walk, where it may look.
    for dirpath, dirnames, filenames in os.walk(request["top"]):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if path not in paths:
                try:
                    paths[path] = _kind(os.lstat(path).st_mode)
                except OSError:
                    continue
    seen = [_try_path(path, kind) for path, kind in sorted(paths.items())]
    json.dump({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
               "seen": seen}, sys.stdout)


if __name__ == "__main__" and sys.argv[1:] == ["probe"]:
    _probe_main()
