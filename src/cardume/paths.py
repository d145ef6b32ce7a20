"""Where a node keeps its files, and how a command finds the cluster it talks to.

A real node keeps its files where the FHS puts them: state in ``/var/lib/cardume``,
settings in ``/etc/cardume``, logs in ``/var/log/cardume`` and runtime files (sockets, pid
files) in ``/run/cardume``. A node of a local cluster made by ``cardume vcluster`` keeps all
four under its one directory ``ROOT/nodes/NAME`` (``run/``, ``log/``, ``etc/``). With
``CARDUME_ROOT=ROOT`` in the environment every command talks to that local cluster;
``CARDUME_NODE=NAME`` says which of its nodes the command runs "on" (default: the master).
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

DEFAULT_STATE_DIR = "/var/lib/cardume"
FHS_RUN_DIR = "/run/cardume"
FHS_LOG_DIR = "/var/log/cardume"
FHS_ETC_DIR = "/etc/cardume"
ENV_ROOT = "CARDUME_ROOT"
ENV_NODE = "CARDUME_NODE"

PRIVATE_UMASK = 0o077
"""The daemons' umask: every file they create (SQLite's -wal and -shm files, logs, runtime
files) starts private to root, instead of being made private after it already existed."""


class NodePaths:
    """The files of one node: its state under ``root``; its runtime files, logs and
    settings in ``run_dir``, ``log_dir`` and ``etc_dir``, which default to the FHS places
    when ``root`` is ``/var/lib/cardume`` and to directories under ``root`` otherwise.
    (No dataclass: the CLI imports this.)"""

    __slots__ = ("root", "run", "log_dir", "etc")

    def __init__(self, root: str, run_dir: str | None = None, log_dir: str | None = None,
                 etc_dir: str | None = None) -> None:
        self.root = root
        fhs = is_fhs_root(root)
        self.run = run_dir or (FHS_RUN_DIR if fhs else os.path.join(root, "run"))
        self.log_dir = log_dir or (FHS_LOG_DIR if fhs else os.path.join(root, "log"))
        self.etc = etc_dir or (FHS_ETC_DIR if fhs else os.path.join(root, "etc"))

    def __repr__(self) -> str:
        return f"NodePaths({self.root!r})"

    def _key(self) -> tuple[str, str, str, str]:
        return (self.root, self.run, self.log_dir, self.etc)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodePaths) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def fhs(self) -> bool:
        """True on a real node: the files are in the FHS places, not under one root."""
        return is_fhs_root(self.root) and (self.run, self.log_dir, self.etc) == \
            (FHS_RUN_DIR, FHS_LOG_DIR, FHS_ETC_DIR)

    def join(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def identity(self) -> str:
        return self.join("node.json")

    @property
    def certs(self) -> str:
        return self.join("certs")

    @property
    def node_cert(self) -> str:
        return self.join("certs", "node.pem")

    @property
    def node_key(self) -> str:
        return self.join("certs", "node-key.pem")

    @property
    def ca_cert(self) -> str:
        return self.join("certs", "ca.pem")

    @property
    def join_secret(self) -> str:
        return self.join("certs", "join-secret")

    @property
    def ssconf(self) -> str:
        return self.join("ssconf.json")

    @property
    def config_db(self) -> str:
        return self.join("config.db")

    @property
    def queue_db(self) -> str:
        return self.join("queue.db")

    @property
    def export_dir(self) -> str:
        """Instance exports (gnt-backup), one directory each (Ganeti's export dir)."""
        return self.join("export")

    @property
    def watcher_state(self) -> str:
        """cardume-watcher's memory between passes (boot ids, restart counts, last pass)."""
        return self.join("watcher.json")

    @property
    def watcher_pause(self) -> str:
        """Until when the watcher is paused (``gnt-cluster watcher pause``); absent: not."""
        return self.join("watcher-pause")

    @property
    def master_socket(self) -> str:
        return os.path.join(self.run, "master.sock")

    def settings(self, name: str) -> str:
        """A settings file of this node (``/etc/cardume/NAME`` on a real node)."""
        return os.path.join(self.etc, name)

    @property
    def rapi_cert(self) -> str:
        """The REST daemon's certificate and key, one PEM file (as Ganeti's rapi.pem)."""
        return self.join("certs", "rapi.pem")

    @property
    def rapi_dir(self) -> str:
        return self.join("rapi")

    @property
    def rapi_users(self) -> str:
        """The REST API's users, in Ganeti's format (its /var/lib/ganeti/rapi/users)."""
        return self.join("rapi", "users")

    @property
    def rapi_options(self) -> str:
        """Extra arguments of the REST daemon, e.g. ``--allow-anonymous-reads``."""
        return self.join("rapi", "options")

    @property
    def rapi_address(self) -> str:
        """Where the running REST daemon listens (written by it, for the commands)."""
        return os.path.join(self.run, "rapi.json")

    def pidfile(self, daemon: str) -> str:
        return os.path.join(self.run, f"{daemon}.pid")

    def logfile(self, daemon: str) -> str:
        return os.path.join(self.log_dir, f"{daemon}.log")

    def make_private(self) -> None:
        """Create the node's state directories as root-only (0700), and take other users'
        access away from those an older version made open. The files inside hold the node's
        key, the configuration (the cluster CA's key on candidates) and the job queue."""
        for path in (self.root, self.certs, self.run, self.log_dir):
            private_dir(path)

    def read_identity(self) -> dict[str, Any]:
        return read_json(self.identity) or {}

    def read_ssconf(self) -> dict[str, Any] | None:
        return read_json(self.ssconf)


def is_fhs_root(root: str) -> bool:
    """Whether ``root`` is a real node's state directory (the FHS layout applies)."""
    return os.path.normpath(root) == DEFAULT_STATE_DIR


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except json.JSONDecodeError:
        return None


def write_json_atomic(path: str, data: Any, mode: int = 0o644) -> None:
    """Write a file so readers see either the old or the new content, never a half."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    # one write of dumps' text: json.dump feeds the file piece by piece (Python's encoder
    # loop), about a quarter slower for every node's ssconf at each configuration change
    text = json.dumps(data, indent=1, sort_keys=True)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def private_dir(path: str) -> None:
    """A directory only its owner may enter (made if missing, tightened if open)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o700)


def private_file(path: str) -> None:
    """Make sure ``path`` exists and is readable by its owner only, before anything is
    written to it. SQLite gives a database's ``-wal`` and ``-shm`` files the mode of the
    database file, so a database created this way never has an open side file; those an
    older version left open are closed here too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


def vcluster_node_dirs(root: str) -> list[str]:
    base = os.path.join(root, "nodes")
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return []
    return [os.path.join(base, n) for n in names if os.path.isdir(os.path.join(base, n))]


def local_node_paths(env: dict[str, str] | None = None) -> NodePaths:
    """The node this command runs on."""
    env = dict(os.environ) if env is None else env
    root = env.get(ENV_ROOT)
    if not root:
        return NodePaths(DEFAULT_STATE_DIR)
    wanted = env.get(ENV_NODE)
    if wanted:
        return NodePaths(os.path.join(root, "nodes", wanted))
    master = find_master_dir(root)
    if master:
        return NodePaths(master)
    dirs = vcluster_node_dirs(root)
    return NodePaths(dirs[0] if dirs else os.path.join(root, "nodes", "node1"))


def find_master_dir(root: str) -> str | None:
    """In a local cluster, the node directory of the master, per the newest ssconf."""
    best: tuple[int, str] | None = None
    for node_dir in vcluster_node_dirs(root):
        ssconf = read_json(os.path.join(node_dir, "ssconf.json"))
        if not ssconf or not ssconf.get("master_node"):
            continue
        serial = int(ssconf.get("serial", 0))
        if best is None or serial > best[0]:
            best = (serial, ssconf["master_node"])
    if best is None:
        return None
    path = os.path.join(root, "nodes", best[1])
    return path if os.path.isdir(path) else None
