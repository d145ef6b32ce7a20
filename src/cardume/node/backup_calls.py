"""Node RPC handlers for backups (gnt-backup): snapshots of disks, the OS export and import
scripts (their data streamed one chunk per call: node/backup_stream.py), the export
directory's files, read and written chunk by chunk.

Every export lives in the node's export directory (/var/lib/cardume/export on a real node)
as ``NAME/config.ini`` plus one dump file per disk. An export is built in a staging
directory (``.tmp-`` and 32 hex digits) and renamed to its name only when complete, so a
failed export leaves nothing that looks like an export. Names that reach the file system
are checked here: a single path component of known characters, never ``..``.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from typing import IO, Any

from cardume import errors
from cardume.node import backup_stream, osapi
from cardume.node.callkit import NodeContext, blocking
from cardume.node.cmd import wait_group
from cardume.node.storage import drbd, loop, lvm
from cardume.node.storage.loop import LoopDevices
from cardume.rpc.calls import serves
from cardume.rpc.http import PeerInfo
from cardume.rpc.wire import InstanceSpec

log = logging.getLogger("cardume.noded")

CONFIG_FILE = "config.ini"
SNAPSHOTS_FILE = "snapshots"  # in a staging directory: the LV snapshots made for it
LVM_SNAPSHOT = "lvm:"  # a snapshot named "lvm:VG/LV" is a logical volume, else a file
MAX_CHUNK = 16 * 1024 * 1024
MAX_CONFIG = 1024 * 1024
COPY_BLOCK = 1024 * 1024
SCRIPT_TIMEOUT = osapi.CREATE_TIMEOUT
FILE_TEMPLATES = ("file", "sharedfile")  # a snapshot of these is a (sparse) copy
LVM_TEMPLATES = ("plain", "drbd")  # of these, an LVM snapshot (drbd: of its data volume)
_WORK = re.compile(r"\.tmp-[0-9a-f]{32}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def check_work(work: str) -> str:
    if not _WORK.fullmatch(work):
        raise errors.WrongInput(f"bad staging directory name {work[:80]!r} (expected "
                                "'.tmp-' and 32 hex digits)")
    return work


def check_name(name: str, what: str = "export") -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise errors.WrongInput(f"bad {what} name {name[:80]!r} (expected letters, digits, "
                                "'.', '_' or '-')")
    return name


def _chunk(offset: int, length: int) -> None:
    if offset < 0 or not 0 < length <= MAX_CHUNK:
        raise errors.WrongInput(f"bad chunk {offset}+{length}: at most {MAX_CHUNK} bytes")


class BackupCalls:
    def __init__(self, node: NodeContext) -> None:
        self.node = node

    # --- where things are -------------------------------------------------------------------

    @property
    def root(self) -> str:
        return self.node.paths.export_dir

    def _dir(self, directory: str) -> str:
        """An export or staging directory: its name, or its absolute path directly in the
        export directory (what ``gnt-backup import --src-dir`` may give)."""
        if os.path.isabs(directory):
            real = os.path.realpath(directory)
            if os.path.dirname(real) != os.path.realpath(self.root):
                raise errors.WrongInput(f"'{directory}' is not an export directory of node "
                                        f"{self.node.name} (they are in {self.root})")
            directory = os.path.basename(real)
        if directory.startswith("."):
            return os.path.join(self.root, check_work(directory))
        return os.path.join(self.root, check_name(directory))

    def _work(self, work: str, create: bool = False) -> str:
        path = os.path.join(self.root, check_work(work))
        if create:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            os.makedirs(path, mode=0o700, exist_ok=True)
        return path

    # --- making an export -------------------------------------------------------------------

    @serves
    async def export_snapshot(self, peer: PeerInfo, instance: InstanceSpec, index: int,
                              work: str) -> dict[str, Any]:
        disk = _disk(instance, index)
        if disk.dev_type in LVM_TEMPLATES:
            return {"snapshot": await blocking(self._lv_snapshot, disk, work)}
        if disk.dev_type not in FILE_TEMPLATES:
            return {"snapshot": None}
        dev = self.node.disk(disk)
        source = await blocking(dev.assemble)
        target = os.path.join(await blocking(self._work, work, True), f"snap{index}")
        await blocking(_sparse_copy, source, target, long=True)
        return {"snapshot": os.path.basename(target)}

    def _lv_snapshot(self, disk: Any, work: str) -> str:
        """An LVM snapshot of the disk's (data) volume, as big as the volume, so writes of
        the running instance can't fill it; recorded in the staging directory, whose
        abort removes it."""
        dev = self.node.disk(disk)
        volume = dev.data if isinstance(dev, drbd.DrbdDisk) else dev
        if not isinstance(volume, lvm.LogicalVolume):
            raise errors.WrongInput(f"disk {disk.iv_name or ''} has no logical volume")
        name = _snapshot_lv(volume.name, work)
        folder = self._work(work, create=True)
        with open(os.path.join(folder, SNAPSHOTS_FILE), "a", encoding="ascii") as record:
            record.write(f"{volume.vg}/{name}\n")
        result = volume.lvm.run("lvcreate", "--yes", "-s", f"-L{volume.size}m", "-n", name,
                                volume.lvm_name, check=False)
        if not result.ok:
            raise errors.ExecError(f"can't snapshot {volume.lvm_name}: {result.reason}",
                                   "check the free space of the volume group, or export "
                                   "with the instance stopped (--long-sleep)")
        return f"{LVM_SNAPSHOT}{volume.vg}/{name}"

    def _snapshot_path(self, snapshot: str, work: str, folder: str) -> str:
        """Where a snapshot named by export_snapshot is; only this export's snapshots."""
        if not snapshot.startswith(LVM_SNAPSHOT):
            return os.path.join(folder, check_name(snapshot, "snapshot"))
        vg, _, name = snapshot[len(LVM_SNAPSHOT):].partition("/")
        lvm.check_name(vg, "volume group")
        if not name.endswith(_snapshot_lv("", work)):
            raise errors.WrongInput(f"'{snapshot}' is not a snapshot of this export")
        return f"/dev/{vg}/{lvm.check_lv_name(name)}"

    def _drop_snapshots(self, work: str) -> None:
        """Remove the LV snapshots recorded in a staging directory (those already gone
        are fine)."""
        try:
            with open(os.path.join(self._work(work), SNAPSHOTS_FILE),
                      encoding="ascii") as record:
                names = [line.strip() for line in record if line.strip()]
        except FileNotFoundError:
            return
        for full in names:
            vg, _, name = full.partition("/")
            if name.endswith(_snapshot_lv("", work)):
                self._drop_lv(vg, name)

    def _drop_lv(self, vg: str, name: str) -> None:
        lvm.LogicalVolume([vg, name], 0, {}, tool=lvm.LvmTool(self.node.runner)).remove()

    @serves
    async def export_disk(self, peer: PeerInfo, instance: InstanceSpec, index: int,
                          work: str, snapshot: str | None) -> dict[str, Any]:
        _disk(instance, index)
        folder = self._work(work)
        snap_path = None if snapshot is None else self._snapshot_path(snapshot, work, folder)
        osdef = osapi.find(str(instance.os or ""), self.node.os_search_path())
        if snap_path is None:
            paths = await blocking(self.node.assemble, instance)
        else:  # the live disks are left alone (a stopped drbd instance's stay down)
            paths = [""] * len(instance.disks)
            paths[index] = snap_path
        await blocking(self._work, work, True)
        dump = str(uuid.uuid4())
        target = os.path.join(folder, dump)

        def run() -> int:
            try:
                with open(target, "xb") as out, loop.exposed(paths) as devices:
                    os.chmod(target, 0o600)
                    env = osapi.instance_env(osdef, instance.to_dict(), devices,
                                             node_name=self.node.name)
                    env.update({"EXPORT_INDEX": str(index), "EXPORT_DEVICE": devices[index],
                                "EXPORT_DISK_PATH": devices[index]})
                    self._script(osdef, osapi.SCRIPT_EXPORT, env, instance.name, out, None)
                return os.path.getsize(target)
            except BaseException:
                _remove(target)
                raise
            finally:
                if snapshot is not None and snapshot.startswith(LVM_SNAPSHOT):
                    vg, _, name = snapshot[len(LVM_SNAPSHOT):].partition("/")
                    self._drop_lv(vg, name)
                elif snapshot is not None:
                    _remove(paths[index])
        size = await blocking(run, long=True)
        log.info("exported disk %d of instance %s (%d bytes)", index, instance.name, size)
        return {"dump": dump, "size": size}

    def _script(self, osdef: osapi.OSDefinition, script: str, env: dict[str, str],
                instance: str, stdout: IO[bytes] | None, stdin: IO[bytes] | None) -> None:
        """Run an OS export/import script: its data on stdout/stdin, its messages to a log
        file; ExecError with the log's last lines when it fails."""
        logfile = osapi.log_path(self.node.os_log_dir, script, instance)
        with open(logfile, "ab") as messages:
            code = _execute([osdef.script(script)], cwd=osdef.path, env=env,
                            stdin=stdin, stdout=stdout or messages, stderr=messages)
        if code != 0:
            reason = "timed out" if code is None else f"exited with exit code {code}"
            lines = osapi.tail(logfile)
            hint = (f"last lines of {logfile}:\n" + "\n".join(lines)) if lines else \
                f"the script printed nothing (log file {logfile})"
            raise errors.ExecError(f"OS {script} script failed for instance {instance} "
                                   f"({reason})", hint)

    # --- streams (an export to, or an import from, another node) -------------------------

    @serves
    async def export_stream_read(self, peer: PeerInfo, instance: InstanceSpec, index: int,
                                 work: str, offset: int, length: int,
                                 snapshot: str | None) -> dict[str, Any]:
        _chunk(offset, length)
        _disk(instance, index)
        key = f"{check_work(work)}/{index}"
        stream = backup_stream.find(key)
        if stream is None:
            if offset != 0:
                raise errors.WrongState(f"no export stream for disk {index} of instance "
                                        f"{instance.name} (stopped, or never started)")
            stream = await self._open_export(instance, index, work, snapshot, key)
        data, eof = await blocking(backup_stream.read, stream, offset, length, long=True)
        encoded = None if data.count(0) == len(data) else base64.b64encode(data).decode()
        return {"data": encoded, "length": len(data), "eof": eof}

    async def _open_export(self, instance: InstanceSpec, index: int, work: str,
                           snapshot: str | None, key: str) -> backup_stream.Stream:
        folder = self._work(work)
        snap_path = None if snapshot is None else self._snapshot_path(snapshot, work, folder)
        osdef = osapi.find(str(instance.os or ""), self.node.os_search_path())
        if snap_path is None:
            paths = await blocking(self.node.assemble, instance)
        else:
            paths = [""] * len(instance.disks)
            paths[index] = snap_path

        def drop_snapshot() -> None:
            if snapshot is not None and snapshot.startswith(LVM_SNAPSHOT):
                vg, _, name = snapshot[len(LVM_SNAPSHOT):].partition("/")
                self._drop_lv(vg, name)
            elif snap_path is not None:
                _remove(snap_path)

        return await blocking(
            self._start, instance, osdef, osapi.SCRIPT_EXPORT, paths,
            _device_env("EXPORT", index), key, reading=True, cleanup=drop_snapshot,
            what=f"OS export script for instance {instance.name}, disk {index}")

    def _start(self, instance: InstanceSpec, osdef: osapi.OSDefinition, script: str,
               paths: list[str], env_of: Callable[[list[str]], dict[str, str]], key: str, *,
               reading: bool, cleanup: Callable[[], None],
               what: str) -> backup_stream.Stream:
        """A script's stream, its disk files exposed as loop devices until it ends."""
        loops = LoopDevices()
        try:
            devices = [loops.attach(p) if os.path.isfile(p) else p for p in paths]
            env = osapi.instance_env(osdef, instance.to_dict(), devices,
                                     node_name=self.node.name)
            env.update(env_of(devices))
            logfile = osapi.log_path(self.node.os_log_dir, script, instance.name)
            return backup_stream.start(key, what, [osdef.script(script)], cwd=osdef.path,
                                       env=env, logfile=logfile, reading=reading,
                                       loops=loops, cleanup=cleanup)
        except BaseException:
            loops.detach_all()
            cleanup()
            raise

    @serves
    async def import_stream_write(self, peer: PeerInfo, instance: InstanceSpec, index: int,
                                  work: str, offset: int, data: str | None,
                                  zeros: int | None, eof: bool) -> None:
        _disk(instance, index)
        chunk = None
        if data is not None:
            try:
                chunk = base64.b64decode(data, validate=True)
            except ValueError:
                raise errors.WrongInput("argument 'data' is not base64") from None
        elif zeros is None:
            raise errors.WrongInput("import_stream_write needs 'data' or 'zeros'")
        size = len(chunk) if chunk is not None else int(zeros or 0)
        if size or not eof:
            _chunk(offset, size)
        key = f"{check_work(work)}/{index}"
        stream = backup_stream.find(key)
        if stream is None:
            if offset != 0:
                raise errors.WrongState(f"no import stream for disk {index} of instance "
                                        f"{instance.name} (stopped, or never started)")
            osdef = osapi.find(str(instance.os or ""), self.node.os_search_path())
            paths = await blocking(self.node.assemble, instance)
            stream = await blocking(
                self._start, instance, osdef, osapi.SCRIPT_IMPORT, paths,
                _device_env("IMPORT", index), key, reading=False, cleanup=_nothing,
                what=f"OS import script for instance {instance.name}, disk {index}")
        await blocking(backup_stream.write, stream, offset, chunk, int(zeros or 0), eof,
                       long=True)

    @serves
    async def export_read(self, peer: PeerInfo, directory: str, name: str, offset: int,
                          length: int) -> dict[str, Any]:
        _chunk(offset, length)
        path = os.path.join(self._dir(directory), check_name(name, "file"))

        def read() -> bytes:
            with open(path, "rb") as handle:
                handle.seek(offset)
                return handle.read(length)
        data = await blocking(read)
        encoded = None if data.count(0) == len(data) else base64.b64encode(data).decode()
        return {"data": encoded, "length": len(data), "eof": len(data) < length}

    @serves
    async def export_write(self, peer: PeerInfo, work: str, name: str, offset: int,
                           data: str | None, zeros: int | None) -> None:
        """Zero chunks only extend the file (a hole), so sparse dumps stay sparse."""
        if data is not None:
            try:
                chunk = base64.b64decode(data, validate=True)
            except ValueError:
                raise errors.WrongInput("argument 'data' is not base64") from None
        elif zeros is not None:
            chunk = b""
        else:
            raise errors.WrongInput("export_write needs 'data' or 'zeros'")
        size = len(chunk) if data is not None else int(zeros or 0)
        if size or offset:  # (nothing at offset 0: an empty file is made)
            _chunk(offset, size)
        path = os.path.join(self._work(work, create=True), check_name(name, "file"))

        def write() -> None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                if chunk:
                    os.pwrite(fd, chunk, offset)
                else:
                    end = offset + int(zeros or 0)
                    if os.fstat(fd).st_size < end:
                        os.ftruncate(fd, end)
            finally:
                os.close(fd)
        await blocking(write)

    @serves
    async def export_finalize(self, peer: PeerInfo, work: str, name: str,
                              config: str) -> None:
        folder = self._work(work)
        final = os.path.join(self.root, check_name(name))
        if len(config) > MAX_CONFIG:
            raise errors.WrongInput(f"config.ini of {name} is too big ({len(config)} bytes)")

        def finalize() -> None:
            if not os.path.isdir(folder):
                raise errors.WrongState(f"staging directory {work} is missing on node "
                                        f"{self.node.name}")
            path = os.path.join(folder, CONFIG_FILE)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(config)
                handle.flush()
                os.fsync(handle.fileno())
            old = None
            if os.path.lexists(final):
                old = os.path.join(self.root, f".tmp-{uuid.uuid4().hex}")
                os.rename(final, old)
            os.rename(folder, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        await blocking(finalize)
        log.info("export %s complete", name)

    @serves
    async def export_abort(self, peer: PeerInfo, work: str) -> None:
        folder = self._work(work)
        await blocking(backup_stream.drop, f"{work}/")
        await blocking(self._drop_snapshots, work)
        await blocking(shutil.rmtree, folder, True)

    # --- the exports ------------------------------------------------------------------------

    @serves
    async def export_list(self, peer: PeerInfo) -> list[str]:
        root = self.root

        def listing() -> list[str]:
            try:
                names = os.listdir(root)
            except FileNotFoundError:
                return []
            return sorted(n for n in names if _NAME.fullmatch(n)
                          and os.path.isfile(os.path.join(root, n, CONFIG_FILE)))
        return await blocking(listing)

    @serves
    async def export_remove(self, peer: PeerInfo, name: str) -> None:
        path = os.path.join(self.root, check_name(name))
        await blocking(shutil.rmtree, path, True)

    @serves
    async def export_info(self, peer: PeerInfo, path: str) -> dict[str, Any]:
        folder = self._dir(path)

        def read() -> str:
            try:
                with open(os.path.join(folder, CONFIG_FILE), encoding="utf-8") as handle:
                    return handle.read(MAX_CONFIG)
            except FileNotFoundError:
                raise errors.UnknownEntity(f"no export '{path}' on node {self.node.name} "
                                      f"(no {CONFIG_FILE} in {folder})") from None
        return {"name": os.path.basename(folder), "config": await blocking(read)}

    # --- importing --------------------------------------------------------------------------

    @serves
    async def import_disk(self, peer: PeerInfo, instance: InstanceSpec, index: int,
                          directory: str, dump: str) -> None:
        _disk(instance, index)
        source = os.path.join(self._dir(directory), check_name(dump, "dump"))
        osdef = osapi.find(str(instance.os or ""), self.node.os_search_path())
        paths = await blocking(self.node.assemble, instance)

        def run() -> None:
            with open(source, "rb") as data, loop.exposed(paths) as devices:
                env = osapi.instance_env(osdef, instance.to_dict(), devices,
                                         node_name=self.node.name)
                env.update({"IMPORT_INDEX": str(index), "IMPORT_DEVICE": devices[index],
                            "IMPORT_DISK_PATH": devices[index]})
                self._script(osdef, osapi.SCRIPT_IMPORT, env, instance.name, None, data)
        await blocking(run, long=True)
        log.info("imported disk %d of instance %s", index, instance.name)


def _device_env(kind: str, index: int) -> Callable[[list[str]], dict[str, str]]:
    """The OS API's variables naming the disk an export (kind EXPORT) or import script
    works on, once its device is known."""
    def env(devices: list[str]) -> dict[str, str]:
        return {f"{kind}_INDEX": str(index), f"{kind}_DEVICE": devices[index],
                f"{kind}_DISK_PATH": devices[index]}
    return env


def _nothing() -> None:
    pass


def _disk(instance: InstanceSpec, index: int) -> Any:
    if not 0 <= index < len(instance.disks):
        raise errors.WrongInput(f"instance {instance.name} has no disk {index} (it has "
                                f"{len(instance.disks)})")
    return instance.disks[index]


def _snapshot_lv(volume: str, work: str) -> str:
    return f"{volume}.snap-{check_work(work)[len('.tmp-'):]}"


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _sparse_copy(source: str, target: str) -> None:
    """Copy a disk image, leaving holes where it reads zeros."""
    zero = bytes(COPY_BLOCK)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(source, "rb") as src:
            offset = 0
            while block := src.read(COPY_BLOCK):
                if block != zero[:len(block)]:
                    os.pwrite(fd, block, offset)
                offset += len(block)
            os.ftruncate(fd, offset)
    except BaseException:
        os.close(fd)
        _remove(target)
        raise
    os.close(fd)


def _execute(argv: list[str], *, cwd: str, env: dict[str, str], stdin: IO[bytes] | None,
             stdout: IO[bytes], stderr: IO[bytes],
             timeout: float = SCRIPT_TIMEOUT) -> int | None:
    """Run argv (no shell) in its own process group, bound to the node daemon's life;
    its exit code, or None when it was killed after ``timeout``."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env,
                                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                stdout=stdout, stderr=stderr, close_fds=True,
                                start_new_session=True)
    except OSError as err:
        raise errors.ExecError(f"can't run {argv[0]}: {err.strerror}") from None
    return wait_group(proc, timeout)
