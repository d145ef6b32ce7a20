"""Logical units through the real opcode path, in one process, for unit tests.

A :class:`LuKit` is a small cluster under a temporary directory with no daemon and no
network: the real configuration (a ``ConfigWriter`` on its SQLite store), the real lock
manager, the real job queue (its store, its validation at submission, its log), and, for
each node, a real node daemon (``NodeDaemon``, joined to a cluster CA made for the kit)
whose handlers answer the master's real ``NodeRpc``. Only the network is left out: a call
goes to the node with that address in this process, authorized as the master's
certificate would be, its arguments and result through JSON as on the wire, its error in
its wire form. Commands the nodes run (lvm, drbdsetup...) go to one ``FakeRunner`` per node.

``kit.run(LUClass or OpClass, **values)`` submits a one-opcode job and waits for its end:
the job runs ``cmdlib.base.run_opcode`` (locks in level order, ``mark_running``,
``check_prereq``, ``exec``) exactly as the master daemon runs it. It returns the opcode's
result or raises the error the job ended with; ``kit.last_job`` holds the job (its log).

The ``lu_kit`` fixture of tests/unit/conftest.py builds one; tests that need other nodes or
cluster settings call :func:`make` themselves.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import os
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from cardume import errors, objects, tls
from cardume.cmdlib import base
from cardume.config import ssconf as ssconf_mod
from cardume.config.store import LAYOUT as CONFIG_LAYOUT
from cardume.config.store import ChangeSet, ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.jobs.locks import LockManager
from cardume.jobs.queue import Job, JobQueue
from cardume.jobs.store import JobStore
from cardume.node import cmd
from cardume.node.cmd import CommandRunner, FakeRunner, Result
from cardume.node.daemon import NodeDaemon, ensure_identity
from cardume.paths import NodePaths, write_json_atomic
from cardume.resolver import Resolver
from cardume.rpc.calls import CALLS
from cardume.rpc.client import NodeRpc
from cardume.rpc.http import PeerInfo
from cardume.vcluster import LOCAL_IPOLICY

T = TypeVar("T")
CLUSTER_NAME = "c.example.com"
# the node a call is being served for: commands run in its handlers' threads go to its runner
_SERVING: contextvars.ContextVar[str | None] = contextvars.ContextVar("lu_kit_node",
                                                                      default=None)


class NodeRunners(CommandRunner):
    """The process's default command runner while a kit lives (the node daemons' handlers
    run their commands with it): each command goes to the FakeRunner of the node whose call
    runs it (asyncio.to_thread carries the node along). Outside a call, or in a thread that
    does not carry it, only a one-node kit knows whose command it is."""

    def __init__(self, runners: Mapping[str, FakeRunner]) -> None:
        self.runners = runners

    def _execute(self, argv: list[str], *, timeout: float, input: str | None,
                 env: Mapping[str, str] | None) -> Result:
        node = _SERVING.get()
        if node is None:
            if len(self.runners) != 1:
                raise cmd.UnexpectedCommand(f"command of no known node: {argv}")
            [node] = self.runners
        return self.runners[node]._execute(argv, timeout=timeout, input=input, env=env)


class InProcessTransport:
    """What ``NodeRpc`` uses instead of ``RpcClient``: the node daemon listening on
    ``host`` answers in this process. A node in ``down`` refuses the connection."""

    def __init__(self, kit: LuKit) -> None:
        self.kit = kit
        self.down: set[str] = set()
        self.asked: list[tuple[str, str, dict[str, Any]]] = []

    async def call(self, host: str, port: int, name: str, args: dict[str, Any],
                   timeout: float, *, pin: str | None = None, readonly: bool = False) -> Any:
        node = self.kit.node_at(host)
        wire_args = json.loads(json.dumps(args))
        self.asked.append((node, name, wire_args))
        if node in self.down:
            raise errors.RpcError("connection refused")
        daemon = self.kit.daemons[node]
        call = CALLS[name]
        if not call.public:
            refusal = daemon.authorize(name, self.kit.master_peer)
            if refusal is not None:
                raise errors.RpcError(refusal)
        handler = daemon.server._handlers[name]  # type: ignore[union-attr]
        token = _SERVING.set(node)
        try:
            result = await asyncio.wait_for(handler(wire_args, self.kit.master_peer), timeout)
        except errors.CardumeError as err:  # as the wire carries it
            raise errors.from_dict(json.loads(json.dumps(err.to_dict()))) from err
        finally:
            _SERVING.reset(token)
        return json.loads(json.dumps(result))

    async def close(self) -> None:
        pass


class KitDuties:
    """The master's cluster duties for logical units, as the master daemon does them: the
    summary (ssconf) to every online node and the configuration to the other master
    candidates, by the real calls; a destroy is only noted."""

    def __init__(self, kit: LuKit) -> None:
        self.kit = kit
        self.destroy_scheduled = False

    async def redistribute(self, full: bool) -> dict[str, str]:
        cfg = self.kit.cfg
        online = [n for n in cfg.sorted_nodes() if not n.offline]
        results = await self.kit.rpc.call_many(online, "ssconf_write",
                                               {"ssconf": self.ssconf_data()})
        failed = {name: str(r.error) for name, r in results.items() if r.error is not None}
        replies = await self.kit.rpc.call_many(
            self.replica_targets(), "config_replace",
            {"serial": cfg.serial, "objects": cfg.all_rows(), "schema": CONFIG_LAYOUT.version})
        failed.update({name: str(r.error) for name, r in replies.items()
                       if r.error is not None})
        return failed

    def replica_targets(self) -> list[objects.Node]:
        master = self.kit.cfg.get_cluster().master_node
        return [n for n in self.kit.cfg.candidates() if n.uuid != master and not n.offline]

    async def replicate(self, change: ChangeSet) -> None:
        """Each commit to the candidates; one that missed a change gets the whole
        configuration, one that does not answer stays behind (verify reports it)."""
        for node in self.replica_targets():
            try:
                reply = await self.kit.rpc.call(node, "config_apply",
                                                {"change": change.to_dict(),
                                                 "schema": CONFIG_LAYOUT.version})
                if not reply.get("applied"):
                    await self.kit.rpc.call(node, "config_replace", {
                        "serial": self.kit.cfg.serial, "objects": self.kit.cfg.all_rows(),
                        "schema": CONFIG_LAYOUT.version})
            except errors.RpcError:
                pass

    def ssconf_data(self, extra: objects.Node | None = None) -> dict[str, Any]:
        nodes = [*self.kit.cfg.nodes.values(), *([extra] if extra is not None else [])]
        return ssconf_mod.build(self.kit.cfg.get_cluster(), nodes, self.kit.cfg.serial)

    def client_tls_files(self) -> tuple[str, str]:
        paths = self.kit.paths[self.kit.master.name]
        return paths.node_cert, paths.node_key

    def schedule_destroy(self) -> None:
        self.destroy_scheduled = True


class LuKit:
    """The cluster: ``nodes`` by name (the first is the master; every node a master
    candidate, on 127.0.0.11, .12, ...), the cluster object made with ``templates``,
    ``hypervisors`` and ``cluster_params``. ``prefixed`` gives each node a storage prefix,
    so that nodes on one machine keep their file disks apart (as vcluster does);
    ``runner_default`` is what each node's FakeRunner answers to unscripted commands
    (None: it raises)."""

    def __init__(self, root: Path, nodes: Iterable[str] = ("node1",), *,
                 templates: Iterable[str] = ("plain", "file", "diskless"),
                 hypervisors: Iterable[str] = ("fake",), prefixed: bool = True,
                 runner_default: tuple[int, str, str] | None = None,
                 **cluster_params: Any) -> None:
        import cardume.cmdlib  # noqa: F401  (registers every logical unit, as the master does)
        self.root = root
        self.loop = asyncio.new_event_loop()
        group = objects.NodeGroup(name="default")
        self.nodes = [objects.Node(name=name, primary_ip=f"127.0.0.{11 + i}", group=group.uuid,
                                   master_candidate=True) for i, name in enumerate(nodes)]
        self.master = self.nodes[0]
        ca_cert, ca_key = tls.create_ca(CLUSTER_NAME)

        # the nodes: each joined (a CA-signed certificate), with its own state directory
        self.paths: dict[str, NodePaths] = {}
        self.runners: dict[str, FakeRunner] = {}
        for node in self.nodes:
            paths = self.paths[node.name] = NodePaths(str(root / node.name))
            ensure_identity(paths, node.name)
            with open(paths.node_cert, "rb") as handle:
                signed = tls.sign_node_cert(ca_cert, ca_key, handle.read(), node.name,
                                            [node.primary_ip])
            Path(paths.node_cert).write_bytes(signed)
            Path(paths.ca_cert).write_bytes(ca_cert)
            os.unlink(paths.join_secret)
            identity: dict[str, Any] = {"name": node.name}
            if prefixed:
                identity["storage_prefix"] = self.storage_prefix(node.name)
            write_json_atomic(paths.identity, identity)
            self.runners[node.name] = FakeRunner(default=runner_default)
        master_paths = self.paths[self.master.name]
        master_cert = Path(master_paths.node_cert).read_bytes()
        self.master_peer = PeerInfo(address=self.master.primary_ip,
                                    cert_der=tls._cert_der(master_cert),
                                    fingerprint=tls.fingerprint(master_cert), verified=True)

        # the master's configuration and queue, in the master node's state directory; the
        # instance policy is a local cluster's (the tests' disks are small, often no NICs)
        cluster_params.setdefault("ipolicy", copy.deepcopy(LOCAL_IPOLICY))
        cluster = objects.Cluster(cluster_name=CLUSTER_NAME, master_node=self.master.uuid,
                                  enabled_disk_templates=list(templates),
                                  enabled_hypervisors=list(hypervisors), **cluster_params)
        self.cfg = ConfigWriter(ConfigStore(master_paths.config_db))
        self.sync(self.cfg.commit(add=[cluster, group, *self.nodes], secrets={
            "cluster-ca": {"cert": ca_cert.decode(), "key": ca_key.decode()}}))
        self.daemons = {node.name: NodeDaemon(self.paths[node.name], node.name)
                        for node in self.nodes}
        self._saved_runner = cmd._default
        cmd._default = NodeRunners(self.runners)

        self.transport = InProcessTransport(self)
        self.rpc = NodeRpc(self.transport)  # type: ignore[arg-type]
        self.duties = KitDuties(self)
        self.locks = LockManager()
        self.hosts = root / "hosts"
        self.hosts.write_text("".join(f"{n.primary_ip} {n.name}\n" for n in self.nodes))
        self.queue = JobQueue(JobStore(master_paths.queue_db), self._run_op,
                              max_running=20, validator=self._check_op)
        self.ctx = base.Context(cfg=self.cfg, rpc=self.rpc, locks=self.locks,
                                queue=self.queue, resolver=Resolver([str(self.hosts)]),
                                master=self.duties)
        self.last_job: Job | None = None
        self._raised: dict[int, BaseException] = {}
        # each node's summary as its join left it; then, as a starting master daemon does,
        # the summary (which makes the nodes create their storage directories) and the
        # configuration to the candidates, and each later commit to them
        for paths in self.paths.values():
            write_json_atomic(paths.ssconf, self.duties.ssconf_data())
        failed = self.sync(self.duties.redistribute(full=True))
        assert not failed, failed
        self.cfg.replicate = self.duties.replicate

    # --- running things ----------------------------------------------------------------

    def sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the kit's event loop (the queue and locks live on it)."""
        return self.loop.run_until_complete(coro)

    async def _run_op(self, job: Job, op: Any) -> Any:
        try:
            return await base.run_opcode(self.ctx, job, op)
        except BaseException as err:
            self._raised[job.id] = err
            raise

    def _check_op(self, op: Any) -> None:
        base.check_opcode(self.ctx, op)

    def run(self, what: Any, **values: Any) -> Any:
        """Submit ``what`` (a logical unit or opcode class, or an OP_ID) with ``values`` as
        a one-opcode job, wait for it to end; its result, or the error it ended with."""
        op_id = what if isinstance(what, str) else getattr(what, "OP", what).OP_ID

        async def submit_and_finish() -> Job:
            # submitted on the loop, as the master's socket server does
            job_id = self.queue.submit([{"OP_ID": op_id, **values}])
            job = self.queue.get(job_id)
            async with asyncio.timeout(60):
                while not job.finalized:
                    await self.queue.wait_for_change(job.id, job.status,
                                                     job.log[-1][0] if job.log else 0, 60)
            return job
        job = self.last_job = self.sync(submit_and_finish())
        raised = self._raised.pop(job.id, None)
        if job.status != "success":
            if raised is not None:
                raise raised
            raise errors.from_dict(next(r for r in job.op_result if isinstance(r, dict)))
        return job.op_result[0]

    def use_runner(self, node: str, runner: FakeRunner) -> FakeRunner:
        """From now on the node's commands go to ``runner``."""
        self.runners[node] = runner
        return runner

    def log(self) -> list[str]:
        """The messages of the last job's log."""
        assert self.last_job is not None
        return [entry[3] for entry in self.last_job.log]

    def call(self, node: str, name: str, **args: Any) -> Any:
        """One node call, as the master makes it."""
        return self.sync(self.rpc.call(self.cfg.expand_node(node), name, args))

    # --- where things are --------------------------------------------------------------

    def node_at(self, host: str) -> str:
        for node in self.cfg.nodes.values():
            if node.primary_ip == host:
                return node.name
        raise errors.RpcError(f"{host}: no node daemon at this address")

    def storage_prefix(self, node: str) -> str:
        return str(self.root / node / "disk")

    def local(self, node: str, cluster_path: str) -> Path:
        """Where a file disk's cluster path is on a node."""
        return Path(self.storage_prefix(node) + cluster_path)

    @property
    def asked(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every node call made: (node, call, arguments)."""
        return self.transport.asked

    def close(self) -> None:
        cmd._default = self._saved_runner
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()
        self.cfg.store.close()
        self.queue.store.close()


def make(root: Path, **kwargs: Any) -> LuKit:
    return LuKit(root, **kwargs)
