"""What runs outside the job queue: creating a cluster, and moving the master role.

``gnt-cluster init`` runs on the future master: it makes the cluster CA, writes the first
configuration, joins the local node daemon with its own token and starts the master
daemon. ``gnt-cluster master-failover`` runs on a master candidate: it takes the newest
configuration among the candidates, stops the old master daemon if it can reach it, names
itself master and starts a master daemon here, which pushes the new state to every node.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cardume import constants, daemons, errors, objects, storeschema, tls
from cardume.cmdlib import common, iallocator
from cardume.config import ssconf
from cardume.config.store import LAYOUT as CONFIG_LAYOUT
from cardume.config.store import ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.jobs.store import LAYOUT as QUEUE_LAYOUT
from cardume.jobs.store import TAKEOVER_KEY, JobStore
from cardume.node.daemon import join_token
from cardume.paths import NodePaths
from cardume.rpc import join
from cardume.rpc.client import NodeRpc
from cardume.rpc.transport import RpcClient

T = TypeVar("T")


@dataclass
class InitOptions:
    cluster_name: str
    enabled_hypervisors: list[str] = field(default_factory=lambda: [constants.HT_KVM])
    enabled_disk_templates: list[str] = field(
        default_factory=lambda: [constants.DT_DRBD8, constants.DT_PLAIN])
    file_storage_dir: str = constants.DEFAULT_FILE_STORAGE_DIR
    shared_file_storage_dir: str = constants.DEFAULT_SHARED_FILE_STORAGE_DIR
    vg_name: str = constants.DEFAULT_VG
    master_netdev: str = "lo"
    master_netmask: int = 32
    secondary_ip: str | None = None
    mac_prefix: str = constants.DEFAULT_MAC_PREFIX
    candidate_pool_size: int = constants.DEFAULT_CANDIDATE_POOL_SIZE
    hvparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    beparams: dict[str, Any] = field(default_factory=dict)
    nicparams: dict[str, Any] = field(default_factory=dict)
    ndparams: dict[str, Any] = field(default_factory=dict)
    diskparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    hosts_file: str = ""
    os_search_path: list[str] = field(default_factory=list)
    max_running_jobs: int = constants.DEFAULT_MAX_RUNNING_JOBS
    uid_pool: list[list[int]] = field(default_factory=list)
    default_iallocator: str = "cardume"  # the built-in allocator (cmdlib/iallocator.BUILTIN)
    ipolicy: dict[str, Any] = field(default_factory=dict)  # --ipolicy-* (a change set)


def _validate(opts: InitOptions) -> None:
    common.check_hostname(opts.cluster_name, "cluster")
    common.check_enabled_list(opts.enabled_hypervisors, constants.HYPER_TYPES, "hypervisor")
    common.check_enabled_list(opts.enabled_disk_templates, constants.DISK_TEMPLATES,
                              "disk template")
    for hv in opts.hvparams:
        if hv not in opts.enabled_hypervisors:
            raise errors.WrongInput(f"-H {hv}: hypervisor '{hv}' is not enabled "
                                    f"(enabled: {', '.join(opts.enabled_hypervisors)})")
    opts.hvparams = common.check_hvparams(opts.hvparams)
    opts.beparams = common.check_beparams(opts.beparams)
    opts.nicparams = common.check_nicparams(opts.nicparams)
    opts.ndparams = common.check_ndparams(opts.ndparams)
    opts.diskparams = common.check_diskparams(opts.diskparams)
    from cardume.cmdlib.cluster import check_init_storage_dirs
    check_init_storage_dirs(opts)
    if opts.candidate_pool_size < 1:
        raise errors.WrongInput(f"candidate pool size must be at least 1, "
                                f"not {opts.candidate_pool_size}")
    from cardume.cmdlib.cluster import check_mac_prefix
    check_mac_prefix(opts.mac_prefix)
    opts.ipolicy = _init_ipolicy(opts)
    if opts.default_iallocator:
        iallocator.check_name(opts.default_iallocator)


def _init_ipolicy(opts: InitOptions) -> dict[str, Any]:
    """The cluster's own instance policy: as Ganeti's init, it allows the templates enabled
    (htools pick the first), with the --ipolicy-* options over it, checked whole."""
    from cardume.rules import ipolicy
    changes = ipolicy.check_changes(opts.ipolicy, cluster=True)
    own = ipolicy.apply_changes({ipolicy.DISK_TEMPLATES: list(opts.enabled_disk_templates)},
                                changes, std_base=constants.IPOLICY_DEFAULTS[ipolicy.STD])
    ipolicy.check_filled(objects.fill_dict(constants.IPOLICY_DEFAULTS, own), check_std=True,
                         enabled_templates=opts.enabled_disk_templates)
    return own


def init_cluster(paths: NodePaths, opts: InitOptions) -> str:
    """Create the cluster with this node as master. Returns the master node's name."""
    if paths.read_ssconf() or os.path.exists(paths.config_db):
        current = paths.read_ssconf() or {}
        raise errors.WrongState(
            f"this node already belongs to cluster {current.get('cluster_name', '(unknown)')}",
            "destroy it with 'gnt-cluster destroy --yes-do-it' first")
    identity = paths.read_identity()
    name = identity.get("name")
    if not name or daemons.read_pid(paths, "noded") is None:
        raise errors.EnvironmentProblem(
            f"the node daemon is not running on this node (state in {paths.root})",
            "start cardume-noded first")
    _validate(opts)
    from cardume.cmdlib.cluster import check_init_storage_dirs
    check_init_storage_dirs(opts, paths.root)  # this node's state dir and file-storage-paths
    token = join.parse_token(join_token(paths))
    address = identity.get("address") or "127.0.0.1"
    port = int(identity.get("port") or constants.DEFAULT_NODED_PORT)

    ca_cert, ca_key = tls.create_ca(opts.cluster_name)
    group = objects.NodeGroup(name=constants.DEFAULT_GROUP)
    node = objects.Node(name=name, primary_ip=address, port=port, group=group.uuid,
                        secondary_ip=opts.secondary_ip or address, master_candidate=True)
    cluster = objects.Cluster(
        cluster_name=opts.cluster_name, master_node=node.uuid,
        master_netdev=opts.master_netdev, master_netmask=opts.master_netmask,
        master_ip=address, enabled_hypervisors=opts.enabled_hypervisors,
        enabled_disk_templates=opts.enabled_disk_templates,
        ipolicy=opts.ipolicy,
        file_storage_dir=opts.file_storage_dir,
        shared_file_storage_dir=opts.shared_file_storage_dir,
        volume_group_name=opts.vg_name, mac_prefix=opts.mac_prefix,
        default_iallocator=opts.default_iallocator,
        candidate_pool_size=opts.candidate_pool_size,
        max_running_jobs=opts.max_running_jobs,
        hvparams={hv: opts.hvparams.get(hv, {}) for hv in opts.enabled_hypervisors},
        beparams={"default": opts.beparams}, nicparams={"default": opts.nicparams},
        ndparams=opts.ndparams, diskparams=opts.diskparams, noded_port=port,
        hosts_file=opts.hosts_file, os_search_path=opts.os_search_path,
        uid_pool=opts.uid_pool)

    store = ConfigStore(paths.config_db)
    try:
        writer = ConfigWriter(store)
        summary = ssconf.build(cluster, [node], 1)
        node.cert_fingerprint = asyncio.run(join.join_node(
            address, port, token, node_name=name, ca_cert=ca_cert.decode(),
            ca_key=ca_key.decode(), cluster_name=opts.cluster_name, ssconf=summary,
            tls_files=(paths.node_cert, paths.node_key), timeout=30.0))
        from cardume.master.rapi_keeper import initial_secrets
        asyncio.run(writer.commit(
            add=[cluster, group, node],
            secrets={"cluster-ca": {"cert": ca_cert.decode(), "key": ca_key.decode()},
                     **initial_secrets(paths, opts.cluster_name)}))
    except BaseException:
        store.close()
        _forget_config(paths)
        raise
    store.close()
    try:
        daemons.start(paths, "masterd")
    except errors.CardumeError:
        _forget_config(paths)
        raise
    return name


def _forget_config(paths: NodePaths) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(paths.config_db + suffix)
        except FileNotFoundError:
            pass


# --- master failover ------------------------------------------------------------------------

async def _candidate_serials(paths: NodePaths, cfg: ConfigWriter, me: objects.Node,
                             ) -> tuple[dict[str, int], dict[str, str]]:
    client = RpcClient(tls.client_context(paths.node_cert, paths.node_key, paths.ca_cert))
    serials: dict[str, int] = {}
    unreachable: dict[str, str] = {}
    try:
        others = [n for n in cfg.candidates() if n.uuid != me.uuid]
        rpc = NodeRpc(client).timed(10.0)
        replies = await asyncio.gather(*(rpc.config_serial(n) for n in others),
                                       return_exceptions=True)
        for node, reply in zip(others, replies, strict=True):
            if isinstance(reply, BaseException):
                unreachable[node.name] = str(reply)
            else:
                serials[node.name] = int(reply)
    finally:
        await client.close()
    return serials, unreachable


async def _rpc(paths: NodePaths, action: Callable[[NodeRpc], Awaitable[T]]) -> T:
    """``action`` with a node RPC client of its own (this process is no daemon)."""
    client = RpcClient(tls.client_context(paths.node_cert, paths.node_key, paths.ca_cert))
    try:
        return await action(NodeRpc(client))
    finally:
        await client.close()


def master_failover(paths: NodePaths, no_voting: bool = False) -> list[str]:
    """Make this node the master. Returns the lines to report."""
    report: list[str] = []
    identity = paths.read_identity()
    name = identity.get("name", "")
    summary = paths.read_ssconf()
    if not summary:
        raise errors.NotCluster(f"node {name} is not part of a cluster")
    if summary.get("master_node") == name:
        raise errors.WrongState(f"this node ({name}) is already the master")
    if not os.path.exists(paths.config_db):
        raise errors.WrongState(f"node {name} is not a master candidate (it has no "
                                "configuration replica)", "run this on a master candidate")
    store = ConfigStore(paths.config_db)
    try:
        cfg = ConfigWriter(store)
        me = cfg.find_node(name)
        if me is None or not me.master_candidate:
            raise errors.WrongState(f"node {name} is not a master candidate",
                                    "see 'gnt-node list -o name,role'")
        old_master = cfg.master_node()
        serials, unreachable = asyncio.run(_candidate_serials(paths, cfg, me))
        candidates = len(serials) + len(unreachable) + 1
        if not no_voting and (len(serials) + 1) * 2 <= candidates:
            raise errors.WrongState(
                f"only {len(serials) + 1} of {candidates} master candidates answer "
                f"(unreachable: {', '.join(sorted(unreachable))})",
                "use --no-voting if you are sure the old master is down")
        # The old master stops before the configuration is taken: until it stops, its jobs
        # still commit (and replicate here), and a copy taken earlier would lose them.
        try:
            asyncio.run(_rpc(paths, lambda rpc: rpc.timed(30.0).master_stop(old_master)))
            report.append(f"Stopped the master daemon on {old_master.name}")
            stopped = True
        except errors.CardumeError as err:
            report.append(f"Could not stop the master daemon on {old_master.name} ({err}); "
                          "it will refuse to run once it sees the new configuration")
            stopped = False
        cfg = ConfigWriter(store)  # what was replicated here until the old master stopped
        me = cfg.expand_node(name)
        if stopped:
            serials, _ = asyncio.run(_candidate_serials(paths, cfg, me))
        newest = max(serials.items(), key=lambda kv: kv[1], default=(None, -1))
        if newest[0] is not None and newest[1] > cfg.serial:
            source = cfg.expand_node(str(newest[0]))
            dump = asyncio.run(_rpc(paths, lambda rpc: rpc.timed(120.0).config_dump(source)))
            storeschema.check_sent(CONFIG_LAYOUT, dump.get("schema"), source.name)
            store.replace_all(int(dump["serial"]),
                              [(str(k), str(u), dict(d)) for k, u, d in dump["objects"]])
            cfg = ConfigWriter(store)
            me = cfg.expand_node(name)
            report.append(f"Took the newer configuration of {source.name} "
                          f"(serial {dump['serial']})")
        # A demoted node keeps its old replica, which still calls it a candidate: only the
        # newest configuration says what this node is now.
        if not me.master_candidate or me.offline or me.drained:
            raise errors.WrongState(f"node {name} is not a master candidate",
                                    "see 'gnt-node list -o name,role'")
        old_master = cfg.master_node()
        report.append(asyncio.run(_take_queue(paths, cfg, me, old_master, stopped)))
        cluster = cfg.edit(cfg.get_cluster())
        cluster.master_node = me.uuid
        cluster.master_ip = me.primary_ip
        asyncio.run(cfg.commit(update=[cluster]))
    finally:
        store.close()
    # the vote happened above: the other nodes learn of the new master from it
    daemons.start(paths, "masterd", extra=["--no-voting"])
    report.append(f"Node {name} is now the master")
    return report


async def _take_queue(paths: NodePaths, cfg: ConfigWriter, me: objects.Node,
                      old_master: objects.Node, old_stopped: bool) -> str:
    """Make this node's job queue the cluster's: the old master's own when it could be
    stopped (nothing is newer), else the most advanced replica among the candidates. Its
    queued jobs then run here, exactly once; those that were running end as errors when the
    new master daemon starts (it finds the note left here)."""
    client = RpcClient(tls.client_context(paths.node_cert, paths.node_key, paths.ca_cert))
    rpc = NodeRpc(client)
    try:
        dump: dict[str, Any] | None = None
        source: str | None = None
        if old_stopped:
            try:
                dump = await rpc.timed(120.0).queue_dump(old_master)
                source = old_master.name
            except errors.CardumeError:
                dump = None  # an old master without a queue (never ran one): use replicas
        if dump is None:
            local = JobStore(paths.queue_db) if os.path.exists(paths.queue_db) else None
            best: tuple[int, objects.Node | None] = (local.seq if local is not None else -1,
                                                      None)
            if local is not None:
                local.close()
            others = [n for n in cfg.candidates() if n.uuid not in (me.uuid, old_master.uuid)
                      and not n.offline]
            replies = await asyncio.gather(
                *(rpc.timed(10.0).queue_serial(n) for n in others), return_exceptions=True)
            for node, reply in zip(others, replies, strict=True):
                if isinstance(reply, dict) and int(reply.get("seq") or 0) > best[0]:
                    best = (int(reply["seq"]), node)
            if best[1] is not None:
                dump = await rpc.timed(120.0).queue_dump(best[1])
                source = best[1].name
    finally:
        await client.close()
    if dump is not None:
        storeschema.check_sent(QUEUE_LAYOUT, dump.get("schema"), str(source))
    store = JobStore(paths.queue_db)
    try:
        if dump is not None:
            store.apply_changes(dump, reset=True)
        # a queue of its own from now on: every candidate gets it whole
        store.set_meta("epoch", uuid.uuid4().hex)
        store.set_meta(TAKEOVER_KEY, old_master.name)
        jobs = len(store.unfinished())
    finally:
        store.close()
    where = f"from {source}" if source else "kept this node's own copy"
    return f"Took over the job queue ({where}; {jobs} unfinished job(s))"
