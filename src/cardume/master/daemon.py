"""The master daemon: owns the configuration and the job queue, serves the CLI socket.

One asyncio loop runs everything: the socket server, the jobs (one task each), and the
replication of config changes to the master candidates. SQLite writes are short and
synchronous on the loop, which keeps every change ordered without further locking.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from cardume import errors, objects, sdnotify, tls
from cardume.cmdlib import base as cmdlib_base
from cardume.config import ssconf
from cardume.config.store import LAYOUT as CONFIG_LAYOUT
from cardume.config.store import ChangeSet, ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.jobs import locks
from cardume.jobs.queue import RECOVERED_MESSAGE, Job, JobQueue
from cardume.jobs.replication import QueueReplicator
from cardume.jobs.store import TAKEOVER_KEY, JobStore
from cardume.master.rapi_keeper import RapiKeeper
from cardume.paths import PRIVATE_UMASK, NodePaths, write_json_atomic
from cardume.resolver import Resolver
from cardume.rpc.client import NodeRpc
from cardume.rpc.transport import RpcClient

log = logging.getLogger("cardume.master.daemon")

REPLICATION_WAIT = 10.0  # seconds a commit waits for the candidates before moving on
ARCHIVE_AGE = 6 * 3600.0  # finished jobs leave `gnt-job list` after this, as in Ganeti
ARCHIVE_EVERY = 600.0
UPKEEP_EVERY = 5.0  # seconds between checks for a disk that filled up (see _housekeeping)
UNDO_EVERY = 30.0  # seconds between tries to undo what failed jobs left on unanswering nodes
VOTE_TIMEOUT = 5.0


@dataclass
class _ReplicaState:
    queue: asyncio.Queue[tuple[ChangeSet, asyncio.Future[None]]] = field(
        default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    in_sync: bool = False


class MasterDaemon:
    def __init__(self, paths: NodePaths, voting: bool = True) -> None:
        self.paths = paths
        self.voting = voting
        self.identity = paths.read_identity()
        self.name = str(self.identity.get("name", ""))
        self._replicas: dict[str, _ReplicaState] = {}
        self._server: asyncio.AbstractServer | None = None
        self._stopping = asyncio.Event()
        self._destroy = False
        self._background: set[asyncio.Task[Any]] = set()
        self._queue_replication = False

    # --- start-up --------------------------------------------------------------------------

    async def start(self) -> None:
        store = ConfigStore(self.paths.config_db)
        self.cfg = ConfigWriter(store, replicate=self._replicate)
        cluster = self.cfg.get_cluster()
        master = self.cfg.nodes.get(cluster.master_node)
        if master is None or master.name != self.name:
            owner = master.name if master else "unknown"
            raise errors.WrongState(f"this node ({self.name}) is not the master; "
                                    f"the configuration names {owner}")
        self.rpc_client = RpcClient(tls.client_context(*self.client_tls_files(),
                                                       self.paths.ca_cert))
        self.rpc = NodeRpc(self.rpc_client)
        if self.voting:
            await self._check_still_master()
        self.locks = locks.LockManager()
        job_store = JobStore(self.paths.queue_db)
        if job_store.get_meta("epoch") is None:
            job_store.set_meta("epoch", uuid.uuid4().hex)
        job_store.restore_reserve()
        self.queue_replicator = QueueReplicator(job_store, self._replica_targets, self.rpc,
                                                REPLICATION_WAIT)
        job_store.on_change = self.queue_replicator.changed
        self.queue = JobQueue(job_store, self._run_op, cluster.max_running_jobs,
                              validator=self._check_op)
        self.queue.durable = self.queue_replicator.synced
        self.ctx = cmdlib_base.Context(cfg=self.cfg, rpc=self.rpc, locks=self.locks,
                                       queue=self.queue, resolver=self.resolver(),
                                       master=self)
        import cardume.cmdlib  # noqa: F401  (registers every logical unit)
        from cardume.master.luxi_server import MAX_MESSAGE, LuxiServer
        taken_over = job_store.get_meta(TAKEOVER_KEY) is not None
        if taken_over:
            # The nodes still name the old master until the first redistribution: a job
            # started before it would have its node calls refused.
            self.queue.hold()
        requeued, failed = self.queue.recover(self._recovery_reason(job_store))
        if requeued or failed:
            log.info("job queue recovered: %d requeued, %d ended as error", requeued, failed)
        # This node's own summary names it master before the socket opens, so a command
        # started right after a failover finds this daemon (the other nodes get theirs from
        # the redistribution below).
        write_json_atomic(self.paths.ssconf, self.ssconf_data())
        os.makedirs(self.paths.run, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.master_socket)
        self.luxi = LuxiServer(self)
        self._server = await asyncio.start_unix_server(
            self.luxi.handle, path=self.paths.master_socket, limit=MAX_MESSAGE)
        os.chmod(self.paths.master_socket, 0o600)
        self.spawn(self._first_redistribution())
        self.spawn(self._housekeeping())
        self.rapi = RapiKeeper(self.paths, self.cfg)  # the REST daemon lives as long as this
        self._rapi_task = asyncio.get_running_loop().create_task(self.rapi.run())
        log.info("master daemon for cluster %s running on %s", cluster.cluster_name, self.name)

    async def _first_redistribution(self) -> None:
        """Tell every node who is master, then start sending the job queue: candidates take
        a replica only from the node their summary names master."""
        try:
            await self.redistribute(full=False)
        finally:
            self._queue_replication = True
            self.queue_replicator.start()
            self.queue.release()
        await self._undo_interrupted()

    async def _undo_interrupted(self) -> None:
        """What ended jobs left half made (this daemon's predecessor died during them, or a
        node was down when they failed), taken away now that the nodes can be asked."""
        if not self.queue.undo_pending:
            return
        try:
            left = await cmdlib_base.undo_interrupted(self.ctx)
        except Exception:
            log.exception("undoing what interrupted jobs left failed")
            return
        if left:
            log.warning("%d job(s) still hold things to undo on nodes that do not answer",
                        left)

    def _recovery_reason(self, store: JobStore) -> str:
        """What ends a job that was running when this daemon started: the previous master
        daemon's death, or the move of the master role (a failover left a note)."""
        previous = store.get_meta(TAKEOVER_KEY)
        if previous is None:
            return RECOVERED_MESSAGE
        store.set_meta(TAKEOVER_KEY, None)
        if previous == self.name:
            return RECOVERED_MESSAGE
        return (f"the master role moved from {previous} to {self.name} while this job was "
                "running; its effects may be partial, check the objects it touched")

    async def _check_still_master(self) -> None:
        """Refuse to run when the other nodes name another master: this node was master once,
        was failed over while away, and must not run the jobs it still holds (Ganeti's
        voting at master daemon start)."""
        cfg = self.cfg
        others = [n for n in cfg.sorted_nodes() if n.uuid != cfg.get_cluster().master_node
                  and not n.offline]
        if not others:
            return
        rpc = self.rpc.timed(VOTE_TIMEOUT)
        replies = await rpc.each(others, rpc.master_info)
        named = [r.value.get("master") for r in replies.values()
                 if r.error is None and isinstance(r.value, dict)]
        elsewhere = [m for m in named if m and m != self.name]
        if named and len(elsewhere) * 2 > len(named):
            winner = max(set(elsewhere), key=elsewhere.count)
            raise errors.WrongState(
                f"this node ({self.name}) is no longer the master: {len(elsewhere)} of "
                f"{len(named)} nodes that answered name {winner}",
                f"run 'gnt-cluster master-failover' here to take the role back, or "
                f"'gnt-node add --readd' from {winner}")

    def resolver(self) -> Resolver:
        cluster = self.cfg.get_cluster()
        return Resolver([cluster.hosts_file] if cluster.hosts_file else [])

    def client_tls_files(self) -> tuple[str, str]:
        return self.paths.node_cert, self.paths.node_key

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _check_op(self, op: Any) -> None:
        cmdlib_base.check_opcode(self.ctx, op)

    async def _run_op(self, job: Job, op: Any) -> Any:
        return await cmdlib_base.run_opcode(self.ctx, job, op)

    async def _housekeeping(self) -> None:
        """Periodic upkeep (the part of Ganeti's watcher that belongs to the master). One
        bad pass is logged and the next one runs: nothing here may end the loop."""
        next_archive = 0.0
        next_undo = asyncio.get_running_loop().time() + UNDO_EVERY
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._upkeep_store()
                if self.queue.undo_pending and loop.time() >= next_undo:
                    next_undo = loop.time() + UNDO_EVERY
                    await self._undo_interrupted()
                if loop.time() >= next_archive:
                    next_archive = loop.time() + ARCHIVE_EVERY
                    archived = self.queue.autoarchive(ARCHIVE_AGE)
                    if archived:
                        log.info("archived %d finished jobs", archived)
            except Exception:
                log.exception("housekeeping pass failed; trying again in %gs", UPKEEP_EVERY)
            await asyncio.sleep(UPKEEP_EVERY)

    def _upkeep_store(self) -> None:
        """After the disk filled up: write what was held back, then take the reserve again
        (which lets new jobs in)."""
        store = self.queue.store
        if not store.full and not self.queue.has_unsaved:
            return
        left = self.queue.flush_unsaved()
        if left:
            log.warning("%d job(s) still wait to be written: the disk is full", left)
        elif store.restore_reserve():
            log.info("the job queue's disk has room again; accepting jobs")

    # --- replication to master candidates ------------------------------------------------------

    def _replica_targets(self) -> list[objects.Node]:
        master = self.cfg.get_cluster().master_node
        return [n for n in self.cfg.candidates() if n.uuid != master]

    async def _replicate(self, change: ChangeSet) -> None:
        if self._queue_replication:
            self.queue_replicator.start()  # the candidates may have changed with this commit
        futures = []
        loop = asyncio.get_running_loop()
        for node in self._replica_targets():
            state = self._replicas.get(node.uuid)
            if state is None:
                state = self._replicas[node.uuid] = _ReplicaState()
            if state.task is None or state.task.done():
                state.task = loop.create_task(self._replica_worker(node.uuid, state))
            future: asyncio.Future[None] = loop.create_future()
            state.queue.put_nowait((change, future))
            futures.append(future)
        if futures:
            await asyncio.wait(futures, timeout=REPLICATION_WAIT)

    async def _replica_worker(self, node_uuid: str, state: _ReplicaState) -> None:
        """Send change sets to one candidate in serial order; resync it whole if it lags."""
        while True:
            change, future = await state.queue.get()
            node = self.cfg.nodes.get(node_uuid)
            try:
                if node is None or node.offline or not node.master_candidate:
                    continue
                if state.in_sync:
                    try:
                        reply = await self.rpc.config_apply(node, change.to_dict(),
                                                            CONFIG_LAYOUT.version)
                        state.in_sync = bool(reply.get("applied"))
                    except errors.RpcError as err:
                        log.warning("replication to %s failed: %s", node.name, err)
                        state.in_sync = False
                        continue
                if not state.in_sync and state.queue.empty():
                    await self._send_full(node)
                    state.in_sync = True
            except errors.CardumeError as err:
                log.warning("replication to %s failed: %s", node.name if node else node_uuid,
                            err)
                state.in_sync = False
            finally:
                if not future.done():
                    future.set_result(None)

    async def _send_full(self, node: objects.Node) -> None:
        await self.rpc.config_replace(node, self.cfg.serial, self.cfg.all_rows(),
                                      CONFIG_LAYOUT.version)

    # --- ssconf and redistribution --------------------------------------------------------

    def ssconf_data(self, extra: objects.Node | None = None) -> dict[str, Any]:
        """The summary every node keeps: who is master, which nodes exist, where they are."""
        nodes = [*self.cfg.nodes.values(), *([extra] if extra is not None else [])]
        return ssconf.build(self.cfg.get_cluster(), nodes, self.cfg.serial)

    async def redistribute(self, full: bool) -> dict[str, str]:
        """Push ssconf to every online node, and the config to candidates that need it."""
        summary = self.ssconf_data()
        write_json_atomic(self.paths.ssconf, summary)
        # the master's own node daemon too: it creates the storage directories
        online = [n for n in self.cfg.sorted_nodes() if not n.offline]
        failed: dict[str, str] = {}
        results = await self.rpc.each(online, self.rpc.ssconf_write, summary)
        for name, result in results.items():
            if result.error is not None:
                failed[name] = str(result.error)
        targets = self._replica_targets()
        if not full:
            serials = await self.rpc.each(targets, self.rpc.config_serial)
            targets = [n for n in targets if serials[n.name].error is None
                       and serials[n.name].value != self.cfg.serial]
        replies = await self.rpc.each(targets, self.rpc.config_replace, self.cfg.serial,
                                      self.cfg.all_rows(), CONFIG_LAYOUT.version)
        for name, result in replies.items():
            node = self.cfg.find_node(name)
            if result.error is not None:
                failed[name] = str(result.error)
                log.warning("configuration replica on %s not replaced: %s", name,
                            result.error)
            elif node is not None:
                state = self._replicas.setdefault(node.uuid, _ReplicaState())
                state.in_sync = True
        if self._queue_replication:
            self.queue_replicator.retry_now()
        return failed

    # --- shutdown and destroy ----------------------------------------------------------------

    def schedule_destroy(self) -> None:
        self._destroy = True
        asyncio.get_running_loop().call_later(0.2, self._stopping.set)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run_until_stopped(self) -> None:
        await self._stopping.wait()
        if self._server is not None:
            self._server.close()
        self._rapi_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._rapi_task
        await self.rapi.close()
        await self.queue.shutdown()
        await self.queue_replicator.close()
        if self._destroy:
            await self._destroy_local()
        await self.rpc_client.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.master_socket)

    async def _destroy_local(self) -> None:
        master = self.cfg.master_node()
        with contextlib.suppress(errors.CardumeError):
            await self.rpc.leave(master, destroy=True)
        self.cfg.store.close()
        self.queue.store.close()
        for path in (self.paths.config_db, self.paths.queue_db):
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)
        log.info("cluster destroyed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cardume-masterd",
                                     description="cardume master daemon")
    parser.add_argument("--root", default="/var/lib/cardume", help="the node's state directory")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    parser.add_argument("--no-voting", dest="voting", action="store_false",
                        help="start without asking the other nodes who is master (master "
                             "failover has asked them already)")
    args = parser.parse_args(argv)
    os.umask(PRIVATE_UMASK)
    paths = NodePaths(args.root)
    paths.make_private()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format=sdnotify.log_format("masterd"))
    return asyncio.run(_amain(paths, args.voting))


async def _amain(paths: NodePaths, voting: bool) -> int:
    daemon = MasterDaemon(paths, voting)
    try:
        await daemon.start()
    except errors.CardumeError as err:
        print(f"cardume-masterd: {err}", file=sys.stderr)
        return err.exit_code
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    # HUP: the REST daemon's files changed (gnt-cluster renew-crypto): take them now
    loop.add_signal_handler(signal.SIGHUP, daemon.rapi.wake)
    write_pid(paths.pidfile("masterd"))
    sdnotify.ready(f"serving {paths.master_socket}")
    try:
        await daemon.run_until_stopped()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths.pidfile("masterd"))
    return 0


def write_pid(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="ascii") as handle:
        handle.write(f"{os.getpid()}\n")


if __name__ == "__main__":
    sys.exit(main())

