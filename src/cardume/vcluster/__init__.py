"""A whole cluster on one machine: N node daemons on 127.0.0.11, .12, ..., one state root.

``cardume vcluster up --nodes 3 --root DIR`` starts (or restarts) the node daemons, creates
the cluster on node1 with the fake hypervisor and file storage, adds the other nodes by
their join tokens, and makes sure the master daemon runs. It is idempotent: run it again
after a crash and it starts whatever is missing. Without ``--nodes`` an existing cluster
keeps its size (a new one gets 3); a larger ``--nodes`` grows it, a smaller one is refused.
``down`` stops every daemon and keeps the state; ``down --purge`` also deletes it. Several
roots run side by side: a new root gets the first free range 127.0.N.11.. (or
``--base-ip``), remembered in ROOT/vcluster.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cardume import constants, daemons, errors, paths
from cardume.config import ssconf
from cardume.paths import NodePaths
from cardume.vcluster import loopback

DEFAULT_BASE_IP = "127.0.0.11"
DEFAULT_NODES = 3
MAX_NODES = 200
RAPI_USER = "gnt-admin"
# Node daemons started at once. Each spends its start importing (CPU): more than a few per
# core only makes every one of them slower to answer, and the wait for each is longer.
START_WORKERS = max(2, 4 * (os.cpu_count() or 1))
# A daemon's start-up under the load of its neighbours starting too (15 s alone is plenty).
START_WAIT = 60.0

# A local cluster's instances are small (loop-file disks of a few MiB, no NICs) and use no
# CPU (the fake hypervisor): its instance policy's minima are low where a real cluster
# keeps Ganeti's (disks of 1 GiB and more, at least one NIC), and allocators may put 32
# vCPUs on a CPU, not 4. The maxima stay Ganeti's: hspace counts down from them.
LOCAL_IPOLICY: dict[str, Any] = {"minmax": [{
    "min": {"memory-size": 1, "cpu-count": 1, "disk-count": 0, "disk-size": 1,
            "nic-count": 0, "spindle-use": 0},
    "max": dict(constants.IPOLICY_DEFAULTS["minmax"][0]["max"]),
}], "vcpu-ratio": 32.0}


@dataclass
class VCluster:
    root: str
    base_ip: str | None = None
    port: int = constants.DEFAULT_NODED_PORT

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        saved = self._saved()
        if self.base_ip is None:
            self.base_ip = saved.get("base_ip")
        elif saved.get("base_ip") not in (None, self.base_ip):
            raise errors.WrongInput(
                f"{self.root} is a local cluster on {saved['base_ip']}, not {self.base_ip}",
                "leave out --base-ip")
        self.port = int(saved.get("port", self.port))

    def _saved(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self.root, "vcluster.json"), encoding="utf-8") as handle:
                data: dict[str, Any] = json.load(handle)
                return data
        except (OSError, ValueError):
            return {}

    def _choose_base_ip(self, count: int) -> str:
        """The first 127.0.N.11.. range whose addresses are all free on this port."""
        bases = (f"127.0.{third}.11" for third in range(0, 250))
        for base in loopback.free_ranges(bases, count, self.port):
            return base
        raise errors.InsufficientResources("no free loopback range for a local cluster",
                                           "pass --base-ip")

    def _save(self) -> None:
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, "vcluster.json"), "w", encoding="utf-8") as handle:
            json.dump({"base_ip": self.base_ip, "port": self.port}, handle)

    @property
    def hosts_file(self) -> str:
        return os.path.join(self.root, "hosts")

    def node_name(self, index: int) -> str:
        return f"node{index}"

    def node_ip(self, index: int) -> str:
        ip = ipaddress.IPv4Address(self.base_ip or DEFAULT_BASE_IP) + (index - 1)
        if not ip.is_loopback:
            raise errors.WrongInput(f"node {index} would get address {ip}, outside 127.0.0.0/8")
        return str(ip)

    def node_paths(self, index: int) -> NodePaths:
        return NodePaths(os.path.join(self.root, "nodes", self.node_name(index)))

    def storage_prefix(self, index: int) -> str:
        """Where node ``index`` maps the cluster's file storage paths (node.json)."""
        return os.path.join(self.node_paths(index).root, "disk")

    def existing_nodes(self) -> list[int]:
        found = []
        for path in paths.vcluster_node_dirs(self.root):
            name = os.path.basename(path)
            if name.startswith("node") and name[4:].isdigit():
                found.append(int(name[4:]))
        return sorted(found)

    def write_hosts(self, count: int) -> None:
        """The nodes' lines first; lines the admin added (instance names) are kept."""
        lines = [f"{self.node_ip(i)} {self.node_name(i)}" for i in range(1, count + 1)]
        nodes = {self.node_name(i) for i in range(1, count + 1)}
        try:
            with open(self.hosts_file, encoding="ascii") as handle:
                kept = [line.rstrip("\n") for line in handle
                        if not nodes.intersection(line.split("#", 1)[0].split()[1:])]
        except FileNotFoundError:
            kept = []
        os.makedirs(self.root, exist_ok=True)
        tmp = f"{self.hosts_file}.tmp"
        with open(tmp, "w", encoding="ascii") as handle:
            handle.write("\n".join(lines + kept) + "\n")
        os.replace(tmp, self.hosts_file)  # a reader never sees it half written

    def size(self) -> int:
        """How many nodes this root has (0 for a new root): node1..nodeN, the highest."""
        return max(self.existing_nodes(), default=0)

    def up(self, count: int | None = None, cluster_name: str = "cluster.vcluster",
           ) -> list[str]:
        """Start what is missing. ``count``: the wanted number of nodes; an existing
        cluster keeps its size without it, grows to a larger one, and refuses a smaller
        one (shrinking is ``gnt-node remove``'s job); a new root gets DEFAULT_NODES."""
        size = self.size()
        if count is None:
            count = size or DEFAULT_NODES
        if not 1 <= count <= MAX_NODES:
            raise errors.WrongInput(f"invalid node count {count}: expected 1..{MAX_NODES}")
        if count < size:
            raise errors.WrongInput(
                f"the local cluster in {self.root} has {size} nodes, more than the "
                f"{count} asked for; 'up' never removes nodes",
                f"leave out --nodes to restart all {size}, or start afresh after "
                f"'cardume vcluster down --purge --root {self.root}'")
        if self.base_ip is None:
            self.base_ip = self._choose_base_ip(count)
        self._save()
        report = []
        self.write_hosts(count)
        self.start_node_daemons(range(1, count + 1))
        first = self.node_paths(1)
        master_dir = paths.find_master_dir(self.root)
        if master_dir is None:
            from cardume.master.bootstrap import InitOptions, init_cluster
            storage = os.path.join(self.root, "storage")
            opts = InitOptions(
                cluster_name=cluster_name,
                enabled_hypervisors=[constants.HT_FAKE],
                enabled_disk_templates=[constants.DT_FILE, constants.DT_SHARED_FILE,
                                        constants.DT_DISKLESS],
                # Ganeti's default path; each node maps it under its own storage prefix
                file_storage_dir=constants.DEFAULT_FILE_STORAGE_DIR,
                shared_file_storage_dir=os.path.join(storage, "shared-file-storage"),
                hosts_file=self.hosts_file, nicparams={"link": "br0"}, ipolicy=LOCAL_IPOLICY,
                os_search_path=[os.path.join(self.root, "os"), *ssconf.DEFAULT_OS_SEARCH_PATH])
            init_cluster(first, opts)
            report.append(f"Created cluster {cluster_name} on {self.node_name(1)}")
            master_dir = first.root
        else:
            daemons.start(NodePaths(master_dir), "masterd")
        report.extend(self._add_missing(count, master_dir))
        report.extend(self.rapi_access(NodePaths(master_dir)))
        return report

    def start_node_daemons(self, indexes: Iterable[int]) -> None:
        """Start the node daemons that are not running, several at once: one by one, a
        100-node cluster spent most of its start-up waiting for each to answer."""
        def start(index: int) -> None:
            node = self.node_paths(index)
            os.makedirs(node.root, exist_ok=True)
            # each node keeps its `file` disks under its own directory (its own "disk");
            # `sharedfile` disks stay in the one shared directory every node sees
            daemons.start(node, "noded", ["--name", self.node_name(index),
                                          "--bind", self.node_ip(index),
                                          "--port", str(self.port),
                                          "--storage-prefix", self.storage_prefix(index)],
                          wait=START_WAIT)
        with ThreadPoolExecutor(START_WORKERS) as pool:
            # list(): the first daemon that failed to start raises here
            list(pool.map(start, indexes))

    @property
    def rapi_credentials(self) -> str:
        return os.path.join(self.root, "rapi-credentials")

    def rapi_access(self, master: NodePaths, wait: float = 20.0) -> list[str]:
        """Make sure the REST API has a user ``gnt-admin`` (random password, kept in
        ROOT/rapi-credentials as curl's USER:PASSWORD, 0600), and say how to reach it."""
        deadline = time.monotonic() + wait
        while (where := paths.read_json(master.rapi_address)) is None:
            if time.monotonic() > deadline:
                return [f"The REST daemon is not running yet: see {master.logfile('rapi')}"]
            time.sleep(0.05)
        try:
            with open(self.rapi_credentials, encoding="utf-8") as handle:
                user, _, password = handle.read().strip().partition(":")
        except FileNotFoundError:
            user, password = RAPI_USER, secrets.token_urlsafe(18)
            fd = os.open(self.rapi_credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(f"{user}:{password}\n")
        if _ensure_rapi_user(master.rapi_users, user, password):
            pid = daemons.read_pid(master, "masterd")
            if pid is not None:  # take the new users file into the configuration now
                os.kill(pid, signal.SIGHUP)
        url = f"https://{where['address']}:{where['port']}"
        return [f"REST API: {url}/ (users file {master.rapi_users})",
                f"  log in as {user}, password in {self.rapi_credentials}: "
                f"curl -k -u \"$(cat {self.rapi_credentials})\" {url}/2/info"]

    def _add_missing(self, count: int, master_dir: str) -> list[str]:
        from cardume.master.client import Client
        from cardume.node.daemon import join_token
        ssconf = NodePaths(master_dir).read_ssconf() or {}
        known = set(ssconf.get("nodes", {}))
        report: list[str] = []
        missing = [i for i in range(1, count + 1) if self.node_name(i) not in known]
        if not missing:
            return report
        jobs = [[{"OP_ID": "OP_NODE_ADD", "node_name": self.node_name(i),
                  "join_token": join_token(self.node_paths(i))}] for i in missing]
        failed: errors.CardumeError | None = None
        with Client(NodePaths(master_dir).master_socket) as client:
            # all at once: they run one after the other (each takes the whole cluster's
            # lock), but the master queues the next while one runs, instead of waiting for
            # this process to see one end and submit the next (60 nodes: ~10% quicker)
            submitted = client.call("SubmitManyJobs", jobs)
            for index, (ok, value) in zip(missing, submitted, strict=True):
                try:
                    if not ok:  # refused before it became a job: the refusal's line
                        raise errors.WrongInput(f"adding {self.node_name(index)}: {value}")
                    client.wait_job(int(value), feedback=False)
                except errors.CardumeError as err:
                    failed = failed or err  # the first failure, once every job has ended
                    continue
                report.append(f"Added {self.node_name(index)} ({self.node_ip(index)})")
        if failed is not None:
            raise failed
        return report

    def down(self, purge: bool = False) -> list[str]:
        report = []
        nodes = self.existing_nodes()
        for index in nodes:
            if daemons.stop(self.node_paths(index), "masterd"):
                report.append(f"Stopped the master daemon on {self.node_name(index)}")
            # the master daemon stops its REST daemon; one it left behind (killed) goes too
            if daemons.stop(self.node_paths(index), "rapi"):
                report.append(f"Stopped the REST daemon on {self.node_name(index)}")
        for index in nodes:
            if daemons.stop(self.node_paths(index), "noded"):
                report.append(f"Stopped the node daemon on {self.node_name(index)}")
        if purge and os.path.isdir(self.root):
            if not os.path.isdir(os.path.join(self.root, "nodes")):
                raise errors.WrongInput(f"{self.root} does not look like a local cluster "
                                        "root; not deleting it")
            # kvm instances outlive their node daemon on purpose; not the cluster's state
            for index in nodes:
                for name in _kill_kvm_instances(self.node_paths(index).root):
                    report.append(f"Killed the QEMU of instance {name} on "
                                  f"{self.node_name(index)}")
            shutil.rmtree(self.root)
            report.append(f"Removed {self.root}")
        return report

    def status(self) -> list[str]:
        lines = []
        for index in self.existing_nodes():
            node = self.node_paths(index)
            noded = daemons.read_pid(node, "noded")
            masterd = daemons.read_pid(node, "masterd")
            rapi = daemons.read_pid(node, "rapi")
            parts = [f"{self.node_name(index)} {self.node_ip(index)}",
                     f"noded {'pid ' + str(noded) if noded else 'stopped'}"]
            if masterd:
                parts.append(f"masterd pid {masterd}")
            if rapi:
                parts.append(f"rapi pid {rapi}")
            lines.append(", ".join(parts))
        return lines


def _ensure_rapi_user(users_file: str, user: str, password: str) -> bool:
    """Give ``user`` write access with ``password`` (as its HA1 hash) in the users file,
    replacing an older line of that user. Whether the file changed."""
    digest = hashlib.md5(f"{user}:Ganeti Remote API:{password}".encode(),
                         usedforsecurity=False).hexdigest()
    wanted = f"{user} {{HA1}}{digest} read,write"
    try:
        with open(users_file, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        lines = []
    if wanted in (line.strip() for line in lines):
        return False
    kept = [line for line in lines if line.split()[:1] != [user]]
    tmp = f"{users_file}.tmp{os.getpid()}"
    paths.private_dir(os.path.dirname(users_file))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join([*kept, wanted]) + "\n")
    os.replace(tmp, users_file)
    return True


def _kill_kvm_instances(node_root: str) -> list[str]:
    """Kill the QEMU of every kvm instance a node's runtime files name (each checked to be
    that instance's QEMU first); their names."""
    from cardume.node.hypervisor.kvm import qemu_alive
    killed = []
    kvm_dir = os.path.join(node_root, "hv", "kvm")
    for entry in sorted(os.listdir(kvm_dir) if os.path.isdir(kvm_dir) else []):
        if not entry.endswith(".json"):
            continue
        name = entry.removesuffix(".json")
        try:
            with open(os.path.join(kvm_dir, entry), encoding="utf-8") as f:
                pid = int(json.load(f)["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if qemu_alive(pid, name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.append(name)
    return killed
