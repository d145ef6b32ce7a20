"""The REST daemon beside the master daemon: started with it, stopped with it, and its
files kept in the configuration so they follow the master role.

The REST daemon's three files live on the master node, where an admin edits them as in
Ganeti: its certificate (``certs/rapi.pem``), its users (``rapi/users``) and its extra
arguments (``rapi/options``). Each is also a secret of the configuration, which is
replicated to every master candidate: the master daemon pushes a file there within
``SYNC_EVERY`` seconds of a change (at once on SIGHUP, which ``gnt-cluster renew-crypto``
sends), and when a master daemon starts (after ``master-failover`` too) it writes the
configuration's copies to its node, unless the local file was changed after the copy was
taken (an edit made while no master daemon ran). One mechanism, no extra node call: the
configuration's replication already reaches exactly the nodes that may become master.

The REST daemon is reloaded (SIGHUP) when its certificate changes and restarted when its
options do; if it dies it is started again, backing off up to ``MAX_BACKOFF`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from cardume import daemons, errors, tls
from cardume.paths import NodePaths, private_dir

if TYPE_CHECKING:
    from cardume.config.writer import ConfigWriter

log = logging.getLogger("cardume.master.rapi")

SYNC_EVERY = 2.0
MAX_BACKOFF = 60.0
CERT, USERS, OPTIONS = "rapi-cert", "rapi-users", "rapi-options"

USERS_HEADER = """\
# Users of the REST API (Ganeti's format), one a line: NAME PASSWORD [read|write|read,write]
# PASSWORD is plain text, {cleartext}TEXT, or {HA1}HEX where HEX is the MD5 of
# NAME:Ganeti Remote API:PASSWORD. Kept by the master daemon on every master candidate.
"""


def files(paths: NodePaths) -> dict[str, str]:
    return {CERT: paths.rapi_cert, USERS: paths.rapi_users, OPTIONS: paths.rapi_options}


def initial_secrets(paths: NodePaths, cluster_name: str) -> dict[str, dict[str, Any]]:
    """The REST daemon's files of a new cluster (``gnt-cluster init``): a new certificate,
    and the users file this node already has (kept, as Ganeti keeps it) or an empty one."""
    return {CERT: _initial(CERT, cluster_name),
            USERS: _initial(USERS, cluster_name, _read(paths.rapi_users))}


def _initial(key: str, cluster_name: str,
             local: tuple[str, int, tuple[int, int, int]] | None = None) -> dict[str, Any]:
    if local is not None:
        return {"text": local[0], "mtime_ns": local[1]}
    text = tls.self_signed_bundle(cluster_name).decode() if key == CERT else USERS_HEADER
    return {"text": text, "mtime_ns": time.time_ns()}


def options_args(text: str) -> list[str]:
    """The daemon arguments in an options file: whitespace-separated, ``#`` comments."""
    return [word for line in text.splitlines() for word in line.split("#", 1)[0].split()]


def _read(path: str) -> tuple[str, int, tuple[int, int, int]] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            st = os.fstat(handle.fileno())
            return handle.read(), st.st_mtime_ns, (st.st_ino, st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        return None


def _write(path: str, text: str, mtime_ns: int) -> None:
    """Write a private file whole (a reader sees the old or the new content), dated as the
    copy it comes from."""
    private_dir(os.path.dirname(path))
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.utime(tmp, ns=(mtime_ns, mtime_ns))
    os.replace(tmp, path)


class RapiKeeper:
    def __init__(self, paths: NodePaths, cfg: ConfigWriter) -> None:
        self.paths = paths
        self.cfg = cfg
        self._seen: dict[str, tuple[int, int, int] | None] = {}
        self._wake = asyncio.Event()
        self._pid: int | None = None
        self._args: list[str] = []
        self._next_start = 0.0
        self._backoff = SYNC_EVERY

    def wake(self) -> None:
        """Look at the files now (SIGHUP)."""
        self._wake.set()

    # --- files ---------------------------------------------------------------------------

    async def restore(self) -> None:
        """At start: the configuration's copies to this node, or this node's newer files
        (or a new certificate and users file, for a cluster made before them) to it."""
        push: dict[str, dict[str, Any] | None] = {}
        for key, path in files(self.paths).items():
            stored = self.cfg.secrets.get(key)
            local = _read(path)
            if stored is not None and (local is None or (
                    local[0] != stored["text"] and local[1] <= int(stored["mtime_ns"]))):
                _write(path, str(stored["text"]), int(stored["mtime_ns"]))
            elif local is not None and (stored is None or local[0] != stored["text"]):
                push[key] = self._checked(key, local[0], local[1])
            elif local is None and stored is None and key != OPTIONS:
                made = _initial(key, self.cfg.get_cluster().cluster_name)
                _write(path, made["text"], made["mtime_ns"])
                push[key] = made
            found = _read(path)
            self._seen[key] = found[2] if found else None
        await self._commit({k: v for k, v in push.items() if v is not None})

    def _checked(self, key: str, text: str, mtime_ns: int) -> dict[str, Any] | None:
        if key == CERT:
            try:
                tls.split_bundle(text.encode(), self.paths.rapi_cert)
            except errors.CardumeError as err:
                log.error("not taking the REST daemon's certificate file: %s", err)
                return None
        return {"text": text, "mtime_ns": mtime_ns}

    async def _commit(self, secrets: dict[str, dict[str, Any] | None]) -> bool:
        if not secrets:
            return True
        try:
            await self.cfg.commit(secrets=secrets)
        except errors.CardumeError as err:
            log.error("could not keep the REST daemon's files in the configuration: %s", err)
            return False
        log.info("REST daemon files kept in the configuration: %s", ", ".join(sorted(secrets)))
        return True

    async def sync(self) -> set[str]:
        """Push the files changed since last looked at; the keys that changed."""
        changed: dict[str, dict[str, Any] | None] = {}
        for key, path in files(self.paths).items():
            local = _read(path)
            stamp = local[2] if local else None
            if stamp == self._seen.get(key):
                continue
            self._seen[key] = stamp
            stored = self.cfg.secrets.get(key)
            if local is None:
                if key == CERT and stored is not None:  # the daemon cannot run without it
                    _write(path, str(stored["text"]), int(stored["mtime_ns"]))
                    found = _read(path)
                    self._seen[key] = found[2] if found else None
                elif stored is not None:
                    changed[key] = None
                continue
            if stored is not None and stored.get("text") == local[0]:
                continue
            checked = self._checked(key, local[0], local[1])
            if checked is not None:
                changed[key] = checked
        if not await self._commit(changed):
            for key in changed:
                self._seen[key] = None  # try again next time
            return set()
        return set(changed)

    # --- the daemon ----------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the files in sync and the REST daemon running, until cancelled."""
        await self.restore()
        while True:
            try:
                changed = await self.sync()
                running = daemons.read_pid(self.paths, "rapi")
                if running is None:
                    self._reap()
                    if time.monotonic() >= self._next_start:
                        await self._start()
                elif OPTIONS in changed:
                    log.info("REST daemon options changed; restarting it")
                    await self.stop()
                    await self._start()
                elif CERT in changed:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(running, signal.SIGHUP)
            except Exception:
                log.exception("looking after the REST daemon failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SYNC_EVERY)
            self._wake.clear()

    async def _start(self) -> None:
        found = _read(self.paths.rapi_options)
        self._args = options_args(found[0]) if found else []
        # a predecessor left by a killed master daemon would hold the port
        await asyncio.to_thread(daemons.stop, self.paths, "rapi")
        try:
            self._pid = await asyncio.to_thread(
                daemons.start, self.paths, "rapi", ["--exit-with-parent", *self._args])
        except errors.CardumeError as err:
            self._next_start = time.monotonic() + self._backoff
            log.error("the REST daemon did not start (next try in %.0fs): %s",
                      self._backoff, err)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            self._reap()
            return
        self._backoff = SYNC_EVERY
        log.info("REST daemon started (pid %d)", self._pid)

    def _reap(self) -> None:
        """Collect the exit status of a REST daemon this process started (no zombie)."""
        if self._pid is not None:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(self._pid, os.WNOHANG)[0]:
                    self._pid = None

    async def stop(self) -> None:
        await asyncio.to_thread(daemons.stop, self.paths, "rapi")
        self._reap()

    async def close(self) -> None:
        """At the master daemon's exit. No last push to the configuration: during a master
        failover the new master has already taken the configuration's serial, and a change
        committed here would fork it (an edit of the last seconds is lost instead)."""
        await self.stop()
