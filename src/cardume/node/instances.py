"""Node RPC handlers for disks, instances and OS definitions (contract: issue 3).

Each handler is small: it checks its arguments, builds the block devices (storage.from_spec)
or picks the hypervisor (hypervisor.get), and runs anything that blocks (scripts, losetup,
file I/O) in a worker thread so the daemon keeps answering other calls meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from cardume import constants, errors, storage_paths
from cardume.node import facts, hypervisor, osapi, storage
from cardume.node.cmd import CommandRunner
from cardume.node.hypervisor.base import Hypervisor
from cardume.node.storage import drbd, lvm
from cardume.node.storage.base import BlockDev
from cardume.paths import NodePaths
from cardume.rpc.http import Handler, PeerInfo, StreamUpgrade

log = logging.getLogger("cardume.noded")

T = TypeVar("T")
MAX_CHUNK = 16 * 1024 * 1024
MAX_LISTED_FILES = 10000  # per storage directory in file_storage_list: a reply stays small
MAX_SCRIPTS = 64  # OS scripts running at once on one node; more wait for a free thread
REBOOT_TYPES = ("soft", "hard", "full")

Args = dict[str, Any]


def _need(args: Args, key: str, kind: type | tuple[type, ...] = dict) -> Any:
    value = args.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__
                                                                         for k in kind)
        raise errors.WrongInput(f"argument '{key}' is missing or not a {expected}")
    return value


def _seconds(args: Args, key: str, default: float = 0.0) -> float:
    value = args.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise errors.WrongInput(f"argument '{key}' must be a number of seconds")
    return float(value)


def _instance(args: Args) -> dict[str, Any]:
    spec: dict[str, Any] = _need(args, "instance")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise errors.WrongInput("the instance spec has no name")
    if not isinstance(spec.get("disks", []), list) or not isinstance(spec.get("nics", []),
                                                                      list):
        raise errors.WrongInput(f"instance {name}: 'disks' and 'nics' must be lists")
    return spec


_script_pool: ThreadPoolExecutor | None = None


def _scripts() -> ThreadPoolExecutor:
    """Threads for OS scripts, which may run for hours: kept apart from the default pool, so
    many installs at once never hold up the short calls (node_info, instance_list...)."""
    global _script_pool
    if _script_pool is None:
        _script_pool = ThreadPoolExecutor(max_workers=MAX_SCRIPTS,
                                          thread_name_prefix="os-script")
    return _script_pool


async def _blocking(func: Callable[..., T], *args: Any, long: bool = False,
                    **kwargs: Any) -> T:
    """Run func in a worker thread (long: one of the script threads); an OSError becomes an
    ExecError that says what failed."""
    def run() -> T:
        try:
            return func(*args, **kwargs)
        except OSError as err:
            where = f" ({err.filename})" if err.filename else ""
            raise errors.ExecError(f"{err.strerror or err}{where}") from err
    if long:
        return await asyncio.get_running_loop().run_in_executor(_scripts(), run)
    return await asyncio.to_thread(run)


class InstanceCalls:
    """The handlers; ``ssconf`` is read at each call (it changes), node.json once."""

    def __init__(self, paths: NodePaths, name: str,
                 ssconf: Callable[[], dict[str, Any]],
                 runner: CommandRunner | None = None) -> None:
        self.paths = paths
        self.name = name
        self._ssconf = ssconf
        self.identity = paths.read_identity()
        self.runner = runner  # None: the real commands (tests pass a FakeRunner)

    def handlers(self) -> dict[str, Handler]:
        names = ["blockdev_create", "blockdev_remove", "blockdev_assemble",
                 "blockdev_shutdown", "blockdev_grow", "blockdev_rename", "blockdev_info",
                 "blockdev_read", "blockdev_write", "node_volumes", "node_storage",
                 "file_storage_list",
                 "drbd_status", "drbd_connect", "drbd_disconnect", "drbd_set_role",
                 "drbd_replace_local",
                 "instance_os_add", "instance_os_rename", "instance_start",
                 "instance_shutdown", "instance_reboot", "instance_list", "instance_info_all",
                 "instance_list_incoming",
                 "accept_instance", "instance_migrate", "instance_finalize_migration_dst",
                 "instance_finalize_migration_src", "instance_migration_state",
                 "instance_migration_cleanup", "os_diagnose", "os_validate",
                 "instance_console"]
        return {n: getattr(self, n) for n in names}

    # --- helpers ----------------------------------------------------------------------------

    @property
    def storage_prefix(self) -> str:
        return str(self.identity.get("storage_prefix") or "")

    @property
    def os_log_dir(self) -> str:
        return os.path.join(self.paths.log_dir, "os")

    def os_search_path(self) -> list[str]:
        return osapi.search_path(self._ssconf())

    def disk(self, spec: Any, ssconf: dict[str, Any] | None = None) -> BlockDev:
        return storage.from_spec(spec, self._ssconf() if ssconf is None else ssconf,
                                 self.identity, self.runner, node_root=self.paths.root)

    def hv(self, name: Any) -> Hypervisor:
        if not isinstance(name, str):
            raise errors.WrongInput(f"bad hypervisor name {name!r}")
        return hypervisor.get(name, self.paths.root)

    def _hypervisor_args(self, args: Args) -> list[Hypervisor]:
        names = args.get("hypervisors")
        if names is None:
            names = [n for n in facts.hypervisors() if n in hypervisor.SUPPORTED]
        if not isinstance(names, list):
            raise errors.WrongInput("argument 'hypervisors' must be a list")
        return [self.hv(n) for n in dict.fromkeys(names)]

    def _assemble(self, spec: dict[str, Any]) -> list[str]:
        """Local paths of an instance's disks, each checked to exist (worker thread).

        The instance is about to run or be written here, so a DRBD disk is made primary:
        DRBD itself refuses that unless this side has good data, or while the peer is
        primary without dual-primary mode, which keeps a second writer out."""
        paths = []
        ssconf = self._ssconf()
        for index, disk in enumerate(spec.get("disks", [])):
            try:
                dev = self.disk(disk, ssconf)
                paths.append(dev.assemble())
                if isinstance(dev, drbd.DrbdDisk):
                    dev.primary()
            except errors.CardumeError as err:
                raise type(err)(f"instance {spec['name']}, disk {index}: {err.message}",
                                err.hint) from None
        return paths

    def _release(self, spec: dict[str, Any]) -> None:
        for disk in spec.get("disks", []):
            self.disk(disk).shutdown()

    def _with_paths(self, spec: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        disks = [dict(d, path=p) for d, p in zip(spec.get("disks", []), paths, strict=True)]
        return dict(spec, disks=disks)

    # --- block devices ----------------------------------------------------------------------

    async def blockdev_create(self, args: Args, peer: PeerInfo) -> dict[str, Any]:
        """{"disk", "data_exists"?}: data_exists (drbd only) keeps the existing data LV and
        adds the metadata beside it."""
        dev = self.disk(_need(args, "disk"))
        if args.get("data_exists"):
            if not isinstance(dev, drbd.DrbdDisk):
                raise errors.WrongInput("data_exists only applies to drbd disks")
            await _blocking(dev.create, True)
        else:
            await _blocking(dev.create)
        return {"path": dev.path}

    async def blockdev_remove(self, args: Args, peer: PeerInfo) -> None:
        dev = self.disk(_need(args, "disk"))
        await _blocking(dev.remove)

    async def blockdev_assemble(self, args: Args, peer: PeerInfo) -> dict[str, Any]:
        """{"disk", "primary"?}: a DRBD disk is attached and connected, and made primary
        when asked; the others are just checked and made usable."""
        dev = self.disk(_need(args, "disk"))
        primary = bool(args.get("primary"))

        def assemble() -> str:
            path = dev.assemble()
            if primary and isinstance(dev, drbd.DrbdDisk):
                dev.primary()
            return path
        return {"path": await _blocking(assemble)}

    async def blockdev_shutdown(self, args: Args, peer: PeerInfo) -> None:
        dev = self.disk(_need(args, "disk"))
        await _blocking(dev.shutdown)

    async def blockdev_grow(self, args: Args, peer: PeerInfo) -> None:
        """{"disk", "amount", "backingstore"?}: a DRBD disk grows in two steps, its data
        volume on each node (backingstore true), then the device on the primary, whose
        spec carries the new size (backingstore false)."""
        dev = self.disk(_need(args, "disk"))
        amount = _need(args, "amount", int)
        if isinstance(dev, drbd.DrbdDisk) and not args.get("backingstore", True):
            await _blocking(dev.resize)
            return
        await _blocking(dev.grow, amount)

    async def blockdev_rename(self, args: Args, peer: PeerInfo) -> None:
        dev = self.disk(_need(args, "disk"))
        await _blocking(dev.rename, _need(args, "new_logical_id", list))

    async def blockdev_info(self, args: Args, peer: PeerInfo) -> list[dict[str, Any]]:
        ssconf = self._ssconf()
        devs = [self.disk(spec, ssconf) for spec in _need(args, "disks", list)]
        return await _blocking(lambda: [d.status() for d in devs])

    async def blockdev_read(self, args: Args, peer: PeerInfo) -> dict[str, Any]:
        """{"disk", "offset", "length"} -> {"data": base64 or null when all zero, "length",
        "eof"}: zero chunks travel as their length only, so sparse disks stay sparse."""
        dev = self.disk(_need(args, "disk"))
        offset, length = _need(args, "offset", int), _need(args, "length", int)
        if offset < 0 or not 0 < length <= MAX_CHUNK:
            raise errors.WrongInput(f"bad chunk {offset}+{length}: at most {MAX_CHUNK} bytes")
        data = await _blocking(dev.read_chunk, offset, length)
        encoded = None if data.count(0) == len(data) else base64.b64encode(data).decode()
        return {"data": encoded, "length": len(data), "eof": len(data) < length}

    async def blockdev_write(self, args: Args, peer: PeerInfo) -> None:
        """{"disk", "offset", "data": base64}: write a chunk inside the disk.
        {"disk", "offset", "zeros": length} writes that many zero bytes instead (a new LV,
        unlike a new file, is not zero-filled, so a copy can't skip the holes)."""
        dev = self.disk(_need(args, "disk"))
        offset = _need(args, "offset", int)
        if "data" not in args and "zeros" in args:
            length = _need(args, "zeros", int)
            if offset < 0 or not 0 < length <= MAX_CHUNK:
                raise errors.WrongInput(f"bad chunk {offset}+{length}: at most {MAX_CHUNK} "
                                        "bytes")
            await _blocking(dev.write_chunk, offset, bytes(length))
            return
        try:
            data = base64.b64decode(_need(args, "data", str), validate=True)
        except ValueError:
            raise errors.WrongInput("argument 'data' is not base64") from None
        if offset < 0 or len(data) > MAX_CHUNK:
            raise errors.WrongInput(f"bad chunk {offset}+{len(data)}: at most {MAX_CHUNK} bytes")
        await _blocking(dev.write_chunk, offset, data)

    # --- DRBD (roles and connections of the drbd template's disks) ---------------------------

    def _drbd_disks(self, args: Args) -> list[drbd.DrbdDisk]:
        ssconf = self._ssconf()
        devs = [self.disk(spec, ssconf) for spec in _need(args, "disks", list)]
        for dev in devs:
            if not isinstance(dev, drbd.DrbdDisk):
                raise errors.WrongInput(f"disk {dev.path} is not a DRBD disk")
        return devs  # type: ignore[return-value]

    async def drbd_status(self, args: Args, peer: PeerInfo) -> dict[str, Any]:
        """{"minors"?: [int]} -> {"version", "minors": {minor: /proc/drbd status}}: one read
        of /proc/drbd for every minor asked (all when none is named). A node without DRBD
        loaded answers version null and no minors."""
        wanted = args.get("minors")
        if wanted is not None and (not isinstance(wanted, list) or not all(
                isinstance(m, int) and not isinstance(m, bool) for m in wanted)):
            raise errors.WrongInput("argument 'minors' must be a list of integers")

        def read() -> dict[str, Any]:
            try:
                text = drbd.read_proc_drbd()
            except errors.EnvironmentProblem:
                return {"version": None, "minors": {}}
            found = drbd.parse_proc_drbd(text)
            if wanted is not None:
                found = {m: found[m] for m in wanted if m in found}
            alone = [st for st in found.values() if st["cstate"] == "StandAlone"]
            split = drbd.split_brain_minors(drbd.read_kmsg()) if alone else set()
            for st in found.values():
                st["split_brain"] = st["minor"] in split and st["cstate"] == "StandAlone"
            version = drbd.parse_version(text)
            return {"version": version["version"] if version else None,
                    "minors": {str(m): st for m, st in found.items()}}
        return await _blocking(read)

    async def drbd_connect(self, args: Args, peer: PeerInfo) -> None:
        """{"disks", "dual_primary"?}: attach (if needed) and connect to the peers."""
        devs = self._drbd_disks(args)
        dual = bool(args.get("dual_primary"))

        def connect() -> None:
            for dev in devs:
                dev.attach()
                dev.connect(dual_primary=dual)
        await _blocking(connect)

    async def drbd_disconnect(self, args: Args, peer: PeerInfo) -> None:
        """{"disks"}: drop the network connections (the disks stay attached)."""
        devs = self._drbd_disks(args)

        def disconnect() -> None:
            for dev in devs:
                dev.disconnect()
        await _blocking(disconnect)

    async def drbd_replace_local(self, args: Args, peer: PeerInfo) -> list[list[list[str]]]:
        """{"disks", "suffix", "standalone"?}: new empty LVs under each disk's local side,
        synced from the peer (standalone: this side is split from its peer, whose changes
        win); returns, per disk, the [vg, lv] ids of the old LVs (renamed with suffix),
        which the master removes once the sync has ended."""
        devs = self._drbd_disks(args)
        suffix = _need(args, "suffix", str)
        if not re.fullmatch(r"_[A-Za-z0-9_.+-]{1,40}", suffix):
            raise errors.WrongInput(f"invalid suffix {suffix!r}: expected '_' and up to 40 "
                                    "letters, digits or '_.+-'")
        standalone = bool(args.get("standalone"))
        return await _blocking(lambda: [dev.replace_local(suffix, standalone) for dev in devs])

    async def drbd_set_role(self, args: Args, peer: PeerInfo) -> None:
        """{"disks", "role": primary|secondary, "force"?}: force only overrides DRBD's
        check that this side has good data (the initial sync, or a dead peer)."""
        devs = self._drbd_disks(args)
        role = args.get("role")
        if role not in ("primary", "secondary"):
            raise errors.WrongInput(f"invalid DRBD role {role!r}: expected primary or "
                                    "secondary")
        force = bool(args.get("force"))

        def apply() -> None:
            for dev in devs:
                if role == "primary":
                    dev.primary(force=force)
                else:
                    dev.secondary()
        await _blocking(apply)

    # --- storage inventory (gnt-node volumes, list-storage) --------------------------------

    async def node_volumes(self, args: Args, peer: PeerInfo) -> list[dict[str, Any]]:
        """{"vg"?} -> the LVs of the volume group (default: the cluster's), one row per PV:
        ``{"vg", "name", "size", "dev"}``. A node without the volume group has none."""
        vg = args.get("vg") or self._ssconf().get("volume_group_name")
        if vg is not None and not isinstance(vg, str):
            raise errors.WrongInput("argument 'vg' must be a string")
        return await _blocking(lvm.list_volume_devices, vg or None, self.runner)

    async def node_storage(self, args: Args, peer: PeerInfo) -> list[dict[str, Any]]:
        """{"type": lvm-vg|lvm-pv|file|sharedfile} -> ``[{"name", "size", "used", "free",
        "allocatable"}]`` (MiB), as gnt-node list-storage shows them."""
        kind = args.get("type", constants.ST_LVM_VG)
        if kind not in constants.STORAGE_TYPES:
            raise errors.WrongInput(f"unknown storage type {kind!r} (expected "
                                    f"{', '.join(constants.STORAGE_TYPES)})")
        if kind == constants.ST_LVM_VG:
            vgs = await _blocking(lvm.list_vgs, self.runner)
            return [{"name": v["name"], "size": v["size"], "used": v["size"] - v["free"],
                     "free": v["free"], "allocatable": True} for v in vgs]
        if kind == constants.ST_LVM_PV:
            pvs = await _blocking(lvm.list_pvs, self.runner)
            return [{k: p[k] for k in ("name", "size", "used", "free", "allocatable")}
                    for p in pvs]
        key = {constants.ST_FILE: "file_storage_dir",
               constants.ST_SHARED_FILE: "shared_file_storage_dir"}[kind]
        path = self._ssconf().get(key)
        if not path:
            return []
        measured = str(path)
        if kind == constants.ST_FILE and self.storage_prefix:
            measured = os.path.normpath(self.storage_prefix) + os.path.normpath(measured)
        found = await _blocking(facts.space, measured)
        if found is None:
            return []
        return [{"name": str(path), "size": found["total"],
                 "used": found["total"] - found["free"], "free": found["free"],
                 "allocatable": True}]

    async def file_storage_list(self, args: Args, peer: PeerInfo) -> dict[str, Any]:
        """{"dirs": {file_storage_dir|shared_file_storage_dir: cluster path}, "files"?: bool}
        -> ``{"allowed": [dir] | null, "allowed_problems": [str], "refused": {key: reason},
        "files": {key: [{"path", "local", "size"}]}, "truncated": {key: bool}}``.

        Judges each directory as this node would before using it (cluster verify and
        gnt-cluster modify ask), and lists the regular files below the accepted ones
        (``files``, default true): cluster verify compares them with the disks it knows.
        ``path`` is the cluster path, ``local`` where it is on this node, ``size`` MiB."""
        dirs = args.get("dirs") or {}
        if not isinstance(dirs, dict) or not all(
                k in storage_paths.LABELS and isinstance(v, str) for k, v in dirs.items()):
            raise errors.WrongInput("argument 'dirs' must map file_storage_dir or "
                                    "shared_file_storage_dir to a path")
        listing = bool(args.get("files", True))
        root = self.paths.root

        def scan() -> dict[str, Any]:
            allowed, problems = storage_paths.read_allowed_paths(root)
            reply: dict[str, Any] = {"allowed": allowed, "allowed_problems": problems,
                                     "refused": {}, "files": {}, "truncated": {}}
            for key, path in sorted(dirs.items()):
                prefix = self.storage_prefix if key == "file_storage_dir" else ""
                reason = storage.refused_dir(key, path, root, prefix)
                if reason:
                    reply["refused"][key] = reason
                elif listing:
                    found, cut = _disk_files(storage_paths.normal(path), prefix)
                    reply["files"][key], reply["truncated"][key] = found, cut
            return reply
        return await _blocking(scan)

    # --- the OS -----------------------------------------------------------------------------

    async def instance_os_add(self, args: Args, peer: PeerInfo) -> None:
        spec = _instance(args)
        search = self.os_search_path()
        paths = await _blocking(self._assemble, spec)
        logfile = await _blocking(osapi.install, spec, search, paths, log_dir=self.os_log_dir,
                                  reinstall=bool(args.get("reinstall")), node_name=self.name,
                                  long=True)
        log.info("installed the OS of instance %s (log %s)", spec["name"], logfile)

    async def instance_os_rename(self, args: Args, peer: PeerInfo) -> None:
        spec = _instance(args)
        old_name = _need(args, "old_name", str)
        search = self.os_search_path()
        paths = await _blocking(self._assemble, spec)
        await _blocking(osapi.rename, spec, old_name, search, paths, log_dir=self.os_log_dir,
                        node_name=self.name, long=True)

    async def os_diagnose(self, args: Args, peer: PeerInfo) -> list[dict[str, Any]]:
        return await _blocking(osapi.diagnose, self.os_search_path())

    async def os_validate(self, args: Args, peer: PeerInfo) -> None:
        osparams = args.get("osparams") or {}
        if not isinstance(osparams, dict):
            raise errors.WrongInput("argument 'osparams' must be an object")
        await _blocking(osapi.validate, _need(args, "os", str), osparams,
                        self.os_search_path(), long=True)

    # --- the hypervisor ---------------------------------------------------------------------

    async def instance_start(self, args: Args, peer: PeerInfo) -> None:
        """Start the instance; already running is success, as in Ganeti."""
        spec = _instance(args)
        hv = self.hv(spec.get("hypervisor"))
        info = hv.instance_info(spec["name"])
        if info is not None and info.get("state") != constants.HV_STATE_USER_DOWN:
            log.info("instance %s is already running, not starting it", spec["name"])
            return
        if info is not None:  # its guest powered off, its QEMU waits: a fresh one instead
            await _blocking(hv.stop, spec["name"], 0, True)
        paths = await _blocking(self._assemble, spec)
        await _blocking(hv.start, self._with_paths(spec, paths))

    async def instance_shutdown(self, args: Args, peer: PeerInfo) -> None:
        spec = _instance(args)
        timeout = _seconds(args, "timeout")
        hv = self.hv(spec.get("hypervisor"))
        if hv.instance_info(spec["name"]) is None:
            return
        await _blocking(hv.stop, spec["name"], timeout, False)

    async def instance_reboot(self, args: Args, peer: PeerInfo) -> None:
        """soft: the hypervisor reboots the guest; hard: stop and start; full: stop,
        release and re-assemble the disks, start. soft and hard need a running instance."""
        spec = _instance(args)
        kind = args.get("reboot_type", "soft")
        if kind not in REBOOT_TYPES:
            raise errors.WrongInput(f"invalid reboot type {kind!r}: expected "
                                    f"{', '.join(REBOOT_TYPES)}")
        timeout = _seconds(args, "shutdown_timeout")
        name = spec["name"]
        hv = self.hv(spec.get("hypervisor"))
        info = hv.instance_info(name)
        if info is not None and info.get("state") == constants.HV_STATE_USER_DOWN:
            await _blocking(hv.stop, name, 0, True)
            info = None
        running = info is not None
        if kind != "full" and not running:
            raise errors.WrongState(f"instance {name} is not running, so it can't reboot")
        if kind == "soft":
            await _blocking(hv.reboot, name)
            return
        if running:
            await _blocking(hv.stop, name, timeout, False)
        if kind == "full":
            await _blocking(self._release, spec)
        paths = await _blocking(self._assemble, spec)
        await _blocking(hv.start, self._with_paths(spec, paths))

    async def instance_list(self, args: Args, peer: PeerInfo) -> list[str]:
        hvs = self._hypervisor_args(args)
        return sorted({n for hv in hvs for n in await _blocking(hv.list_instances)})

    async def instance_list_incoming(self, args: Args, peer: PeerInfo) -> list[str]:
        hvs = self._hypervisor_args(args)
        return sorted({n for hv in hvs for n in await _blocking(hv.list_incoming)})

    async def instance_info_all(self, args: Args, peer: PeerInfo) -> dict[str, Any]:
        hvs = self._hypervisor_args(args)

        def collect() -> dict[str, Any]:
            found: dict[str, Any] = {}
            for hv in hvs:
                found.update(hv.all_instances_info())
            return found
        return await _blocking(collect)

    # --- migration (Ganeti's steps: accept on the target, migrate on the source,
    # finalize on both) -------------------------------------------------------------------------

    def _migrating_hv(self, spec: dict[str, Any]) -> Hypervisor:
        hv = self.hv(spec.get("hypervisor"))
        if not hv.CAN_MIGRATE:
            raise errors.WrongState(f"the {hv.NAME} hypervisor can't migrate instances")
        return hv

    async def accept_instance(self, args: Args, peer: PeerInfo) -> dict[str, Any]:
        """{"instance", "source"} on the target -> migration info for instance_migrate."""
        spec = _instance(args)
        hv = self._migrating_hv(spec)
        paths = await _blocking(self._assemble, spec)
        return await _blocking(hv.accept_instance, self._with_paths(spec, paths),
                               str(args.get("source", "")))

    async def instance_migrate(self, args: Args, peer: PeerInfo) -> None:
        """{"instance", "target", "info", "live"} on the source."""
        spec = _instance(args)
        hv = self._migrating_hv(spec)
        await _blocking(hv.migrate, spec["name"], _need(args, "target", str),
                        dict(args.get("info") or {}), bool(args.get("live", True)),
                        dict(spec.get("hvparams") or {}))

    async def instance_finalize_migration_dst(self, args: Args, peer: PeerInfo) -> None:
        """{"instance", "success"} on the target: run it there, or forget it."""
        spec = _instance(args)
        hv = self._migrating_hv(spec)
        paths = await _blocking(self._assemble, spec)
        await _blocking(hv.finalize_migration_target, self._with_paths(spec, paths),
                        bool(args.get("success")))

    def _cleanup_hv(self, spec: dict[str, Any]) -> Any:
        from cardume.node.hypervisor.kvm import KvmHypervisor
        hv = self._migrating_hv(spec)
        if not isinstance(hv, KvmHypervisor):
            raise errors.WrongInput(f"the {hv.NAME} hypervisor migrates atomically: there "
                                    "is nothing to clean up")
        return hv

    async def instance_migration_state(self, args: Args, peer: PeerInfo) -> str:
        """{"instance", "role": source|target} -> this side's state (migrate --cleanup)."""
        spec = _instance(args)
        role = args.get("role")
        if role not in ("source", "target"):
            raise errors.WrongInput(f"invalid role {role!r}: expected source or target")
        return str(await _blocking(self._cleanup_hv(spec).migration_state, spec["name"], role))

    async def instance_migration_cleanup(self, args: Args, peer: PeerInfo) -> None:
        """{"instance", "role", "action"}: this side's part of the cleanup plan."""
        spec = _instance(args)
        role, action = args.get("role"), args.get("action")
        if role not in ("source", "target"):
            raise errors.WrongInput(f"invalid role {role!r}: expected source or target")
        if action not in (None, "keep", "resume", "quit", "kill", "leave"):
            raise errors.WrongInput(f"invalid cleanup action {action!r}")
        await _blocking(self._cleanup_hv(spec).migration_cleanup, spec["name"], role, action)

    async def instance_finalize_migration_src(self, args: Args, peer: PeerInfo) -> None:
        """{"instance", "success"} on the source: stop it here, or keep it running."""
        spec = _instance(args)
        hv = self._migrating_hv(spec)
        await _blocking(hv.finalize_migration_source, spec["name"], bool(args.get("success")))

    # --- the console ------------------------------------------------------------------------

    async def instance_console(self, args: Args, peer: PeerInfo) -> StreamUpgrade:
        """{"instance", "hypervisor"?: kvm}: the reply is followed by the raw serial console
        of the instance on the same connection (see node/console.py)."""
        from cardume.node import console
        from cardume.node.hypervisor.kvm import KvmHypervisor
        name = _need(args, "instance", str)
        hv = self.hv(args.get("hypervisor") or "kvm")
        if not isinstance(hv, KvmHypervisor):
            raise errors.WrongInput(f"the {hv.NAME} hypervisor has no serial console to "
                                    "relay")
        path = await _blocking(hv.serial_socket, name)
        key = f"{hv.NAME}:{name}"
        console.claim(key, name)

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await console.relay(path, key, reader, writer)
        return StreamUpgrade({"instance": name, "node": self.name}, run)


def _disk_files(cluster_dir: str, prefix: str) -> tuple[list[dict[str, Any]], bool]:
    """The regular files below a storage directory (symbolic links not followed), as
    ``{"path": cluster path, "local": path here, "size": MiB}``; and whether the list was
    cut at MAX_LISTED_FILES."""
    local_dir = prefix.rstrip("/") + cluster_dir if prefix else cluster_dir
    found: list[dict[str, Any]] = []
    for top, subdirs, names in os.walk(local_dir):
        subdirs.sort()
        for name in sorted(names):
            local = os.path.join(top, name)
            try:
                info = os.lstat(local)
            except OSError:
                continue  # removed while we walked
            if not stat.S_ISREG(info.st_mode):
                continue
            if len(found) >= MAX_LISTED_FILES:
                return found, True
            cluster_path = cluster_dir + local[len(local_dir):]
            found.append({"path": cluster_path, "local": local,
                          "size": info.st_size // (1024 * 1024)})
    return found, False
