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
from dataclasses import dataclass, field
from typing import Any

from cardume import errors, objects, tls
from cardume.cmdlib import base as cmdlib_base
from cardume.config import ssconf
from cardume.config.store import ChangeSet, ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.jobs import locks
from cardume.jobs.queue import Job, JobQueue
from cardume.jobs.store import JobStore
from cardume.paths import NodePaths, write_json_atomic
from cardume.resolver import Resolver
from cardume.rpc.client import NodeRpc
from cardume.rpc.transport import RpcClient

log = logging.getLogger("cardume.masterd")

REPLICATION_WAIT = 10.0  # seconds a commit waits for the candidates before moving on
ARCHIVE_AGE = 6 * 3600.0  # finished jobs leave `gnt-job list` after this, as in Ganeti
ARCHIVE_EVERY = 600.0


@dataclass
class _ReplicaState:
    queue: asyncio.Queue[tuple[ChangeSet, asyncio.Future[None]]] = field(
        default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    in_sync: bool = False


class MasterDaemon:
    def __init__(self, paths: NodePaths) -> None:
        self.paths = paths
        self.identity = paths.read_identity()
        self.name = str(self.identity.get("name", ""))
        self._replicas: dict[str, _ReplicaState] = {}
        self._server: asyncio.AbstractServer | None = None
        self._stopping = asyncio.Event()
        self._destroy = False
        self._background: set[asyncio.Task[Any]] = set()

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
        self.locks = locks.LockManager()
        self.queue = JobQueue(JobStore(self.paths.queue_db), self._run_op,
                              cluster.max_running_jobs, validator=self._check_op)
        self.ctx = cmdlib_base.Context(cfg=self.cfg, rpc=self.rpc, locks=self.locks,
                                       queue=self.queue, resolver=self.resolver(),
                                       master=self)
        import cardume.cmdlib  # noqa: F401  (registers every logical unit)
        from cardume.luxi_server import MAX_MESSAGE, LuxiServer
        requeued, failed = self.queue.recover()
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
        self.spawn(self.redistribute(full=False))
        self.spawn(self._housekeeping())
        log.info("master daemon for cluster %s running on %s", cluster.cluster_name, self.name)

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
        """Periodic upkeep (the part of Ganeti's watcher that belongs to the master)."""
        while True:
            archived = self.queue.autoarchive(ARCHIVE_AGE)
            if archived:
                log.info("archived %d finished jobs", archived)
            await asyncio.sleep(ARCHIVE_EVERY)

    # --- replication to master candidates ------------------------------------------------------

    def _replica_targets(self) -> list[objects.Node]:
        master = self.cfg.get_cluster().master_node
        return [n for n in self.cfg.candidates() if n.uuid != master]

    async def _replicate(self, change: ChangeSet) -> None:
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
                        reply = await self.rpc.call(node, "config_apply",
                                                    {"change": change.to_dict()})
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
        await self.rpc.call(node, "config_replace",
                            {"serial": self.cfg.serial, "objects": self.cfg.all_rows()})

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
        results = await self.rpc.call_many(online, "ssconf_write", {"ssconf": summary})
        for name, result in results.items():
            if result.error is not None:
                failed[name] = str(result.error)
        targets = self._replica_targets()
        if not full:
            serials = await self.rpc.call_many(targets, "config_serial", {})
            targets = [n for n in targets if serials[n.name].error is None
                       and serials[n.name].value != self.cfg.serial]
        replies = await self.rpc.call_many(
            targets, "config_replace", {"serial": self.cfg.serial,
                                        "objects": self.cfg.all_rows()})
        for name, result in replies.items():
            node = self.cfg.find_node(name)
            if result.error is not None:
                failed[name] = str(result.error)
            elif node is not None:
                state = self._replicas.setdefault(node.uuid, _ReplicaState())
                state.in_sync = True
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
        await self.queue.shutdown()
        if self._destroy:
            await self._destroy_local()
        await self.rpc_client.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.master_socket)

    async def _destroy_local(self) -> None:
        master = self.cfg.master_node()
        with contextlib.suppress(errors.CardumeError):
            await self.rpc.call(master, "leave", {"destroy": True})
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
    args = parser.parse_args(argv)
    paths = NodePaths(args.root)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s masterd %(levelname)s %(message)s")
    return asyncio.run(_amain(paths))


async def _amain(paths: NodePaths) -> int:
    daemon = MasterDaemon(paths)
    try:
        await daemon.start()
    except errors.CardumeError as err:
        print(f"cardume-masterd: {err}", file=sys.stderr)
        return err.exit_code
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    write_pid(paths.pidfile("masterd"))
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

