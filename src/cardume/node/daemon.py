"""The node daemon: HTTPS with mutual TLS on port 1811, executing node-local actions.

Before it joins a cluster it serves only ``version`` and ``join`` (see rpc/join.py), to
anyone, over TLS with its self-signed certificate. After joining it accepts only clients
whose certificate the cluster CA signed. It keeps no cluster state beyond its own files:
ssconf (the cluster summary) and, on master candidates, a replica of the configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from cardume import __version__, constants, errors, sdnotify, tls
from cardume.node import certs, facts, osapi, storage
from cardume.node.local_calls import LocalCalls
from cardume.paths import PRIVATE_UMASK, NodePaths, read_json, write_json_atomic
from cardume.rpc import calls
from cardume.rpc.calls import CALLS, serves
from cardume.rpc.http import PeerInfo
from cardume.rpc.join import make_token
from cardume.rpc.server import RpcServer

if TYPE_CHECKING:  # the stores (and sqlite3, ~1.4 MiB) load where a replica is kept
    from cardume.config.store import ConfigStore
    from cardume.jobs.store import JobStore

log = logging.getLogger("cardume.noded")


def ensure_identity(paths: NodePaths, name: str | None) -> None:
    """Create the node's key, self-signed certificate and join secret on first start."""
    os.makedirs(paths.certs, mode=0o700, exist_ok=True)
    if not os.path.exists(paths.node_key):
        key = tls.new_private_key()
        _write_secret_file(paths.node_key, key)
        cert = tls.self_signed(name or os.uname().nodename, key)
        _write_secret_file(paths.node_cert, cert, mode=0o644)
    if not os.path.exists(paths.ca_cert) and not os.path.exists(paths.join_secret):
        _write_secret_file(paths.join_secret, secrets.token_urlsafe(32).encode())


def _write_secret_file(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def join_token(paths: NodePaths) -> str:
    """The token an admin passes to ``gnt-node add --join-token``."""
    try:
        with open(paths.join_secret, encoding="ascii") as handle:
            secret = handle.read().strip()
    except FileNotFoundError:
        raise errors.WrongState("this node already belongs to a cluster, so it has no join "
                                "token", "remove it from its cluster first") from None
    with open(paths.node_cert, "rb") as handle:
        return make_token(handle.read(), secret)


class NodeDaemon:
    def __init__(self, paths: NodePaths, name: str) -> None:
        self.paths = paths
        self.name = name
        self._store: ConfigStore | None = None
        self._queue: JobStore | None = None
        self._ssconf: tuple[tuple[int, int], dict[str, Any]] | None = None
        self._caller_names: dict[bytes, str | None] = {}
        self.server: RpcServer | None = None
        self.ssl_context = tls.server_context(paths.node_cert, paths.node_key,
                                              paths.ca_cert if self.joined else None)
        self.local = LocalCalls(paths, name, self.ssconf)
        # every call of the table, each served once: this daemon's own and the local ones
        handlers = calls.handlers(self, *self.local.providers)
        public = {c.name for c in CALLS.values() if c.public}
        self.server = RpcServer(handlers, self.ssl_context, public=public,
                                authorize=self.authorize)

    @property
    def joined(self) -> bool:
        return os.path.exists(self.paths.ca_cert)

    def ssconf(self) -> dict[str, Any]:
        """The cluster summary, re-read only when its file changed (every call reads it)."""
        try:
            info = os.stat(self.paths.ssconf)
        except FileNotFoundError:
            self._ssconf = None
            return {}
        stamp = (info.st_mtime_ns, info.st_ino)
        if self._ssconf is None or self._ssconf[0] != stamp:
            self._ssconf = (stamp, read_json(self.paths.ssconf) or {})
        return self._ssconf[1]

    # --- who may call what ---------------------------------------------------------------------

    def caller_name(self, peer: PeerInfo) -> str | None:
        """The node a (CA-verified) client certificate names; cached per certificate."""
        if not peer.cert_der or not peer.verified:
            return None
        name = self._caller_names.get(peer.cert_der)
        if name is None and peer.cert_der not in self._caller_names:
            if len(self._caller_names) > 256:
                self._caller_names.clear()
            name = self._caller_names[peer.cert_der] = certs.common_name(peer.cert_der)
        return name

    def authorize(self, name: str, peer: PeerInfo) -> str | None:
        """The node-role rule of the call table, from the caller's certificate and this
        node's current view of the roles (its ssconf); None allows the call."""
        call = CALLS.get(name)
        if call is None or call.public:
            return None
        caller = self.caller_name(peer)
        ssconf = self.ssconf()
        master = ssconf.get("master_node")
        if caller is not None and caller == master:
            return None
        entry = (ssconf.get("nodes") or {}).get(caller) if caller else None
        if call.caller == calls.NODE and entry is not None:
            return None
        if call.caller == calls.CANDIDATE and entry is not None \
                and entry.get("master_candidate"):
            return None
        who = {calls.MASTER: f"the master ({master})" if master else "the master",
               calls.CANDIDATE: "the master or a master candidate",
               calls.NODE: "a node of the cluster"}[call.caller]
        if caller is None:
            return f"call '{name}' refused: only {who} may make it"
        if entry is None:
            return f"call '{name}' refused: {caller} is not a node of this cluster"
        return f"call '{name}' refused to {caller}: only {who} may make it"

    def store(self) -> ConfigStore:
        if self._store is None:
            from cardume.config.store import ConfigStore
            self._store = ConfigStore(self.paths.config_db)
        return self._store

    def queue_store(self) -> JobStore:
        if self._queue is None:
            from cardume.jobs.store import JobStore
            self._queue = JobStore(self.paths.queue_db)
        return self._queue

    def _is_master(self) -> bool:
        return self.ssconf().get("master_node") == self.name

    # --- joining and leaving --------------------------------------------------------------------

    @serves
    async def version(self, peer: PeerInfo) -> dict[str, Any]:
        return {"protocol": constants.PROTOCOL_VERSION, "version": __version__,
                "name": self.name, "joined": self.joined,
                "cluster_name": self.ssconf().get("cluster_name")}

    @serves
    async def join(self, peer: PeerInfo, secret: str, cluster_name: str, node_name: str,
                   ca_cert: str, node_cert: str, ssconf: dict[str, Any]) -> dict[str, Any]:
        if self.joined:
            cluster = self.ssconf().get("cluster_name", "another cluster")
            raise errors.AlreadyExists(f"node {self.name} already belongs to cluster {cluster}",
                                       "remove it from that cluster first")
        try:
            with open(self.paths.join_secret, encoding="ascii") as handle:
                expected = handle.read().strip()
        except FileNotFoundError:
            raise errors.WrongState(f"node {self.name} has no join secret") from None
        if not hmac.compare_digest(secret, expected):
            raise errors.WrongInput(f"join refused by {self.name}: the token's secret is wrong",
                                    "print a fresh token with 'cardume node join-token'")
        cert = node_cert.encode()
        if not certs.matches_key(cert, self.paths.node_key, self.paths.certs):
            raise errors.WrongInput("join refused: the issued certificate is not for this "
                                    "node's key")
        _write_secret_file(self.paths.ca_cert, ca_cert.encode(), mode=0o644)
        _write_secret_file(self.paths.node_cert, cert, mode=0o644)
        write_json_atomic(self.paths.ssconf, ssconf)
        self._ensure_storage_dirs(ssconf)
        os.unlink(self.paths.join_secret)
        tls.reload_server_context(self.ssl_context, self.paths.node_cert, self.paths.node_key,
                                  self.paths.ca_cert)
        log.info("joined cluster %s", cluster_name)
        return {"fingerprint": certs.fingerprint(cert)}

    @serves
    async def leave(self, peer: PeerInfo, destroy: bool) -> None:
        """Forget the cluster and go back to waiting for a join, with a new token."""
        self._require_master_peer(peer, self.ssconf().get("master_node"))
        self._close_stores()
        for path in (self.paths.ssconf, self.paths.ca_cert):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if not destroy:
            self._drop_replica()
        with open(self.paths.node_key, "rb") as handle:
            key = handle.read()
        _write_secret_file(self.paths.node_cert, tls.self_signed(self.name, key), mode=0o644)
        _write_secret_file(self.paths.join_secret, secrets.token_urlsafe(32).encode())
        # Switch after this reply has gone out: new connections get the join-only server.
        asyncio.get_running_loop().call_soon(
            tls.reload_server_context, self.ssl_context, self.paths.node_cert,
            self.paths.node_key, None)
        log.info("left the cluster; waiting to be joined again")

    # --- facts and checks -----------------------------------------------------------------------

    @serves
    async def node_info(self, peer: PeerInfo) -> dict[str, Any]:
        ssconf = self.ssconf()
        if facts.answers_at_once(ssconf, self.paths.root):
            return facts.node_info(ssconf, self.paths.root, self.local.storage_prefix)
        return await asyncio.to_thread(facts.node_info, ssconf, self.paths.root,
                                       self.local.storage_prefix)

    @serves
    async def watcher_pause_write(self, peer: PeerInfo, until: float | None) -> None:
        from cardume.rules.watcher_pause import write_pause
        try:
            await asyncio.to_thread(write_pause, self.paths.watcher_pause, until)
        except ValueError as err:
            raise errors.WrongInput(str(err)) from None

    @serves
    async def node_verify(self, peer: PeerInfo, cluster_name: str | None,
                          dirs: dict[str, str] | None, ca_cert: str | None) -> dict[str, Any]:
        missing = {key: path for key, path in (dirs or {}).items()
                   if not os.path.isdir(self._local_dir(key, path))}
        with open(self.paths.node_cert, "rb") as handle:
            cert = handle.read()
        ca = (ca_cert or "").encode()
        cert_info = (certs.status(cert, ca, self.paths.node_cert, self.paths.node_key)
                     if ca else {})
        serial = self.store().serial() if os.path.exists(self.paths.config_db) else None
        return {"version": __version__, "cluster_name": self.ssconf().get("cluster_name"),
                "time": time.time(), "missing_dirs": missing, "cert": cert_info,
                "config_serial": serial}

    @serves
    async def ssconf_write(self, peer: PeerInfo, ssconf: dict[str, Any]) -> None:
        current = self.ssconf()
        if int(ssconf.get("serial", 0)) >= int(current.get("serial", 0)):
            # a newer summary naming the caller as master: a master failover
            self._require_master_peer(peer, ssconf.get("master_node"))
        else:
            self._require_master_peer(peer, current.get("master_node"))
        if current.get("cluster_name") not in (None, ssconf.get("cluster_name")):
            raise errors.WrongState(f"node {self.name} belongs to cluster "
                                    f"{current.get('cluster_name')}")
        if current.get("master_node") != ssconf.get("master_node"):
            # The master moved: while this node was (or was becoming) master, its stores
            # were written by other processes (the master daemon, master-failover), so
            # what is cached of them here is stale; they are opened afresh when needed.
            self._close_stores()
        write_json_atomic(self.paths.ssconf, ssconf)
        await asyncio.to_thread(self._ensure_storage_dirs, ssconf)
        me = ssconf.get("nodes", {}).get(self.name, {})
        if ssconf.get("master_node") != self.name:
            # Another node is master: a master daemon still running here (this node was
            # failed over while away and came back) holds a stale configuration and queue,
            # and must not run their jobs.
            if await stop_daemon(self.paths.pidfile("masterd"), timeout=15.0):
                log.warning("stopped the master daemon here: %s is the master now",
                            ssconf.get("master_node"))
            if not me.get("master_candidate"):
                # no longer a candidate: an old replica must never be taken for the newest
                # configuration or queue by a later master failover, and the CA key in it
                # is no business of a plain node
                self._drop_replica()

    def _local_dir(self, key: str, path: str) -> str:
        """Where a cluster storage directory is on this node (``file`` may be prefixed)."""
        prefix = self.local.storage_prefix
        return prefix + path if key == "file_storage_dir" and prefix else path

    def _ensure_storage_dirs(self, ssconf: dict[str, Any]) -> None:
        """Create the storage directories of the enabled file templates, as init does."""
        templates = ssconf.get("enabled_disk_templates", [])
        for key, template in (("file_storage_dir", constants.DT_FILE),
                              ("shared_file_storage_dir", constants.DT_SHARED_FILE)):
            path = ssconf.get(key)
            if path and template in templates:
                prefix = self.local.storage_prefix if key == "file_storage_dir" else ""
                reason = storage.refused_dir(key, path, self.paths.root, prefix)
                if reason:  # verify reports it (ENODEFILESTORAGEPATHS); never created
                    log.warning("not creating the %s: %s", key, reason)
                    continue
                try:
                    os.makedirs(self._local_dir(key, path), mode=0o750, exist_ok=True)
                except OSError as err:  # reported by cluster verify, not fatal here
                    log.warning("can't create %s %s: %s", key, path, err)

    def _close_stores(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    def _drop_replica(self) -> None:
        self._close_stores()
        for path in (self.paths.config_db, self.paths.queue_db):
            for suffix in ("", "-wal", "-shm", ".reserve"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)

    # --- the configuration replica ---------------------------------------------------------------

    def _check_replica_write(self, peer: PeerInfo) -> None:
        """Only a master candidate keeps replicas, and only the master writes them."""
        if self._is_master():
            raise errors.WrongState(f"node {self.name} is the master; it owns the "
                                    "configuration and takes no replica")
        me = (self.ssconf().get("nodes") or {}).get(self.name) or {}
        if not me.get("master_candidate"):
            raise errors.WrongState(f"node {self.name} is not a master candidate; it keeps "
                                    "no replica of the configuration or the job queue")
        self._require_master_peer(peer, self.ssconf().get("master_node"))

    @staticmethod
    def _require_master_peer(peer: PeerInfo, master: str | None) -> None:
        """Only the master may change what a node believes; an old master that comes back
        after a failover is refused instead of overwriting the new master's state."""
        caller = certs.common_name(peer.cert_der) if peer.cert_der else None
        if master is not None and caller != master:
            raise errors.WrongState(f"refused: {caller or 'an unknown client'} is not the "
                                    f"master ({master} is)")

    def _sender(self, peer: PeerInfo) -> str:
        return self.caller_name(peer) or "the master"

    @serves
    async def config_apply(self, peer: PeerInfo, change: dict[str, Any],
                           schema: int = 0) -> dict[str, Any]:
        self._check_replica_write(peer)
        from cardume import storeschema
        from cardume.config.store import LAYOUT, ChangeSet
        storeschema.check_sent(LAYOUT, schema, self._sender(peer))
        changes = ChangeSet.from_dict(change)
        store = self.store()
        current = store.serial()
        if changes.serial <= current:
            return {"applied": True, "serial": current}
        if changes.serial != current + 1:
            return {"applied": False, "serial": current}
        store.apply(changes)
        return {"applied": True, "serial": changes.serial}

    @serves
    async def config_replace(self, peer: PeerInfo, serial: int,
                             objects: list[Any], schema: int = 0) -> dict[str, Any]:
        self._check_replica_write(peer)
        from cardume import storeschema
        from cardume.config.store import LAYOUT
        storeschema.check_sent(LAYOUT, schema, self._sender(peer))
        rows = [(str(k), str(u), dict(d)) for k, u, d in objects]
        self.store().replace_all(serial, rows)
        return {"serial": serial}

    @serves
    async def config_serial(self, peer: PeerInfo) -> int:
        return self.store().serial() if os.path.exists(self.paths.config_db) else 0

    @serves
    async def config_dump(self, peer: PeerInfo) -> dict[str, Any]:
        if not os.path.exists(self.paths.config_db):
            raise errors.WrongState(f"node {self.name} holds no configuration replica")
        return self.store().dump()

    @serves
    async def master_info(self, peer: PeerInfo) -> dict[str, Any]:
        ssconf = self.ssconf()
        return {"master": ssconf.get("master_node"), "serial": ssconf.get("serial")}

    # --- the job queue replica ------------------------------------------------------------------

    @serves
    async def queue_apply(self, peer: PeerInfo, change: dict[str, Any],
                          reset: bool, schema: int = 0) -> dict[str, Any]:
        self._check_replica_write(peer)
        from cardume import storeschema
        from cardume.jobs.store import LAYOUT
        storeschema.check_sent(LAYOUT, schema, self._sender(peer))
        store = self.queue_store()
        applied = store.apply_changes(change, reset=reset)
        return {"applied": applied, "seq": store.seq}

    def _queue_now(self) -> JobStore | None:
        """This node's queue as it is on disk now (on the master, the master daemon writes
        it), or None when it has none."""
        if not os.path.exists(self.paths.queue_db):
            return None
        store = self.queue_store()
        store.refresh()
        return store

    @serves
    async def queue_serial(self, peer: PeerInfo) -> dict[str, Any]:
        store = self._queue_now()
        if store is None:
            return {"epoch": None, "seq": 0, "next_id": 1}
        return {"epoch": store.get_meta("epoch"), "seq": store.seq,
                "next_id": store.next_id()}

    @serves
    async def queue_dump(self, peer: PeerInfo) -> dict[str, Any]:
        store = self._queue_now()
        if store is None:
            raise errors.WrongState(f"node {self.name} holds no job queue")
        return store.dump()

    # --- master daemon control and tests -------------------------------------------------------

    @serves
    async def master_stop(self, peer: PeerInfo) -> bool:
        return await stop_daemon(self.paths.pidfile("masterd"), timeout=15.0)

    @serves
    async def test_delay(self, peer: PeerInfo, duration: float) -> None:
        if not 0 <= duration <= 86400:
            raise errors.WrongInput(f"invalid delay {duration}: expected 0..86400 seconds")
        await asyncio.sleep(duration)


async def stop_daemon(pidfile: str, timeout: float) -> bool:
    """SIGTERM the daemon in pidfile, then SIGKILL after timeout. True if one was running."""
    try:
        with open(pidfile, encoding="ascii") as handle:
            pid = int(handle.read().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cardume-noded", description="cardume node daemon")
    parser.add_argument("--root", default="/var/lib/cardume", help="the node's state directory")
    parser.add_argument("--name", help="this node's name (default: the host name)")
    parser.add_argument("--bind", help="address to listen on (default: all)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port to listen on (default {constants.DEFAULT_NODED_PORT})")
    parser.add_argument("--storage-prefix", default=None,
                        help="map the file template's paths under this directory on this "
                             "node (kept in node.json; '' to drop it)")
    parser.add_argument("--join-token", action="store_true",
                        help="print this node's join token and exit")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    os.umask(PRIVATE_UMASK)
    paths = NodePaths(args.root)
    paths.make_private()
    identity = paths.read_identity()
    name = args.name or identity.get("name") or os.uname().nodename
    if args.join_token:
        try:
            print(join_token(paths))
        except (errors.CardumeError, FileNotFoundError) as err:
            print(f"cardume-noded: {err}", file=sys.stderr)
            return 1
        return 0
    bind = args.bind if args.bind is not None else identity.get("address", "")
    port = args.port or identity.get("port") or constants.DEFAULT_NODED_PORT
    identity.update(name=name, address=bind, port=port)  # other keys (storage_prefix) stay
    if args.storage_prefix is not None:
        if args.storage_prefix:
            identity["storage_prefix"] = os.path.abspath(args.storage_prefix)
        else:
            identity.pop("storage_prefix", None)
    write_json_atomic(paths.identity, identity)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format=sdnotify.log_format("noded"))
    if not os.path.exists(paths.node_key):  # first start: cryptography stays in a child
        certs.in_child(ensure_identity, paths, name)
    ensure_identity(paths, name)
    return asyncio.run(_amain(paths, name, bind, port))


async def _amain(paths: NodePaths, name: str, bind: str, port: int) -> int:
    daemon = NodeDaemon(paths, name)
    assert daemon.server is not None
    from cardume.node import sentinel
    # before any call: what calls start dies with this daemon, even a SIGKILLed one
    guard = sentinel.guard(paths.run)
    try:
        await daemon.server.start(bind or "0.0.0.0", port)
    except OSError as err:
        print(f"cardume-noded: can't listen on {bind or '*'}:{port}: {err.strerror}",
              file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pidfile = paths.pidfile("noded")
    os.makedirs(paths.run, exist_ok=True)
    with open(pidfile, "w", encoding="ascii") as handle:
        handle.write(f"{os.getpid()}\n")
    if not daemon.joined:
        # never the token itself: logs are read by more people than root
        log.info("not in a cluster yet; 'cardume node join-token' prints the join token")
    log.info("node daemon %s listening on %s:%d", name, bind or "*", port)
    sdnotify.ready(f"listening on {bind or '*'}:{port}")
    try:
        await stop.wait()
    finally:
        killed = osapi.terminate_all()
        if killed:
            log.warning("killed %d OS script(s) still running", killed)
        await daemon.server.close()
        guard.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pidfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
