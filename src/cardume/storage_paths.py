"""Where the ``file`` and ``sharedfile`` disks of a cluster may live: rules the master applies
to ``gnt-cluster init/modify --file-storage-dir`` and ``--shared-file-storage-dir``, and each
node applies again before it touches a disk file (a node must not trust the master's word for
what is safe on its own disks).

A storage directory is refused when it is

- not an absolute path, or spelled with ``..`` (``/srv/../etc`` is ``/etc``): what the admin
  reads in ``gnt-cluster info`` must be where the files go;
- a system directory (``/``, ``/etc``, ``/usr``, ``/var`` ...) or anything inside the trees
  the system owns (``/proc``, ``/sys``, ``/dev``, ``/etc``, ``/boot``, ``/usr/lib`` ...): disk
  files would mix with the system's files, and a node's path confinement, which allows
  everything below the storage directory, would allow them too;
- the node's own state directory, a directory inside it or one that contains it (keys,
  configuration replica and job queue live there);
- outside the node's allowed list, when the node has one: a file named
  ``file-storage-paths`` in its state directory, one directory a line (``#`` comments), as
  Ganeti's ``file-storage-paths``. A storage directory must be one of them or lie below one.
  A node without that file allows any directory the rules above leave.

Only rules here (no I/O but reading the allowed list): both sides import this module.
"""

from __future__ import annotations

import os
import posixpath

ALLOWED_PATHS_FILE = "file-storage-paths"

# Directories that may never be a storage directory themselves (their subdirectories may,
# unless they are in SYSTEM_TREES: /srv/ganeti/file-storage is fine, /srv is not).
SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/lost+found", "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv",
    "/sys", "/tmp", "/usr", "/usr/local", "/usr/local/bin", "/usr/local/lib",
    "/usr/local/sbin", "/usr/local/share", "/var", "/var/backups", "/var/cache", "/var/lib",
    "/var/local", "/var/lock", "/var/log", "/var/mail", "/var/opt", "/var/run",
    "/var/spool", "/var/tmp",
})

# Trees the system owns whole: nothing inside them is a storage directory.
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
    "/sbin", "/sys", "/usr/bin", "/usr/include", "/usr/lib", "/usr/lib32", "/usr/lib64",
    "/usr/libexec", "/usr/libx32", "/usr/sbin", "/usr/share", "/usr/src",
)

LABELS = {"file_storage_dir": "file storage dir",
          "shared_file_storage_dir": "shared file storage dir"}
OPTIONS = {"file_storage_dir": "--file-storage-dir",
           "shared_file_storage_dir": "--shared-file-storage-dir"}


class PathRefused(ValueError):
    """A storage directory the rules refuse; the message says why, in one line."""


def label(key: str) -> str:
    """``file_storage_dir`` -> ``file storage dir`` (what messages call it)."""
    return LABELS.get(key, key.replace("_", " "))


def normal(path: str) -> str:
    """The normal form of an absolute path: no ``.``, ``..``, doubled or trailing slash.

    (posixpath keeps a leading ``//``, which POSIX leaves to the system; here it is ``/``.)
    """
    result = posixpath.normpath(path)
    if result.startswith("//"):
        result = "/" + result.lstrip("/")
    return result


def is_below(path: str, base: str) -> bool:
    """True when normal path ``path`` lies strictly inside normal directory ``base``."""
    return path != base and path.startswith(base.rstrip("/") + "/")


def is_within(path: str, base: str) -> bool:
    """``path`` is ``base`` or lies inside it."""
    return path == base or is_below(path, base)


def check_syntax(value: object) -> str:
    """The normal form of a storage directory as written, or PathRefused."""
    if not isinstance(value, str) or not value:
        raise PathRefused(f"{value!r} is not a path: expected an absolute directory path "
                          "such as /srv/ganeti/file-storage")
    if "\0" in value or "\n" in value:
        raise PathRefused(f"{value!r} contains a NUL or newline character: expected an "
                          "absolute directory path")
    if not value.startswith("/"):
        raise PathRefused(f"'{value}' is not an absolute path: expected one such as "
                          "/srv/ganeti/file-storage")
    result = normal(value)
    reason = system_reason(result)
    if ".." in value.split("/"):
        meaning = f" (it means '{result}', {reason})" if reason else f" (it means '{result}')"
        raise PathRefused(f"'{value}' goes through '..'{meaning}: expected a path without "
                          "'..'")
    if reason:
        raise PathRefused(f"'{value}' is {reason}: expected a directory of its own such as "
                          "/srv/ganeti/file-storage")
    return result


def system_reason(path: str) -> str | None:
    """Why a normal path is a system location, or None."""
    if path in SYSTEM_DIRS:
        return "a system directory"
    for tree in SYSTEM_TREES:
        if is_below(path, tree):
            return f"inside the system directory {tree}"
    return None


def state_dir_reason(path: str, state_dir: str) -> str | None:
    """Why a normal path clashes with the node's state directory, or None."""
    state = normal(os.path.abspath(state_dir))
    if path == state:
        return "the node's state directory"
    if is_below(state, path):
        return f"a parent of the node's state directory {state}"
    if is_below(path, state):
        return f"inside the node's state directory {state}"
    return None


def allowed_paths_file(state_dir: str) -> str:
    """Where a node lists the directories its storage directories may be in."""
    return os.path.join(state_dir, ALLOWED_PATHS_FILE)


def parse_allowed_paths(text: str) -> tuple[list[str], list[str]]:
    """(allowed directories, problems) from the text of an allowed-paths file.

    An entry that is not absolute, goes through ``..`` or is a system location is left out
    and named among the problems: a list that allowed ``/`` would allow everything."""
    allowed: list[str] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            entry = check_syntax(line)
        except PathRefused as err:
            problems.append(f"line {number}: {err}")
            continue
        if entry not in allowed:
            allowed.append(entry)
    return allowed, problems


def read_allowed_paths(state_dir: str) -> tuple[list[str] | None, list[str]]:
    """(allowed directories or None when the node has no list, problems in the list)."""
    try:
        with open(allowed_paths_file(state_dir), encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None, []
    except (OSError, UnicodeDecodeError) as err:
        # an unreadable list allows nothing: the admin meant to restrict
        return [], [f"can't read {allowed_paths_file(state_dir)}: {err}"]
    return parse_allowed_paths(text)


def node_reason(value: object, state_dir: str | None,
                allowed: list[str] | None) -> str | None:
    """Why a node refuses ``value`` as a storage directory, or None when it accepts it."""
    try:
        path = check_syntax(value)
    except PathRefused as err:
        return str(err)
    if state_dir:
        reason = state_dir_reason(path, state_dir)
        if reason:
            return f"'{path}' is {reason}"
    if allowed is not None and not any(is_within(path, entry) for entry in allowed):
        listed = ", ".join(allowed) if allowed else "nothing"
        return (f"'{path}' is not in the node's allowed file storage paths ({listed}; "
                f"see {ALLOWED_PATHS_FILE} in its state directory)")
    return None


def check_node_dir(value: object, state_dir: str | None) -> str:
    """The normal form of a storage directory this node accepts, or PathRefused (reads the
    node's allowed list each time: the admin may edit it while the daemon runs)."""
    allowed = read_allowed_paths(state_dir)[0] if state_dir else None
    reason = node_reason(value, state_dir, allowed)
    if reason:
        raise PathRefused(reason)
    return normal(str(value))
